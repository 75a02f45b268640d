"""Training jobs: validated before they are queued, then followed, canceled, retried, deleted.

`create_job` checks a request against the dataset's stored profile with pandas-only code
(unknown target or columns, a target with one class, a problem type the target cannot have,
a metric or estimator that does not exist, a budget out of range), writes the job's whole spec
(see `jobs/base.py`) with status QUEUED, and tells the runner its id. Nothing that can be
rejected up front is left for the worker to fail on minutes later.

The spec holds the resolved choices, so a job says what it will do before it runs and a retry
does the same thing: `problem_type` (detected when not given, with `problem_type_reason`),
`metric` (the problem's default when not given), `time_budget` (chosen by `auto_budget` when not
given, with `time_budget_reason`), `include`, `exclude`, `estimators` (None: all), `seed`, and
`dataset_name` for text search.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tabpilot.context import AppContext
from tabpilot.engine.budget import MAX_BUDGET, MIN_BUDGET, auto_budget
from tabpilot.engine.choices import DEFAULT_METRIC as ENGINE_DEFAULT_METRIC
from tabpilot.engine.choices import ESTIMATORS, METRICS
from tabpilot.engine.data.columns import detect_useless_column
from tabpilot.engine.data.problem import MAX_CLASSES, detect_problem_type
from tabpilot.engine.data.profiling import ColumnKind, ColumnProfile
from tabpilot.errors import Conflict, InvalidInput, NotFound
from tabpilot.metadata.base import DEFAULT_JOB_SORT, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, Page
from tabpilot.records import DatasetRecord, JobEvent, JobRecord, JobStatus, utc_now
from tabpilot.services import check_id

log = logging.getLogger(__name__)

MAX_TAGS = 10
MAX_TAG_LENGTH = 50
MAX_NOTES_LENGTH = 10_000
MAX_SEED = 2**31 - 1

PROBLEM_TYPES = ("binary", "multiclass", "regression", "classification")

# The engine's own choice tables (engine.choices imports no training library).
METRIC_PROBLEMS: dict[str, tuple[str, ...]] = {
    name: tuple(str(p) for p in spec.problems) for name, spec in METRICS.items()
}
DEFAULT_METRIC = {str(k): v for k, v in ENGINE_DEFAULT_METRIC.items()}

CANCELABLE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
RETRYABLE = frozenset({JobStatus.FAILED, JobStatus.CANCELED})


@dataclass(frozen=True)
class JobRequest:
    """What a user asks to train; everything but the dataset and target is optional."""

    dataset_id: str
    target: str
    problem_type: str | None = None
    metric: str | None = None
    time_budget: float | None = None
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    estimators: Sequence[str] | None = None
    seed: int | None = None
    tags: Sequence[str] = ()
    notes: str = ""


# -- validation --------------------------------------------------------------------------------


def _problems_error(problems: dict[str, str]) -> InvalidInput:
    message = "; ".join(problems.values())
    return InvalidInput(f"The job cannot be queued: {message}", details={"problems": problems})


def _column_profile(data: dict[str, Any]) -> ColumnProfile:
    """Rebuild a `ColumnProfile` from its stored `to_dict()` form."""
    return ColumnProfile(
        name=str(data["name"]),
        kind=ColumnKind(data["kind"]),
        dtype=str(data.get("dtype", "")),
        n_missing=int(data.get("n_missing") or 0),
        missing_fraction=float(data.get("missing_fraction") or 0.0),
        n_distinct=int(data.get("n_distinct") or 0),
        unique_per_row=bool(data.get("unique_per_row")),
        kind_reason=str(data.get("kind_reason", "")),
        stats=dict(data.get("stats") or {}),
        top_values=[(str(t["value"]), int(t["count"])) for t in data.get("top_values") or []],
        examples=[str(e) for e in data.get("examples") or []],
        integer_valued=bool(data.get("integer_valued")),
    )


def _is_number(dtype: str) -> bool:
    try:
        kind = pd.api.types.pandas_dtype(dtype)
    except TypeError:
        return False
    return pd.api.types.is_numeric_dtype(kind) and not pd.api.types.is_bool_dtype(kind)


def _decide_problem(
    column: dict[str, Any], target: str, override: str | None
) -> tuple[str | None, str]:
    """The problem type and its reason, from the stored profile of the target column."""
    as_target = column.get("as_target") or {}
    if as_target.get("problem_type") is None and as_target.get("reason"):
        raise InvalidInput(str(as_target["reason"]))
    if not override:
        if not as_target:  # a profile from before targets were described
            return None, "detected from the data when the job runs"
        return str(as_target["problem_type"]), f"detected: {as_target.get('reason', '')}"
    # detect_problem_type checks an override with the class count and whether the target is
    # numeric only; a stand-in series with the same two properties gets the engine's answer
    # and its messages without re-reading the file.
    n_distinct = min(int(column.get("n_distinct") or 0), MAX_CLASSES + 1)
    values: list[Any] = (
        list(range(n_distinct))
        if _is_number(str(column.get("dtype", "")))
        else [f"v{i}" for i in range(n_distinct)]
    )
    series = pd.Series(values, name=target, dtype=None if values else "object")
    decision = detect_problem_type(series, override=override)
    return str(decision.problem_type), decision.reason


def _check_names(
    option: str, values: Sequence[str] | None, allowed: Sequence[str], what: str
) -> list[str] | None:
    if values is None:
        return None
    names = [str(v) for v in values]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise InvalidInput(
            f"{option}: unknown {what} {', '.join(map(repr, unknown))}; "
            f"{what}s are: {', '.join(allowed)}"
        )
    return list(dict.fromkeys(names))


def normalize_tags(tags: Iterable[str]) -> list[str]:
    """Trimmed, de-duplicated tags, at most `MAX_TAGS` of at most `MAX_TAG_LENGTH` characters."""
    out: list[str] = []
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
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise InvalidInput(f"A job has at most {MAX_TAGS} tags, not {len(out)}; remove some")
    return out


def check_notes(notes: str | None) -> str:
    notes = notes or ""
    if len(notes) > MAX_NOTES_LENGTH:
        raise InvalidInput(
            f"Notes are {len(notes):,} characters long; at most {MAX_NOTES_LENGTH:,} are kept"
        )
    return notes


def build_job_spec(dataset: DatasetRecord, request: JobRequest) -> dict[str, Any]:
    """Validate `request` against the dataset's profile and return the job's full spec.

    Raises:
        InvalidInput: listing every problem found (`details["problems"]` maps each request
            field to its message).
    """
    profile = dataset.profile if isinstance(dataset.profile, dict) else {}
    columns: list[dict[str, Any]] = list(profile.get("columns") or [])
    names = [str(c["name"]) for c in columns]
    problems: dict[str, str] = {}

    target = request.target
    column = next((c for c in columns if c["name"] == target), None)
    problem_type = reason = None
    if column is None:
        problems["target"] = (
            f'Column "{target}" not found in dataset "{dataset.name}"; '
            f"columns are: {', '.join(names)}"
        )
    else:
        try:
            problem_type, reason = _decide_problem(column, target, request.problem_type)
        except InvalidInput as exc:
            key = "problem_type" if request.problem_type else "target"
            problems[key] = exc.message

    metric = None
    if request.metric is not None:
        name = str(request.metric).strip().lower()
        if name not in METRIC_PROBLEMS:
            problems["metric"] = f'Unknown metric "{request.metric}"; metrics are: ' + ", ".join(
                METRIC_PROBLEMS
            )
        elif problem_type is not None and problem_type not in METRIC_PROBLEMS[name]:
            allowed = [m for m, kinds in METRIC_PROBLEMS.items() if problem_type in kinds]
            problems["metric"] = (
                f'Metric "{name}" is not available for {problem_type} problems; '
                f"use one of: {', '.join(allowed)}"
            )
        else:
            metric = name
    elif problem_type is not None:
        metric = DEFAULT_METRIC[problem_type]

    estimators = None
    try:
        estimators = _check_names("estimators", request.estimators, list(ESTIMATORS), "estimator")
        if estimators is not None and not estimators:
            raise InvalidInput(
                f"estimators: give at least one of {', '.join(ESTIMATORS)}, or leave it out "
                "to search them all"
            )
    except InvalidInput as exc:
        problems["estimators"] = exc.message

    include: list[str] = []
    exclude: list[str] = []
    for option in ("include", "exclude"):
        try:
            values = getattr(request, option)
            checked = _check_names(option, values, names, "column") or []
        except InvalidInput as exc:
            problems[option] = exc.message
            continue
        if target in checked:
            problems[option] = f'"{target}" is the target; it cannot be included or excluded'
        if option == "include":
            include = checked
        else:
            exclude = checked
    both = sorted(set(include) & set(exclude))
    if both:
        problems["exclude"] = f"Column(s) both included and excluded: {', '.join(both)}"

    n_features = 0
    if column is not None and "include" not in problems and "exclude" not in problems:
        dropped: list[str] = []
        for col in columns:
            name = str(col["name"])
            if name == target:
                continue
            if name in exclude:
                dropped.append(f"{name}: excluded by you")
                continue
            useless = detect_useless_column(_column_profile(col), int(dataset.n_rows))
            if useless is not None and name not in include:
                dropped.append(f"{name}: {useless.detail}")
                continue
            n_features += 1
        if n_features == 0:
            problems["include"] = (
                "No usable feature columns remain: "
                + ("; ".join(dropped) or "the dataset has only the target column")
                + ". Add columns to include to force them in."
            )

    seed = 0 if request.seed is None else request.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        problems["seed"] = f"seed must be a whole number from 0 to {MAX_SEED}, not {seed!r}"

    budget = request.time_budget
    budget_reason = "set by you"
    if budget is None:
        budget, budget_reason = auto_budget(int(dataset.n_rows), max(n_features, 1))
    elif (
        isinstance(budget, bool)
        or not isinstance(budget, int | float)
        or not math.isfinite(budget)
        or not MIN_BUDGET <= budget <= MAX_BUDGET
    ):
        problems["time_budget"] = (
            f"time_budget must be between {MIN_BUDGET:.0f} and {MAX_BUDGET:.0f} seconds, "
            f"not {budget!r}; leave it out to have one chosen from the data size"
        )

    try:
        normalize_tags(request.tags)
    except InvalidInput as exc:
        problems["tags"] = exc.message
    try:
        check_notes(request.notes)
    except InvalidInput as exc:
        problems["notes"] = exc.message

    if problems:
        raise _problems_error(problems)
    return {
        "target": target,
        "problem_type": problem_type,
        "problem_type_reason": reason,
        "metric": metric,
        "time_budget": float(budget),
        "time_budget_reason": budget_reason,
        "include": include,
        "exclude": exclude,
        "estimators": estimators,
        "seed": seed,
        "dataset_name": dataset.name,
    }


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
        spec=spec,
        tags=normalize_tags(request.tags),
        notes=check_notes(request.notes),
    )
    return _queue(ctx, job, message="queued")


def _queue(ctx: AppContext, job: JobRecord, *, message: str) -> JobRecord:
    job = ctx.metadata.create_job(job)
    ctx.metadata.append_job_event(
        job.id, owner=job.owner, kind="status", data={"status": "queued", "message": message}
    )
    try:
        ctx.runner.submit(job.id)
    except Exception as exc:
        log.exception("the runner did not accept job %s", job.id)
        error = (
            f"The job runner did not accept the job ({type(exc).__name__}); "
            "check the server log, then retry the job"
        )
        with contextlib.suppress(Conflict):
            job = ctx.metadata.update_job(
                job.id,
                owner=job.owner,
                if_status={JobStatus.QUEUED},
                status=JobStatus.FAILED,
                error=error,
                finished_at=utc_now(),
            )
            ctx.metadata.append_job_event(
                job.id, owner=job.owner, kind="status", data={"status": "failed", "message": error}
            )
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


def list_job_events(
    ctx: AppContext, *, owner: str, job_id: str, after: int = 0, limit: int = MAX_PAGE_LIMIT
) -> list[JobEvent]:
    """The job's events with `seq > after`, oldest first."""
    if after < 0:
        raise InvalidInput(f"after must be 0 or more, not {after}")
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
    changes: dict[str, Any] = {}
    if tags is not None:
        changes["tags"] = normalize_tags(tags)
    if notes is not None:
        changes["notes"] = check_notes(notes)
    job = get_job(ctx, owner=owner, job_id=job_id)
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
        try:
            canceled = ctx.metadata.update_job(
                job.id,
                owner=owner,
                if_status={job.status},
                status=JobStatus.CANCELED,
                finished_at=utc_now(),
                lease_owner=None,
                lease_expires_at=None,
            )
        except Conflict:  # it moved on (claimed, finished) meanwhile: look again
            job = get_job(ctx, owner=owner, job_id=job.id)
            continue
        ctx.metadata.append_job_event(
            job.id,
            owner=owner,
            kind="status",
            data={"status": "canceled", "message": f"canceled by the user while {job.status}"},
        )
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
    prefixes = {f"jobs/{job.id}"}
    cursor: str | None = None
    while True:
        page = ctx.metadata.list_models(owner=owner, job_id=job.id, limit=500, cursor=cursor)
        prefixes.update(m.artifact_prefix for m in page.items if m.artifact_prefix)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    latest = ctx.metadata.find_job(job.id, owner=owner)
    for model_id in {job.model_id, latest.model_id if latest else None} - {None}:
        prefixes.add(f"models/{model_id}")
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
