"""What the job pages show, read from the typed nouns: the job's spec (`TrainSpec`), the model
card (`ModelCard`) and the metric table (`engine.choices`). Presentation only: every value here
is already in the job record or the card; nothing is recomputed.

The charts are the reports' server-side SVG (`engine.reports.charts`), drawn from what the card
holds: the confusion matrix (classification), the permutation importance, and the held-out
evaluation training computed (`ModelCard.evaluation`, drawn by `engine.reports.heldout` as in
the training report): ROC, precision-recall and calibration (classification), predicted against
actual and residuals (regression). Cards written before it existed have none; the page then
points to the training report.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from tabpilot.engine.card import ModelCard
from tabpilot.engine.choices import ALL_METRICS, MetricSpec, find_metric
from tabpilot.engine.reports.charts import (
    Series,
    render_bar_chart,
    render_heatmap,
    render_line_chart,
)
from tabpilot.engine.reports.heldout import (
    calibration_chart,
    pr_chart,
    residual_chart,
    roc_chart,
    scatter_chart,
)
from tabpilot.engine.spec import TrainSpec
from tabpilot.engine.wording import format_number
from tabpilot.records import JobEvent, JobRecord

MAX_IMPORTANCE_BARS = 20


@dataclass(frozen=True)
class MetricCard:
    """One held-out metric beside the constant baseline's value."""

    name: str
    label: str
    value: float
    baseline: float | None
    direction: str  # "higher" or "lower" (is better)
    primary: bool

    @property
    def shown(self) -> str:
        return format_number(self.value)

    @property
    def baseline_shown(self) -> str:
        return "" if self.baseline is None else format_number(self.baseline)

    @property
    def verdict(self) -> str:
        """ "better", "worse" or "same" as the baseline ("" without one)."""
        if self.baseline is None:
            return ""
        spec = find_metric(self.name)
        if spec is None or self.value == self.baseline:
            return "same"
        return "better" if spec.better(self.value, self.baseline) else "worse"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def metric_label(spec: MetricSpec, card: ModelCard) -> str:
    """The table's label; ROC AUC on several classes is one-vs-rest, as the card's metric says."""
    if spec.name == card.metric.name and card.metric.label:
        return card.metric.label
    if spec.name == "roc_auc" and card.classes is not None and len(card.classes) > 2:
        return "ROC AUC (one-vs-rest)"
    return spec.label


def metric_cards(card: ModelCard) -> list[MetricCard]:
    """The held-out metrics in the table's order, the one the model was chosen by first."""
    holdout, baseline = card.holdout, card.baseline
    cards = []
    for name, spec in ALL_METRICS.items():
        value = _number(holdout.get(name))
        if value is None:
            continue
        cards.append(
            MetricCard(
                name=name,
                label=metric_label(spec, card),
                value=value,
                baseline=_number(baseline.get(name)),
                direction=spec.direction,
                primary=name == card.metric.name,
            )
        )
    cards.sort(key=lambda c: not c.primary)
    return cards


def searched_rows(card: ModelCard) -> list[dict[str, Any]]:
    """The leaderboard of the search: one row per estimator kind, best first."""
    return [row for row in card.leaderboard if not row.get("candidate")]


def candidate_rows(card: ModelCard) -> list[dict[str, Any]]:
    """The finalists compared after the search (the chosen one has `chosen` set)."""
    return [
        {**row, "chosen": row.get("estimator") == card.chosen.name}
        for row in card.leaderboard
        if row.get("candidate")
    ]


def compared_by_cv(card: ModelCard) -> bool:
    """Whether the finalists were compared by cross-validation (small data) or on held-out rows."""
    return any(row.get("cv_score") is not None for row in candidate_rows(card))


def confusion_chart(card: ModelCard) -> Markup | None:
    """The held-out confusion matrix (rows: actual class, columns: predicted), or None."""
    matrix = card.holdout.get("confusion_matrix")
    if card.classes is None or not isinstance(matrix, list) or not matrix:
        return None
    labels = [str(c) for c in card.classes]
    if len(matrix) != len(labels):
        return None
    top = max((max(row) for row in matrix if row), default=0) or 1
    return render_heatmap(
        labels,
        labels,
        matrix,
        title=f"confusion matrix of {card.target} on the held-out rows",
        vmax=top,
        cell_text=[[format_number(v) for v in row] for row in matrix],
        x_label="predicted",
        y_label="actual",
        max_cell=64,
        width=min(720, 160 + 64 * len(labels)),
    )


