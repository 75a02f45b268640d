"""What a job status change writes, whatever the backend: the fields and the status event.

Every backend's `transition_job` (and its claims) reads the job under a lock, checks the
expected status and lease holder, and then writes exactly what `plan_transition` returns, in
the same transaction: the new status, the lease and timestamps that go with it, and one
"status" event of one shape (`STATUS_EVENT_FIELDS`). Which changes are allowed at all is
`tabpilot.records.JOB_TRANSITIONS`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from tabpilot.errors import InvalidInput
from tabpilot.records import JOB_TRANSITIONS, JobRecord, JobStatus, ModelRecord, can_transition
from tabpilot.scrub import scrub_paths

STATUS_EVENT = "status"
"""The `kind` of the event each status change appends."""

STATUS_EVENT_FIELDS = ("status", "previous", "message", "attempt", "worker", "error", "model_id")
"""Every status event's data has exactly these keys:

- status: the new status; previous: the one before (None when the job was created).
- message: what happened, in words a user can read.
- attempt: the job's `attempts` after the change (0 until it is first claimed).
- worker: the worker that holds (or held, until this change) the lease; None if none did.
- error: the job's error when it failed, else None.
- model_id: the model of a succeeded job, else None.
"""


@dataclass(frozen=True)
class TransitionPlan:
    """The job's fields to write and the data of the status event to append with them."""

    changes: dict[str, Any]
    event: dict[str, Any]


def expected_statuses(
    expect: JobStatus | str | Collection[JobStatus | str], to: JobStatus | str
) -> frozenset[JobStatus]:
    """`expect` as a set of statuses, each allowed to move to `to`.

    Raises:
        InvalidInput: for an unknown status or a change `JOB_TRANSITIONS` does not allow; a
            programming error, said plainly.
    """
    try:
        target = JobStatus(to)
        values = [expect] if isinstance(expect, str) else list(expect)
        sources = frozenset(JobStatus(value) for value in values)
    except ValueError as exc:
        raise InvalidInput(f"Unknown job status: {exc}") from None
    if not sources:
        raise InvalidInput("transition_job needs at least one expected status")
    refused = sorted(s.value for s in sources if not can_transition(s, target))
    if refused:
        allowed = {s.value: sorted(t.value for t in JOB_TRANSITIONS[s]) for s in sources}
        raise InvalidInput(
            f"A job cannot go from {' or '.join(refused)} to {target.value}; allowed: {allowed}"
        )
    return sources


def check_model_for(job_id: str, to: JobStatus, model: ModelRecord) -> None:
    """Refuse a model record with a transition it does not belong to (a programming error):
    only a job moving to SUCCEEDED stores a model, and only its own."""
    if to is not JobStatus.SUCCEEDED or model.job_id != job_id:
        raise InvalidInput(
            f"A model record goes only with its own job ({model.job_id}) moving to succeeded, "
            f"not with job {job_id} moving to {to.value}"
        )


def transition_fields(
    job_id: str, to: JobStatus, model: ModelRecord | None, **fields: Any
) -> dict[str, Any]:
    """The job fields a transition writes (message, worker_id, lease_seconds, error, model_id,
    progress), for every store: a model record is checked against the job and, unless
    `model_id` is given, names it."""
    if model is not None:
        check_model_for(job_id, to, model)
        if fields.get("model_id") is None:
            fields["model_id"] = model.id
    return fields


def status_event_data(
    job: JobRecord, *, previous: JobStatus | None, message: str, worker: str | None
) -> dict[str, Any]:
    """The status event for `job` as it is after the change (see `STATUS_EVENT_FIELDS`)."""
    status = JobStatus(job.status)
    return {
        "status": status.value,
        "previous": previous.value if previous is not None else None,
        "message": message,
        "attempt": job.attempts,
        "worker": worker,
        "error": job.error if status is JobStatus.FAILED else None,
        "model_id": job.model_id if status is JobStatus.SUCCEEDED else None,
    }


def plan_transition(
    current: JobRecord,
    *,
    to: JobStatus,
    now: datetime,
    message: str | None = None,
    worker_id: str | None = None,
    lease_seconds: float | None = None,
    error: str | None = None,
    model_id: str | None = None,
    progress: dict[str, Any] | None = None,
) -> TransitionPlan:
    """The changes that move `current` to `to` at `now`, and the status event that says so.

    The lease and timestamps follow the new status, so no caller sets them by hand:
    RUNNING takes a lease for `worker_id` (`lease_seconds` from `now`), sets `started_at`
    and counts an attempt; QUEUED clears the lease, start, progress and error; a final status
    clears the lease and sets `finished_at`. FAILED records `error` (default: the message),
    SUCCEEDED records `model_id` and clears the error. Server paths are scrubbed from the
    message and the error (`tabpilot.scrub`): users read both, whoever wrote them.
    """
    to = JobStatus(to)
    message = scrub_paths(message) if message else message
    error = scrub_paths(error) if error else error
    changes: dict[str, Any] = {
        "status": to,
        **_lease_fields(current, to, now, worker_id, lease_seconds),
    }
    if to is JobStatus.FAILED:
        changes["error"] = error or message or "the job failed"
    elif to is JobStatus.SUCCEEDED:
        changes["error"] = None
        if model_id is not None:
            changes["model_id"] = model_id
    if progress is not None:
        changes["progress"] = progress
    attempts = changes.get("attempts", current.attempts)
    text = message or _default_message(to, attempts, changes.get("error"))
    worker = worker_id if to is JobStatus.RUNNING else current.lease_owner
    after = replace(current, **changes)
    event = status_event_data(after, previous=current.status, message=text, worker=worker)
    return TransitionPlan(changes=changes, event=event)


def _lease_fields(
    current: JobRecord,
    to: JobStatus,
    now: datetime,
    worker_id: str | None,
    lease_seconds: float | None,
) -> dict[str, Any]:
    if to is JobStatus.RUNNING:
        if not worker_id or lease_seconds is None:
            raise InvalidInput("A job moves to running only with a worker_id and lease_seconds")
        return {
            "started_at": now,
            "finished_at": None,
            "lease_owner": worker_id,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "attempts": current.attempts + 1,
            "error": None,
        }
    cleared: dict[str, Any] = {"lease_owner": None, "lease_expires_at": None}
    if to is JobStatus.QUEUED:
        return cleared | {"started_at": None, "finished_at": None, "progress": {}, "error": None}
    return cleared | {"finished_at": now}


def _default_message(to: JobStatus, attempts: int, error: str | None) -> str:
    if to is JobStatus.RUNNING:
        return f"attempt {attempts} started"
    if to is JobStatus.FAILED and error:
        return error
    return to.value
