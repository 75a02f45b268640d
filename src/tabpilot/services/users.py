"""Users of a token-mode server (`TABPILOT_AUTH=token`): each has one API token.

The token is shown once, when the user is created; only its SHA-256 is stored, so a lost
token cannot be recovered, only replaced (`rotate_token`).
"""

from __future__ import annotations

import re
import secrets

from tabpilot.errors import Conflict, InvalidInput, NotFound
from tabpilot.metadata.base import DEFAULT_PAGE_LIMIT, MetadataStore, Page
from tabpilot.records import UserRecord
from tabpilot.services.auth import USER_TOKEN_PREFIX, hash_token

MAX_NAME_LENGTH = 64
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]*$")


def new_token() -> str:
    """A fresh user API token: the prefix and 256 random bits, URL-safe."""
    return USER_TOKEN_PREFIX + secrets.token_urlsafe(32)


def validate_user_name(name: str) -> str:
    """Return the trimmed name, or raise `InvalidInput` saying what a name may contain."""
    value = (name or "").strip()
    if not value or len(value) > MAX_NAME_LENGTH or not _NAME.match(value):
        raise InvalidInput(
            f"User name {name!r} is not valid: use 1 to {MAX_NAME_LENGTH} letters, digits, "
            "'.', '_', '-' or '@', starting with a letter or digit"
        )
    return value


def create_user(store: MetadataStore, *, name: str) -> tuple[UserRecord, str]:
    """Create a user and return it with its API token (the only time the token is known).

    Raises:
        InvalidInput: the name is not valid.
        Conflict: a user of that name exists.
    """
    name = validate_user_name(name)
    if store.find_user_by_name(name) is not None:
        raise Conflict(f'A user named "{name}" already exists; choose another name')
    token = new_token()
    user = store.create_user(UserRecord(name=name, token_hash=hash_token(token)))
    return user, token


def rotate_token(store: MetadataStore, *, name: str) -> tuple[UserRecord, str]:
    """Give a user a new token; the old one stops working at once."""
    user = get_user_by_name(store, name=name)
    token = new_token()
    return store.update_user(user.id, token_hash=hash_token(token)), token


def get_user_by_name(store: MetadataStore, *, name: str) -> UserRecord:
    user = store.find_user_by_name(name.strip())
    if user is None:
        raise NotFound(f'No user named "{name}"; list users with: tabpilot users list')
    return user


def list_users(
    store: MetadataStore, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
) -> Page[UserRecord]:
    """Users, oldest first."""
    return store.list_users(limit=limit, cursor=cursor)


def list_all_users(store: MetadataStore) -> list[UserRecord]:
    users: list[UserRecord] = []
    cursor: str | None = None
    while True:
        page = store.list_users(limit=500, cursor=cursor)
        users.extend(page.items)
        if page.next_cursor is None:
            return users
        cursor = page.next_cursor
