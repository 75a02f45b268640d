"""The Ray runner against a real Ray head on 127.0.0.1, driven through `tabpilot serve` and
`tabpilot worker`: a job trains in a Ray worker; a killed Ray worker process is retried once,
then the job fails with the reason; a cancel kills the task's process.

One head per module (`ray start --head --block`, 2 CPUs, a small object store, every port
chosen free, its own temporary directory, loopback only); it is stopped through its own
`ray start` process and process group, never with a global `ray stop`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tabpilot.context import build_context
from tabpilot.jobs.inline import InlineRunner
from tabpilot.records import JobStatus
from tabpilot.settings import load_settings
from tests.api.support import csv_bytes
from tests.conftest import make_mixed_frame
from tests.jobs.conftest import OWNER, add_dataset, add_job, pid_alive, processes_with, wait_for
from tests.servers import free_port, server_environment, tabpilot_command

pytestmark = pytest.mark.slow

RAY = Path(sys.executable).parent / "ray"
OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's floor is 75 MiB; memory is shared
# Ray's own client knobs, shortened so that a lost cluster is given up within seconds (the
# defaults: 30 s to reconnect, up to 30 s per connection attempt).
CLIENT_TIMEOUTS = {
    "RAY_CLIENT_RECONNECT_GRACE_PERIOD": "5",
    "RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "5",  # Ray's default: a busy head needs it
    "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "2",
}


@dataclass
class RayHead:
    address: str
    """`ray://127.0.0.1:PORT`, the client address."""
    process: subprocess.Popen[bytes]
    """`ray start --head --block`: it leads the process group of every Ray process it starts."""
    log: Path

    def raylet_pid(self) -> int:
        """The pid of this cluster's raylet (the head node's manager)."""
        for pid in processes_with("raylet/raylet"):
            with contextlib.suppress(OSError):
                if os.getpgid(pid) == self.process.pid:
                    return pid
        pytest.fail("this cluster's raylet is not running")

    def task_pids(self, job_id: str) -> list[int]:
        """Pids of this cluster's worker processes running the job's task now."""
        from tabpilot.jobs.ray_runner import TASK_PREFIX

        found = []
        for pid in processes_with(f"ray::{TASK_PREFIX}{job_id}"):
            # Workers lead process groups of their own; their parent, the raylet, is ours.
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                if os.getpgid(parent) == self.process.pid:
                    found.append(pid)
            except (OSError, ValueError, IndexError):
                pass
        return found


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"ray start exited early:\n{log.read_text()[-3000:]}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    pytest.fail(
        f"the Ray head did not open its client port within 90 s:\n{log.read_text()[-3000:]}"
    )


def _ray_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TABPILOT_", "RAY_"))}
    # Every Ray process binds to 127.0.0.1 instead of the machine's network address.
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


@pytest.fixture(scope="module")
def ray_head() -> Iterator[RayHead]:
    pytest.importorskip("ray", reason="the ray extra is not installed: pip install 'tabpilot[ray]'")
    if not RAY.is_file():
        pytest.skip("the ray extra is not installed (no ray command next to this Python)")
    # Short: Ray's socket paths live under it and must stay within 107 characters.
    temp_dir = Path(tempfile.mkdtemp(prefix="tpray-", dir="/tmp"))
    client_port = free_port()
    ports = {
        "--port": free_port(),
        "--ray-client-server-port": client_port,
        "--dashboard-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--min-worker-port": 0,  # 0 and 0: workers take free ports, not a range others use
        "--max-worker-port": 0,
    }
    command = [str(RAY), "start", "--head", "--block", "--num-cpus", "2"]
    command += ["--node-ip-address", "127.0.0.1", "--include-dashboard", "false"]
    command += ["--include-log-monitor", "false"]  # job logs are not forwarded: less memory
    command += ["--object-store-memory", str(OBJECT_STORE_BYTES), "--disable-usage-stats"]
    command += ["--temp-dir", str(temp_dir)]
    for flag, value in ports.items():
        command += [flag, str(value)]
    log = temp_dir.with_suffix(".log")
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=_ray_environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = time.monotonic()
    try:
        _wait_for_port(client_port, process, log)
        print(f"Ray head up in {time.monotonic() - started:.1f} s")
        yield RayHead(f"ray://127.0.0.1:{client_port}", process, log)
    finally:
        _stop_head(process)
        shutil.rmtree(temp_dir, ignore_errors=True)
        log.unlink(missing_ok=True)


def _stop_head(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to `ray start --block` stops what it started; then its group, to be sure."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # this cluster's process group only


@dataclass
class Service:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _start(args: list[str], tmp_path: Path, env: dict[str, str], name: str) -> Service:
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*tabpilot_command(), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,
        )
    return Service("", Path(env["TABPILOT_DATA_DIR"]), process, log)


def _stop(service: Service) -> None:
    service.process.send_signal(signal.SIGINT)
    try:
        service.process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait()


@pytest.fixture(scope="module")
def serve(ray_head: RayHead, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """`tabpilot serve` whose runner is the Ray head (one for the module: connecting costs
    seconds), with stores of its own."""
    tmp_path = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = server_environment(tmp_path / "data", runner_uri=f"{ray_head.address}?cpus=1")
    env.update(CLIENT_TIMEOUTS)
    service = _start(["serve", "--port", str(port)], tmp_path, env, "serve")
    service.url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if service.process.poll() is not None:
                pytest.fail(f"tabpilot serve exited early:\n{service.output()[-4000:]}")
            try:
                if httpx.get(f"{service.url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"tabpilot serve did not answer in 90 s:\n{service.output()[-4000:]}")
            time.sleep(0.2)
        yield service
    finally:
        _stop(service)


def _upload_and_train(client: httpx.Client, budget: int) -> tuple[str, Any]:
    frame = make_mixed_frame(300, seed=5)
    response = client.post(
        "/api/datasets", files={"file": ("customers.csv", csv_bytes(frame), "text/csv")}
    )
    assert response.status_code == 201, response.text
    response = client.post(
        "/api/jobs",
        json={"dataset_id": response.json()["id"], "target": "label", "time_budget": budget},
    )
    assert response.status_code == 202, response.text
    return response.json()["id"], frame


def _job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _finished(client: httpx.Client, job_id: str) -> dict[str, Any] | None:
    job = _job(client, job_id)
    return job if job["status"] in ("succeeded", "failed", "canceled") else None


def test_serve_trains_a_job_in_a_ray_worker(serve: Service, ray_head: RayHead) -> None:
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        job_id, frame = _upload_and_train(client, budget=5)
        pids = wait_for(
            lambda: ray_head.task_pids(job_id), timeout=90, what="the job's Ray task to run"
        )
        assert serve.process.pid not in pids  # trained in a Ray worker, not in the server
        job = wait_for(lambda: _finished(client, job_id), timeout=120, what="the job to end")
        assert job["status"] == "succeeded", (job, serve.output()[-4000:])
        assert job["model_id"] and job["error"] is None
        rows = frame.drop(columns=["label"]).head(3).astype(object)
        rows = rows.where(rows.notna(), None).to_dict(orient="records")
        response = client.post(f"/api/models/{job['model_id']}/predict", json={"rows": rows})
        assert response.status_code == 200, response.text
        assert set(response.json()["predictions"]) <= {"yes", "no"}
    assert "Ray runner started: 2 job(s) at a time, 1 CPU(s) each" in serve.output()


def _training_attempt(client: httpx.Client, ray_head: RayHead, job_id: str, attempt: int) -> int:
    """The pid of the Ray worker process running `attempt` of the job, once it trains."""

    def training() -> int | None:
        job = _job(client, job_id)
        pids = ray_head.task_pids(job_id)
        searching = job["progress"] and job["progress"].get("phase") == "searching"
        if job["status"] == "running" and job["attempts"] == attempt and searching and pids:
            return pids[0]
        return None

    pid = wait_for(training, timeout=90, what=f"attempt {attempt} to train")
    return int(pid)


def test_a_killed_ray_worker_is_retried_once_then_the_job_fails_with_the_reason(
    serve: Service, ray_head: RayHead
) -> None:
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        job_id, _ = _upload_and_train(client, budget=60)
        first = _training_attempt(client, ray_head, job_id, attempt=1)
        killed_at = time.monotonic()
        os.kill(first, signal.SIGKILL)
        second = _training_attempt(client, ray_head, job_id, attempt=2)
        retried_after = time.monotonic() - killed_at
        assert second != first
        os.kill(second, signal.SIGKILL)
        killed_at = time.monotonic()
        job = wait_for(lambda: _finished(client, job_id), timeout=30, what="the job to fail")
        failed_after = time.monotonic() - killed_at
        events = client.get(f"/api/jobs/{job_id}/events").json()
    print(f"retried {retried_after:.1f} s after the kill; failed {failed_after:.1f} s after")
    reason = "the Ray worker process running it died"
    assert job["status"] == "failed" and job["model_id"] is None
    assert job["attempts"] == 2
    assert reason in job["error"] and "someone killed it" in job["error"]
    messages = [e["data"].get("message", "") for e in events if e["kind"] == "status"]
    assert any(reason in m and "queued again (attempt 2 of 2)" in m for m in messages), messages
    assert failed_after < 15  # seen through Ray at once, not after a lease expires


def test_tabpilot_worker_runs_jobs_on_ray_and_a_cancel_in_the_store_stops_the_task(
    ray_head: RayHead, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    settings = load_settings(data_dir=data_dir, runner_uri="inline://")
    ctx = build_context(settings, runner=InlineRunner())
    env = server_environment(data_dir, runner_uri=f"{ray_head.address}?cpus=1&jobs=1")
    worker = _start(["worker"], tmp_path, env, "worker")
    try:
        dataset = add_dataset(ctx)
        job = add_job(ctx, dataset, time_budget=60.0)

        def training() -> int | None:
            current = ctx.metadata.get_job(job.id, owner=OWNER)
            pids = ray_head.task_pids(job.id)
            phase = current.progress.get("phase")
            return pids[0] if current.status == JobStatus.RUNNING and phase and pids else None

        wait_for(training, timeout=90, what="the worker to run the job on Ray")
        assert ctx.metadata.get_job(job.id, owner=OWNER).lease_owner.startswith("ray-")
        # Canceled in the store, as the API of another process does. Whichever notices first
        # stops the task: the worker's heartbeat finds the lease gone and kills the task's
        # process, or the task's next progress write finds the job no longer its own.
        canceled = ctx.metadata.transition_job(
            job.id, owner=None, expect=JobStatus.RUNNING, to=JobStatus.CANCELED, message="test"
        )
        assert canceled is not None
        wait_for(lambda: not ray_head.task_pids(job.id), timeout=20, what="the job's task to stop")
        final = ctx.metadata.get_job(job.id, owner=OWNER)
        assert final.status == JobStatus.CANCELED and final.model_id is None
        assert list(ctx.metadata.list_models(owner=None, job_id=job.id).items) == []
    finally:
        _stop(worker)
        ctx.metadata.close()
    assert "Ray runner started: 1 job(s) at a time" in worker.output()


def test_the_runners_cancel_kills_the_task_process(ray_head: RayHead, tmp_path: Path) -> None:
    """`RayRunner.cancel` with the job still running in the store: only killing the task's
    process can stop it (the task itself sees nothing), and the runner records the cancel."""
    from tabpilot.jobs.ray_runner import RayRunner

    settings = load_settings(data_dir=tmp_path / "data", runner_uri="inline://")
    runner = RayRunner(ray_head.address, cpus=1, jobs=1)
    ctx = build_context(settings, runner=runner)
    runner.start(ctx)
    try:
        job = add_job(ctx, add_dataset(ctx), time_budget=60.0)
        runner.submit(job.id)

        def training() -> int | None:
            current = ctx.metadata.get_job(job.id, owner=OWNER)
            pids = ray_head.task_pids(job.id)
            phase = current.progress.get("phase")
            return pids[0] if current.status == JobStatus.RUNNING and phase and pids else None

        pid = wait_for(training, timeout=90, what="the job to train on Ray")
        assert set(runner.running()) == {job.id}
        runner.cancel(job.id)
        wait_for(lambda: not pid_alive(pid), timeout=20, what="the task's process to be killed")
        final = wait_for(
            lambda: (j := ctx.metadata.get_job(job.id, owner=OWNER)).finished_at and j,
            timeout=20,
            what="the cancel to be recorded",
        )
        assert final.status == JobStatus.CANCELED and final.model_id is None
        assert final.attempts == 1 and runner.running() == {}
    finally:
        runner.stop()
        ctx.metadata.close()


# Last in this module: it ends the module's Ray head.
def test_a_lost_cluster_gives_the_running_job_up_and_it_waits_in_the_queue(
    serve: Service, ray_head: RayHead
) -> None:
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        job_id, _ = _upload_and_train(client, budget=60)
        task = _training_attempt(client, ray_head, job_id, attempt=1)
        os.kill(ray_head.raylet_pid(), signal.SIGKILL)  # the only node: the cluster is gone
        lost_at = time.monotonic()

        def queued_again() -> dict[str, Any] | None:
            job = _job(client, job_id)
            return job if job["status"] != "running" else None

        job = wait_for(queued_again, timeout=60, what="the job to be given up")
        given_up_after = time.monotonic() - lost_at
        events = client.get(f"/api/jobs/{job_id}/events").json()
        wait_for(lambda: not pid_alive(task), timeout=30, what="the task's process to end")
        time.sleep(3)  # the runner keeps trying to connect; the job stays queued meanwhile
        still = _job(client, job_id)
    print(f"given up {given_up_after:.1f} s after the cluster was lost")
    assert job["status"] == "queued" and job["attempts"] == 1 and job["model_id"] is None
    assert (still["status"], still["attempts"]) == ("queued", 1)
    messages = [e["data"].get("message", "") for e in events if e["kind"] == "status"]
    assert any(
        "the connection to the Ray cluster was lost" in m and "queued again (attempt 2 of 2)" in m
        for m in messages
    ), messages
