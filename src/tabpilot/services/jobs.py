"""Training jobs: validated before they are queued, then followed, canceled, retried, deleted.

`create_job` checks a request against the dataset's stored profile with pandas-only code
(`TrainSpec.resolve`: unknown target or columns, a target with one class, a problem type the
target cannot have, a metric or estimator that does not exist, a budget out of range), stores
the job with its whole spec (`TrainSpec.to_dict()`) and status QUEUED, and tells the runner its
id. Nothing that can be rejected up front is left for the worker to fail on minutes later.

The spec holds the resolved choices with their reasons, so a job says what it will do before it
runs, a retry does the same thing, and the model card repeats the reasons given here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from tabpilot.context import AppContext
from tabpilot.engine.data.problem import PROBLEM_CHOICES
from tabpilot.engine.data.profiling import DatasetProfile
from tabpilot.engine.spec import TrainRequest, TrainSpec
from tabpilot.errors import Conflict, InvalidInput, NotFound
from tabpilot.metadata.base import DEFAULT_JOB_SORT, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, Page
from tabpilot.records import JOB_TRANSITIONS, DatasetRecord, JobEvent, JobRecord, JobStatus
from tabpilot.services import check_id
from tabpilot.services.quotas import check_job_quota
from tabpilot.storage import keys

log = logging.getLogger(__name__)

MAX_TAGS = 10
MAX_TAG_LENGTH = 50
MAX_TAGS_SENT = 100
"""Most tags a request may list (repeats included) before any is looked at: repeats collapse,
but a list of thousands is refused at once, whatever they are."""
MAX_NOTES_LENGTH = 10_000
MAX_EVENT_SEQ = 2**63 - 1
"""The largest event seq a store can hold (a signed 64-bit integer): `after` beyond it would
overflow the query, so it is refused as bad input."""

PROBLEM_TYPES = PROBLEM_CHOICES

# From the one table of allowed status changes: queued and running jobs.
CANCELABLE = frozenset(s for s, after in JOB_TRANSITIONS.items() if JobStatus.CANCELED in after)
# A retry is a new job with the same spec; these are the endings worth one.
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELED})


@dataclass(frozen=True, kw_only=True)
class JobRequest(TrainRequest):
    """A training request (see `TrainRequest`) on a stored dataset, with the job's labels."""

    dataset_id: str
    tags: Sequence[str] = ()
    notes: str = ""


# -- validation --------------------------------------------------------------------------------


def normalize_tags(tags: Iterable[str]) -> list[str]:
    """Trimmed, de-duplicated tags, at most `MAX_TAGS` of at most `MAX_TAG_LENGTH` characters."""
    tags = list(tags)
    if len(tags) > MAX_TAGS_SENT:  # counted first: nothing below runs on a huge list
        raise InvalidInput(f"A job has at most {MAX_TAGS} tags, not {len(tags):,}; remove some")
    out: dict[str, None] = {}  # ordered and de-duplicated in one pass
    for raw in tags:
        if not isinstance(raw, str):
            raise InvalidInput(f"Tags must be text, not {raw!r}")
        tag = raw.strip()
        if not tag:
            raise InvalidInput("Tags cannot be empty")
        if len(tag) > MAX_TAG_LENGTH:
            raise InvalidInput(
                f'Tag "{tag[:MAX_TAG_LENGTH]}..." is {len(tag)} characters long; '
                f"tags have at most {MAX_TAG_LENGTH}"
            )
        if not tag.isprintable():
            raise InvalidInput(f"Tag {tag!r} contains control characters")
        out[tag] = None
    if len(out) > MAX_TAGS:
        raise InvalidInput(f"A job has at most {MAX_TAGS} tags, not {len(out)}; remove some")
    return list(out)


def check_notes(notes: str | None) -> str:
    notes = notes or ""
    if len(notes) > MAX_NOTES_LENGTH:
        raise InvalidInput(
            f"Notes are {len(notes):,} characters long; at most {MAX_NOTES_LENGTH:,} are kept"
        )
    return notes


