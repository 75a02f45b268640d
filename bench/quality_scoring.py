"""Scoring a tool's predictions CSV against the test rows' truth, the same way for every tool."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

# Run as a script: bench/ is on sys.path.
from quality_report import DatasetSpec

PROBA_EPS = 1e-15


class BenchError(Exception):
    """A problem with one tool's run or output; recorded, and the benchmark goes on."""


def label_key(value: object) -> str:
    """One spelling per label, whichever tool wrote it: 1, 1.0 and "1" are the same class."""
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    try:
        number = float(text)
    except ValueError:
        return text
    if math.isfinite(number) and number.is_integer() and "e" not in text.lower():
        return str(int(number))
    return text


def score_predictions(
    spec: DatasetSpec, truth: list[Any], predictions_csv: Path
) -> dict[str, float]:
    """The dataset's metric and the secondary ones, from a tool's predictions CSV, against the
    test rows' `truth` (label keys, or floats for regression)."""
    try:
        preds = pd.read_csv(predictions_csv, dtype={"prediction": str})
    except (OSError, ValueError) as exc:
        raise BenchError(f"cannot read the predictions {predictions_csv.name}: {exc}") from exc
    if "prediction" not in preds.columns:
        raise BenchError(f"no `prediction` column in the predictions; columns: {list(preds)}")
    if len(preds) != len(truth):
        raise BenchError(f"{len(preds)} predictions for {len(truth)} test rows")

    if spec.task == "regression":
        y_true = np.asarray(truth, dtype=float)
        y_pred = pd.to_numeric(preds["prediction"], errors="coerce").to_numpy(dtype=float)
        if np.isnan(y_pred).any():
            raise BenchError(f"{int(np.isnan(y_pred).sum())} missing or non-numeric predictions")
        residual = y_true - y_pred
        total = ((y_true - y_true.mean()) ** 2).sum()
        return {
            "rmse": float(np.sqrt(np.mean(residual**2))),
            "mae": float(np.mean(np.abs(residual))),
            "r2": float(1 - (residual**2).sum() / total) if total > 0 else float("nan"),
        }

    predicted = [label_key(v) for v in preds["prediction"]]
    metrics = {
        "accuracy": float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)])),
        "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
    }
    proba_columns = {
        label_key(c[len("proba_") :]): c for c in preds.columns if c.startswith("proba_")
    }
    if not proba_columns:
        raise BenchError("no `proba_<label>` columns in the predictions")
    labels = list(proba_columns)
    proba = preds[[proba_columns[label] for label in labels]].to_numpy(dtype=float)
    if np.isnan(proba).any():
        raise BenchError("missing probabilities in the predictions")
    # As scikit-learn's log_loss: rows renormalised, probabilities clipped; a true class the
    # tool has no column for counts as probability 0.
    sums = proba.sum(axis=1, keepdims=True)
    proba = np.divide(proba, sums, out=np.full_like(proba, 1 / len(labels)), where=sums > 0)
    index = {label: j for j, label in enumerate(labels)}
    p_true = np.array([proba[i, index[t]] if t in index else 0.0 for i, t in enumerate(truth)])
    metrics["log_loss"] = float(-np.mean(np.log(np.clip(p_true, PROBA_EPS, 1.0))))

    if spec.task == "binary":
        positive = label_key(spec.positive_class) if spec.positive_class is not None else None
        if positive not in index:
            positive = sorted(set(truth))[-1]
        y_true = np.array([t == positive for t in truth])
        if positive in index:
            score = proba[:, index[positive]]
        elif len(labels) == 2:
            score = 1 - proba[:, 0]
        else:
            raise BenchError(f"no probability for the positive class {positive!r}")
        if y_true.all() or not y_true.any():
            raise BenchError("the test split has a single class; ROC AUC is undefined")
        metrics["roc_auc"] = float(roc_auc_score(y_true, score))
    return metrics
