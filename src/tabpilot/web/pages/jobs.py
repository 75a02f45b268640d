"""The job page, `/jobs/{job_id}`: Training while the job is queued or running (and when it
failed or was canceled), Results once it has succeeded.

Training follows the job live through the API's event stream (`GET /api/jobs/{id}/stream`, read
by static/js/training.js); when the job ends the script reloads, and the page then shows the
results, or the error with Retry. Results read the model card (`ModelCard`) of the job's model.

Every action is a form that posts with its CSRF token and calls the service the JSON API
calls: cancel and retry (`services.jobs`), tags and notes (`services.jobs.update_job`), deploy
and undeploy (`services.models`). The History list at `/jobs` is another page's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tabpilot.api.deps import Ctx
from tabpilot.api.routes.models import PICKLE_WARNING
from tabpilot.context import AppContext
from tabpilot.engine.card import ModelCard
from tabpilot.errors import InvalidInput, NotFound
from tabpilot.records import JobRecord, JobStatus, ModelRecord
from tabpilot.services import jobs as jobs_service
from tabpilot.services import models as models_service
from tabpilot.web.access import CsrfChecked, PagePrincipal
from tabpilot.web.pages import job_view
from tabpilot.web.render import render

router = APIRouter(include_in_schema=False)

LOG_KINDS = ("status", "log")
"""The events the page's log lists (progress reports update the figures instead)."""


def _page_url(job_id: str, anchor: str = "") -> str:
    return f"/jobs/{job_id}" + (f"#{anchor}" if anchor else "")


def _model_of(ctx: AppContext, owner: str, job: JobRecord) -> ModelRecord | None:
    """The succeeded job's model, or None (not succeeded, or its model was deleted)."""
    if job.status is not JobStatus.SUCCEEDED or not job.model_id:
        return None
    try:
        return models_service.get_model(ctx, owner=owner, model_id=job.model_id)
    except NotFound:
        return None


def _training_page(request: Request, ctx: AppContext, owner: str, job: JobRecord) -> Response:
    events = jobs_service.list_job_events(ctx, owner=owner, job_id=job.id)
    summary = job_view.JobSummary.of(job)
    live = not job.status.is_final
    return render(
        request,
        "job_training.html",
        job=job,
        summary=summary,
        chart=None if live else job_view.best_score_chart(events, summary.metric_label),
        progress=job.progress or {},
        log=[e for e in events if e.kind in LOG_KINDS],
        live=live,
        cancelable=job.status in jobs_service.CANCELABLE,
        retryable=job.status in jobs_service.RETRYABLE,
        model_missing=job.status is JobStatus.SUCCEEDED,
    )


def _results_page(
    request: Request,
    job: JobRecord,
    model: ModelRecord,
    *,
    status: int = 200,
    deploy_key: str | None = None,
    labels_error: str | None = None,
    labels_form: dict[str, str] | None = None,
) -> Response:
    card = ModelCard.from_dict(model.card)
    return render(
        request,
        "results.html",
        status=status,
        job=job,
        model=model,
        card=card,
        summary=job_view.JobSummary.of(job),
        duration=job_view.duration_seconds(job),
        metrics=job_view.metric_cards(card),
        searched=job_view.searched_rows(card),
        candidates=job_view.candidate_rows(card),
        by_cv=job_view.compared_by_cv(card),
        confusion=job_view.confusion_chart(card),
        importance=job_view.importance_chart(card),
        evaluation=job_view.evaluation_figures(card),
        files=models_service.list_model_files(model),
        pickle_warning=PICKLE_WARNING,
        deployed=model.deploy_key_hash is not None,
        deploy_key=deploy_key,
        labels_error=labels_error,
        labels_form=labels_form or {"tags": ", ".join(job.tags), "notes": job.notes},
    )


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_page(request: Request, job_id: str, ctx: Ctx, principal: PagePrincipal) -> Response:
    job = jobs_service.get_job(ctx, owner=principal.owner, job_id=job_id)
    model = _model_of(ctx, principal.owner, job)
    if model is None:
        return _training_page(request, ctx, principal.owner, job)
    return _results_page(request, job, model)


