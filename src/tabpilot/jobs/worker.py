"""The bodies of `tabpilot worker` (a local runner in the foreground) and `tabpilot run-job`."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING

from tabpilot.backends import parse_uri
from tabpilot.records import JobRecord
from tabpilot.settings import Settings

if TYPE_CHECKING:
    from tabpilot.jobs.local import LocalRunner
    from tabpilot.jobs.ray_runner import RayRunner

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

    The runner follows a `local://` runner URI: its `workers` and its `warm` flag (see
    `worker_runner`).

    Args:
        workers: jobs to run at once; default: the `workers` of a `local://` runner URI, else 1.
        stop: set it to stop (for embedding and tests); SIGTERM and Ctrl-C also stop.
    """
    from tabpilot.context import build_context

    runner = worker_runner(settings, workers=workers)
    ctx = build_context(settings, runner=runner)
    stop = stop or threading.Event()
    _on_sigterm(lambda: stop.set())
    runner.start(ctx)
    log.info(
        "worker running %d job(s) at a time from %s; Ctrl-C stops",
        runner.workers,
        _where(settings),
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        log.info("worker stopping; running jobs go back to the queue or fail")
        runner.stop()
        ctx.metadata.close()


def worker_runner(settings: Settings, *, workers: int | None = None) -> LocalRunner | RayRunner:
    """The runner `tabpilot worker` runs: a `LocalRunner` with the `workers` and `warm` of a
    `local://` runner URI (`workers`, when given, overrides the URI's), else the defaults;
    with a `ray://` runner URI, that `RayRunner` (`workers` overrides its `jobs`)."""
    from tabpilot.jobs.local import LocalRunner
    from tabpilot.jobs.registry import LocalOptions, build_runner, local_options

    if parse_uri(settings.runner_uri).scheme == "ray":
        runner = build_runner(settings.runner_uri)  # MissingDependency without the ray extra
        from tabpilot.jobs.ray_runner import RayRunner

        assert isinstance(runner, RayRunner)
        runner.jobs = workers or runner.jobs
        return runner
    is_local = parse_uri(settings.runner_uri).scheme == "local"
    options = local_options(settings.runner_uri) if is_local else LocalOptions()
    return LocalRunner(workers if workers is not None else options.workers, warm=options.warm)


def run_single_job(settings: Settings, job_id: str) -> JobRecord:
    """Claim and run the queued job `job_id` in this process; return it as it ended.

    SIGTERM (what AWS Batch sends before stopping a container) gives the job up at once
    (queued again or failed) instead of after its lease expires.
    """
    from tabpilot.context import build_context
    from tabpilot.jobs.batch import container_worker_id
    from tabpilot.jobs.inline import InlineRunner, run_job_here

    ctx = build_context(settings, runner=InlineRunner())

    def terminate() -> None:
        raise SystemExit(143)

    _on_sigterm(terminate)
    try:
        # In an AWS Batch container the worker id names the Batch job (batch_reconcile.py).
        return run_job_here(ctx, job_id, worker_id=container_worker_id())
    finally:
        ctx.metadata.close()


def _on_sigterm(action: object) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        action()  # type: ignore[operator]

    signal.signal(signal.SIGTERM, handler)


def _where(settings: Settings) -> str:
    return parse_uri(settings.metadata_uri).shown  # never log a password
