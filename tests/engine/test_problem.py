import numpy as np
import pandas as pd
import pytest

from tabpilot.engine.data.problem import (
    ProblemType,
    can_decide,
    decide_problem,
    detect_problem_type,
)
from tabpilot.engine.data.profiling import ColumnProfile, profile_column
from tabpilot.errors import InvalidInput


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["yes", "no", "yes"], ProblemType.BINARY),
        (["a", "b", "c", "a"], ProblemType.MULTICLASS),
        ([True, False, True], ProblemType.BINARY),
        ([0, 1, 1, 0], ProblemType.BINARY),
        ([1, 2, 3, 1, 2], ProblemType.MULTICLASS),
        ([1.5, 2.25, 3.0, 4.75], ProblemType.REGRESSION),
        (list(range(100)), ProblemType.REGRESSION),
    ],
)
def test_detects_problem_type(values: list, expected: ProblemType) -> None:
    decision = detect_problem_type(pd.Series(values, name="y"))
    assert decision.problem_type == expected
    assert decision.reason


def test_integer_codes_with_few_values_are_classes_with_reason() -> None:
    decision = detect_problem_type(pd.Series(np.tile([1, 2, 3], 50), name="wine"))
    assert decision.problem_type == ProblemType.MULTICLASS
    assert "3 distinct integer codes" in decision.reason


def test_single_value_target_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="nothing to learn"):
        detect_problem_type(pd.Series([1, 1, 1, None], name="y"))


def test_override_wins_but_is_checked() -> None:
    ints = pd.Series(list(range(30)) * 2, name="y")
    assert detect_problem_type(ints, override="multiclass").problem_type == ProblemType.MULTICLASS
    with pytest.raises(InvalidInput, match="exactly 2 classes"):
        detect_problem_type(ints, override="binary")
    with pytest.raises(InvalidInput, match="numeric target"):
        detect_problem_type(pd.Series(["a", "b"], name="y"), override="regression")
    with pytest.raises(InvalidInput, match="Unknown problem type"):
        detect_problem_type(ints, override="ranking")


def test_text_target_with_too_many_classes_is_refused() -> None:
    with pytest.raises(InvalidInput, match="too many classes"):
        detect_problem_type(pd.Series([f"v{i}" for i in range(500)], name="y"))


@pytest.mark.parametrize(
    "values",
    [
        ["yes", "no", "yes", None],
        [True, False, True],
        [0, 1, 1, 0],
        [1, 2, 3, 1, 2, None],
        [1.5, 2.25, 3.0, 4.75],
        list(range(100)),
    ],
)
def test_the_profile_decides_as_the_series_does(values: list) -> None:
    series = pd.Series(values, name="y")
    column = profile_column(series)
    stored = ColumnProfile.from_dict(column.to_dict())
    expected = detect_problem_type(series)
    assert decide_problem(column, len(series)) == expected
    assert decide_problem(stored, len(series)) == expected


def test_the_profile_checks_an_override_with_the_true_class_count() -> None:
    column = profile_column(pd.Series(range(300), name="amount"))
    with pytest.raises(InvalidInput, match='"amount" has 300 distinct values'):
        decide_problem(column, 300, override="multiclass")
    with pytest.raises(InvalidInput, match="nothing to learn") as caught:
        decide_problem(profile_column(pd.Series([1, 1, None], name="y")), 3)
    assert "among its 2 non-missing rows" in caught.value.message


def test_a_profile_stored_before_integer_codes_were_recorded_defers_numbers() -> None:
    old = ColumnProfile.from_dict({"name": "y", "kind": "numeric", "dtype": "float64"})
    assert old.integer_valued is None and not can_decide(old)
    text = ColumnProfile.from_dict({"name": "y", "kind": "categorical", "dtype": "object"})
    assert can_decide(text)
