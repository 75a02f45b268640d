"""The start-up check of the AWS Batch runner: what a job needs exists, before any job is sent.

Without it a missing queue, job definition or image shows up as every job failing at once
with no log to read. Each problem is raised as one `InvalidInput` naming `TABPILOT_RUNNER_URI`,
the missing thing and what to do, so `tabpilot serve` stops with the reason on its first line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from tabpilot.backends import parse_uri
from tabpilot.errors import InvalidInput
from tabpilot.jobs.batch import BATCH_COMMAND, STORE_VARIABLES, runner_error

if TYPE_CHECKING:
    from tabpilot.jobs.batch import BatchOptions, BatchRunner
    from tabpilot.settings import Settings

log = logging.getLogger("tabpilot.jobs")

_ECR_IMAGE = re.compile(
    r"(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
    r"/(?P<repository>[^:@]+)(?::(?P<tag>[^@]+)|@(?P<digest>sha256:[0-9a-f]{64}))?"
)
_DENIED = frozenset({"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"})
_DENIED_TOO = frozenset({"UnrecognizedClientException", "InvalidSignatureException"})
_LOCAL_SCHEMES = frozenset({"", "file", "sqlite"})


def check_batch_setup(runner: BatchRunner, settings: Settings | None) -> None:
    """The queue is usable, the job definition runs `BATCH_COMMAND` against these stores, and
    its image exists (when it is in ECR, where it can be looked up).

    Raises:
        InvalidInput: naming `TABPILOT_RUNNER_URI` and the first problem found.
    """
    options = runner.options
    shown = f"batch://{options.queue}?job_definition={options.definition_ref}"
    with _aws_errors(shown):
        region = runner.batch.meta.region_name
        _check_queue(runner.batch, options, region, shown)
        definition = _find_definition(runner.batch, options, region, shown)
    container = definition.get("containerProperties") or {}
    problem = definition_problem(definition, options, settings)
    if problem:
        raise runner_error(problem, shown, reason="job_definition")
    _check_image(runner.ecr, str(container.get("image") or ""), region, shown)
    if settings is not None:
        _warn_local_stores(settings)


def _check_queue(batch: Any, options: BatchOptions, region: str, shown: str) -> None:
    queues = batch.describe_job_queues(jobQueues=[options.queue]).get("jobQueues", [])
    if not queues:
        raise runner_error(
            f'the AWS Batch job queue "{options.queue}" does not exist in {region}; create it '
            "(terraform apply creates it) or name an existing queue",
            shown,
            reason="no_queue",
        )
    queue = queues[0]
    if queue.get("state") != "ENABLED":
        raise runner_error(
            f'the AWS Batch job queue "{options.queue}" is disabled (state '
            f"{queue.get('state')}); enable it, or jobs would wait in it for ever",
            shown,
            reason="queue_disabled",
        )
    if queue.get("status") == "INVALID":
        raise runner_error(
            f'the AWS Batch job queue "{options.queue}" is INVALID: '
            f"{queue.get('statusReason') or 'no reason given'}",
            shown,
            reason="queue_invalid",
        )


def _find_definition(batch: Any, options: BatchOptions, region: str, shown: str) -> dict[str, Any]:
    """The ACTIVE job definition the URI names: its pinned revision, else the latest."""
    revisions: list[dict[str, Any]] = []
    request: dict[str, Any] = {"jobDefinitionName": options.job_definition, "status": "ACTIVE"}
    while True:
        reply = batch.describe_job_definitions(**request)
        revisions += reply.get("jobDefinitions", [])
        if not reply.get("nextToken"):
            break
        request["nextToken"] = reply["nextToken"]
    revisions = [d for d in revisions if d.get("jobDefinitionName") == options.job_definition]
    if options.revision is not None:
        pinned = [d for d in revisions if d.get("revision") == options.revision]
        if not pinned:
            active = ", ".join(str(d.get("revision")) for d in revisions) or "none"
            raise runner_error(
                f'revision {options.revision} of the AWS Batch job definition "'
                f'{options.job_definition}" is not ACTIVE in {region} (active revisions: '
                f"{active}); name an active one, or none for the latest",
                shown,
                reason="no_job_definition",
            )
        return pinned[0]
    if not revisions:
        raise runner_error(
            f'the AWS Batch job definition "{options.job_definition}" does not exist (or has '
            f"no ACTIVE revision) in {region}; register it (terraform apply does) or name an "
            "existing one",
            shown,
            reason="no_job_definition",
        )
    return max(revisions, key=lambda d: int(d.get("revision") or 0))


def definition_problem(
    definition: dict[str, Any], options: BatchOptions, settings: Settings | None
) -> str | None:
    """What makes `definition` unable to run a Tabpilot job against `settings`' stores."""
    where = f'the AWS Batch job definition "{options.job_definition}:{definition.get("revision")}"'
    container = definition.get("containerProperties")
    if definition.get("type") != "container" or not isinstance(container, dict):
        return f"{where} is not a single-container job definition; Tabpilot runs one container"
    if not container.get("image"):
        return f"{where} names no image; give it the worker image"
    command = list(container.get("command") or [])
    if command != list(BATCH_COMMAND):
        return (
            f"{where} runs {command or 'the image default'}; its command must be exactly "
            f"{list(BATCH_COMMAND)} (Tabpilot passes the job id as the job_id parameter)"
        )
    environment = {e.get("name"): e.get("value") for e in container.get("environment") or []}
    secrets = {s.get("name") for s in container.get("secrets") or []}
    for variable in STORE_VARIABLES:
        if variable in secrets:
            continue  # its value is only known inside the container
        if variable not in environment:
            return (
                f"{where} does not set {variable} in its environment; the container must use "
                "the same stores as this server"
            )
        ours = _setting_of(settings, variable)
        theirs = str(environment[variable])
        if ours is not None and theirs.strip() != ours:
            return (
                f"{where} sets {variable} to {parse_uri(theirs).shown}, but this server uses "
                f"{parse_uri(ours).shown}; make them the same, or jobs would train against "
                "other stores"
            )
    return None


