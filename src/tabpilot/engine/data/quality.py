"""Data-quality warnings: one list of findings, in one set of words, for the API's dataset
profile and for the EDA report.

`dataset_warnings` needs only the profile (the API stores its findings with every upload);
`report_warnings` adds what needs the rows, the target or the feature plan (outliers,
duplicate columns, class imbalance, leakage). numpy and pandas only: the API runs this.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from tabpilot.engine.data.columns import MOSTLY_MISSING, FeaturePlan, detect_useless_column
from tabpilot.engine.data.profiling import ColumnKind, DatasetProfile
from tabpilot.engine.wording import format_number, format_share

# Training refuses data with fewer rows that have a target (engine.training checks it).
MIN_TRAINING_ROWS = 10
# More distinct values than this makes a categorical column "high cardinality".
HIGH_CARDINALITY = 50
# One value in at least this share of the rows makes a column nearly constant. Column
# selection drops nothing for it (its own, higher threshold only notes it); this one informs.
DOMINANT_SHARE = 0.95
STRONG_SKEW = 2.0  # |skewness| beyond this is a long tail
IMBALANCE_RATIO = 3.0  # largest class over smallest
# Above these shares a finding is worth checking rather than a note.
NOTABLE_MISSING = 0.05
NOTABLE_DUPLICATES = 0.01

Severity = Literal["crit", "warn", "info"]


@dataclass(frozen=True)
class DataWarning:
    """One finding: its kind (a key of `KINDS`), the column (None for the whole table), what
    was found, and how much it matters."""

    kind: str
    column: str | None
    detail: str
    severity: Severity = "info"

    def to_dict(self) -> dict[str, str | None]:
        """The form stored with a dataset's profile and answered by the API."""
        return {"column": self.column, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True)
class WarningKind:
    title: str
    explanation: str


# Every kind of finding, in the order a report lists them.
KINDS: dict[str, WarningKind] = {
    "leakage": WarningKind(
        "Suspected target leakage",
        "These columns alone predict the target almost perfectly. If their values are only "
        "known after the outcome, the model will look better than it is; exclude them.",
    ),
    "too_few_rows": WarningKind(
        "Too few rows", f"Training needs at least {MIN_TRAINING_ROWS} rows with a target."
    ),
    "imbalance": WarningKind(
        "Class imbalance",
        "Accuracy alone is misleading when one class dominates; look at ROC AUC, balanced "
        "accuracy and per-class recall.",
    ),
    "missing": WarningKind(
        "Missing values",
        "Training fills numeric gaps with the median of the training rows and gives "
        "categorical gaps a category of their own. Rows with a missing target are removed "
        "before training.",
    ),
    "mostly_missing": WarningKind(
        "Mostly missing columns",
        f"At least {MOSTLY_MISSING:.0%} of the rows are missing: training leaves such a column "
        "out unless you include it.",
    ),
    "duplicate_rows": WarningKind(
        "Duplicate rows",
        "Exact copies of earlier rows. They can land on both sides of the train/test split "
        "and make the held-out score optimistic.",
    ),
    "constant": WarningKind(
        "Constant columns",
        "A column with one value carries no information; training leaves it out.",
    ),
    "quasi_constant": WarningKind(
        "Quasi-constant columns",
        f"One value fills at least {DOMINANT_SHARE:.0%} of the rows; such a column helps only "
        "if its rare values matter.",
    ),
    "identifier": WarningKind(
        "Identifier columns",
        "Row identifiers let a model memorise rows instead of learning patterns; training "
        "leaves them out.",
    ),
    "duplicate_columns": WarningKind(
        "Duplicate columns", "Exact copies of another column; training keeps the first."
    ),
    "high_cardinality": WarningKind(
        "High cardinality",
        f"Categorical columns with more than {HIGH_CARDINALITY} distinct values. Training "
        "learns from the frequent categories; rare ones share one code.",
    ),
    "skew": WarningKind(
        "Strong skew",
        f"Skewness beyond ±{STRONG_SKEW:g}: a long tail on one side. Tree models cope; "
        "averages and linear models are pulled by the tail.",
    ),
    "outliers": WarningKind(
        "Outliers",
        "Values beyond 1.5 interquartile ranges from the quartiles (the IQR rule). They may "
        "be errors or real extremes; check a few.",
    ),
    "selection": WarningKind(
        "Column selection notes", "What column selection noticed about the columns it kept."
    ),
}


