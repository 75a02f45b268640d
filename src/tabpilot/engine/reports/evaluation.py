"""The training report's held-out evaluation: the metric table, and the curves (ROC,
precision-recall, calibration) or the error charts, drawn from the held-out rows and their
predictions. A base of the report class, so that its sections can use the held-out rows too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from tabpilot.engine.choices import ALL_METRICS
from tabpilot.engine.reports.charts import (
    Series,
    format_number,
    render_bar_chart,
    render_histogram,
    render_line_chart,
    render_scatter,
)
from tabpilot.engine.reports.page import macro

if TYPE_CHECKING:
    from tabpilot.engine.training.train import TrainResult

TEMPLATE = "training.html.j2"
PREDICTION = "__prediction__"
PROBA = "__proba__"
MAX_CURVE_CLASSES = 10
MAX_SCATTER = 2000
ERROR_BINS = 10


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
        from sklearn.calibration import calibration_curve
        from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

        r = self.r
        assert self.classes is not None
        labels = [str(c) for c in self.classes]
        y, pred, proba = self.encoded()
        cm = np.asarray(r.holdout_metrics["confusion_matrix"], dtype=int)
        per_class = r.holdout_metrics.get("per_class", [])
        binary = len(labels) == 2
        if binary:
            curve_classes = [1]
            curve_note = f'for the positive class "{labels[1]}"'
        else:
            support = np.bincount(y, minlength=len(labels))
            curve_classes = [
                int(i) for i in np.argsort(-support, kind="stable")[:MAX_CURVE_CLASSES]
            ]
            curve_classes.sort()
            curve_note = "one class against the rest"
            if len(labels) > MAX_CURVE_CLASSES:
                curve_note += f", for the {MAX_CURVE_CLASSES} largest of {len(labels)} classes"
        roc, pr, cal = [], [], []
        for k in curve_classes:
            truth = (y == k).astype(int)
            if truth.min() == truth.max():
                continue
            fpr, tpr, _ = roc_curve(truth, proba[:, k])
            roc.append(Series(f"{labels[k]} (AUC {auc(fpr, tpr):.3f})", fpr, tpr, colour=k))
            precision, recall, _ = precision_recall_curve(truth, proba[:, k])
            ap = average_precision_score(truth, proba[:, k])
            pr.append(Series(f"{labels[k]} (AP {ap:.3f})", recall, precision, colour=k))
        if binary:
            truth, score, cal_name = (y == 1).astype(int), proba[:, 1], f"P({labels[1]})"
            cal_note = f'the predicted probability of "{labels[1]}" against how often it is'
        else:
            # Top-label calibration: the confidence in the predicted class against accuracy.
            truth, score = (pred == y).astype(int), proba.max(axis=1)
            cal_name = "P(predicted class)"
            cal_note = "the probability of the predicted class against how often it is right"
        if truth.min() != truth.max():
            prob_true, prob_pred = calibration_curve(truth, score, n_bins=10, strategy="quantile")
            cal.append(Series(cal_name, prob_pred, prob_true, colour=0))
            cal.append(Series(cal_name, prob_pred, prob_true, points=True, colour=0, legend=False))
        unit = (0.0, 1.0)
        roc_chart = render_line_chart(
            roc,
            title="ROC curve",
            x_label="false positive rate",
            y_label="true positive rate",
            x_range=unit,
            y_range=unit,
            diagonal=True,
        )
        pr_chart = render_line_chart(
            pr,
            title="precision-recall curve",
            x_label="recall",
            y_label="precision",
            x_range=unit,
            y_range=(0.0, 1.02),
        )
        cal_chart = render_line_chart(
            [s for s in cal if not s.points] + [s for s in cal if s.points],
            title="calibration",
            x_label="mean predicted probability",
            y_label="observed frequency",
            x_range=unit,
            y_range=unit,
            diagonal=True,
        )
        row_sums = cm.sum(axis=1, keepdims=True)
        shares = np.divide(cm, np.maximum(row_sums, 1))
        return macro(TEMPLATE, "classification")(
            metrics=self._metric_rows(),
            labels=labels,
            cm=cm.tolist(),
            shares=shares.tolist(),
            cm_total=int(cm.sum()),
            n_test=r.n_test,
            per_class=list(zip(labels, per_class, strict=False)),
            roc_chart=roc_chart,
            pr_chart=pr_chart,
            cal_chart=cal_chart,
            curve_note=curve_note,
            cal_note=cal_note,
            binary=binary,
            baseline_label=self._baseline_label(),
        )

    def _baseline_label(self) -> str:
        for row in self.r.leaderboard:
            if row.get("candidate") and row.get("estimator") == "baseline":
                return str(row.get("label", "constant baseline"))
        return "constant baseline"

    def _regression(self) -> Markup:
        y, pred = self.regression_values()
        ok = np.isfinite(y) & np.isfinite(pred)
        y, pred = y[ok], pred[ok]
        rng = np.random.default_rng(self.r.spec.seed)
        idx = np.arange(len(y))
        if len(idx) > MAX_SCATTER:
            idx = np.sort(rng.choice(idx, MAX_SCATTER, replace=False))
        scatter = render_scatter(
            y[idx],
            pred[idx],
            title="predicted against actual",
            x_label=f"actual {self.target}",
            y_label="predicted",
            diagonal=True,
            width=460,
            height=360,
        )
        residuals = y - pred
        counts, edges = np.histogram(residuals, bins=30)
        resid_chart = render_histogram(
            edges,
            counts,
            title="residuals",
            x_label="actual − predicted",
            width=460,
            height=250,
        )
        # Error by target range: quantile bins of the actual value.
        cuts = np.unique(np.quantile(y, np.linspace(0, 1, ERROR_BINS + 1)))
        bins = []
        if len(cuts) >= 2:
            which = np.clip(np.searchsorted(cuts, y, side="right") - 1, 0, len(cuts) - 2)
            for b in range(len(cuts) - 1):
                sel = which == b
                if not sel.any():
                    continue
                err = pred[sel] - y[sel]
                bins.append(
                    {
                        "lo": float(cuts[b]),
                        "hi": float(cuts[b + 1]),
                        "rows": int(sel.sum()),
                        "actual": float(y[sel].mean()),
                        "predicted": float(pred[sel].mean()),
                        "mae": float(np.abs(err).mean()),
                        "bias": float(err.mean()),
                    }
                )
        error_chart = render_bar_chart(
            [f"{format_number(b['lo'])} – {format_number(b['hi'])}" for b in bins],
            [b["mae"] for b in bins],
            title="mean absolute error by range of the actual value",
            x_label=f"mean absolute error ({self.target})",
            width=560,
        )
        return macro(TEMPLATE, "regression")(
            metrics=self._metric_rows(),
            scatter=scatter,
            resid_chart=resid_chart,
            error_chart=error_chart,
            bins=bins,
            n=len(y),
            scatter_n=len(idx),
            resid_mean=float(residuals.mean()) if len(residuals) else 0.0,
            resid_std=float(residuals.std()) if len(residuals) else 0.0,
            baseline_label=self._baseline_label(),
            target=self.target,
        )
