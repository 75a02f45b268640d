"""`BatchRunner` (`batch://QUEUE?job_definition=NAME`): each job runs as one AWS Batch job.

Submitting is the Batch way, with nothing but the job id: the job definition's command is
`BATCH_COMMAND` (`tabpilot run-job Ref::job_id`) and SubmitJob passes
`parameters={"job_id": ...}`, which Batch substitutes for `Ref::job_id`. The store URIs are the
job definition's environment (Terraform sets them); the worker reads everything else from the
stores, so no container override is ever sent. Cancelling is TerminateJob.

The API process reconciles on an interval (`TABPILOT_BATCH_RECONCILE_S`, see
`batch_reconcile.py`): a job whose Batch job ended (failed, timed out, lost its Spot capacity, or
succeeded without the job reaching a final state) is retried once or failed with Batch's reason.
At start-up (`check`) a missing queue, job definition or image is named, instead of every job
failing at once without a log.

boto3 is imported only when a client is made, so the constants here (the Terraform tests and
`tabpilot run-job` read them) cost nothing to import.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tabpilot.backends import BackendURI, parse_uri
from tabpilot.errors import InvalidInput, MissingDependency, NotFound
from tabpilot.jobs.base import JobRunner
from tabpilot.jobs.lease import make_worker_id

if TYPE_CHECKING:
    from tabpilot.context import AppContext
    from tabpilot.settings import Settings  # not at run time: settings imports jobs.registry

log = logging.getLogger("tabpilot.jobs")

BATCH_COMMAND: tuple[str, ...] = ("tabpilot", "run-job", "Ref::job_id")
"""The job definition's command: the one place it is written (Terraform's is checked against it)."""
JOB_ID_PARAMETER = "job_id"
"""The SubmitJob parameter Batch substitutes for `Ref::job_id` in `BATCH_COMMAND`."""
JOB_NAME_PREFIX = "tabpilot-"
"""Batch job names are `tabpilot-<job_id>`: how the runner finds a job's Batch jobs again."""
STORE_VARIABLES = ("TABPILOT_METADATA_URI", "TABPILOT_ARTIFACT_URI")
"""What the job definition's environment must give the container: the API's own stores."""
SETTING = "TABPILOT_RUNNER_URI"
CANCEL_REASON = "canceled in Tabpilot"
LISTING_LAG_SECONDS = 600.0
"""How long a Batch job this process submitted may be missing from ListJobs before it counts as
gone (ListJobs is eventually consistent)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_DEFINITION = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9_-]{0,127})(:(?P<revision>[1-9][0-9]*))?")
_OPTIONS = frozenset({"job_definition"})
_BATCH_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(?::[0-9]+)?"
"""An AWS Batch job id (a UUID; `:N` for a child of an array job)."""


@dataclass(frozen=True)
class BatchOptions:
    """The parts of a `batch://QUEUE?job_definition=NAME[:REVISION]` runner URI."""

    queue: str
    job_definition: str
    """The job definition's name, without the revision."""
    revision: int | None = None
    """A pinned revision; None: the latest ACTIVE one."""

    @property
    def definition_ref(self) -> str:
        """What SubmitJob is given: `NAME` or `NAME:REVISION`."""
        return (
            self.job_definition
            if self.revision is None
            else f"{self.job_definition}:{self.revision}"
        )


def read_batch_uri(uri: BackendURI) -> BatchOptions | str:
    """The options of a `batch://` URI, or what is wrong with them (for the registry's check)."""
    problems = []
    queue = uri.netloc
    if not _NAME.fullmatch(queue):
        problems.append(
            f'the job queue "{queue}" is not a queue name: write batch://QUEUE?job_definition=NAME '
            "with the queue's name (up to 128 letters, digits, hyphens and underscores), not "
            "its ARN"
        )
    if uri.path not in ("", "/"):
        problems.append(f'"{uri.path}" after the queue name means nothing; remove it')
    unknown = sorted(set(uri.query) - _OPTIONS)
    if unknown:
        problems.append(f"unknown option(s) {', '.join(unknown)}; batch:// takes job_definition")
    definition = uri.param("job_definition")
    match = _DEFINITION.fullmatch(definition)
    if not definition:
        problems.append("job_definition is missing: write batch://QUEUE?job_definition=NAME")
    elif match is None:
        problems.append(
            f'job_definition "{definition}" is not a job definition name (NAME or '
            "NAME:REVISION; letters, digits, hyphens and underscores)"
        )
    if problems or match is None:
        return "; ".join(problems)
    revision = match.group("revision")
    return BatchOptions(queue, match.group("name"), int(revision) if revision else None)


def batch_options(uri: str | BackendURI) -> BatchOptions:
    """`read_batch_uri`, raising the error naming `TABPILOT_RUNNER_URI`."""
    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    read = read_batch_uri(parsed)
    if isinstance(read, str):
        raise runner_error(read, parsed.shown)
    return read


