"""Every error answers with one JSON envelope: `{"error": {"code", "message", "details"}}`.

- `TabpilotError` subclasses (the whole hierarchy lives in `tabpilot.errors`) map to their
  status (`ERROR_STATUS`): invalid input 422, not found 404, conflict 409, upload too large
  413, missing credentials 401, not allowed 403, missing extra 501, a failed child process
  500. Routes raise these domain errors, never `HTTPException`.
- Request validation errors are 422 with `details.fields`: each bad field and why.
- Anything unexpected is 500 with a generic message and an `error_id`; the traceback goes to
  the server log under that id, never into the reply.

Messages never carry stack traces, SQL or server paths: paths under the data directory or the
temporary directory are replaced by `<server path>` as a last line of defence.
"""

from __future__ import annotations

import logging
import secrets
import sys
import tempfile
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tabpilot.errors import (
    STORAGE_FULL_MESSAGE,
    ChildFailed,
    Conflict,
    DataFileError,
    Forbidden,
    InvalidInput,
    MissingDependency,
    NotFound,
    QuotaExceeded,
    StorageFull,
    TabpilotError,
    TooManyRequests,
    Unauthenticated,
    UploadTooLarge,
    is_storage_full,
)
from tabpilot.scrub import scrub_paths

log = logging.getLogger("tabpilot.api")

# Most specific first: the first class the error is an instance of decides.
ERROR_STATUS: tuple[tuple[type[TabpilotError], int], ...] = (
    (Unauthenticated, 401),
    (Forbidden, 403),
    (UploadTooLarge, 413),
    (DataFileError, 422),
    (NotFound, 404),
    (Conflict, 409),
    (InvalidInput, 422),
    (TooManyRequests, 429),
    (QuotaExceeded, 429),
    (MissingDependency, 501),
    (StorageFull, 507),
    (ChildFailed, 500),
    (TabpilotError, 400),
)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    411: "length_required",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
    507: "storage_full",
}


def status_for(exc: TabpilotError) -> int:
    for kind, status in ERROR_STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


class _Scrubber:
    """Replaces server directories in outgoing text with `<server path>`."""

    def __init__(self, roots: list[str]) -> None:
        # Longest first, so a data directory inside the temp directory is replaced whole.
        self.roots = sorted({r.rstrip("/") for r in roots if r and r != "/"}, key=len)[::-1]

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            for root in self.roots:
                value = value.replace(root, "<server path>")
            return scrub_paths(value)  # also home, the Python installation, other temp dirs
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


def _scrubber(request: Request) -> _Scrubber:
    roots = [tempfile.gettempdir()]
    ctx = getattr(request.app.state, "ctx", None)
    if ctx is not None:
        roots.append(str(ctx.settings.data_dir))
        root = getattr(ctx.artifacts, "root", None)
        if root is not None:
            roots.append(str(root))
    return _Scrubber(roots)


async def handle_tabpilot_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TabpilotError)
    status = status_for(exc)
    scrub = _scrubber(request)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status >= 500:
        log.error("%s on %s %s: %s", exc.code, request.method, request.url.path, exc.message)
    return error_response(status, exc.code, scrub(exc.message), scrub(exc.details), headers)


def _field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:] or parts
    return ".".join(parts)


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    fields = []
    for error in exc.errors():
        loc = error.get("loc", ())
        kind = str(error.get("type", ""))
        if kind == "json_invalid":  # loc ends with a character offset, not a field
            field, message = "body", f"is not valid JSON ({error.get('ctx', {}).get('error')})"
        else:
            field, message = _field_name(loc), str(error.get("msg", "is not valid"))
        fields.append(
            {
                "field": field,
                "in": str(loc[0]) if loc else "body",
                "message": message,
                "type": kind,
            }
        )
    summary = "; ".join(f"{f['field'] or 'body'}: {f['message']}" for f in fields)
    return error_response(
        422,
        "invalid_request",
        f"The request is not valid: {summary}. See /docs for the expected fields.",
        {"fields": fields},
    )


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    code = HTTP_CODES.get(status, "error")
    if isinstance(exc.detail, str) and exc.detail:
        message = exc.detail
    else:
        message = code.replace("_", " ").capitalize()
    if status == 404 and message == "Not Found":
        message = f"No such endpoint: {request.method} {request.url.path}; see /docs"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.url.path}; see /docs"
    return error_response(status, code, message, headers=getattr(exc, "headers", None))


def new_error_id() -> str:
    return "err_" + secrets.token_hex(6)


def internal_error_response(error_id: str) -> JSONResponse:
    return error_response(
        500,
        "internal_error",
        f"An unexpected error happened on the server; it is logged as {error_id}. "
        "Try again, and if it happens again, report it with that id.",
        {"error_id": error_id},
    )


class CatchAllMiddleware:
    """Turns any exception a route did not handle into the 500 envelope, logged with an id.

    Pure ASGI (not `BaseHTTPMiddleware`), so streamed responses pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            error_id = new_error_id()
            log.exception(
                "unhandled error %s on %s %s", error_id, scope.get("method"), scope.get("path")
            )
            if started:  # too late for an error reply; end the connection
                raise
            if is_storage_full(sys.exc_info()[1] or Exception()):
                # A full disk is the operator's to fix, not a bug: say so, not "unexpected".
                response = error_response(507, "storage_full", STORAGE_FULL_MESSAGE)
            else:
                response = internal_error_response(error_id)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TabpilotError, handle_tabpilot_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_middleware(CatchAllMiddleware)
