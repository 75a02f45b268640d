"""What the EDA report shows about a dataset, computed here and rendered by `reports.eda`.

Statistics come from the profile (all rows); charts, correlations and associations use a
random sample of at most `SAMPLE_ROWS` rows. Each part is computed when first asked for, once,
so that a report section whose part fails still leaves the others standing. numpy and pandas
only: the API process builds this for an uploaded dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from tabpilot.engine.data.association import (
    cramers_v,
    encode_codes,
    entropy,
    is_number,
    mutual_information,
)
from tabpilot.engine.data.columns import FeaturePlan, build_feature_plan, detect_useless_column
from tabpilot.engine.data.problem import ProblemDecision, detect_problem_type
from tabpilot.engine.data.profiling import ColumnKind, DatasetProfile
from tabpilot.engine.data.quality import (
    DataWarning,
    duplicate_column_pairs,
    outlier_counts,
    report_warnings,
)

SAMPLE_ROWS = 100_000
MAX_MATRIX = 25  # columns in a correlation or association matrix
STRONG_CORRELATION = 0.5
MAX_ASSOCIATED_PAIRS = 30
TARGET_QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)


@dataclass
class Correlations:
    """Pearson and Spearman correlation of numeric columns, Cramér's V of columns of any kind,
    each with the pairs at or above `STRONG_CORRELATION`."""

    numeric: list[str] = field(default_factory=list)
    pearson: np.ndarray | None = None  # (numeric, numeric)
    numeric_pairs: list[tuple[str, str, float, float]] = field(default_factory=list)
    numeric_note: str | None = None
    mixed: list[str] = field(default_factory=list)
    cramers: np.ndarray | None = None  # (mixed, mixed)
    mixed_pairs: list[tuple[str, str, float]] = field(default_factory=list)
    mixed_note: str | None = None


@dataclass
class TargetDistribution:
    """A regression target's quantiles and moments, or a classification target's classes."""

    quantiles: list[tuple[float, float]] = field(default_factory=list)
    mean: float = 0.0
    std: float = 0.0
    skew: float = 0.0
    classes: list[tuple[str, int, float]] = field(default_factory=list)  # value, rows, share
    ratio: float = 1.0  # largest class over smallest


def summarize_data(
    frame: pd.DataFrame,
    profile: DatasetProfile,
    *,
    target: str | None = None,
    problem: ProblemDecision | None = None,
    plan: FeaturePlan | None = None,
) -> DataSummary:
    """The summary the EDA report renders.

    Args:
        frame: the data, as read from the CSV.
        profile: `profile_frame(frame)`.
        target: the column to predict, if chosen; without it there is no target analysis, and
            the summary says which columns training would drop.
        problem: the detected problem type; detected here when missing and a target is given.
        plan: the feature plan of the training; previewed here when missing and a target is
            given.
    """
    return DataSummary(frame, profile, target=target, problem=problem, plan=plan)


class DataSummary:
    """A dataset's statistics for the EDA report (see `summarize_data`)."""

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
        self.notes: list[str] = []  # what the reader should know about the summary itself
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

    # -- shared parts --------------------------------------------------------------------------

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
        """Contingency-table codes of every column with more than one value (sample rows)."""
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
        """Per numeric column: rows outside the IQR fences, and the fences."""
        return outlier_counts(self.frame, self.profile)

    @cached_property
    def warnings(self) -> list[DataWarning]:
        return report_warnings(
            self.frame,
            self.profile,
            target=self.target,
            classification=self.is_classification,
            plan=self.plan,
            outliers=self.outliers,
            duplicate_columns=duplicate_column_pairs(self.frame, self.sample),
        )

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

    # -- the parts of the report ---------------------------------------------------------------

    def overview(self) -> dict[str, Any]:
        """Columns by kind, missing cells, the target and how many columns training uses."""
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
        return {
            "by_kind": sorted(by_kind.items(), key=lambda kv: -len(kv[1])),
            "missing_cells": missing,
            "missing_share": missing / cells if cells else 0.0,
            "columns_with_missing": sum(1 for c in p.columns if c.n_missing),
            "target": target_info,
            "plan_used": used,
            "plan_dropped": dropped,
        }

    def target_distribution(self) -> TargetDistribution:
        """The target's distribution (all rows); call only with a target."""
        assert self.target is not None
        series = self.frame[self.target]
        if self.problem is not None and not self.is_classification:
            values = pd.to_numeric(series, errors="coerce").dropna().astype("float64")
            quant = values.quantile(list(TARGET_QUANTILES))
            return TargetDistribution(
                quantiles=[(q, float(quant[q])) for q in TARGET_QUANTILES],
                mean=float(values.mean()),
                std=float(values.std()),
                skew=float(values.skew()) if len(values) > 2 else 0.0,
            )
        counts = series.value_counts()
        total = int(counts.sum())
        return TargetDistribution(
            classes=[(str(k), int(v), v / total) for k, v in counts.items()],
            ratio=float(counts.iloc[0] / max(counts.iloc[-1], 1)) if len(counts) > 1 else 1.0,
        )

    def correlations(self) -> Correlations:
        """Correlations of the first `MAX_MATRIX` numeric columns and association of the first
        `MAX_MATRIX` columns of any kind, on the sample."""
        out = Correlations()
        numeric = [
            c.name
            for c in self.profile.columns
            if c.kind in (ColumnKind.NUMERIC, ColumnKind.BOOLEAN)
            and c.n_distinct > 1
            and is_number(self.sample[c.name])
        ]
        if len(numeric) > MAX_MATRIX:
            out.numeric_note = f"showing the first {MAX_MATRIX} of {len(numeric)} numeric columns"
            numeric = numeric[:MAX_MATRIX]
        out.numeric = numeric
        if len(numeric) >= 2:
            out.pearson, out.numeric_pairs = self._numeric_correlations(numeric)
        # Any-kind association: numbers and categories alike, via contingency tables.
        mixed = [
            c.name
            for c in self.profile.columns
            if c.kind in (ColumnKind.NUMERIC, ColumnKind.BOOLEAN, ColumnKind.CATEGORICAL)
            and c.name in self.codes
        ]
        if len(mixed) > MAX_MATRIX:
            out.mixed_note = f"showing the first {MAX_MATRIX} of {len(mixed)} columns"
            mixed = mixed[:MAX_MATRIX]
        out.mixed = mixed
        if len(mixed) >= 2:
            out.cramers, out.mixed_pairs = self._associations(mixed)
        return out

    def _numeric_correlations(
        self, numeric: list[str]
    ) -> tuple[np.ndarray, list[tuple[str, str, float, float]]]:
        data = self.sample[numeric].astype("float64")
        corr = data.corr(method="pearson")
        spearman = data.rank().corr(method="pearson")
        pairs = []
        for i, a in enumerate(numeric):
            for b in numeric[i + 1 :]:
                r, rho = float(corr.loc[a, b]), float(spearman.loc[a, b])
                if max(abs(r), abs(rho)) >= STRONG_CORRELATION:
                    pairs.append((a, b, r, rho))
        pairs.sort(key=lambda t: -max(abs(t[2]), abs(t[3])))
        return corr.to_numpy(), pairs

    def _associations(self, mixed: list[str]) -> tuple[np.ndarray, list[tuple[str, str, float]]]:
        k = {name: int(self.codes[name].max()) + 1 for name in mixed}
        m = np.eye(len(mixed))
        pairs = []
        for i, a in enumerate(mixed):
            for j in range(i + 1, len(mixed)):
                b = mixed[j]
                v = cramers_v(self.codes[a], k[a], self.codes[b], k[b])
                m[i, j] = m[j, i] = v
                if math.isfinite(v) and v >= STRONG_CORRELATION:
                    pairs.append((a, b, v))
        pairs.sort(key=lambda t: -t[2])
        return m, pairs[:MAX_ASSOCIATED_PAIRS]

    def association(self) -> tuple[list[dict[str, Any]], float]:
        """Each column's mutual information with the target (strongest first), and the
        target's entropy; call only with a target."""
        y = self.codes.get(str(self.target))
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
        return rows, h_y
