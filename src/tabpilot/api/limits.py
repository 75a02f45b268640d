"""Housekeeping and limits of the running server that no single request owns.

- `BodyLimitMiddleware`: in token mode an `/api/` request with a body and no credentials at
  all is answered 401 before its body is read; every request body has a size cap, enforced
  while it is read (a declared Content-Length past the cap is refused before anything is read,
  and chunked bodies are counted as they arrive), and a body that stops arriving for
  `body_timeout_s` is refused with 408. Uploads (which stream to disk under their own limit)
  are exempt from the size cap.
- `sweep_uploads_forever`: staged uploads left behind by a crash or a kill are removed when the
  server starts and then every `SWEEP_EVERY_S`, so leftovers cannot pile up on the disk.

Header size and header timeouts are the HTTP protocol's business: `api/protocol.py`.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from fastapi.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tabpilot.api.errors import error_response
from tabpilot.context import AppContext
from tabpilot.services.datasets import STALE_UPLOAD_S, sweep_staged_uploads
from tabpilot.settings import Settings
from tabpilot.web.sessions import SESSION_COOKIE

log = logging.getLogger(__name__)

SWEEP_EVERY_S = STALE_UPLOAD_S / 3


async def sweep_uploads_forever(ctx: AppContext, every_s: float = SWEEP_EVERY_S) -> None:
    """Sweep stale staged uploads now and every `every_s` seconds, until cancelled."""
    while True:
        try:
            await run_in_threadpool(sweep_staged_uploads, ctx)
        except Exception:  # housekeeping must never take the server down
            log.exception("sweeping stale staged uploads failed")
        await asyncio.sleep(every_s)


# -- request bodies ----------------------------------------------------------------------------

# Routes that stream their body to disk under TABPILOT_MAX_UPLOAD_MB (api/uploads.py).
_UPLOAD_ROUTES = re.compile(r"/api/datasets/?|/api/models/[^/]+/predict\.csv")
# Predictions sent as JSON rows may be larger than any other request.
_PREDICT_ROUTE = re.compile(r"/api/models/[^/]+/predict")


def body_limit(settings: Settings, method: str, path: str) -> tuple[int | None, str]:
    """The largest body (bytes; None: uploads, limited where they are received) a request may
    send, and the setting that raises it."""
    if method == "POST" and _UPLOAD_ROUTES.fullmatch(path):
        return None, "TABPILOT_MAX_UPLOAD_MB"
    if method == "POST" and _PREDICT_ROUTE.fullmatch(path):
        return settings.max_json_mb * 1024 * 1024, "TABPILOT_MAX_JSON_MB"
    return settings.max_body_kb * 1024, "TABPILOT_MAX_BODY_KB"


def body_too_large_message(limit: int, setting: str) -> str:
    shown = f"{limit / (1024 * 1024):,.0f} MiB" if limit >= 1024 * 1024 else f"{limit:,} bytes"
    return (
        f"The request body is larger than this server's limit of {shown} for this endpoint. "
        f"Send less (for many rows use predict.csv, which streams), or raise {setting}."
    )


class BodyLimitMiddleware:
    """Caps request bodies while they are read, and times out bodies that stop arriving."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.settings.auth == "token" and _anonymous_body(scope):
            # Nobody to act for: answer before reading anything, as the route would after.
            response = error_response(
                401,
                "unauthenticated",
                NO_TOKEN_MESSAGE,
                headers={"WWW-Authenticate": "Bearer", "Connection": "close"},
            )
            await response(scope, receive, send)
            return
        limit, setting = body_limit(self.settings, scope["method"], scope["path"])
        if limit is not None:
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                response = error_response(
                    413,
                    "too_large",
                    body_too_large_message(limit, setting),
                    {"max_body_bytes": limit},
                    headers={"Connection": "close"},
                )
                await response(scope, receive, send)
                return
        counted = _Counted(receive, limit, setting, self.settings.body_timeout_s)
        try:
            await self.app(scope, counted, send)
        finally:
            counted.stop_timer()


class _Counted:
    """A `receive` that counts body bytes against `limit` and times out idle reads.

    The idle timeout takes one timer per request, not one per read (`asyncio.timeout` around
    each read cost a single-row prediction about a tenth of its time): a read notes when it
    began, and the timer, when it fires, cancels a read that has waited `timeout_s`, or else
    sets itself again for when the read under way would reach it. The cancellation becomes the
    408 as `asyncio.timeout` would turn it into `TimeoutError`: only when nobody else cancelled
    the task meanwhile.
    """

    def __init__(self, receive: Receive, limit: int | None, setting: str, timeout_s: float):
        self.receive = receive
        self.limit = limit
        self.setting = setting
        self.timeout_s = timeout_s
        self.seen = 0
        self.done = False
        self._reader: asyncio.Task[Any] | None = None  # the task in a read, if one is
        self._read_since = 0.0  # loop time when that read began
        self._expired = False
        self._timer: asyncio.TimerHandle | None = None

    async def __call__(self) -> Message:
        if self.done:  # the body is complete: what is left to wait for is a disconnect
            return await self.receive()
        task = asyncio.current_task()
        assert task is not None  # ASGI servers call the app in a task
        loop = task.get_loop()
        self._read_since = loop.time()
        if self._timer is None:
            self._timer = loop.call_at(self._read_since + self.timeout_s, self._on_timer)
        cancelling = task.cancelling()
        self._reader = task
        try:
            message = await self.receive()
        except asyncio.CancelledError:
            if self._expired and task.uncancel() <= cancelling:
                raise HTTPException(
                    408,
                    f"The request body stopped arriving: nothing came for {self.timeout_s:g} s. "
                    "Send it again (TABPILOT_BODY_TIMEOUT_S sets this limit).",
                    headers={"Connection": "close"},
                ) from None
            raise
        finally:
            self._reader = None
        if message["type"] == "http.request":
            self.seen += len(message.get("body", b""))
            if self.limit is not None and self.seen > self.limit:
                raise HTTPException(
                    413,
                    body_too_large_message(self.limit, self.setting),
                    headers={"Connection": "close"},
                )
            self.done = not message.get("more_body", False)
            if self.done:
                self.stop_timer()
        return message

    def _on_timer(self) -> None:
        self._timer = None
        task = self._reader
        if task is None:  # between reads: the next read sets the timer again
            return
        due = self._read_since + self.timeout_s
        loop = task.get_loop()
        if loop.time() >= due:
            self._expired = True
            task.cancel()
        else:
            self._timer = loop.call_at(due, self._on_timer)

    def stop_timer(self) -> None:
        """Drop the timer (the body is complete, or the request is over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


NO_TOKEN_MESSAGE = (
    "This server needs an API token: send the header 'Authorization: Bearer <token>'. "
    "An administrator creates one with: tabpilot users create NAME"
)


def _anonymous_body(scope: Scope) -> bool:
    """An `/api/` request that sends a body but no credentials at all (no Authorization
    header, no web session cookie): its 401 is certain before a byte of the body is read."""
    if not scope["path"].startswith("/api/"):
        return False
    has_body = False
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            return False
        if name == b"cookie" and SESSION_COOKIE.encode() + b"=" in value:
            return False
        if (name == b"content-length" and value not in (b"", b"0")) or (
            name == b"transfer-encoding"
        ):
            has_body = True
    return has_body


def _content_length(scope: Scope) -> int | None:
    headers: Any = scope.get("headers") or ()
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
