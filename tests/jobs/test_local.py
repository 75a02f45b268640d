"""`LocalRunner` with real child processes: FIFO, start latency, kills, cancel, restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tabpilot.context import AppContext, build_context
from tabpilot.jobs.lease import LEASE_SECONDS
from tabpilot.jobs.local import LocalRunner, child_environment
from tabpilot.records import JobStatus, utc_now
from tabpilot.settings import Settings, env_var_name
from tests.jobs.conftest import (
    OWNER,
    add_dataset,
    add_job,
    pid_alive,
    processes_with,
    wait_for,
)

StartRunner = Callable[..., tuple[AppContext, LocalRunner]]


@pytest.fixture
def start_runner(settings: Settings) -> Iterator[StartRunner]:
    """Start LocalRunners on the test's stores; all are stopped at the end."""
    started: list[tuple[AppContext, LocalRunner]] = []

    def start(**kwargs: Any) -> tuple[AppContext, LocalRunner]:
        runner = LocalRunner(**kwargs)
        context = build_context(settings, runner=runner)
        runner.start(context)
        started.append((context, runner))
        return context, runner

    yield start
    for context, runner in started:
        runner.stop()
        context.metadata.close()


def _job(ctx: AppContext, job_id: str) -> Any:
    return ctx.metadata.get_job(job_id, owner=OWNER)


def _training(ctx: AppContext, job_id: str, attempt: int = 1) -> bool:
    """The child has read the data and is training (its progress reached the store)."""
    job = _job(ctx, job_id)
    return (
        job.status == JobStatus.RUNNING
        and job.attempts == attempt
        and job.progress.get("phase") in ("reading", "profiling", "searching")
    )


@pytest.mark.slow
def test_jobs_run_in_child_processes_oldest_first_and_start_fast(
    ctx: AppContext, start_runner: StartRunner
) -> None:
    # A poll far longer than the test: only submit() can wake the worker in time.
    _, runner = start_runner(workers=1, poll_seconds=60)
    dataset = add_dataset(ctx)
    first, second = add_job(ctx, dataset), add_job(ctx, dataset, seed=1)
    time.sleep(3)  # the slot's spare child imports the ML libraries meanwhile

    submitted = utc_now()
    runner.submit(second.id)  # the runner still takes the oldest queued job first

    pid = wait_for(lambda: runner.running().get(first.id), timeout=5, what="the first job")
    assert pid != os.getpid()
    wait_for(
        lambda: all(_job(ctx, j.id).status.is_final for j in (first, second)),
        timeout=90,
        what="both jobs to finish",
    )
    a, b = _job(ctx, first.id), _job(ctx, second.id)
    assert (a.status, b.status) == (JobStatus.SUCCEEDED, JobStatus.SUCCEEDED), (a.error, b.error)
    assert (a.started_at - submitted).total_seconds() < 2.0
    # Training itself starts at once too: the warm spare has nothing left to import.
    events = ctx.metadata.list_job_events(first.id, owner=OWNER)
    reading = next(e for e in events if e.kind == "log" and e.data["phase"] == "reading")
    assert (reading.at - submitted).total_seconds() < 2.0
    assert b.started_at >= a.finished_at
    for job in (a, b):
        model = ctx.metadata.get_model(job.model_id, owner=OWNER)
        assert ctx.artifacts.exists(f"{model.artifact_prefix}/model.onnx")
    wait_for(lambda: runner.running() == {}, timeout=5, what="the children to exit")


