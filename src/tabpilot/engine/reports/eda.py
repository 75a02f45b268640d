"""The EDA report: what a dataset looks like, before any model is trained.

numpy and pandas only: the API process renders this report for an uploaded dataset and must
never import the training libraries. Statistics come from the profile (all rows); charts,
correlations and associations use a random sample of at most `SAMPLE_ROWS` rows, and the
report says so when it samples.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from markupsafe import Markup

from tabpilot.engine.data.columns import FeaturePlan, build_feature_plan, detect_useless_column
from tabpilot.engine.data.problem import ProblemDecision, detect_problem_type
from tabpilot.engine.data.profiling import ColumnKind, ColumnProfile, DatasetProfile
from tabpilot.engine.reports.charts import (
    format_number,
    render_bar_chart,
    render_heatmap,
    render_histogram,
)
from tabpilot.engine.reports.page import build_section, macro, render_page

log = logging.getLogger(__name__)

SAMPLE_ROWS = 100_000
HIST_BINS = 30
MAX_MATRIX = 25  # columns in a correlation or association heatmap
MAX_CHARTED_COLUMNS = 300  # beyond this, columns are listed without a chart each
ASSOC_BINS = 10  # quantile bins of a numeric column for contingency tables
ASSOC_TOP = 30  # categories kept for contingency tables (the rest are "other")
STRONG_CORRELATION = 0.5
QUASI_CONSTANT = 0.95
HIGH_CARDINALITY = 50
STRONG_SKEW = 2.0
IMBALANCE_RATIO = 3.0
MAX_LISTED = 40  # columns listed per warning

TEMPLATE = "eda.html.j2"


def render_eda_report(
    frame: pd.DataFrame,
    profile: DatasetProfile,
    *,
    target: str | None = None,
    problem: ProblemDecision | None = None,
    plan: FeaturePlan | None = None,
    title: str = "Dataset",
) -> str:
    """The EDA report as one self-contained HTML page.

    Args:
        frame: the data, as read from the CSV.
        profile: `profile_frame(frame)`.
        target: the column to predict, if chosen; without it the report has no target
            analysis and says which columns training would drop.
        problem: the detected problem type; detected here when missing and a target is given.
        plan: the feature plan of the training; built here when missing and a target is given.
        title: what the data is called (e.g. the file name).
    """
    eda = _Eda(frame, profile, target=target, problem=problem, plan=plan)
    sections = [
        build_section("overview", "Overview", eda.section_overview),
        build_section("warnings", "Data quality warnings", eda.section_warnings),
        build_section("target", "Target analysis", eda.section_target),
        build_section("columns", "Columns", eda.section_columns),
        build_section("correlations", "Correlations", eda.section_correlations),
        build_section("association", "Association with the target", eda.section_association),
    ]
    notes = list(eda.notes)
    if eda.sampled:
        notes.append(
            f"Statistics use all {profile.n_rows:,} rows; charts, correlations and associations "
            f"use a random sample of {len(eda.sample):,} rows."
        )
    subtitle = f"Exploratory data analysis · {profile.n_rows:,} rows × {profile.n_columns} columns"
    if target is not None:
        subtitle += f" · target: {target}"
    return render_page(
        kind="EDA report", title=title, subtitle=subtitle, sections=sections, notes=notes
    )


# -- helpers shared with the tests -------------------------------------------------------------


def entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def mutual_information(x: np.ndarray, kx: int, y: np.ndarray, ky: int) -> float:
    """Mutual information (nats) of two code arrays, with the Miller-Madow bias correction,
    so that columns with many categories do not look informative by chance alone."""
    n = len(x)
    if n == 0:
        return 0.0
    joint = np.bincount(x * ky + y, minlength=kx * ky).reshape(kx, ky).astype("float64")
    px, py = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    mi = float((joint[nz] / n * np.log(joint[nz] * n / np.outer(px, py)[nz])).sum())
    bias = (int((px > 0).sum()) - 1) * (int((py > 0).sum()) - 1) / (2 * n)
    return max(mi - bias, 0.0)


def cramers_v(x: np.ndarray, kx: int, y: np.ndarray, ky: int) -> float:
    """Bias-corrected Cramér's V (Bergsma 2013): 0 independent, 1 one determines the other."""
    n = len(x)
    if n < 2:
        return float("nan")
    joint = np.bincount(x * ky + y, minlength=kx * ky).reshape(kx, ky).astype("float64")
    joint = joint[joint.sum(axis=1) > 0][:, joint.sum(axis=0) > 0]
    r, k = joint.shape
    if r < 2 or k < 2:
        return float("nan")
    expected = np.outer(joint.sum(axis=1), joint.sum(axis=0)) / n
    phi2 = float(((joint - expected) ** 2 / expected).sum()) / n
    phi2c = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    rc = r - (r - 1) ** 2 / (n - 1)
    kc = k - (k - 1) ** 2 / (n - 1)
    denom = min(kc - 1, rc - 1)
    return math.sqrt(phi2c / denom) if denom > 0 else float("nan")


