"""Dataset page (placeholder until the dataset page lands): name, size, columns, first rows."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from tabpilot.api.deps import Ctx
from tabpilot.services import datasets as datasets_service
from tabpilot.web.access import PagePrincipal
from tabpilot.web.render import render

router = APIRouter(include_in_schema=False)


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(
    request: Request, dataset_id: str, ctx: Ctx, principal: PagePrincipal
) -> HTMLResponse:
    record = datasets_service.get_dataset(ctx, owner=principal.owner, dataset_id=dataset_id)
    profile: dict[str, Any] = record.profile if isinstance(record.profile, dict) else {}
    preview = profile.get("preview") if isinstance(profile.get("preview"), dict) else None
    return render(
        request,
        "dataset.html",
        dataset=record,
        columns=profile.get("columns") or [],
        preview=preview or {"columns": [], "rows": []},
    )
