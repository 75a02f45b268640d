"""uvicorn's HTTP protocol (httptools) with a cap on header size and a header timeout.

uvicorn with httptools accepts request headers of any size (an 8 MB header was answered 200,
and unfinished 100 MB headers were held in memory) and waits forever for a request whose
headers trickle in a byte at a time (its keep-alive timer restarts on every byte). This
subclass answers 431 once the request line and headers pass `max_header_bytes` and 408 when
they have not all arrived `header_timeout_s` after the connection opened or the previous
response ended, and closes the connection. `tabpilot serve` passes it as uvicorn's `http`.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def _status(code: int, reason: str, message: str) -> bytes:
    body = message.encode("ascii")
    return (
        f"HTTP/1.1 {code} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode("ascii") + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with `max_header_bytes` and `header_timeout_s` (class attributes:
    uvicorn builds the protocol itself, so `guarded_protocol` makes a subclass with values)."""

    max_header_bytes = 64 * 1024
    header_timeout_s = 30.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_bytes = 0
        self._headers_done = False  # of the message being received
        self._waiting = True  # for a request's headers (the timer runs)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self._headers_done:
            self._header_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: bytes after the end of the headers (the body) do not count.
        if not self._headers_done and self._header_bytes > self.max_header_bytes:
            self._refuse(
                431,
                "Request Header Fields Too Large",
                f"The request line and headers are larger than {self.max_header_bytes:,} bytes "
                "(TABPILOT_MAX_HEADER_KB).",
            )

    def on_message_begin(self) -> None:
        self._headers_done = False
        self._header_bytes = 0  # the chunk it starts in is not counted: one read at most
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._waiting = False
        self._disarm_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.pipeline and not self.transport.is_closing():
            # The next request on this connection gets its own time for its headers (a
            # pipelined one has them already).
            self._waiting = True
            self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if not self._waiting or self.transport.is_closing():
            return
        if self._headers_done or self._header_bytes == 0:  # idle, no request begun: close
            self.transport.close()
            return
        self._refuse(
            408,
            "Request Timeout",
            f"The request line and headers did not arrive within {self.header_timeout_s:g} s "
            "(TABPILOT_HEADER_TIMEOUT_S).",
        )

    def _refuse(self, code: int, reason: str, message: str) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(_status(code, reason, message))
        self.transport.close()


def guarded_protocol(*, max_header_bytes: int, header_timeout_s: float) -> type[HttpToolsProtocol]:
    """A `GuardedHttpToolsProtocol` subclass with these limits, for `uvicorn.run(http=...)`."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"max_header_bytes": max_header_bytes, "header_timeout_s": header_timeout_s},
    )