@pytest.mark.slow
def test_killed_child_is_retried_once_then_failed(
    ctx: AppContext, start_runner: StartRunner
) -> None:
    _, runner = start_runner(workers=1)
    job = add_job(ctx, add_dataset(ctx), time_budget=60.0)
    runner.submit(job.id)

    killed: list[int] = []
    for attempt in (1, 2):
        pid = wait_for(
            lambda: (p := runner.running().get(job.id)) not in (None, *killed) and p,
            timeout=15,
            what=f"attempt {attempt} to start",
        )
        wait_for(lambda n=attempt: _training(ctx, job.id, n), timeout=30, what="training")
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    done = wait_for(
        lambda: (j := _job(ctx, job.id)).status.is_final and j, timeout=10, what="the failure"
    )
    assert done.status == JobStatus.FAILED and done.attempts == 2
    assert done.error.startswith("training process was killed (signal 9, SIGKILL")
    assert done.lease_owner is None and done.model_id is None
    reasons = [
        e.data["message"]
        for e in ctx.metadata.list_job_events(job.id, owner=OWNER)
        if e.kind == "status"
    ]
    assert any("queued again (attempt 2 of 2)" in r for r in reasons)
    assert not any(pid_alive(p) for p in killed)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["runner", "store"])
def test_cancel_kills_the_child_and_leaves_the_job_canceled(
    ctx: AppContext, start_runner: StartRunner, how: str
) -> None:
    _, runner = start_runner(workers=1)
    job = add_job(ctx, add_dataset(ctx), time_budget=60.0)
    runner.submit(job.id)
    pid = wait_for(lambda: runner.running().get(job.id), timeout=10, what="the child")
    wait_for(lambda: _training(ctx, job.id), timeout=30, what="training")

    # What the cancel service does: the store first, then the runner (if it is this one).
    ctx.metadata.transition_job(
        job.id, owner=OWNER, expect=JobStatus.RUNNING, to=JobStatus.CANCELED
    )
    if how == "runner":
        runner.cancel(job.id)
    wait_for(lambda: not pid_alive(pid), timeout=2 if how == "runner" else 6, what="the kill")

    wait_for(lambda: runner.running() == {}, timeout=5, what="the slot to free up")
    done = _job(ctx, job.id)
    assert done.status == JobStatus.CANCELED and done.model_id is None
    assert ctx.metadata.list_models(owner=OWNER).items == []


def test_a_job_running_far_past_its_budget_is_stopped_and_failed(
    ctx: AppContext, start_runner: StartRunner
) -> None:
    _, runner = start_runner(workers=1, overtime_grace=-9.5)  # 2 x 5 s - 9.5 s: half a second
    job = add_job(ctx, add_dataset(ctx))
    runner.submit(job.id)
    done = wait_for(
        lambda: (j := _job(ctx, job.id)).status.is_final and j, timeout=15, what="the stop"
    )
    assert done.status == JobStatus.FAILED and done.attempts == 1
    assert done.error.startswith("training was stopped after 0 s, far beyond its time budget")
    wait_for(lambda: runner.running() == {}, timeout=5, what="the slot to free up")


@pytest.mark.slow
def test_jobs_left_running_by_a_dead_process_are_reaped_at_start(
    ctx: AppContext, start_runner: StartRunner
) -> None:
    dataset = add_dataset(ctx)
    once, twice = add_job(ctx, dataset, target="nope"), add_job(ctx, dataset)
    gone = "local-gone-1-0-abc"
    # `twice` already lost a worker once: claimed, queued again, claimed again.
    ctx.metadata.claim_job(twice.id, worker_id=gone, lease_seconds=-30)
    ctx.metadata.transition_job(
        twice.id, owner=None, expect=JobStatus.RUNNING, to=JobStatus.QUEUED, held_by=gone
    )
    for job in (once, twice):
        ctx.metadata.claim_job(job.id, worker_id=gone, lease_seconds=-30)

    _, runner = start_runner(workers=1, poll_seconds=60)

    # start() settles both before any worker runs.
    failed = _job(ctx, twice.id)
    assert failed.status == JobStatus.FAILED and failed.lease_owner is None
    assert failed.error.startswith("worker lost: the process running this job stopped")
    assert "(no heartbeat for 40 s)" in failed.error or "(no heartbeat for 41 s)" in failed.error
    retried = _job(ctx, once.id)
    assert retried.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    assert retried.lease_owner in (None, *runner.worker_ids)
    events = ctx.metadata.list_job_events(once.id, owner=OWNER)
    assert [e.data["status"] for e in events[:2]] == ["running", "queued"]
    assert events[1].data["message"].startswith("worker lost")
    assert events[1].data["worker"] == "local-gone-1-0-abc"
    # The retried job then runs (and fails on its missing target) in a fresh child.
    done = wait_for(
        lambda: (j := _job(ctx, once.id)).status.is_final and j, timeout=30, what="the retry"
    )
    assert done.attempts == 2 and 'Target column "nope" not found' in done.error


