"""The target: rows without one removed, the problem type decided, classes encoded as label
codes 0..K-1 (sorted labels), each removal recorded with its reason."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from tabpilot.engine.data.problem import ProblemDecision, ProblemType, decide_problem
from tabpilot.engine.data.profiling import ColumnProfile
from tabpilot.errors import InvalidInput


@dataclass
class Target:
    """The rows that can be learned from and their encoded target."""

    data: pd.DataFrame  # the usable rows, all columns
    problem: ProblemDecision
    classes: list[Any] | None  # labels as in the data, sorted; None for regression
    y: np.ndarray  # label codes (int64) or values (float64)
    rows_removed: list[dict[str, Any]]  # {"rows": n, "reason": ...} per removal


def prepare_target(
    frame: pd.DataFrame, column: ColumnProfile, problem_type: str | None, *, reason: str = ""
) -> Target:
    """Remove rows without a target, decide the problem type from the target's profile
    `column` (`problem_type` overrides the detection, checked against it) and encode the
    target. `reason` is the reason of a `problem_type` chosen before the run."""
    target = column.name
    rows_removed: list[dict[str, Any]] = []
    data = frame
    missing_target = data[target].isna()
    if missing_target.any():
        n = int(missing_target.sum())
        rows_removed.append({"rows": n, "reason": f'the target "{target}" is missing'})
        data = data[~missing_target]
    problem = decide_problem(column, len(frame), override=problem_type)
    if reason and str(problem.problem_type) == problem_type:
        # The choice stands as made before the run; keep the reason given then. (A choice the
        # data changed, such as "multiclass" on two classes, keeps the decision's reason.)
        problem = replace(problem, reason=reason)
    if not problem.problem_type.is_classification:
        y = data[target].to_numpy(dtype="float64")
        return Target(data, problem, None, y, rows_removed)
    data, classes, y = encode_classes(data, target, rows_removed)
    if len(classes) == 2 and problem.problem_type == ProblemType.MULTICLASS:
        problem = ProblemDecision(ProblemType.BINARY, problem.reason, 2)
    return Target(data, problem, classes, y, rows_removed)


def encode_classes(
    data: pd.DataFrame, target: str, rows_removed: list[dict[str, Any]]
) -> tuple[pd.DataFrame, list[Any], np.ndarray]:
    """Drop classes with a single row (recorded in `rows_removed`), and return the rows, the
    sorted classes and each row's label code."""
    labels = data[target]
    counts = labels.value_counts()
    tiny = counts[counts < 2]
    if len(tiny):
        shown = ", ".join(repr(plain(v)) for v in tiny.index[:10])
        rows_removed.append(
            {
                "rows": int(tiny.sum()),
                "reason": f"class(es) with a single row, too few to learn and test: {shown}",
            }
        )
        data = data[~labels.isin(tiny.index)]
        labels = data[target]
    classes = sorted(plain(v) for v in labels.unique())
    if len(classes) < 2:
        raise InvalidInput(
            f'Target "{target}" has fewer than 2 classes with at least 2 rows each; there is '
            "nothing to learn."
        )
    codes = pd.Categorical(labels.map(plain), categories=classes).codes
    return data, classes, np.asarray(codes, dtype=np.int64)


def plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so labels print and serialise as in the data."""
    if isinstance(value, np.generic):
        return value.item()
    return value
