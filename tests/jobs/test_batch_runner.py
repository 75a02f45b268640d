"""The AWS Batch runner against moto's Batch over real HTTP (simple mode: a submitted job is
recorded and marked SUCCEEDED at once, nothing runs): the URI, the start-up check, SubmitJob
with only the job id, TerminateJob, and reconciliation of jobs whose Batch job ended.

The stores are the real SQLite and local ones of the `ctx` fixture; the Batch jobs that would
fail, time out or lose their Spot capacity are described with DescribeJobs' shapes, since moto
cannot end a job that way.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tabpilot.context import AppContext
from tabpilot.errors import InvalidInput
from tabpilot.jobs.batch import (
    BATCH_COMMAND,
    CANCEL_REASON,
    BatchOptions,
    BatchRunner,
    batch_job_name,
    batch_job_of_worker,
    batch_options,
    container_worker_id,
)
from tabpilot.jobs.batch_reconcile import describe_end
from tabpilot.jobs.lease import LEASE_SECONDS
from tabpilot.records import JobRecord, JobStatus, utc_now
from tabpilot.settings import load_settings
from tests.aws_support import (
    batch_jobs_named,
    moto_client,
    push_image,
    register_job_definition,
)
from tests.factories import job_record
from tests.jobs.conftest import add_dataset


def store_environment(ctx: AppContext) -> dict[str, str]:
    return {
        "TABPILOT_METADATA_URI": ctx.settings.metadata_uri,
        "TABPILOT_ARTIFACT_URI": ctx.settings.artifact_uri,
    }


@pytest.fixture
def runner(aws_env: dict[str, str], batch_queue: str, ctx: AppContext) -> BatchRunner:
    """A Batch runner on the shared queue with a fresh job definition for `ctx`'s stores."""
    definition = register_job_definition(aws_env["AWS_ENDPOINT_URL"], store_environment(ctx))
    runner = BatchRunner(BatchOptions(batch_queue, definition))
    runner.bind(ctx)
    return runner


def queued_job(ctx: AppContext, **fields: Any) -> JobRecord:
    dataset = add_dataset(ctx)
    return ctx.metadata.create_job(job_record(dataset, **fields), message="queued")


def recorded(runner: BatchRunner, job_id: str) -> list[dict[str, Any]]:
    endpoint = runner.batch.meta.endpoint_url
    return batch_jobs_named(endpoint, runner.options.queue, batch_job_name(job_id))


def log_messages(ctx: AppContext, job_id: str) -> list[str]:
    events = ctx.metadata.list_job_events(job_id, owner=None)
    return [str(e.data.get("message")) for e in events]


# -- the URI ---------------------------------------------------------------------------------


