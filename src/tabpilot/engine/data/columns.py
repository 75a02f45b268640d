"""Which columns to learn from: useless-column detection and leakage warnings.

Every column that is not used gets a `DroppedColumn` with a reason code and a sentence a
person can read; suspected leakage is a warning only (the user decides). Pure pandas, so
the API can run it on upload without the training libraries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tabpilot.engine.data.inputs import FeatureSpec
from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.data.profiling import ColumnKind, ColumnProfile, DatasetProfile
from tabpilot.errors import InvalidInput

MOSTLY_MISSING = 0.95
QUASI_CONSTANT = 0.995
LEAK_PURITY = 0.99
LEAK_R2 = 0.95
LEAK_SAMPLE = 50_000


@dataclass(frozen=True)
class DroppedColumn:
    name: str
    reason: str  # identifier | constant | duplicate | mostly_missing | excluded
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class ColumnWarning:
    column: str
    kind: str  # leakage | quasi_constant | missing | high_cardinality | forced
    detail: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class FeaturePlan:
    """The outcome of column selection: what is learned from, what is not, and why."""

    features: list[FeatureSpec]
    dropped: list[DroppedColumn]
    warnings: list[ColumnWarning] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [f.to_dict() for f in self.features],
            "dropped": [d.to_dict() for d in self.dropped],
            "warnings": [w.to_dict() for w in self.warnings],
        }


def detect_useless_column(col: ColumnProfile, n_rows: int) -> DroppedColumn | None:
    """Why `col` cannot help a model, or None if it may."""
    if col.n_distinct <= 1:
        shown = col.top_values[0][0] if col.top_values else "missing"
        return DroppedColumn(col.name, "constant", f'every row holds the same value ("{shown}")')
    if col.missing_fraction >= MOSTLY_MISSING:
        return DroppedColumn(
            col.name,
            "mostly_missing",
            f"{col.missing_fraction:.1%} of the rows are missing (threshold {MOSTLY_MISSING:.0%})",
        )
    if col.kind == ColumnKind.IDENTIFIER:
        return DroppedColumn(col.name, "identifier", f"looks like an identifier: {col.kind_reason}")
    return None


def build_feature_plan(
    frame: pd.DataFrame,
    profile: DatasetProfile,
    *,
    target: str,
    problem_type: ProblemType | None = None,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = (),
) -> FeaturePlan:
    """Choose the feature columns, recording a reason for every column left out."""
    names = [c.name for c in profile.columns]
    for option, cols in (("--include", include), ("--exclude", exclude)):
        unknown = [c for c in cols if c not in names]
        if unknown:
            raise InvalidInput(
                f"{option}: column(s) not found: {', '.join(map(repr, unknown))}; "
                f"columns are: {', '.join(names)}"
            )
    both = set(include) & set(exclude)
    if both:
        raise InvalidInput(f"Column(s) both included and excluded: {', '.join(sorted(both))}")
    if target in include or target in exclude:
        raise InvalidInput(f'"{target}" is the target; it cannot be included or excluded.')

    features: list[FeatureSpec] = []
    dropped: list[DroppedColumn] = []
    warnings: list[ColumnWarning] = []
    seen_hashes: dict[int, str] = {}
    for col in profile.columns:
        if col.name == target:
            continue
        if col.name in exclude:
            dropped.append(DroppedColumn(col.name, "excluded", "excluded by the user"))
            continue
        reason = detect_useless_column(col, profile.n_rows)
        if reason is not None and col.name not in include:
            dropped.append(reason)
            continue
        if reason is not None:
            warnings.append(
                ColumnWarning(col.name, "forced", f"kept because you included it ({reason.detail})")
            )
        twin = _find_duplicate(frame[col.name], seen_hashes, frame)
        if twin is not None and col.name not in include:
            dropped.append(
                DroppedColumn(col.name, "duplicate", f'an exact copy of column "{twin}"')
            )
            continue
        features.append(feature_spec(col))
        top_share = (col.top_values[0][1] / profile.n_rows) if col.top_values else 0
        if top_share >= QUASI_CONSTANT:
            warnings.append(
                ColumnWarning(
                    col.name,
                    "quasi_constant",
                    f'{top_share:.1%} of rows hold "{col.top_values[0][0]}"',
                )
            )
    if not features:
        raise InvalidInput(
            "No usable feature columns remain: "
            + "; ".join(f"{d.name}: {d.detail}" for d in dropped)
            + ". Use --include to force columns in."
        )
    if problem_type is not None:
        warnings.extend(detect_leakage(frame, features, target=target, problem_type=problem_type))
    return FeaturePlan(features=features, dropped=dropped, warnings=warnings)


def feature_spec(col: ColumnProfile) -> FeatureSpec:
    """The feature a kept column becomes (its kind decides the preprocessing)."""
    kind = col.kind
    if kind == ColumnKind.BOOLEAN:
        return FeatureSpec(col.name, "boolean")
    if kind == ColumnKind.DATETIME:
        return FeatureSpec(col.name, "datetime", has_time=_has_time(col))
    if kind == ColumnKind.TEXT:
        return FeatureSpec(col.name, "text")
    if kind in (ColumnKind.NUMERIC,) or (kind == ColumnKind.IDENTIFIER and col.integer_valued):
        return FeatureSpec(col.name, "numeric")
    return FeatureSpec(col.name, "categorical")


def _has_time(col: ColumnProfile) -> bool:
    return any(":" in str(e) and not str(e).endswith("00:00:00") for e in col.examples)


def _find_duplicate(series: pd.Series, seen: dict[int, str], frame: pd.DataFrame) -> str | None:
    digest = int(pd.util.hash_pandas_object(series, index=False).sum())
    twin = seen.get(digest)
    if twin is not None and frame[twin].equals(series):
        return twin
    seen.setdefault(digest, str(series.name))
    return None


def detect_leakage(
    frame: pd.DataFrame,
    features: list[FeatureSpec],
    *,
    target: str,
    problem_type: ProblemType,
) -> list[ColumnWarning]:
    """Columns that alone predict the target almost perfectly: likely leaks of the answer.

    Classification: the share of rows whose class is the majority class of their feature
    value (numbers binned into 20 quantiles). Regression: the share of the target's variance
    explained by the feature's bin means. Both on a sample, for speed.
    """
    data = frame[frame[target].notna()]
    if len(data) > LEAK_SAMPLE:
        data = data.sample(LEAK_SAMPLE, random_state=0)
    y = data[target]
    classify = problem_type.is_classification
    if classify:
        y_codes = pd.factorize(y)[0]
        baseline = float(np.bincount(y_codes).max() / len(y_codes))
    else:
        yv = pd.to_numeric(y, errors="coerce").to_numpy(dtype="float64")
        known = ~np.isnan(yv)
    out: list[ColumnWarning] = []
    for spec in features:
        x = _binned(data[spec.name])
        if x is None:
            continue
        groups = pd.factorize(x)[0]  # the bins have no missing values: codes from 0
        if classify:
            purity = _purity(groups, y_codes)
            if purity >= LEAK_PURITY and baseline < LEAK_PURITY:
                out.append(
                    ColumnWarning(
                        spec.name,
                        "leakage",
                        f"alone predicts {purity:.1%} of the target correctly "
                        f"(majority class: {baseline:.1%}); is it known before the outcome?",
                    )
                )
            continue
        r2 = _explained(groups[known], yv[known])
        if r2 is not None and r2 >= LEAK_R2:
            out.append(
                ColumnWarning(
                    spec.name,
                    "leakage",
                    f"alone explains {r2:.1%} of the target's variance; "
                    "is it known before the outcome?",
                )
            )
    return out


def _purity(groups: np.ndarray, y_codes: np.ndarray) -> float:
    """Share of rows whose class is the most common class of their group (counted with
    bincount, not a crosstab: 800 columns took 4.7 s in crosstabs)."""
    n_classes = int(y_codes.max()) + 1
    counts = np.bincount(groups * n_classes + y_codes, minlength=(groups.max() + 1) * n_classes)
    return float(counts.reshape(-1, n_classes).max(axis=1).sum() / len(y_codes))


def _explained(groups: np.ndarray, y: np.ndarray) -> float | None:
    """Share of `y`'s variance explained by its group means (None when `y` is constant)."""
    total = float(((y - y.mean()) ** 2).sum()) if len(y) else 0.0
    if total == 0:
        return None
    means = np.bincount(groups, weights=y) / np.maximum(np.bincount(groups), 1)
    return 1 - float(((y - means[groups]) ** 2).sum()) / total


def _binned(series: pd.Series) -> pd.Series | None:
    """Group values for the leakage check: 20 quantile bins for numbers, top 50 categories."""
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        if series.nunique() > 20:
            # 20 bins of equal counts (ties broken by order, as pd.qcut of the ranks).
            ranks = series.rank(method="first")
            codes = np.floor((ranks - 1) * 20 / max(1, int(ranks.notna().sum())))
            return codes.fillna(-1).astype(int)
        return series.fillna(np.nan).astype("float64").fillna(-1e308)
    values = series.astype(str).where(series.notna(), "\0missing")
    n_distinct = values.nunique()
    if n_distinct > len(values) / 20:
        return None  # too many groups: purity would be high by chance alone
    top = values.value_counts().index[:50]
    return values.where(values.isin(top), "\0other")
