"""The held-out evaluation data the card keeps (engine/training/evaluation.py): small, plain
JSON, faithful to the full curves, deterministic."""

from __future__ import annotations

import json

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from tabpilot.engine.reports.heldout import (
    calibration_chart,
    error_chart,
    pr_chart,
    residual_chart,
    roc_chart,
    scatter_chart,
)
from tabpilot.engine.training.evaluation import MAX_CURVE_POINTS, MAX_SCATTER, holdout_evaluation


def test_binary_curves_are_thinned_and_keep_their_areas() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 3000)
    p1 = np.clip(0.3 * y + rng.random(3000) * 0.7, 0, 1)
    proba = np.column_stack([1 - p1, p1])
    ev = holdout_evaluation(y, (p1 > 0.5).astype(int), proba, ["no", "yes"], seed=0)
    (curve,) = ev.curves
    assert curve["label"] == "yes"
    assert abs(curve["auc"] - roc_auc_score(y, p1)) < 1e-6
    assert abs(curve["average_precision"] - average_precision_score(y, p1)) < 1e-6
    for part in ("roc", "pr"):
        assert 10 < len(curve[part]["x"]) == len(curve[part]["y"]) <= MAX_CURVE_POINTS + 2
    assert curve["roc"]["x"][0] == 0.0 and curve["roc"]["y"][-1] == 1.0
    bins = ev.calibration_bins
    assert len(bins) == 10 and sum(b["rows"] for b in bins) == 3000
    assert all(0 <= b["predicted"] <= 1 and 0 <= b["observed"] <= 1 for b in bins)
    assert len(json.dumps(ev.__dict__)) < 12_000
    for chart in (roc_chart(ev), pr_chart(ev), calibration_chart(ev)):
        assert chart is not None and "<svg" in chart
    assert scatter_chart(ev, "t") is None and residual_chart(ev) is None


def test_multiclass_curves_per_class_share_the_points() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 800)
    proba = rng.dirichlet(np.ones(4), 800)
    proba[np.arange(800), y] += 0.5
    proba /= proba.sum(axis=1, keepdims=True)
    ev = holdout_evaluation(y, proba.argmax(axis=1), proba, list("abcd"), seed=0)
    assert [c["label"] for c in ev.curves] == list("abcd")
    assert all(len(c["roc"]["x"]) <= MAX_CURVE_POINTS // 4 + 2 for c in ev.curves)
    assert ev.calibration["name"] == "P(predicted class)" and ev.calibration_bins


def test_regression_sample_residuals_and_error_bins() -> None:
    rng = np.random.default_rng(2)
    y = rng.normal(100, 20, 2000)
    pred = y + rng.normal(0, 5, 2000)
    ev = holdout_evaluation(y, pred, None, None, seed=3)
    assert ev == holdout_evaluation(y, pred, None, None, seed=3)  # deterministic
    assert len(ev.scatter["actual"]) == len(ev.scatter["predicted"]) == MAX_SCATTER
    assert ev.rows == 2000
    q = ev.residuals["quantiles"]
    assert q["min"] <= q["q05"] <= q["median"] <= q["q95"] <= q["max"]
    assert abs(ev.residuals["mean"] - float(np.mean(y - pred))) < 1e-3
    assert sum(ev.residuals["histogram"]["counts"]) == 2000
    assert sum(b["rows"] for b in ev.error_bins) == 2000
    assert len(json.dumps(ev.__dict__)) < 20_000
    for chart in (scatter_chart(ev, "t"), residual_chart(ev), error_chart(ev, "t")):
        assert chart is not None and "<svg" in chart
    assert roc_chart(ev) is None and calibration_chart(ev) is None


def test_no_probabilities_no_data() -> None:
    ev = holdout_evaluation(np.array([0, 1]), np.array([0, 1]), None, ["a", "b"], seed=0)
    assert ev.empty
