"""Errors on pages: the API's error mapping, shown as a styled page to browsers.

A request is a *page request* when its path is outside the API (`/api/`, the docs, `/static/`,
the probes) and it asks for HTML (`Accept: text/html`, as browsers do, or an htmx request).
For page requests:

- a domain error (`tabpilot.errors`) or an HTTP error gets the page `error.html` with the
  status and the very message the API would have sent (the API's handler builds it, so both say
  the same words and server paths are scrubbed the same way);
- `Unauthenticated` and `LoginRequired` in token mode send the browser to `/login?next=...`;
- anything unexpected is logged with an error id and answered with the 500 page.

Every other request keeps the API's JSON envelope.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tabpilot.api.errors import error_response, new_error_id
from tabpilot.errors import Unauthenticated
from tabpilot.web.render import render

log = logging.getLogger("tabpilot.web")

NOT_PAGE_PREFIXES = ("/api/", "/static/", "/docs", "/redoc", "/openapi.json")
NOT_PAGE_PATHS = frozenset({"/health", "/ready"})
TITLES = {
    400: "Bad request",
    401: "Please log in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    409: "Not possible right now",
    413: "Too large",
    422: "That did not work",
    500: "Something went wrong",
    501: "Not available",
}

Handler = Callable[[Request, Exception], Awaitable[Response]]


class LoginRequired(Exception):
    """A page needs a logged-in user and the browser has no valid session (token mode)."""


def is_page_request(request: Request) -> bool:
    path = request.url.path
    if _not_page_path(path):
        return False
    return "text/html" in request.headers.get("accept", "") or "hx-request" in request.headers


def _not_page_path(path: str) -> bool:
    return path in NOT_PAGE_PATHS or path.startswith(NOT_PAGE_PREFIXES)


def error_page(
    request: Request, status: int, message: str, *, error_id: str | None = None
) -> Response:
    """The styled error page (`error.html`) with `status` and `message`."""
    return render(
        request,
        "error.html",
        status=status,
        status_code=status,
        title=TITLES.get(status, "That did not work"),
        message=message,
        error_id=error_id,
    )


def refusal(request: Request, status: int, code: str, message: str) -> Response:
    """A refusal that runs before any route: a page for page requests, else the envelope."""
    if is_page_request(request):
        return error_page(request, status, message)
    return error_response(status, code, message)


def login_redirect(request: Request) -> Response:
    """Off to the login page, coming back here afterwards (htmx: a full-page redirect)."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/login?next=" + quote(back, safe="/")
    if "hx-request" in request.headers:
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def _token_mode(request: Request) -> bool:
    ctx = getattr(request.app.state, "ctx", None)
    return ctx is not None and ctx.settings.auth == "token"


def _for_pages(original: Handler) -> Handler:
    async def handler(request: Request, exc: Exception) -> Response:
        if not is_page_request(request):
            return await original(request, exc)
        if isinstance(exc, Unauthenticated) and _token_mode(request):
            return login_redirect(request)
        response = await original(request, exc)
        try:
            message = str(json.loads(bytes(response.body))["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = "The request could not be completed."
        status = response.status_code
        if status == 404 and getattr(exc, "detail", None) == "Not Found":  # no route matched
            message = f"There is no page at {request.url.path}."
        return error_page(request, status, message)

    return handler


async def handle_login_required(request: Request, exc: Exception) -> Response:
    return login_redirect(request)


class PageErrorMiddleware:
    """Unexpected errors of page requests become the 500 page (logged with an error id); the
    API's own catch-all still answers every other request with the JSON envelope."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The raw path first: an API call (the common case) builds no `Request` here. A path
        # that is not a page path as sent is not one once `Request.url` has escaped it either.
        if (
            scope["type"] != "http"
            or _not_page_path(scope["path"])
            or not is_page_request(Request(scope))
        ):
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            if started:
                raise
            error_id = new_error_id()
            log.exception("unhandled error %s on page %s", error_id, scope.get("path"))
            message = (
                "An unexpected error happened on the server; it is logged as "
                f"{error_id}. Try again, and if it happens again, report it with that id."
            )
            page = error_page(Request(scope, receive), 500, message, error_id=error_id)
            await page(scope, receive, send)


def install_page_errors(app: FastAPI) -> None:
    """Wrap the API's error handlers (install them first) so browsers get pages: domain
    errors, HTTP errors and request validation errors alike."""
    for kind, original in list(app.exception_handlers.items()):
        if isinstance(kind, type) and "WebSocket" not in kind.__name__:
            app.add_exception_handler(kind, _for_pages(original))
    app.add_exception_handler(LoginRequired, handle_login_required)
    # Innermost of the app's middleware, so it sees a page's error before the API's catch-all.
    app.user_middleware.append(Middleware(PageErrorMiddleware))
