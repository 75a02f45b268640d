"""The API on AWS Lambda: the same FastAPI app (REST API and web UI) behind API Gateway.

API Gateway's HTTP API sends each request as a payload version 2.0 event; Mangum turns it into
an ASGI request for the app and the app's response back into what API Gateway expects (binary
bodies, such as model.onnx, base64-encoded). The app and its stores are built once per
container, at its first event, from the `TABPILOT_*` environment that the deployment sets
(deploy/terraform): S3 artifacts, DynamoDB metadata, the Batch runner, token auth.

Lambda freezes a container between events, so nothing runs in the background here: the app's
lifespan (which starts runner threads and the upload sweeper in `tabpilot serve`) is off.
Instead, an EventBridge schedule invokes the same function with a scheduled event, and the
handler then does one round of housekeeping: a reconciliation pass of the runner (Batch jobs
that ended without their Tabpilot job finishing) and a sweep of stale staged uploads.

This module imports no training library: the API zip has none (`make lambda-zip`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tabpilot.errors import TabpilotError

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

# What API Gateway answers when the function itself is misconfigured: said plainly, in the
# API's JSON error envelope, instead of API Gateway's bare "Internal Server Error".
NOT_CONFIGURED = "not_configured"


@dataclass
class _Runtime:
    """What one Lambda container builds at its first event and keeps for the next ones."""

    ctx: Any  # AppContext
    asgi: Callable[[dict[str, Any], Any], dict[str, Any]]


def is_scheduled(event: dict[str, Any]) -> bool:
    """Whether `event` is the housekeeping schedule rather than an HTTP request.

    EventBridge scheduled events carry `"source": "aws.events"`; `{"tabpilot": "housekeeping"}`
    asks for the same by hand (`aws lambda invoke`).
    """
    return event.get("source") == "aws.events" or event.get("tabpilot") == "housekeeping"


def build_handler(settings: Any = None) -> Handler:
    """A Lambda handler over the app built from `settings` (default: the environment), built
    at the first event. Tests build one per configuration; Lambda uses `handler` below."""
    runtime: _Runtime | None = None
    failure: str | None = None

    def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
        nonlocal runtime, failure
        if runtime is None and failure is None:
            try:
                runtime = _build(settings)
            except TabpilotError as exc:
                # Logged for the operator (CloudWatch) and answered to every request below;
                # not retried per request, since the environment cannot change in a container.
                failure = exc.message
                log.error("Tabpilot is not configured: %s", failure)
        if runtime is None:
            return _not_configured(event, failure or "unknown")
        if is_scheduled(event):
            return housekeeping(runtime.ctx)
        return runtime.asgi(event, context)

    return handle


def _build(settings: Any) -> _Runtime:
    from mangum import Mangum

    from tabpilot.api.app import create_app
    from tabpilot.context import build_context
    from tabpilot.settings import load_settings

    settings = settings if settings is not None else load_settings()
    if settings.auth != "token":
        raise TabpilotError(
            "TABPILOT_AUTH must be token on AWS Lambda: local mode has no login and answers "
            "only its own machine (loopback), so every request would be refused"
        )
    if settings.runner_uri.startswith("local:"):
        raise TabpilotError(
            "TABPILOT_RUNNER_URI must not be local:// on AWS Lambda: Lambda freezes the "
            "container between requests, so local workers would stop mid-job; use "
            "batch://QUEUE?job_definition=NAME"
        )
    ctx = build_context(settings)
    _attach_runner(ctx)
    app = create_app(ctx)
    return _Runtime(ctx=ctx, asgi=Mangum(app, lifespan="off"))


def _attach_runner(ctx: Any) -> None:
    """Give the runner the stores without starting threads (they would freeze between events).

    A runner with `bind` (Batch) is bound, and its setup checked: a missing queue or job
    definition is named in the log at the cold start, not discovered by the first job. Any
    other runner (inline, in tests) is started.
    """
    bind = getattr(ctx.runner, "bind", None)
    if not callable(bind):
        ctx.runner.start(ctx)
        return
    bind(ctx)
    check = getattr(ctx.runner, "check", None)
    if callable(check):
        try:
            check(ctx.settings)
        except TabpilotError as exc:
            log.error("the job runner is not ready: %s", exc.message)


def housekeeping(ctx: Any) -> dict[str, Any]:
    """One round of what `tabpilot serve` does on timers: reconcile the runner's jobs and sweep
    stale staged uploads. Returns counts, for the invocation's log."""
    from tabpilot.services.datasets import sweep_staged_uploads

    done: dict[str, Any] = {"housekeeping": True}
    reconcile = getattr(ctx.runner, "reconcile_once", None)
    if callable(reconcile):
        done["reconciled"] = reconcile(ctx)
    done["swept_uploads"] = sweep_staged_uploads(ctx)
    log.info("housekeeping: %s", done)
    return done


def _not_configured(event: dict[str, Any], message: str) -> dict[str, Any]:
    if is_scheduled(event):
        return {"housekeeping": False, "error": message}
    import json

    from tabpilot.api.errors import error_body

    return {
        "statusCode": 503,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(error_body(NOT_CONFIGURED, f"The server is not configured: {message}")),
        "isBase64Encoded": False,
    }


_handler: Handler | None = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The function's entry point (`tabpilot.aws.lambda_handler.handler`)."""
    global _handler
    if _handler is None:
        _handler = build_handler()
    return _handler(event, context)