def build_job_spec(dataset: DatasetRecord, request: JobRequest) -> TrainSpec:
    """Validate `request` (its spec against the dataset's stored profile, and its tags and
    notes) and return the job's resolved spec.

    Raises:
        InvalidInput: listing every problem found (`details["problems"]` maps each request
            field to its message).
    """
    stored = dataset.profile if isinstance(dataset.profile, dict) else {}
    profile = DatasetProfile.from_dict(stored, n_rows=int(dataset.n_rows))
    problems: dict[str, str] = {}
    spec: TrainSpec | None = None
    try:
        spec = TrainSpec.resolve(request, profile, dataset_name=dataset.name)
    except InvalidInput as exc:
        problems.update(exc.details.get("problems") or {"target": exc.message})
    for name, check in (
        ("tags", lambda: normalize_tags(request.tags)),
        ("notes", lambda: check_notes(request.notes)),
    ):
        try:
            check()
        except InvalidInput as exc:
            problems[name] = exc.message
    if problems or spec is None:
        message = "; ".join(problems.values())
        raise InvalidInput(f"The job cannot be queued: {message}", details={"problems": problems})
    return spec


# -- creating ----------------------------------------------------------------------------------


def create_job(ctx: AppContext, *, owner: str, request: JobRequest) -> JobRecord:
    """Validate, record as QUEUED and submit to the runner.

    Raises:
        NotFound: the dataset does not exist (for this owner).
        InvalidInput: anything wrong with the request (see `build_job_spec`).
    """
    dataset = ctx.metadata.get_dataset(check_id("Dataset", request.dataset_id), owner=owner)
    spec = build_job_spec(dataset, request)
    job = JobRecord(
        owner=owner,
        dataset_id=dataset.id,
        spec=spec.to_dict(),
        tags=normalize_tags(request.tags),
        notes=check_notes(request.notes),
    )
    return _queue(ctx, job, message="queued")


def _queue(ctx: AppContext, job: JobRecord, *, message: str) -> JobRecord:
    """Record `job` as queued and hand it to the runner.

    Raises:
        QuotaExceeded: the owner already has `TABPILOT_MAX_ACTIVE_JOBS` queued or running.
    """
    check_job_quota(ctx, owner=job.owner)
    job = ctx.metadata.create_job(job, message=message)
    try:
        ctx.runner.submit(job.id)
    except Exception as exc:
        log.exception("the runner did not accept job %s", job.id)
        error = (
            f"The job runner did not accept the job ({type(exc).__name__}); "
            "check the server log, then retry the job"
        )
        failed = ctx.metadata.transition_job(
            job.id, owner=job.owner, expect=JobStatus.QUEUED, to=JobStatus.FAILED, error=error
        )
        job = failed or job  # None: a worker took it (or it was canceled) meanwhile
    return job


# -- reading -----------------------------------------------------------------------------------


def get_job(ctx: AppContext, *, owner: str, job_id: str) -> JobRecord:
    """Raises `NotFound` if missing or owned by someone else."""
    return ctx.metadata.get_job(check_id("Job", job_id), owner=owner)


def list_jobs(
    ctx: AppContext,
    *,
    owner: str,
    status: Iterable[str] | None = None,
    tag: str | None = None,
    dataset_id: str | None = None,
    problem_type: str | None = None,
    text: str | None = None,
    sort: str = DEFAULT_JOB_SORT,
    limit: int = DEFAULT_PAGE_LIMIT,
    cursor: str | None = None,
) -> Page[JobRecord]:
    """Jobs matching every given filter; see `MetadataStore.list_jobs`."""
    statuses = [s.strip().lower() for s in status or () if s and s.strip()] or None
    if problem_type is not None and problem_type not in PROBLEM_TYPES[:3]:
        raise InvalidInput(
            f'Unknown problem type "{problem_type}"; use one of: {", ".join(PROBLEM_TYPES[:3])}'
        )
    return ctx.metadata.list_jobs(
        owner=owner,
        status=statuses,
        tag=tag or None,
        dataset_id=dataset_id or None,
        problem_type=problem_type,
        text=(text or "").strip() or None,
        sort=sort,
        limit=limit,
        cursor=cursor or None,
    )


def check_event_seq(after: int) -> None:
    """Refuse an `after` (the last event seq seen) below 0 or beyond `MAX_EVENT_SEQ`."""
    if not 0 <= after <= MAX_EVENT_SEQ:
        raise InvalidInput(
            f"after must be the seq of the last event seen: a whole number from 0 to "
            f"{MAX_EVENT_SEQ}"
        )


def list_job_events(
    ctx: AppContext, *, owner: str, job_id: str, after: int = 0, limit: int = MAX_PAGE_LIMIT
) -> list[JobEvent]:
    """The job's events with `seq > after`, oldest first."""
    check_event_seq(after)
    return ctx.metadata.list_job_events(
        check_id("Job", job_id), owner=owner, after_seq=after, limit=limit
    )


