"""End to end: a real `tabpilot serve` process with its local worker, driven over HTTP.

upload -> train (5 s budget) -> poll until succeeded -> predict -> download model.onnx.
"""

from __future__ import annotations

import hashlib
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.support import csv_bytes
from tests.conftest import make_mixed_frame
from tests.servers import free_port, tabpilot_command

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABPILOT_")}
    env["TABPILOT_DATA_DIR"] = str(tmp_path / "data")
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [*tabpilot_command(), "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"tabpilot serve exited early:\n{(tmp_path / 'server.log').read_text()}"
                )
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("tabpilot serve did not answer /health within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_upload_train_predict_download(server: str, tmp_path: Path) -> None:
    frame = make_mixed_frame(300, seed=5)
    with httpx.Client(base_url=server, timeout=30) as client:
        assert client.get("/ready").status_code == 200
        response = client.post(
            "/api/datasets", files={"file": ("customers.csv", csv_bytes(frame), "text/csv")}
        )
        assert response.status_code == 201, response.text
        dataset = response.json()

        response = client.post(
            "/api/jobs", json={"dataset_id": dataset["id"], "target": "label", "time_budget": 5}
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]

        deadline = time.monotonic() + 180
        while True:
            job = client.get(f"/api/jobs/{job_id}").json()
            if job["status"] in ("succeeded", "failed", "canceled"):
                break
            assert time.monotonic() < deadline, f"job still {job['status']} after 180 s"
            time.sleep(0.5)
        assert job["status"] == "succeeded", job
        assert job["model_id"] and job["started_at"] and job["finished_at"]

        stream = client.get(f"/api/jobs/{job_id}/stream")
        assert "event: end" in stream.text and '"status":"succeeded"' in stream.text

        paths = client.get("/openapi.json").json()["paths"]
        if "/api/models/{model_id}/predict" not in paths:
            pytest.skip("the models router is not installed: predict and download not checked")
        model_id = job["model_id"]
        rows = [
            {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
            for row in frame.drop(columns=["label"]).head(3).to_dict(orient="records")
        ]
        response = client.post(f"/api/models/{model_id}/predict", json={"rows": rows})
        assert response.status_code == 200, response.text
        assert len(response.json()["predictions"]) == 3
        assert set(response.json()["predictions"]) <= {"yes", "no"}

        card = client.get(f"/api/models/{model_id}").json()["card"]
        onnx = client.get(f"/api/models/{model_id}/files/model.onnx")
        assert onnx.status_code == 200 and len(onnx.content) > 1000
        assert hashlib.sha256(onnx.content).hexdigest() == card["files"]["model.onnx"]["sha256"]
