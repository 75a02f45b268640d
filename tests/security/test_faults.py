"""Faults (issue 11's standing suite): `kill -9` of the server and of a separate worker in the
middle of a job, a disk that fills while a job writes its model, and 20 uploads at once, each
against real `tabpilot serve` / `tabpilot worker` processes on loopback.

What must hold after each: no job stuck in queued or running (it is queued again and finishes,
or fails with a reason), no lost or corrupted file (uploaded bytes compared with what is
stored), no orphaned model (a model record whose job did not succeed or whose files are
missing, or model files without a record), and nothing left in the staging directory.

Each test starts its own processes; tables are tiny and budgets 5 s, but they wait for
training jobs (and for a lost worker's lease, 10 s), so all are marked slow.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tabpilot.records import JobStatus
from tests.security.conftest import (
    child_pids,
    start_server,
    stop_server,
    wait_for_job,
)
from tests.servers import server_environment, tabpilot_command

pytestmark = pytest.mark.slow

MIB = 1024 * 1024
BUDGET_S = 5
"""The smallest time budget a job may have."""
EXPORTING = ("exporting", "done")
"""The last phases of a job: a kill in the middle of one must come before them."""


# -- helpers ---------------------------------------------------------------------------------


def table_csv(rows: int, *, seed: int) -> bytes:
    """A small binary-classification table (numbers, a category, a label) as CSV bytes."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows).round(4)
    frame = pd.DataFrame(
        {
            "x": x,
            "n": rng.integers(0, 100, rows),
            "c": rng.choice(["red", "green", "blue"], rows),
            "label": np.where(x + rng.normal(scale=0.5, size=rows) > 0, "yes", "no"),
        }
    )
    return frame.to_csv(index=False).encode()


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        try:
            children = child_pids(todo.pop())
        except OSError:  # exited meanwhile
            continue
        found.extend(children)
        todo.extend(children)
    return found


def kill_tree(pid: int) -> list[int]:
    """SIGKILL `pid` and everything below it, as a crash or the OOM killer would; returns the
    pids killed. The tree is listed first, so no child escapes by being re-parented."""
    victims = [pid, *descendants(pid)]
    for victim in victims:
        with suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
    return victims


def alive(pids: list[int]) -> list[int]:
    """Those of `pids` still running (zombies count as gone)."""
    running = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.append(pid)
    return running


def wait_gone(pids: list[int], timeout: float = 20) -> None:
    """Wait until none of `pids` runs any more."""
    deadline = time.monotonic() + timeout
    while left := alive(pids):
        if time.monotonic() > deadline:
            pytest.fail(f"processes {left} still run {timeout} s after SIGKILL")
        time.sleep(0.1)


def upload(client: httpx.Client, name: str, data: bytes) -> dict[str, Any]:
    answer = client.post("/api/datasets", files={"file": (name, data, "text/csv")})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def create_job(client: httpx.Client, dataset_id: str) -> str:
    created = client.post(
        "/api/jobs",
        json={
            "dataset_id": dataset_id,
            "target": "label",
            "time_budget": BUDGET_S,
            "estimators": ["lgbm", "rf"],
        },
    )
    assert created.status_code == 202, created.text
    return str(created.json()["id"])


def wait_mid_job(client: httpx.Client, job_id: str, timeout: float = 120) -> dict[str, Any]:
    """Wait until the job's process has reported a phase of its run (preparing, reading,
    training...) and has not yet begun to export the model: the middle of the job."""
    deadline = time.monotonic() + timeout
    while True:
        job = dict(client.get(f"/api/jobs/{job_id}").json())
        phase = job["progress"].get("phase")
        if job["status"] == "running" and phase is not None:
            assert phase not in EXPORTING, f"missed the middle of the job: {job['progress']}"
            return job
        assert job["status"] in ("queued", "running"), (job["status"], job["error"])
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} did not start within {timeout} s: {job}")
        time.sleep(0.05)


@contextmanager
def stores(data_dir: Path) -> Iterator[tuple[Any, Any]]:
    """The server's metadata and artifact stores, opened in this process (read and checked
    directly, beside what the API says)."""
    from tabpilot.metadata import build_metadata_store
    from tabpilot.settings import load_settings
    from tabpilot.storage import build_artifact_store

    settings = load_settings(data_dir=data_dir, runner_uri="inline://")
    metadata = build_metadata_store(settings.metadata_uri)
    try:
        yield metadata, build_artifact_store(settings.artifact_uri)
    finally:
        metadata.close()


