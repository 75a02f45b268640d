"""An AWS emulator for the tests of the AWS backends: moto's server over real HTTP.

`moto_endpoint` (session) starts moto's `ThreadedMotoServer` on 127.0.0.1 in a child process,
so the tests talk to it as Tabpilot talks to AWS (HTTP through boto3; boto3 is never patched)
and what the emulator holds never counts in a test's own memory measurements.
`aws_env` points boto3 at it the standard way (`AWS_ENDPOINT_URL`, test credentials, a
region) and shuts out anything real (profiles, config files, instance metadata).
`s3_bucket` is a fresh bucket per test, emptied and removed afterwards.
`batch_queue` is a Batch job queue in moto's simple mode (no Docker: submitted jobs are recorded
and marked SUCCEEDED at once); `register_job_definition`, `push_image` and `batch_jobs_named`
make and read what the Batch runner's tests need.

tests/conftest.py registers this module as a plugin (`pytest_plugins`), so every test can ask
for these fixtures and the session shares one server.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import uuid
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

import pytest

REGION = "us-east-1"


class _OneDynamoRequestAtATime:
    """A WSGI wrapper that lets moto handle one DynamoDB request at a time.

    DynamoDB applies each request atomically: a conditional write's check and write are one
    step, a transaction all or nothing. moto's threaded server takes no lock, so two racing
    conditional writes could both pass their check, and a canceled transaction restores a
    copy of the table over writes other threads made meanwhile. Serialising DynamoDB requests
    gives the emulator the guarantee real DynamoDB gives; clients still race between
    requests, which is what the store's tests exercise. Other services are not affected.
    """

    def __init__(self, app: Any) -> None:
        import threading

        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return self._app(environ, start_response)
        with self._lock:
            return list(self._app(environ, start_response))


def _serve(conn: Connection) -> None:
    """In the child: run the server, send its port, stop when the parent says so or dies."""
    import logging

    from moto.moto_server import threaded_moto_server
    from moto.server import ThreadedMotoServer

    dispatcher = threaded_moto_server.DomainDispatcherApplication
    threaded_moto_server.DomainDispatcherApplication = (  # type: ignore[misc]
        lambda *args, **kwargs: _OneDynamoRequestAtATime(dispatcher(*args, **kwargs))
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    conn.send(server.get_host_and_port()[1])
    with contextlib.suppress(EOFError):  # the parent died without saying stop
        conn.recv()
    server.stop()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto server (S3, DynamoDB, Batch, ...) for the whole test session."""
    pytest.importorskip("boto3", reason="the AWS tests need the aws extra: pip install -e '.[aws]'")
    pytest.importorskip("moto", reason="the AWS tests need moto: pip install -e '.[dev]'")
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_serve, args=(theirs,), name="moto-server", daemon=True
    )
    process.start()
    if not ours.poll(60):
        process.kill()
        raise RuntimeError("the moto server did not start within 60 s")
    port = ours.recv()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        ours.send("stop")
        process.join(10)
        if process.is_alive():
            process.kill()


def aws_environment(endpoint: str, config_dir: str) -> dict[str, str]:
    """The variables that point boto3 at `endpoint` with test credentials."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # Nothing real may answer: no config or credential files, no instance metadata.
        "AWS_CONFIG_FILE": f"{config_dir}/config",
        "AWS_SHARED_CREDENTIALS_FILE": f"{config_dir}/credentials",
        "AWS_EC2_METADATA_DISABLED": "true",
    }


# Variables that could make boto3 use another identity than the test one.
FOREIGN_AWS_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN")


@pytest.fixture
def aws_env(
    moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Point boto3 (here and in child processes) at the moto server; returns the variables."""
    env = aws_environment(moto_endpoint, str(tmp_path_factory.mktemp("aws-config")))
    for name in FOREIGN_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def s3_client() -> Any:
    import boto3

    return boto3.session.Session().client("s3")


def new_bucket_name() -> str:
    return f"tabpilot-test-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def s3_bucket(aws_env: dict[str, str]) -> Iterator[str]:
    """A fresh, empty bucket on the moto server; emptied and removed after the test."""
    client = s3_client()
    name = new_bucket_name()
    client.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        remove_bucket(client, name)


