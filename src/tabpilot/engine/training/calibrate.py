"""Temperature scaling: one number that makes a classifier's probabilities honest.

Tree ensembles are often under-confident (random forests, extra trees) or over-confident
(boosting run long); log loss punishes both. Temperature scaling (Guo et al., "On Calibration
of Modern Neural Networks", ICML 2017) divides the log-probabilities by a temperature T fitted
on predictions the model did not train on and renormalises: T < 1 sharpens, T > 1 softens.
The predicted class never changes (the order of the probabilities is kept), so accuracy and
ROC AUC stay the same; only the probabilities move.

`TemperatureScaled` wraps a classifier so the scaling ships inside the pipeline, the pickle
and the ONNX graph (its converter is registered in `export.py`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0
# A temperature is used only if it lowers the log loss by at least this share: smaller gains
# are noise, and an unscaled model is simpler to read.
MIN_GAIN = 0.005
_FLOOR = 1e-12


def scale(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities (rows x classes) with their log divided by `temperature`, renormalised."""
    z = np.log(np.maximum(np.asarray(proba, dtype="float64"), _FLOOR)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _log_loss(proba: np.ndarray, y: np.ndarray) -> float:
    # Not sklearn's log_loss: the optimiser calls this a few dozen times, and sklearn's input
    # checks would cost more than the sum itself.
    picked = proba[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.maximum(picked, _FLOOR))))


def fit_temperature(proba: np.ndarray, y: np.ndarray) -> float | None:
    """The temperature that minimises the log loss of `proba` for class codes `y`, or None
    when scaling gains less than `MIN_GAIN` (relative)."""
    from scipy.optimize import minimize_scalar

    y = np.asarray(y, dtype=int)
    before = _log_loss(proba, y)
    # Search log T, where the loss is smooth and nearly symmetric.
    found = minimize_scalar(
        lambda log_t: _log_loss(scale(proba, float(np.exp(log_t))), y),
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)),
        method="bounded",
        options={"xatol": 1e-3},
    )
    after = float(found.fun)
    if not np.isfinite(after) or after > before * (1 - MIN_GAIN):
        return None
    return float(np.exp(found.x))


def with_temperature(estimator: Any, temperature: float) -> Any:
    """`estimator` with scaled probabilities; in a pipeline (a scaled linear model) the last
    step is wrapped, which keeps the ONNX conversion to plain, known parts."""
    from sklearn.pipeline import Pipeline

    if isinstance(estimator, Pipeline):
        *head, (name, last) = estimator.steps
        return Pipeline([*head, (name, TemperatureScaled(last, temperature))])
    return TemperatureScaled(estimator, temperature)


def fitted_with_temperature(fitted: Any, temperature: float) -> Any:
    """A fitted classifier (or pipeline ending in one) with scaled probabilities, without
    training again."""
    from sklearn.pipeline import Pipeline

    if isinstance(fitted, Pipeline):
        *head, (name, last) = fitted.steps
        return Pipeline([*head, (name, fitted_with_temperature(last, temperature))])
    scaled = TemperatureScaled(clone(fitted), temperature)
    scaled.estimator_ = fitted
    scaled.classes_ = fitted.classes_
    return scaled


class TemperatureScaled(ClassifierMixin, BaseEstimator):
    """A classifier whose probabilities are temperature-scaled (see the module docstring)."""

    def __init__(self, estimator: Any = None, temperature: float = 1.0) -> None:
        self.estimator = estimator
        self.temperature = temperature

    def fit(self, X: Any, y: Any, **fit_params: Any) -> TemperatureScaled:
        self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        self.classes_ = self.estimator_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return scale(self.estimator_.predict_proba(X), self.temperature)

    def predict(self, X: Any) -> np.ndarray:
        # Scaling keeps the order of the probabilities, so the class is the model's own.
        return self.estimator_.predict(X)
