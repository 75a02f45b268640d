"""The training report: how the model was chosen, how good it is, what it relies on.

It renders; it computes nothing a model's owner would look up elsewhere. Everything comes from
the `TrainResult` (metrics, leaderboard, search history, held-out rows with their predictions,
from which the curves are drawn) and the `ModelExplanation` that `training.explain` computed
(SHAP values, what preprocessing did). scikit-learn is imported inside the one section that
draws its curves with it.
"""

from __future__ import annotations

import logging
import os
import platform
from importlib import metadata
from typing import TYPE_CHECKING, Any

import numpy as np
from markupsafe import Markup

from tabpilot.engine.reports.charts import (
    Series,
    format_number,
    render_bar_chart,
    render_beeswarm,
    render_line_chart,
)
from tabpilot.engine.reports.evaluation import MAX_CURVE_CLASSES, PREDICTION, HeldOutEvaluation
from tabpilot.engine.reports.page import build_section, macro, render_page
from tabpilot.engine.training.explain import ModelExplanation, estimator_name, model_members

if TYPE_CHECKING:
    from tabpilot.engine.training.train import TrainResult

log = logging.getLogger(__name__)

TEMPLATE = "training.html.j2"
MAX_TRIAL_POINTS = 500  # per estimator, in the search progress chart
SAMPLE_PREDICTIONS = 20
WORST_PREDICTIONS = 10
SHAP_FEATURES = 15

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
    result: TrainResult, explanation: ModelExplanation, *, title: str = "Model"
) -> str:
    """The training report as one self-contained HTML page.

    Args:
        result: what `train` returned.
        explanation: `explain_model(result)`.
        title: what the model is called.
    """
    rep = _Report(result, explanation)
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
        f"Training report · {problem} · target: {result.spec.target} · {result.chosen_description}"
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


class _Report(HeldOutEvaluation):
    def __init__(self, result: TrainResult, explanation: ModelExplanation) -> None:
        super().__init__(result)
        self.explanation = explanation

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

    def _shown_features(self) -> list[str]:
        ranked = [f.feature for f in self.r.importance]
        names = ranked or [f.name for f in self.r.plan.features]
        return [n for n in names if n in self.holdout.columns][:5]

    def section_predictions(self) -> Markup:
        h = self.holdout
        features = self._shown_features()
        n = min(SAMPLE_PREDICTIONS, len(h))
        sample = h.sample(n, random_state=self.r.spec.seed) if n else h
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

    def section_shap(self) -> Markup:
        outcome = self.explanation.contributions
        if isinstance(outcome, Exception):
            raise outcome  # shown as this section's failure
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
        treatment = self.explanation.preprocessing
        by_kind = {kind: text for kind, _, text in self.explanation.kinds}
        features = [
            (f.name, f.kind, treatment.get(f.name, by_kind.get(f.kind, f.kind)))
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
            test_size=r.spec.test_size,
            stratified=stratified,
            seed=r.spec.seed,
            refit=r.refit_on_all_rows,
            decisions=r.decisions,
            kinds=self.explanation.kinds,
        )

    def section_reproducibility(self) -> Markup:
        r = self.r
        options = r.spec.options()
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
            seed=r.spec.seed,
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
