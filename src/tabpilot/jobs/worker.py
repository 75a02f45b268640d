"""The bodies of `tabpilot worker` (a local runner in the foreground) and `tabpilot run-job`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

from tabpilot.records import JobRecord
from tabpilot.settings import Settings

log = logging.getLogger("tabpilot.jobs")


def configure_logging() -> None:
    """Job progress and failures (with tracebacks) go to stderr: the worker's log."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("flaml").setLevel(logging.WARNING)


def run_worker(
    settings: Settings, *, workers: int | None = None, stop: threading.Event | None = None
) -> None:
    """Run a `LocalRunner` against the stores of `settings` until `stop`, Ctrl-C or SIGTERM.

    Args:
        workers: jobs to run at once; default: the `workers` of a `local://` runner URI, else 1.
        stop: set it to stop (for embedding and tests); SIGTERM and Ctrl-C also stop.
    """
    from tabpilot.context import build_context
    from tabpilot.jobs.local import LocalRunner
    from tabpilot.jobs.registry import local_workers

    if workers is None:
        is_local = settings.runner_uri.lower().startswith("local://")
        workers = local_workers(settings.runner_uri) if is_local else 1
    runner = LocalRunner(workers)
    ctx = build_context(settings, runner=runner)
    stop = stop or threading.Event()
    _on_sigterm(lambda: stop.set())
    runner.start(ctx)
    log.info("worker running %d job(s) at a time from %s; Ctrl-C stops", workers, _where(settings))
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        log.info("worker stopping; running jobs go back to the queue or fail")
        runner.stop()
        ctx.metadata.close()


def run_single_job(settings: Settings, job_id: str) -> JobRecord:
    """Claim and run the queued job `job_id` in this process; return it as it ended.

    SIGTERM (what AWS Batch sends before stopping a container) releases the job's lease so a
    reaper retries or fails it at once instead of after the lease expires.
    """
    from tabpilot.context import build_context
    from tabpilot.jobs.inline import InlineRunner, run_job_here

    ctx = build_context(settings, runner=InlineRunner())

    def terminate() -> None:
        raise SystemExit(143)

    _on_sigterm(terminate)
    try:
        return run_job_here(ctx, job_id)
    finally:
        ctx.metadata.close()


def _on_sigterm(action: object) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        action()  # type: ignore[operator]

    signal.signal(signal.SIGTERM, handler)


def _where(settings: Settings) -> str:
    uri = settings.metadata_uri
    if "@" in uri:  # never log a password
        scheme, rest = uri.split("://", 1)
        uri = f"{scheme}://…@{rest.rsplit('@', 1)[1]}"
    return uri
