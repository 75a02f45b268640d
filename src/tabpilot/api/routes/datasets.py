"""Datasets: upload a CSV, see its profile, list, preview, EDA report, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from tabpilot.api.auth import Owner, router_security
from tabpilot.api.deps import Ctx
from tabpilot.api.exposure import report_headers
from tabpilot.api.schemas import (
    ERROR_RESPONSES,
    DatasetDeleted,
    DatasetOut,
    DatasetPage,
    ErrorEnvelope,
    dataset_out,
    dataset_summary,
)
from tabpilot.api.uploads import UPLOAD_OPENAPI, receive_upload
from tabpilot.metadata.base import DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT
from tabpilot.services import datasets as service
from tabpilot.services.quotas import check_storage_quota

router = APIRouter(
    prefix="/api/datasets",
    tags=["datasets"],
    dependencies=router_security,
    responses=ERROR_RESPONSES,
)

Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE_LIMIT, description=f"Page size, 1 to {MAX_PAGE_LIMIT}.")
]
Cursor = Annotated[
    str | None, Query(description="`next_cursor` of the previous page; absent for the first.")
]


@router.post(
    "",
    status_code=201,
    response_model=DatasetOut,
    summary="Upload a CSV file",
    openapi_extra=UPLOAD_OPENAPI,
    responses={
        413: {"model": ErrorEnvelope, "description": "Larger than TABPILOT_MAX_UPLOAD_MB."},
        422: {"model": ErrorEnvelope, "description": "Not a readable CSV; the message says why."},
    },
)
async def upload_dataset(
    request: Request,
    ctx: Ctx,
    owner: Owner,
    name: Annotated[str | None, Query(description="A name (default: the file name).")] = None,
    filename: Annotated[
        str | None, Query(description="The file's name, for a raw (non-multipart) body.")
    ] = None,
) -> DatasetOut:
    """Upload a `.csv` or `.csv.gz` file: `curl -F file=@houses.csv URL/api/datasets`.

    The file is streamed to disk (never held in memory), checked against the size limit and
    hashed (SHA-256) as it arrives, then read (encoding, delimiter and compression are
    detected) and profiled. The reply is the profile: every column's kind and statistics, the
    problem type it would give as a target (with the reason), warnings (identifiers, constants,
    missing values...) and the first rows. Use the returned `id` as `dataset_id` in
    `POST /api/jobs`.
    """
    # A user already at the storage quota is refused before the body is received.
    await run_in_threadpool(check_storage_quota, ctx, owner=owner)
    upload, fields = await receive_upload(request, ctx, filename=filename, text_fields=("name",))
    try:
        record = await run_in_threadpool(
            service.create_dataset, ctx, owner=owner, upload=upload, name=name or fields.get("name")
        )
    finally:
        await run_in_threadpool(upload.discard)
    return dataset_out(record, preview=True)


@router.get("", response_model=DatasetPage, summary="List datasets, newest first")
def list_datasets(
    ctx: Ctx, owner: Owner, limit: Limit = DEFAULT_PAGE_LIMIT, cursor: Cursor = None
) -> DatasetPage:
    """One page of your datasets; follow `next_cursor` for the next."""
    page = service.list_datasets(ctx, owner=owner, limit=limit, cursor=cursor)
    return DatasetPage(items=[dataset_summary(r) for r in page.items], next_cursor=page.next_cursor)


@router.get("/{dataset_id}", response_model=DatasetOut, summary="A dataset's profile and preview")
def get_dataset(dataset_id: str, ctx: Ctx, owner: Owner) -> DatasetOut:
    """The profile recorded at upload and a preview of the first 20 rows."""
    record = service.get_dataset(ctx, owner=owner, dataset_id=dataset_id)
    return dataset_out(record, preview=True)


@router.get(
    "/{dataset_id}/eda.html",
    summary="The dataset's EDA report (HTML)",
    response_class=Response,
    responses={200: {"content": {"text/html": {}}, "description": "A self-contained page."}},
)
def get_dataset_eda(dataset_id: str, ctx: Ctx, owner: Owner) -> Response:
    """An exploratory data analysis report: overview, warnings, every column with a chart,
    correlations. Rendered on the first request (seconds for big files), then cached."""
    body = service.render_dataset_eda(ctx, owner=owner, dataset_id=dataset_id)
    # Data values inside: sandboxed like the model reports, never rendered as this site.
    return Response(body, media_type="text/html; charset=utf-8", headers=report_headers())


@router.delete(
    "/{dataset_id}",
    response_model=DatasetDeleted,
    summary="Delete a dataset",
    responses={409: {"model": ErrorEnvelope, "description": "Jobs use it (without force)."}},
)
def delete_dataset(
    dataset_id: str,
    ctx: Ctx,
    owner: Owner,
    force: Annotated[
        bool, Query(description="Also delete the jobs (and models) trained on it.")
    ] = False,
) -> DatasetDeleted:
    """Deletes the dataset and its file. While jobs use it the answer is 409 listing them
    (`details.jobs`), unless `force=true`, which deletes those jobs and their models too."""
    deleted = service.delete_dataset(ctx, owner=owner, dataset_id=dataset_id, force=force)
    return DatasetDeleted(id=dataset_id, deleted_jobs=deleted)
