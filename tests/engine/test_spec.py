"""TrainSpec: checks without data, resolution against a profile, storing and reading back."""

from __future__ import annotations

from typing import Any

import pytest

from tabpilot.engine.data.profiling import DatasetProfile, profile_frame
from tabpilot.engine.spec import SET_BY_USER, TrainRequest, TrainSpec
from tabpilot.errors import InvalidInput
from tests.conftest import make_mixed_frame


@pytest.fixture(scope="module")
def profile() -> DatasetProfile:
    frame = make_mixed_frame(200, seed=4, task="multiclass")
    return profile_frame(frame)


def resolve(profile: DatasetProfile, **fields: Any) -> TrainSpec:
    return TrainSpec.resolve(TrainRequest(**fields), profile, dataset_name="shop")


def test_resolve_fills_every_automatic_choice_with_its_reason(profile: DatasetProfile) -> None:
    spec = resolve(profile, target="label")
    assert spec.problem_type == "multiclass"
    assert spec.problem_type_reason.startswith("detected: ")
    assert "3 distinct integer codes" in spec.problem_type_reason
    assert spec.metric == "log_loss" and spec.metric_reason == "the default for multiclass problems"
    assert spec.time_budget == 30.0 and "chosen from the data size" in spec.time_budget_reason
    assert spec.seed == 0 and spec.test_size == 0.2 and spec.estimators is None
    assert spec.dataset_name == "shop"


def test_resolve_records_the_users_choices(profile: DatasetProfile) -> None:
    spec = resolve(
        profile,
        target="label",
        problem_type="classification",
        metric="Accuracy",
        time_budget=12,
        estimators=["lgbm", "lgbm", "linear"],
        exclude=["x1"],
        seed=5,
        test_size=0.3,
    )
    assert (spec.problem_type, spec.problem_type_reason) == ("multiclass", "chosen by the user")
    assert (spec.metric, spec.metric_reason) == ("accuracy", SET_BY_USER)
    assert (spec.time_budget, spec.time_budget_reason) == (12.0, SET_BY_USER)
    assert spec.estimators == ("lgbm", "linear") and spec.exclude == ("x1",)
    assert spec.seed == 5 and spec.test_size == 0.3


def test_resolve_reports_every_problem_by_field(profile: DatasetProfile) -> None:
    with pytest.raises(InvalidInput) as caught:
        resolve(
            profile,
            target="label",
            metric="rmse",
            time_budget=2,
            seed=-1,
            test_size=0.9,
            estimators=["catboost"],
            include=["ghost"],
        )
    problems = caught.value.details["problems"]
    assert set(problems) == {
        "metric",
        "time_budget",
        "seed",
        "test_size",
        "estimators",
        "include",
    }
    assert "not available for multiclass" in problems["metric"]
    assert "between 5 and 86400" in problems["time_budget"]
    assert "'catboost'" in problems["estimators"]
    with pytest.raises(InvalidInput, match='not found in dataset "shop"') as caught:
        resolve(profile, target="nope")
    assert set(caught.value.details["problems"]) == {"target"}


def test_a_spec_checks_what_needs_no_data_when_built() -> None:
    with pytest.raises(InvalidInput, match="Time budget 1 s is out of range") as caught:
        TrainSpec(target="y", time_budget=1, estimators=("catboost",), seed=-2)
    assert set(caught.value.details["problems"]) == {"time_budget", "estimators", "seed"}
    with pytest.raises(InvalidInput, match="is the target"):
        TrainSpec(target="y", exclude=("y",))
    with pytest.raises(InvalidInput, match='Metric "rmse" is not available for binary'):
        TrainSpec(target="y", problem_type="binary", metric="rmse")
    spec = TrainSpec(target="y", metric="MAE", problem_type="Regression", include=["a", "a"])  # type: ignore[arg-type]
    assert (spec.metric, spec.problem_type, spec.include) == ("mae", "regression", ("a",))