def _setting_of(settings: Settings | None, variable: str) -> str | None:
    if settings is None:
        return None
    return str(getattr(settings, variable.removeprefix("TABPILOT_").lower()))


def _check_image(ecr: Any, image: str, region: str, shown: str) -> None:
    """An ECR image must exist; an image elsewhere cannot be looked up and is logged."""
    from botocore.exceptions import ClientError

    match = _ECR_IMAGE.fullmatch(image)
    if match is None:
        log.info("AWS Batch worker image %s is not in ECR; not checked", image)
        return
    if match.group("region") != region:
        log.info("AWS Batch worker image %s is in another region; not checked", image)
        return
    wanted = (
        {"imageDigest": match.group("digest")}
        if match.group("digest")
        else {"imageTag": match.group("tag") or "latest"}
    )
    try:
        ecr.describe_images(
            registryId=match.group("account"),
            repositoryName=match.group("repository"),
            imageIds=[wanted],
        )
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "RepositoryNotFoundException":
            problem = f'its ECR repository "{match.group("repository")}" does not exist'
        elif code == "ImageNotFoundException":
            problem = f"the repository has no image {next(iter(wanted.values()))}"
        elif code in _DENIED | _DENIED_TOO:
            log.warning("not allowed to look up the worker image %s (%s); not checked", image, code)
            return
        else:
            raise
        raise runner_error(
            f'the worker image "{image}" of the job definition is missing: {problem}; build '
            "and push it (see the README's AWS deployment), or fix the job definition",
            shown,
            reason="no_image",
        ) from None


def _warn_local_stores(settings: Settings) -> None:
    for name, uri in (("metadata", settings.metadata_uri), ("artifact", settings.artifact_uri)):
        if parse_uri(uri).scheme in _LOCAL_SCHEMES:
            log.warning(
                "the %s store %s is on this machine: AWS Batch containers elsewhere cannot "
                "reach it (use DynamoDB and S3)",
                name,
                parse_uri(uri).shown,
            )


@contextlib.contextmanager
def _aws_errors(shown: str) -> Iterator[None]:
    """Turn what boto3 raises when AWS cannot be asked into an error a person can act on."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
        NoRegionError,
    )

    try:
        yield
    except InvalidInput:
        raise
    except NoRegionError:
        raise runner_error(
            "no AWS region is set; set AWS_REGION (or a profile with a region)",
            shown,
            reason="no_region",
        ) from None
    except NoCredentialsError:
        raise runner_error(
            "no AWS credentials were found; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or run with an IAM role",
            shown,
            reason="no_credentials",
        ) from None
    except EndpointConnectionError as exc:
        where = os.environ.get("AWS_ENDPOINT_URL") or exc.kwargs.get("endpoint_url", "AWS Batch")
        raise runner_error(
            f"cannot reach {where}; check the network (and AWS_ENDPOINT_URL for an emulator)",
            shown,
            reason="unreachable",
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        if code in _DENIED | _DENIED_TOO:
            problem = (
                f"AWS denied access ({code}: {error.get('Message', '')}); give this identity "
                "batch:DescribeJobQueues, batch:DescribeJobDefinitions, batch:SubmitJob, "
                "batch:ListJobs, batch:DescribeJobs and batch:TerminateJob"
            )
        else:
            problem = f"AWS Batch answered {code}: {error.get('Message', exc)}"
        raise runner_error(problem, shown, reason="aws_error") from None
