"""Proven end to end on an emulator: `tabpilot serve` with the AWS Batch runner against a moto
server over HTTP, S3 for the files and DynamoDB for the records, and the test playing AWS Batch.

moto's Batch runs in its simple mode (no Docker): it records each SubmitJob, with the command and
environment of the job definition (registered here as Terraform describes it), and marks the
Batch job SUCCEEDED at once without running anything. So:

1. The test reads the SubmitJob call as moto recorded it, substitutes the parameters for
   `Ref::` as Batch does, and runs that command as a separate process with exactly that
   environment (plus what AWS gives every container: credentials and the endpoint), then sees
   the job succeed, the model served and its files downloadable through the API. The server's
   reconcile interval is long here: moto ends every Batch job at once, and reconciliation would
   (rightly) resubmit and then fail a job whose Batch job ended before the test ran it.
2. A second server, reconciling every second, is left alone: its Batch jobs end without running
   anything, and the job is submitted once more, then fails with a clear reason.
3. A server whose queue does not exist refuses to start and names it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tabpilot.jobs.batch import BATCH_COMMAND, batch_job_name
from tests.aws.test_server_on_s3 import init_stores, wait_until_healthy
from tests.aws_support import (
    REGION,
    batch_jobs_named,
    moto_client,
    new_bucket_name,
    push_image,
    register_job_definition,
    remove_bucket,
    s3_client,
)
from tests.conftest import make_mixed_frame
from tests.servers import free_port, tabpilot_command

pytestmark = pytest.mark.slow  # starts servers, trains a model (5 s budget)

PREFIX = "tabpilot"


@pytest.fixture
def stores(aws_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """The store settings shared by the server and the Batch container: S3 for the files,
    DynamoDB for the records (a fresh bucket and table prefix; `tabpilot init-stores` makes
    them)."""
    bucket = new_bucket_name()
    tables = f"tabpilot-e2e-{uuid.uuid4().hex[:12]}"
    try:
        yield {
            "TABPILOT_METADATA_URI": f"dynamodb://{tables}?region={REGION}",
            "TABPILOT_ARTIFACT_URI": f"s3://{bucket}/{PREFIX}",
        }
    finally:
        remove_bucket(s3_client(), bucket)
        remove_tables(aws_env["AWS_ENDPOINT_URL"], tables)


def remove_tables(endpoint: str, prefix: str) -> None:
    """Delete the DynamoDB tables `tabpilot init-stores` made for `prefix` (moto keeps them)."""
    dynamodb = moto_client(endpoint, "dynamodb")
    for name in dynamodb.list_tables()["TableNames"]:
        if name.startswith(f"{prefix}-"):
            dynamodb.delete_table(TableName=name)


def bucket_of(stores: dict[str, str]) -> str:
    return stores["TABPILOT_ARTIFACT_URI"].removeprefix("s3://").split("/", 1)[0]


def server_env(
    aws_env: dict[str, str], tmp_path: Path, stores: dict[str, str], runner_uri: str, **more: str
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABPILOT_")}
    env.update(aws_env)
    env.update(stores)
    env["TABPILOT_DATA_DIR"] = str(tmp_path / "server-data")
    env["TABPILOT_RUNNER_URI"] = runner_uri
    env.update(more)
    return env


class Server:
    """`tabpilot serve` as a real process on loopback, stopped on exit."""

    def __init__(self, env: dict[str, str], tmp_path: Path, name: str) -> None:
        self.env = env
        self.cwd = tmp_path
        self.log = tmp_path / f"{name}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [*tabpilot_command(), "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
            )
        wait_until_healthy(self.process, self.url, self.log)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def upload_and_train(api: httpx.Client) -> tuple[dict[str, Any], Any]:
    """Upload a small CSV and create a job on it (5 s budget); returns the job and the frame."""
    frame = make_mixed_frame(200, seed=5)
    body = frame.to_csv(index=False).encode()
    uploaded = api.post("/api/datasets", files={"file": ("people.csv", body, "text/csv")})
    assert uploaded.status_code == 201, uploaded.text
    created = api.post(
        "/api/jobs",
        json={
            "dataset_id": uploaded.json()["id"],
            "target": "label",
            "time_budget": 5,
            "estimators": ["lgbm", "linear"],
        },
    )
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["status"] == "queued", job
    return job, frame


def terraform_worker(stores: dict[str, str], data_dir: Path) -> tuple[list[str], dict[str, str]]:
    """The worker's command and environment as deploy/terraform describes the job definition
    (`worker_command`, `worker_environment` in batch.tf), with this test's stand-ins for what
    Terraform fills in: the stores, the region, and a scratch directory of this test instead of
    the container's own /tmp (this machine is not a fresh container)."""
    from tests.deploy.terraform import load_config

    config = load_config()
    stand_ins = {
        "${local.metadata_uri}": stores["TABPILOT_METADATA_URI"],
        "${local.artifact_uri}": stores["TABPILOT_ARTIFACT_URI"],
        "${var.region}": REGION,
    }
    environment = {}
    for name, value in config.locals["worker_environment"].items():
        if name == "TABPILOT_DATA_DIR":
            value = str(data_dir)
        elif value.startswith("${"):
            assert value in stand_ins, f"give {name} = {value} a stand-in in this test"
            value = stand_ins[value]
        environment[name] = value
    return list(config.locals["worker_command"]), environment


