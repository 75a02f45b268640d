"""The training report's held-out evaluation: the metric table, and the curves (ROC,
precision-recall, calibration) or the error charts, drawn from the evaluation data training
computed (`TrainResult.evaluation`, the card's `CardEvaluation`; see `reports/heldout.py`).
A base of the report class, so that its sections can use the held-out rows too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from tabpilot.engine.choices import ALL_METRICS
from tabpilot.engine.reports.heldout import (
    calibration_chart,
    error_chart,
    pr_chart,
    residual_chart,
    roc_chart,
    scatter_chart,
)
from tabpilot.engine.reports.page import macro

if TYPE_CHECKING:
    from tabpilot.engine.training.train import TrainResult

TEMPLATE = "training.html.j2"
PREDICTION = "__prediction__"
PROBA = "__proba__"
MAX_CURVE_CLASSES = 10  # per-class charts drawn up to this many classes


class HeldOutEvaluation:
    """The held-out rows of a `TrainResult`, and the evaluation section drawn from them."""

    def __init__(self, result: TrainResult) -> None:
        self.r = result
        self.target = result.spec.target
        self.holdout = result.holdout
        self.classes = result.classes
        self.is_classification = result.classes is not None

    # -- held-out data -------------------------------------------------------------------------

    def encoded(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Actual and predicted class indices, and the probability matrix."""
        assert self.classes is not None
        index = {c: i for i, c in enumerate(self.classes)}
        y = self.holdout[self.target].map(index).to_numpy(dtype="float64")
        pred = self.holdout[PREDICTION].map(index).to_numpy(dtype="float64")
        cols = [f"{PROBA}{c}" for c in self.classes]
        proba = (
            self.holdout[cols].to_numpy(dtype="float64")
            if set(cols) <= set(self.holdout.columns)
            else None
        )
        if np.isnan(y).any() or np.isnan(pred).any():
            raise ValueError("held-out labels do not match the model's classes")
        if proba is None:
            raise ValueError("the held-out rows carry no class probabilities")
        return y.astype(int), pred.astype(int), proba

    def regression_values(self) -> tuple[np.ndarray, np.ndarray]:
        y = pd.to_numeric(self.holdout[self.target], errors="coerce").to_numpy(dtype="float64")
        pred = pd.to_numeric(self.holdout[PREDICTION], errors="coerce").to_numpy(dtype="float64")
        return y, pred

    def _metric_rows(self) -> list[dict[str, Any]]:
        r = self.r
        rows = []
        for key, spec in ALL_METRICS.items():
            if key not in r.holdout_metrics:
                continue
            value, base = r.holdout_metrics.get(key), r.baseline_metrics.get(key)
            label = spec.label
            if key == "roc_auc" and r.classes is not None and len(r.classes) > 2:
                label = "ROC AUC (one-vs-rest)"
            rows.append(
                {
                    "key": key,
                    "label": label,
                    "value": value,
                    "baseline": base,
                    "greater": spec.greater_is_better,
                    "primary": key == r.metric.name,
                }
            )
        return rows

    def section_evaluation(self) -> Markup:
        if self.is_classification:
            return self._classification()
        return self._regression()

    def _classification(self) -> Markup:
        r, ev = self.r, self.r.evaluation
        assert self.classes is not None
        labels = [str(c) for c in self.classes]
        cm = np.asarray(r.holdout_metrics["confusion_matrix"], dtype=int)
        per_class = r.holdout_metrics.get("per_class", [])
        row_sums = cm.sum(axis=1, keepdims=True)
        shares = np.divide(cm, np.maximum(row_sums, 1))
        nothing = Markup('<p class="muted">Nothing to chart.</p>')
        return macro(TEMPLATE, "classification")(
            metrics=self._metric_rows(),
            labels=labels,
            cm=cm.tolist(),
            shares=shares.tolist(),
            cm_total=int(cm.sum()),
            n_test=r.n_test,
            per_class=list(zip(labels, per_class, strict=False)),
            roc_chart=roc_chart(ev) or nothing,
            pr_chart=pr_chart(ev) or nothing,
            cal_chart=calibration_chart(ev) or nothing,
            curve_note=ev.curve_note,
            cal_note=str(ev.calibration.get("note") or ""),
            binary=len(labels) == 2,
            baseline_label=self._baseline_label(),
        )

    def _baseline_label(self) -> str:
        for row in self.r.leaderboard:
            if row.get("candidate") and row.get("estimator") == "baseline":
                return str(row.get("label", "constant baseline"))
        return "constant baseline"

    def _regression(self) -> Markup:
        ev = self.r.evaluation
        nothing = Markup('<p class="muted">No values to chart.</p>')
        return macro(TEMPLATE, "regression")(
            metrics=self._metric_rows(),
            scatter=scatter_chart(ev, self.target) or nothing,
            resid_chart=residual_chart(ev) or nothing,
            error_chart=error_chart(ev, self.target) or nothing,
            bins=ev.error_bins,
            n=ev.rows,
            scatter_n=len(ev.scatter.get("actual") or []),
            resid_mean=float(ev.residuals.get("mean") or 0.0),
            resid_std=float(ev.residuals.get("std") or 0.0),
            baseline_label=self._baseline_label(),
            target=self.target,
        )
