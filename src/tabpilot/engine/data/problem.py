"""Problem-type detection: one function, with a reason a person can read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from tabpilot.errors import InvalidInput

# Integer targets with at most this many distinct values are read as class codes.
MAX_INTEGER_CLASSES = 20
# A classification target with more classes than this is almost surely a mistake.
MAX_CLASSES = 200


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


def detect_problem_type(target: pd.Series, *, override: str | None = None) -> ProblemDecision:
    """Decide binary, multiclass or regression from the target's values.

    Text and boolean targets are classification; integer codes with few distinct values are
    classification; other numbers are regression. `override` ("binary", "multiclass",
    "regression", or "classification" to let the class count decide) wins, but is checked
    against the data.
    """
    present = target.dropna()
    name = target.name
    n_distinct = int(present.nunique())
    if n_distinct < 2:
        raise InvalidInput(
            f'Target column "{name}" has {n_distinct} distinct value(s) among its '
            f"{len(present)} non-missing rows: there is nothing to learn. Pick another target."
        )
    is_bool = pd.api.types.is_bool_dtype(present)
    is_number = pd.api.types.is_numeric_dtype(present) and not is_bool
    integer_valued = False
    if is_number:
        values = present.to_numpy(dtype="float64")
        integer_valued = bool(np.all(np.mod(values, 1) == 0))

    if override:
        return _decide_override(override, name, n_distinct, is_number)

    if is_bool:
        return ProblemDecision(ProblemType.BINARY, "the target holds true/false values", 2)
    if not is_number:
        kind = ProblemType.BINARY if n_distinct == 2 else ProblemType.MULTICLASS
        if n_distinct > MAX_CLASSES:
            raise InvalidInput(
                f'Target column "{name}" is text with {n_distinct} distinct values; that is '
                f"too many classes to learn (at most {MAX_CLASSES}). If it holds numbers "
                "written as text, clean the column; otherwise pick another target."
            )
        return ProblemDecision(kind, f"the target is text with {n_distinct} classes", n_distinct)
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
    allowed = ("binary", "multiclass", "regression", "classification")
    if choice not in allowed:
        raise InvalidInput(f'Unknown problem type "{override}"; use one of: {", ".join(allowed)}.')
    if choice == "regression":
        if not is_number:
            raise InvalidInput(
                f'Problem type "regression" needs a numeric target, but "{name}" holds text.'
                " Use binary or multiclass, or pick a numeric target."
            )
        return ProblemDecision(ProblemType.REGRESSION, "chosen by the user")
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
            ProblemType.BINARY, "chosen by the user (2 classes, so binary)", n_distinct
        )
    kind = ProblemType.BINARY if n_distinct == 2 else ProblemType.MULTICLASS
    return ProblemDecision(kind, "chosen by the user", n_distinct)
