"""The history of training runs: a page of jobs with what a list of runs shows about each.

A job record alone does not say which model won or how well it scored: that is in its model's
card. `list_history` reads a page of jobs (the same filters and cursor as `jobs.list_jobs`)
and adds, per job, its dataset's name, the chosen model, the held-out score of the metric it
was chosen by, and how long it ran.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from tabpilot.context import AppContext
from tabpilot.engine.card import ModelCard
from tabpilot.engine.choices import MetricSpec, find_metric
from tabpilot.metadata.base import DEFAULT_JOB_SORT, DEFAULT_PAGE_LIMIT, Page
from tabpilot.records import JobRecord, JobStatus, utc_now
from tabpilot.services import jobs as jobs_service

FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})


@dataclass(frozen=True)
class JobSummary:
    """One row of the history.

    `metric` is the metric the job optimises (from its card once trained, else its spec;
    None when not decided yet); `score` its held-out value (None until the job succeeded).
    `duration` is seconds from start to finish, or so far for a running job.
    """

    job: JobRecord
    dataset_name: str | None
    chosen: str | None
    metric: MetricSpec | None
    metric_name: str | None
    score: float | None
    duration: float | None


def _duration(job: JobRecord, now: datetime) -> float | None:
    if job.started_at is None:
        return None
    end = job.finished_at or (None if job.status in FINISHED else now)
    return max((end - job.started_at).total_seconds(), 0.0) if end else None


def _score(card: ModelCard | None) -> float | None:
    value = card.score if card is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def summarize_jobs(ctx: AppContext, *, owner: str, jobs: Iterable[JobRecord]) -> list[JobSummary]:
    """A `JobSummary` per job, in the same order (one read per dataset and per model)."""
    now = utc_now()
    names: dict[str, str | None] = {}
    rows = []
    for job in jobs:
        if job.dataset_id not in names:
            dataset = ctx.metadata.find_dataset(job.dataset_id, owner=owner)
            names[job.dataset_id] = dataset.name if dataset is not None else None
        model = ctx.metadata.find_model(job.model_id, owner=owner) if job.model_id else None
        card = ModelCard.from_dict(model.card) if model is not None and model.card else None
        metric_name = (card.metric.name if card is not None else "") or job.spec.get("metric")
        rows.append(
            JobSummary(
                job=job,
                dataset_name=names[job.dataset_id],
                chosen=(card.chosen.description or card.chosen.name or None) if card else None,
                metric=find_metric(str(metric_name)) if metric_name else None,
                metric_name=str(metric_name) if metric_name else None,
                score=_score(card),
                duration=_duration(job, now),
            )
        )
    return rows


def list_history(
    ctx: AppContext,
    *,
    owner: str,
    status: Iterable[str] | None = None,
    tag: str | None = None,
    problem_type: str | None = None,
    text: str | None = None,
    sort: str = DEFAULT_JOB_SORT,
    limit: int = DEFAULT_PAGE_LIMIT,
    cursor: str | None = None,
) -> Page[JobSummary]:
    """A page of `jobs.list_jobs` (same filters, same errors), each job summarised."""
    page = jobs_service.list_jobs(
        ctx,
        owner=owner,
        status=status,
        tag=tag,
        problem_type=problem_type,
        text=text,
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    items = summarize_jobs(ctx, owner=owner, jobs=page.items)
    return Page(items=items, next_cursor=page.next_cursor)
