"""Jobs: queue a training run, follow it (polling or Server-Sent Events), manage it."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from tabpilot.api import streams
from tabpilot.api.auth import Owner, router_security
from tabpilot.api.deps import Ctx
from tabpilot.api.schemas import (
    ERROR_RESPONSES,
    ErrorEnvelope,
    JobCreate,
    JobCreated,
    JobDeleted,
    JobEventOut,
    JobOut,
    JobPage,
    JobPatch,
    event_out,
    job_created,
    job_out,
)
from tabpilot.engine.spec import TrainSpec
from tabpilot.metadata.base import (
    DEFAULT_JOB_SORT,
    DEFAULT_PAGE_LIMIT,
    JOB_SORT_KEYS,
    MAX_PAGE_LIMIT,
)
from tabpilot.records import JobRecord
from tabpilot.services import jobs as service

router = APIRouter(
    prefix="/api/jobs", tags=["jobs"], dependencies=router_security, responses=ERROR_RESPONSES
)

CONFLICT = {409: {"model": ErrorEnvelope, "description": "Not allowed in the job's state."}}


def _created_message(job: JobRecord) -> str:
    spec = TrainSpec.from_dict(job.spec)  # the job was just created from one
    parts = [f"Job {job.id} is queued: predict {spec.target!r}"]
    if spec.problem_type:
        parts.append(f"as a {spec.problem_type} problem ({spec.problem_type_reason})")
    if spec.metric:
        parts.append(f"optimising {spec.metric}")
    message = ", ".join(parts)
    message += f"; time budget {spec.time_budget or 0:.0f} s ({spec.time_budget_reason})."
    return message + f" Follow it at /api/jobs/{job.id} or /api/jobs/{job.id}/stream."


@router.post(
    "",
    status_code=202,
    response_model=JobCreated,
    summary="Queue a training job",
    responses={404: {"model": ErrorEnvelope, "description": "No such dataset."}},
)
def create_job(body: JobCreate, ctx: Ctx, owner: Owner) -> JobCreated:
    """Checks the request against the dataset's profile first (unknown target or columns, a
    target with a single class, an unknown metric or estimator, a budget outside 5 to 86400 s
    all answer 422 with what to fix), then queues the job and answers 202.

    The reply's `spec` holds every automatic choice resolved (problem type, metric, time
    budget) and `message` explains them. Poll `GET /api/jobs/{id}` or stream
    `GET /api/jobs/{id}/stream` until the status is succeeded, failed or canceled; a succeeded
    job's `model_id` names the model (`/api/models/{model_id}`).
    """
    # JobCreate has JobRequest's fields, by construction (see schemas.py).
    request = service.JobRequest(**body.model_dump())
    job = service.create_job(ctx, owner=owner, request=request)
    return job_created(job, _created_message(job))


def _split(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


@router.get("", response_model=JobPage, summary="List jobs")
def list_jobs(
    ctx: Ctx,
    owner: Owner,
    status: Annotated[
        list[str] | None,
        Query(
            description="queued, running, succeeded, failed or canceled; several allowed "
            "(status=failed&status=canceled or status=failed,canceled)."
        ),
    ] = None,
    tag: Annotated[str | None, Query(description="Jobs carrying this exact tag.")] = None,
    dataset_id: Annotated[str | None, Query(description="Jobs trained on this dataset.")] = None,
    problem_type: Annotated[
        str | None, Query(description="binary, multiclass or regression.")
    ] = None,
    q: Annotated[
        str | None,
        Query(
            description="Text search in ids, target, problem type, metric, dataset name, "
            "tags and notes (case-insensitive)."
        ),
    ] = None,
    sort: Annotated[
        str,
        Query(description="One of " + ", ".join(JOB_SORT_KEYS) + "; prefix - for descending."),
    ] = DEFAULT_JOB_SORT,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)] = DEFAULT_PAGE_LIMIT,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page (same filters).")
    ] = None,
) -> JobPage:
    """Your jobs matching every filter given, newest first by default; follow `next_cursor`."""
    page = service.list_jobs(
        ctx,
        owner=owner,
        status=_split(status),
        tag=tag,
        dataset_id=dataset_id,
        problem_type=problem_type,
        text=q,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    return JobPage(items=[job_out(j) for j in page.items], next_cursor=page.next_cursor)


@router.get("/{job_id}", response_model=JobOut, summary="A job: status, progress, result")
def get_job(job_id: str, ctx: Ctx, owner: Owner) -> JobOut:
    """`status`, the latest `progress` (phase, elapsed against budget, trials, estimator, best
    score so far), `error` when failed and `model_id` when succeeded."""
    return job_out(service.get_job(ctx, owner=owner, job_id=job_id))


@router.get("/{job_id}/events", response_model=list[JobEventOut], summary="A job's event log")
def list_job_events(
    job_id: str,
    ctx: Ctx,
    owner: Owner,
    after: Annotated[
        int,
        Query(ge=0, le=service.MAX_EVENT_SEQ, description="Only events with a larger `seq`."),
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)] = MAX_PAGE_LIMIT,
) -> list[JobEventOut]:
    """Status changes, progress reports and log lines, oldest first. Poll with
    `after=<last seq seen>` to get only new ones."""
    events = service.list_job_events(ctx, owner=owner, job_id=job_id, after=after, limit=limit)
    return [event_out(e) for e in events]


@router.get(
    "/{job_id}/stream",
    summary="Follow a job live (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "An event stream."},
        429: {"model": ErrorEnvelope, "description": "Too many event streams open."},
    },
)
async def stream_job(
    job_id: str,
    request: Request,
    ctx: Ctx,
    owner: Owner,
    after: Annotated[
        int,
        Query(ge=0, le=service.MAX_EVENT_SEQ, description="Replay only events after this seq."),
    ] = 0,
    last_event_id: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> StreamingResponse:
    """A `text/event-stream` (`curl -N URL/api/jobs/ID/stream`, or `EventSource` in a
    browser): first an `event: job` with the job's current state, then the job's events
    replayed from the start (or after `after` / `Last-Event-ID`) and followed live, each as
    `event: status|progress|log` with `id: <seq>`; when the job ends, a final `event: end`
    with the job's final state, and the stream closes.

    Open streams are limited per user (`TABPILOT_STREAM_MAX_PER_USER`) and in all
    (`TABPILOT_STREAM_MAX_TOTAL`): one more is 429. A stream closes after
    `TABPILOT_STREAM_MAX_SECONDS`; `EventSource` reconnects and resumes after the last event."""
    await run_in_threadpool(service.get_job, ctx, owner=owner, job_id=job_id)  # 404 up front
    after = max(after, _last_event_seq(last_event_id))
    slot = streams.open_stream(request, ctx, owner)  # 429 beyond the limits
    return streams.stream_response(slot, ctx, job_id, after, request)


def _last_event_seq(header: str | None) -> int:
    """The seq in a `Last-Event-ID` header, or 0 when it holds none a store could have (the
    header only says where to resume; a browser sends back what the stream gave it)."""
    text = (header or "").strip()
    if not re.fullmatch(r"[0-9]{1,19}", text) or int(text) > service.MAX_EVENT_SEQ:
        return 0
    return int(text)


@router.patch("/{job_id}", response_model=JobOut, summary="Change a job's tags or notes")
def update_job(job_id: str, body: JobPatch, ctx: Ctx, owner: Owner) -> JobOut:
    """`tags` replaces the tags (at most 10, each at most 50 characters); `notes` replaces
    the notes. Absent fields are left as they are."""
    job = service.update_job(ctx, owner=owner, job_id=job_id, tags=body.tags, notes=body.notes)
    return job_out(job)


@router.post("/{job_id}/cancel", response_model=JobOut, summary="Cancel a job", responses=CONFLICT)
def cancel_job(job_id: str, ctx: Ctx, owner: Owner) -> JobOut:
    """A queued job is canceled at once; a running one is canceled and its worker stopped.
    409 if the job has already finished."""
    return job_out(service.cancel_job(ctx, owner=owner, job_id=job_id))


@router.delete("/{job_id}", response_model=JobDeleted, summary="Delete a job")
def delete_job(job_id: str, ctx: Ctx, owner: Owner) -> JobDeleted:
    """Cancels the job if it is queued or running, then deletes it with its event log, its
    model and the model's files."""
    service.delete_job(ctx, owner=owner, job_id=job_id)
    return JobDeleted(id=job_id)


@router.post(
    "/{job_id}/retry",
    status_code=202,
    response_model=JobCreated,
    summary="Retry a failed or canceled job",
    responses=CONFLICT,
)
def retry_job(job_id: str, ctx: Ctx, owner: Owner) -> JobCreated:
    """Queues a new job with the same dataset, spec, tags and notes; the old job stays as it
    was. 409 unless the job failed or was canceled."""
    job = service.retry_job(ctx, owner=owner, job_id=job_id)
    return job_created(job, f"Retry of {job_id}. " + _created_message(job))
