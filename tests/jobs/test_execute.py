"""`execute_job` through the inline runner: a job from the store to a model record."""

from __future__ import annotations

import json
import threading
import time

import pytest

from tabpilot.context import AppContext
from tabpilot.errors import Conflict
from tabpilot.jobs.execute import execute_job
from tabpilot.records import JobStatus
from tabpilot.storage import keys
from tests.jobs.conftest import OWNER, add_dataset, add_job, wait_for

BUNDLE = ("model.onnx", "model.pkl", "model.json", "eda.html", "report.html")


@pytest.mark.slow
def test_job_succeeds_with_model_artifacts_progress_and_events(ctx: AppContext) -> None:
    dataset = add_dataset(ctx)
    job = add_job(ctx, dataset, notes_for_humans="ignored", time_budget_reason="set by the user")

    ctx.runner.submit(job.id)

    done = ctx.metadata.get_job(job.id, owner=OWNER)
    assert done.status == JobStatus.SUCCEEDED, done.error
    assert done.error is None and done.finished_at is not None
    assert done.lease_owner is None and done.attempts == 1
    model = ctx.metadata.get_model(done.model_id, owner=OWNER)
    assert model.job_id == job.id and model.artifact_prefix == f"models/{model.id}"
    assert model.card["target"] == "label"
    assert model.card["source"] == "customers.csv"
    keys = ctx.artifacts.list_keys(model.artifact_prefix)
    assert keys == sorted(f"{model.artifact_prefix}/{name}" for name in BUNDLE)
    assert json.loads(ctx.artifacts.get_bytes(f"{model.artifact_prefix}/model.json")) == model.card

    progress = done.progress
    assert set(progress) >= {"phase", "elapsed", "budget", "message", "trials", "best_score"}
    assert progress["phase"] == "done" and progress["budget"] == 5.0
    assert progress["trials"] > 0 and progress["best_estimator"] in ("lgbm", "linear")

    events = ctx.metadata.list_job_events(job.id, owner=OWNER)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    statuses = [e.data for e in events if e.kind == "status"]
    assert [s["status"] for s in statuses] == ["running", "succeeded"]
    assert statuses[0]["message"] == "attempt 1 started" and statuses[0]["worker"]
    assert statuses[1]["model_id"] == model.id and statuses[1]["previous"] == "running"
    assert statuses[1]["message"].startswith(f"trained model {model.id} in ")
    phases = [e.data["phase"] for e in events if e.kind == "log"]
    assert phases[:2] == ["preparing", "reading"] and "searching" in phases
    assert phases[-1] == "uploading"
    assert any(e.kind == "progress" and e.data["trials"] > 0 for e in events)
    reading = next(e.data for e in events if e.kind == "log" and e.data["phase"] == "reading")
    assert reading["message"] == "reading customers.csv"  # not the worker's temporary path


def test_missing_target_fails_with_the_engine_message(ctx: AppContext) -> None:
    job = add_job(ctx, add_dataset(ctx), target="price")

    ctx.runner.submit(job.id)

    done = ctx.metadata.get_job(job.id, owner=OWNER)
    assert done.status == JobStatus.FAILED
    assert done.error.startswith('Target column "price" not found; columns are: customer_id')
    assert done.model_id is None and done.lease_owner is None
    assert ctx.metadata.list_models(owner=OWNER).items == []
    assert ctx.artifacts.list_keys("models") == []
    events = ctx.metadata.list_job_events(job.id, owner=OWNER)
    assert events[-1].kind == "status"
    assert events[-1].data == {
        "status": "failed",
        "previous": "running",
        "message": done.error,
        "attempt": 1,
        "worker": done_worker(events),
        "error": done.error,
        "model_id": None,
    }


def done_worker(events: list) -> str:
    """The worker that claimed the job, from its "running" status event."""
    return next(e.data["worker"] for e in events if e.data.get("status") == "running")


def test_unreadable_file_fails_naming_the_upload_not_a_temp_path(ctx: AppContext) -> None:
    dataset = add_dataset(ctx, raw=b"BZh91AY&SY\x00\x01 not a csv", filename="sales.csv")
    job = add_job(ctx, dataset)

    ctx.runner.submit(job.id)

    done = ctx.metadata.get_job(job.id, owner=OWNER)
    assert done.status == JobStatus.FAILED
    assert done.error.startswith("sales.csv: ") and "bzip2" in done.error
    assert "/tmp" not in done.error and "tabpilot-" not in done.error


def test_missing_dataset_file_fails_saying_what_to_do(ctx: AppContext) -> None:
    dataset = add_dataset(ctx)
    ctx.artifacts.delete_prefix(keys.dataset_prefix(dataset.id))
    job = add_job(ctx, dataset)

    ctx.runner.submit(job.id)

    done = ctx.metadata.get_job(job.id, owner=OWNER)
    assert done.status == JobStatus.FAILED
    assert "missing from the artifact store; upload the dataset again" in done.error


def test_execute_refuses_a_job_it_does_not_hold(ctx: AppContext) -> None:
    job = add_job(ctx, add_dataset(ctx))
    with pytest.raises(Conflict, match="queued"):
        execute_job(ctx, job.id, worker_id="w1")
    ctx.metadata.claim_job(job.id, worker_id="w1", lease_seconds=10)
    with pytest.raises(Conflict, match='not running under worker "w2"'):
        execute_job(ctx, job.id, worker_id="w2")


@pytest.mark.slow
def test_canceled_job_stops_promptly_and_is_not_resurrected(ctx: AppContext) -> None:
    job = add_job(ctx, add_dataset(ctx), time_budget=60.0)
    worker = threading.Thread(target=ctx.runner.submit, args=(job.id,))
    worker.start()
    wait_for(
        lambda: ctx.metadata.get_job(job.id, owner=OWNER).progress.get("phase") == "searching",
        timeout=20,
        what="the search to start",
    )
    canceled_at = time.monotonic()
    ctx.metadata.transition_job(
        job.id, owner=OWNER, expect=JobStatus.RUNNING, to=JobStatus.CANCELED
    )
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert time.monotonic() - canceled_at < 10
    done = ctx.metadata.get_job(job.id, owner=OWNER)
    assert done.status == JobStatus.CANCELED and done.model_id is None
    assert ctx.metadata.list_models(owner=OWNER).items == []
    assert ctx.artifacts.list_keys("models") == []
