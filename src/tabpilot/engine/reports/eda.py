"""The EDA report: what a dataset looks like, before any model is trained.

It renders a `DataSummary` (`engine.data.summary`), which computes the statistics and the
data-quality warnings; the charts are drawn here from its sample. numpy and pandas only: the
API process renders this report for an uploaded dataset and must never import the training
libraries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from markupsafe import Markup

from tabpilot.engine.data.association import ASSOC_BINS, ASSOC_TOP, is_number
from tabpilot.engine.data.profiling import ColumnKind, ColumnProfile
from tabpilot.engine.data.quality import KINDS, group_warnings, worst_severity
from tabpilot.engine.data.summary import STRONG_CORRELATION, DataSummary
from tabpilot.engine.reports.charts import (
    format_number,
    render_bar_chart,
    render_heatmap,
    render_histogram,
)
from tabpilot.engine.reports.page import build_section, macro, render_page
from tabpilot.engine.wording import format_share

log = logging.getLogger(__name__)

HIST_BINS = 30
MAX_CHARTED_COLUMNS = 300  # beyond this, columns are listed without a chart each
MAX_LISTED = 40  # columns listed per kind of warning
MAX_CLASS_BARS = 50

TEMPLATE = "eda.html.j2"


def render_eda_report(summary: DataSummary, *, title: str = "Dataset") -> str:
    """The EDA report as one self-contained HTML page.

    Args:
        summary: `summarize_data(frame, profile, ...)`.
        title: what the data is called (e.g. the file name).
    """
    eda = _Eda(summary)
    sections = [
        build_section("overview", "Overview", eda.section_overview),
        build_section("warnings", "Data quality warnings", eda.section_warnings),
        build_section("target", "Target analysis", eda.section_target),
        build_section("columns", "Columns", eda.section_columns),
        build_section("correlations", "Correlations", eda.section_correlations),
        build_section("association", "Association with the target", eda.section_association),
    ]
    profile = summary.profile
    notes = list(summary.notes)
    if summary.sampled:
        notes.append(
            f"Statistics use all {profile.n_rows:,} rows; charts, correlations and associations "
            f"use a random sample of {len(summary.sample):,} rows."
        )
    subtitle = f"Exploratory data analysis · {profile.n_rows:,} rows × {profile.n_columns} columns"
    if summary.target is not None:
        subtitle += f" · target: {summary.target}"
    return render_page(
        kind="EDA report", title=title, subtitle=subtitle, sections=sections, notes=notes
    )


def _days_to_text(days: float) -> str:
    try:
        return (pd.Timestamp("1970-01-01") + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d")
    except (ValueError, OverflowError):
        return format_number(days)


@dataclass
class _WarningGroup:
    """One kind of warning as the page lists it."""

    id: str
    title: str
    severity: str  # crit | warn | info
    explain: str
    items: list[tuple[str, str]]


class _Eda:
    def __init__(self, summary: DataSummary) -> None:
        self.s = summary
        self.profile = summary.profile
        self.target = summary.target

    # -- sections ------------------------------------------------------------------------------

    def section_overview(self) -> Markup:
        s = self.s
        return macro(TEMPLATE, "overview")(
            p=self.profile,
            has_plan=s.plan is not None,
            plan_is_preview=s.plan_is_preview,
            **s.overview(),
        )

    def section_warnings(self) -> Markup:
        groups = []
        for kind, found in group_warnings(self.s.warnings):
            items = [(w.column or "all rows", w.detail) for w in found]
            if len(items) > MAX_LISTED:
                rest = len(items) - MAX_LISTED
                items = [*items[:MAX_LISTED], ("…", f"and {rest} more column(s)")]
            info = KINDS.get(kind)
            groups.append(
                _WarningGroup(
                    id=kind,
                    title=info.title if info else kind,
                    severity=worst_severity(found),
                    explain=info.explanation if info else "",
                    items=items,
                )
            )
        return macro(TEMPLATE, "warnings")(warnings=groups)

    def section_target(self) -> Markup:
        s = self.s
        if self.target is None:
            return macro(TEMPLATE, "no_target")()
        col = s.columns[self.target]
        dist = s.target_distribution()
        if s.problem is not None and not s.is_classification:
            sample_values = pd.to_numeric(s.sample[self.target], errors="coerce").dropna()
            chart = self._numeric_histogram(
                sample_values.to_numpy(dtype="float64"),
                col,
                title=f"distribution of {self.target}",
                width=640,
                height=220,
            )
            return macro(TEMPLATE, "target_regression")(
                name=self.target,
                col=col,
                problem=s.problem,
                quantiles=[(_quantile_name(q), v) for q, v in dist.quantiles],
                mean=dist.mean,
                std=dist.std,
                skew=dist.skew,
                chart=chart,
            )
        shown = dist.classes[:MAX_CLASS_BARS]
        chart = render_bar_chart(
            [label for label, _, _ in shown],
            np.array([count for _, count, _ in shown], dtype="float64"),
            width=480,
            title=f"class balance of {self.target}",
            x_label="rows",
            value_labels=[f"{count:,} ({share:.1%})" for _, count, share in shown],
        )
        return macro(TEMPLATE, "target_classes")(
            name=self.target,
            col=col,
            problem=s.problem,
            problem_error=s.problem_error,
            classes=dist.classes,
            ratio=dist.ratio,
            chart=chart,
            truncated=len(dist.classes) > len(shown),
        )

    def _numeric_histogram(
        self,
        values: np.ndarray,
        col: ColumnProfile,
        *,
        title: str,
        width: int = 360,
        height: int = 170,
    ) -> Markup:
        values = values[np.isfinite(values)]
        if not len(values):
            return Markup('<p class="muted">No values to chart.</p>')
        lo, hi = float(values.min()), float(values.max())
        if col.integer_valued and hi - lo <= 40:
            edges = np.arange(lo - 0.5, hi + 1.5)
        elif hi == lo:
            edges = np.array([lo - 0.5, lo + 0.5])
        else:
            edges = np.linspace(lo, hi, HIST_BINS + 1)
        counts, edges = np.histogram(values, bins=edges)
        return render_histogram(
            edges, counts, title=title, width=width, height=height, x_label=col.name
        )

    def column_chart(self, col: ColumnProfile) -> Markup:
        name = col.name
        series = self.s.sample[name]
        if col.kind in (ColumnKind.NUMERIC, ColumnKind.IDENTIFIER) and is_number(series):
            values = series.to_numpy(dtype="float64", na_value=np.nan)
            return self._numeric_histogram(values, col, title=f"distribution of {name}")
        if col.kind == ColumnKind.DATETIME:
            parsed = (
                series
                if pd.api.types.is_datetime64_any_dtype(series)
                else pd.to_datetime(series, errors="coerce", format="mixed")
            )
            if getattr(parsed.dt, "tz", None) is not None:
                parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
            days = ((parsed - pd.Timestamp("1970-01-01")).dt.total_seconds() / 86400.0).dropna()
            values = days.to_numpy(dtype="float64")
            if not len(values):
                return Markup('<p class="muted">No dates to chart.</p>')
            counts, edges = np.histogram(values, bins=HIST_BINS)
            return render_histogram(
                edges,
                counts,
                title=f"distribution of {name}",
                x_label=name,
                x_tick_format=_days_to_text,
            )
        if not col.top_values:
            return Markup('<p class="muted">No values to chart.</p>')
        labels = [v for v, _ in col.top_values]
        counts = [c for _, c in col.top_values]
        present = self.profile.n_rows - col.n_missing
        rest = present - sum(counts)
        value_labels = [f"{c:,} ({format_share(c / max(present, 1))})" for c in counts]
        if rest > 0:
            labels.append(f"other ({col.n_distinct - len(col.top_values):,} values)")
            counts.append(rest)
            value_labels.append(f"{rest:,} ({format_share(rest / max(present, 1))})")
        return render_bar_chart(
            labels,
            counts,
            title=f"most common values of {name}",
            width=440,
            value_labels=value_labels,
            highlight=[i == len(col.top_values) for i in range(len(labels))],
        )

    def column_stats(self, col: ColumnProfile) -> list[tuple[str, str]]:
        s = col.stats
        rows: list[tuple[str, str]] = []
        if "mean" in s:
            rows += [
                ("mean", format_number(s["mean"])),
                ("std", format_number(s["std"])),
                ("min", format_number(s["min"])),
                ("5%", format_number(s["p05"])),
                ("25%", format_number(s["p25"])),
                ("median", format_number(s["median"])),
                ("75%", format_number(s["p75"])),
                ("95%", format_number(s["p95"])),
                ("max", format_number(s["max"])),
                ("skewness", f"{s['skew']:+.2f}"),
                ("zeros", f"{s['zeros']:.1%}"),
            ]
            if col.name in self.s.outliers:
                cnt = self.s.outliers[col.name][0]
                rows.append(
                    (
                        "outliers (IQR)",
                        f"{cnt:,} ({format_share(cnt / max(self.profile.n_rows, 1))})",
                    )
                )
        elif "mean_length" in s and col.kind != ColumnKind.BOOLEAN:
            rows += [
                ("mean length", format_number(s["mean_length"], 3)),
                ("max length", format_number(s["max_length"])),
            ]
        elif "min" in s:
            rows += [("first", str(s["min"])), ("last", str(s["max"]))]
        if col.top_values and "mean" not in s:
            v, c = col.top_values[0]
            rows.append(("most common", f'"{v}" ({c / max(self.profile.n_rows, 1):.1%})'))
        return rows

    def section_columns(self) -> Markup:
        entries = []
        for i, col in enumerate(self.profile.columns):
            status, why = self.s.usage(col.name)
            chart: Markup | None = None
            chart_error = None
            if i < MAX_CHARTED_COLUMNS:
                try:
                    chart = self.column_chart(col)
                except Exception as exc:  # one column's chart must not sink the section
                    chart_error = f"{type(exc).__name__}: {exc}"
            entries.append(
                {
                    "col": col,
                    "anchor": f"col-{i}",
                    "status": status,
                    "why": why,
                    "stats": self.column_stats(col),
                    "chart": chart,
                    "chart_error": chart_error,
                }
            )
        return macro(TEMPLATE, "columns")(
            entries=entries,
            n_rows=self.profile.n_rows,
            charted=min(len(entries), MAX_CHARTED_COLUMNS),
            has_plan=self.s.plan is not None,
            plan_is_preview=self.s.plan_is_preview,
        )

    def section_correlations(self) -> Markup:
        c = self.s.correlations()
        pearson_chart = None
        if c.pearson is not None:
            pearson_chart = render_heatmap(
                c.numeric,
                c.numeric,
                c.pearson,
                title="Pearson correlation of numeric columns",
                vmax=1.0,
            )
        assoc_chart = None
        if c.cramers is not None:
            assoc_chart = render_heatmap(
                c.mixed,
                c.mixed,
                c.cramers,
                title="Cramér's V between columns of any kind",
                vmax=1.0,
            )
        return macro(TEMPLATE, "correlations")(
            pearson_chart=pearson_chart,
            pearson_pairs=c.numeric_pairs,
            numeric_note=c.numeric_note,
            n_numeric=len(c.numeric),
            assoc_chart=assoc_chart,
            assoc_pairs=c.mixed_pairs,
            mixed_note=c.mixed_note,
            threshold=STRONG_CORRELATION,
            sample_rows=len(self.s.sample),
            sampled=self.s.sampled,
        )

    def section_association(self) -> Markup:
        if self.target is None:
            return macro(TEMPLATE, "no_target")()
        rows, h_y = self.s.association()
        chart = render_bar_chart(
            [r["name"] for r in rows[:40]],
            [r["mi"] for r in rows[:40]],
            title=f"mutual information with {self.target}",
            x_label="mutual information (nats)",
            value_labels=[f"{r['mi']:.3f}" for r in rows[:40]],
            highlight=[r["status"] == "dropped" for r in rows[:40]],
        )
        return macro(TEMPLATE, "association")(
            rows=rows,
            chart=chart,
            target=self.target,
            entropy=h_y,
            regression=self.s.problem is not None and not self.s.is_classification,
            bins=ASSOC_BINS,
            top=ASSOC_TOP,
            sample_rows=len(self.s.sample),
            sampled=self.s.sampled,
        )


def _quantile_name(q: float) -> str:
    return f"{q:.0%}" if 0 < q < 1 else ("min" if q == 0 else "max")