def assert_consistent(data_dir: Path, uploaded: dict[str, bytes]) -> None:
    """No job stuck, no lost or corrupted dataset file, no orphaned model, nothing staged.

    `uploaded`: dataset id -> the bytes sent; each must be stored byte for byte.
    """
    from tabpilot.storage import keys

    with stores(data_dir) as (metadata, artifacts):
        jobs = metadata.list_jobs(owner=None, limit=1000).items
        stuck = [
            (j.id, j.status) for j in jobs if j.status in (JobStatus.QUEUED, JobStatus.RUNNING)
        ]
        assert not stuck, f"jobs stuck: {stuck}"
        for job in jobs:
            if job.status is JobStatus.FAILED:
                assert job.error and len(job.error) > 10, f"job {job.id} failed without a reason"
        datasets = {d.id: d for d in metadata.list_datasets(owner=None, limit=1000).items}
        assert set(datasets) == set(uploaded), "datasets lost, or recorded though refused"
        for dataset_id, sent in uploaded.items():
            stored = artifacts.get_bytes(keys.dataset_data(dataset_id))
            assert stored == sent, f"dataset {dataset_id}: stored bytes differ from the upload"
            assert datasets[dataset_id].sha256 == hashlib.sha256(sent).hexdigest()
        stored_datasets = {k.split("/")[1] for k in artifacts.list_keys(f"{keys.DATASETS}/")}
        assert stored_datasets <= set(datasets), "dataset files without a record"

        models = metadata.list_models(owner=None, limit=1000).items
        by_job = {j.id: j for j in jobs}
        for model in models:
            job = by_job[model.job_id]
            assert job.status is JobStatus.SUCCEEDED, f"model {model.id} on a {job.status} job"
            assert job.model_id == model.id
            onnx = artifacts.get_bytes(keys.model_file(model.id, "model.onnx"))
            expected = model.card["files"]["model.onnx"]["sha256"]
            assert hashlib.sha256(onnx).hexdigest() == expected, f"model {model.id} corrupted"
            assert artifacts.exists(keys.model_file(model.id, "model.json"))
        for job in jobs:
            if job.status is JobStatus.SUCCEEDED:
                assert job.model_id in {m.id for m in models}, f"job {job.id} lost its model"
        model_dirs = {k.split("/")[1] for k in artifacts.list_keys("models/")}
        assert model_dirs <= {m.id for m in models}, "model files without a model record"
    staged = sorted(p.name for p in (data_dir / "uploads").glob("*"))
    assert staged == [], f"staged uploads left: {staged}"


