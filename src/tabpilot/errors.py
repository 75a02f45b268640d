"""Domain errors, one hierarchy for the engine, services, API and CLI.

Every error carries a message a user can act on: what was wrong and what to do about it.
Every error a user can see is defined here, in domain words: the API maps each class to an HTTP
status (`tabpilot.api.errors.ERROR_STATUS`) and the CLI prints them without a traceback.

    TabpilotError
    ├── InvalidInput
    │   ├── DataFileError
    │   └── UploadTooLarge
    ├── NotFound
    ├── Conflict
    ├── Unauthenticated
    ├── Forbidden
    ├── QuotaExceeded
    ├── MissingDependency
    ├── StorageFull
    └── ChildFailed
"""

from __future__ import annotations

from typing import Any


class TabpilotError(Exception):
    """Base of every error a user may see."""

    code = "error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(TabpilotError):
    """The user's input (file, option, row) cannot be used as given."""

    code = "invalid_input"


class DataFileError(InvalidInput):
    """A data file cannot be read; names the file and, where known, the line."""

    code = "invalid_data_file"

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, **kw: Any
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message, **kw)
        self.path = path
        self.line = line
        self.details.update({k: v for k, v in (("path", path), ("line", line)) if v is not None})


class UploadTooLarge(InvalidInput):
    """An upload is bigger than this server's limit (`TABPILOT_MAX_UPLOAD_MB`)."""

    code = "too_large"


class NotFound(TabpilotError):
    """The thing asked for does not exist, or belongs to someone else."""

    code = "not_found"


class Conflict(TabpilotError):
    """The request clashes with the current state (a name taken, a job already finished)."""

    code = "conflict"


class Unauthenticated(TabpilotError):
    """The caller brought no valid user credentials (no token, a wrong or revoked one)."""

    code = "unauthenticated"


class Forbidden(TabpilotError):
    """The caller is known but may not do this (a deploy key used beyond its model's
    predictions)."""

    code = "forbidden"


class TooManyRequests(TabpilotError):
    """A bounded resource (open event streams, say) is at its limit; try again later."""

    code = "too_many_requests"


class MissingDependency(TabpilotError):
    """An optional extra is needed for this feature; says which `pip install` fixes it."""

    code = "missing_dependency"


class QuotaExceeded(TabpilotError):
    """A per-user or per-server limit on what may exist at once (jobs waiting or running,
    bytes stored, files being read) is reached; the message names the setting."""

    code = "quota_exceeded"


class StorageFull(TabpilotError):
    """The server's disk (or the store's) has no room left for what a request would write;
    nothing was half-written."""

    code = "storage_full"


STORAGE_FULL_MESSAGE = (
    "The server's storage is full, so nothing was saved. Ask its operator to free space (or "
    "delete datasets and jobs you no longer need), then try again."
)


def is_storage_full(exc: BaseException) -> bool:
    """Whether `exc`, or an error it was raised from, means the disk is full: ENOSPC or EDQUOT
    from the operating system, or SQLite's "database or disk is full"."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


class ChildFailed(TabpilotError):
    """A child process doing work for the server died (out of memory, killed) before
    answering, or failed with something other than a `TabpilotError`."""

    code = "processing_failed"
