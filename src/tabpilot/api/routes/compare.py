"""Compare succeeded jobs side by side."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from tabpilot.api.auth import Owner, router_security
from tabpilot.api.deps import Ctx
from tabpilot.api.schemas import ERROR_RESPONSES, CompareOut, ErrorEnvelope
from tabpilot.services import compare as service

router = APIRouter(
    prefix="/api/compare", tags=["compare"], dependencies=router_security, responses=ERROR_RESPONSES
)


@router.get(
    "",
    response_model=CompareOut,
    summary="Compare jobs",
    responses={409: {"model": ErrorEnvelope, "description": "A job has not succeeded."}},
)
def compare_jobs(
    ctx: Ctx,
    owner: Owner,
    jobs: Annotated[
        list[str],
        Query(description="Two to 20 succeeded job ids, comma-separated: jobs=ID1,ID2,ID3."),
    ],
) -> CompareOut:
    """Held-out metrics side by side with the best value marked per metric (higher is better
    for accuracy, ROC AUC, R², F1...; lower for log loss, RMSE, MAE, MAPE), feature importance
    side by side, and the configuration keys whose values differ."""
    result = service.compare_jobs(ctx, owner=owner, job_ids=service.parse_job_ids(jobs))
    return CompareOut.model_validate(result)
