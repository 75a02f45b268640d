"""Storage-agnostic records: what the metadata store keeps, whatever its backend.

Records are plain dataclasses so that every backend (SQL, DynamoDB) and every layer above it
(services, API schemas, CLI) agrees on one shape. Ids are short random strings with a prefix
that says what they name (`ds_`, `job_`, `mdl_`, `usr_`); timestamps are timezone-aware UTC.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

ID_PREFIXES = {"dataset": "ds", "job": "job", "model": "mdl", "user": "usr"}


def new_id(prefix: str) -> str:
    """A fresh random id such as `job_3f9c2a7d1e6b4c08` (64 random bits)."""
    return f"{prefix}_{secrets.token_hex(8)}"


def utc_now() -> datetime:
    return datetime.now(UTC)


def _dataset_id() -> str:
    return new_id(ID_PREFIXES["dataset"])


def _job_id() -> str:
    return new_id(ID_PREFIXES["job"])


def _model_id() -> str:
    return new_id(ID_PREFIXES["model"])


def _user_id() -> str:
    return new_id(ID_PREFIXES["user"])


class JobStatus(StrEnum):
    """A job's lifecycle: queued → running → succeeded | failed | canceled."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def is_final(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED)


JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    # claimed by a worker; refused by the runner; canceled before it started
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELED}),
    # finished; failed; canceled while running; queued again after its worker was lost
    JobStatus.RUNNING: frozenset(
        {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.QUEUED}
    ),
    # A final status never changes: a retry is a new job.
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}
"""The job status changes `MetadataStore.transition_job` allows: from -> the possible next."""


def can_transition(source: JobStatus, target: JobStatus) -> bool:
    """Whether a job may move from `source` to `target` (see `JOB_TRANSITIONS`)."""
    return JobStatus(target) in JOB_TRANSITIONS[JobStatus(source)]


@dataclass(kw_only=True)
class DatasetRecord:
    """An uploaded CSV: its file lives in the artifact store, its profile here."""

    owner: str
    name: str
    filename: str
    sha256: str
    n_bytes: int
    n_rows: int
    n_columns: int
    profile: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=_dataset_id)
    created_at: datetime = field(default_factory=utc_now)


@dataclass(kw_only=True)
class JobRecord:
    """One training run. `spec` is the whole training specification: a worker needs nothing else.

    `lease_owner` and `lease_expires_at` are set while a worker holds the job (RUNNING);
    `attempts` counts claims, so a job retried after a lost worker shows 2.
    """

    owner: str
    dataset_id: str
    spec: dict[str, Any]
    status: JobStatus = JobStatus.QUEUED
    progress: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    model_id: str | None = None
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    id: str = field(default_factory=_job_id)
    created_at: datetime = field(default_factory=utc_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    attempts: int = 0

    @property
    def problem_type(self) -> str | None:
        value = self.spec.get("problem_type")
        return str(value) if value else None


@dataclass(kw_only=True)
class ModelRecord:
    """A trained model. Its files live in the artifact store under `artifact_prefix`.

    `deploy_key_hash` is the hash of the prediction-only key minted when the model is
    deployed; None while it is not deployed.
    """

    owner: str
    job_id: str
    card: dict[str, Any]
    artifact_prefix: str
    deploy_key_hash: str | None = None
    id: str = field(default_factory=_model_id)
    created_at: datetime = field(default_factory=utc_now)


@dataclass(kw_only=True)
class UserRecord:
    """A person or program with an API token; only the token's hash is stored."""

    name: str
    token_hash: str
    id: str = field(default_factory=_user_id)
    created_at: datetime = field(default_factory=utc_now)


@dataclass(kw_only=True)
class JobEvent:
    """One entry in a job's event log; `seq` starts at 1 and increases by one per job.

    `kind` is "status" (written by the store with each status change, always with the fields
    of `tabpilot.metadata.transitions.STATUS_EVENT_FIELDS`), "progress" or "log".
    """

    job_id: str
    seq: int
    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=utc_now)
