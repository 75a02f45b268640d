"""Login and logout (token mode): the API token is exchanged for a session cookie.

The token is checked by the same service as a bearer header (`services.auth.authenticate`);
the cookie (`tabpilot.web.sessions`) holds a signature, never the token. In local mode there is
nobody to log in: `/login` goes home.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from tabpilot.api.deps import Ctx
from tabpilot.errors import Unauthenticated
from tabpilot.services.auth import authenticate, hash_token
from tabpilot.web.access import CsrfChecked
from tabpilot.web.render import render
from tabpilot.web.security import cookie_header
from tabpilot.web.sessions import SESSION_COOKIE, SESSION_TTL, new_session

router = APIRouter(include_in_schema=False)


def safe_next(value: str | None) -> str:
    """Where to go after login: a path on this site only (never //host or a full URL)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    return value


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, ctx: Ctx, next: str | None = None) -> Response:
    target = safe_next(next)
    if ctx.settings.auth == "local" or request.scope.get("state", {}).get("principal"):
        return RedirectResponse(target, status_code=303)
    return render(request, "login.html", next=target, error=None)


@router.post("/login", response_class=HTMLResponse, dependencies=[CsrfChecked])
def login(
    request: Request,
    ctx: Ctx,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    target = safe_next(next)
    if ctx.settings.auth == "local":
        return RedirectResponse(target, status_code=303)
    try:
        principal = authenticate(ctx.metadata, mode="token", token=token.strip() or None)
    except Unauthenticated as exc:
        return render(request, "login.html", status=401, next=target, error=exc.message)
    assert principal.user_id is not None
    value = new_session(
        request.app.state.web_secret,
        user_id=principal.user_id,
        token_hash=hash_token(token.strip()),
    )
    response = RedirectResponse(target, status_code=303)
    secure = request.url.scheme == "https"
    cookie = cookie_header(SESSION_COOKIE, value, secure, max_age=SESSION_TTL)
    response.headers.append("set-cookie", cookie)
    return response


@router.post("/logout", dependencies=[CsrfChecked])
def logout(request: Request) -> Response:
    response = RedirectResponse("/login", status_code=303)
    secure = request.url.scheme == "https"
    response.headers.append("set-cookie", cookie_header(SESSION_COOKIE, "", secure, max_age=0))
    return response