@pytest.mark.slow
def test_a_restarted_runner_takes_over_the_jobs_of_the_stopped_one(
    ctx: AppContext, start_runner: StartRunner
) -> None:
    _, old = start_runner(workers=1)
    job = add_job(ctx, add_dataset(ctx), time_budget=60.0)
    old.submit(job.id)
    pid = wait_for(lambda: old.running().get(job.id), timeout=10, what="the child")
    wait_for(lambda: _training(ctx, job.id), timeout=30, what="training")

    old.stop()  # a server shutting down: its children die with it, the leases are released
    assert not pid_alive(pid)
    _, new = start_runner(workers=1)

    # No waiting for the lease to run out: the new runner retries the job at once.
    retried = _job(ctx, job.id)
    assert retried.attempts == 2 or retried.status == JobStatus.QUEUED
    assert retried.lease_owner in (None, *new.worker_ids)
    messages = [
        e.data.get("message", "") for e in ctx.metadata.list_job_events(job.id, owner=OWNER)
    ]
    assert any(
        m.startswith("the worker stopped while training; the job was queued again (attempt 2 of 2)")
        for m in messages
    )


@pytest.mark.slow
def test_killed_worker_process_is_reaped_by_another_runner(
    ctx: AppContext, settings: Settings, start_runner: StartRunner, tmp_path: Path
) -> None:
    env = child_environment(settings)
    env.pop(env_var_name("runner_uri"))
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tabpilot.cli", "worker", "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # Queued by "another process" (no submit): the worker's poll finds it.
        job = add_job(ctx, add_dataset(ctx), time_budget=60.0)
        wait_for(lambda: _training(ctx, job.id), timeout=30, what="the worker to train")
        lost_worker = _job(ctx, job.id).lease_owner
        its_children = f"--parent-pid {worker.pid}"  # only job processes have it
        assert lost_worker.startswith("local-") and processes_with(its_children)
        start_runner(workers=1)  # the survivor: a server's runner, say

        worker.kill()
        worker.wait(timeout=5)
        killed_at = utc_now()

        settled = wait_for(
            lambda: (j := _job(ctx, job.id)).lease_owner != lost_worker and j,
            timeout=LEASE_SECONDS + 5,
            what="the reaper",
        )
        assert (utc_now() - killed_at).total_seconds() < 15
        assert settled.status in (JobStatus.QUEUED, JobStatus.RUNNING)
        reasons = [
            e.data["message"]
            for e in ctx.metadata.list_job_events(job.id, owner=OWNER)
            if e.kind == "status"
        ]
        assert any(
            r.startswith("worker lost: the process running this job stopped") for r in reasons
        )
        # The orphaned child noticed its parent was gone and stopped itself.
        wait_for(lambda: not processes_with(its_children), timeout=5, what="the orphans to stop")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        log.close()


def test_child_environment_carries_the_resolved_stores(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TABPILOT_PORT", "not-a-port")
    monkeypatch.setenv("TABPILOT_DEBUG", "1")
    env = child_environment(settings)
    assert env["TABPILOT_METADATA_URI"] == settings.metadata_uri
    assert env["TABPILOT_ARTIFACT_URI"] == settings.artifact_uri
    assert env["TABPILOT_DATA_DIR"] == str(settings.data_dir)
    assert env["TABPILOT_RUNNER_URI"] == "inline://"
    assert "TABPILOT_PORT" not in env and env["TABPILOT_DEBUG"] == "1"
