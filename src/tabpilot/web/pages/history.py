"""History: every training job with its outcome, filtered and paged on the server.

The filters and the page are the query string of `/jobs` (the same parameters as the JSON
twin `GET /api/jobs`: status, tag, problem_type, q, sort, limit, cursor), so a filtered view is
a URL to share and the back button returns to it. The filter form updates only the table with
htmx (`HX-Request`) and pushes the URL. Deleting asks first on its own page (a second form
that posts with the CSRF token), then calls `jobs.delete_job`.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from tabpilot.api.deps import Ctx
from tabpilot.engine.choices import find_metric
from tabpilot.metadata.base import DEFAULT_JOB_SORT, JOB_SORT_KEYS, MAX_PAGE_LIMIT
from tabpilot.records import JobStatus
from tabpilot.services import history as history_service
from tabpilot.services import jobs as jobs_service
from tabpilot.services.compare import MAX_SIDE_BY_SIDE
from tabpilot.web.access import CsrfChecked, PagePrincipal
from tabpilot.web.render import format_number, render

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 20
STATUSES = [s.value for s in JobStatus]
PROBLEM_TYPES = ["binary", "multiclass", "regression"]
SORTS = [f"-{k}" for k in JOB_SORT_KEYS] + list(JOB_SORT_KEYS)
# Metrics read as a share of the rows (shown as a percentage); the rest as plain numbers.
PERCENT_METRICS = frozenset(
    {
        "accuracy",
        "balanced_accuracy",
        "f1",
        "macro_f1",
        "precision_macro",
        "recall_macro",
        "f1_weighted",
        "precision_weighted",
        "recall_weighted",
        "mape",
    }
)
FIXED_DIGITS = {"roc_auc": 3, "r2": 3, "log_loss": 4}


def format_metric(name: str | None, value: float | None) -> str:
    """A metric's value as its kind reads: accuracy 0.9342 -> "93.4 %", ROC AUC -> "0.934",
    RMSE 1234.5 -> "1,234" (4 significant digits)."""
    if value is None:
        return ""
    spec = find_metric(name or "")
    key = spec.name if spec is not None else (name or "")
    if key in PERCENT_METRICS:
        return f"{value * 100:.1f} %"
    if key in FIXED_DIGITS:
        return f"{value:.{FIXED_DIGITS[key]}f}"
    return format_number(value)


def format_duration(seconds: float | None) -> str:
    """75.2 -> "1 min 15 s"; 8.4 -> "8 s"; 3725 -> "1 h 2 min"."""
    if seconds is None:
        return ""
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _statuses(values: list[str] | None) -> list[str]:
    """status=failed&status=canceled or status=failed,canceled, as the API takes them."""
    return [p.strip() for v in values or [] for p in v.split(",") if p.strip()]


def _query(**params: object) -> str:
    """The query string of a history URL, without empty parameters."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            if item not in (None, ""):
                pairs.append((key, str(item)))
    return urlencode(pairs)


@router.get("/jobs", response_class=HTMLResponse)
def history_page(
    request: Request,
    ctx: Ctx,
    principal: PagePrincipal,
    status: Annotated[list[str] | None, Query()] = None,
    tag: str = "",
    problem_type: str = "",
    q: str = "",
    sort: str = DEFAULT_JOB_SORT,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)] = PAGE_SIZE,
    cursor: str = "",
    deleted: str = "",
) -> HTMLResponse:
    statuses = _statuses(status)
    filters = {
        "status": statuses,
        "tag": tag.strip(),
        "problem_type": problem_type,
        "q": q.strip(),
        "sort": sort if sort != DEFAULT_JOB_SORT else "",
        "limit": limit if limit != PAGE_SIZE else "",
    }
    page = history_service.list_history(
        ctx,
        owner=principal.owner,
        status=statuses,
        tag=filters["tag"] or None,
        problem_type=problem_type or None,
        text=filters["q"] or None,
        sort=sort,
        limit=limit,
        cursor=cursor or None,
    )
    context = {
        "rows": page.items,
        "filters": filters,
        "filtered": any(filters[k] for k in ("status", "tag", "problem_type", "q")),
        "first_url": "/jobs?" + _query(**filters),
        "next_url": "/jobs?" + _query(**filters, cursor=page.next_cursor)
        if page.next_cursor
        else None,
        "on_later_page": bool(cursor),
        "back": _query(**filters, cursor=cursor),
        "format_metric": format_metric,
        "format_duration": format_duration,
        "max_compare": MAX_SIDE_BY_SIDE,
    }
    headers = {"vary": "HX-Request"}
    partial = request.headers.get("hx-request") and not request.headers.get(
        "hx-history-restore-request"
    )
    if partial:
        return render(request, "history_table.html", headers=headers, **context)
    return render(
        request,
        "history.html",
        headers=headers,
        statuses=STATUSES,
        problem_types=PROBLEM_TYPES,
        sorts=SORTS,
        deleted=deleted,
        **context,
    )


def _back_to_history(back: str, **extra: str) -> str:
    """The history URL a confirmation returns to: only a query string is taken from the form,
    so the redirect can never leave the history page."""
    query = back.lstrip("?").replace("\r", "").replace("\n", "")
    added = urlencode(extra)
    return "/jobs?" + "&".join(part for part in (query, added) if part)


@router.get("/jobs/{job_id}/delete", response_class=HTMLResponse)
def confirm_delete_page(
    request: Request, job_id: str, ctx: Ctx, principal: PagePrincipal, back: str = ""
) -> HTMLResponse:
    job = jobs_service.get_job(ctx, owner=principal.owner, job_id=job_id)
    [row] = history_service.summarize_jobs(ctx, owner=principal.owner, jobs=[job])
    return render(
        request,
        "history_delete.html",
        row=row,
        back=back,
        cancel_url=_back_to_history(back),
        format_metric=format_metric,
    )


@router.post("/jobs/{job_id}/delete", dependencies=[CsrfChecked])
def delete_job(
    job_id: str, ctx: Ctx, principal: PagePrincipal, back: Annotated[str, Form()] = ""
) -> RedirectResponse:
    jobs_service.delete_job(ctx, owner=principal.owner, job_id=job_id)
    return RedirectResponse(_back_to_history(back, deleted=job_id), status_code=303)
