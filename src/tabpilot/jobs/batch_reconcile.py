"""Reconciling Tabpilot jobs with the AWS Batch jobs that run them; no job is left stuck.

The API process runs `reconcile` every `TABPILOT_BATCH_RECONCILE_S` seconds (a thread of
`BatchRunner.start`, or a schedule on AWS Lambda). One pass:

1. Expired leases are reaped as every runner's are (`lease.reap_expired_leases`): a container
   that stopped heartbeating loses its job, which is queued again once, then failed.
2. Each QUEUED or RUNNING job is matched with its Batch jobs (named `tabpilot-<job_id>`):
   - RUNNING, and the Batch job its lease names (the container's worker id carries it) has
     ended: the container is gone, so the job is given up now with Batch's reason (retried once,
     or failed) instead of waiting for the lease.
   - QUEUED, and its latest Batch job ended (it failed, timed out, lost its Spot capacity, or
     succeeded without the job reaching a final state): submitted once more, or failed with
     Batch's reason after `MAX_ATTEMPTS` Batch jobs (or at once, when retrying would only
     repeat the problem: a timeout, an image that cannot be pulled).
   - QUEUED with no Batch job at all for two intervals (the server stopped between recording the
     job and submitting it): submitted.
   A Batch job still pending or running is left alone.

Every status change goes through `MetadataStore.transition_job` (or `lease.give_up_job`),
guarded on the status read, so a worker finishing meanwhile always wins. Two reconcilers at
once (several Lambda instances) may both resubmit a job; the claim is atomic, so one container
runs it and the other exits at once (`run-job` finds the job taken), costing one short Batch
job.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tabpilot.errors import NotFound
from tabpilot.jobs.batch import BatchRefused, batch_job_of_worker
from tabpilot.jobs.lease import MAX_ATTEMPTS, give_up_job, reap_expired_leases
from tabpilot.metadata.base import MAX_PAGE_LIMIT, MetadataStore
from tabpilot.records import JobRecord, JobStatus, utc_now

if TYPE_CHECKING:
    from tabpilot.context import AppContext
    from tabpilot.jobs.batch import BatchRunner

log = logging.getLogger("tabpilot.jobs")

ENDED = frozenset({"SUCCEEDED", "FAILED"})
"""Batch job statuses after which its container is gone."""
LOG_PHASE = "batch"
"""The `phase` of the log events the runner appends (submissions), shown in the job's log."""


def reconcile(runner: BatchRunner, ctx: AppContext, *, interval: float) -> int:
    """One pass (see the module docstring); returns how many jobs it changed or resubmitted."""
    meta = ctx.metadata
    changed = len(reap_expired_leases(meta))
    for job in _active_jobs(meta):
        try:
            changed += _settle(runner, meta, job, grace=2 * interval)
        except Exception:  # one job's trouble (a throttled call) must not hold up the others
            log.exception("job %s: AWS Batch reconciliation failed; will try again", job.id)
    return changed


def _active_jobs(meta: MetadataStore) -> Iterator[JobRecord]:
    cursor = None
    while True:
        page = meta.list_jobs(
            owner=None,
            status=[JobStatus.QUEUED, JobStatus.RUNNING],
            limit=MAX_PAGE_LIMIT,
            cursor=cursor,
        )
        yield from page.items
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def _settle(runner: BatchRunner, meta: MetadataStore, job: JobRecord, *, grace: float) -> int:
    batch_jobs = runner.batch_jobs_of(job.id)
    if runner.listing_is_stale(job.id, batch_jobs):
        return 0  # a submission of ours is not listed yet: judge on the next pass
    if job.status is JobStatus.RUNNING:
        return _settle_running(runner, meta, job, batch_jobs)
    return _settle_queued(runner, meta, job, batch_jobs, grace=grace)


def _settle_running(
    runner: BatchRunner, meta: MetadataStore, job: JobRecord, batch_jobs: list[dict[str, Any]]
) -> int:
    held_by = batch_job_of_worker(job.lease_owner)
    ours = next((s for s in batch_jobs if s["jobId"] == held_by), None)
    if ours is None or ours["status"] not in ENDED:
        return 0  # still running, or not a Batch container's: its lease decides
    reason, retry = describe_end(_details(runner, ours), running=True)
    retry = retry and len(batch_jobs) < MAX_ATTEMPTS
    updated = give_up_job(meta, job, reason=reason, retry=retry)
    if updated is None:
        return 0  # the container recorded the outcome after all, or the job was canceled
    if updated.status is JobStatus.QUEUED:
        _resubmit(runner, meta, updated, reason=None, tries=len(batch_jobs))
    return 1


