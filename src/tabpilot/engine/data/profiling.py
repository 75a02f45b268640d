"""Column profiling: what kind each column is, and its statistics.

The profile is the shared vocabulary of the engine: problem detection, column selection,
preprocessing and the reports all read it. It must stay fast on a million rows, so every
statistic is one vectorised pandas pass, and expensive guesses (datetime parsing, text
length) look at a sample.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

SAMPLE_SIZE = 2000
TOP_VALUES = 10
# Unique integers spanning at most this many times their count look like row numbers.
ID_RANGE_SLACK = 1.5
EXAMPLES = 5


class ColumnKind(StrEnum):
    NUMERIC = "numeric"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"
    DATETIME = "datetime"
    TEXT = "text"
    IDENTIFIER = "identifier"


@dataclass
class ColumnProfile:
    """Everything the engine knows about one column before training."""

    name: str
    kind: ColumnKind
    dtype: str
    n_missing: int
    missing_fraction: float
    n_distinct: int
    unique_per_row: bool
    kind_reason: str
    stats: dict[str, float] = field(default_factory=dict)
    top_values: list[tuple[str, int]] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    # None: unknown, in a profile stored before this fact was recorded.
    integer_valued: bool | None = False

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = str(self.kind)
        out["top_values"] = [{"value": v, "count": c} for v, c in self.top_values]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnProfile:
        """The inverse of `to_dict`; keys it does not know (such as the stored `as_target`)
        are ignored, and a profile stored by an older version gets defaults for what it
        lacks."""
        return cls(
            name=str(data["name"]),
            kind=ColumnKind(data.get("kind") or ColumnKind.CATEGORICAL),
            dtype=str(data.get("dtype", "")),
            n_missing=int(data.get("n_missing") or 0),
            missing_fraction=float(data.get("missing_fraction") or 0.0),
            n_distinct=int(data.get("n_distinct") or 0),
            unique_per_row=bool(data.get("unique_per_row")),
            kind_reason=str(data.get("kind_reason", "")),
            stats=dict(data.get("stats") or {}),
            top_values=[(str(t["value"]), int(t["count"])) for t in data.get("top_values") or []],
            examples=[str(e) for e in data.get("examples") or []],
            integer_valued=(
                bool(data["integer_valued"]) if data.get("integer_valued") is not None else None
            ),
        )


@dataclass
class DatasetProfile:
    n_rows: int
    n_columns: int
    n_duplicate_rows: int
    memory_bytes: int
    columns: list[ColumnProfile]

    def column(self, name: str) -> ColumnProfile:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_rows": self.n_rows,
            "n_columns": self.n_columns,
            "n_duplicate_rows": self.n_duplicate_rows,
            "memory_bytes": self.memory_bytes,
            "columns": [c.to_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, n_rows: int | None = None) -> DatasetProfile:
        """The inverse of `to_dict`, reading the stored profile of a dataset record (whose
        extra keys, such as `warnings` and `preview`, are ignored). `n_rows` fills in for a
        profile stored without its row count."""
        columns = [ColumnProfile.from_dict(c) for c in data.get("columns") or []]
        rows = data.get("n_rows")
        return cls(
            n_rows=int(rows if rows is not None else n_rows or 0),
            n_columns=int(data.get("n_columns") or len(columns)),
            n_duplicate_rows=int(data.get("n_duplicate_rows") or 0),
            memory_bytes=int(data.get("memory_bytes") or 0),
            columns=columns,
        )


# Name tokens that suggest an identifier. Tokens, not substrings: "product_width" and "paid"
# end in "id" but are not identifiers.
_ID_TOKENS = {"id", "ids", "uuid", "guid", "key", "pk", "index", "idx", "number", "no", "num"}
_CODE_LIKE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-./:#]*$")


def name_tokens(name: str) -> list[str]:
    """Split a column name into lower-case words: `customerID` -> [customer, id]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def looks_like_id_name(name: str) -> bool:
    return bool(set(name_tokens(name)) & _ID_TOKENS)


def profile_frame(frame: pd.DataFrame) -> DatasetProfile:
    """Profile every column of `frame`."""
    n_rows = len(frame)
    hashes = pd.util.hash_pandas_object(frame, index=False)
    n_dup = int(hashes.duplicated().sum())
    return DatasetProfile(
        n_rows=n_rows,
        n_columns=frame.shape[1],
        n_duplicate_rows=n_dup,
        memory_bytes=int(frame.memory_usage(deep=False, index=False).sum()),
        columns=[profile_column(frame[c]) for c in frame.columns],
    )


