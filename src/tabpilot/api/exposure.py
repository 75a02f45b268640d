"""Local mode answers loopback clients only, whichever server runs the app.

`TABPILOT_AUTH=local` has no login, so anyone who can reach the app owns its data.
`tabpilot serve` refuses to listen beyond loopback in that mode (`check_bind_host`), but an app
built by `create_app()` can be served by another ASGI server on 0.0.0.0; the app must then
refuse the network itself. `LoopbackOnlyMiddleware` wraps the whole app (API, pages, docs and
probes) in local mode and answers 403 to any client whose address is not a loopback address.

The address is the ASGI `client` of the connection. What counts as local:

- a loopback IP address (127.0.0.0/8, ::1, and ::ffff:127.x.y.z);
- no address at all, which ASGI servers report for a Unix socket: reaching one needs access to
  this machine's file system;
- "testclient", the made-up address of Starlette's in-process `TestClient`, which has no
  network at all.

A reverse proxy on the same machine connects from loopback and is let through: whoever puts
one in front of a local-mode server owns the decision to authenticate there (for example with
basic auth, which local mode ignores). `tabpilot serve` does not take client addresses from
`X-Forwarded-For` in local mode, so that such a proxy keeps working; an ASGI server run with
proxy headers trusted reports the original client, which is refused unless it is loopback.
"""

from __future__ import annotations

import ipaddress

from starlette.types import ASGIApp, Receive, Scope, Send

from tabpilot.api.errors import error_response

TEST_CLIENT_ADDRESS = "testclient"
NOT_LOOPBACK_CODE = "not_loopback"


# The usual local addresses, answered without parsing (a parse costs more than the rest of
# this middleware); every other address is parsed.
_KNOWN_LOCAL = frozenset({"", TEST_CLIENT_ADDRESS, "127.0.0.1", "::1"})


def is_local_client(address: str | None) -> bool:
    """True when a connection from `address` (the ASGI client host) comes from this machine."""
    if address is None or address in _KNOWN_LOCAL:
        return True
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def not_loopback_message(address: str) -> str:
    return (
        f"This Tabpilot server runs in local mode (TABPILOT_AUTH=local), which has no login, so "
        f"it answers only programs on its own machine; your address {address} is not a loopback "
        "address. To serve other machines, run it with TABPILOT_AUTH=token and give each user "
        "a token (tabpilot users create NAME)."
    )


class LoopbackOnlyMiddleware:
    """Refuse (403, JSON envelope, code `not_loopback`) every HTTP or WebSocket connection
    whose client address is not local (`is_local_client`). Pure ASGI: nothing else is read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = None if not client else str(client[0])
        if is_local_client(address):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        answer = error_response(
            403,
            NOT_LOOPBACK_CODE,
            not_loopback_message(str(address)),
            {"client": address, "auth": "local"},
        )
        await answer(scope, receive, send)


REPORT_CSP = "sandbox allow-scripts"
"""The reports (EDA, model report) show data values, so they render in a sandbox: a unique
opaque origin without this site's cookies, storage or API, whatever a cell contains."""


def report_headers() -> dict[str, str]:
    """Headers of every HTML report answer: the sandbox policy and no content-type sniffing."""
    return {"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff"}
