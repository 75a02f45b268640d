"""Who is calling: the local user (`TABPILOT_AUTH=local`) or an API token's user (`token`).

In local mode there is one user and no login: every record belongs to the name of the
operating-system user running the server, and the server must listen on loopback only (see
`check_bind_host`). In token mode every caller presents a user's API token; the token is looked
up by its SHA-256 in the users table, so a deploy key (a prediction-only key whose hash lives on
a model record, never in the users table) is not a user token. How a front end carries the
token (the API: a bearer header, `tabpilot.api.auth`) is its own business.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import ipaddress
import os
from dataclasses import dataclass
from typing import Literal

from tabpilot.errors import InvalidInput, Unauthenticated
from tabpilot.metadata.base import MetadataStore
from tabpilot.metadata.cache import cache_for
from tabpilot.services.models import DEPLOY_KEY_PREFIX
from tabpilot.settings import Settings

AuthMode = Literal["local", "token"]

USER_RECORDS = "users-by-token"
"""The name of the `VersionedCache` of user records that authentication reads."""

USER_TOKEN_PREFIX = "tpu_"
"""User API tokens start with this, so people (and secret scanners) can tell them apart."""

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


@dataclass(frozen=True)
class Principal:
    """The caller an action is done for.

    Attributes:
        owner: the value stamped on (and scoping) every record: the user's id in token mode,
            the operating-system user name in local mode.
        name: what to show, e.g. "alice".
        auth: the mode that authenticated the caller.
        user_id: the `UserRecord` id in token mode; None in local mode.
    """

    owner: str
    name: str
    auth: AuthMode
    user_id: str | None = None


def hash_token(token: str) -> str:
    """The SHA-256 (hex) of a token; only this is ever stored.

    Tokens carry 256 random bits, so an unsalted fast hash is safe: there is nothing to guess.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@functools.cache
def local_owner() -> str:
    """The operating-system user running this process (the owner in local mode).

    Kept after the first call: a process does not change user, and without USER or LOGNAME
    in the environment (a service, a container) each call would read the password database,
    on every request in local mode."""
    try:
        name = getpass.getuser()
    except Exception:  # no passwd entry (some containers): fall back to the environment
        name = os.environ.get("USER") or os.environ.get("USERNAME") or ""
    return name.strip() or "local"


@functools.cache
def local_principal() -> Principal:
    """The principal of every local-mode request (immutable, so one is shared by all)."""
    name = local_owner()
    return Principal(owner=name, name=name, auth="local")


def authenticate(store: MetadataStore, *, mode: AuthMode | str, token: str | None) -> Principal:
    """The principal a caller acts as, from the auth mode and the token it presented (if any).

    Raises:
        Unauthenticated: token mode and no valid user token (a deploy key is not one); or,
            in local mode, a deploy key, which must never reach beyond its model's predictions.
    """
    if mode == "local":
        # A deploy key scopes its holder to one model's predictions, even where no login is
        # needed: an application holding one must not reach anything else.
        if token and token.startswith(DEPLOY_KEY_PREFIX):
            raise Unauthenticated(
                "A prediction key only works for its model's predict endpoints; "
                "this endpoint needs no key on this server, so send none."
            )
        return local_principal()
    if not token:
        raise Unauthenticated(
            "This server needs an API token. "
            "An administrator creates one with: tabpilot users create NAME"
        )
    token_hash = hash_token(token)
    # Every request in token mode asks: the user record is reused while the store is
    # unchanged, so a rotated token or a removed user is refused at the next request,
    # whichever process changed it (tabpilot.metadata.cache).
    user = cache_for(store, USER_RECORDS).get(
        ("token", token_hash), lambda: store.find_user_by_token_hash(token_hash)
    )
    if user is None:
        raise Unauthenticated(
            "The API token is not valid (it may have been mistyped or revoked; prediction keys "
            "of deployed models only work for that model's predict endpoints). "
            "Ask an administrator for a token: tabpilot users create NAME"
        )
    return Principal(owner=user.id, name=user.name, auth="token", user_id=user.id)


def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; False for 0.0.0.0, a LAN address or a name."""
    value = host.strip().strip("[]").lower()
    if value in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(value).is_loopback
    except ValueError:
        return False


def check_bind_host(settings: Settings, host: str | None = None) -> None:
    """Refuse to listen beyond loopback in local mode, where nobody has to log in.

    Raises:
        InvalidInput: `settings.auth` is "local" and the host is not a loopback address.
    """
    host = settings.host if host is None else host
    if settings.auth == "local" and not is_loopback_host(host):
        raise InvalidInput(
            f'Refusing to listen on "{host}" with TABPILOT_AUTH=local: local mode has no login, '
            "so anyone who can reach the port would own your data. Listen on 127.0.0.1, or set "
            "TABPILOT_AUTH=token and create users with: tabpilot users create NAME",
            details={"host": host, "auth": settings.auth},
        )