# -- changing ----------------------------------------------------------------------------------


def update_job(
    ctx: AppContext,
    *,
    owner: str,
    job_id: str,
    tags: Sequence[str] | None = None,
    notes: str | None = None,
) -> JobRecord:
    """Replace the job's tags and/or notes (None leaves a field as it is)."""
    job = get_job(ctx, owner=owner, job_id=job_id)  # first: a missing job is refused at once
    changes: dict[str, Any] = {}
    if tags is not None:
        changes["tags"] = normalize_tags(tags)
    if notes is not None:
        changes["notes"] = check_notes(notes)
    if not changes:
        return job
    return ctx.metadata.update_job(job.id, owner=owner, **changes)


def cancel_job(ctx: AppContext, *, owner: str, job_id: str) -> JobRecord:
    """Cancel a queued or running job: canceled in the store, then the runner is told.

    Raises:
        Conflict: the job has already finished.
    """
    job = get_job(ctx, owner=owner, job_id=job_id)
    for _ in range(3):
        if job.status not in CANCELABLE:
            raise Conflict(
                f'Job "{job.id}" has already {_finished_verb(job.status)}; only queued or '
                "running jobs can be canceled",
                details={"status": str(job.status)},
            )
        canceled = ctx.metadata.transition_job(
            job.id,
            owner=owner,
            expect=job.status,
            to=JobStatus.CANCELED,
            message=f"canceled by the user while {job.status}",
        )
        if canceled is None:  # it moved on (claimed, finished) meanwhile: look again
            job = get_job(ctx, owner=owner, job_id=job.id)
            continue
        try:
            ctx.runner.cancel(job.id)
        except Exception:  # best effort: the worker's heartbeat sees the cancel anyway
            log.exception("the runner could not cancel job %s", job.id)
        return canceled
    raise Conflict(f'Job "{job.id}" kept changing state; try to cancel it again')


def _finished_verb(status: JobStatus) -> str:
    return {"succeeded": "succeeded", "failed": "failed", "canceled": "been canceled"}.get(
        str(status), str(status)
    )


def delete_job(ctx: AppContext, *, owner: str, job_id: str) -> None:
    """Delete a job with its events, models and their files; cancels it first if it runs."""
    job = get_job(ctx, owner=owner, job_id=job_id)
    if job.status in CANCELABLE:
        with contextlib.suppress(Conflict):  # it finished meanwhile; delete it all the same
            job = cancel_job(ctx, owner=owner, job_id=job.id)
    prefixes = {keys.job_prefix(job.id)}
    cursor: str | None = None
    while True:
        page = ctx.metadata.list_models(owner=owner, job_id=job.id, limit=500, cursor=cursor)
        prefixes.update(m.artifact_prefix for m in page.items if m.artifact_prefix)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    latest = ctx.metadata.find_job(job.id, owner=owner)
    for model_id in {job.model_id, latest.model_id if latest else None} - {None}:
        prefixes.add(keys.model_prefix(model_id))
    ctx.metadata.delete_job(job.id, owner=owner)
    for prefix in sorted(prefixes):
        try:
            ctx.artifacts.delete_prefix(prefix)
        except Exception:  # the records are gone; leftover files are only disk space
            log.exception("could not delete %s of job %s", prefix, job.id)


def retry_job(ctx: AppContext, *, owner: str, job_id: str) -> JobRecord:
    """Queue a new job with the same dataset, spec, tags and notes as a failed or canceled one.

    Raises:
        Conflict: the job is queued, running or succeeded.
        NotFound: its dataset has been deleted.
    """
    job = get_job(ctx, owner=owner, job_id=job_id)
    if job.status not in RETRYABLE:
        raise Conflict(
            f'Job "{job.id}" is {job.status}; only failed or canceled jobs can be retried '
            "(to train again with other options, create a new job)",
            details={"status": str(job.status)},
        )
    try:
        ctx.metadata.get_dataset(job.dataset_id, owner=owner)
    except NotFound:
        raise NotFound(
            f'Job "{job.id}" cannot be retried: its dataset "{job.dataset_id}" was deleted'
        ) from None
    retry = JobRecord(
        owner=owner,
        dataset_id=job.dataset_id,
        spec=dict(job.spec),
        tags=list(job.tags),
        notes=job.notes,
    )
    return _queue(ctx, retry, message=f"queued as a retry of {job.id}")
