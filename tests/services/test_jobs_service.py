"""Job validation against a stored profile, without HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tabpilot.context import AppContext
from tabpilot.errors import Conflict, InvalidInput
from tabpilot.records import DatasetRecord, JobStatus
from tabpilot.services import jobs
from tabpilot.services.datasets import describe_dataset
from tests.api.support import make_ctx, runner_of
from tests.conftest import make_mixed_frame
from tests.factories import OWNER, dataset_record


def test_job_validation_uses_the_engine_tables_without_training_libraries() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import tabpilot.services.jobs as j; import tabpilot.engine.spec as s; "
        "from tabpilot.engine.choices import ESTIMATORS; assert s.ESTIMATORS is ESTIMATORS; "
        "assert j.TrainSpec is s.TrainSpec; "
        "bad = [m for m in ('flaml', 'sklearn', 'lightgbm', 'xgboost') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture(scope="module")
def dataset() -> DatasetRecord:
    frame = make_mixed_frame(200, seed=4, task="multiclass")
    frame["amount"] = frame["x2"] * 10
    profile = describe_dataset(frame)
    return dataset_record(
        name="shop",
        filename="shop.csv",
        n_rows=len(frame),
        n_columns=frame.shape[1],
        profile=profile,
    )


def spec(dataset: DatasetRecord, **fields: Any) -> dict[str, Any]:
    request = jobs.JobRequest(dataset_id=dataset.id, **fields)
    return jobs.build_job_spec(dataset, request).to_dict()


def test_spec_resolves_every_automatic_choice(dataset: DatasetRecord) -> None:
    result = spec(dataset, target="label")
    assert result["problem_type"] == "multiclass"
    assert "3 distinct integer codes" in result["problem_type_reason"]
    assert result["metric"] == "log_loss"
    assert result["time_budget"] == 30.0
    assert result["estimators"] is None and result["include"] == [] and result["seed"] == 0
    assert result["dataset_name"] == "shop"


@pytest.mark.parametrize(
    ("override", "expected"),
    [("classification", "multiclass"), ("multiclass", "multiclass"), ("regression", "regression")],
)
def test_problem_type_override_uses_the_engine_rules(
    dataset: DatasetRecord, override: str, expected: str
) -> None:
    result = spec(dataset, target="label", problem_type=override)
    assert result["problem_type"] == expected
    assert result["problem_type_reason"].startswith("chosen by the user")
    default = {"multiclass": "log_loss", "regression": "rmse"}[expected]
    assert result["metric"] == default


def test_binary_override_on_three_classes_is_refused(dataset: DatasetRecord) -> None:
    with pytest.raises(InvalidInput, match="exactly 2 classes") as caught:
        spec(dataset, target="label", problem_type="binary")
    assert set(caught.value.details["problems"]) == {"problem_type"}


def test_many_valued_number_cannot_be_classification(dataset: DatasetRecord) -> None:
    frame = make_mixed_frame(400, seed=4)
    frame["amount"] = range(400)
    record = dataset_record(
        name="n", n_rows=400, n_columns=frame.shape[1], profile=describe_dataset(frame)
    )
    with pytest.raises(InvalidInput, match="too many classes"):
        spec(record, target="amount", problem_type="multiclass")
    assert spec(record, target="amount")["problem_type"] == "regression"


def test_auto_budget_counts_only_usable_features(dataset: DatasetRecord) -> None:
    everything = spec(dataset, target="label")
    assert "features" in everything["time_budget_reason"]
    n_usable = int(everything["time_budget_reason"].split(" x ")[1].split(" ")[0])
    columns = [c["name"] for c in dataset.profile["columns"]]
    assert n_usable < len(columns) - 1  # the identifier and the constant are not counted
    fewer = spec(dataset, target="label", exclude=["x1"])
    assert f" x {n_usable - 1} features" in fewer["time_budget_reason"]


def test_tags_and_notes_rules() -> None:
    assert jobs.normalize_tags([" a ", "a", "b"]) == ["a", "b"]
    with pytest.raises(InvalidInput, match="at most 10"):
        jobs.normalize_tags([str(i) for i in range(11)])
    assert len(jobs.normalize_tags(["x"] * 50)) == 1
    with pytest.raises(InvalidInput, match="at most 50"):
        jobs.normalize_tags(["x" * 51])
    with pytest.raises(InvalidInput, match="control"):
        jobs.normalize_tags(["a\nb"])
    with pytest.raises(InvalidInput, match="empty"):
        jobs.normalize_tags(["  "])
    with pytest.raises(InvalidInput):
        jobs.check_notes("x" * (jobs.MAX_NOTES_LENGTH + 1))


def test_a_profile_without_target_descriptions_still_validates_names() -> None:
    record = dataset_record(
        name="old",
        n_columns=2,
        profile={
            "columns": [
                {"name": "a", "kind": "numeric", "dtype": "float64", "n_distinct": 90},
                {"name": "y", "kind": "numeric", "dtype": "float64", "n_distinct": 80},
            ]
        },
    )
    result = spec(record, target="y")
    assert result["problem_type"] is None and result["metric"] is None
    with pytest.raises(InvalidInput, match="not found"):
        spec(record, target="z")


# -- lifecycle: one status event per change, written by the store's transitions ---------------


@pytest.fixture
def ctx(tmp_path: Path, dataset: DatasetRecord) -> Iterator[AppContext]:
    context = make_ctx(tmp_path)
    context.metadata.create_dataset(dataset)
    yield context
    context.metadata.close()


def _status_events(ctx: AppContext, job_id: str) -> list[dict[str, Any]]:
    events = jobs.list_job_events(ctx, owner=OWNER, job_id=job_id)
    return [e.data for e in events if e.kind == "status"]


def test_queue_cancel_and_retry_each_write_one_status_event(
    ctx: AppContext, dataset: DatasetRecord
) -> None:
    request = jobs.JobRequest(dataset_id=dataset.id, target="label")
    job = jobs.create_job(ctx, owner=OWNER, request=request)
    assert runner_of(ctx).submitted == [job.id]
    assert _status_events(ctx, job.id) == [
        {
            "status": "queued",
            "previous": None,
            "message": "queued",
            "attempt": 0,
            "worker": None,
            "error": None,
            "model_id": None,
        }
    ]

    ctx.metadata.claim_job(job.id, worker_id="w1", lease_seconds=60)
    canceled = jobs.cancel_job(ctx, owner=OWNER, job_id=job.id)
    assert canceled.status is JobStatus.CANCELED and canceled.finished_at is not None
    assert canceled.lease_owner is None and canceled.lease_expires_at is None
    assert runner_of(ctx).canceled == [job.id]
    events = _status_events(ctx, job.id)
    assert [e["status"] for e in events] == ["queued", "running", "canceled"]
    assert events[-1] == {
        "status": "canceled",
        "previous": "running",
        "message": "canceled by the user while running",
        "attempt": 1,
        "worker": "w1",
        "error": None,
        "model_id": None,
    }
    with pytest.raises(Conflict, match="already been canceled"):
        jobs.cancel_job(ctx, owner=OWNER, job_id=job.id)

    retry = jobs.retry_job(ctx, owner=OWNER, job_id=job.id)
    assert retry.id != job.id and retry.status is JobStatus.QUEUED
    assert [e["message"] for e in _status_events(ctx, retry.id)] == [
        f"queued as a retry of {job.id}"
    ]


def test_a_job_the_runner_refuses_fails_in_one_transition(
    ctx: AppContext, dataset: DatasetRecord
) -> None:
    runner_of(ctx).fail_submit = True
    job = jobs.create_job(
        ctx, owner=OWNER, request=jobs.JobRequest(dataset_id=dataset.id, target="label")
    )
    assert job.status is JobStatus.FAILED and job.finished_at is not None
    assert job.error is not None and job.error.startswith("The job runner did not accept the job")
    assert "/secret/path" not in job.error
    assert ctx.metadata.get_job(job.id, owner=OWNER) == job
    events = _status_events(ctx, job.id)
    assert [(e["status"], e["previous"]) for e in events] == [
        ("queued", None),
        ("failed", "queued"),
    ]
    assert events[-1]["error"] == events[-1]["message"] == job.error