def _settle_queued(
    runner: BatchRunner,
    meta: MetadataStore,
    job: JobRecord,
    batch_jobs: list[dict[str, Any]],
    *,
    grace: float,
) -> int:
    if not batch_jobs:
        if utc_now() - job.created_at < timedelta(seconds=grace):
            return 0  # being submitted right now, by this process or another
        log.warning("job %s: queued but never submitted to AWS Batch; submitting it", job.id)
        runner.submit(job.id)
        return 1
    latest = batch_jobs[-1]
    if latest["status"] not in ENDED:
        return 0
    current = meta.find_job(job.id, owner=None)
    if current is None or current.status is not JobStatus.QUEUED:
        return 0  # claimed, finished or canceled since the listing
    reason, retry = describe_end(_details(runner, latest), running=False)
    if retry and len(batch_jobs) < MAX_ATTEMPTS and current.attempts < MAX_ATTEMPTS:
        _resubmit(runner, meta, current, reason=reason, tries=len(batch_jobs))
        return 1
    if len(batch_jobs) > 1:
        reason += f"; gave up after {len(batch_jobs)} AWS Batch jobs"
    return 1 if _fail_queued(meta, job.id, reason) else 0


def _details(runner: BatchRunner, summary: dict[str, Any]) -> dict[str, Any]:
    """DescribeJobs of a listed Batch job (its log stream too), or the listing's summary when
    Batch no longer describes it."""
    try:
        return runner.describe_batch_job(summary["jobId"])
    except NotFound:
        return summary


def _resubmit(
    runner: BatchRunner, meta: MetadataStore, job: JobRecord, *, reason: str | None, tries: int
) -> None:
    """Submit the QUEUED `job` once more and say so in its log."""
    try:
        batch_id = runner.submit_batch_job(job.id)
    except BatchRefused as exc:
        _fail_queued(meta, job.id, str(exc))
        return
    said = f"{reason}; " if reason else ""
    message = (
        f"{said}submitted again as AWS Batch job {batch_id} (try {tries + 1} of {MAX_ATTEMPTS})"
    )
    _log_event(meta, job.id, message)
    log.warning("job %s: %s", job.id, message)


def _fail_queued(meta: MetadataStore, job_id: str, reason: str) -> JobRecord | None:
    try:
        failed = meta.transition_job(
            job_id,
            owner=None,
            expect=JobStatus.QUEUED,
            to=JobStatus.FAILED,
            message=reason,
            error=reason,
        )
    except NotFound:  # deleted meanwhile
        return None
    if failed is not None:
        log.warning("job %s: failed: %s", job_id, reason)
    return failed


def fail_refused(meta: MetadataStore, job_id: str, reason: str) -> None:
    """SubmitJob was refused: the QUEUED job fails with Batch's words."""
    _fail_queued(meta, job_id, reason)


def record_submission(meta: MetadataStore, job_id: str, queue: str, batch_id: str) -> None:
    """Say in the job's log which Batch job runs it (where to look in the AWS console)."""
    try:
        _log_event(meta, job_id, f"submitted to the AWS Batch queue {queue} as job {batch_id}")
    except Exception:  # the job runs all the same; the note is for people
        log.exception("job %s: could not record its AWS Batch job %s", job_id, batch_id)


def _log_event(meta: MetadataStore, job_id: str, message: str) -> None:
    with contextlib.suppress(NotFound):  # deleted meanwhile
        meta.append_job_event(
            job_id, owner=None, kind="log", data={"phase": LOG_PHASE, "message": message}
        )


def describe_end(detail: dict[str, Any], *, running: bool) -> tuple[str, bool]:
    """Why the ended Batch job `detail` (a DescribeJobs entry) left its job unfinished, in
    words a user can act on, and whether running it again may help.

    `running`: the job was RUNNING under this Batch job (else it was never claimed by it).
    """
    batch_id = detail.get("jobId", "?")
    status = str(detail.get("status", "?"))
    container = detail.get("container") or {}
    attempts = detail.get("attempts") or [{}]
    last = attempts[-1] or {}
    last_container = last.get("container") or {}
    said = _distinct(
        detail.get("statusReason"),
        last.get("statusReason"),
        container.get("reason"),
        last_container.get("reason"),
    )
    exit_code = container.get("exitCode", last_container.get("exitCode"))
    words = " ".join(said).lower()
    retry = True
    if "timeout" in words or "duration exceeded" in words:
        what = "ran past the job definition's timeout (attemptDurationSeconds)"
        retry = False
    elif "spot" in words or "host ec2" in words:
        what = "lost its Spot capacity (AWS reclaimed the machine)"
    elif "cannotpull" in words or "pull image" in words:
        what = "could not start: the worker image could not be pulled"
        retry = False
    elif status == "SUCCEEDED":
        what = (
            "ended (SUCCEEDED) while the training was still running"
            if running
            else "ended (SUCCEEDED) without starting the training"
        )
    elif exit_code == 137:
        what = "was killed (exit code 137: out of memory, or stopped)"
    else:
        what = f"ended ({status}) before the job finished"
    parts = list(said)
    if exit_code is not None and exit_code != 137:
        parts.append(f"exit code {exit_code}")
    text = f"AWS Batch job {batch_id} {what}"
    if parts:
        text += f": {'; '.join(parts)}"
    stream = container.get("logStreamName") or last_container.get("logStreamName")
    if stream:
        text += f"; its log is in CloudWatch Logs, stream {stream}"
    return text, retry


def _distinct(*texts: Any) -> list[str]:
    seen: list[str] = []
    for text in texts:
        if isinstance(text, str) and text.strip() and text.strip() not in seen:
            seen.append(text.strip())
    return seen
