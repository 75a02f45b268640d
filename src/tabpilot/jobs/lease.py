"""Leases, heartbeats and the lease reaper, shared by every runner.

A worker holds a job while its lease is fresh: it heartbeats every `HEARTBEAT_SECONDS`,
extending the lease to now + `LEASE_SECONDS`. A job whose lease expired lost its worker (the
process was killed, the machine went away); any runner's reaper then gives the job one more
attempt or marks it failed with the reason, so no job stays RUNNING for ever.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import threading
from datetime import datetime
from types import TracebackType

from tabpilot.errors import NotFound
from tabpilot.metadata.base import MetadataStore
from tabpilot.records import JobRecord, JobStatus, utc_now

log = logging.getLogger("tabpilot.jobs")

LEASE_SECONDS = 10.0
"""How long a claim lasts without a heartbeat; a dead worker's job is reaped this long after."""
HEARTBEAT_SECONDS = 3.0
"""How often a worker extends its lease: three tries per lease before it is lost."""
MAX_ATTEMPTS = 2
"""A job whose worker was lost is queued again once; the second loss fails it."""


def make_worker_id(kind: str, slot: int | None = None) -> str:
    """A worker id unique across hosts, processes and runners, e.g. `local-host-4242-0-9f3a1c`."""
    host = socket.gethostname().split(".")[0] or "host"
    slot_part = f"-{slot}" if slot is not None else ""
    return f"{kind}-{host}-{os.getpid()}{slot_part}-{secrets.token_hex(3)}"


def describe_exit(returncode: int) -> str:
    """`-9` -> "signal 9, SIGKILL: ...", `3` -> "exit code 3"."""
    if returncode >= 0:
        return f"exit code {returncode}"
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = "unknown signal"
    text = f"signal {number}, {name}"
    if number == signal.SIGKILL:
        text += ": it may have run out of memory, or someone killed it"
    return text


def give_up_job(
    metadata: MetadataStore, job: JobRecord, *, reason: str, retry: bool = True
) -> JobRecord | None:
    """A RUNNING job lost its worker: queue it again if it has an attempt left, else fail it.

    `retry=False` fails it whatever its attempts (a retry would only repeat the problem).

    One transition, guarded on the job still being RUNNING under the lease of `job`, so when
    several reapers race only one acts, and a job canceled or finished meanwhile is left alone.

    Returns:
        The updated job, or None if someone else changed it first.
    """
    if retry and job.attempts < MAX_ATTEMPTS:
        to = JobStatus.QUEUED
        message = (
            f"{reason}; the job was queued again (attempt {job.attempts + 1} of {MAX_ATTEMPTS})"
        )
    else:
        to, message = JobStatus.FAILED, reason
    try:
        updated = metadata.transition_job(
            job.id,
            owner=None,
            expect=JobStatus.RUNNING,
            to=to,
            held_by=job.lease_owner,
            message=message,
            error=reason if to is JobStatus.FAILED else None,
        )
    except NotFound:  # deleted meanwhile
        return None
    if updated is not None:
        log.warning("job %s: %s", job.id, message)
    return updated


def lost_worker_reason(job: JobRecord, now: datetime) -> str:
    silent = LEASE_SECONDS
    if job.lease_expires_at is not None:
        silent += max(0.0, (now - job.lease_expires_at).total_seconds())
    return f"worker lost: the process running this job stopped (no heartbeat for {silent:.0f} s)"


def reap_expired_leases(metadata: MetadataStore, *, now: datetime | None = None) -> list[JobRecord]:
    """Retry or fail every RUNNING job whose lease expired; returns the jobs this call changed."""
    now = now or utc_now()
    changed = []
    for job in metadata.list_expired_leases(now):
        updated = give_up_job(metadata, job, reason=lost_worker_reason(job, now))
        if updated is not None:
            changed.append(updated)
    return changed


def release_lease(metadata: MetadataStore, job: JobRecord, *, why: str) -> None:
    """Give the job up now (the worker is shutting down): retry or fail it with `why`.

    The same as a reaper finding the lease expired, without waiting for it to expire: the job
    is queued again if it has an attempt left, else failed. Nothing happens if `job`'s worker
    no longer holds it.
    """
    try:
        give_up_job(metadata, job, reason=why)
    except Exception:  # shutting down: the lease expires, and a reaper acts, all the same
        log.exception("job %s: could not release the lease", job.id)


class Heartbeat:
    """A background thread that keeps a job's lease fresh while the `with` block runs.

    `lost` is set when the store says the worker no longer holds the job (canceled, or
    reclaimed after the lease expired); the worker should stop.
    """

    def __init__(
        self,
        metadata: MetadataStore,
        job_id: str,
        *,
        worker_id: str,
        lease_seconds: float = LEASE_SECONDS,
        interval: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.metadata = metadata
        self.job_id = job_id
        self.worker_id = worker_id
        self.lease_seconds = lease_seconds
        self.interval = interval
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join(timeout=self.interval + 5)

    def _run(self) -> None:
        while not self._done.wait(self.interval):
            try:
                held = self.metadata.heartbeat(
                    self.job_id, worker_id=self.worker_id, lease_seconds=self.lease_seconds
                )
            except Exception:  # a blip in the store: the lease outlives a few missed beats
                log.warning("job %s: heartbeat failed; retrying", self.job_id, exc_info=True)
                continue
            if not held:
                self.lost.set()
                return
