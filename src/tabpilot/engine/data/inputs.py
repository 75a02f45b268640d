"""From the user's raw columns to the model's input columns.

Shared by training and by ONNX prediction, so it needs nothing but numpy and pandas. The
contract of the exported graph follows from it: numeric inputs are float32 with NaN for
missing; categorical and text inputs are strings with "" for missing; a datetime column becomes
numeric parts named `<column>__<part>`.

Two forms give the same values: `prepare_frame`/`prepare_columns` for a frame of any size, and
`prepare_row` for one row of plain Python values (a JSON request), which skips pandas, the
larger part of a single prediction's cost, and leaves the rare value it cannot read to the
frame form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from tabpilot.errors import InvalidInput

FeatureKind = Literal["numeric", "boolean", "categorical", "datetime", "text"]
InputKind = Literal["numeric", "categorical", "text"]

_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})
_STRING_KINDS = frozenset({"categorical", "text"})  # fed to the graph as strings
DATE_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "days")
TIME_PARTS = ("hour", "minute")
# Unix epoch based day counts keep trends usable by trees.
_EPOCH = pd.Timestamp("1970-01-01")


@dataclass(frozen=True)
class FeatureSpec:
    """One raw column the model learns from."""

    name: str
    kind: FeatureKind
    has_time: bool = False

    def input_columns(self) -> list[tuple[str, InputKind]]:
        """The model input columns this feature becomes, with their kinds."""
        if self.kind == "datetime":
            parts = DATE_PARTS + (TIME_PARTS if self.has_time else ())
            return [(f"{self.name}__{p}", "numeric") for p in parts]
        if self.kind in _STRING_KINDS:
            return [(self.name, self.kind)]
        return [(self.name, "numeric")]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def input_columns(features: list[FeatureSpec]) -> list[tuple[str, str]]:
    return [col for f in features for col in f.input_columns()]


def prepare_frame(
    frame: pd.DataFrame, features: list[FeatureSpec], *, strict: bool = False
) -> pd.DataFrame:
    """Turn raw columns into model input columns.

    With `strict`, values that cannot be read as their column's kind (text in a numeric
    column, an unparsable date) raise InvalidInput naming the rows and column; otherwise
    they become missing. Training uses the lenient form on data it has profiled itself;
    prediction uses the strict form on what a user sent.
    """
    return pd.DataFrame(prepare_columns(frame, features, strict=strict), index=frame.index)


def prepare_columns(
    frame: pd.DataFrame, features: list[FeatureSpec], *, strict: bool = False
) -> dict[str, np.ndarray]:
    """`prepare_frame`'s columns as arrays by input column name, without building a frame.

    Numeric inputs are float64 (NaN for missing), string inputs object arrays of `str`.
    """
    out: dict[str, np.ndarray] = {}
    for spec in features:
        series = frame[spec.name]
        if spec.kind == "numeric":
            out[spec.name] = _numeric(series, spec.name, strict)
        elif spec.kind == "boolean":
            out[spec.name] = _boolean(series, spec.name, strict)
        elif spec.kind in _STRING_KINDS:
            out[spec.name] = _categorical(series)
        else:
            out.update(_datetime_parts(series, spec, strict))
    return out


def prepare_row(row: Mapping[str, Any], features: list[FeatureSpec]) -> dict[str, Any] | None:
    """One row's input values, exactly as `prepare_frame` makes them from a one-row frame.

    Returns None where only the frame form can decide (a missing column, text in a numeric
    column, an unparsable date, a value of an unusual type): the caller then takes the frame
    form, which also raises the error naming the row and column.
    """
    out: dict[str, Any] = {}
    for spec in features:
        if spec.name not in row:
            return None
        value = row[spec.name]
        if spec.kind == "datetime":
            parts = _datetime_value_parts(value, spec)
            if parts is None:
                return None
            out.update(parts)
            continue
        converted = _scalar(value, spec.kind)
        if converted is _UNSURE:
            return None
        out[spec.name] = converted
    return out


_UNSURE = object()


def _scalar(value: Any, kind: FeatureKind) -> Any:
    """`value` as its column's converter makes it in a one-row frame, or `_UNSURE`.

    A one-row frame gives a column of the value's own type, so numbers and booleans convert
    directly and None or NaN is missing; text in a numeric column, and any type not listed
    here, is left to the frame form.
    """
    if kind in _STRING_KINDS:
        return _scalar_text(value)
    if kind in ("numeric", "boolean"):
        return _scalar_number(value, boolean=kind == "boolean")
    return _UNSURE


def _scalar_text(value: Any) -> Any:
    """As `_categorical`: missing is "", numbers and booleans as Python writes them."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return "" if math.isnan(value) else str(value)
    if isinstance(value, bool | int):
        return str(value)
    return _UNSURE


