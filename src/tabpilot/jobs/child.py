"""The process a local worker starts for one job: `python -m tabpilot.jobs.child JOB_ID WORKER_ID`.

It is given only the job id, the id of the worker holding the lease, and (in the environment)
the store URIs; everything else is read from the store. The parent holds the lease and
heartbeats; this process trains and records the outcome. If the parent dies, this process
kills itself (and whatever it started), since nobody holds the job's lease any more.

With `--wait` instead of the ids, it is a warm spare: it imports the ML libraries (about two
seconds), then reads `JOB_ID WORKER_ID` from stdin, so a job handed to it starts training at
once and its time budget is not spent on imports. End of input without a line: exit 0.

Exit status: 0 when the outcome was recorded (success or failure alike), 3 when the job was
not ours to run, 1 when the stores could not be used.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
import time

EXIT_OK, EXIT_ERROR, EXIT_NOT_OURS = 0, 1, 3
PARENT_CHECK_SECONDS = 1.0


def _watch_parent(parent_pid: int) -> None:
    """Kill this process group as soon as the parent is gone (we are re-parented)."""
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent_pid:
            logging.getLogger("tabpilot.jobs").error(
                "the worker (pid %d) is gone; stopping this job's process", parent_pid
            )
            try:
                os.killpg(os.getpgrp(), signal.SIGKILL)
            finally:
                os._exit(EXIT_ERROR)


def _preload() -> None:
    """Import what training needs now, while no job is waiting for it."""
    import importlib

    for name in (
        "tabpilot.engine.training.run",
        "tabpilot.engine.reports",
        "flaml.automl",
        "lightgbm",
        "xgboost",
        "skl2onnx",
    ):
        with contextlib.suppress(Exception):  # the job itself will say what is missing
            importlib.import_module(name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tabpilot.jobs.child")
    parser.add_argument("job_id", nargs="?")
    parser.add_argument("worker_id", nargs="?")
    parser.add_argument("--wait", action="store_true", help="read JOB_ID WORKER_ID from stdin")
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    if args.wait == bool(args.job_id and args.worker_id):
        parser.error("give JOB_ID and WORKER_ID, or --wait")
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s (pid %(process)d): %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("flaml").setLevel(logging.WARNING)  # its INFO is search chatter
    if args.parent_pid is not None:
        if os.getppid() != args.parent_pid:
            return EXIT_ERROR
        threading.Thread(target=_watch_parent, args=(args.parent_pid,), daemon=True).start()

    from tabpilot.context import build_context
    from tabpilot.errors import Conflict, NotFound, TabpilotError
    from tabpilot.jobs.execute import execute_job
    from tabpilot.jobs.inline import InlineRunner
    from tabpilot.settings import load_settings

    log = logging.getLogger("tabpilot.jobs")
    job_id, worker_id = args.job_id, args.worker_id
    if args.wait:
        _preload()
        line = sys.stdin.readline().split()
        if not line:
            return EXIT_OK
        job_id, worker_id = line[0], line[1]
    try:
        ctx = build_context(load_settings(), runner=InlineRunner())
    except TabpilotError as exc:
        log.error("cannot open the stores: %s", exc.message)
        return EXIT_ERROR
    try:
        execute_job(ctx, job_id, worker_id=worker_id)
    except (Conflict, NotFound) as exc:
        log.info("not running the job: %s", exc.message)
        return EXIT_NOT_OURS
    except Exception:
        log.exception("the job's outcome could not be recorded")
        return EXIT_ERROR
    finally:
        ctx.metadata.close()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
