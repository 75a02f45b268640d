"""From the user's raw columns to the model's input columns.

Shared by training and by ONNX prediction, so it needs nothing but numpy and pandas. The
contract of the exported graph follows from it: numeric inputs are float32 with NaN for
missing; categorical and text inputs are strings with "" for missing; a datetime column becomes
numeric parts named `<column>__<part>`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from tabpilot.errors import InvalidInput

FeatureKind = Literal["numeric", "boolean", "categorical", "datetime", "text"]
InputKind = Literal["numeric", "categorical", "text"]

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
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
        if self.kind in ("categorical", "text"):
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
    out: dict[str, Any] = {}
    for spec in features:
        series = frame[spec.name]
        if spec.kind == "numeric":
            out[spec.name] = _numeric(series, spec.name, strict)
        elif spec.kind == "boolean":
            out[spec.name] = _boolean(series, spec.name, strict)
        elif spec.kind in ("categorical", "text"):
            out[spec.name] = _categorical(series)
        else:
            out.update(_datetime_parts(series, spec, strict))
    return pd.DataFrame(out, index=frame.index)


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
    dt = parsed.dt
    parts = {
        "year": dt.year,
        "month": dt.month,
        "day": dt.day,
        "dayofweek": dt.dayofweek,
        "dayofyear": dt.dayofyear,
        "days": (parsed - _EPOCH).dt.total_seconds() / 86400.0,
        "hour": dt.hour,
        "minute": dt.minute,
    }
    return {
        col: parts[col.rsplit("__", 1)[1]].to_numpy(dtype="float64", na_value=np.nan)
        for col, _ in spec.input_columns()
    }