def runner_error(problem: str, uri: str, *, reason: str = "invalid") -> InvalidInput:
    return InvalidInput(
        f"{SETTING}: {problem}", details={"setting": SETTING, "uri": uri, "reason": reason}
    )


def batch_job_name(job_id: str) -> str:
    return f"{JOB_NAME_PREFIX}{job_id}"


def container_worker_id() -> str | None:
    """The worker id of `tabpilot run-job` inside a Batch container: `batch-<AWS Batch job id>-…`,
    so a RUNNING job's lease names the Batch job running it. None outside Batch."""
    batch_job = os.environ.get("AWS_BATCH_JOB_ID", "").strip()
    if not re.fullmatch(_BATCH_ID, batch_job):
        return None
    return make_worker_id(f"batch-{batch_job}")


def batch_job_of_worker(worker_id: str | None) -> str | None:
    """The Batch job id inside a worker id made by `container_worker_id`, or None."""
    match = re.fullmatch(rf"batch-({_BATCH_ID})-.+", worker_id or "")
    return match.group(1) if match else None


def aws_client(service: str) -> Any:
    """A boto3 client ("batch", "ecr") configured the standard AWS way (region, credentials,
    endpoint).

    Raises:
        MissingDependency: without boto3 (the `aws` extra).
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise MissingDependency(
            "The AWS Batch runner needs boto3, which is not installed; install it with: "
            "pip install 'tabpilot[aws]'"
        ) from None
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    return boto3.session.Session().client(service, config=config)


class BatchRunner(JobRunner):
    """Submits each job to an AWS Batch queue and reconciles what Batch reports.

    Args:
        options: the queue and job definition (`batch_options`).
        reconcile_seconds: how often `start` reconciles; None: `TABPILOT_BATCH_RECONCILE_S`.
        clients: boto3 clients to use instead of new ones, by service ("batch", "ecr").
    """

    def __init__(
        self,
        options: BatchOptions,
        *,
        reconcile_seconds: float | None = None,
        clients: dict[str, Any] | None = None,
    ) -> None:
        self.options = options
        self.reconcile_seconds = reconcile_seconds
        self._clients = dict(clients or {})
        self._ctx: AppContext | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        # job id -> (monotonic time, Batch job id) of this process's latest submission
        self._submitted: dict[str, tuple[float, str]] = {}
        self._checked = False

    # -- clients -------------------------------------------------------------------------------

    @property
    def batch(self) -> Any:
        return self._client("batch")

    @property
    def ecr(self) -> Any:
        """Only the start-up check looks images up."""
        return self._client("ecr")

    def _client(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                self._clients[service] = aws_client(service)
            return self._clients[service]

    # -- JobRunner -----------------------------------------------------------------------------

    def bind(self, ctx: AppContext) -> None:
        """Use `ctx`'s stores (to record submissions) without starting anything: for a process
        that reconciles on a schedule instead of a thread (AWS Lambda)."""
        self._ctx = ctx

    def start(self, ctx: AppContext) -> None:
        """Check the queue, job definition and image, settle what a previous process left,
        then reconcile every `TABPILOT_BATCH_RECONCILE_S` seconds in a thread."""
        if self._thread is not None:
            raise RuntimeError("BatchRunner is already started")
        self.bind(ctx)
        if not self._checked:  # `tabpilot serve` checks before listening
            self.check(ctx.settings)
        self._stopping.clear()
        self._safe_reconcile()
        interval = self.reconcile_seconds or ctx.settings.batch_reconcile_s
        self._thread = threading.Thread(
            target=self._reconcile_forever, args=(interval,), name="tabpilot-batch", daemon=True
        )
        self._thread.start()
        log.info(
            "AWS Batch runner started: queue %s, job definition %s; reconciling every %g s",
            self.options.queue,
            self.options.definition_ref,
            interval,
        )

    def stop(self) -> None:
        """Stop reconciling; the Batch jobs run on (their containers record the outcome)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, job_id: str) -> None:
        """SubmitJob with only the job id; a refusal fails the job with Batch's words.

        Raises:
            Exception: from boto3 when Batch cannot be reached at all (the job service then
                fails the job); a refusal by Batch is recorded here instead.
        """
        from tabpilot.jobs.batch_reconcile import fail_refused, record_submission

        try:
            batch_id = self.submit_batch_job(job_id)
        except BatchRefused as exc:
            if self._ctx is None:
                raise
            fail_refused(self._ctx.metadata, job_id, str(exc))
            return
        if self._ctx is not None:
            record_submission(self._ctx.metadata, job_id, self.options.queue, batch_id)

    def cancel(self, job_id: str) -> None:
        """TerminateJob for the job's Batch jobs not yet ended, and its latest in any case
        (a listing can lag behind; terminating an ended Batch job changes nothing). Best effort."""
        from tabpilot.jobs.batch_reconcile import ENDED

        try:
            listed = self.batch_jobs_of(job_id)
            targets = {s["jobId"] for s in listed if s["status"] not in ENDED}
            if listed:
                targets.add(listed[-1]["jobId"])
            with self._lock:
                if job_id in self._submitted:
                    targets.add(self._submitted[job_id][1])
            for batch_id in sorted(targets):
                self.batch.terminate_job(jobId=batch_id, reason=CANCEL_REASON)
                log.info("job %s: terminated AWS Batch job %s", job_id, batch_id)
        except Exception:
            log.exception("job %s: could not terminate its AWS Batch job", job_id)

    # -- Batch calls ---------------------------------------------------------------------------

    def submit_batch_job(self, job_id: str) -> str:
        """SubmitJob for `job_id`; returns the Batch job id.

        Raises:
            BatchRefused: Batch answered with an error (a missing queue, a bad definition).
        """
        from botocore.exceptions import ClientError

        try:
            reply = self.batch.submit_job(
                jobName=batch_job_name(job_id),
                jobQueue=self.options.queue,
                jobDefinition=self.options.definition_ref,
                parameters={JOB_ID_PARAMETER: job_id},
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise BatchRefused(
                f"AWS Batch refused the job ({error.get('Code', 'error')}: "
                f"{error.get('Message', exc)}); check the queue {self.options.queue} and the "
                f"job definition {self.options.definition_ref}"
            ) from None
        now = time.monotonic()
        with self._lock:
            self._submitted = {
                k: v for k, v in self._submitted.items() if now - v[0] < LISTING_LAG_SECONDS
            }
            self._submitted[job_id] = (now, str(reply["jobId"]))
        log.info("job %s: submitted as AWS Batch job %s", job_id, reply["jobId"])
        return str(reply["jobId"])

    def batch_jobs_of(self, job_id: str) -> list[dict[str, Any]]:
        """The summaries of every Batch job submitted for `job_id` (any status), oldest first."""
        found: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "jobQueue": self.options.queue,
            # With a filter, ListJobs returns jobs in every status.
            "filters": [{"name": "JOB_NAME", "values": [batch_job_name(job_id)]}],
        }
        while True:
            reply = self.batch.list_jobs(**request)
            found += [
                s
                for s in reply.get("jobSummaryList", [])
                if s.get("jobName") == batch_job_name(job_id)
            ]
            if not reply.get("nextToken"):
                break
            request["nextToken"] = reply["nextToken"]
        return sorted(found, key=lambda s: (s.get("createdAt", 0), s["jobId"]))

    def describe_batch_job(self, batch_id: str) -> dict[str, Any]:
        """DescribeJobs for one Batch job (its reason, exit code and log stream)."""
        jobs = self.batch.describe_jobs(jobs=[batch_id]).get("jobs", [])
        if not jobs:
            raise NotFound(f"AWS Batch job {batch_id} is not known to AWS Batch any more")
        return dict(jobs[0])

    def listing_is_stale(self, job_id: str, batch_jobs: list[dict[str, Any]]) -> bool:
        """Whether `batch_jobs` (a listing) misses the Batch job this process submitted for
        `job_id` in the last `LISTING_LAG_SECONDS`: ListJobs may lag behind SubmitJob."""
        with self._lock:
            when, batch_id = self._submitted.get(job_id, (-LISTING_LAG_SECONDS, ""))
        if time.monotonic() - when >= LISTING_LAG_SECONDS:
            return False
        return all(s.get("jobId") != batch_id for s in batch_jobs)

    # -- checks and reconciliation -------------------------------------------------------------

    def check(self, settings: Settings | None = None) -> None:
        """Raise a clear error naming what is missing: the queue, the job definition (or its
        command, or stores other than `settings`'), or the image.

        Raises:
            InvalidInput: naming `TABPILOT_RUNNER_URI` and the problem.
        """
        from tabpilot.jobs.batch_check import check_batch_setup

        check_batch_setup(self, settings)
        self._checked = True

    def reconcile_once(self, ctx: AppContext | None = None) -> int:
        """One reconciliation pass (see `batch_reconcile.py`); how many jobs it changed."""
        from tabpilot.jobs.batch_reconcile import reconcile

        ctx = ctx or self._ctx
        if ctx is None:
            raise RuntimeError("BatchRunner.reconcile_once needs a context (or bind(ctx) first)")
        if self._ctx is None:
            self.bind(ctx)
        interval = self.reconcile_seconds or ctx.settings.batch_reconcile_s
        return reconcile(self, ctx, interval=interval)

    def _safe_reconcile(self) -> None:
        try:
            self.reconcile_once()
        except Exception:  # AWS or the store had a blip: the next pass tries again
            log.exception("AWS Batch reconciliation failed; will try again")

    def _reconcile_forever(self, interval: float) -> None:
        while not self._stopping.wait(interval):
            self._safe_reconcile()


class BatchRefused(Exception):
    """AWS Batch answered SubmitJob with an error; the message says what and where to look."""
