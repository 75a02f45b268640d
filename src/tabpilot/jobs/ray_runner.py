"""`RayRunner` (`ray://HOST:PORT?cpus=C&jobs=N`): each job is a task on a Ray cluster.

The runner connects to the cluster as a Ray client (`ray.init("ray://HOST:PORT")`, the address
`ray start --head` opens) and works like a local worker whose child processes live on the
cluster: one dispatcher thread claims the oldest queued job from the store, holds its lease
with heartbeats, and submits a Ray task (`C` CPUs, no retries by Ray) that runs the same
`execute_job` in a Ray worker process, which records the outcome in the stores itself. The
task is given only the job id, the worker id holding the lease and the store URIs.

- Cancel (in the store, or `cancel(job_id)`): the task is cancelled with `force=True`, which
  kills the Ray worker process running it.
- A killed worker process, a lost node or a lost connection to the cluster: the task ends with
  Ray's error, and the job is retried once, then failed with the reason (as a local worker's
  killed child is). Jobs whose runner died are reaped when their lease expires.
- Ray is imported only here; `tabpilot.jobs.registry` imports this module only when a `ray://`
  runner is built, so an API process with another runner never loads Ray.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import ray
import ray.exceptions as rex

from tabpilot.backends import parse_uri
from tabpilot.errors import NotFound, TabpilotError
from tabpilot.jobs.base import JobRunner
from tabpilot.jobs.lease import (
    HEARTBEAT_SECONDS,
    LEASE_SECONDS,
    give_up_job,
    make_worker_id,
    reap_expired_leases,
    release_lease,
)
from tabpilot.jobs.local import overtime_limit
from tabpilot.jobs.ray_hosts import is_local_address, is_this_machine
from tabpilot.jobs.registry import RUNNERS, machine_local_stores, stores_out_of_reach
from tabpilot.records import JobRecord, JobStatus

if TYPE_CHECKING:
    from tabpilot.context import AppContext

log = logging.getLogger("tabpilot.jobs")

TASK_PREFIX = "tabpilot-job-"
"""Each job's Ray task is named `tabpilot-job-<job_id>`; its worker process is titled
`ray::tabpilot-job-<job_id>` while it runs the job."""
RECONNECT_SECONDS = 10.0
"""How long the runner waits before connecting again after it lost the cluster."""


# -- the task: runs in a Ray worker process -------------------------------------------------------


def run_job_on_ray(job_id: str, worker_id: str, stores: dict[str, str]) -> str:
    """The body of a job's Ray task: execute the job against `stores`; return its status.

    `stores` holds the `Settings` fields the worker needs (the store URIs, and the data
    directory when the cluster is this machine). Like a local worker's child, it runs the job
    inline; the runner that submitted it holds the lease.
    """
    from tabpilot.context import build_context
    from tabpilot.jobs.execute import execute_job
    from tabpilot.jobs.inline import InlineRunner
    from tabpilot.jobs.worker import configure_logging
    from tabpilot.settings import load_settings

    configure_logging()  # into the Ray worker's log files
    fields = {"data_dir": str(Path(tempfile.gettempdir()) / "tabpilot-ray"), **stores}
    ctx = build_context(load_settings(runner_uri="inline://", **fields), runner=InlineRunner())
    try:
        log.info("job %s: running in Ray worker process %d", job_id, os.getpid())
        execute_job(ctx, job_id, worker_id=worker_id)
        return ctx.metadata.get_job(job_id, owner=None).status.value
    finally:
        ctx.metadata.close()


# -- the runner: in the API (or `tabpilot worker`) process ----------------------------------------


@dataclass
class _Running:
    """A job this runner claimed and submitted as a Ray task."""

    job: JobRecord
    worker_id: str
    ref: Any  # ray.ObjectRef (a client ref when connected with ray://)
    deadline: float
    next_beat: float
    why_stopped: str | None = None
    """Why the runner cancelled the task: canceled, lease lost, overtime, stopping."""


INIT_ATTEMPTS = 3
"""Connection attempts when the head fails to set a client connection up."""


class RayRunner(JobRunner):
    """Runs each job as a Ray task on the cluster at `address`, `jobs` at a time, oldest first.

    Args:
        address: the cluster's client address, `ray://HOST:PORT`.
        cpus: CPUs Ray reserves for each job's task.
        jobs: jobs run at once; None: the cluster's CPUs (when started) divided by `cpus`.
        lease_seconds, heartbeat_seconds: the lease the runner holds for each running job.
        poll_seconds: how often an idle runner looks for jobs queued by other processes.
        reap_seconds: how often expired leases (jobs whose runner died) are reaped.
        overtime_grace: a job still running `2 x budget + overtime_grace` seconds after it
            started is presumed hung: its task is killed and the job failed (no retry).
    """

    def __init__(
        self,
        address: str,
        *,
        cpus: float = 1.0,
        jobs: int | None = None,
        lease_seconds: float = LEASE_SECONDS,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
        poll_seconds: float = 1.0,
        reap_seconds: float = 1.0,
        overtime_grace: float = 300.0,
    ) -> None:
        if cpus <= 0 or (jobs is not None and jobs < 1):
            raise ValueError(f"cpus must be above 0 and jobs at least 1, not {cpus} and {jobs}")
        self.address = address
        self.cpus = cpus
        self.jobs = jobs
        self.lease_seconds = lease_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.poll_seconds = poll_seconds
        self.reap_seconds = reap_seconds
        self.overtime_grace = overtime_grace
        self._ctx: AppContext | None = None
        self._stores: dict[str, str] = {}
        self._running: dict[str, _Running] = {}
        self._cancel_requests: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected = False
        self._next_connect = 0.0
        self._task: Any = None

    # -- JobRunner -----------------------------------------------------------------------------

    @property
    def workers(self) -> int:
        """Jobs run at once (known once started when `jobs` was not given)."""
        return self.jobs or 1

    def start(self, ctx: AppContext) -> None:
        """Connect to the cluster and start dispatching.

        Raises:
            InvalidInput: naming TABPILOT_RUNNER_URI, when the cluster cannot be reached, or
                when the stores are files on this machine and a node of the cluster is not.
        """
        if self._thread is not None:
            raise RuntimeError("RayRunner is already started")
        self._ctx = ctx
        self._stores = self._store_fields(ctx)
        self._connect_off_the_main_thread()
        if self.jobs is None:
            cluster_cpus = float(ray.cluster_resources().get("CPU", 0.0))
            self.jobs = max(1, int(cluster_cpus // self.cpus))
        self._stopping.clear()
        self._reap()  # jobs left RUNNING by a runner that died: settle them first
        self._thread = threading.Thread(target=self._dispatch, name="tabpilot-ray", daemon=True)
        self._thread.start()
        log.info(
            "Ray runner started: %d job(s) at a time, %s CPU(s) each, on %s",
            self.workers,
            f"{self.cpus:g}",
            self.address,
        )

    def submit(self, job_id: str) -> None:
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancel_requests.add(job_id)
        self._wake.set()

    def stop(self) -> None:
        """Kill the running tasks (their jobs are queued again or failed) and disconnect."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None
        self._disconnect()

    # -- for tests and status pages ------------------------------------------------------------

    def running(self) -> dict[str, str]:
        """Job id -> the worker id holding its lease, for jobs running now."""
        with self._lock:
            return {job_id: run.worker_id for job_id, run in self._running.items()}

    # -- connecting ----------------------------------------------------------------------------

    @property
    def ctx(self) -> AppContext:
        if self._ctx is None:
            raise RuntimeError("RayRunner.start(ctx) must be called first")
        return self._ctx

    def _store_fields(self, ctx: AppContext) -> dict[str, str]:
        """The settings a job's task needs: the stores, as absolute locations."""
        settings = ctx.settings
        fields = {"metadata_uri": settings.metadata_uri, "artifact_uri": settings.artifact_uri}
        local = machine_local_stores(settings.metadata_uri, settings.artifact_uri)
        if local:
            if not is_this_machine(urlsplit(self.address).hostname or ""):
                raise RUNNERS.error(stores_out_of_reach(f"at {self.address} is", local))
            fields["data_dir"] = str(settings.data_dir)
            if parse_uri(settings.artifact_uri).scheme == "":
                fields["artifact_uri"] = os.path.abspath(settings.artifact_uri)
        return fields

    def _connect_off_the_main_thread(self) -> None:
        """`_connect` in a thread of its own: `ray.init` called in the main thread replaces
        the process's SIGTERM handler, and `tabpilot worker` and uvicorn handle SIGTERM."""
        failure: list[BaseException] = []

        def connect() -> None:
            try:
                self._connect()
            except BaseException as exc:  # handed to the caller below
                failure.append(exc)

        thread = threading.Thread(target=connect, name="tabpilot-ray-connect", daemon=True)
        thread.start()
        thread.join()
        if failure:
            raise failure[0]

    def _init_ray(self) -> None:
        """`ray.init` on the client address, tried again when the head's client server fails
        to set the connection up ("Initialization failure from server": it starts a process
        per client, which a busy head can fail to do in time); other errors are final."""
        for attempt in range(1, INIT_ATTEMPTS + 1):
            try:
                ray.init(
                    self.address,
                    logging_level=logging.WARNING,
                    log_to_driver=False,  # job logs stay in the cluster's worker log files
                )
                return
            except ConnectionAbortedError:
                with contextlib.suppress(Exception):
                    ray.shutdown()  # whatever half of a connection there is
                if attempt == INIT_ATTEMPTS:
                    raise
                time.sleep(2.0 * attempt)
            except Exception:
                with contextlib.suppress(Exception):
                    ray.shutdown()
                raise

    def _connect(self) -> None:
        """Connect to the cluster; check its nodes can see the stores."""
        try:
            self._init_ray()
        except Exception as exc:
            raise RUNNERS.error(
                f"cannot reach the Ray cluster at {self.address} ({type(exc).__name__}: "
                f"{_first_line(exc)}); start it with `ray start --head` (its client port is "
                "10001 unless --ray-client-server-port says otherwise), or fix the address"
            ) from None
        self._connected = True
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        local = machine_local_stores(self.ctx.settings.metadata_uri, self.ctx.settings.artifact_uri)
        remote = [
            str(node.get("NodeManagerAddress"))
            for node in nodes
            if not is_local_address(str(node.get("NodeManagerAddress")))
        ]
        if local and remote:
            self._disconnect()
            raise RUNNERS.error(stores_out_of_reach(f"has a node at {remote[0]},", local))
        most = max((float(node.get("Resources", {}).get("CPU", 0.0)) for node in nodes), default=0)
        if most < self.cpus:
            log.warning(
                "Ray runner: jobs ask for %g CPUs but no node of the cluster has more than %g; "
                "they wait until one joins (lower cpus= in TABPILOT_RUNNER_URI)",
                self.cpus,
                most,
            )
        self._task = ray.remote(run_job_on_ray)

    def _disconnect(self) -> None:
        if self._connected:
            self._connected = False
            with contextlib.suppress(Exception):
                ray.shutdown()

    def _reconnect(self) -> bool:
        """Connect again after the cluster was lost, at most every RECONNECT_SECONDS."""
        if self._connected:
            return True
        if time.monotonic() < self._next_connect:
            return False
        self._next_connect = time.monotonic() + RECONNECT_SECONDS
        try:
            self._connect()
        except TabpilotError as exc:
            log.warning("Ray runner: %s; trying again", exc.message)
            return False
        log.info("Ray runner: connected to %s again", self.address)
        return True

    # -- the dispatcher thread -----------------------------------------------------------------

    def _dispatch(self) -> None:
        next_reap = next_claim = 0.0
        while not self._stopping.is_set():
            woken = self._wake.is_set()
            self._wake.clear()
            now = time.monotonic()
            if now >= next_reap:
                self._reap()
                next_reap = now + self.reap_seconds
            try:
                self._tend()
                if (woken or now >= next_claim) and self._reconnect():
                    self._fill()
                    next_claim = time.monotonic() + self.poll_seconds
                if self._running:
                    self._collect(timeout=0.2)
                else:
                    self._wake.wait(min(self.poll_seconds, self.reap_seconds))
            except (ConnectionError, rex.RaySystemError) as exc:
                self._lost_cluster(exc)
            except Exception:
                log.exception("Ray runner: unexpected error; carrying on")
                self._stopping.wait(1.0)
        self._shut_down()

    def _reap(self) -> None:
        try:
            if reap_expired_leases(self.ctx.metadata):
                self._wake.set()
        except Exception:
            log.exception("reaping expired leases failed; will try again")

    def _fill(self) -> None:
        """Claim queued jobs and submit them, while fewer than `jobs` run."""
        while len(self._running) < self.workers and not self._stopping.is_set():
            worker_id = make_worker_id("ray")  # one per claim: attempts never share a lease
            try:
                job = self.ctx.metadata.claim_next_job(
                    worker_id=worker_id, lease_seconds=self.lease_seconds
                )
            except Exception:
                log.exception("Ray runner could not claim a job; will try again")
                return
            if job is None:
                return
            self._submit_task(job, worker_id)

    def _submit_task(self, job: JobRecord, worker_id: str) -> None:
        try:
            ref = self._task.options(
                name=f"{TASK_PREFIX}{job.id}",
                num_cpus=self.cpus,
                max_retries=0,  # the store decides about retries: once, after a lost worker
                retry_exceptions=False,
            ).remote(job.id, worker_id, self._stores)
        except Exception as exc:
            give_up_job(
                self.ctx.metadata,
                job,
                reason=f"the job could not be handed to the Ray cluster ({_first_line(exc)})",
            )
            raise
        now = time.monotonic()
        run = _Running(
            job=job,
            worker_id=worker_id,
            ref=ref,
            deadline=now + overtime_limit(job, grace=self.overtime_grace),
            next_beat=now + self.heartbeat_seconds,
        )
        with self._lock:
            self._running[job.id] = run
        log.info("job %s: submitted to Ray (attempt %d)", job.id, job.attempts)

    def _tend(self) -> None:
        """Heartbeat the running jobs; kill the tasks of jobs canceled, lost or overtime."""
        with self._lock:
            requests, self._cancel_requests = self._cancel_requests, set()
            runs = list(self._running.values())
        now = time.monotonic()
        for run in runs:
            if run.why_stopped is not None:
                continue
            if run.job.id in requests:
                self._kill(run, "canceled")
            elif now > run.deadline:
                self._kill(run, "overtime")
            elif now >= run.next_beat:
                run.next_beat = now + self.heartbeat_seconds
                if not self._heartbeat(run):
                    self._kill(run, "lease lost")

    def _heartbeat(self, run: _Running) -> bool:
        try:
            return self.ctx.metadata.heartbeat(
                run.job.id, worker_id=run.worker_id, lease_seconds=self.lease_seconds
            )
        except Exception:  # a blip: the lease outlives a few missed beats
            log.warning("job %s: heartbeat failed; retrying", run.job.id, exc_info=True)
            return True

    def _kill(self, run: _Running, why: str) -> None:
        log.info("job %s: killing its Ray task (%s)", run.job.id, why)
        run.why_stopped = why
        try:
            ray.cancel(run.ref, force=True)  # kills the worker process running it
        except Exception:
            log.warning("job %s: could not cancel its Ray task", run.job.id, exc_info=True)

    def _collect(self, *, timeout: float) -> None:
        """Settle the jobs whose tasks ended within `timeout` seconds."""
        refs = [run.ref for run in self._running.values()]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=timeout)
        for run in [r for r in self._running.values() if r.ref in ready]:
            error = _task_error(run.ref)
            with self._lock:
                self._running.pop(run.job.id, None)
            self._settle(run, error)

    def _settle(self, run: _Running, error: str | None) -> None:
        """The task ended: make sure the store says how the job ended."""
        meta = self.ctx.metadata
        if run.why_stopped == "stopping":
            release_lease(meta, run.job, why="the runner stopped while training")
            return
        current = meta.find_job(run.job.id, owner=None)
        if (
            current is None
            or current.status != JobStatus.RUNNING
            or current.lease_owner != run.worker_id
        ):
            return  # the task recorded the outcome, or the job was canceled or reclaimed
        if run.why_stopped == "canceled":
            with contextlib.suppress(NotFound):
                meta.transition_job(
                    current.id,
                    owner=None,
                    expect=JobStatus.RUNNING,
                    to=JobStatus.CANCELED,
                    held_by=run.worker_id,
                    message="canceled while running",
                )
            return
        if run.why_stopped == "overtime":
            limit = overtime_limit(current, grace=self.overtime_grace)
            reason = (
                f"training was stopped after {limit:.0f} s, far beyond its time budget; "
                "try again with fewer rows or columns, and report it if it happens again"
            )
            give_up_job(meta, current, reason=reason, retry=False)
            return
        reason = error or (
            "the Ray task ended without recording the job's outcome; see the Ray worker's log"
        )
        if give_up_job(meta, current, reason=reason) is not None:
            self._wake.set()

    def _lost_cluster(self, exc: BaseException) -> None:
        """The connection to the cluster broke: give the running jobs up, connect again later."""
        log.error("Ray runner lost the cluster at %s: %s", self.address, _first_line(exc))
        reason = f"the connection to the Ray cluster was lost ({_first_line(exc)})"
        with self._lock:
            runs, self._running = list(self._running.values()), {}
        for run in runs:
            with contextlib.suppress(Exception):
                give_up_job(self.ctx.metadata, run.job, reason=reason)
        self._disconnect()
        self._next_connect = time.monotonic() + RECONNECT_SECONDS

    def _shut_down(self) -> None:
        """Stopping: kill every running task and give its job up (queued again or failed)."""
        with self._lock:
            runs = list(self._running.values())
        for run in runs:
            if self._connected:
                self._kill(run, "stopping")
            release_lease(self.ctx.metadata, run.job, why="the runner stopped while training")
        with self._lock:
            self._running = {}


def _task_error(ref: Any) -> str | None:
    """None if the task returned, else why it did not, in words a user can act on."""
    try:
        ray.get(ref, timeout=10)
    except rex.TaskCancelledError:
        return "its Ray task was cancelled outside Tabpilot"
    except rex.OutOfMemoryError:
        return (
            "Ray stopped the training because its node ran out of memory; try a smaller "
            "dataset, or give the Ray workers more memory"
        )
    except rex.WorkerCrashedError:
        return (
            "the Ray worker process running it died (it may have run out of memory, or "
            "someone killed it)"
        )
    except (rex.NodeDiedError, rex.LocalRayletDiedError):
        return "the Ray node running it was lost"
    except rex.RayTaskError as exc:
        cause = exc.cause if isinstance(exc.cause, BaseException) else exc
        return f"the Ray task failed: {type(cause).__name__}: {_first_line(cause)}"
    except rex.RayError as exc:
        return f"Ray could not run it ({type(exc).__name__}: {_first_line(exc)})"
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
