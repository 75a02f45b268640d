"""Home: upload a CSV (drag and drop or browse, with a byte progress bar), recent datasets and
jobs. The upload itself goes from the browser to `POST /api/datasets` (static/js/upload.js),
the same endpoint as curl, so its error messages are shown as the API words them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tabpilot.api.deps import Ctx
from tabpilot.services import datasets as datasets_service
from tabpilot.services import jobs as jobs_service
from tabpilot.web.access import PagePrincipal
from tabpilot.web.render import render

router = APIRouter(include_in_schema=False)

RECENT = 8


@router.get("/", response_class=HTMLResponse)
def home_page(request: Request, ctx: Ctx, principal: PagePrincipal) -> HTMLResponse:
    datasets = datasets_service.list_datasets(ctx, owner=principal.owner, limit=RECENT).items
    jobs = jobs_service.list_jobs(ctx, owner=principal.owner, limit=RECENT).items
    return render(
        request,
        "home.html",
        datasets=datasets,
        jobs=jobs,
        max_upload_bytes=ctx.settings.max_upload_bytes,
    )
