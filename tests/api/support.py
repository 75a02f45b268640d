"""Helpers for the API tests: real stores in a temporary directory and a runner we control."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi.testclient import TestClient

from tabpilot.context import AppContext
from tabpilot.jobs.base import JobRunner
from tabpilot.metadata import build_metadata_store
from tabpilot.records import JobStatus, ModelRecord, new_id
from tabpilot.settings import load_settings
from tabpilot.storage import build_artifact_store, keys
from tests.factories import add_model


class RecordingRunner(JobRunner):
    """Runs nothing; records what it was asked to do, so tests play the worker themselves."""

    def __init__(self) -> None:
        self.submitted: list[str] = []
        self.canceled: list[str] = []
        self.started_with: AppContext | None = None
        self.stopped = False
        self.fail_submit = False

    def start(self, ctx: AppContext) -> None:
        self.started_with = ctx

    def submit(self, job_id: str) -> None:
        if self.fail_submit:
            raise RuntimeError("queue unavailable at /secret/path")
        self.submitted.append(job_id)

    def cancel(self, job_id: str) -> None:
        self.canceled.append(job_id)

    def stop(self) -> None:
        self.stopped = True


def make_ctx(root: Path, *, runner: JobRunner | None = None, **settings: Any) -> AppContext:
    """Stores under `root` (SQLite file, local artifact directory) and a `RecordingRunner`."""
    values: dict[str, Any] = {"data_dir": root / "data", "runner_uri": "inline://"}
    values.update(settings)
    resolved = load_settings(**values)
    return AppContext(
        settings=resolved,
        metadata=build_metadata_store(resolved.metadata_uri),
        artifacts=build_artifact_store(resolved.artifact_uri),
        runner=runner if runner is not None else RecordingRunner(),
    )


def runner_of(ctx: AppContext) -> RecordingRunner:
    assert isinstance(ctx.runner, RecordingRunner)
    return ctx.runner


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def upload(client: TestClient, data: bytes, filename: str = "data.csv", **kwargs: Any) -> Any:
    return client.post("/api/datasets", files={"file": (filename, data, "text/csv")}, **kwargs)


def upload_frame(
    client: TestClient, frame: pd.DataFrame, filename: str = "data.csv", **kwargs: Any
) -> dict[str, Any]:
    response = upload(client, csv_bytes(frame), filename, **kwargs)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def fake_card(
    *,
    target: str = "label",
    problem_type: str = "binary",
    metric: str = "roc_auc",
    holdout: dict[str, Any] | None = None,
    importance: dict[str, float] | None = None,
    chosen: str = "lgbm",
) -> dict[str, Any]:
    """The parts of a model card that the job and compare services read."""
    return {
        "target": target,
        "problem_type": problem_type,
        "metric": {"name": metric, "greater_is_better": metric not in ("log_loss", "rmse")},
        "metrics": {"holdout": holdout or {"roc_auc": 0.8, "accuracy": 0.7}, "baseline": {}},
        "feature_importance": [
            {"feature": k, "importance": v, "std": 0.0} for k, v in (importance or {}).items()
        ],
        "chosen": {"name": chosen, "description": chosen},
        "estimator": {"class": f"x.{chosen}", "params": {}},
    }


def finish_job(
    ctx: AppContext,
    job_id: str,
    *,
    card: dict[str, Any] | None = None,
    files: dict[str, bytes] | None = None,
    status: JobStatus = JobStatus.SUCCEEDED,
    error: str | None = None,
) -> ModelRecord | None:
    """Play the worker: run the job to `status`, with a model (and files) when it succeeded.

    A queued job is claimed first; each status change is the store's transition, with its event.
    """
    job = ctx.metadata.get_job(job_id, owner=None)
    if job.status is JobStatus.QUEUED:
        job = ctx.metadata.claim_job(job_id, worker_id="test-worker", lease_seconds=600)
    ctx.metadata.append_job_event(
        job_id, owner=None, kind="progress", data={"phase": "searching", "trials": 3}
    )
    model = None
    if status == JobStatus.SUCCEEDED:
        model_id = new_id("mdl")
        for name, data in (files or {"model.json": b"{}"}).items():
            ctx.artifacts.put_bytes(keys.model_file(model_id, name), data)
        model = add_model(ctx.metadata, job, id=model_id, card=card or fake_card())
    ctx.metadata.transition_job(
        job_id,
        owner=None,
        expect=JobStatus.RUNNING,
        to=status,
        error=error,
        model_id=model.id if model else None,
    )
    return model
