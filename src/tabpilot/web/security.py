"""Browser-facing security for the whole app, API and pages alike (one pure ASGI middleware).

A server on localhost is what DNS rebinding and cross-site requests attack, so every request
goes through these checks, in this order:

1. **Host.** The Host header must name this server: a loopback name (127.0.0.1, localhost,
   ::1), the address it listens on (`TABPILOT_HOST`, unless a wildcard such as 0.0.0.0), or a
   name in `TABPILOT_ALLOWED_HOSTS`. Anything else (a rebinding attacker's domain) is refused
   before any route runs. `/health` and `/ready` are exempt, for probes that call by address.
2. **Cross-site changes.** A POST, PUT, PATCH or DELETE whose `Origin` is another origin (or
   "null"), or whose `Sec-Fetch-Site` is cross-site or same-site (another port of localhost is
   same-site), is refused in every auth mode. Requests without these headers (curl, scripts)
   are not from a browser page and pass.
3. **Session.** In token mode, a request without an Authorization header but with a valid
   session cookie (`tabpilot.web.sessions`) acts for that user: the principal is put on
   `request.state.principal`, where the API's auth dependency finds it.
4. **CSRF.** Every browser gets a random CSRF cookie; `request.state.csrf_token` is the token
   pages embed. A state-changing `/api/` request authenticated by the session cookie must carry
   the token in the `X-CSRF-Token` header (page forms are checked by `require_csrf`).
5. **Headers.** Every answer gets `X-Content-Type-Options: nosniff` and a same-origin
   `Referrer-Policy`; HTML outside `/api/` and the API docs gets `CSP` (no inline script, no
   framing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tabpilot.settings import Settings
from tabpilot.web.errors import refusal
from tabpilot.web.sessions import (
    CSRF_COOKIE,
    CSRF_HEADER,
    SESSION_COOKIE,
    csrf_matches,
    csrf_token_for,
    is_csrf_cookie,
    new_csrf_cookie,
    read_session,
)

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})
HOST_EXEMPT_PATHS = frozenset({"/health", "/ready"})
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ACCEPTED_FETCH_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": "80", "https": "443"}
# Swagger UI and ReDoc load their own scripts; the policy below is for our pages.
NO_CSP_PREFIXES = ("/api/", "/docs", "/redoc")

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@dataclass(frozen=True)
class HostPolicy:
    """Which Host header names this server answers to."""

    names: frozenset[str]
    suffixes: tuple[str, ...] = ()
    any_host: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> HostPolicy:
        names = set(LOOPBACK_HOSTS)
        bound = settings.host.strip().strip("[]").lower()
        if bound not in WILDCARD_ADDRESSES:
            names.add(bound)
        suffixes = []
        for name in settings.allowed_host_names:
            if name.startswith("*."):
                suffixes.append(name[1:])  # ".example.com"
            elif name != "*":
                names.add(name)
        return cls(frozenset(names), tuple(suffixes), "*" in settings.allowed_host_names)

    def allows(self, name: str | None) -> bool:
        if name is None:
            return False
        return self.any_host or name in self.names or name.endswith(self.suffixes)


def host_name(header: str | None) -> str | None:
    """The name in a Host header, lower-case, without port, brackets or trailing dot."""
    if not header:
        return None
    value = header.strip().lower()
    if value.startswith("["):
        name, bracket, _ = value[1:].partition("]")
        return name if bracket else None
    name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return name.rstrip(".") or None


def host_refused_message(name: str | None) -> str:
    if name is None:
        return "The request has no Host header; Tabpilot answers only requests that name it."
    return (
        f'This server does not answer to the name "{name}" (a guard against DNS rebinding). '
        "If that is this server's name, start it with TABPILOT_ALLOWED_HOSTS="
        f"{name} (comma-separated names; see docs/settings.md), or open it as "
        "http://127.0.0.1:PORT on the machine itself."
    )


def cross_site_problem(request: Request) -> str | None:
    """Why a state-changing request looks cross-site, or None if it does not."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.lower() not in ACCEPTED_FETCH_SITES:
        return f"the browser marked it {site} (Sec-Fetch-Site)"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    if origin.strip().lower() == "null":
        return "it came from an opaque origin (null)"
    parts = urlsplit(origin.strip().lower())
    default = DEFAULT_PORTS.get(parts.scheme)
    host = (request.headers.get("host") or "").strip().lower()
    if _without_port(parts.netloc, default) != _without_port(host, default):
        return f"it came from {origin}"
    return None


