"""Liveness and readiness: public, cheap, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from tabpilot import __version__
from tabpilot.api.deps import Ctx
from tabpilot.api.errors import error_response
from tabpilot.api.schemas import ErrorEnvelope, HealthOut, ReadyOut
from tabpilot.services.health import check_disk, check_stores

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut, summary="Liveness: the process answers")
async def health() -> HealthOut:
    """Answers at once without touching any store. Needs no token."""
    return HealthOut(version=__version__)


@router.get(
    "/ready",
    response_model=ReadyOut,
    summary="Readiness: the stores answer",
    responses={503: {"model": ErrorEnvelope, "description": "A store does not answer."}},
)
async def ready(ctx: Ctx) -> ReadyOut | JSONResponse:
    """Pings the metadata store and the artifact store and checks the free disk space
    (`TABPILOT_MIN_FREE_MB`); 503 names what failed. Needs no token."""
    checks = await run_in_threadpool(check_stores, ctx)
    failed = {name: reason for name, reason in checks.items() if reason is not None}
    disk = await run_in_threadpool(check_disk, ctx)
    checks["disk"] = disk
    if failed or disk is not None:
        what = ", ".join(
            [f"the {name} store does not answer ({reason})" for name, reason in failed.items()]
            + ([f"the server's storage is full: {disk}"] if disk is not None else [])
        )
        return error_response(
            503,
            "not_ready",
            f"Not ready: {what}",
            {"checks": {name: reason or "ok" for name, reason in checks.items()}},
        )
    return ReadyOut(checks=dict.fromkeys(checks, "ok"))
