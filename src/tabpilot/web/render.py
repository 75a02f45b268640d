"""Rendering pages: one Jinja2 environment (autoescape on) and `render(request, template, ...)`.

Every template gets, besides what the page passes:

- `request`; `principal` (who is logged in, or None on the login and error pages);
- `auth_mode` ("local" or "token"), `version`;
- `csrf_token` (put `{{ csrf_field() }}` in every form that posts; scripts read
  `<meta name="csrf-token">`), and `static(path)` for asset URLs.

Values are escaped by Jinja2's autoescape. Never mark data `|safe`: a test fails on any
`|safe` in web/templates.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tabpilot import __version__
from tabpilot.web.sessions import CSRF_FIELD

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"
STATIC_PREFIX = "/static"


def format_bytes(value: float | int | None) -> str:
    """1536 -> "1.5 KB"; 1024-based, like TABPILOT_MAX_UPLOAD_MB (js/upload.js agrees)."""
    if value is None:
        return ""
    size = float(value)
    for unit in ("bytes", "KB", "MB"):
        if size < 1024:
            return f"{int(size)} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def format_when(value: datetime | None) -> str:
    """A timestamp as "2026-12-04 19:31 UTC" (minutes are enough on a page)."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def format_number(value: float | int | None) -> str:
    """Thousands separated; floats to 4 significant digits."""
    if value is None:
        return ""
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.4g}"


def _build_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails loudly, not as an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(bytes=format_bytes, when=format_when, num=format_number)
    env.globals["static"] = lambda path: f"{STATIC_PREFIX}/{path}?v={__version__}"
    env.globals["version"] = __version__
    return env


ENVIRONMENT = _build_environment()


def csrf_token(request: Request) -> str:
    """The CSRF token of this browser (set by `BrowserSecurityMiddleware`)."""
    return str(request.scope.get("state", {}).get("csrf_token", ""))


def base_context(request: Request) -> dict[str, Any]:
    state = request.scope.get("state", {})
    ctx = getattr(request.app.state, "ctx", None)
    token = csrf_token(request)
    return {
        "request": request,
        "principal": state.get("principal"),
        "auth_mode": ctx.settings.auth if ctx is not None else "local",
        "csrf_token": token,
        "csrf_field": lambda: Markup('<input type="hidden" name="{}" value="{}">').format(
            CSRF_FIELD, escape(token)
        ),
        "current_path": request.url.path,
    }


def render(
    request: Request,
    template: str,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    """The page `template` (a file in web/templates) filled with `context`."""
    values = base_context(request)
    values.update(context)
    body = ENVIRONMENT.get_template(template).render(values)
    response = HTMLResponse(body, status_code=status, headers=headers)
    # Pages show per-user data: never from a shared cache, never back from history after logout.
    response.headers.setdefault("cache-control", "no-store")
    return response
