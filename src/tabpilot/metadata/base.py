"""`MetadataStore`: where datasets, jobs, models, users and job events are recorded.

Every method on owned records takes a keyword-only `owner`. A user id scopes the call: another
owner's record behaves exactly like a missing one (`NotFound`), so ids never leak across users.
`owner=None` is the unscoped, system view used by workers and the lease reaper, never by code
acting for a user; it is a required argument so that nobody gets the system view by forgetting.

Listings return a `Page`: the items and an opaque cursor for the next page (None on the last).
"""

from __future__ import annotations

import base64
import binascii
import json
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, NamedTuple, Self, TypeVar

from tabpilot.errors import InvalidInput, NotFound
from tabpilot.records import (
    DatasetRecord,
    JobEvent,
    JobRecord,
    JobStatus,
    ModelRecord,
    UserRecord,
)

T = TypeVar("T")

DEFAULT_PAGE_LIMIT = 50
MAX_PAGE_LIMIT = 1000

JOB_SORT_KEYS = ("created_at", "started_at", "finished_at", "status")
"""Sort keys for `list_jobs`; prefix `-` for descending. Ties break on id, in the same order."""
DEFAULT_JOB_SORT = "-created_at"

# Fields that identify a record or its history; updates may not change them.
_IMMUTABLE = frozenset({"id", "owner", "created_at"})
DATASET_UPDATABLE = frozenset({"name", "filename", "profile"})
JOB_UPDATABLE = frozenset({"spec", "progress", "tags", "notes"})
# A job's status and what goes with it change only by `transition_job` (or a claim), which
# writes them with the status event in one transaction.
JOB_LIFECYCLE_FIELDS = frozenset(
    {
        "status",
        "error",
        "model_id",
        "started_at",
        "finished_at",
        "lease_owner",
        "lease_expires_at",
        "attempts",
    }
)
MODEL_UPDATABLE = frozenset({"card", "artifact_prefix", "deploy_key_hash"})
USER_UPDATABLE = frozenset({"name", "token_hash"})


class Page(NamedTuple, Generic[T]):
    """One page of a listing; unpacks as `items, next_cursor`."""

    items: list[T]
    next_cursor: str | None


