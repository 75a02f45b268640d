"""`InlineRunner` (`inline://`): jobs run in the calling thread, for tests and simple use.

`run_job_here` is also the body of `tabpilot run-job JOB_ID`, the Batch container entry point:
claim the job, keep its lease fresh from a background thread, execute it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from tabpilot.errors import Conflict
from tabpilot.jobs.base import JobRunner
from tabpilot.jobs.execute import execute_job
from tabpilot.jobs.lease import LEASE_SECONDS, Heartbeat, make_worker_id, release_lease
from tabpilot.records import JobRecord

if TYPE_CHECKING:
    from tabpilot.context import AppContext

log = logging.getLogger("tabpilot.jobs")


def run_job_here(ctx: AppContext, job_id: str, *, worker_id: str | None = None) -> JobRecord:
    """Claim the QUEUED job `job_id`, execute it in this thread, and return it as it ended.

    If this process is interrupted (Ctrl-C, SIGTERM turned into `SystemExit`), the job is
    given up at once: queued again if it has an attempt left, else failed.

    Raises:
        NotFound: if there is no such job.
        Conflict: if the job is not QUEUED (already running, finished or canceled).
    """
    worker_id = worker_id or make_worker_id("inline")
    claimed = ctx.metadata.claim_job(job_id, worker_id=worker_id, lease_seconds=LEASE_SECONDS)
    try:
        with Heartbeat(ctx.metadata, job_id, worker_id=worker_id):
            execute_job(ctx, job_id, worker_id=worker_id)
    except BaseException as exc:
        if not isinstance(exc, Exception):
            release_lease(
                ctx.metadata, claimed, why=f"the worker was interrupted ({type(exc).__name__})"
            )
        raise
    return ctx.metadata.get_job(job_id, owner=None)


class InlineRunner(JobRunner):
    """Runs each submitted job to the end inside `submit`; nothing runs in the background."""

    def __init__(self) -> None:
        self._ctx: AppContext | None = None

    def start(self, ctx: AppContext) -> None:
        self._ctx = ctx

    def submit(self, job_id: str) -> None:
        if self._ctx is None:
            raise RuntimeError("InlineRunner.start(ctx) must be called before submit()")
        try:
            run_job_here(self._ctx, job_id)
        except Conflict as exc:  # another worker took it first, or it was canceled
            log.info("job %s not run inline: %s", job_id, exc.message)