def best_score_chart(events: list[JobEvent], metric_label: str) -> Markup | None:
    """The best score so far at each progress report of a finished job (the live page draws
    the same line in static/js/training.js), or None before any trial finished."""
    points = [
        (float(e.data["elapsed"]), float(e.data["best_score"]))
        for e in events
        if e.kind == "progress"
        and _number(e.data.get("elapsed")) is not None
        and _number(e.data.get("best_score")) is not None
    ]
    if not points:
        return None
    return render_line_chart(
        [Series("best so far", [p[0] for p in points], [p[1] for p in points], step=True)],
        title=f"best validation {metric_label} over the run",
        x_label="seconds since the start",
        y_label=metric_label,
        width=640,
        height=240,
    )


def importance_chart(card: ModelCard) -> Markup | None:
    """Permutation importance with its spread, the strongest first, or None."""
    rows = [r for r in card.feature_importance if _number(r.get("importance")) is not None]
    if not rows:
        return None
    rows = sorted(rows, key=lambda r: -float(r["importance"]))[:MAX_IMPORTANCE_BARS]
    return render_bar_chart(
        [str(r.get("feature", "")) for r in rows],
        [float(r["importance"]) for r in rows],
        errors=[_number(r.get("std")) or 0.0 for r in rows],
        title="feature importance",
        x_label=f"drop in {card.metric.label or card.metric.name} when shuffled",
        width=640,
    )


@dataclass(frozen=True)
class Figure:
    """A chart with its element id and caption."""

    id: str
    chart: Markup
    caption: str


def evaluation_figures(card: ModelCard) -> list[Figure]:
    """The held-out evaluation charts the card's data allows ([] for older cards)."""
    ev = card.evaluation
    if card.classes is not None:
        calibration = str(ev.calibration.get("note") or "")
        candidates = [
            ("roc-chart", roc_chart(ev), f"ROC curve on the held-out rows, {ev.curve_note}."),
            ("pr-chart", pr_chart(ev), f"Precision-recall curve, {ev.curve_note}."),
            ("calibration-chart", calibration_chart(ev), f"Calibration: {calibration}."),
        ]
    else:
        sample = len(ev.scatter.get("actual") or [])
        sampled = f" ({sample:,} of {ev.rows:,} rows)" if sample < ev.rows else ""
        residuals = ev.residuals
        q = residuals.get("quantiles") or {}
        spread = (
            f"; 90% of them between {format_number(q['q05'])} and {format_number(q['q95'])}"
            if "q05" in q and "q95" in q
            else ""
        )
        candidates = [
            (
                "scatter-chart",
                scatter_chart(ev, card.target),
                f"Predicted against actual on the held-out rows{sampled}; the line is y = x.",
            ),
            (
                "residuals-chart",
                residual_chart(ev),
                "Residuals (actual − predicted) of the held-out rows: mean "
                f"{format_number(residuals.get('mean'))}, standard deviation "
                f"{format_number(residuals.get('std'))}{spread}.",
            ),
        ]
    return [Figure(i, chart, caption) for i, chart, caption in candidates if chart is not None]


LEADERBOARD_COLUMNS = (
    "stage",
    "estimator",
    "label",
    "validation_score",
    "trials",
    "search_seconds",
    "cv_score",
    "holdout_score",
    "fit_seconds",
    "chosen",
    "config",
)


def _csv_cell(value: Any) -> Any:
    # A cell a spreadsheet would read as a formula is kept as text.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value


def leaderboard_csv(card: ModelCard) -> str:
    """The leaderboard as CSV: the search's rows, then the finalists compared."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(LEADERBOARD_COLUMNS)
    for row in searched_rows(card):
        writer.writerow(
            _csv_cell(v)
            for v in (
                "search",
                row.get("estimator"),
                row.get("label"),
                row.get("validation_score"),
                row.get("trials"),
                row.get("search_seconds"),
                None,
                None,
                None,
                bool(row.get("best")),
                json.dumps(row.get("config") or {}, sort_keys=True),
            )
        )
    for row in candidate_rows(card):
        writer.writerow(
            _csv_cell(v)
            for v in (
                "final",
                row.get("estimator"),
                row.get("label"),
                None,
                None,
                None,
                row.get("cv_score"),
                row.get("holdout_score"),
                row.get("fit_seconds"),
                row["chosen"],
                None,
            )
        )
    return out.getvalue()


@dataclass(frozen=True)
class JobSummary:
    """The job's choices with their reasons, as the training page states them."""

    spec: TrainSpec
    metric_label: str
    greater_is_better: bool | None

    @classmethod
    def of(cls, job: JobRecord) -> JobSummary:
        spec = TrainSpec.from_dict(job.spec)
        metric = find_metric(spec.metric) if spec.metric else None
        return cls(
            spec=spec,
            metric_label=metric.label if metric else (spec.metric or ""),
            greater_is_better=metric.greater_is_better if metric else None,
        )


def duration_seconds(job: JobRecord) -> float | None:
    if job.started_at is None or job.finished_at is None:
        return None
    return max((job.finished_at - job.started_at).total_seconds(), 0.0)
