"""Job event streams (Server-Sent Events): bounded in number and lifetime, one poller per job.

`GET /api/jobs/{id}/stream` keeps a connection open for as long as a job runs. To keep that
cheap whatever the number of open streams:

- every job followed by anyone has one `JobWatch`, an asyncio task that reads the store for new
  events every `POLL_SECONDS` (one indexed query; the job record is read again only when events
  arrived, or every `REFRESH_SECONDS`) and wakes the job's streams when something changed; an
  idle stream does no work of its own beyond a keep-alive comment;
- `StreamSlots` caps the streams open at once per user (`TABPILOT_STREAM_MAX_PER_USER`) and in
  all (`TABPILOT_STREAM_MAX_TOTAL`): one more is refused with `TooManyRequests`;
- a stream ends after `TABPILOT_STREAM_MAX_SECONDS`; `EventSource` reconnects by itself with
  `Last-Event-ID` and the stream resumes after the last event it sent.

Everything here runs on the event loop (store reads in the thread pool), so the counters need
no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from tabpilot.api.schemas import event_out, job_out
from tabpilot.context import AppContext
from tabpilot.errors import NotFound, TooManyRequests
from tabpilot.records import JobEvent, JobRecord
from tabpilot.services import jobs as service

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
REFRESH_SECONDS = 5.0
KEEPALIVE_SECONDS = 15.0
RETRY_MS = 2000


def sse(event: str, data: object, event_id: int | None = None) -> str:
    """One Server-Sent Event."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class StreamSlots:
    """Counts open streams per owner and in all; `take` refuses one beyond the settings."""

    def __init__(self) -> None:
        self.per_owner: Counter[str] = Counter()
        self.total = 0

    def take(self, owner: str, *, per_user: int, total: int) -> None:
        if self.per_owner[owner] >= per_user:
            raise TooManyRequests(
                f"You have {self.per_owner[owner]} job event streams open, the most this server "
                f"allows per user (TABPILOT_STREAM_MAX_PER_USER={per_user}); close some (a "
                "browser tab following a job holds one) or poll GET /api/jobs/{id} instead.",
                details={"open_streams": self.per_owner[owner], "max_per_user": per_user},
            )
        if self.total >= total:
            raise TooManyRequests(
                f"This server has {self.total} job event streams open, its limit "
                f"(TABPILOT_STREAM_MAX_TOTAL={total}); try again later or poll GET "
                "/api/jobs/{id} instead.",
                details={"open_streams": self.total, "max_total": total},
            )
        self.per_owner[owner] += 1
        self.total += 1

    def give_back(self, owner: str) -> None:
        self.per_owner[owner] -= 1
        if self.per_owner[owner] <= 0:
            del self.per_owner[owner]
        self.total -= 1


class JobWatch:
    """The one poller of a job, shared by every stream following it."""

    def __init__(self, ctx: AppContext, owner: str, job_id: str) -> None:
        self.ctx, self.owner, self.job_id = ctx, owner, job_id
        self.followers = 0
        self.version = 0  # bumped whenever there is something new to read
        self.job: JobRecord | None = None
        self.gone = False  # the job was deleted
        self._seq = 0
        self._changed = asyncio.Event()
        self.on_idle: Callable[[], None] = lambda: None  # called when the poller stops
        self._task: asyncio.Task[None] | None = None

    def start(self, job: JobRecord) -> None:
        self.job = job
        self._task = asyncio.create_task(self._run(), name=f"tabpilot-watch-{self.job_id}")

    @property
    def ended(self) -> bool:
        return self.gone or (self.job is not None and self.job.status.is_final)

    async def wait(self, version: int, timeout: float) -> None:
        """Until `version` is out of date, or `timeout` seconds."""
        if self.version != version or self.ended:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def _run(self) -> None:
        refreshed = time.monotonic()
        try:
            while self.followers > 0 and not self.ended:
                await asyncio.sleep(POLL_SECONDS)
                try:
                    news = await run_in_threadpool(self._newer_events)
                    stale = time.monotonic() - refreshed >= REFRESH_SECONDS
                    if news or stale:
                        self.job = await run_in_threadpool(
                            service.get_job, self.ctx, owner=self.owner, job_id=self.job_id
                        )
                        refreshed = time.monotonic()
                except NotFound:
                    self.gone = True
                    news = False
                except Exception:  # a store hiccup: keep following, the next poll may work
                    log.exception("polling job %s for its event streams failed", self.job_id)
                    continue
                if news or self.ended:
                    self._bump()
        finally:
            self.on_idle()

    def _newer_events(self) -> bool:
        """Whether the job has events the poller has not seen (one indexed query when idle)."""
        found = False
        while True:
            events = service.list_job_events(
                self.ctx, owner=self.owner, job_id=self.job_id, after=self._seq
            )
            if not events:
                return found
            found = True
            self._seq = events[-1].seq


