"""The held-out evaluation data of the chosen model, computed once in training and kept in the
model card (`CardEvaluation`), so that the training report and the web Results page only draw it.

Classification: one-vs-rest ROC and precision-recall curves (the positive class of a binary
problem; the largest classes of a multiclass one) thinned to a few hundred points, with their
areas, and calibration bins. Regression: a deterministic sample of (actual, predicted) pairs, the
residual histogram and quantiles, and the error by range of the actual value. Everything is plain
JSON (lists of rounded floats), a few KB per card.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tabpilot.engine.card import CardEvaluation

MAX_CURVE_CLASSES = 10
MAX_CURVE_POINTS = 200  # per chart: a multiclass chart shares them among its classes
MIN_CURVE_POINTS = 30
CALIBRATION_BINS = 10
MAX_SCATTER = 500
RESIDUAL_BINS = 30
ERROR_BINS = 10
QUANTILES = {"min": 0.0, "q05": 0.05, "q25": 0.25, "median": 0.5, "q75": 0.75, "q95": 0.95}
QUANTILES["max"] = 1.0


def _round(values: Any, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in np.asarray(values, dtype="float64")]


def _sig(values: Any) -> list[float]:
    """Values kept to 6 significant digits (targets may be any size)."""
    return [float(f"{float(v):.6g}") for v in np.asarray(values, dtype="float64")]


def thin_curve(x: np.ndarray, y: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """At most `limit` points of a curve, spread evenly along its length (so steep and flat
    parts both keep their shape), the first and last kept."""
    if len(x) <= limit:
        return x, y
    steps = np.hypot(np.diff(x), np.diff(y))
    along = np.concatenate([[0.0], np.cumsum(steps)])
    if along[-1] <= 0:
        idx = np.linspace(0, len(x) - 1, limit).round().astype(int)
    else:
        targets = np.linspace(0.0, along[-1], limit)
        idx = np.clip(np.searchsorted(along, targets), 0, len(x) - 1)
    idx = np.unique(np.concatenate([[0], idx, [len(x) - 1]]))
    return x[idx], y[idx]


def calibration_bins(truth: np.ndarray, score: np.ndarray, n_bins: int) -> list[dict[str, Any]]:
    """Quantile bins of the score: mean predicted probability, observed rate and rows of each
    (empty bins left out)."""
    edges = np.quantile(score, np.linspace(0.0, 1.0, n_bins + 1))
    which = np.searchsorted(edges[1:-1], score, side="right")
    out = []
    for b in range(n_bins):
        sel = which == b
        if sel.any():
            out.append(
                {
                    "predicted": round(float(score[sel].mean()), 4),
                    "observed": round(float(truth[sel].mean()), 4),
                    "rows": int(sel.sum()),
                }
            )
    return out


def classification_evaluation(
    y: np.ndarray, pred: np.ndarray, proba: np.ndarray, classes: list[Any]
) -> CardEvaluation:
    """Curves and calibration of the held-out label codes `y`, predicted codes `pred` and
    probabilities `proba` (one column per class)."""
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

    y, pred = np.asarray(y, dtype=int), np.asarray(pred, dtype=int)
    proba = np.asarray(proba, dtype="float64")
    labels = [str(c) for c in classes]
    binary = len(labels) == 2
    if binary:
        curve_classes = [1]
        curve_note = f'for the positive class "{labels[1]}"'
    else:
        support = np.bincount(y, minlength=len(labels))
        order = np.argsort(-support, kind="stable")[:MAX_CURVE_CLASSES]
        curve_classes = sorted(int(i) for i in order)
        curve_note = "one class against the rest"
        if len(labels) > MAX_CURVE_CLASSES:
            curve_note += f", for the {MAX_CURVE_CLASSES} largest of {len(labels)} classes"
    limit = max(MIN_CURVE_POINTS, MAX_CURVE_POINTS // len(curve_classes))
    curves = []
    for k in curve_classes:
        truth = (y == k).astype(int)
        if truth.min() == truth.max():
            continue  # one-sided: no curve
        fpr, tpr, _ = roc_curve(truth, proba[:, k])
        precision, recall, _ = precision_recall_curve(truth, proba[:, k])
        roc_x, roc_y = thin_curve(fpr, tpr, limit)
        pr_x, pr_y = thin_curve(recall, precision, limit)
        curves.append(
            {
                "label": labels[k],
                "index": k,
                "auc": round(float(auc(fpr, tpr)), 6),
                "average_precision": round(float(average_precision_score(truth, proba[:, k])), 6),
                "roc": {"x": _round(roc_x), "y": _round(roc_y)},
                "pr": {"x": _round(pr_x), "y": _round(pr_y)},
            }
        )
    if binary:
        truth, score = (y == 1).astype(int), proba[:, 1]
        name = f"P({labels[1]})"
        note = f'the predicted probability of "{labels[1]}" against how often it is'
    else:
        # Top-label calibration: the confidence in the predicted class against accuracy.
        truth, score = (pred == y).astype(int), proba.max(axis=1)
        name = "P(predicted class)"
        note = "the probability of the predicted class against how often it is right"
    bins = (
        calibration_bins(truth, score, CALIBRATION_BINS)
        if len(truth) and truth.min() != truth.max()
        else []
    )
    return CardEvaluation(
        rows=len(y),
        curves=curves,
        curve_note=curve_note,
        calibration={"name": name, "note": note, "bins": bins},
    )


def regression_evaluation(y: np.ndarray, pred: np.ndarray, *, seed: int) -> CardEvaluation:
    """A sample of (actual, predicted) pairs, the residuals (actual − predicted) and the
    error by range of the actual value."""
    y = np.asarray(y, dtype="float64")
    pred = np.asarray(pred, dtype="float64")
    ok = np.isfinite(y) & np.isfinite(pred)
    y, pred = y[ok], pred[ok]
    if not len(y):
        return CardEvaluation()
    idx = np.arange(len(y))
    if len(idx) > MAX_SCATTER:
        idx = np.sort(np.random.default_rng(seed).choice(idx, MAX_SCATTER, replace=False))
    residuals = y - pred
    counts, edges = np.histogram(residuals, bins=RESIDUAL_BINS)
    return CardEvaluation(
        rows=len(y),
        scatter={"actual": _sig(y[idx]), "predicted": _sig(pred[idx])},
        residuals={
            "mean": float(f"{residuals.mean():.6g}"),
            "std": float(f"{residuals.std():.6g}"),
            "quantiles": dict(
                zip(QUANTILES, _sig(np.quantile(residuals, list(QUANTILES.values()))), strict=True)
            ),
            "histogram": {"edges": _sig(edges), "counts": [int(c) for c in counts]},
        },
        error_bins=_error_bins(y, pred),
    )


def _error_bins(y: np.ndarray, pred: np.ndarray) -> list[dict[str, Any]]:
    """Quantile bins of the actual value: rows, mean actual and predicted, MAE and bias."""
    cuts = np.unique(np.quantile(y, np.linspace(0, 1, ERROR_BINS + 1)))
    if len(cuts) < 2:
        return []
    which = np.clip(np.searchsorted(cuts, y, side="right") - 1, 0, len(cuts) - 2)
    bins = []
    for b in range(len(cuts) - 1):
        sel = which == b
        if not sel.any():
            continue
        err = pred[sel] - y[sel]
        lo, hi, actual, predicted, mae, bias = _sig(
            [cuts[b], cuts[b + 1], y[sel].mean(), pred[sel].mean(), np.abs(err).mean(), err.mean()]
        )
        bins.append(
            {
                "lo": lo,
                "hi": hi,
                "rows": int(sel.sum()),
                "actual": actual,
                "predicted": predicted,
                "mae": mae,
                "bias": bias,
            }
        )
    return bins


def holdout_evaluation(
    y: np.ndarray,
    predictions: np.ndarray,
    proba: np.ndarray | None,
    classes: list[Any] | None,
    *,
    seed: int,
) -> CardEvaluation:
    """The evaluation data of the chosen model's held-out outputs (empty when a classifier
    gave no probabilities)."""
    if classes is None:
        return regression_evaluation(y, predictions, seed=seed)
    if proba is None:
        return CardEvaluation()
    return classification_evaluation(y, predictions, proba, classes)