def test_from_request_keeps_automatic_choices_for_the_engine() -> None:
    spec = TrainSpec.from_request(TrainRequest(target="y", time_budget=20, include="a, b"))  # type: ignore[arg-type]
    assert spec.problem_type is None and spec.problem_type_reason == ""
    assert spec.metric is None and spec.metric_reason == ""
    assert (spec.time_budget, spec.time_budget_reason) == (20.0, SET_BY_USER)
    assert spec.include == ("a", "b")
    assert TrainSpec.from_request(
        TrainRequest(target="y", problem_type="binary")
    ).problem_type_reason == ("chosen by the user")


def test_to_dict_and_from_dict_round_trip(profile: DatasetProfile) -> None:
    spec = resolve(profile, target="label", estimators=["rf"], include=["x1"])
    stored = spec.to_dict()
    assert stored["include"] == ["x1"] and stored["estimators"] == ["rf"]
    assert TrainSpec.from_dict(stored) == spec
    assert TrainSpec.from_dict(resolve(profile, target="label").to_dict()).estimators is None


def test_from_dict_reads_a_spec_stored_by_the_previous_version() -> None:
    # What build_job_spec wrote before TrainSpec: no metric_reason, no test_size.
    old = {
        "target": "label",
        "problem_type": "binary",
        "problem_type_reason": "detected: the target holds two integer codes",
        "metric": "roc_auc",
        "time_budget": 30.0,
        "time_budget_reason": "chosen from the data size: 120 rows x 5 features -> 30 s",
        "include": [],
        "exclude": [],
        "estimators": None,
        "seed": 0,
        "dataset_name": "customers",
    }
    spec = TrainSpec.from_dict(old)
    assert spec.problem_type_reason == old["problem_type_reason"]
    assert spec.time_budget_reason == old["time_budget_reason"]
    assert spec.metric_reason == "" and spec.test_size == 0.2
    assert {k: v for k, v in spec.to_dict().items() if k in old} == old


def test_from_dict_coerces_types_and_ignores_other_keys() -> None:
    spec = TrainSpec.from_dict(
        {
            "target": "y",
            "time_budget": 12,
            "include": ["a"],
            "exclude": "b, c",
            "estimators": [],
            "seed": "3",
            "time_budget_reason": "chosen from the data size",
            "dataset_name": "x",
            "notes_for_humans": "ignored",
        }
    )
    assert spec.target == "y" and spec.time_budget == 12.0
    assert spec.include == ("a",) and spec.exclude == ("b", "c")
    assert spec.estimators is None and spec.seed == 3


@pytest.mark.parametrize(
    ("stored", "message"),
    [({}, "names no target column"), ({"target": "y", "seed": "x"}, "options are invalid")],
)
def test_from_dict_rejects_a_broken_spec(stored: dict, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        TrainSpec.from_dict(stored)


def test_profile_round_trips_through_its_dict(profile: DatasetProfile) -> None:
    again = DatasetProfile.from_dict(profile.to_dict())
    assert again.to_dict() == profile.to_dict()
    old = DatasetProfile.from_dict({"columns": [{"name": "y", "dtype": "float64"}]}, n_rows=9)
    assert old.n_rows == 9 and old.columns[0].integer_valued is None


def test_the_engine_keeps_a_reason_given_before_the_run() -> None:
    import pandas as pd

    from tabpilot.engine.data.profiling import profile_column
    from tabpilot.engine.training.targets import prepare_target

    frame = pd.DataFrame({"y": [0, 1] * 10, "x": range(20)})
    column = profile_column(frame["y"])
    kept = prepare_target(frame, column, "binary", reason="detected: two codes")
    assert kept.problem.reason == "detected: two codes"
    changed = prepare_target(frame, column, "multiclass", reason="chosen by the user")
    assert str(changed.problem.problem_type) == "binary"
    assert changed.problem.reason == "chosen by the user (2 classes, so binary)"
    assert prepare_target(frame, column, None).problem.reason == (
        "the target holds two integer codes"
    )
