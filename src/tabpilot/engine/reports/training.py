"""The training report: how the model was chosen, how good it is, what it relies on.

Everything comes from the `TrainResult`: its metrics, leaderboard and search history, and its
held-out rows with their predictions, from which the curves are drawn. SHAP-style
contributions are computed here for LightGBM and XGBoost models, within the time limit.
scikit-learn and the boosting libraries are imported inside the functions that use them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import platform
import time
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from tabpilot.engine.choices import ALL_METRICS
from tabpilot.engine.data.inputs import prepare_frame
from tabpilot.engine.reports.charts import (
    Series,
    format_number,
    render_bar_chart,
    render_beeswarm,
    render_histogram,
    render_line_chart,
    render_scatter,
)
from tabpilot.engine.reports.page import build_section, macro, render_page

if TYPE_CHECKING:
    from tabpilot.engine.training.train import TrainResult

log = logging.getLogger(__name__)

TEMPLATE = "training.html.j2"
PREDICTION = "__prediction__"
PROBA = "__proba__"
MAX_CURVE_CLASSES = 10
MAX_SCATTER = 2000
MAX_TRIAL_POINTS = 500  # per estimator, in the search progress chart
SAMPLE_PREDICTIONS = 20
WORST_PREDICTIONS = 10
MAX_SHAP_ROWS = 1000
SHAP_FEATURES = 15
ERROR_BINS = 10

LIBRARIES = (
    "tabpilot",
    "numpy",
    "pandas",
    "scikit-learn",
    "lightgbm",
    "xgboost",
    "flaml",
    "skl2onnx",
    "onnxruntime",
    "jinja2",
)
PHASES = {
    "profile": "profiling columns",
    "plan": "problem type and column selection",
    "prepare": "split and preprocessing",
    "search": "hyperparameter search",
    "evaluate": "held-out comparison of candidates",
    "importance": "permutation importance",
    "refit": "refit on all rows",
}


def render_training_report(
    result: TrainResult, *, title: str = "Model", time_limit: float = 10.0
) -> str:
    """The training report as one self-contained HTML page.

    Args:
        result: what `train` returned.
        title: what the model is called.
        time_limit: seconds the optional work (SHAP values) may take; the sections that need
            no model calls are always drawn.
    """
    rep = _Report(result, time_limit=time_limit)
    sections = [
        build_section("summary", "Summary", rep.section_summary),
        build_section("leaderboard", "Leaderboard", rep.section_leaderboard),
        build_section("evaluation", "Held-out evaluation", rep.section_evaluation),
        build_section("predictions", "Sample predictions", rep.section_predictions),
        build_section("importance", "Feature importance", rep.section_importance),
        build_section("shap", "SHAP summary", rep.section_shap),
        build_section("decisions", "Data decisions", rep.section_decisions),
        build_section("reproducibility", "Reproducibility", rep.section_reproducibility),
    ]
    problem = str(result.problem.problem_type)
    subtitle = (
        f"Training report · {problem} · target: {result.options.target} · "
        f"{result.chosen_description}"
    )
    return render_page(
        kind="training report", title=title, subtitle=subtitle, sections=sections, notes=[]
    )


def library_versions() -> list[tuple[str, str]]:
    out = []
    for name in LIBRARIES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, "not installed"))
    return out


def estimator_name(est: Any) -> str:
    """What a person calls the model: LightGBM, XGBoost, random forest, ..."""
    est = _unscaled(est)
    cls = type(est).__name__
    steps = getattr(est, "steps", None)
    if steps:  # a scaled linear model is a small pipeline
        cls = type(steps[-1][1]).__name__
    members = model_members(est)
    if len(members) > 1:
        return "ensemble of " + " + ".join(estimator_name(m) for _, m in members)
    for prefix, name in (
        ("LGBM", "LightGBM"),
        ("XGB", "XGBoost"),
        ("RandomForest", "random forest"),
        ("ExtraTrees", "extra trees"),
        ("Logistic", "linear model"),
        ("ElasticNet", "linear model"),
        ("Linear", "linear model"),
    ):
        if cls.startswith(prefix):
            return name
    return cls


def model_members(est: Any) -> list[tuple[str, Any]]:
    """The fitted models inside an ensemble (VotingClassifier/Regressor), or the model itself;
    temperature-scaled models (`engine.calibrate`) are unwrapped to the model they scale."""
    est = _unscaled(est)
    fitted = getattr(est, "estimators_", None)
    names = getattr(est, "estimators", None)
    if isinstance(fitted, list) and isinstance(names, list) and len(fitted) == len(names):
        return [(str(n), _unscaled(m)) for (n, _), m in zip(names, fitted, strict=True)]
    return [("model", est)]


def _unscaled(est: Any) -> Any:
    # By duck type: this module does not import the training libraries.
    if hasattr(est, "temperature") and hasattr(est, "estimator_"):
        return est.estimator_
    return est


def _booster_kind(est: Any) -> str | None:
    module = type(est).__module__.split(".")[0]
    return module if module in ("lightgbm", "xgboost") else None


def output_sources(pre: Any) -> list[str]:
    """For each output column of a fitted ColumnTransformer, the input column it came from."""
    from sklearn.impute import SimpleImputer

    out: list[str] = []
    for name, trans, cols in pre.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        if isinstance(cols, str):  # a text column is selected by name, as a 1-d input
            cols = [cols]
        cols = [str(c) for c in (cols if isinstance(cols, list | tuple) else list(cols))]
        if name == "remainder" and not cols:
            continue
        if isinstance(trans, str) and trans == "passthrough":
            out.extend(cols)
            continue
        if isinstance(trans, SimpleImputer):
            stats = np.asarray(trans.statistics_, dtype="float64")
            keep = trans.keep_empty_features
            out.extend(c for c, s in zip(cols, stats, strict=True) if keep or not math.isnan(s))
            if getattr(trans, "indicator_", None) is not None:
                out.extend(cols[i] for i in trans.indicator_.features_)
            continue
        names = [str(n) for n in trans.get_feature_names_out(cols)]
        if len(cols) == 1:
            out.extend(cols * len(names))
            continue
        for n in names:  # several inputs: match each output name to its input's name
            match = max((c for c in cols if n.startswith(c)), key=len, default=None)
            if match is None:
                raise ValueError(f'cannot tell which column output "{n}" comes from')
            out.append(match)
    return out


@dataclass
class Contributions:
    """Per-feature contributions (SHAP values) of the model on some held-out rows."""

    features: list[str]
    values: np.ndarray  # (classes or 1, rows, features), margin units
    colours: list[np.ndarray | None]  # feature value ranks in [0, 1] for colouring, per feature
    class_names: list[str]
    rows: int
    seconds: float
    engine: str  # which model(s) the values come from
    ensemble: bool = False
    left_out: list[str] = dataclasses.field(default_factory=list)  # members without values


class _Report:
    def __init__(self, result: TrainResult, *, time_limit: float) -> None:
        self.r = result
        self.started = time.perf_counter()
        self.deadline = self.started + max(time_limit, 0.0)
        self.target = result.options.target
        self.holdout = result.holdout
        self.classes = result.classes
        self.is_classification = result.classes is not None

    def left(self) -> float:
        return self.deadline - time.perf_counter()

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

    # -- sections ------------------------------------------------------------------------------

    def section_summary(self) -> Markup:
        r = self.r
        primary = r.holdout_metrics.get("primary", {})
        base = r.baseline_metrics.get("primary", {})
        value, base_value = primary.get("value"), base.get("value")
        better = None
        if value is not None and base_value is not None:
            better = r.metric.better(value, base_value)
        total = float(sum(r.timings.values()))
        removed = sum(int(x.get("rows", 0)) for x in r.rows_removed)
        est = (
            r.model.pipeline.named_steps.get("model")
            if hasattr(r.model.pipeline, "named_steps")
            else None
        )
        top = [f.feature for f in r.importance if f.importance > 0][:3]
        return macro(TEMPLATE, "summary")(
            r=r,
            problem=str(r.problem.problem_type),
            metric_label=r.metric.label,
            greater=r.metric.greater_is_better,
            value=value,
            base_value=base_value,
            better=better,
            total=total,
            removed=removed,
            estimator="ensemble"
            if est is not None and len(model_members(est)) > 1
            else estimator_name(est if est is not None else r.model.pipeline),
            n_features=len(r.plan.features),
            n_dropped=len(r.plan.dropped),
            top=top,
        )

    def section_leaderboard(self) -> Markup:
        r = self.r
        searched = [row for row in r.leaderboard if not row.get("candidate")]
        candidates = [row for row in r.leaderboard if row.get("candidate")]
        chart = None
        history = [h for h in r.search_history if h.get("at") is not None]
        if history:
            history.sort(key=lambda h: h["at"])
            best_x = [h["at"] for h in history if h.get("best_score") is not None]
            best_y = [h["best_score"] for h in history if h.get("best_score") is not None]
            series = []
            if best_x:
                # Extend the best line to the last trial so the final plateau shows.
                series.append(Series("best so far", best_x, best_y, step=True, colour=0))
            names = list(dict.fromkeys(h["estimator"] for h in history))
            labels = {row["estimator"]: row.get("label", row["estimator"]) for row in searched}
            for i, name in enumerate(names):
                pts = [h for h in history if h["estimator"] == name and h.get("score") is not None]
                if len(pts) > MAX_TRIAL_POINTS:  # long searches: an even subset of the dots
                    keep = np.linspace(0, len(pts) - 1, MAX_TRIAL_POINTS).round().astype(int)
                    pts = [pts[i] for i in np.unique(keep)]
                series.append(
                    Series(
                        f"{labels.get(name, name)} trial",
                        [h["at"] for h in pts],
                        [h["score"] for h in pts],
                        points=True,
                        colour=i + 1,
                        tooltips=[
                            f"{labels.get(name, name)} at {h['at']:.1f} s: "
                            f"{format_number(h['score'])}"
                            for h in pts
                        ],
                    )
                )
            chart = render_line_chart(
                series,
                title="best validation score over the search",
                x_label="seconds since the search began",
                y_label=f"validation {r.metric.label}",
                width=720,
                height=320,
            )
        return macro(TEMPLATE, "leaderboard")(
            searched=searched,
            candidates=candidates,
            chosen=r.chosen,
            metric_label=r.metric.label,
            greater=r.metric.greater_is_better,
            chart=chart,
            n_trials=len(r.search_history),
        )

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
        rng = np.random.default_rng(self.r.options.seed)
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

    def _shown_features(self) -> list[str]:
        ranked = [f.feature for f in self.r.importance]
        names = ranked or [f.name for f in self.r.plan.features]
        return [n for n in names if n in self.holdout.columns][:5]

    def section_predictions(self) -> Markup:
        h = self.holdout
        features = self._shown_features()
        n = min(SAMPLE_PREDICTIONS, len(h))
        sample = h.sample(n, random_state=self.r.options.seed) if n else h
        if self.is_classification:
            y, pred, proba = self.encoded()
            pos = {ix: i for i, ix in enumerate(h.index)}
            confidence = proba.max(axis=1)
            wrong = np.flatnonzero(y != pred)
            worst = wrong[np.argsort(-confidence[wrong], kind="stable")][:WORST_PREDICTIONS]

            def rows_of(positions: list[int]) -> list[dict[str, Any]]:
                return [
                    {
                        "row": h.index[i],
                        "actual": h[self.target].iloc[i],
                        "predicted": h[PREDICTION].iloc[i],
                        "confidence": float(proba[i, pred[i]]),
                        "actual_proba": float(proba[i, y[i]]),
                        "correct": bool(y[i] == pred[i]),
                        "values": [h[f].iloc[i] for f in features],
                    }
                    for i in positions
                ]

            return macro(TEMPLATE, "predictions_classification")(
                rows=rows_of([pos[ix] for ix in sample.index]),
                worst=rows_of([int(i) for i in worst]),
                features=features,
                n_wrong=len(wrong),
                n=len(h),
            )
        y, pred = self.regression_values()
        err = pred - y
        order = np.argsort(-np.nan_to_num(np.abs(err), nan=-1.0), kind="stable")
        pos = {ix: i for i, ix in enumerate(h.index)}

        def reg_rows(positions: list[int]) -> list[dict[str, Any]]:
            return [
                {
                    "row": h.index[i],
                    "actual": y[i],
                    "predicted": pred[i],
                    "error": err[i],
                    "values": [h[f].iloc[i] for f in features],
                }
                for i in positions
            ]

        return macro(TEMPLATE, "predictions_regression")(
            rows=reg_rows([pos[ix] for ix in sample.index]),
            worst=reg_rows([int(i) for i in order[:WORST_PREDICTIONS]]),
            features=features,
            n=len(h),
        )

    def section_importance(self) -> Markup:
        r = self.r
        imp = r.importance
        kinds = {f.name: f.kind for f in r.plan.features}
        chart = None
        if imp:
            shown = imp[:40]
            chart = render_bar_chart(
                [f.feature for f in shown],
                [f.importance for f in shown],
                errors=[f.std for f in shown],
                title="permutation importance",
                x_label=f"drop in {r.metric.label} when the column is shuffled",
                width=720,
            )
        return macro(TEMPLATE, "importance")(
            rows=[(f.feature, kinds.get(f.feature, ""), f.importance, f.std) for f in imp],
            chart=chart,
            note=r.importance_note,
            metric_label=r.metric.label,
            truncated=len(imp) > 40,
        )

    def compute_contributions(self) -> Contributions | str:
        """SHAP values of the model on held-out rows, or why there are none."""
        r = self.r
        steps = getattr(r.model.pipeline, "named_steps", {})
        pre, est = steps.get("pre"), steps.get("model")
        if pre is None or est is None:
            return "the model is not a preprocessing + estimator pipeline."
        if r.chosen == "baseline":
            return "the chosen model is the constant baseline; it uses no feature."
        members = model_members(est)
        supported = [(name, m) for name, m in members if _booster_kind(m) is not None]
        if not supported:
            names = ", ".join(estimator_name(m) for _, m in members)
            return (
                "exact tree contributions are computed for LightGBM and XGBoost models; the "
                f"chosen model is {names}. The permutation importance above covers every model."
            )
        if self.left() < 0.5:
            return "the report's time limit was used up before this section."
        started = time.perf_counter()
        raw = self.holdout
        if len(raw) > MAX_SHAP_ROWS:
            raw = raw.sample(MAX_SHAP_ROWS, random_state=r.options.seed)
        X = prepare_frame(raw, r.model.features)
        Xt = np.asarray(pre.transform(X), dtype="float64")
        sources = output_sources(pre)
        n_out = Xt.shape[1]
        if len(sources) != n_out:
            raise ValueError(f"{n_out} model inputs but {len(sources)} mapped to columns")
        n_classes = len(r.classes) if r.classes is not None else 1

        def contribs(m: Any, rows: np.ndarray) -> np.ndarray:
            """(classes or 1, rows, inputs): margin contributions, bias term dropped."""
            if _booster_kind(m) == "lightgbm":
                values = np.asarray(m.booster_.predict(rows, pred_contrib=True))
            else:
                import xgboost

                values = np.asarray(
                    m.get_booster().predict(xgboost.DMatrix(rows), pred_contribs=True)
                )
            if values.ndim == 3:  # XGBoost multiclass: (rows, classes, inputs + 1)
                return values[:, :, :n_out].transpose(1, 0, 2)
            if n_classes > 2 and values.shape[1] == (n_out + 1) * n_classes:
                per = values.reshape(len(values), n_classes, n_out + 1)[:, :, :n_out]
                return per.transpose(1, 0, 2)
            return values[None, :, :n_out]

        # Time a small batch first, and take only as many rows as the time left allows.
        probe = min(50, len(Xt))
        t = time.perf_counter()
        firsts = [contribs(m, Xt[:probe]) for _, m in supported]
        per_row = (time.perf_counter() - t) / max(probe, 1)
        affordable = int(max(self.left() * 0.8, 0) / max(per_row, 1e-6))
        if affordable < probe:
            return "the report's time limit ran out while computing contributions."
        n_rows = min(len(Xt), affordable)
        parts = []
        for (_, m), first in zip(supported, firsts, strict=True):
            rest = contribs(m, Xt[probe:n_rows]) if n_rows > probe else None
            parts.append(first if rest is None else np.concatenate([first, rest], axis=1))
        per_class = np.mean(parts, axis=0)  # the members' average, as the ensemble averages
        # Input columns -> the user's columns (a datetime column's parts add up).
        owner = {c: f.name for f in r.model.features for c, _ in f.input_columns()}
        features = [f.name for f in r.model.features]
        col_index = {name: j for j, name in enumerate(features)}
        mapping = np.zeros((n_out, len(features)))
        for i, src in enumerate(sources):
            mapping[i, col_index[owner.get(src, src)]] = 1.0
        by_feature = per_class @ mapping  # (classes, rows, features)
        colours: list[np.ndarray | None] = []
        shown = X.iloc[:n_rows]
        for spec in r.model.features:
            cols = [c for c, _ in spec.input_columns()]
            if spec.kind == "categorical":
                colours.append(None)
                continue
            col = cols[-1] if spec.kind == "datetime" else cols[0]
            v = pd.to_numeric(shown[col], errors="coerce")
            colours.append(v.rank(pct=True).to_numpy(dtype="float64"))
        class_names = [str(c) for c in r.classes] if r.classes is not None else [self.target]
        if per_class.shape[0] == 1 and r.classes is not None:
            class_names = [str(r.classes[-1])]
        covered = [estimator_name(m) for _, m in supported]
        left_out = [estimator_name(m) for _, m in members if _booster_kind(m) is None]
        return Contributions(
            features=features,
            values=by_feature,
            colours=colours,
            class_names=class_names,
            rows=n_rows,
            seconds=time.perf_counter() - started,
            engine=" and ".join(dict.fromkeys(covered)),
            ensemble=len(members) > 1,
            left_out=left_out,
        )

    def section_shap(self) -> Markup:
        outcome = self.compute_contributions()
        if isinstance(outcome, str):
            return macro(TEMPLATE, "shap_skipped")(reason=outcome)
        c = outcome
        mean_abs = np.abs(c.values).mean(axis=1)  # (classes, features)
        total = mean_abs.sum(axis=0)
        order = [int(j) for j in np.argsort(-total, kind="stable")][:SHAP_FEATURES]
        bar = render_bar_chart(
            [c.features[j] for j in order],
            [float(total[j]) for j in order],
            title="mean absolute contribution",
            x_label="mean |contribution|" + (" summed over classes" if len(c.values) > 1 else ""),
            width=720,
        )
        swarm = None
        if len(c.values) == 1:
            swarm = render_beeswarm(
                [c.features[j] for j in order],
                [c.values[0][:, j] for j in order],
                [c.colours[j] for j in order],
                title="contribution of each column, one point per held-out row",
                x_label=self._shap_unit(),
            )
        per_class = None
        if 1 < len(c.values) <= MAX_CURVE_CLASSES:
            per_class = [
                (c.features[j], [float(mean_abs[k, j]) for k in range(len(c.values))])
                for j in order
            ]
        return macro(TEMPLATE, "shap")(
            bar=bar,
            swarm=swarm,
            per_class=per_class,
            class_names=c.class_names,
            rows=c.rows,
            seconds=c.seconds,
            engine=c.engine,
            ensemble=c.ensemble,
            left_out=c.left_out,
            classification=self.is_classification,
            unit=self._shap_unit(),
            positive=c.class_names[0] if len(c.values) == 1 and self.is_classification else None,
        )

    def _shap_unit(self) -> str:
        if not self.is_classification:
            return f"contribution to the predicted {self.target}"
        return "contribution to the log-odds"

    def section_decisions(self) -> Markup:
        r = self.r
        pre = getattr(r.model.pipeline, "named_steps", {}).get("pre")
        treatment = describe_preprocessing(pre, r.model.features) if pre is not None else {}
        features = [
            (f.name, f.kind, treatment.get(f.name, _default_treatment(f.kind)))
            for f in r.plan.features
        ]
        stratified = r.classes is not None
        return macro(TEMPLATE, "decisions")(
            features=features,
            dropped=r.plan.dropped,
            warnings=r.plan.warnings,
            rows_removed=r.rows_removed,
            removed_total=sum(int(x.get("rows", 0)) for x in r.rows_removed),
            n_rows=r.n_rows,
            n_train=r.n_train,
            n_test=r.n_test,
            test_size=r.options.test_size,
            stratified=stratified,
            seed=r.options.seed,
            refit=r.refit_on_all_rows,
            decisions=r.decisions,
            kinds=_kind_summary(r.plan.features),
        )

    def section_reproducibility(self) -> Markup:
        r = self.r
        options = dataclasses.asdict(r.options)
        timings = [(PHASES.get(k, k), float(v)) for k, v in r.timings.items()]
        chart = (
            render_bar_chart(
                [k for k, _ in timings],
                [v for _, v in timings],
                title="seconds per phase",
                x_label="seconds",
                width=640,
                value_labels=[f"{v:.2f} s" for _, v in timings],
            )
            if timings
            else None
        )
        return macro(TEMPLATE, "reproducibility")(
            options=[(k, v) for k, v in options.items()],
            seed=r.options.seed,
            budget=r.budget,
            budget_reason=r.budget_reason,
            metric=r.metric,
            versions=library_versions(),
            python=platform.python_version(),
            system=f"{platform.system()} {platform.release()} ({platform.machine()})",
            cpus=os.cpu_count() or 1,
            timings=timings,
            total=sum(v for _, v in timings),
            chart=chart,
            params=sorted((r.estimator_params or {}).items()),
            estimator=type(r.model.pipeline.named_steps["model"]).__name__
            if hasattr(r.model.pipeline, "named_steps")
            else "",
        )


def _default_treatment(kind: str) -> str:
    return {
        "numeric": "used as a number",
        "boolean": "true/false as 1/0",
        "categorical": "encoded as categories",
        "datetime": "split into date parts",
    }.get(kind, kind)


def _kind_summary(features: list[Any]) -> list[tuple[str, int, str]]:
    text = {
        "numeric": "missing values filled with the training median, plus a 0/1 column "
        "flagging the rows that were missing (where the training rows had gaps)",
        "boolean": "read as 1/0 (true/yes/1 → 1); missing values filled like numbers",
        "categorical": "one-hot encoded when there are at most 12 frequent categories, "
        "otherwise one integer code per category; categories with too few training rows "
        "share the code of unseen values; missing is a category of its own",
        "datetime": "split into year, month, day, day of week, day of year and days since "
        "1970 (plus hour and minute when times are present), then treated as numbers",
    }
    counts: dict[str, int] = {}
    for f in features:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    return [(k, n, text.get(k, "")) for k, n in counts.items()]


def describe_preprocessing(pre: Any, features: list[Any]) -> dict[str, str]:
    """What the fitted preprocessor does to each of the user's columns."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    owner = {c: f.name for f in features for c, _ in f.input_columns()}
    kinds = {f.name: f.kind for f in features}
    out: dict[str, str] = {}
    for _name, trans, cols in getattr(pre, "transformers_", []):
        if isinstance(trans, str):
            continue
        cols = [str(c) for c in cols]
        if isinstance(trans, SimpleImputer):
            flagged = set()
            if getattr(trans, "indicator_", None) is not None:
                flagged = {cols[i] for i in trans.indicator_.features_}
            for c, stat in zip(cols, trans.statistics_, strict=True):
                feat = owner.get(c, c)
                if feat in out:
                    continue
                kind = kinds.get(feat, "numeric")
                if kind == "datetime":
                    out[feat] = "split into date parts; gaps filled with the median"
                    continue
                base = "read as 1/0" if kind == "boolean" else "used as a number"
                if math.isnan(float(stat)):
                    out[feat] = "all training values missing: left out"
                elif c in flagged:
                    out[feat] = (
                        f"{base}; gaps filled with the median ({format_number(float(stat))}) "
                        "plus a missing-value flag"
                    )
                else:
                    out[feat] = f"{base}; no gaps in the training rows"
        elif isinstance(trans, OneHotEncoder):
            n = len(trans.categories_[0])
            out[owner.get(cols[0], cols[0])] = f"one-hot encoded ({n} categories)"
        elif isinstance(trans, OrdinalEncoder):
            n = len(trans.categories_[0])
            out[owner.get(cols[0], cols[0])] = (
                f"integer codes ({n} frequent categories; the rest share one code)"
            )
    for f in features:
        if f.name not in out and f.kind == "categorical":
            out[f.name] = "left out: every category too rare to learn from"
    return out
