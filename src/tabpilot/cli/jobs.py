"""The job commands: `worker` runs queued jobs until Ctrl-C, `run-job` runs one and exits."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tabpilot.cli.common import data_dir_option, friendly_errors, settings_with
from tabpilot.cli.display import say


@click.command()
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    default=None,
    help="Jobs to run at once. Default: workers=N of TABPILOT_RUNNER_URI if local://, else 1.",
)
@data_dir_option
@friendly_errors
def worker(workers: int | None, data_dir: Path | None) -> None:
    """Run queued jobs in this process, against the configured stores, until Ctrl-C.

    Each job trains in its own child process; jobs whose worker died are retried once or
    failed. Any number of workers (and servers) may share the same stores.
    """
    from tabpilot.jobs.worker import configure_logging, run_worker

    settings = settings_with(data_dir=data_dir)
    configure_logging()
    run_worker(settings, workers=workers)


@click.command("run-job")
@click.argument("job_id")
@friendly_errors
def run_job(job_id: str) -> None:
    """Run the queued job JOB_ID here and exit: 0 if it succeeded, 1 if not.

    Needs nothing but the job id and the store settings (TABPILOT_METADATA_URI,
    TABPILOT_ARTIFACT_URI): the job's whole specification is read from the store, so a
    container that runs one job needs no other input.
    """
    from tabpilot.jobs.worker import configure_logging, run_single_job
    from tabpilot.records import JobStatus

    settings = settings_with()
    configure_logging()
    job = run_single_job(settings, job_id)
    if job.status == JobStatus.SUCCEEDED:
        say(f"Job {job.id} succeeded: model {job.model_id}")
        return
    reason = f": {job.error}" if job.error else ""
    say(f"Job {job.id} {job.status.value}{reason}", err=True)
    sys.exit(1)
