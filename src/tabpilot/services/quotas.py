"""Per-user quotas: how many jobs one user may have waiting or running, and how many bytes of
datasets one user may store (`TABPILOT_MAX_ACTIVE_JOBS`, `TABPILOT_MAX_USER_STORAGE_MB`).

Each check counts from the metadata store at the moment of the request (a listing of the
user's active jobs, the sizes of the user's datasets: light rows, no profiles), so there is no
counter to drift out of step after a crash. Two requests racing can each pass a check that
only one of them should: the quotas bound what a user can pile up, they are not accounting.
"""

from __future__ import annotations

from tabpilot.context import AppContext
from tabpilot.errors import QuotaExceeded
from tabpilot.records import JobStatus

ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
_PAGE = 1000


def check_job_quota(ctx: AppContext, *, owner: str) -> None:
    """Raises `QuotaExceeded` when `owner` already has `TABPILOT_MAX_ACTIVE_JOBS` jobs queued
    or running."""
    limit = ctx.settings.max_active_jobs
    page = ctx.metadata.list_jobs(owner=owner, status=ACTIVE, limit=min(limit, _PAGE))
    if len(page.items) >= limit:
        raise QuotaExceeded(
            f"You already have {limit} jobs queued or running, this server's limit per user. "
            "Wait for some to finish or cancel some, or raise TABPILOT_MAX_ACTIVE_JOBS.",
            details={"max_active_jobs": limit},
        )


def dataset_bytes(ctx: AppContext, *, owner: str) -> int:
    """Bytes of every dataset file `owner` has stored (as uploaded)."""
    total = 0
    cursor: str | None = None
    while True:
        page = ctx.metadata.list_datasets(owner=owner, limit=_PAGE, cursor=cursor)
        total += sum(record.n_bytes for record in page.items)
        if page.next_cursor is None:
            return total
        cursor = page.next_cursor


def check_storage_quota(ctx: AppContext, *, owner: str, adding: int = 0) -> None:
    """Raises `QuotaExceeded` when `owner`'s datasets plus `adding` bytes pass
    `TABPILOT_MAX_USER_STORAGE_MB` (with `adding=0`: when they have already reached it)."""
    limit = ctx.settings.max_user_storage_mb * 1024 * 1024
    used = dataset_bytes(ctx, owner=owner)
    if used + adding > limit or (adding == 0 and used >= limit):
        mib = 1024 * 1024
        raise QuotaExceeded(
            f"Your datasets take {used / mib:,.1f} MiB"
            + (f" and this upload {adding / mib:,.1f} MiB more" if adding else "")
            + f"; this server allows {limit / mib:,.0f} MiB per user. Delete datasets you no "
            "longer need, or raise TABPILOT_MAX_USER_STORAGE_MB.",
            details={"used_bytes": used, "max_user_storage_bytes": limit},
        )