def dataset_warnings(profile: DatasetProfile) -> list[DataWarning]:
    """What a person should see before choosing a target: too few rows, duplicate rows,
    columns training would leave out, missing values, high-cardinality categories."""
    return [
        *_too_few_rows(profile),
        *_missing(profile),
        *_unusable(profile, "mostly_missing"),
        *_duplicate_rows(profile),
        *_unusable(profile, "constant"),
        *_unusable(profile, "identifier"),
        *_high_cardinality(profile),
    ]


def report_warnings(
    frame: pd.DataFrame,
    profile: DatasetProfile,
    *,
    target: str | None = None,
    classification: bool = False,
    plan: FeaturePlan | None = None,
    outliers: dict[str, tuple[int, float, float]] | None = None,
    duplicate_columns: list[tuple[str, str]] | None = None,
) -> list[DataWarning]:
    """`dataset_warnings` and what needs the rows, the target or the plan, ordered by kind.

    Args:
        frame: the data.
        profile: its profile.
        target: the column to predict, if chosen.
        classification: whether the target's problem is a classification.
        plan: the feature plan, for leakage and column selection notes.
        outliers: `outlier_counts(frame, profile)`, when already computed.
        duplicate_columns: `duplicate_column_pairs(...)`, when already computed.
    """
    found = [
        *dataset_warnings(profile),
        *_plan_notes(plan),
        *_imbalance(frame, target, classification),
        *_quasi_constant(profile),
        *_duplicated_columns(duplicate_columns or []),
        *_skew(profile),
        *_outliers(profile, outlier_counts(frame, profile) if outliers is None else outliers),
    ]
    order = {kind: i for i, kind in enumerate(KINDS)}
    return sorted(found, key=lambda w: order.get(w.kind, len(order)))  # stable within a kind


def group_warnings(warnings: list[DataWarning]) -> list[tuple[str, list[DataWarning]]]:
    """The warnings by kind, in the order they come."""
    groups: dict[str, list[DataWarning]] = {}
    for w in warnings:
        groups.setdefault(w.kind, []).append(w)
    return list(groups.items())


def worst_severity(warnings: list[DataWarning]) -> Severity:
    for level in ("crit", "warn"):
        if any(w.severity == level for w in warnings):
            return level  # type: ignore[return-value]
    return "info"


# -- statistics some checks need (the EDA shows them too) ---------------------------------


def outlier_counts(
    frame: pd.DataFrame, profile: DatasetProfile
) -> dict[str, tuple[int, float, float]]:
    """Per numeric column: rows outside [p25 - 1.5 IQR, p75 + 1.5 IQR], and the fences."""
    out: dict[str, tuple[int, float, float]] = {}
    for col in profile.columns:
        if col.kind != ColumnKind.NUMERIC or "p25" not in col.stats:
            continue
        iqr = col.stats["p75"] - col.stats["p25"]
        if not iqr > 0:
            continue
        lo, hi = col.stats["p25"] - 1.5 * iqr, col.stats["p75"] + 1.5 * iqr
        values = frame[col.name].to_numpy(dtype="float64", na_value=np.nan)
        out[col.name] = (int(((values < lo) | (values > hi)).sum()), lo, hi)
    return out


def duplicate_column_pairs(frame: pd.DataFrame, sample: pd.DataFrame) -> list[tuple[str, str]]:
    """(original, copy) pairs of identical columns; candidates found on `sample` (some of the
    rows of `frame`), confirmed on all rows."""
    seen: dict[tuple[str, int], str] = {}
    pairs: list[tuple[str, str]] = []
    for name in sample.columns:
        col = sample[name]
        digest = hash(pd.util.hash_pandas_object(col, index=False).to_numpy().tobytes())
        key = (str(col.dtype), digest)
        first = seen.get(key)
        if first is not None and frame[first].equals(frame[name]):
            pairs.append((first, str(name)))
        else:
            seen.setdefault(key, str(name))
    return pairs


# -- the checks ---------------------------------------------------------------------------


def _too_few_rows(profile: DatasetProfile) -> Iterator[DataWarning]:
    if profile.n_rows < MIN_TRAINING_ROWS:
        yield DataWarning(
            "too_few_rows",
            None,
            f"only {profile.n_rows} data row(s); training needs at least {MIN_TRAINING_ROWS}",
            "crit",
        )


def _duplicate_rows(profile: DatasetProfile) -> Iterator[DataWarning]:
    n_dup = profile.n_duplicate_rows
    if n_dup:
        share = n_dup / max(profile.n_rows, 1)
        yield DataWarning(
            "duplicate_rows",
            None,
            f"{n_dup:,} row(s) ({format_share(share)}) repeat an earlier row exactly",
            "warn" if share >= NOTABLE_DUPLICATES else "info",
        )