def remove_bucket(client: Any, name: str) -> None:
    """Delete `name` and everything in it (moto keeps objects in memory), if it exists."""
    try:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if objects:
                client.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
        client.delete_bucket(Bucket=name)
    except client.exceptions.NoSuchBucket:
        pass


# -- AWS Batch -----------------------------------------------------------------------------------
# moto runs Batch without Docker in its "simple" mode, switched on for the server through its
# /moto-api/config endpoint: a submitted job is recorded (command, environment, parameters) and
# marked SUCCEEDED at once, without running anything. The tests play the part of Batch's
# containers themselves.


@functools.cache
def moto_client(endpoint: str, service: str, region: str = REGION) -> Any:
    """A boto3 client of the moto server at `endpoint`, whatever this process's environment
    (one per service: making a client reads its service model, which takes a while)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region
    )
    return session.client(service, endpoint_url=endpoint)


@pytest.fixture(scope="session")
def batch_queue(moto_endpoint: str) -> str:
    """An ENABLED Batch job queue (on a Fargate Spot compute environment) in moto's simple
    mode, shared by the session's tests (each job's Batch jobs are named after the job)."""
    import httpx

    answer = httpx.post(f"{moto_endpoint}/moto-api/config", json={"batch": {"use_docker": False}})
    assert answer.status_code == 201, answer.text
    ec2 = moto_client(moto_endpoint, "ec2")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="tabpilot-batch", Description="t", VpcId=vpc)
    role = moto_client(moto_endpoint, "iam").create_role(
        RoleName="tabpilot-batch-service", AssumeRolePolicyDocument="{}"
    )["Role"]["Arn"]
    batch = moto_client(moto_endpoint, "batch")
    environment = batch.create_compute_environment(
        computeEnvironmentName="tabpilot-spot",
        type="MANAGED",
        state="ENABLED",
        serviceRole=role,
        computeResources={
            "type": "FARGATE_SPOT",
            "maxvCpus": 4,
            "subnets": [subnet],
            "securityGroupIds": [group["GroupId"]],
        },
    )
    name = "tabpilot-jobs"
    batch.create_job_queue(
        jobQueueName=name,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": environment["computeEnvironmentArn"]}
        ],
    )
    return name


def register_job_definition(
    endpoint: str,
    environment: dict[str, str],
    *,
    image: str = "tabpilot-worker:test",
    command: Sequence[str] | None = None,
) -> str:
    """Register a fresh Fargate job definition running `command` (default: the runner's
    `BATCH_COMMAND`) with `environment`, as Terraform describes it; returns its name."""
    from tabpilot.jobs.batch import BATCH_COMMAND

    name = f"tabpilot-train-{uuid.uuid4().hex[:10]}"
    moto_client(endpoint, "batch").register_job_definition(
        jobDefinitionName=name,
        type="container",
        platformCapabilities=["FARGATE"],
        containerProperties={
            "image": image,
            "command": list(BATCH_COMMAND if command is None else command),
            "environment": [{"name": k, "value": v} for k, v in environment.items()],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "2048"},
            ],
            "executionRoleArn": "arn:aws:iam::123456789012:role/tabpilot-batch-execution",
        },
        timeout={"attemptDurationSeconds": 7200},
    )
    return name


def push_image(endpoint: str, repository: str, tag: str = "latest") -> str:
    """An image in moto's ECR (a repository with one tagged manifest); returns its URI."""
    import json

    ecr = moto_client(endpoint, "ecr")
    with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
        ecr.create_repository(repositoryName=repository)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "digest": "sha256:" + "0" * 64,
            "size": 1,
            "mediaType": "application/vnd.docker.container.image.v1+json",
        },
        "layers": [],
    }
    ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
    registry = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
    return f"{registry['repositoryUri']}:{tag}"


def batch_jobs_named(endpoint: str, queue: str, name: str) -> list[dict[str, Any]]:
    """DescribeJobs of every Batch job called `name` in `queue`, oldest first: what moto
    recorded of each SubmitJob (command and environment from the job definition, parameters)."""
    batch = moto_client(endpoint, "batch")
    summaries = batch.list_jobs(jobQueue=queue, filters=[{"name": "JOB_NAME", "values": [name]}])[
        "jobSummaryList"
    ]
    if not summaries:
        return []
    jobs = batch.describe_jobs(jobs=[s["jobId"] for s in summaries])["jobs"]
    return sorted(jobs, key=lambda job: (job["createdAt"], job["jobId"]))