def test_uri_names_the_queue_and_job_definition() -> None:
    assert batch_options("batch://train-queue?job_definition=tabpilot-train") == BatchOptions(
        "train-queue", "tabpilot-train", None
    )
    pinned = batch_options("batch://q1?job_definition=tabpilot-train:7")
    assert pinned.revision == 7
    assert pinned.definition_ref == "tabpilot-train:7"


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("batch://q1", "job_definition is missing"),
        ("batch://q1?job_definition=a/b", 'job_definition "a/b" is not a job definition name'),
        ("batch://q1?job_definition=jd&region=eu-west-1", "unknown option(s) region"),
        ("batch://arn:aws:batch:x?job_definition=jd", "not its ARN"),
        ("batch://q1/extra?job_definition=jd", '"/extra" after the queue name means nothing'),
    ],
)
def test_a_bad_uri_is_refused_at_start_up_naming_the_setting(uri: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_settings(runner_uri=uri)
    assert "TABPILOT_RUNNER_URI: " in caught.value.message
    assert words in caught.value.message


def test_the_container_worker_id_names_the_batch_job(monkeypatch: pytest.MonkeyPatch) -> None:
    batch_id = "36709ca4-3dd9-4662-880f-643e25eb39cf"
    monkeypatch.setenv("AWS_BATCH_JOB_ID", batch_id)
    worker = container_worker_id()
    assert worker is not None and worker.startswith(f"batch-{batch_id}-")
    assert batch_job_of_worker(worker) == batch_id
    assert batch_job_of_worker("local-host-42-0-abcdef") is None
    monkeypatch.delenv("AWS_BATCH_JOB_ID")
    assert container_worker_id() is None


# -- the start-up check ----------------------------------------------------------------------


def test_check_passes_for_a_complete_setup(runner: BatchRunner, ctx: AppContext) -> None:
    runner.check(ctx.settings)  # raises on any problem


def test_check_finds_an_ecr_image_and_names_a_missing_one(
    aws_env: dict[str, str], batch_queue: str, ctx: AppContext
) -> None:
    endpoint = aws_env["AWS_ENDPOINT_URL"]
    image = push_image(endpoint, "tabpilot-worker-check")
    good = register_job_definition(endpoint, store_environment(ctx), image=image)
    BatchRunner(BatchOptions(batch_queue, good)).check(ctx.settings)

    missing = image.rsplit(":", 1)[0] + ":not-pushed"
    bad = register_job_definition(endpoint, store_environment(ctx), image=missing)
    with pytest.raises(InvalidInput) as caught:
        BatchRunner(BatchOptions(batch_queue, bad)).check(ctx.settings)
    assert f'the worker image "{missing}"' in caught.value.message
    assert "has no image not-pushed" in caught.value.message

    gone = image.replace("tabpilot-worker-check", "tabpilot-no-such-repository")
    nowhere = register_job_definition(endpoint, store_environment(ctx), image=gone)
    with pytest.raises(InvalidInput) as caught:
        BatchRunner(BatchOptions(batch_queue, nowhere)).check(ctx.settings)
    assert 'ECR repository "tabpilot-no-such-repository" does not exist' in caught.value.message


def test_check_names_a_missing_queue(runner: BatchRunner, ctx: AppContext) -> None:
    options = BatchOptions("no-such-queue", runner.options.job_definition)
    with pytest.raises(InvalidInput) as caught:
        BatchRunner(options).check(ctx.settings)
    message = caught.value.message
    assert message.startswith("TABPILOT_RUNNER_URI: ")
    assert 'the AWS Batch job queue "no-such-queue" does not exist in us-east-1' in message
    assert caught.value.details["reason"] == "no_queue"


def test_check_names_a_missing_job_definition_or_revision(
    runner: BatchRunner, ctx: AppContext
) -> None:
    with pytest.raises(InvalidInput) as caught:
        BatchRunner(BatchOptions(runner.options.queue, "no-such-definition")).check(ctx.settings)
    assert 'the AWS Batch job definition "no-such-definition" does not exist' in (
        caught.value.message
    )
    name = runner.options.job_definition
    with pytest.raises(InvalidInput) as caught:
        BatchRunner(BatchOptions(runner.options.queue, name, 9)).check(ctx.settings)
    assert f'revision 9 of the AWS Batch job definition "{name}" is not ACTIVE' in (
        caught.value.message
    )
    assert "(active revisions: 1)" in caught.value.message


def test_check_refuses_another_command_or_other_stores(
    aws_env: dict[str, str], batch_queue: str, ctx: AppContext
) -> None:
    endpoint = aws_env["AWS_ENDPOINT_URL"]
    other_command = register_job_definition(
        endpoint, store_environment(ctx), command=["tabpilot", "worker"]
    )
    with pytest.raises(InvalidInput) as caught:
        BatchRunner(BatchOptions(batch_queue, other_command)).check(ctx.settings)
    assert "runs ['tabpilot', 'worker']; its command must be exactly" in caught.value.message
    assert str(list(BATCH_COMMAND)) in caught.value.message

    elsewhere = store_environment(ctx) | {"TABPILOT_ARTIFACT_URI": "s3://another-bucket/x"}
    other_stores = register_job_definition(endpoint, elsewhere)
    with pytest.raises(InvalidInput) as caught:
        BatchRunner(BatchOptions(batch_queue, other_stores)).check(ctx.settings)
    assert "sets TABPILOT_ARTIFACT_URI to s3://another-bucket/x, but this server uses" in (
        caught.value.message
    )

    no_metadata = {"TABPILOT_ARTIFACT_URI": ctx.settings.artifact_uri}
    unset = register_job_definition(endpoint, no_metadata)
    with pytest.raises(InvalidInput) as caught:
        BatchRunner(BatchOptions(batch_queue, unset)).check(ctx.settings)
    assert "does not set TABPILOT_METADATA_URI in its environment" in caught.value.message


def test_check_names_a_disabled_queue(aws_env: dict[str, str], batch_queue: str) -> None:
    batch = moto_client(aws_env["AWS_ENDPOINT_URL"], "batch")
    environment = batch.describe_job_queues(jobQueues=[batch_queue])["jobQueues"][0][
        "computeEnvironmentOrder"
    ]
    batch.create_job_queue(
        jobQueueName="tabpilot-disabled",
        state="DISABLED",
        priority=1,
        computeEnvironmentOrder=environment,
    )
    with pytest.raises(InvalidInput) as caught:
        BatchRunner(BatchOptions("tabpilot-disabled", "whatever")).check()
    assert 'the AWS Batch job queue "tabpilot-disabled" is disabled' in caught.value.message


# -- submitting and cancelling ---------------------------------------------------------------


def test_submit_sends_only_the_job_id(runner: BatchRunner, ctx: AppContext) -> None:
    job = queued_job(ctx)
    runner.submit(job.id)

    [batch_job] = recorded(runner, job.id)
    assert batch_job["jobName"] == f"tabpilot-{job.id}"
    assert batch_job["parameters"] == {"job_id": job.id}
    container = batch_job["container"]
    assert container["command"] == list(BATCH_COMMAND)  # Batch substitutes Ref::job_id
    environment = {e["name"]: e["value"] for e in container["environment"]}
    # The job definition's environment and nothing else (AWS_BATCH_JOB_ID is Batch's own).
    assert environment == store_environment(ctx) | {"AWS_BATCH_JOB_ID": batch_job["jobId"]}
    assert ctx.metadata.get_job(job.id, owner=None).status is JobStatus.QUEUED
    assert (
        f"submitted to the AWS Batch queue {runner.options.queue} as job {batch_job['jobId']}"
        in log_messages(ctx, job.id)
    )


def test_a_refused_submission_fails_the_job_with_batchs_words(
    runner: BatchRunner, ctx: AppContext
) -> None:
    job = queued_job(ctx)
    broken = BatchRunner(BatchOptions("no-such-queue", runner.options.job_definition))
    broken.bind(ctx)
    broken.submit(job.id)

    failed = ctx.metadata.get_job(job.id, owner=None)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith("AWS Batch refused the job (ClientException: ")
    assert "no-such-queue" in failed.error


def test_cancel_terminates_the_batch_job(runner: BatchRunner, ctx: AppContext) -> None:
    job = queued_job(ctx)
    runner.submit(job.id)
    runner.cancel(job.id)

    [batch_job] = recorded(runner, job.id)
    # moto records TerminateJob's reason; on a running job Batch would stop the container.
    assert batch_job["statusReason"] == CANCEL_REASON


# -- reconciliation --------------------------------------------------------------------------


def test_a_queued_job_whose_batch_job_ended_is_submitted_once_more_then_failed(
    runner: BatchRunner, ctx: AppContext
) -> None:
    job = queued_job(ctx)
    runner.submit(job.id)  # moto ends it at once (SUCCEEDED) without running anything

    assert runner.reconcile_once(ctx) == 1
    first, second = recorded(runner, job.id)
    assert ctx.metadata.get_job(job.id, owner=None).status is JobStatus.QUEUED
    assert any(
        f"AWS Batch job {first['jobId']} ended (SUCCEEDED) without starting the training" in m
        and f"submitted again as AWS Batch job {second['jobId']} (try 2 of 2)" in m
        for m in log_messages(ctx, job.id)
    )

    assert runner.reconcile_once(ctx) == 1
    failed = ctx.metadata.get_job(job.id, owner=None)
    assert failed.status is JobStatus.FAILED
    assert failed.error is not None
    assert failed.error.startswith(
        f"AWS Batch job {second['jobId']} ended (SUCCEEDED) without starting the training"
    )
    assert "its log is in CloudWatch Logs, stream " in failed.error
    assert failed.error.endswith("; gave up after 2 AWS Batch jobs")
    assert len(recorded(runner, job.id)) == 2  # no third try

    assert runner.reconcile_once(ctx) == 0  # settled: nothing more to do


def test_a_running_job_whose_container_ended_is_retried_once_then_failed(
    runner: BatchRunner, ctx: AppContext
) -> None:
    job = queued_job(ctx)
    runner.submit(job.id)
    [first] = recorded(runner, job.id)
    # The container claimed the job, then its Batch job ended with the lease still fresh.
    worker = f"batch-{first['jobId']}-host-1-abcdef"
    ctx.metadata.claim_job(job.id, worker_id=worker, lease_seconds=LEASE_SECONDS)

    assert runner.reconcile_once(ctx) == 1
    requeued = ctx.metadata.get_job(job.id, owner=None)
    assert requeued.status is JobStatus.QUEUED
    first, second = recorded(runner, job.id)
    status_messages = [
        e.data["message"]
        for e in ctx.metadata.list_job_events(job.id, owner=None)
        if e.kind == "status" and e.data["status"] == "queued" and e.data["previous"]
    ]
    assert any(
        m.startswith(
            f"AWS Batch job {first['jobId']} ended (SUCCEEDED) while the training was still running"
        )
        and "the job was queued again (attempt 2 of 2)" in m
        for m in status_messages
    )

    worker = f"batch-{second['jobId']}-host-2-fedcba"
    ctx.metadata.claim_job(job.id, worker_id=worker, lease_seconds=LEASE_SECONDS)
    assert runner.reconcile_once(ctx) == 1
    failed = ctx.metadata.get_job(job.id, owner=None)
    assert failed.status is JobStatus.FAILED
    assert failed.attempts == 2
    assert failed.error is not None
    assert failed.error.startswith(f"AWS Batch job {second['jobId']} ended (SUCCEEDED) while")


def test_a_running_job_of_another_worker_is_left_to_its_lease(
    runner: BatchRunner, ctx: AppContext
) -> None:
    job = queued_job(ctx)
    runner.submit(job.id)
    ctx.metadata.claim_job(job.id, worker_id="local-host-1-0-abcdef", lease_seconds=60)

    assert runner.reconcile_once(ctx) == 0
    assert ctx.metadata.get_job(job.id, owner=None).status is JobStatus.RUNNING


def test_a_job_never_submitted_is_submitted_after_the_grace(
    runner: BatchRunner, ctx: AppContext
) -> None:
    fresh = queued_job(ctx)
    old = queued_job(ctx, created_at=utc_now() - timedelta(hours=1))

    assert runner.reconcile_once(ctx) == 1
    assert recorded(runner, fresh.id) == []  # it may be being submitted right now
    [batch_job] = recorded(runner, old.id)
    assert batch_job["parameters"] == {"job_id": old.id}


def test_a_job_that_finished_meanwhile_is_left_alone(runner: BatchRunner, ctx: AppContext) -> None:
    job = queued_job(ctx)
    runner.submit(job.id)
    ctx.metadata.transition_job(job.id, owner=None, expect=JobStatus.QUEUED, to=JobStatus.CANCELED)

    assert runner.reconcile_once(ctx) == 0
    assert len(recorded(runner, job.id)) == 1


# -- Batch's reasons, in words ---------------------------------------------------------------


def ended(status: str, status_reason: str = "", **container: Any) -> dict[str, Any]:
    """A DescribeJobs entry of an ended job, in the shape AWS documents."""
    return {
        "jobId": "11111111-2222-3333-4444-555555555555",
        "status": status,
        "statusReason": status_reason,
        "container": {"logStreamName": "tabpilot-train/default/abc", **container},
        "attempts": [
            {"container": {"exitCode": container.get("exitCode")}, "statusReason": status_reason}
        ],
    }


def test_batch_reasons_become_words_and_a_retry_decision() -> None:
    text, retry = describe_end(
        ended("FAILED", "Job attempt duration exceeded timeout"), running=True
    )
    assert "ran past the job definition's timeout" in text and not retry
    assert "Job attempt duration exceeded timeout" in text

    text, retry = describe_end(
        ended("FAILED", "Host EC2 (instance i-0abc) terminated."), running=True
    )
    assert "lost its Spot capacity" in text and retry

    text, retry = describe_end(
        ended("FAILED", "Task failed to start", reason="CannotPullContainerError: not found"),
        running=False,
    )
    assert "the worker image could not be pulled" in text and not retry
    assert "CannotPullContainerError: not found" in text

    text, retry = describe_end(
        ended("FAILED", "Essential container in task exited", exitCode=137), running=True
    )
    assert "was killed (exit code 137" in text and retry

    text, retry = describe_end(
        ended("FAILED", "Essential container in task exited", exitCode=2), running=True
    )
    assert text.startswith("AWS Batch job 11111111-2222-3333-4444-555555555555 ended (FAILED)")
    assert "exit code 2" in text and retry
    assert text.endswith("its log is in CloudWatch Logs, stream tabpilot-train/default/abc")