@router.post("/jobs/{job_id}/cancel", dependencies=[CsrfChecked])
def cancel_job(job_id: str, ctx: Ctx, principal: PagePrincipal) -> Response:
    job = jobs_service.cancel_job(ctx, owner=principal.owner, job_id=job_id)
    return RedirectResponse(_page_url(job.id), status_code=303)


@router.post("/jobs/{job_id}/retry", dependencies=[CsrfChecked])
def retry_job(job_id: str, ctx: Ctx, principal: PagePrincipal) -> Response:
    retry = jobs_service.retry_job(ctx, owner=principal.owner, job_id=job_id)
    return RedirectResponse(_page_url(retry.id), status_code=303)


def _split_tags(text: str) -> list[str]:
    """Tags as typed in one field: separated by commas or new lines."""
    return [part for part in text.replace("\n", ",").split(",") if part.strip()]


@router.post("/jobs/{job_id}/labels", response_class=HTMLResponse, dependencies=[CsrfChecked])
def update_labels(
    request: Request,
    job_id: str,
    ctx: Ctx,
    principal: PagePrincipal,
    tags: Annotated[str, Form()] = "",
    notes: Annotated[str, Form()] = "",
) -> Response:
    owner = principal.owner
    try:
        job = jobs_service.update_job(
            ctx, owner=owner, job_id=job_id, tags=_split_tags(tags), notes=notes
        )
    except InvalidInput as exc:
        job = jobs_service.get_job(ctx, owner=owner, job_id=job_id)
        model = _model_of(ctx, owner, job)
        if model is None:
            raise
        return _results_page(
            request,
            job,
            model,
            status=422,
            labels_error=exc.message,
            labels_form={"tags": tags, "notes": notes},
        )
    return RedirectResponse(_page_url(job.id, "labels"), status_code=303)


def _succeeded_model(ctx: AppContext, owner: str, job_id: str) -> tuple[JobRecord, ModelRecord]:
    job = jobs_service.get_job(ctx, owner=owner, job_id=job_id)
    model = _model_of(ctx, owner, job)
    if model is None:
        raise NotFound(f'Job "{job.id}" has no model: it is {job.status}')
    return job, model


@router.post("/jobs/{job_id}/deploy", response_class=HTMLResponse, dependencies=[CsrfChecked])
def deploy(request: Request, job_id: str, ctx: Ctx, principal: PagePrincipal) -> Response:
    """Mints the key and shows it in this answer only (only its hash is stored)."""
    job, model = _succeeded_model(ctx, principal.owner, job_id)
    model, key = models_service.deploy_model(ctx, owner=principal.owner, model_id=model.id)
    return _results_page(request, job, model, deploy_key=key)


@router.post("/jobs/{job_id}/undeploy", dependencies=[CsrfChecked])
def undeploy(job_id: str, ctx: Ctx, principal: PagePrincipal) -> Response:
    job, model = _succeeded_model(ctx, principal.owner, job_id)
    models_service.undeploy_model(ctx, owner=principal.owner, model_id=model.id)
    return RedirectResponse(_page_url(job.id, "deploy"), status_code=303)


@router.get("/jobs/{job_id}/leaderboard.csv")
def leaderboard_csv(job_id: str, ctx: Ctx, principal: PagePrincipal) -> Response:
    job, model = _succeeded_model(ctx, principal.owner, job_id)
    text = job_view.leaderboard_csv(ModelCard.from_dict(model.card))
    headers: dict[str, Any] = {
        "content-disposition": f'attachment; filename="{job.id}-leaderboard.csv"',
        "cache-control": "no-store",
    }
    return Response(text, media_type="text/csv; charset=utf-8", headers=headers)