class StreamHub:
    """The app's open streams: their slots, and one `JobWatch` per followed job."""

    def __init__(self) -> None:
        self.slots = StreamSlots()
        self.watches: dict[tuple[str, str], JobWatch] = {}

    def watch(self, ctx: AppContext, owner: str, job: JobRecord) -> JobWatch:
        key = (owner, job.id)
        current = self.watches.get(key)
        if current is not None and not current.ended and current.followers > 0:
            current.followers += 1
            return current
        fresh = JobWatch(ctx, owner, job.id)
        fresh.on_idle = lambda: self._forget(key, fresh)
        self.watches[key] = fresh
        fresh.followers += 1
        fresh.start(job)
        return fresh

    def _forget(self, key: tuple[str, str], watch: JobWatch) -> None:
        if self.watches.get(key) is watch:
            del self.watches[key]


def stream_hub(app: FastAPI) -> StreamHub:
    hub = getattr(app.state, "job_streams", None)
    if hub is None:
        hub = app.state.job_streams = StreamHub()
    return hub  # type: ignore[no-any-return]


class Slot:
    """One taken stream slot; `release` gives it back, once, however often it is called."""

    def __init__(self, hub: StreamHub, owner: str) -> None:
        self.hub, self.owner = hub, owner
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self.hub.slots.give_back(self.owner)


def open_stream(request: Request, ctx: AppContext, owner: str) -> Slot:
    """Take a stream slot for `owner` (`TooManyRequests` beyond the settings)."""
    hub = stream_hub(request.app)
    settings = ctx.settings
    hub.slots.take(owner, per_user=settings.stream_max_per_user, total=settings.stream_max_total)
    return Slot(hub, owner)


class EventStreamResponse(StreamingResponse):
    """A `text/event-stream` answer that gives its slot back however it ends (even when the
    client left before the first byte, when the body's generator never started)."""

    def __init__(self, slot: Slot, content: AsyncIterator[str]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.slot.release()


def stream_response(
    slot: Slot, ctx: AppContext, job_id: str, after: int, request: Request
) -> EventStreamResponse:
    """The answer of `GET /api/jobs/{id}/stream`, holding `slot` until it ends."""
    return EventStreamResponse(slot, follow(slot, ctx, job_id, after, request))


async def follow(
    slot: Slot, ctx: AppContext, job_id: str, after: int, request: Request
) -> AsyncIterator[str]:
    """The stream's text: the job, its events after `after`, live ones, and `end`."""
    hub, owner = slot.hub, slot.owner
    watch: JobWatch | None = None
    try:
        job = await run_in_threadpool(service.get_job, ctx, owner=owner, job_id=job_id)
        yield f"retry: {RETRY_MS}\n\n"
        yield sse("job", job_out(job).model_dump(mode="json"))
        watch = hub.watch(ctx, owner, job)
        async for text in _follow_watch(watch, ctx, after, request):
            yield text
    finally:
        if watch is not None:
            watch.followers -= 1
        slot.release()


async def _follow_watch(
    watch: JobWatch, ctx: AppContext, after: int, request: Request
) -> AsyncIterator[str]:
    seq = after
    deadline = time.monotonic() + ctx.settings.stream_max_seconds
    last_sent = time.monotonic()
    version = -1  # read once at the start, whatever the watch has seen
    while True:
        if version != watch.version:
            version = watch.version
            async for event in _events_after(watch, seq):
                seq = event.seq
                yield sse(event.kind, event_out(event).model_dump(mode="json"), event.seq)
                last_sent = time.monotonic()
            if watch.gone:
                yield sse("end", {"id": watch.job_id, "status": "deleted"})
                return
            if watch.job is not None and watch.job.status.is_final:
                yield sse("end", job_out(watch.job).model_dump(mode="json"))
                return
        now = time.monotonic()
        if now >= deadline or await request.is_disconnected():
            return  # past its lifetime: the client reconnects with Last-Event-ID
        if now - last_sent >= KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            last_sent = now
        wait = min(KEEPALIVE_SECONDS - (now - last_sent), deadline - now)
        await watch.wait(version, max(wait, 0.05))


async def _events_after(watch: JobWatch, seq: int) -> AsyncIterator[JobEvent]:
    """Every event after `seq`, page by page; none if the job is gone."""
    while True:
        try:
            events: list[Any] = await run_in_threadpool(
                service.list_job_events,
                watch.ctx,
                owner=watch.owner,
                job_id=watch.job_id,
                after=seq,
            )
        except NotFound:
            watch.gone = True
            return
        for event in events:
            seq = event.seq
            yield event
        if not events:
            return