def _without_port(netloc: str, default: str | None) -> str:
    """`netloc` without its port when that is the scheme's default (example.com:443 = example.com
    for https)."""
    return netloc.removesuffix(f":{default}") if default else netloc


class BrowserSecurityMiddleware:
    """The checks of the module docstring, around the whole app. Pure ASGI, so streamed
    answers (server-sent events, downloads) pass through untouched."""

    def __init__(self, app: ASGIApp, *, settings: Settings, secret: bytes) -> None:
        self.app = app
        self.settings = settings
        self.secret = secret
        self.hosts = HostPolicy.from_settings(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        refused = self._refusal(request)
        if refused is not None:
            await refused(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        cookie = request.cookies.get(CSRF_COOKIE)
        fresh_cookie = None
        if not is_csrf_cookie(cookie):
            cookie = fresh_cookie = new_csrf_cookie()
        state["csrf_token"] = csrf_token_for(self.secret, cookie or "")
        await self._resolve_session(request, state)
        if (
            request.method in UNSAFE_METHODS
            and scope["path"].startswith("/api/")
            and state.get("session_user")
            and not csrf_matches(self.secret, cookie, request.headers.get(CSRF_HEADER))
        ):
            answer = refusal(
                request,
                403,
                "csrf_failed",
                "This request came with your login cookie but without the page's CSRF token "
                "(header X-CSRF-Token); reload the page and try again.",
            )
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, self._sender(send, scope, fresh_cookie))

    def _refusal(self, request: Request) -> Any:
        path = request.url.path
        if path not in HOST_EXEMPT_PATHS:
            name = host_name(request.headers.get("host"))
            if not self.hosts.allows(name):
                return refusal(request, 400, "bad_host", host_refused_message(name))
        if request.method in UNSAFE_METHODS:
            problem = cross_site_problem(request)
            if problem:
                return refusal(
                    request,
                    403,
                    "cross_site",
                    f"Refused a {request.method} to {path} because {problem}: Tabpilot accepts "
                    "changes only from its own pages or from programs (curl, scripts).",
                )
        return None

    async def _resolve_session(self, request: Request, state: dict[str, Any]) -> None:
        if self.settings.auth != "token" or "authorization" in request.headers:
            return
        value = request.cookies.get(SESSION_COOKIE)
        if not value or request.url.path.startswith("/static/"):
            return
        store = request.app.state.ctx.metadata
        principal = await anyio.to_thread.run_sync(read_session, self.secret, value, store)
        if principal is not None:
            state["principal"] = principal
            state["session_user"] = principal.user_id

    def _sender(self, send: Send, scope: Scope, fresh_cookie: str | None) -> Send:
        path: str = scope["path"]
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    headers.setdefault(name, value)
                html = headers.get("content-type", "").startswith("text/html")
                if html and not path.startswith(NO_CSP_PREFIXES):
                    headers.setdefault("content-security-policy", CONTENT_SECURITY_POLICY)
                if fresh_cookie and html:  # pages only: API clients need no CSRF cookie
                    headers.append("set-cookie", cookie_header(CSRF_COOKIE, fresh_cookie, secure))
            await send(message)

        return send_with_headers


def cookie_header(name: str, value: str, secure: bool, *, max_age: int | None = None) -> str:
    """A `Set-Cookie` value: HttpOnly, SameSite=Strict, for the whole site."""
    parts = [f"{name}={value}", "Path=/", "HttpOnly", "SameSite=Strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts)
