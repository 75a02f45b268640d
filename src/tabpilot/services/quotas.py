"""Per-user quotas: how many jobs one user may have waiting or running, and how many bytes of
datasets one user may store (`TABPILOT_MAX_ACTIVE_JOBS`, `TABPILOT_MAX_USER_STORAGE_MB`).

Each check counts from the metadata store at the moment of the request (a listing of the
user's active jobs, the sizes of the user's datasets: light rows, no profiles), so there is no
counter to drift out of step after a crash; uploads still being stored by this process are
added (`storage_reserved`), so uploads sent at once cannot all pass. Requests racing in
different processes can each pass a check that only one of them should: the quotas bound
what a user can pile up, they are not accounting.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

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
    `TABPILOT_MAX_USER_STORAGE_MB` (with `adding=0`: when they have already reached it).
    Uploads of `owner` this process is storing right now (`storage_reserved`) count as
    stored."""
    limit = ctx.settings.max_user_storage_mb * 1024 * 1024
    used = dataset_bytes(ctx, owner=owner) + _reserved.get(_holder(ctx, owner), 0)
    if used + adding > limit or (adding == 0 and used >= limit):
        mib = 1024 * 1024
        raise QuotaExceeded(
            f"Your datasets take {used / mib:,.1f} MiB"
            + (f" and this upload {adding / mib:,.1f} MiB more" if adding else "")
            + f"; this server allows {limit / mib:,.0f} MiB per user. Delete datasets you no "
            "longer need, or raise TABPILOT_MAX_USER_STORAGE_MB.",
            details={"used_bytes": used, "max_user_storage_bytes": limit},
        )


_reserved: dict[tuple[str, str], int] = {}
"""(metadata store, owner) -> bytes of that owner's uploads this process is storing now."""
_reserved_lock = threading.Lock()


@contextmanager
def storage_reserved(ctx: AppContext, *, owner: str, adding: int) -> Iterator[None]:
    """Check the storage quota for `adding` more bytes and hold them against it until the
    block ends (the dataset recorded, or the upload given up).

    Without the hold, uploads sent at once each pass the check before any is recorded (20 at
    once all passed a quota that allowed half of them: tests/security/test_faults.py). With
    it, the uploads one process handles are counted exactly; across several API processes
    the race stays, bounded by their number.
    """
    holder = _holder(ctx, owner)
    with _reserved_lock:
        check_storage_quota(ctx, owner=owner, adding=adding)
        _reserved[holder] = _reserved.get(holder, 0) + adding
    try:
        yield
    finally:
        with _reserved_lock:
            left = _reserved[holder] - adding
            if left:
                _reserved[holder] = left
            else:
                del _reserved[holder]


def _holder(ctx: AppContext, owner: str) -> tuple[str, str]:
    """Whose reservation: an owner of one metadata store (tests run several in a process)."""
    return (ctx.settings.metadata_uri, owner)
