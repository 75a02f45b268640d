"""Outputs of fitted models in one shape: probabilities over all classes (label codes
0..K-1, a class the model never saw gets 0, rows summing to 1), or values for regression.

Also the outputs of each member of a fitted voting ensemble, so a blend can weigh them one
by one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tabpilot.engine.training.metrics import MetricSpec, score


def output(pipe: Pipeline, X: pd.DataFrame, classes: list[Any] | None) -> np.ndarray:
    """Probabilities over all classes (a class the model never saw gets 0), or values."""
    if classes is None:
        return np.asarray(pipe.predict(X), dtype="float64")
    # A class missing from a cross-validation fold has no column: it gets 0.
    return spread(pipe.predict_proba(X), pipe.named_steps["model"].classes_, len(classes))


def native_output(model: Any, Xt: Any, classes: list[Any] | None) -> np.ndarray:
    """Outputs of a fitted model on preprocessed rows (label codes as classes)."""
    if classes is None:
        return np.asarray(model.predict(Xt), dtype="float64")
    return spread(model.predict_proba(Xt), model.classes_, len(classes))


def spread(proba: Any, columns: Any, n_classes: int) -> np.ndarray:
    """Probabilities over all `n_classes` label codes, from a model's columns for the codes in
    `columns` (a class the model never saw gets 0), rows summing to 1."""
    proba = np.asarray(proba, dtype="float64")
    if proba.shape[1] != n_classes or not np.array_equal(columns, np.arange(n_classes)):
        full = np.zeros((len(proba), n_classes))
        full[:, np.asarray(columns, dtype=int)] = proba
        proba = full
    return proba / proba.sum(axis=1, keepdims=True)  # float32 models sum to 1 only roughly


def split_output(
    values: np.ndarray, classes: list[Any] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(labels or values, probabilities or None) of an `output`."""
    if classes is None:
        return values, None
    return values.argmax(axis=1), values


def score_output(
    metric: MetricSpec, y: np.ndarray, values: np.ndarray, classes: list[Any] | None
) -> float:
    """The metric of an `output` against the true label codes or values."""
    if classes is None:
        return score(metric, y, values, None)
    return score(metric, y, values.argmax(axis=1), values)


def is_voting(model: Any) -> bool:
    """A voting ensemble (forests also have `estimators_`: their trees)."""
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    return isinstance(model, VotingClassifier | VotingRegressor)


def member_outputs(
    pipe: Pipeline, X: pd.DataFrame, classes: list[Any] | None
) -> dict[str, np.ndarray]:
    """Each member's outputs of a fitted ensemble pipeline, by name; {} for a single model."""
    model = pipe.named_steps["model"]
    if not is_voting(model):
        return {}
    fitted = model.estimators_
    Xt = pipe.named_steps["pre"].transform(X)
    names = [name for name, est in model.estimators if est != "drop"]
    return {
        name: _voting_member_output(model, member, Xt, classes)
        for name, member in zip(names, fitted, strict=True)
    }


def member_predictor(
    pipe: Pipeline, name: str, classes: list[Any] | None
) -> Callable[[pd.DataFrame], np.ndarray]:
    """Outputs of one member of a fitted ensemble pipeline, on raw rows."""
    model = pipe.named_steps["model"]

    def predict(X: pd.DataFrame) -> np.ndarray:
        member = model.named_estimators_[name]
        return _voting_member_output(model, member, pipe.named_steps["pre"].transform(X), classes)

    return predict


def _voting_member_output(
    voting: Any, member: Any, Xt: Any, classes: list[Any] | None
) -> np.ndarray:
    if classes is None:
        return np.asarray(member.predict(Xt), dtype="float64")
    # Voting members learn the ensemble's label codes 0..k'-1, which index its classes_.
    columns = np.asarray(voting.classes_, dtype=int)[np.asarray(member.classes_, dtype=int)]
    return spread(member.predict_proba(Xt), columns, len(classes))
