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
   the token in the `X-CSRF-Token` header (page forms are checked by `require_csrf`). The JSON
   API renders no page, so under `/api/` the token is not computed and a new cookie is minted
   only when the answer is HTML (a report file): API calls, single-row predictions among them,
   cost no HMAC and no random bytes.
5. **Headers.** Every answer gets `X-Content-Type-Options: nosniff` and a same-origin
   `Referrer-Policy`; HTML outside `/api/` and the API docs gets `CSP` (no inline script, no
   framing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from starlette.requests import Request, cookie_parser
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
_COMMON_RAW = [(name.encode(), value.encode()) for name, value in COMMON_HEADERS.items()]
_CSP_RAW = (b"content-security-policy", CONTENT_SECURITY_POLICY.encode())
_HTML = b"text/html"

# The request headers the checks read. They are taken from the raw ASGI headers in one pass
# (each the first value, as `Request.headers.get` reads it; cookies from every Cookie header,
# as `Request.cookies` reads them), so the common case builds no `Request` at all.
_CHECKED_HEADERS = frozenset(
    {b"host", b"origin", b"sec-fetch-site", b"authorization", CSRF_HEADER.encode()}
)


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


def cross_site_problem(site: str | None, origin: str | None, host: str | None) -> str | None:
    """Why a state-changing request looks cross-site, or None if it does not, from its
    `Sec-Fetch-Site`, `Origin` and `Host` headers."""
    if site is not None and site.lower() not in ACCEPTED_FETCH_SITES:
        return f"the browser marked it {site} (Sec-Fetch-Site)"
    if origin is None:
        return None
    if origin.strip().lower() == "null":
        return "it came from an opaque origin (null)"
    parts = urlsplit(origin.strip().lower())
    default = DEFAULT_PORTS.get(parts.scheme)
    host = (host or "").strip().lower()
    if _without_port(parts.netloc, default) != _without_port(host, default):
        return f"it came from {origin}"
    return None


def checked_headers(scope: Scope) -> tuple[dict[bytes, str], dict[str, str]]:
    """The request's `_CHECKED_HEADERS` (first values, decoded) and its cookies."""
    found: dict[bytes, str] = {}
    cookies: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name == b"cookie":
            cookies.update(cookie_parser(value.decode("latin-1")))
        elif name in _CHECKED_HEADERS and name not in found:
            found[name] = value.decode("latin-1")
    return found, cookies


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
        headers, cookies = checked_headers(scope)
        refused = self._refusal(scope, headers)
        if refused is not None:
            await refused(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        cookie = cookies.get(CSRF_COOKIE)
        has_cookie = is_csrf_cookie(cookie)
        if not has_cookie:
            cookie = None
        api = scope["path"].startswith("/api/")
        fresh_cookie = None
        if not api:  # a page (or the docs) may embed the token: it is needed now
            if cookie is None:
                cookie = fresh_cookie = new_csrf_cookie()
            state["csrf_token"] = csrf_token_for(self.secret, cookie)
        await self._resolve_session(scope, headers, cookies, state)
        if (
            api
            and scope["method"] in UNSAFE_METHODS
            and state.get("session_user")
            and not csrf_matches(self.secret, cookie, headers.get(CSRF_HEADER.encode()))
        ):
            answer = refusal(
                Request(scope),
                403,
                "csrf_failed",
                "This request came with your login cookie but without the page's CSRF token "
                "(header X-CSRF-Token); reload the page and try again.",
            )
            await answer(scope, receive, send)
            return
        sender = self._sender(send, scope, needs_cookie=not has_cookie, fresh_cookie=fresh_cookie)
        await self.app(scope, receive, sender)

    def _refusal(self, scope: Scope, headers: dict[bytes, str]) -> Any:
        path: str = scope["path"]
        if path not in HOST_EXEMPT_PATHS:
            name = host_name(headers.get(b"host"))
            if not self.hosts.allows(name):
                return refusal(Request(scope), 400, "bad_host", host_refused_message(name))
        method: str = scope["method"]
        if method in UNSAFE_METHODS:
            problem = cross_site_problem(
                headers.get(b"sec-fetch-site"), headers.get(b"origin"), headers.get(b"host")
            )
            if problem:
                return refusal(
                    Request(scope),
                    403,
                    "cross_site",
                    f"Refused a {method} to {path} because {problem}: Tabpilot accepts "
                    "changes only from its own pages or from programs (curl, scripts).",
                )
        return None

    async def _resolve_session(
        self,
        scope: Scope,
        headers: dict[bytes, str],
        cookies: dict[str, str],
        state: dict[str, Any],
    ) -> None:
        if self.settings.auth != "token" or b"authorization" in headers:
            return
        value = cookies.get(SESSION_COOKIE)
        if not value or scope["path"].startswith("/static/"):
            return
        store = scope["app"].state.ctx.metadata
        principal = await anyio.to_thread.run_sync(read_session, self.secret, value, store)
        if principal is not None:
            state["principal"] = principal
            state["session_user"] = principal.user_id

    def _sender(
        self, send: Send, scope: Scope, *, needs_cookie: bool, fresh_cookie: str | None
    ) -> Send:
        """`send`, adding the headers of the module docstring to the answer; a browser without
        a CSRF cookie gets one with an HTML answer (`fresh_cookie`, or one minted then)."""
        path: str = scope["path"]
        secure = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name for name, _ in headers}
                headers.extend(pair for pair in _COMMON_RAW if pair[0] not in names)
                content_type = next((v for n, v in headers if n == b"content-type"), b"")
                if content_type.startswith(_HTML):
                    if b"content-security-policy" not in names and not path.startswith(
                        NO_CSP_PREFIXES
                    ):
                        headers.append(_CSP_RAW)
                    if needs_cookie:  # pages only: API clients need no CSRF cookie
                        value = fresh_cookie or new_csrf_cookie()
                        cookie = cookie_header(CSRF_COOKIE, value, secure)
                        headers.append((b"set-cookie", cookie.encode("latin-1")))
                message["headers"] = headers
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
