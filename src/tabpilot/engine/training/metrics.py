"""Metrics, chosen explicitly per problem type, and the held-out evaluation report."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

# The choice tables live in `choices` (no scikit-learn); re-exported for the engine's callers.
from tabpilot.engine.choices import DEFAULT_METRIC, METRICS, MetricSpec, resolve_metric

__all__ = [
    "DEFAULT_METRIC",
    "METRICS",
    "MetricSpec",
    "evaluate_classification",
    "evaluate_regression",
    "resolve_metric",
    "score",
]


def score(
    spec: MetricSpec, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None
) -> float:
    """One metric on encoded labels (0..K-1) or regression targets."""
    name = spec.name
    if name == "roc_auc":
        if proba is None:
            raise ValueError("roc_auc needs probabilities")
        if proba.shape[1] == 2:
            return float(skm.roc_auc_score(y_true, proba[:, 1]))
        return float(
            skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=range(proba.shape[1]))
        )
    if name == "log_loss":
        assert proba is not None
        return float(skm.log_loss(y_true, proba, labels=range(proba.shape[1])))
    if name == "accuracy":
        return float(skm.accuracy_score(y_true, y_pred))
    if name == "f1":
        return float(skm.f1_score(y_true, y_pred, zero_division=0))
    if name == "macro_f1":
        return float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    if name == "rmse":
        return float(np.sqrt(skm.mean_squared_error(y_true, y_pred)))
    if name == "mae":
        return float(skm.mean_absolute_error(y_true, y_pred))
    if name == "r2":
        return float(skm.r2_score(y_true, y_pred))
    if name == "mape":
        return float(skm.mean_absolute_percentage_error(y_true, y_pred))
    raise ValueError(name)


def evaluate_classification(
    y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray, n_classes: int
) -> dict[str, object]:
    """Every classification metric of the report, on encoded labels."""
    labels = list(range(n_classes))
    out: dict[str, object] = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, y_pred)),
        "log_loss": float(skm.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=labels)),
    }
    for avg in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            y_true, y_pred, average=avg, labels=labels, zero_division=0
        )
        out[f"precision_{avg}"] = float(p)
        out[f"recall_{avg}"] = float(r)
        # The metric table's names: "macro_f1" (also an objective), "f1_weighted".
        out["macro_f1" if avg == "macro" else "f1_weighted"] = float(f)
    try:
        if n_classes == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
        else:
            out["roc_auc"] = float(
                skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels)
            )
    except ValueError:
        out["roc_auc"] = None  # a class absent from the held-out rows
    out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    out["per_class"] = [
        {"precision": float(a), "recall": float(b), "f1": float(c), "support": int(d)}
        for a, b, c, d in zip(p, r, f, s, strict=True)
    ]
    return out


def evaluate_regression(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, object]:
    """Every regression metric of the report. MAPE only where no target is zero."""
    out: dict[str, object] = {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)),
        "mape": None,
    }
    if np.all(y_true != 0):
        out["mape"] = float(skm.mean_absolute_percentage_error(y_true, y_pred))
    return out
