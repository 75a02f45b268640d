"""How a request is authenticated, and the dependencies routes use to learn who is calling.

`TABPILOT_AUTH=local` (the default): one user, no login. Every request acts for the
operating-system user running the server (`Principal.owner` is that user name), whatever
token it carries, except that a deploy key is refused (401) beyond its model's predictions;
Authorization headers of other schemes (Basic from a proxy in front) are ignored.
`tabpilot serve` refuses to listen beyond loopback in this mode, and the app refuses clients
whose address is not loopback (`tabpilot.api.exposure`).

`TABPILOT_AUTH=token`: every request except `GET /health` and `GET /ready` must carry
`Authorization: Bearer <token>` with a user's API token (`tabpilot users create NAME` prints
one, once). The header is parsed here (`parse_bearer`); the service
(`tabpilot.services.auth.authenticate`) sees only the token, whose SHA-256 is looked up in the
users table. `Principal.owner` is the user's id, and every store call is scoped to it, so
another user's ids answer 404. A missing or unknown token answers 401 with
`WWW-Authenticate: Bearer`.

Deploy keys (prediction-only keys of deployed models) are stored as a hash on the model record,
never in the users table, so `current_owner` rejects them. The model routes read the key with
`bearer_token`: predict verifies it (`services.models.model_for_deploy_key`), every other model
route refuses it as `Forbidden`.

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
from tabpilot.errors import Unauthenticated
from tabpilot.services.auth import Principal, authenticate

__all__ = [
    "Ctx",
    "CurrentPrincipal",
    "Owner",
    "Principal",
    "bearer_scheme",
    "bearer_token",
    "current_owner",
    "current_principal",
    "get_ctx",
    "parse_bearer",
    "router_security",
]

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="APIToken",
    description="A user API token (TABPILOT_AUTH=token): `Authorization: Bearer <token>`. "
    "Create one with `tabpilot users create NAME`. Not needed in local mode.",
)


def parse_bearer(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header value.

    Raises:
        Unauthenticated: the header is missing or is not a bearer token.
    """
    if not authorization or not authorization.strip():
        raise Unauthenticated(
            "This server needs an API token: send the header 'Authorization: Bearer <token>'. "
            "An administrator creates one with: tabpilot users create NAME"
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthenticated(
            "The Authorization header must be 'Bearer <token>' (with the word Bearer, a space, "
            "then your API token)"
        )
    return token


def bearer_token(request: Request) -> str | None:
    """The request's bearer token, or None if it sends none (or another scheme); never raises."""
    value = request.headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _principal(request: Request) -> Principal:
    # The state dict itself (what `request.state` wraps): a miss costs no AttributeError.
    state: dict[str, Any] = request.scope.setdefault("state", {})
    cached = state.get("principal")
    if isinstance(cached, Principal):
        return cached
    ctx = request.app.state.ctx
    mode = ctx.settings.auth
    # Local mode has no login, so other schemes (Basic from an authenticating proxy in front)
    # are ignored there; a bearer token is still read, so that a deploy key is recognised (and
    # refused beyond its model's predictions) rather than ignored.
    header = request.headers.get("authorization")
    token = bearer_token(request) if mode == "local" else parse_bearer(header)
    principal = authenticate(ctx.metadata, mode=mode, token=token)
    state["principal"] = principal
    return principal


def current_principal(request: Request) -> Principal:
    """The authenticated caller; raises `Unauthenticated` (401) if there is none."""
    return _principal(request)


def current_owner(request: Request) -> str:
    """The owner id the request acts for (a FastAPI dependency); 401 without a user token."""
    return _principal(request).owner


def _authenticated(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
) -> Principal:
    return _principal(request)


router_security: list[Any] = [Depends(_authenticated)]
"""Pass as `APIRouter(dependencies=router_security)`: every route of the router needs a user."""

Owner = Annotated[str, Depends(current_owner)]
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