class MetadataStore(ABC):
    """Records of datasets, jobs, models, users and job events; one implementation per backend.

    Implementations are safe to share between threads, and between processes that open the
    same backend (server and workers).
    """

    # -- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    def ping(self) -> None:
        """Return if the backend answers a trivial query; raise its error otherwise."""

    @abstractmethod
    def close(self) -> None:
        """Release connections; the store is unusable afterwards."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def data_version(self) -> int | None:
        """A number that changes whenever a write is committed to this store, by any connection
        of any process, read without reading any record; None when the backend cannot tell
        cheaply. Readers that keep a record (`tabpilot.metadata.cache.VersionedCache`) may
        reuse it only while this number is the one read before the record; with None they
        read every time."""
        return None

    # -- datasets --------------------------------------------------------------------------

    @abstractmethod
    def create_dataset(self, record: DatasetRecord) -> DatasetRecord:
        """Store a new dataset. Raises `Conflict` if its id exists."""

    @abstractmethod
    def find_dataset(self, dataset_id: str, *, owner: str | None) -> DatasetRecord | None: ...

    def get_dataset(self, dataset_id: str, *, owner: str | None) -> DatasetRecord:
        """Raises `NotFound` if missing or owned by someone else."""
        record = self.find_dataset(dataset_id, owner=owner)
        if record is None:
            raise not_found("Dataset", dataset_id)
        return record

    @abstractmethod
    def list_datasets(
        self, *, owner: str | None, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[DatasetRecord]:
        """Newest first; the records' `profile` is left empty (listings stay light whatever
        the files' width): `get_dataset` has it."""

    @abstractmethod
    def update_dataset(
        self, dataset_id: str, *, owner: str | None, **changes: Any
    ) -> DatasetRecord:
        """Change fields in `DATASET_UPDATABLE`; returns the updated record."""

    @abstractmethod
    def delete_dataset(self, dataset_id: str, *, owner: str | None) -> None:
        """Raises `Conflict` (with `details["jobs"]`) while any job uses the dataset."""

    # -- jobs ------------------------------------------------------------------------------

    @abstractmethod
    def create_job(self, record: JobRecord, *, message: str | None = None) -> JobRecord:
        """Store a new job. Raises `NotFound` unless its dataset belongs to the same owner.

        With a `message`, the job's first status event (previous status None) is appended in
        the same transaction, so a queued job is never seen without it.
        """

    @abstractmethod
    def find_job(self, job_id: str, *, owner: str | None) -> JobRecord | None: ...

    def get_job(self, job_id: str, *, owner: str | None) -> JobRecord:
        """Raises `NotFound` if missing or owned by someone else."""
        record = self.find_job(job_id, owner=owner)
        if record is None:
            raise not_found("Job", job_id)
        return record

    @abstractmethod
    def list_jobs(
        self,
        *,
        owner: str | None,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        tag: str | None = None,
        dataset_id: str | None = None,
        problem_type: str | None = None,
        text: str | None = None,
        sort: str = DEFAULT_JOB_SORT,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[JobRecord]:
        """Jobs matching every given filter.

        Args:
            owner: the user whose jobs to list; None lists everyone's.
            status: one status or several (any of them).
            tag: jobs carrying this exact tag.
            dataset_id: jobs trained on this dataset.
            problem_type: `spec["problem_type"]`, e.g. "binary", "multiclass", "regression".
            text: case-insensitive substring of the job id, dataset id, target, problem type,
                metric, name, dataset name (`spec["dataset_name"]`), tags or notes.
            sort: one of `JOB_SORT_KEYS`, `-` prefixed for descending; jobs never started
                (or not finished) sort as oldest.
            limit: page size, 1 to `MAX_PAGE_LIMIT`.
            cursor: `next_cursor` of the previous page, with the same filters and sort.
        """

    @abstractmethod
    def update_job(
        self,
        job_id: str,
        *,
        owner: str | None,
        if_status: Collection[JobStatus] | None = None,
        if_lease_owner: str | None = None,
        **changes: Any,
    ) -> JobRecord:
        """Change fields in `JOB_UPDATABLE` (spec, progress, tags, notes) atomically.

        The status, lease, timestamps, error and model change only by `transition_job`.
        Returns the updated record.

        Args:
            if_status: apply only if the job's status is one of these, else `Conflict`; this is
                how a finishing worker avoids overwriting a cancel.
            if_lease_owner: apply only if this worker holds the lease, else `Conflict`.
        """

    @abstractmethod
    def delete_job(self, job_id: str, *, owner: str | None) -> None:
        """Delete the job with its events, tags and model records (not their artifacts)."""

    @abstractmethod
    def transition_job(
        self,
        job_id: str,
        *,
        owner: str | None,
        expect: JobStatus | Collection[JobStatus],
        to: JobStatus,
        message: str | None = None,
        held_by: str | None = None,
        worker_id: str | None = None,
        lease_seconds: float | None = None,
        error: str | None = None,
        model_id: str | None = None,
        progress: dict[str, Any] | None = None,
        model: ModelRecord | None = None,
    ) -> JobRecord | None:
        """Move a job from one of the `expect`ed statuses to `to`, in one transaction.

        The new status, the lease and timestamps that go with it, the given fields and one
        "status" event (see `tabpilot.metadata.transitions`) are written together or not at
        all. Of several callers racing from the same status exactly one wins.

        Args:
            expect: the status (or statuses) the job must be in; each must be allowed to move
                to `to` by `tabpilot.records.JOB_TRANSITIONS`.
            to: the new status.
            message: the event's words; default: one per status (the error, for FAILED).
            held_by: move the job only while this worker holds its lease.
            worker_id, lease_seconds: the lease a job moving to RUNNING gets.
            error: the error of a job moving to FAILED (default: the message).
            model_id: the model of a job moving to SUCCEEDED.
            progress: replaces `job.progress`.
            model: the model record a job moving to SUCCEEDED produced (`model_id` defaults
                to its id). It is stored in the same transaction, so it exists exactly when the
                job succeeded: a worker that loses the race (a cancel) or dies before the
                commit leaves no model on a job that did not succeed.

        Returns:
            The updated job, or None, changing nothing, when the job is not in an expected
            status or `held_by` does not hold it (someone else moved it first).

        Raises:
            NotFound: the job does not exist (or belongs to someone else).
            InvalidInput: a change `JOB_TRANSITIONS` does not allow (a programming error).
        """

    @abstractmethod
    def claim_next_job(self, *, worker_id: str, lease_seconds: float) -> JobRecord | None:
        """Atomically move the oldest QUEUED job to RUNNING, leased to `worker_id`.

        The same transition as `transition_job(expect=QUEUED, to=RUNNING, ...)`: sets
        `started_at`, `lease_owner`, `lease_expires_at`, increments `attempts` and appends the
        "running" status event. Each queued job is claimed by exactly one caller, however many
        claim at once. Returns None when nothing is queued.
        """

    @abstractmethod
    def claim_job(self, job_id: str, *, worker_id: str, lease_seconds: float) -> JobRecord:
        """Like `claim_next_job` for one given job (`tabpilot run-job JOB_ID`).

        Raises `NotFound` if it does not exist and `Conflict` unless it is QUEUED.
        """

    @abstractmethod
    def heartbeat(self, job_id: str, *, worker_id: str, lease_seconds: float) -> bool:
        """Extend the lease of a RUNNING job held by `worker_id` to now + `lease_seconds`.

        Returns False, changing nothing, when the worker no longer holds it (the job was
        canceled, finished, or reclaimed after the lease expired): the worker should stop.
        """

    @abstractmethod
    def list_expired_leases(self, now: datetime | None = None) -> list[JobRecord]:
        """RUNNING jobs whose lease expired before `now` (default: the current time)."""

    @abstractmethod
    def append_job_event(
        self, job_id: str, *, owner: str | None, kind: str, data: dict[str, Any] | None = None
    ) -> JobEvent:
        """Append to the job's event log; `seq` is the job's next number, from 1, gap-free."""

    @abstractmethod
    def list_job_events(
        self,
        job_id: str,
        *,
        owner: str | None,
        after_seq: int = 0,
        limit: int = MAX_PAGE_LIMIT,
    ) -> list[JobEvent]:
        """Events with `seq > after_seq`, in order. Raises `NotFound` for an unknown job."""

    # -- models ----------------------------------------------------------------------------

    @abstractmethod
    def create_model(self, record: ModelRecord) -> ModelRecord:
        """Store a new model. Raises `NotFound` unless its job belongs to the same owner."""

    @abstractmethod
    def find_model(self, model_id: str, *, owner: str | None) -> ModelRecord | None: ...

    def get_model(self, model_id: str, *, owner: str | None) -> ModelRecord:
        """Raises `NotFound` if missing or owned by someone else."""
        record = self.find_model(model_id, owner=owner)
        if record is None:
            raise not_found("Model", model_id)
        return record

    @abstractmethod
    def find_model_by_deploy_key_hash(self, key_hash: str) -> ModelRecord | None:
        """The deployed model whose prediction key hashes to `key_hash`."""

    @abstractmethod
    def list_models(
        self,
        *,
        owner: str | None,
        job_id: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[ModelRecord]:
        """Newest first."""

    @abstractmethod
    def update_model(self, model_id: str, *, owner: str | None, **changes: Any) -> ModelRecord:
        """Change fields in `MODEL_UPDATABLE`; returns the updated record."""

    @abstractmethod
    def delete_model(self, model_id: str, *, owner: str | None) -> None: ...

    # -- users -----------------------------------------------------------------------------

    @abstractmethod
    def create_user(self, record: UserRecord) -> UserRecord:
        """Raises `Conflict` if the name (or token hash) is taken."""

    @abstractmethod
    def find_user(self, user_id: str) -> UserRecord | None: ...

    def get_user(self, user_id: str) -> UserRecord:
        record = self.find_user(user_id)
        if record is None:
            raise not_found("User", user_id)
        return record

    @abstractmethod
    def find_user_by_name(self, name: str) -> UserRecord | None: ...

    @abstractmethod
    def find_user_by_token_hash(self, token_hash: str) -> UserRecord | None: ...

    @abstractmethod
    def list_users(
        self, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[UserRecord]:
        """Oldest first."""

    @abstractmethod
    def update_user(self, user_id: str, **changes: Any) -> UserRecord:
        """Change fields in `USER_UPDATABLE`; raises `Conflict` if the new name is taken."""

    @abstractmethod
    def delete_user(self, user_id: str) -> None:
        """Raises `Conflict` while the user owns datasets, jobs or models."""


# -- helpers shared by backends ----------------------------------------------------------------


def job_search_text(record: JobRecord) -> str:
    """What a `text` filter of `list_jobs` searches, lower case, in every store: the job's id,
    dataset, target, problem type, metric, names, tags and notes."""
    spec = record.spec or {}
    fields = ("target", "problem_type", "metric", "name", "dataset_name")
    parts = [
        record.id,
        record.dataset_id,
        *(str(spec[k]) for k in fields if spec.get(k)),
        *record.tags,
        record.notes,
    ]
    return "\n".join(part for part in parts if part).lower()


def not_found(kind: str, record_id: str) -> NotFound:
    return NotFound(f'{kind} "{record_id}" not found', details={"id": record_id})


def check_changes(kind: str, changes: dict[str, Any], allowed: frozenset[str]) -> None:
    """Reject updates of unknown or immutable fields; a programming error, said plainly."""
    bad = sorted(set(changes) - allowed)
    if bad:
        fixed = sorted(set(bad) & _IMMUTABLE)
        reason = f"{', '.join(fixed)} cannot change" if fixed else "unknown or read-only"
        if kind == "job" and set(bad) & JOB_LIFECYCLE_FIELDS:
            reason += " (a job's status, lease and outcome change by transition_job)"
        raise InvalidInput(
            f"Cannot update {kind} field(s) {', '.join(bad)}: {reason}; "
            f"updatable fields are {', '.join(sorted(allowed))}"
        )


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE_LIMIT:
        raise InvalidInput(f"limit must be between 1 and {MAX_PAGE_LIMIT}, not {limit!r}")
    return limit


def parse_job_sort(sort: str) -> tuple[str, bool]:
    """`"-created_at"` → `("created_at", True)`; raises `InvalidInput` for unknown keys."""
    descending = sort.startswith("-")
    key = sort[1:] if descending else sort
    if key not in JOB_SORT_KEYS:
        choices = ", ".join(f"{k}, -{k}" for k in JOB_SORT_KEYS)
        raise InvalidInput(f'Cannot sort jobs by "{sort}"; choose one of {choices}')
    return key, descending


def parse_statuses(
    status: JobStatus | str | Iterable[JobStatus | str] | None,
) -> list[JobStatus] | None:
    if status is None:
        return None
    values = [status] if isinstance(status, str) else list(status)
    try:
        return [JobStatus(v) for v in values]
    except ValueError:
        choices = ", ".join(s.value for s in JobStatus)
        raise InvalidInput(
            f"Unknown job status in {[str(v) for v in values]}; choose from {choices}"
        ) from None


def encode_cursor(sort: str, value: str | None, last_id: str) -> str:
    """An opaque cursor: the sort it belongs to and the last item's sort value and id."""
    raw = json.dumps([sort, value, last_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[str | None, str]:
    """The `(value, last_id)` of a cursor made by `encode_cursor` for the same sort."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_sort, value, last_id = json.loads(raw)
        if cursor_sort != sort or not isinstance(last_id, str):
            raise ValueError(cursor_sort)
        if value is not None and not isinstance(value, str):
            raise ValueError(value)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput(
            "The cursor does not belong to this listing (or sort); "
            "request the first page again without a cursor"
        ) from None
    return value, last_id
