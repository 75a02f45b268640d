"""How a request is authenticated, and the dependencies routes use to learn who is calling.

`TABPILOT_AUTH=local` (the default): one user, no login. Every request acts for the
operating-system user running the server (`Principal.owner` is that user name), whatever
headers it carries; `tabpilot serve` refuses to listen beyond loopback in this mode.

`TABPILOT_AUTH=token`: every request except `GET /health` and `GET /ready` must carry
`Authorization: Bearer <token>` with a user's API token (`tabpilot users create NAME` prints
one, once). The token's SHA-256 is looked up in the users table; `Principal.owner` is the
user's id, and every store call is scoped to it, so another user's ids answer 404. A missing
or unknown token answers 401 with `WWW-Authenticate: Bearer`.

Deploy keys (prediction-only keys of deployed models) are stored as a hash on the model record,
never in the users table, so `current_owner` rejects them: a route that also accepts a deploy
key (predict) checks for a user first with `find_principal` and otherwise verifies the key
itself against `ModelRecord.deploy_key_hash`.

Route usage:

    from tabpilot.api.auth import Owner, current_owner, router_security

    router = APIRouter(prefix="/api/things", dependencies=router_security)

    @router.get("/{thing_id}")
    def get_thing(thing_id: str, ctx: Ctx, owner: Owner) -> ...:
        ...

`router_security` documents the bearer scheme in OpenAPI (the Authorize button in /docs) and
authenticates every route of the router; `Owner` (= `Depends(current_owner)`) gives the owner
string to pass to services. The principal is resolved once per request and cached on
`request.state.principal`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tabpilot.api.deps import Ctx, get_ctx
from tabpilot.services.auth import Principal, Unauthenticated, authenticate

__all__ = [
    "Ctx",
    "CurrentPrincipal",
    "Owner",
    "Principal",
    "bearer_scheme",
    "current_owner",
    "current_principal",
    "find_principal",
    "get_ctx",
    "router_security",
]

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="APIToken",
    description="A user API token (TABPILOT_AUTH=token): `Authorization: Bearer <token>`. "
    "Create one with `tabpilot users create NAME`. Not needed in local mode.",
)


def _principal(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    ctx = request.app.state.ctx
    principal = authenticate(
        ctx.metadata,
        mode=ctx.settings.auth,
        authorization=request.headers.get("authorization"),
    )
    request.state.principal = principal
    return principal


def current_principal(request: Request) -> Principal:
    """The authenticated caller; raises `Unauthenticated` (401) if there is none."""
    return _principal(request)


def current_owner(request: Request) -> str:
    """The owner id the request acts for (a FastAPI dependency); 401 without a user token."""
    return _principal(request).owner


def find_principal(request: Request) -> Principal | None:
    """The caller if the request carries valid user credentials (always, in local mode)."""
    try:
        return _principal(request)
    except Unauthenticated:
        return None


def _authenticated(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal:
    return _principal(request)


router_security: list[Any] = [Depends(_authenticated)]
"""Pass as `APIRouter(dependencies=router_security)`: every route of the router needs a user."""

Owner = Annotated[str, Depends(current_owner)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
