"""The process a local worker starts for one job: `python -m tabpilot.jobs.child JOB_ID WORKER_ID`.

It is given only the job id, the id of the worker holding the lease, and (in the environment)
the store URIs; everything else is read from the store. The parent holds the lease and
heartbeats; this process trains and records the outcome. If the parent dies, this process
kills itself (and whatever it started), since nobody holds the job's lease any more.

Exit status: 0 when the outcome was recorded (success or failure alike), 3 when the job was
not ours to run, 1 when the stores could not be used.
"""

from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tabpilot.jobs.child")
    parser.add_argument("job_id")
    parser.add_argument("worker_id")
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
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
    try:
        ctx = build_context(load_settings(), runner=InlineRunner())
    except TabpilotError as exc:
        log.error("cannot open the stores: %s", exc.message)
        return EXIT_ERROR
    try:
        execute_job(args.job_id, ctx, worker_id=args.worker_id)
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
