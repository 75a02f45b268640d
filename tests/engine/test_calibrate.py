"""Temperature scaling: fitted temperatures, the wrapper, and what it never changes."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from tabpilot.engine.training.calibrate import (
    TemperatureScaled,
    fit_temperature,
    scale,
    with_temperature,
)


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True logits and classes drawn from them."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=2.0, size=(n, 4))
    p = _softmax(z)
    y = np.array([rng.choice(4, p=row) for row in p])
    return z, y


def test_an_over_confident_model_is_softened_by_its_temperature() -> None:
    z, y = _sample(5000, seed=0)
    over = _softmax(2.0 * z)  # twice the true logits: over-confident
    temperature = fit_temperature(over, y)
    assert temperature is not None and 1.8 < temperature < 2.2
    np.testing.assert_allclose(scale(over, temperature), _softmax(2.0 * z / temperature))


def test_an_under_confident_model_is_sharpened() -> None:
    z, y = _sample(5000, seed=1)
    temperature = fit_temperature(_softmax(0.5 * z), y)
    assert temperature is not None and 0.4 < temperature < 0.6


def test_a_calibrated_model_is_left_alone() -> None:
    z, y = _sample(5000, seed=2)
    assert fit_temperature(_softmax(z), y) is None


def test_scaling_keeps_each_rows_class_and_sums_to_one() -> None:
    z, _ = _sample(200, seed=3)
    p = _softmax(z)
    for t in (0.2, 1.0, 7.0):
        q = scale(p, t)
        np.testing.assert_allclose(q.sum(axis=1), 1.0)
        np.testing.assert_array_equal(q.argmax(axis=1), p.argmax(axis=1))
    # Zero probabilities (a class a tree never saw) stay finite.
    assert np.isfinite(scale(np.array([[1.0, 0.0, 0.0]]), 0.5)).all()


def test_the_wrapper_scales_probabilities_and_keeps_labels() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(scale=0.5, size=300) > 0).astype(int)
    plain = LogisticRegression().fit(X, y)
    wrapped = TemperatureScaled(LogisticRegression(), 3.0).fit(X, y)
    np.testing.assert_array_equal(wrapped.predict(X), plain.predict(X))
    np.testing.assert_allclose(wrapped.predict_proba(X), scale(plain.predict_proba(X), 3.0))
    np.testing.assert_array_equal(wrapped.classes_, [0, 1])

    # In a pipeline, the last step is wrapped (plain parts for the ONNX converter).
    pipe = with_temperature(Pipeline([("s", StandardScaler()), ("m", LogisticRegression())]), 2)
    assert isinstance(pipe, Pipeline) and isinstance(pipe.steps[-1][1], TemperatureScaled)
    assert isinstance(with_temperature(LogisticRegression(), 2), TemperatureScaled)