def _scalar_number(value: Any, *, boolean: bool) -> Any:
    """As `_numeric` and `_boolean`: a float, NaN for missing; true/false words for booleans."""
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float):
        return float(value)
    if boolean and isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return 1.0
        if text in _FALSE:
            return 0.0
        if text == "":
            return math.nan
    return _UNSURE


def _bad_rows(series: pd.Series, bad: pd.Series, name: str, expected: str) -> InvalidInput:
    rows = list(np.flatnonzero(bad.to_numpy())[:5])
    shown = ", ".join(f"row {int(r) + 1} ({series.iloc[r]!r})" for r in rows)
    return InvalidInput(
        f'Column "{name}" expects {expected}, but {int(bad.sum())} value(s) are not: {shown}. '
        "Fix or blank those cells.",
        details={"column": name, "rows": [int(r) + 1 for r in rows]},
    )


def _numeric(series: pd.Series, name: str, strict: bool) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series):
        return series.astype("float64").to_numpy()
    if pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype="float64", na_value=np.nan)
    text = series.astype("string").str.strip()
    values = pd.to_numeric(text.replace("", pd.NA), errors="coerce")
    if strict:
        bad = values.isna() & text.fillna("").ne("")
        if bad.any():
            raise _bad_rows(series, bad, name, "numbers")
    return values.to_numpy(dtype="float64", na_value=np.nan)


def _boolean(series: pd.Series, name: str, strict: bool) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.astype("float64").to_numpy()
    text = series.astype("string").str.strip().str.lower()
    values = pd.Series(np.nan, index=series.index, dtype="float64")
    values[text.isin(_TRUE).fillna(False).to_numpy(dtype=bool)] = 1.0
    values[text.isin(_FALSE).fillna(False).to_numpy(dtype=bool)] = 0.0
    if strict:
        bad = values.isna() & text.fillna("").ne("")
        if bad.any():
            raise _bad_rows(series, bad, name, "true/false (or yes/no, 1/0)")
    return values.to_numpy()


def _categorical(series: pd.Series) -> np.ndarray:
    dtype = series.dtype
    if (
        isinstance(dtype, pd.StringDtype)
        and dtype.storage == "pyarrow"
        and hasattr(series.array, "__arrow_array__")
    ):
        # Text read by the CSV reader: the same strings straight from Arrow memory, without
        # the second string array that astype() builds (a large part of a CSV chunk's cost).
        import pyarrow.compute as pc

        values = pc.fill_null(series.array.__arrow_array__(), "")
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)
    text = series.astype("string").fillna("")
    return text.to_numpy(dtype=object)


def _datetime_parts(series: pd.Series, spec: FeatureSpec, strict: bool) -> dict[str, np.ndarray]:
    if pd.api.types.is_datetime64_any_dtype(series):
        parsed = series
    else:
        parsed = pd.to_datetime(series, errors="coerce", format="mixed")
        if strict:
            bad = parsed.isna() & series.notna() & series.astype("string").str.strip().ne("")
            if bad.any():
                raise _bad_rows(series, bad, spec.name, "dates")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    parts = _date_parts(parsed.dt, (parsed - _EPOCH).dt.total_seconds() / 86400.0)
    return {
        col: parts[col.rsplit("__", 1)[1]].to_numpy(dtype="float64", na_value=np.nan)
        for col, _ in spec.input_columns()
    }


def _datetime_value_parts(value: Any, spec: FeatureSpec) -> dict[str, float] | None:
    """`_datetime_parts` of one value, or None to leave it to the frame form.

    Parsing one scalar is the same parser (`format="mixed"`) without the cost of a Series.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {column: math.nan for column, _ in spec.input_columns()}
    if not isinstance(value, str):
        return None
    try:
        parsed = pd.to_datetime(value, errors="coerce", format="mixed")
    except (ValueError, TypeError, OverflowError):
        return None
    if not isinstance(parsed, pd.Timestamp) or pd.isna(parsed):
        return None  # the frame form raises the error naming the row
    if parsed.tzinfo is not None:
        parsed = parsed.tz_convert("UTC").tz_localize(None)
    parts = _date_parts(parsed, (parsed - _EPOCH).total_seconds() / 86400.0)
    return {column: float(parts[column.rsplit("__", 1)[1]]) for column, _ in spec.input_columns()}


def _date_parts(when: Any, days: Any) -> dict[str, Any]:
    """Every part by name: `when` is a Series' `.dt` or one Timestamp, `days` its epoch days."""
    return {
        "year": when.year,
        "month": when.month,
        "day": when.day,
        "dayofweek": when.dayofweek,
        "dayofyear": when.dayofyear,
        "days": days,
        "hour": when.hour,
        "minute": when.minute,
    }