def profile_column(series: pd.Series) -> ColumnProfile:
    n = len(series)
    n_missing = int(series.isna().sum())
    present = series.dropna()
    n_distinct = int(present.nunique())
    unique_per_row = n_distinct == len(present) and len(present) > 1
    kind, reason, integer_valued = _detect_kind(series, present, n_distinct, unique_per_row)
    prof = ColumnProfile(
        name=str(series.name),
        kind=kind,
        dtype=str(series.dtype),
        n_missing=n_missing,
        missing_fraction=(n_missing / n) if n else 0.0,
        n_distinct=n_distinct,
        unique_per_row=unique_per_row,
        kind_reason=reason,
        integer_valued=integer_valued,
    )
    if len(present):
        counts = present.value_counts().head(TOP_VALUES)
        prof.top_values = [(_fmt(v), int(c)) for v, c in counts.items()]
        prof.examples = [_fmt(v) for v in present.head(EXAMPLES)]
    prof.stats = _stats(present, kind)
    return prof


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _is_numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _detect_kind(
    series: pd.Series, present: pd.Series, n_distinct: int, unique_per_row: bool
) -> tuple[ColumnKind, str, bool]:
    name = str(series.name)
    if pd.api.types.is_bool_dtype(series):
        return ColumnKind.BOOLEAN, "true/false values", False
    if pd.api.types.is_datetime64_any_dtype(series):
        return ColumnKind.DATETIME, "dates or timestamps", False
    if _is_numeric(series):
        values = present.to_numpy(dtype="float64", na_value=np.nan)
        integer_valued = bool(len(values)) and bool(np.all(np.mod(values, 1) == 0))
        if integer_valued and unique_per_row and len(values) >= 20:
            if looks_like_id_name(name):
                return ColumnKind.IDENTIFIER, "integer, unique per row, named like an id", True
            lo, hi = values.min(), values.max()
            # A row counter, even after sampling or filtering rows: unique integers that
            # fill most of their range (a measurement would leave gaps or repeat).
            if hi - lo + 1 <= ID_RANGE_SLACK * len(values):
                return (
                    ColumnKind.IDENTIFIER,
                    "unique integers filling their range (a row number)",
                    True,
                )
        if n_distinct == 2 and integer_valued and set(np.unique(values)) <= {0.0, 1.0}:
            return ColumnKind.BOOLEAN, "only the values 0 and 1", True
        return ColumnKind.NUMERIC, "numbers", integer_valued
    # Text from here on.
    if not len(present):
        return ColumnKind.CATEGORICAL, "no values at all", False
    sample = present.sample(min(len(present), SAMPLE_SIZE), random_state=0).astype(str)
    if _looks_like_datetime(sample):
        return ColumnKind.DATETIME, "text that parses as dates", False
    lowered = set(sample.str.strip().str.lower().unique())
    if n_distinct == 2 and lowered <= {"true", "false", "yes", "no", "y", "n", "t", "f"}:
        return ColumnKind.BOOLEAN, "yes/no or true/false text", False
    words = sample.str.split().str.len().mean()
    many_distinct = n_distinct > 0.5 * len(present) and n_distinct > 50
    if unique_per_row and len(present) >= 20:
        if looks_like_id_name(name):
            return ColumnKind.IDENTIFIER, "unique per row and named like an id", False
        if words <= 1.2 and sample.str.match(_CODE_LIKE).mean() > 0.95:
            return ColumnKind.IDENTIFIER, "unique per row, code-like values", False
        return ColumnKind.TEXT, "free text, unique per row", False
    if many_distinct and words >= 3:
        return ColumnKind.TEXT, f"free text ({words:.1f} words on average)", False
    return ColumnKind.CATEGORICAL, f"text with {n_distinct} distinct values", False


def _looks_like_datetime(sample: pd.Series) -> bool:
    # Require digits and a date separator: plain words or codes must not parse as dates.
    if sample.str.contains(r"\d{1,4}[-/.:]\d{1,2}", regex=True).mean() < 0.95:
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.95)


def _stats(present: pd.Series, kind: ColumnKind) -> dict[str, float]:
    if not len(present):
        return {}
    if kind in (ColumnKind.NUMERIC, ColumnKind.IDENTIFIER) and _is_numeric(present):
        values = present.astype("float64")
        q = values.quantile([0.05, 0.25, 0.5, 0.75, 0.95])
        return {
            "min": float(values.min()),
            "p05": float(q[0.05]),
            "p25": float(q[0.25]),
            "median": float(q[0.5]),
            "p75": float(q[0.75]),
            "p95": float(q[0.95]),
            "max": float(values.max()),
            "mean": float(values.mean()),
            "std": float(values.std()) if len(values) > 1 else 0.0,
            "skew": float(values.skew()) if len(values) > 2 else 0.0,
            "zeros": float((values == 0).mean()),
        }
    if kind == ColumnKind.DATETIME:
        parsed = (
            present
            if pd.api.types.is_datetime64_any_dtype(present)
            else pd.to_datetime(present, errors="coerce", format="mixed")
        )
        return {"min": str(parsed.min()), "max": str(parsed.max())}  # type: ignore[dict-item]
    lengths = present.astype(str).str.len()
    return {"mean_length": float(lengths.mean()), "max_length": float(lengths.max())}