def _is_number(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def encode_codes(series: pd.Series, *, bins: int = ASSOC_BINS, top: int = ASSOC_TOP) -> np.ndarray:
    """Small integer codes for a contingency table: numbers in quantile bins, the most common
    categories, the rest as "other", and missing values as a code of their own."""
    if _is_number(series):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        finite = values[np.isfinite(values)]
        if len(np.unique(finite[: 10 * bins])) > bins or len(np.unique(finite)) > bins:
            cuts = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
            if len(cuts) < bins - 1:
                # One value dominates (e.g. mostly zeros): give it a bin of its own and
                # split the other values into quantiles, so their signal is not lost.
                uniq, counts = np.unique(finite, return_counts=True)
                mode = uniq[counts.argmax()]
                rest = finite[finite != mode]
                if len(rest):
                    extra = np.quantile(rest, np.linspace(0, 1, bins)[1:-1])
                    edges = [cuts, extra, [mode, np.nextafter(mode, np.inf)]]
                    cuts = np.unique(np.concatenate(edges))
            codes = np.searchsorted(cuts, values, side="right")
            codes[~np.isfinite(values)] = len(cuts) + 1
            return _compact(codes)
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    if len(uniques) > top:
        counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
        keep = np.zeros(len(uniques), dtype=bool)
        keep[np.argsort(-counts, kind="stable")[:top]] = True
        other = len(uniques)
        codes = np.where((codes >= 0) & ~keep[np.maximum(codes, 0)], other, codes)
    codes = np.where(codes < 0, len(uniques) + 1, codes)
    return _compact(codes)


def _compact(codes: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(codes, return_inverse=True)
    return inverse.astype(np.int64).ravel()


def _share(x: float) -> str:
    """A share as a percentage that never rounds a few rows down to 0.0%."""
    return "<0.1%" if 0 < x < 0.001 else f"{x:.1%}"


def _days_to_text(days: float) -> str:
    try:
        return (pd.Timestamp("1970-01-01") + pd.to_timedelta(days, unit="D")).strftime("%Y-%m-%d")
    except (ValueError, OverflowError):
        return format_number(days)


# -- the report ------------------------------------------------------------------------------


@dataclass
class _Warning:
    id: str
    title: str
    severity: str  # crit | warn | info
    explain: str
    items: list[tuple[str, str]] = field(default_factory=list)


class _Eda:
    def __init__(
        self,
        frame: pd.DataFrame,
        profile: DatasetProfile,
        *,
        target: str | None,
        problem: ProblemDecision | None,
        plan: FeaturePlan | None,
    ) -> None:
        self.frame = frame
        self.profile = profile
        self.target = target if target is not None and target in frame.columns else None
        self.notes: list[str] = []
        if target is not None and self.target is None:
            self.notes.append(f'The target "{target}" is not a column of this data.')
        self.problem = problem
        self.problem_error: str | None = None
        if self.target is not None and problem is None:
            try:
                self.problem = detect_problem_type(frame[self.target])
            except Exception as exc:
                self.problem_error = str(exc)
        self.plan = plan
        self.plan_is_preview = False
        if self.target is not None and plan is None:
            try:
                present = frame[frame[self.target].notna()]
                self.plan = build_feature_plan(
                    present,
                    profile,
                    target=self.target,
                    problem_type=self.problem.problem_type if self.problem else None,
                )
                self.plan_is_preview = True
            except Exception as exc:
                self.notes.append(f"Which columns training would use is unknown: {exc}")
        self.columns = {c.name: c for c in profile.columns}

    # -- shared data ---------------------------------------------------------------------------

    @cached_property
    def sample(self) -> pd.DataFrame:
        if len(self.frame) > SAMPLE_ROWS:
            return self.frame.sample(SAMPLE_ROWS, random_state=0)
        return self.frame

    @property
    def sampled(self) -> bool:
        return len(self.frame) > SAMPLE_ROWS

    @property
    def is_classification(self) -> bool:
        return self.problem is not None and self.problem.problem_type.is_classification

    @cached_property
    def codes(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name in self.sample.columns:
            col = self.columns.get(str(name))
            if col is None or col.n_distinct <= 1:
                continue
            series = self.sample[name]
            if name == self.target and self.is_classification:
                out[str(name)] = encode_codes(series, top=10**6)
            else:
                out[str(name)] = encode_codes(series)
        return out

    @cached_property
    def outliers(self) -> dict[str, tuple[int, float, float]]:
        """Per numeric column: rows outside [p25 - 1.5 IQR, p75 + 1.5 IQR], and the fences."""
        out: dict[str, tuple[int, float, float]] = {}
        for col in self.profile.columns:
            if col.kind != ColumnKind.NUMERIC or "p25" not in col.stats:
                continue
            iqr = col.stats["p75"] - col.stats["p25"]
            if not iqr > 0:
                continue
            lo, hi = col.stats["p25"] - 1.5 * iqr, col.stats["p75"] + 1.5 * iqr
            values = self.frame[col.name].to_numpy(dtype="float64", na_value=np.nan)
            out[col.name] = (int(((values < lo) | (values > hi)).sum()), lo, hi)
        return out

    def usage(self, name: str) -> tuple[str, str]:
        """(status, explanation): target, used, dropped or undecided."""
        if name == self.target:
            return "target", "the column to predict"
        if self.plan is not None:
            for spec in self.plan.features:
                if spec.name == name:
                    return "used", f"used as a {spec.kind} feature"
            for drop in self.plan.dropped:
                if drop.name == name:
                    return "dropped", drop.detail
            return "dropped", "not selected"
        col = self.columns.get(name)
        useless = detect_useless_column(col, self.profile.n_rows) if col else None
        if useless is not None:
            return "dropped", f"will not be used: {useless.detail}"
        return "undecided", "usable; decided when a target is chosen"

    # -- sections ------------------------------------------------------------------------------

    def section_overview(self) -> Markup:
        p = self.profile
        by_kind: dict[str, list[str]] = {}
        for col in p.columns:
            by_kind.setdefault(str(col.kind), []).append(col.name)
        cells = p.n_rows * p.n_columns
        missing = sum(c.n_missing for c in p.columns)
        target_info = None
        if self.target is not None:
            col = self.columns.get(self.target)
            target_info = {
                "name": self.target,
                "problem": str(self.problem.problem_type) if self.problem else None,
                "reason": self.problem.reason if self.problem else self.problem_error,
                "n_classes": self.problem.n_classes if self.problem else None,
                "missing": col.n_missing if col else 0,
            }
        used = dropped = 0
        if self.plan is not None:
            used, dropped = len(self.plan.features), len(self.plan.dropped)
        return macro(TEMPLATE, "overview")(
            p=p,
            by_kind=sorted(by_kind.items(), key=lambda kv: -len(kv[1])),
            missing_cells=missing,
            missing_share=missing / cells if cells else 0.0,
            columns_with_missing=sum(1 for c in p.columns if c.n_missing),
            target=target_info,
            plan_used=used,
            plan_dropped=dropped,
            has_plan=self.plan is not None,
            plan_is_preview=self.plan_is_preview,
        )

    def build_warnings(self) -> list[_Warning]:
        p = self.profile
        n = max(p.n_rows, 1)
        out: list[_Warning] = []
        if self.plan is not None:
            leaks = [w for w in self.plan.warnings if w.kind == "leakage"]
            if leaks:
                out.append(
                    _Warning(
                        "leakage",
                        "Suspected target leakage",
                        "crit",
                        "These columns alone predict the target almost perfectly. If their "
                        "values are only known after the outcome, the model will look better "
                        "than it is; exclude them.",
                        [(w.column, w.detail) for w in leaks],
                    )
                )
        if self.target is not None and self.is_classification:
            counts = self.frame[self.target].value_counts()
            if len(counts) >= 2:
                ratio = counts.iloc[0] / max(counts.iloc[-1], 1)
                if ratio >= IMBALANCE_RATIO:
                    share = counts.iloc[-1] / counts.sum()
                    out.append(
                        _Warning(
                            "imbalance",
                            "Class imbalance",
                            "warn",
                            f"The largest class has {ratio:.1f} times the rows of the smallest. "
                            "Accuracy alone is misleading here; look at ROC AUC, balanced "
                            "accuracy and per-class recall.",
                            [
                                (
                                    self.target,
                                    f'smallest class "{counts.index[-1]}": '
                                    f"{int(counts.iloc[-1]):,} rows ({share:.1%}); largest "
                                    f'"{counts.index[0]}": {int(counts.iloc[0]):,} rows '
                                    f"({counts.iloc[0] / counts.sum():.1%})",
                                )
                            ],
                        )
                    )
        missing = sorted((c for c in p.columns if c.n_missing), key=lambda c: -c.n_missing)
        if missing:
            out.append(
                _Warning(
                    "missing",
                    "Missing values",
                    "warn" if any(c.missing_fraction >= 0.05 for c in missing) else "info",
                    "Numeric gaps are filled with the median (plus a flag saying the value was "
                    "missing); categorical gaps become their own category. Rows with a "
                    "missing target are removed before training.",
                    [
                        (c.name, f"{c.n_missing:,} rows ({_share(c.missing_fraction)})")
                        for c in missing
                    ],
                )
            )
        if p.n_duplicate_rows:
            out.append(
                _Warning(
                    "duplicates",
                    "Duplicate rows",
                    "warn" if p.n_duplicate_rows / n >= 0.01 else "info",
                    "Exact copies of earlier rows. They can land on both sides of the "
                    "train/test split and make the held-out score optimistic.",
                    [
                        (
                            "all columns",
                            f"{p.n_duplicate_rows:,} rows ({_share(p.n_duplicate_rows / n)})",
                        )
                    ],
                )
            )
        constant = [c for c in p.columns if c.n_distinct <= 1]
        if constant:
            out.append(
                _Warning(
                    "constant",
                    "Constant columns",
                    "info",
                    "A column with one value carries no information; training drops it.",
                    [
                        (
                            c.name,
                            f'every row holds "{c.top_values[0][0]}"'
                            if c.top_values
                            else "every row is missing",
                        )
                        for c in constant
                    ],
                )
            )
        quasi = []
        for c in p.columns:
            if c.n_distinct > 1 and c.top_values:
                share = c.top_values[0][1] / n
                if share >= QUASI_CONSTANT:
                    quasi.append((c.name, f'{share:.1%} of rows hold "{c.top_values[0][0]}"'))
        if quasi:
            out.append(
                _Warning(
                    "quasi_constant",
                    "Quasi-constant columns",
                    "info",
                    f"One value fills at least {QUASI_CONSTANT:.0%} of the rows; such a column "
                    "helps only if its rare values matter.",
                    quasi,
                )
            )
        ids = [c for c in p.columns if c.kind == ColumnKind.IDENTIFIER]
        if ids:
            out.append(
                _Warning(
                    "identifiers",
                    "Identifier columns",
                    "info",
                    "Row identifiers let a model memorise rows instead of learning patterns; "
                    "training drops them.",
                    [(c.name, c.kind_reason) for c in ids],
                )
            )
        dup_cols = self.duplicate_columns()
        if dup_cols:
            out.append(
                _Warning(
                    "duplicate_columns",
                    "Duplicate columns",
                    "info",
                    "Exact copies of another column; training keeps the first.",
                    [(b, f'an exact copy of "{a}"') for a, b in dup_cols],
                )
            )
        high = [
            c
            for c in p.columns
            if c.kind in (ColumnKind.CATEGORICAL, ColumnKind.TEXT)
            and c.n_distinct > HIGH_CARDINALITY
        ]
        if high:
            out.append(
                _Warning(
                    "high_cardinality",
                    "High cardinality",
                    "info",
                    f"More than {HIGH_CARDINALITY} distinct values. Rare categories are grouped "
                    "together in training; free text is not used yet.",
                    [
                        (c.name, f"{c.n_distinct:,} distinct values ({c.kind})")
                        for c in sorted(high, key=lambda c: -c.n_distinct)
                    ],
                )
            )
        skewed = [
            c
            for c in p.columns
            if c.kind == ColumnKind.NUMERIC and abs(c.stats.get("skew", 0.0)) > STRONG_SKEW
        ]
        if skewed:
            out.append(
                _Warning(
                    "skew",
                    "Strong skew",
                    "info",
                    f"Skewness beyond ±{STRONG_SKEW:g}: a long tail on one side. Tree models "
                    "cope; averages and linear models are pulled by the tail.",
                    [
                        (
                            c.name,
                            f"skewness {c.stats['skew']:+.1f}; median "
                            f"{format_number(c.stats['median'])}, max "
                            f"{format_number(c.stats['max'])}",
                        )
                        for c in sorted(skewed, key=lambda c: -abs(c.stats["skew"]))
                    ],
                )
            )
        outliers = [(name, v) for name, v in self.outliers.items() if v[0]]
        if outliers:
            outliers.sort(key=lambda kv: -kv[1][0])
            out.append(
                _Warning(
                    "outliers",
                    "Outliers",
                    "info",
                    "Values beyond 1.5 interquartile ranges from the quartiles (the IQR rule). "
                    "They may be errors or real extremes; check a few.",
                    [
                        (
                            name,
                            f"{cnt:,} rows ({_share(cnt / n)}) outside "
                            f"[{format_number(lo)}, {format_number(hi)}]",
                        )
                        for name, (cnt, lo, hi) in outliers
                    ],
                )
            )
        if self.plan is not None:
            others = [w for w in self.plan.warnings if w.kind not in ("leakage", "quasi_constant")]
            if others:
                out.append(
                    _Warning(
                        "selection",
                        "Column selection notes",
                        "info",
                        "What column selection noticed about the columns it kept.",
                        [(w.column, w.detail) for w in others],
                    )
                )
        return out

    def duplicate_columns(self) -> list[tuple[str, str]]:
        """(original, copy) pairs of identical columns; candidates found on the sample,
        confirmed on all rows."""
        seen: dict[tuple[str, int], str] = {}
        pairs: list[tuple[str, str]] = []
        for name in self.sample.columns:
            col = self.sample[name]
            digest = hash(pd.util.hash_pandas_object(col, index=False).to_numpy().tobytes())
            key = (str(col.dtype), digest)
            first = seen.get(key)
            if first is not None and self.frame[first].equals(self.frame[name]):
                pairs.append((first, str(name)))
            else:
                seen.setdefault(key, str(name))
        return pairs

    def section_warnings(self) -> Markup:
        warnings = self.build_warnings()
        for w in warnings:
            if len(w.items) > MAX_LISTED:
                rest = len(w.items) - MAX_LISTED
                w.items = [*w.items[:MAX_LISTED], ("…", f"and {rest} more column(s)")]
        return macro(TEMPLATE, "warnings")(warnings=warnings)

    def section_target(self) -> Markup:
        if self.target is None:
            return macro(TEMPLATE, "no_target")()
        col = self.columns[self.target]
        series = self.frame[self.target]
        if self.problem is not None and not self.is_classification:
            values = pd.to_numeric(series, errors="coerce").dropna().astype("float64")
            qs = [0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0]
            quant = values.quantile(qs)
            sample_values = pd.to_numeric(self.sample[self.target], errors="coerce").dropna()
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
                problem=self.problem,
                quantiles=[
                    (f"{q:.0%}" if 0 < q < 1 else ("min" if q == 0 else "max"), quant[q])
                    for q in qs
                ],
                mean=float(values.mean()),
                std=float(values.std()),
                skew=float(values.skew()) if len(values) > 2 else 0.0,
                chart=chart,
            )
        counts = series.value_counts()
        total = int(counts.sum())
        shown = counts.head(50)
        chart = render_bar_chart(
            [str(v) for v in shown.index],
            shown.to_numpy(dtype="float64"),
            width=480,
            title=f"class balance of {self.target}",
            x_label="rows",
            value_labels=[f"{int(c):,} ({c / total:.1%})" for c in shown.to_numpy()],
        )
        return macro(TEMPLATE, "target_classes")(
            name=self.target,
            col=col,
            problem=self.problem,
            problem_error=self.problem_error,
            classes=[(str(k), int(v), v / total) for k, v in counts.items()],
            ratio=(counts.iloc[0] / max(counts.iloc[-1], 1)) if len(counts) > 1 else 1.0,
            chart=chart,
            truncated=len(counts) > len(shown),
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
        series = self.sample[name]
        if col.kind in (ColumnKind.NUMERIC, ColumnKind.IDENTIFIER) and _is_number(series):
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
        value_labels = [f"{c:,} ({_share(c / max(present, 1))})" for c in counts]
        if rest > 0:
            labels.append(f"other ({col.n_distinct - len(col.top_values):,} values)")
            counts.append(rest)
            value_labels.append(f"{rest:,} ({_share(rest / max(present, 1))})")
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
            if col.name in self.outliers:
                cnt = self.outliers[col.name][0]
                rows.append(
                    ("outliers (IQR)", f"{cnt:,} ({_share(cnt / max(self.profile.n_rows, 1))})")
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
            status, why = self.usage(col.name)
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
            has_plan=self.plan is not None,
            plan_is_preview=self.plan_is_preview,
        )

    def section_correlations(self) -> Markup:
        numeric = [
            c.name
            for c in self.profile.columns
            if c.kind in (ColumnKind.NUMERIC, ColumnKind.BOOLEAN)
            and c.n_distinct > 1
            and _is_number(self.sample[c.name])
        ]
        numeric_note = None
        if len(numeric) > MAX_MATRIX:
            numeric_note = f"showing the first {MAX_MATRIX} of {len(numeric)} numeric columns"
            numeric = numeric[:MAX_MATRIX]
        pearson_chart = None
        pearson_pairs: list[tuple[str, str, float, float]] = []
        if len(numeric) >= 2:
            data = self.sample[numeric].astype("float64")
            corr = data.corr(method="pearson")
            spearman = data.rank().corr(method="pearson")
            pearson_chart = render_heatmap(
                numeric,
                numeric,
                corr.to_numpy(),
                title="Pearson correlation of numeric columns",
                vmax=1.0,
            )
            for i, a in enumerate(numeric):
                for b in numeric[i + 1 :]:
                    r, rho = float(corr.loc[a, b]), float(spearman.loc[a, b])
                    if max(abs(r), abs(rho)) >= STRONG_CORRELATION:
                        pearson_pairs.append((a, b, r, rho))
            pearson_pairs.sort(key=lambda t: -max(abs(t[2]), abs(t[3])))
        # Any-kind association: numbers and categories alike, via contingency tables.
        mixed = [
            c.name
            for c in self.profile.columns
            if c.kind in (ColumnKind.NUMERIC, ColumnKind.BOOLEAN, ColumnKind.CATEGORICAL)
            and c.name in self.codes
        ]
        mixed_note = None
        if len(mixed) > MAX_MATRIX:
            mixed_note = f"showing the first {MAX_MATRIX} of {len(mixed)} columns"
            mixed = mixed[:MAX_MATRIX]
        assoc_chart = None
        assoc_pairs: list[tuple[str, str, float]] = []
        if len(mixed) >= 2:
            k = {name: int(self.codes[name].max()) + 1 for name in mixed}
            m = np.eye(len(mixed))
            for i, a in enumerate(mixed):
                for j in range(i + 1, len(mixed)):
                    b = mixed[j]
                    v = cramers_v(self.codes[a], k[a], self.codes[b], k[b])
                    m[i, j] = m[j, i] = v
                    if math.isfinite(v) and v >= STRONG_CORRELATION:
                        assoc_pairs.append((a, b, v))
            assoc_pairs.sort(key=lambda t: -t[2])
            assoc_chart = render_heatmap(
                mixed, mixed, m, title="Cramér's V between columns of any kind", vmax=1.0
            )
        return macro(TEMPLATE, "correlations")(
            pearson_chart=pearson_chart,
            pearson_pairs=pearson_pairs,
            numeric_note=numeric_note,
            n_numeric=len(numeric),
            assoc_chart=assoc_chart,
            assoc_pairs=assoc_pairs[:30],
            mixed_note=mixed_note,
            threshold=STRONG_CORRELATION,
            sample_rows=len(self.sample),
            sampled=self.sampled,
        )

    def section_association(self) -> Markup:
        if self.target is None:
            return macro(TEMPLATE, "no_target")()
        y = self.codes.get(self.target)
        if y is None:
            raise ValueError(f'the target "{self.target}" has a single value')
        ky = int(y.max()) + 1
        h_y = entropy(np.bincount(y, minlength=ky).astype("float64"))
        rows = []
        for name, x in self.codes.items():
            if name == self.target:
                continue
            mi = mutual_information(x, int(x.max()) + 1, y, ky)
            status, why = self.usage(name)
            rows.append(
                {
                    "name": name,
                    "kind": str(self.columns[name].kind),
                    "mi": mi,
                    "share": mi / h_y if h_y > 0 else 0.0,
                    "status": status,
                    "why": why,
                }
            )
        rows.sort(key=lambda r: -r["mi"])
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
            regression=self.problem is not None and not self.is_classification,
            bins=ASSOC_BINS,
            top=ASSOC_TOP,
            sample_rows=len(self.sample),
            sampled=self.sampled,
        )
