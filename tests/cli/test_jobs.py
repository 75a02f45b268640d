"""`tabpilot run-job` and `tabpilot worker` as real processes: exit codes and messages."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tabpilot.context import AppContext
from tabpilot.jobs.local import child_environment
from tabpilot.records import JobStatus
from tabpilot.settings import Settings
from tests.jobs.conftest import OWNER, add_dataset, add_job


def _tabpilot(settings: Settings, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = child_environment(settings) | env
    return subprocess.run(
        [sys.executable, "-m", "tabpilot.cli", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_run_job_succeeds_from_the_job_id_alone(ctx: AppContext, settings: Settings) -> None:
    job = add_job(ctx, add_dataset(ctx))

    result = _tabpilot(settings, "run-job", job.id)

    assert result.returncode == 0, result.stderr
    done = ctx.metadata.get_job(job.id, owner=OWNER)
    assert done.status == JobStatus.SUCCEEDED
    assert f"Job {job.id} succeeded: model {done.model_id}" in result.stdout

    again = _tabpilot(settings, "run-job", job.id)
    assert again.returncode == 2
    assert f'Job "{job.id}" is succeeded; only queued jobs can be started' in again.stderr


def test_run_job_failure_exits_1_with_the_error(ctx: AppContext, settings: Settings) -> None:
    job = add_job(ctx, add_dataset(ctx), target="price")

    result = _tabpilot(settings, "run-job", job.id)

    assert result.returncode == 1
    assert f'Job {job.id} failed: Target column "price" not found' in result.stderr
    assert "Traceback" not in result.stderr
    assert ctx.metadata.get_job(job.id, owner=OWNER).status == JobStatus.FAILED


def test_run_job_of_an_unknown_job_says_so(ctx: AppContext, settings: Settings) -> None:
    result = _tabpilot(settings, "run-job", "job_missing")
    assert result.returncode == 2
    assert 'Job "job_missing" not found' in result.stderr


@pytest.mark.parametrize("command", [["run-job", "job_x"], ["worker"]])
def test_commands_refuse_invalid_settings_naming_each(
    settings: Settings, command: list[str]
) -> None:
    result = _tabpilot(
        settings,
        *command,
        TABPILOT_METADATA_URI="mysql://db/x",
        TABPILOT_RUNNER_URI="local://?workers=none",
    )
    assert result.returncode == 2
    assert "TABPILOT_METADATA_URI: unsupported scheme" in result.stderr
    assert "TABPILOT_RUNNER_URI: workers must be a whole number" in result.stderr
    assert "Traceback" not in result.stderr