def predict_one(client: httpx.Client, model_id: str) -> None:
    answer = client.post(
        f"/api/models/{model_id}/predict", json={"rows": [{"x": 0.3, "n": 5, "c": "red"}]}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"][0] in ("yes", "no")


# -- kill -9 of the server ---------------------------------------------------------------------


def test_server_killed_mid_job_restarts_and_finishes_it(tmp_path: Path) -> None:
    """`kill -9` of `tabpilot serve` and its job's process in the middle of the job; after a
    restart on the same data the job is queued again and succeeds, and nothing is lost."""
    data = table_csv(150, seed=1)
    server = start_server(tmp_path)
    try:
        with server.client() as client:
            dataset = upload(client, "table.csv", data)
            job_id = create_job(client, dataset["id"])
            wait_mid_job(client, job_id)
        killed = kill_tree(server.pid)
        assert len(killed) >= 2, "the job's process was not found below the server"
        wait_gone(killed)
        server.process.wait()
    finally:
        stop_server(server)

    restarted = start_server(tmp_path)
    try:
        with restarted.client() as client:
            job = wait_for_job(client, job_id, timeout=180)
            assert job["status"] == "succeeded", job
            assert job["attempts"] == 2, job
            events = client.get(f"/api/jobs/{job_id}/events").json()
            messages = [e["data"].get("message") or "" for e in events if e["kind"] == "status"]
            assert any("queued again" in m for m in messages), messages
            predict_one(client, job["model_id"])
    finally:
        stop_server(restarted)
    assert_consistent(restarted.data_dir, {dataset["id"]: data})


# -- kill -9 of a separate worker ----------------------------------------------------------------


def start_worker(root: Path, data_dir: Path) -> subprocess.Popen[bytes]:
    """`tabpilot worker` (one slot, no warm spare) on the server's stores."""
    env = server_environment(data_dir, auth="local")
    log = (root / "worker.log").open("wb")
    return subprocess.Popen(
        [*tabpilot_command(), "worker", "--workers", "1"],
        env=env,
        cwd=root,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def queue_job_offline(data_dir: Path, dataset_id: str) -> str:
    """Queue a job through the job service with a runner that is never started, so that no
    process is told of it: whichever worker polls first claims it."""
    from tabpilot.context import build_context
    from tabpilot.services import jobs as job_service
    from tabpilot.services.auth import local_owner
    from tabpilot.settings import load_settings

    settings = load_settings(data_dir=data_dir, runner_uri="local://?workers=1&warm=0")
    ctx = build_context(settings)
    try:
        request = job_service.JobRequest(
            dataset_id=dataset_id, target="label", time_budget=BUDGET_S, estimators=("lgbm", "rf")
        )
        return str(job_service.create_job(ctx, owner=local_owner(), request=request).id)
    finally:
        ctx.metadata.close()


def wait_claimed(data_dir: Path, job_id: str, timeout: float = 120) -> None:
    """Wait until a worker has claimed the job (read from the store: no server runs)."""
    deadline = time.monotonic() + timeout
    with stores(data_dir) as (metadata, _):
        while metadata.get_job(job_id, owner=None).status is JobStatus.QUEUED:
            if time.monotonic() > deadline:
                pytest.fail(f"no worker claimed job {job_id} within {timeout} s")
            time.sleep(0.1)


def test_worker_killed_mid_job_is_settled_by_the_server(tmp_path: Path) -> None:
    """`tabpilot serve` and a separate `tabpilot worker` on the same stores (the documented
    layout). The worker claims a job; `kill -9` of the worker and its job's process while it
    runs; the server's reaper queues the job again once the lease expires and its own
    runner finishes it."""
    data = table_csv(150, seed=2)
    server = start_server(tmp_path)
    try:
        with server.client() as client:
            dataset = upload(client, "table.csv", data)
    finally:
        stop_server(server)  # so that the worker, not the server, claims the job
    job_id = queue_job_offline(server.data_dir, dataset["id"])
    worker = start_worker(tmp_path, server.data_dir)
    try:
        wait_claimed(server.data_dir, job_id)  # by the worker: the server is not up yet
        restarted = start_server(tmp_path)
        try:
            with restarted.client() as client:
                job = wait_mid_job(client, job_id)
                with stores(restarted.data_dir) as (metadata, _):
                    holder = metadata.get_job(job_id, owner=None).lease_owner or ""
                assert f"-{worker.pid}-" in holder, f"held by {holder}, not the worker"
                assert job["attempts"] == 1
                killed = kill_tree(worker.pid)
                assert len(killed) >= 2, "the job's process was not found below the worker"
                wait_gone(killed)
                worker.wait()
                job = wait_for_job(client, job_id, timeout=180)
                assert job["status"] == "succeeded", job
                assert job["attempts"] == 2, job
                events = client.get(f"/api/jobs/{job_id}/events").json()
                messages = [e["data"].get("message") or "" for e in events]
                assert any("worker lost" in m for m in messages), messages
                predict_one(client, job["model_id"])
        finally:
            stop_server(restarted)
    finally:
        if worker.poll() is None:
            kill_tree(worker.pid)
            worker.wait()
    assert_consistent(restarted.data_dir, {dataset["id"]: data})


# -- a disk that fills during a job ----------------------------------------------------------------
# A full disk at upload time (507, /ready 503, nothing half-written) is test_memory_disk.py's.


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """`tmp_path/data` as a 32 MiB tmpfs (needs root: skipped otherwise)."""
    disk = tmp_path / "data"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


FULL_FOR_S = 90
"""The longest the disk stays full, waiting for the job's process to end."""


def fill_disk(disk: Path, *, leave_bytes: int) -> Path:
    """A filler file that leaves about `leave_bytes` free on `disk`."""
    filler = disk / "filler.bin"
    size = shutil.disk_usage(disk).free - leave_bytes
    block = b"\0" * 64 * 1024
    with filler.open("wb", buffering=0) as out:
        while size > 0:
            try:
                size -= out.write(block[: min(size, len(block))])
            except OSError:  # ENOSPC: as full as it gets
                break
    return filler


def test_disk_full_while_a_job_runs_leaves_no_stuck_job_or_orphan(
    tiny_disk: Path, tmp_path: Path
) -> None:
    """The data disk fills while a job runs (its model cannot be stored, and the store's
    own writes fail): the job must not stay running once space returns, and no model record or
    model file may be left half-made. A second job afterwards succeeds."""
    data = table_csv(150, seed=3)
    server = start_server(tmp_path, min_free_mb="1")
    try:
        with server.client() as client:
            dataset = upload(client, "table.csv", data)
            job_id = create_job(client, dataset["id"])
            wait_mid_job(client, job_id)
            job_processes = descendants(server.pid)
            assert job_processes, "the job's process was not found below the server"
            filler = fill_disk(tiny_disk, leave_bytes=0)
            try:
                # Full until the job's process has ended (it must write its model, and
                # can't), or at most FULL_FOR_S.
                deadline = time.monotonic() + FULL_FOR_S
                while time.monotonic() < deadline and alive(job_processes):
                    time.sleep(0.2)
                ended_while_full = not alive(job_processes)
            finally:
                filler.unlink()
            job = wait_for_job(client, job_id, timeout=120)
            if job["status"] == "failed":
                assert job["error"] and len(job["error"]) > 10, job
            else:
                assert job["status"] == "succeeded", job
            if ended_while_full and job["status"] == "succeeded":
                # Its first process could store nothing: only a second attempt can succeed.
                assert job["attempts"] == 2, job
            events = client.get(f"/api/jobs/{job_id}/events").json()
            said = [e["data"].get("message") for e in events if e["kind"] == "status"]
            print(f"disk full during a job: {job['status']}, attempts {job['attempts']}: {said}")
            second = wait_for_job(client, create_job(client, dataset["id"]), timeout=180)
            assert second["status"] == "succeeded", second
            predict_one(client, second["model_id"])
    finally:
        stop_server(server)
    assert_consistent(server.data_dir, {dataset["id"]: data})


# -- 20 uploads at once ----------------------------------------------------------------------------

UPLOADS = 20
QUOTA_MB = 1


def test_twenty_concurrent_uploads_are_stored_whole_or_refused_clearly(tmp_path: Path) -> None:
    """20 different CSVs (about 94 KB each, 1.9 MB in all) sent at the same moment to a server
    allowing 1 MiB of datasets per user: each is either stored byte for byte with the right
    row count or refused with 429 naming the quota, the quota holds (uploads in progress
    count), none is lost, stored twice or left staged, and no dataset file is left without a
    record."""
    bodies = [table_csv(5000, seed=100 + i) for i in range(UPLOADS)]
    server = start_server(tmp_path, max_user_storage_mb=str(QUOTA_MB))
    answers: list[httpx.Response | BaseException | None] = [None] * UPLOADS
    barrier = threading.Barrier(UPLOADS)

    def send(i: int) -> None:
        try:
            with server.client(timeout=120) as client:
                barrier.wait(timeout=30)
                answers[i] = client.post(
                    "/api/datasets",
                    files={"file": (f"part-{i:02d}.csv", io.BytesIO(bodies[i]), "text/csv")},
                )
        except BaseException as exc:  # reported below, with the others
            answers[i] = exc

    try:
        threads = [threading.Thread(target=send, args=(i,)) for i in range(UPLOADS)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=180)
        took = time.monotonic() - started
        failures = [a for a in answers if not isinstance(a, httpx.Response)]
        assert not failures, failures
        accepted: dict[str, bytes] = {}
        refused = 0
        for i, answer in enumerate(answers):
            assert isinstance(answer, httpx.Response)
            if answer.status_code == 201:
                record = answer.json()
                assert record["filename"] == f"part-{i:02d}.csv"
                assert record["n_rows"] == 5000
                assert record["n_bytes"] == len(bodies[i])
                assert record["sha256"] == hashlib.sha256(bodies[i]).hexdigest()
                accepted[record["id"]] = bodies[i]
            else:
                assert answer.status_code == 429, answer.text
                error = answer.json()["error"]
                assert error["code"] == "quota_exceeded", error
                assert "TABPILOT_MAX_USER_STORAGE_MB" in error["message"]
                refused += 1
        assert accepted, "not one upload was accepted"
        assert refused, "the quota let every upload through"
        assert sum(len(b) for b in accepted.values()) <= QUOTA_MB * MIB
        assert len(accepted) + refused == UPLOADS
        with server.client() as client:
            listed = client.get("/api/datasets", params={"limit": 100}).json()["items"]
        assert sorted(d["id"] for d in listed) == sorted(accepted)
        print(f"20 concurrent uploads: {len(accepted)} stored, {refused} refused, {took:.1f} s")
    finally:
        stop_server(server)
    assert_consistent(server.data_dir, accepted)