def play_batch(batch_job: dict[str, Any], aws_env: dict[str, str], cwd: Path) -> Any:
    """Run a Batch job's container command as AWS Batch would: `Ref::NAME` replaced by the
    job's parameters, with exactly the container's environment, plus what AWS provides every
    container (the task role's credentials, the region and here the emulator's endpoint) and
    what the image provides (PATH to `tabpilot`, a home)."""
    parameters = batch_job["parameters"]
    command = [
        re.sub(r"Ref::(\w+)", lambda m: parameters.get(m.group(1), m.group(0)), argument)
        for argument in batch_job["container"]["command"]
    ]
    home = cwd / "container-home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
    }
    env.update(aws_env)
    env.update({e["name"]: e["value"] for e in batch_job["container"]["environment"]})
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_a_job_runs_as_the_batch_job_moto_recorded(
    aws_env: dict[str, str], batch_queue: str, stores: dict[str, str], tmp_path: Path
) -> None:
    endpoint = aws_env["AWS_ENDPOINT_URL"]
    image = push_image(endpoint, "tabpilot-worker")
    command, environment = terraform_worker(stores, tmp_path / "container-data")
    definition = register_job_definition(endpoint, environment, image=image, command=command)
    env = server_env(
        aws_env,
        tmp_path,
        stores,
        f"batch://{batch_queue}?job_definition={definition}",
        TABPILOT_BATCH_RECONCILE_S="3600",
    )
    said = init_stores(env, tmp_path)
    assert f'created the bucket "{bucket_of(stores)}"' in said
    assert "TABPILOT_METADATA_URI (the DynamoDB metadata store)" in said
    assert (
        "TABPILOT_RUNNER_URI (the AWS Batch runner): nothing to create: the job queue and job "
        "definition come from the deployment" in said
    )

    with (
        Server(env, tmp_path, "server") as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        job, frame = upload_and_train(api)
        [batch_job] = batch_jobs_named(endpoint, batch_queue, batch_job_name(job["id"]))
        # What Batch was asked: the job definition's command and environment, only the job id
        # as a parameter, no override.
        assert batch_job["container"]["command"] == list(BATCH_COMMAND)
        assert batch_job["parameters"] == {"job_id": job["id"]}
        recorded = {e["name"]: e["value"] for e in batch_job["container"]["environment"]}
        assert recorded == environment | {"AWS_BATCH_JOB_ID": batch_job["jobId"]}

        started = time.monotonic()
        done = play_batch(batch_job, aws_env, tmp_path)
        ran_for = time.monotonic() - started
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"Job {job['id']} succeeded: model mdl_" in done.stdout
        print(f"the Batch container's command ran for {ran_for:.1f} s")

        check_job_served(api, job["id"], batch_job["jobId"], frame, bucket_of(stores))
    assert not list(tmp_path.rglob("*.db"))  # every record went to DynamoDB


def check_job_served(
    api: httpx.Client, job_id: str, batch_id: str, frame: Any, bucket: str
) -> None:
    job = api.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job
    model_id = job["model_id"]

    events = api.get(f"/api/jobs/{job_id}/events").json()
    running = [
        e["data"] for e in events if e["kind"] == "status" and e["data"]["status"] == "running"
    ]
    assert len(running) == 1 and running[0]["worker"].startswith(f"batch-{batch_id}-")
    assert any(
        e["kind"] == "log" and e["data"]["message"].endswith(f"as job {batch_id}") for e in events
    )

    model = api.get(f"/api/models/{model_id}")
    assert model.status_code == 200, model.text
    rows = json.loads(frame.drop(columns=["label"]).head(3).to_json(orient="records"))
    predicted = api.post(f"/api/models/{model_id}/predict", json={"rows": rows})
    assert predicted.status_code == 200, predicted.text
    assert len(predicted.json()["predictions"]) == 3

    onnx = api.get(f"/api/models/{model_id}/files/model.onnx")
    assert onnx.status_code == 200, onnx.text
    stored = s3_client().get_object(Bucket=bucket, Key=f"{PREFIX}/models/{model_id}/model.onnx")
    assert onnx.content == stored["Body"].read() and len(onnx.content) > 1000
    card = api.get(f"/api/models/{model_id}/files/model.json")
    assert card.status_code == 200 and card.json()["target"] == "label"


def test_a_batch_job_that_ends_without_running_fails_the_job_within_the_interval(
    aws_env: dict[str, str], batch_queue: str, stores: dict[str, str], tmp_path: Path
) -> None:
    endpoint = aws_env["AWS_ENDPOINT_URL"]
    definition = register_job_definition(endpoint, stores)
    interval = 1.0
    env = server_env(
        aws_env,
        tmp_path,
        stores,
        f"batch://{batch_queue}?job_definition={definition}",
        TABPILOT_BATCH_RECONCILE_S=str(interval),
    )
    init_stores(env, tmp_path)

    with (
        Server(env, tmp_path, "server") as server,
        httpx.Client(base_url=server.url, timeout=30) as api,
    ):
        job, _ = upload_and_train(api)
        created = time.monotonic()
        deadline = created + 3 * interval + 10  # two passes, plus a loaded machine's slack
        while (state := api.get(f"/api/jobs/{job['id']}").json())["status"] != "failed":
            assert state["status"] == "queued", state
            assert time.monotonic() < deadline, f"not failed after {deadline - created:.0f} s"
            time.sleep(0.2)
        took = time.monotonic() - created

        first, second = batch_jobs_named(endpoint, batch_queue, batch_job_name(job["id"]))
        assert state["error"].startswith(
            f"AWS Batch job {second['jobId']} ended (SUCCEEDED) without starting the training"
        )
        assert state["error"].endswith("; gave up after 2 AWS Batch jobs")
        logs = [e["data"]["message"] for e in api.get(f"/api/jobs/{job['id']}/events").json()]
        assert any(
            m.startswith(f"AWS Batch job {first['jobId']} ended (SUCCEEDED)")
            and m.endswith(f"submitted again as AWS Batch job {second['jobId']} (try 2 of 2)")
            for m in logs
        )
        print(f"failed {took:.1f} s after it was created (reconciling every {interval} s)")


def test_a_missing_queue_stops_the_server_at_start_up(
    aws_env: dict[str, str], batch_queue: str, stores: dict[str, str], tmp_path: Path
) -> None:
    definition = register_job_definition(aws_env["AWS_ENDPOINT_URL"], stores)
    env = server_env(
        aws_env, tmp_path, stores, f"batch://no-such-queue?job_definition={definition}"
    )
    done = subprocess.run(
        [*tabpilot_command(), "serve", "--port", str(free_port())],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0
    assert (
        'Error: TABPILOT_RUNNER_URI: the AWS Batch job queue "no-such-queue" does not exist in '
        "us-east-1; create it" in said
    )
    assert "Traceback" not in said  # a setting to fix, said plainly
