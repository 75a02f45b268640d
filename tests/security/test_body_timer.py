"""The body idle timeout of `BodyLimitMiddleware` (api/limits.py `_Counted`): one timer per
request rather than one per read, so these check the cases that design has to get right in
process, with short timeouts. (test_request_limits.py checks a stalled body against a real
server.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from starlette.exceptions import HTTPException
from starlette.types import Message

from tabpilot.api.limits import _Counted

TIMEOUT_S = 0.2


def chunks(*delays: float, stall_after: bool = False) -> Callable[[], Awaitable[Message]]:
    """A `receive` giving one body chunk after each delay (the last one ends the body unless
    `stall_after`, after which it never answers)."""
    pending = list(delays)

    async def receive() -> Message:
        if not pending:
            await asyncio.Event().wait()  # a client that stopped sending
        delay = pending.pop(0)
        await asyncio.sleep(delay)
        more = bool(pending) or stall_after
        return {"type": "http.request", "body": b"x", "more_body": more}

    return receive


async def read_body(counted: _Counted) -> int:
    seen = 0
    while True:
        message = await counted()
        seen += len(message["body"])
        if not message["more_body"]:
            return seen


def test_a_body_that_keeps_arriving_is_not_cut_off() -> None:
    # Each read waits under the timeout; together they take more than twice as long.
    async def main() -> tuple[int, bool]:
        counted = _Counted(chunks(*[TIMEOUT_S * 0.6] * 5), None, "S", TIMEOUT_S)
        seen = await read_body(counted)
        return seen, counted._timer is None

    seen, timer_gone = asyncio.run(main())
    assert seen == 5
    assert timer_gone  # the complete body stops the timer


def test_a_read_that_waits_past_the_timeout_is_408() -> None:
    async def main() -> tuple[float, bool]:
        counted = _Counted(chunks(0.0, TIMEOUT_S * 0.5, stall_after=True), None, "S", TIMEOUT_S)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(HTTPException) as raised:
            await read_body(counted)
        assert raised.value.status_code == 408
        assert raised.value.headers == {"Connection": "close"}
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0  # the cancellation was taken back
        counted.stop_timer()
        return loop.time() - started, counted._timer is None

    took, timer_gone = asyncio.run(main())
    # The stall began after the second chunk: the 408 comes a timeout after that, not earlier.
    assert TIMEOUT_S * 1.5 <= took < TIMEOUT_S * 5
    assert timer_gone


def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    async def main() -> None:
        counted = _Counted(chunks(10.0), None, "S", TIMEOUT_S * 10)
        reader = asyncio.create_task(read_body(counted))
        await asyncio.sleep(TIMEOUT_S / 4)
        reader.cancel()  # a client gone, or the server shutting down
        with pytest.raises(asyncio.CancelledError):
            await reader
        counted.stop_timer()

    asyncio.run(main())


def test_the_body_cap_is_still_counted_across_reads() -> None:
    async def main() -> None:
        counted = _Counted(chunks(0.0, 0.0, 0.0), 2, "TABPILOT_MAX_BODY_KB", TIMEOUT_S)
        with pytest.raises(HTTPException) as raised:
            await read_body(counted)
        assert raised.value.status_code == 413
        counted.stop_timer()
        assert counted._timer is None

    asyncio.run(main())
