"""Who a page acts for, and the CSRF check of forms: the dependencies every page uses.

    from tabpilot.web.access import CsrfChecked, PagePrincipal

    @router.get("/things/{thing_id}")
    def thing_page(request: Request, thing_id: str, ctx: Ctx, principal: PagePrincipal): ...

    @router.post("/things/{thing_id}/rename", dependencies=[CsrfChecked])
    def rename_thing(...): ...

`PagePrincipal` is the local user in local mode; in token mode the user of the session cookie,
and without one the browser is sent to the login page. `CsrfChecked` refuses a form (or a
script's request) whose CSRF token (form field `csrf_token` or header `X-CSRF-Token`) does not
match the browser's CSRF cookie.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from tabpilot.errors import Forbidden
from tabpilot.services.auth import Principal, authenticate
from tabpilot.web.errors import LoginRequired
from tabpilot.web.sessions import CSRF_COOKIE, CSRF_FIELD, CSRF_HEADER, csrf_matches

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def page_principal(request: Request) -> Principal:
    """The user a page is for; raises `LoginRequired` in token mode without a session."""
    state: dict[str, Any] = request.scope.setdefault("state", {})
    principal = state.get("principal")
    if isinstance(principal, Principal):
        return principal
    ctx = request.app.state.ctx
    if ctx.settings.auth != "local":
        raise LoginRequired()
    principal = authenticate(ctx.metadata, mode="local", token=None)
    state["principal"] = principal
    return principal


async def require_csrf(request: Request) -> None:
    """Raises `Forbidden` unless the request carries this browser's CSRF token."""
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(FORM_TYPES):
        value = (await request.form()).get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if not csrf_matches(request.app.state.web_secret, request.cookies.get(CSRF_COOKIE), token):
        raise Forbidden(
            "This form has expired or did not come from a Tabpilot page (its CSRF token does "
            "not match); reload the page and send it again."
        )


PagePrincipal = Annotated[Principal, Depends(page_principal)]
CsrfChecked = Depends(require_csrf)
