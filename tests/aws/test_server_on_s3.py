"""The whole server on S3 storage: `tabpilot init-stores` and `tabpilot serve` as real processes,
with TABPILOT_ARTIFACT_URI=s3://BUCKET/PREFIX against a moto server over HTTP.

Upload a CSV through the API, read the dataset back (profile, preview, EDA report), see the
file as an object under the prefix and nothing under the local data directory, delete it.
No training: the worker's side of S3 is the same ArtifactStore contract.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.support import csv_bytes
from tests.aws_support import new_bucket_name, remove_bucket, s3_client
from tests.conftest import make_mixed_frame
from tests.servers import free_port, tabpilot_command

pytestmark = pytest.mark.slow  # waits seconds on real processes


def server_env(aws_env: dict[str, str], tmp_path: Path, uri: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABPILOT_")}
    env.update(aws_env)
    env["TABPILOT_DATA_DIR"] = str(tmp_path / "data")
    env["TABPILOT_ARTIFACT_URI"] = uri
    return env


def init_stores(env: dict[str, str], cwd: Path) -> str:
    done = subprocess.run(
        [*tabpilot_command(), "init-stores"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def wait_until_healthy(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            pytest.fail(f"tabpilot serve exited early:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"tabpilot serve did not answer /health within 60 s:\n{log.read_text()}")
        time.sleep(0.2)


def test_datasets_live_in_the_bucket(aws_env: dict[str, str], tmp_path: Path) -> None:
    bucket = new_bucket_name()
    env = server_env(aws_env, tmp_path, f"s3://{bucket}/tabpilot")
    client = s3_client()
    try:
        assert f'created the bucket "{bucket}"' in init_stores(env, tmp_path)
        assert f'the bucket "{bucket}" exists already' in init_stores(env, tmp_path)
        run_server_checks(env, tmp_path, client, bucket)
    finally:
        remove_bucket(client, bucket)


def run_server_checks(env: dict[str, str], tmp_path: Path, client: Any, bucket: str) -> None:
    port = free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*tabpilot_command(), "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(process, url, log_path)
            check_dataset_round_trip(url, client, bucket, tmp_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def check_dataset_round_trip(url: str, client: Any, bucket: str, tmp_path: Path) -> None:
    frame = make_mixed_frame(200, seed=3)
    body = csv_bytes(frame)
    with httpx.Client(base_url=url, timeout=30) as api:
        ready = api.get("/ready")
        assert ready.status_code == 200, ready.text  # the S3 store answers its ping

        response = api.post("/api/datasets", files={"file": ("people.csv", body, "text/csv")})
        assert response.status_code == 201, response.text
        dataset_id = response.json()["id"]

        stored = client.get_object(Bucket=bucket, Key=f"tabpilot/datasets/{dataset_id}/data.csv")[
            "Body"
        ].read()
        assert stored == body
        local = tmp_path / "data" / "artifacts"
        assert not local.exists() or not any(p.is_file() for p in local.rglob("*"))

        response = api.get(f"/api/datasets/{dataset_id}")
        assert response.status_code == 200, response.text
        dataset = response.json()
        assert dataset["id"] == dataset_id
        assert dataset_rows(dataset) == len(frame)
        assert "label" in str(dataset)  # the columns, read back from the stored file

        report = api.get(f"/api/datasets/{dataset_id}/eda.html")
        assert report.status_code == 200, report.text
        assert "<html" in report.text.lower()

        assert api.delete(f"/api/datasets/{dataset_id}").status_code in (200, 204)
        listed = client.list_objects_v2(Bucket=bucket, Prefix=f"tabpilot/datasets/{dataset_id}/")
        assert listed.get("KeyCount", 0) == 0


def dataset_rows(dataset: dict) -> int:
    """The row count of a dataset reply, wherever the schema keeps it."""
    for holder in (dataset, dataset.get("profile") or {}):
        for name in ("n_rows", "rows", "row_count"):
            if isinstance(holder.get(name), int):
                return int(holder[name])
    raise AssertionError(f"no row count in {sorted(dataset)}")
