"""Problem-type decision: one function, from a column's profile, with a reason a person can read.

The target's problem type is decided at three points: when a dataset is uploaded (each
column's `as_target`), when a job is created (checked against the stored profile, without the
file) and when training starts (against the data read). All three call `decide_problem` with
the target's `ColumnProfile`, so they cannot disagree; `detect_problem_type` is the same
decision for a Series that has no profile yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from tabpilot.engine.data.profiling import ColumnKind, ColumnProfile
from tabpilot.errors import InvalidInput

# Integer targets with at most this many distinct values are read as class codes.
MAX_INTEGER_CLASSES = 20
# A classification target with more classes than this is almost surely a mistake.
MAX_CLASSES = 200
# What a user may ask for; "classification" lets the class count choose binary or multiclass.
PROBLEM_CHOICES = ("binary", "multiclass", "regression", "classification")
USER_CHOICE = "chosen by the user"


class ProblemType(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"

    @property
    def is_classification(self) -> bool:
        return self is not ProblemType.REGRESSION


@dataclass(frozen=True)
class ProblemDecision:
    problem_type: ProblemType
    reason: str
    n_classes: int | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "problem_type": str(self.problem_type),
            "reason": self.reason,
            "n_classes": self.n_classes,
        }


def _dtype_is(dtype: str, test: str) -> bool:
    try:
        kind = pd.api.types.pandas_dtype(dtype)
    except (TypeError, ValueError):
        return False
    if test == "bool":
        return bool(pd.api.types.is_bool_dtype(kind))
    return bool(pd.api.types.is_numeric_dtype(kind)) and not pd.api.types.is_bool_dtype(kind)


def can_decide(column: ColumnProfile) -> bool:
    """False for a numeric column of a profile stored before `integer_valued` was recorded:
    whether it holds class codes is then only known from the data."""
    return column.integer_valued is not None or not _dtype_is(column.dtype, "number")


def decide_problem(
    column: ColumnProfile, n_rows: int, *, override: str | None = None
) -> ProblemDecision:
    """Decide binary, multiclass or regression from the target column's profile.

    Text and boolean targets are classification; integer codes with few distinct values are
    classification; other numbers are regression. `override` ("binary", "multiclass",
    "regression", or "classification" to let the class count decide) wins, but is checked
    against the column. `n_rows` is the number of rows the profile describes.

    Raises:
        InvalidInput: the column cannot be a target (one value, too many classes), or the
            override does not fit it.
    """
    name = column.name
    n_distinct = int(column.n_distinct)
    if n_distinct < 2:
        n_present = max(int(n_rows) - int(column.n_missing), 0)
        raise InvalidInput(
            f'Target column "{name}" has {n_distinct} distinct value(s) among its '
            f"{n_present} non-missing rows: there is nothing to learn. Pick another target."
        )
    is_bool = _dtype_is(column.dtype, "bool")
    is_number = not is_bool and _dtype_is(column.dtype, "number")
    if override:
        return _decide_override(override, name, n_distinct, is_number)
    if is_bool:
        return ProblemDecision(ProblemType.BINARY, "the target holds true/false values", 2)
    if not is_number:
        return _decide_text(name, n_distinct)
    return _decide_number(n_distinct, bool(column.integer_valued))


def _decide_text(name: str, n_distinct: int) -> ProblemDecision:
    if n_distinct > MAX_CLASSES:
        raise InvalidInput(
            f'Target column "{name}" is text with {n_distinct} distinct values; that is '
            f"too many classes to learn (at most {MAX_CLASSES}). If it holds numbers "
            "written as text, clean the column; otherwise pick another target."
        )
    kind = ProblemType.BINARY if n_distinct == 2 else ProblemType.MULTICLASS
    return ProblemDecision(kind, f"the target is text with {n_distinct} classes", n_distinct)


def _decide_number(n_distinct: int, integer_valued: bool) -> ProblemDecision:
    if integer_valued and n_distinct == 2:
        return ProblemDecision(ProblemType.BINARY, "the target holds two integer codes", n_distinct)
    if integer_valued and n_distinct <= MAX_INTEGER_CLASSES:
        return ProblemDecision(
            ProblemType.MULTICLASS,
            f"the target holds {n_distinct} distinct integer codes "
            f"(at most {MAX_INTEGER_CLASSES} are read as classes)",
            n_distinct,
        )
    if integer_valued:
        reason = f"the target holds integers with {n_distinct} distinct values (a count/amount)"
    else:
        reason = "the target holds real numbers"
    return ProblemDecision(ProblemType.REGRESSION, reason)


def _decide_override(
    override: str, name: object, n_distinct: int, is_number: bool
) -> ProblemDecision:
    choice = override.strip().lower()
    if choice not in PROBLEM_CHOICES:
        raise InvalidInput(
            f'Unknown problem type "{override}"; use one of: {", ".join(PROBLEM_CHOICES)}.'
        )
    if choice == "regression":
        if not is_number:
            raise InvalidInput(
                f'Problem type "regression" needs a numeric target, but "{name}" holds text.'
                " Use binary or multiclass, or pick a numeric target."
            )
        return ProblemDecision(ProblemType.REGRESSION, USER_CHOICE)
    if n_distinct > MAX_CLASSES:
        raise InvalidInput(
            f'Target "{name}" has {n_distinct} distinct values: too many classes for '
            f"{choice} (at most {MAX_CLASSES}). Use regression for a numeric target."
        )
    if choice == "binary" and n_distinct != 2:
        raise InvalidInput(
            f'Problem type "binary" needs exactly 2 classes, but "{name}" has {n_distinct}. '
            "Use multiclass."
        )
    if choice == "multiclass" and n_distinct == 2:
        return ProblemDecision(
            ProblemType.BINARY, f"{USER_CHOICE} (2 classes, so binary)", n_distinct
        )
    kind = ProblemType.BINARY if n_distinct == 2 else ProblemType.MULTICLASS
    return ProblemDecision(kind, USER_CHOICE, n_distinct)


def target_profile(target: pd.Series) -> ColumnProfile:
    """The few profile facts `decide_problem` reads, computed from a Series (cheaper than
    `profile_column`, which also guesses kinds and counts values)."""
    present = target.dropna()
    is_bool = pd.api.types.is_bool_dtype(present)
    integer_valued = False
    if pd.api.types.is_numeric_dtype(present) and not is_bool:
        values = present.to_numpy(dtype="float64")
        integer_valued = bool(np.all(np.mod(values, 1) == 0))
    n_missing = len(target) - len(present)
    return ColumnProfile(
        name=str(target.name),
        kind=ColumnKind.BOOLEAN if is_bool else ColumnKind.NUMERIC,
        dtype=str(target.dtype),
        n_missing=n_missing,
        missing_fraction=n_missing / len(target) if len(target) else 0.0,
        n_distinct=int(present.nunique()),
        unique_per_row=False,
        kind_reason="",
        integer_valued=integer_valued,
    )


def detect_problem_type(target: pd.Series, *, override: str | None = None) -> ProblemDecision:
    """`decide_problem` for a target Series: its profile facts, then the decision."""
    return decide_problem(target_profile(target), len(target), override=override)