def _unusable(profile: DatasetProfile, reason: str) -> Iterator[DataWarning]:
    """Columns that column selection leaves out for `reason` (constant, mostly_missing,
    identifier)."""
    for col in profile.columns:
        useless = detect_useless_column(col, profile.n_rows)
        if useless is not None and useless.reason == reason:
            yield DataWarning(
                reason,
                col.name,
                f"{useless.detail}; it will not be used as a feature unless you include it",
            )


def _missing(profile: DatasetProfile) -> Iterator[DataWarning]:
    n_rows = profile.n_rows
    gaps = [c for c in profile.columns if c.n_missing and c.missing_fraction < MOSTLY_MISSING]
    for col in sorted(gaps, key=lambda c: -c.n_missing):
        if detect_useless_column(col, n_rows) is not None:
            continue  # left out anyway: its own warning says why
        yield DataWarning(
            "missing",
            col.name,
            f"{col.n_missing:,} of {n_rows:,} rows ({format_share(col.missing_fraction)}) "
            "are missing",
            "warn" if col.missing_fraction >= NOTABLE_MISSING else "info",
        )


def _high_cardinality(profile: DatasetProfile) -> Iterator[DataWarning]:
    high = [
        c
        for c in profile.columns
        if c.kind == ColumnKind.CATEGORICAL and c.n_distinct > HIGH_CARDINALITY
    ]
    for col in sorted(high, key=lambda c: -c.n_distinct):
        yield DataWarning(
            "high_cardinality",
            col.name,
            f"{col.n_distinct:,} distinct values; only the most frequent are learned from, "
            "the rest count as 'other'",
        )


def _quasi_constant(profile: DatasetProfile) -> Iterator[DataWarning]:
    n = max(profile.n_rows, 1)
    for col in profile.columns:
        if col.n_distinct > 1 and col.top_values:
            value, count = col.top_values[0]
            if count / n >= DOMINANT_SHARE:
                yield DataWarning(
                    "quasi_constant", col.name, f'{count / n:.1%} of rows hold "{value}"'
                )


def _skew(profile: DatasetProfile) -> Iterator[DataWarning]:
    skewed = [
        c
        for c in profile.columns
        if c.kind == ColumnKind.NUMERIC and abs(c.stats.get("skew", 0.0)) > STRONG_SKEW
    ]
    for col in sorted(skewed, key=lambda c: -abs(c.stats["skew"])):
        yield DataWarning(
            "skew",
            col.name,
            f"skewness {col.stats['skew']:+.1f}; median {format_number(col.stats['median'])}, "
            f"max {format_number(col.stats['max'])}",
        )


def _outliers(
    profile: DatasetProfile, counts: dict[str, tuple[int, float, float]]
) -> Iterator[DataWarning]:
    n = max(profile.n_rows, 1)
    found = sorted(((k, v) for k, v in counts.items() if v[0]), key=lambda kv: -kv[1][0])
    for name, (count, lo, hi) in found:
        yield DataWarning(
            "outliers",
            name,
            f"{count:,} rows ({format_share(count / n)}) outside "
            f"[{format_number(lo)}, {format_number(hi)}]",
        )


def _duplicated_columns(pairs: list[tuple[str, str]]) -> Iterator[DataWarning]:
    for original, copy in pairs:
        yield DataWarning("duplicate_columns", copy, f'an exact copy of "{original}"')


def _imbalance(
    frame: pd.DataFrame, target: str | None, classification: bool
) -> Iterator[DataWarning]:
    if target is None or not classification or target not in frame.columns:
        return
    counts = frame[target].value_counts()
    if len(counts) < 2:
        return
    ratio = counts.iloc[0] / max(counts.iloc[-1], 1)
    if ratio < IMBALANCE_RATIO:
        return
    total = counts.sum()
    yield DataWarning(
        "imbalance",
        target,
        f"the largest class has {ratio:.1f} times the rows of the smallest: smallest "
        f'"{counts.index[-1]}": {int(counts.iloc[-1]):,} rows ({counts.iloc[-1] / total:.1%}); '
        f'largest "{counts.index[0]}": {int(counts.iloc[0]):,} rows '
        f"({counts.iloc[0] / total:.1%})",
        "warn",
    )


def _plan_notes(plan: FeaturePlan | None) -> Iterator[DataWarning]:
    """Leakage, and what column selection noted about the columns it kept (its nearly constant
    columns are covered by `quasi_constant`)."""
    if plan is None:
        return
    for w in plan.warnings:
        if w.kind == "leakage":
            yield DataWarning("leakage", w.column, w.detail, "crit")
        elif w.kind != "quasi_constant":
            yield DataWarning("selection", w.column, w.detail)
