"""`LocalRunner` (`local://?workers=N`): worker slots in this process, one child process per job.

Each slot is a thread that claims the oldest queued job, starts
`python -m tabpilot.jobs.child JOB_ID WORKER_ID` in its own process group, and holds the job's
lease with heartbeats while the child trains. The child imports the ML libraries, this process
never does, and a crash or out-of-memory kill of the child cannot take the server down: the
slot sees the child die without finishing and retries the job once, or fails it with the
reason. A supervisor thread reaps expired leases (jobs whose worker process vanished, here or
in another process) every second, so they are retried or failed within seconds.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tabpilot.engine.budget import MAX_AUTO_BUDGET
from tabpilot.errors import NotFound
from tabpilot.jobs.base import JobRunner
from tabpilot.jobs.execute import remove_temp_dirs
from tabpilot.jobs.lease import (
    HEARTBEAT_SECONDS,
    LEASE_SECONDS,
    describe_exit,
    give_up_job,
    make_worker_id,
    reap_expired_leases,
    release_lease,
)
from tabpilot.records import JobRecord, JobStatus

if TYPE_CHECKING:
    from tabpilot.context import AppContext
    from tabpilot.settings import Settings  # not at run time: settings imports jobs.registry

log = logging.getLogger("tabpilot.jobs")

KILL_WAIT_SECONDS = 30.0


@dataclass
class _Slot:
    index: int
    worker_id: str
    job_id: str | None = None
    process: subprocess.Popen[bytes] | None = None
    spare: subprocess.Popen[bytes] | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


def child_environment(settings: Settings) -> dict[str, str]:
    """This process's environment with the store settings resolved, for a job's child.

    Every `TABPILOT_*` setting is replaced by the resolved value the child needs (the stores),
    so options given on the command line (`--data-dir`) reach it and nothing else can make
    its settings invalid. The child runs its one job inline.
    """
    return settings.store_environment(runner_uri="inline://")


class LocalRunner(JobRunner):
    """Runs jobs in child processes of this one, `workers` at a time, oldest first.

    Args:
        workers: how many jobs may run at once.
        lease_seconds: how long a claim lasts without a heartbeat.
        heartbeat_seconds: how often a slot extends the lease of its running job.
        poll_seconds: how often an idle slot looks for jobs queued by other processes.
        reap_seconds: how often expired leases are reaped.
        warm: keep one spare child per slot with the ML libraries already imported, so a job
            starts training at once instead of after about two seconds of imports (at the
            cost of that process's memory, about 300 MB, while idle).
        overtime_grace: a job still running `2 x budget + overtime_grace` seconds after it
            started is presumed hung: its process is killed and the job failed (no retry).
    """

    def __init__(
        self,
        workers: int = 1,
        *,
        lease_seconds: float = LEASE_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        poll_seconds: float = 1.0,
        reap_seconds: float = 1.0,
        warm: bool = True,
        overtime_grace: float = 300.0,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.workers = workers
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = poll_seconds
        self.reap_seconds = reap_seconds
        self.warm = warm
        self.overtime_grace = overtime_grace
        self._ctx: AppContext | None = None
        self._slots: list[_Slot] = []
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._wake = threading.Condition()
        self._generation = 0
        self._lock = threading.Lock()
        self._env: dict[str, str] = {}

    # -- JobRunner -----------------------------------------------------------------------------

    def start(self, ctx: AppContext) -> None:
        if self._threads:
            raise RuntimeError("LocalRunner is already started")
        self._ctx = ctx
        self._env = child_environment(ctx.settings)
        self._stopping.clear()
        # Jobs left RUNNING by a previous process whose lease has expired: settle them first.
        self._reap()
        self._slots = [_Slot(i, make_worker_id("local", i)) for i in range(self.workers)]
        for slot in self._slots:
            self._spawn(self._slot_loop, f"tabpilot-worker-{slot.index}", slot)
        self._spawn(self._supervise, "tabpilot-reaper")
        log.info("local runner started: %d worker(s)", self.workers)

    def submit(self, job_id: str) -> None:
        self._wake_all()

    def cancel(self, job_id: str) -> None:
        for slot in self._slots:
            if slot.job_id == job_id:
                slot.cancel.set()

    def stop(self) -> None:
        """Stop the slots, killing running children; their jobs are queued again or failed."""
        self._stopping.set()
        self._wake_all()
        for slot in self._slots:
            slot.cancel.set()
        for thread in self._threads:
            thread.join(timeout=KILL_WAIT_SECONDS)
        self._threads = []

    # -- for tests and status pages ------------------------------------------------------------

    def running(self) -> dict[str, int]:
        """Job id -> pid of the child process training it, for jobs running now."""
        with self._lock:
            return {
                s.job_id: s.process.pid
                for s in self._slots
                if s.job_id is not None and s.process is not None
            }

    @property
    def worker_ids(self) -> list[str]:
        return [s.worker_id for s in self._slots]

    # -- internals -----------------------------------------------------------------------------

    @property
    def ctx(self) -> AppContext:
        if self._ctx is None:
            raise RuntimeError("LocalRunner.start(ctx) must be called first")
        return self._ctx

    def _spawn(self, target: Callable[..., None], name: str, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _wake_all(self) -> None:
        with self._wake:
            self._generation += 1
            self._wake.notify_all()

    def _reap(self) -> None:
        try:
            if reap_expired_leases(self.ctx.metadata):
                self._wake_all()
        except Exception:
            log.exception("reaping expired leases failed; will try again")

    def _supervise(self) -> None:
        while not self._stopping.wait(self.reap_seconds):
            self._reap()

    def _slot_loop(self, slot: _Slot) -> None:
        try:
            self._serve_slot(slot)
        finally:
            self._drop_spare(slot)

    def _serve_slot(self, slot: _Slot) -> None:
        while not self._stopping.is_set():
            self._ensure_spare(slot)
            with self._wake:
                generation = self._generation
            try:
                job = self.ctx.metadata.claim_next_job(
                    worker_id=slot.worker_id, lease_seconds=self.lease_seconds
                )
            except Exception:
                log.exception("worker %s could not claim a job; will try again", slot.worker_id)
                job = None
            if job is not None:
                try:
                    self._run(slot, job)
                except Exception:
                    # The store failed us mid-job; the lease expires and the reaper settles it.
                    log.exception("worker %s: job %s: unexpected error", slot.worker_id, job.id)
                continue
            with self._wake:
                if self._generation == generation and not self._stopping.is_set():
                    self._wake.wait(self.poll_seconds)

    def _launch(self, *args: str) -> subprocess.Popen[bytes]:
        """Start `python -m tabpilot.jobs.child ARGS` as the leader of a new process group."""
        command = [sys.executable, "-m", "tabpilot.jobs.child", *args]
        command += ["--parent-pid", str(os.getpid())]
        stdin = subprocess.PIPE if "--wait" in args else subprocess.DEVNULL
        return subprocess.Popen(command, env=self._env, stdin=stdin, start_new_session=True)

    def _ensure_spare(self, slot: _Slot) -> None:
        """Keep a warm child (ML libraries imported) ready for the slot's next job."""
        if not self.warm or (slot.spare is not None and slot.spare.poll() is None):
            return
        try:
            slot.spare = self._launch("--wait")
        except OSError:
            log.exception("worker %s could not start a spare process", slot.worker_id)
            slot.spare = None

    def _drop_spare(self, slot: _Slot) -> None:
        spare, slot.spare = slot.spare, None
        if spare is not None:
            _kill_group(spare)
            with contextlib.suppress(subprocess.TimeoutExpired):
                spare.wait(timeout=KILL_WAIT_SECONDS)

    def _start_child(self, slot: _Slot, job: JobRecord) -> subprocess.Popen[bytes]:
        """Hand the job to the slot's warm spare, or start a fresh child if there is none."""
        spare, slot.spare = slot.spare, None
        if spare is not None and spare.poll() is None and spare.stdin is not None:
            try:
                spare.stdin.write(f"{job.id} {slot.worker_id}\n".encode())
                spare.stdin.close()
                return spare
            except OSError:  # it died meanwhile
                _kill_group(spare)
                spare.wait()
        return self._launch(job.id, slot.worker_id)

    def _run(self, slot: _Slot, job: JobRecord) -> None:
        meta = self.ctx.metadata
        slot.cancel.clear()
        try:
            process = self._start_child(slot, job)
        except OSError as exc:
            give_up_job(meta, job, reason=f"the training process could not start: {exc}")
            return
        with self._lock:
            slot.job_id, slot.process = job.id, process
        log.info("job %s: started in process %d (attempt %d)", job.id, process.pid, job.attempts)
        try:
            why_killed, returncode = self._watch(slot, job, process)
        finally:
            with self._lock:
                slot.job_id, slot.process = None, None
        if returncode != 0:
            remove_temp_dirs(job.id)
        self._settle(slot, job, why_killed, returncode)

    def _watch(
        self, slot: _Slot, job: JobRecord, process: subprocess.Popen[bytes]
    ) -> tuple[str | None, int]:
        """Heartbeat while the child runs; kill it when the job is no longer ours."""
        meta = self.ctx.metadata
        next_beat = time.monotonic() + self.heartbeat_seconds
        deadline = time.monotonic() + overtime_limit(job, grace=self.overtime_grace)
        while True:
            try:
                return None, process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
            why = None
            if self._stopping.is_set():
                why = "stopping"
            elif slot.cancel.is_set():
                why = "canceled"
            elif time.monotonic() > deadline:
                why = "overtime"
            elif time.monotonic() >= next_beat:
                next_beat = time.monotonic() + self.heartbeat_seconds
                try:
                    held = meta.heartbeat(
                        job.id, worker_id=slot.worker_id, lease_seconds=self.lease_seconds
                    )
                except Exception:  # a blip: the lease outlives a few missed beats
                    log.warning("job %s: heartbeat failed; retrying", job.id, exc_info=True)
                    held = True
                if not held:
                    why = "lease lost"
            if why is not None:
                log.info("job %s: stopping its process %d (%s)", job.id, process.pid, why)
                _kill_group(process)
                try:
                    return why, process.wait(timeout=KILL_WAIT_SECONDS)
                except subprocess.TimeoutExpired:
                    log.error("job %s: process %d would not die", job.id, process.pid)
                    return why, -signal.SIGKILL

    def _settle(self, slot: _Slot, job: JobRecord, why_killed: str | None, returncode: int) -> None:
        """The child is gone: make sure the store says how the job ended."""
        meta = self.ctx.metadata
        if why_killed == "stopping":
            release_lease(meta, job, why="the worker stopped while training")
            return
        current = meta.find_job(job.id, owner=None)
        if (
            current is None
            or current.status != JobStatus.RUNNING
            or current.lease_owner != slot.worker_id
        ):
            return  # the child recorded the outcome, or the job was canceled or reclaimed
        if why_killed == "canceled":
            with contextlib.suppress(NotFound):  # deleted meanwhile
                meta.transition_job(
                    job.id,
                    owner=None,
                    expect=JobStatus.RUNNING,
                    to=JobStatus.CANCELED,
                    held_by=slot.worker_id,
                    message="canceled while running",
                )
            return
        if why_killed == "overtime":
            limit = overtime_limit(job, grace=self.overtime_grace)
            reason = (
                f"training was stopped after {limit:.0f} s, far beyond its time budget; "
                "try again with fewer rows or columns, and report it if it happens again"
            )
            give_up_job(meta, current, reason=reason, retry=False)
            return
        if returncode < 0:
            reason = f"training process was killed ({describe_exit(returncode)})"
        else:
            reason = (
                f"training process stopped without recording the outcome "
                f"({describe_exit(returncode)}); see the worker's log"
            )
        if give_up_job(meta, current, reason=reason) is not None:
            self._wake_all()


def overtime_limit(job: JobRecord, *, grace: float = 300.0) -> float:
    """Seconds after which a job's process is presumed hung and stopped: twice its budget
    (or the longest automatic budget) plus `grace` (reports and export take time too)."""
    try:
        budget = float(job.spec.get("time_budget") or MAX_AUTO_BUDGET)
    except (TypeError, ValueError):
        budget = MAX_AUTO_BUDGET
    return 2 * budget + grace


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the child and everything it started (it leads its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        process.kill()
