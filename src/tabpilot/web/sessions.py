"""Browser sessions (token mode) and CSRF tokens, both signed with the server's web secret.

The session cookie never holds the API token, nor its hash alone. It holds
`v1.<user id>.<expiry>.<signature>`, where the signature is an HMAC-SHA256 keyed with the
server's secret over the user id, the expiry *and the user's current token hash*. So:

- forging a cookie needs both the secret (a file in the data directory) and the token hash (in
  the metadata store): a leaked database alone, or a leaked secret alone, is not enough;
- rotating a user's token (`tabpilot users rotate NAME`) or deleting the user ends every session
  of that user at once, since the signature no longer matches;
- logging out clears the cookie; a copied cookie stays valid until it expires (`SESSION_TTL`).

The CSRF token is `HMAC(secret, "csrf." + the csrf cookie)`: the cookie is random per browser
(HttpOnly, SameSite=Strict), the token goes into every page (a hidden form field and a
`<meta name="csrf-token">` for scripts). A request proves it came from one of our pages by
sending a token that matches its cookie; a site that can set cookies (a sibling subdomain)
still cannot compute the token without the secret.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from tabpilot.metadata.base import MetadataStore
from tabpilot.services.auth import Principal

SESSION_COOKIE = "tabpilot_session"
CSRF_COOKIE = "tabpilot_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_TTL = 12 * 3600
"""Seconds a login lasts."""
SECRET_FILE = "web-secret.key"


def load_secret(data_dir: Path, *, configured: str = "") -> bytes:
    """The server's web secret: `configured` (TABPILOT_WEB_SECRET) when set, otherwise
    `<data_dir>/web-secret.key`, created (mode 0600) on first use.

    Every server process on the same data directory shares the file, so a session survives
    restarts; servers that share stores but not a directory (Lambda) need the setting.
    """
    if configured.strip():
        return configured.strip().encode("utf-8")
    path = data_dir / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32).hex().encode())
    secret = path.read_bytes().strip()
    if len(secret) < 32:  # a half-written file from a crash: start again
        path.unlink(missing_ok=True)
        return load_secret(data_dir, configured=configured)
    return secret


def _mac(secret: bytes, message: str) -> str:
    digest = hmac.new(secret, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def new_session(secret: bytes, *, user_id: str, token_hash: str, now: float | None = None) -> str:
    """The session cookie's value for a user who just logged in."""
    expires = int((time.time() if now is None else now) + SESSION_TTL)
    return f"v1.{user_id}.{expires}.{_mac(secret, f'{user_id}.{expires}.{token_hash}')}"


def read_session(
    secret: bytes, value: str, store: MetadataStore, *, now: float | None = None
) -> Principal | None:
    """The principal of a session cookie, or None if it is malformed, expired, forged or
    outdated (token rotated, user deleted). Reads the store: call it off the event loop."""
    parts = value.split(".")
    if len(parts) != 4 or parts[0] != "v1" or not parts[2].isdigit():
        return None
    _, user_id, expires, signature = parts
    if int(expires) < (time.time() if now is None else now):
        return None
    user = store.find_user(user_id)
    if user is None:
        return None
    expected = _mac(secret, f"{user_id}.{expires}.{user.token_hash}")
    if not hmac.compare_digest(expected, signature):
        return None
    return Principal(owner=user.id, name=user.name, auth="token", user_id=user.id)


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(32)


def is_csrf_cookie(value: str | None) -> bool:
    """Whether a cookie value has the shape `new_csrf_cookie` gives (else a new one is set)."""
    return bool(value) and 40 <= len(value or "") <= 64 and (value or "").isascii()


def csrf_token_for(secret: bytes, cookie: str) -> str:
    """The token pages embed for the browser holding `cookie`."""
    return _mac(secret, f"csrf.{cookie}")


def csrf_matches(secret: bytes, cookie: str | None, token: str | None) -> bool:
    if not cookie or not token:
        return False
    return hmac.compare_digest(csrf_token_for(secret, cookie), token)
