"""`ArtifactStore`: bytes under `/`-separated keys (dataset files, model bundles, reports).

Keys are validated the same way by every backend, so a key that works locally works on S3 and
no key can name anything outside the store: see `validate_key`.

Prefixes are whole path segments: the prefix `jobs/job_1` covers `jobs/job_1` and
`jobs/job_1/...`, never `jobs/job_12`, so deleting one job's artifacts cannot touch another's.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import BinaryIO

from tabpilot.errors import InvalidInput, NotFound

CHUNK_SIZE = 1024 * 1024
MAX_KEY_LENGTH = 1024


def validate_key(key: str) -> str:
    """Return `key` if it is a safe relative key, else raise `InvalidInput`.

    A key is one or more `/`-separated segments; no segment may be empty, `.` or `..`, and the
    key may not contain backslashes, NUL or other control characters. So keys never start with
    `/`, never climb out of the store and mean the same thing on every operating system.
    """
    if not isinstance(key, str) or not key:
        raise InvalidInput("Artifact key is empty; give a relative path such as 'a/b.csv'")
    problem = None
    if len(key) > MAX_KEY_LENGTH:
        problem = f"is longer than {MAX_KEY_LENGTH} characters"
    elif "\\" in key:
        problem = "contains a backslash; separate segments with /"
    elif any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        problem = "contains a control character"
    elif key.startswith("/"):
        problem = "is absolute; keys are relative to the store"
    elif any(segment in ("", ".", "..") for segment in key.split("/")):
        problem = "has an empty, '.' or '..' segment"
    if problem:
        raise InvalidInput(f"Artifact key {key!r} {problem}", details={"key": key})
    return key


def validate_prefix(prefix: str, *, allow_empty: bool) -> str:
    """A prefix is a key (trailing `/` allowed); empty means the whole store where allowed."""
    trimmed = prefix.rstrip("/") if isinstance(prefix, str) else prefix
    if trimmed == "" and allow_empty:
        return ""
    if trimmed == "":
        raise InvalidInput("Artifact prefix is empty; refusing to act on the whole store")
    return validate_key(trimmed)


class ArtifactStore(ABC):
    """Files by key; writes are atomic (a reader sees the old content or the new, never half)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def put_stream(self, key: str, stream: BinaryIO) -> int:
        """Copy `stream` to `key` in chunks, never holding it all in memory; returns its size."""

    def put_file(self, key: str, path: str | Path) -> int:
        """Copy a local file to `key`, streaming; returns its size."""
        with open(path, "rb") as stream:
            return self.put_stream(key, stream)

    @abstractmethod
    def open_read(self, key: str) -> BinaryIO:
        """A binary file object to read `key` from; close it (use `with`). `NotFound` if absent."""

    def get_bytes(self, key: str) -> bytes:
        with self.open_read(key) as stream:
            return stream.read()

    def get_file(self, key: str, dest: str | Path) -> Path:
        """Copy `key` to the local file `dest` (parents created), streaming; returns `dest`."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.open_read(key) as source, open(dest, "wb") as target:
            shutil.copyfileobj(source, target, CHUNK_SIZE)
        return dest

    def local_path_hint(self, key: str) -> Path | None:
        """The local file holding `key`, for zero-copy reads, or None if the backend is remote."""
        validate_key(key)
        return None

    def presigned_url(self, key: str, expires: int = 3600) -> str | None:
        """A URL that downloads `key` without credentials for `expires` seconds, or None when
        the backend has no such URLs (the local store): then serve the bytes from `open_read`.
        """
        validate_key(key)
        return None

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int:
        """Size of `key` in bytes; `NotFound` if absent."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Delete one key; returns whether it existed."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under `prefix` (non-empty); returns how many were deleted."""

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Keys under `prefix` (all keys for ""), sorted."""

    @abstractmethod
    def ping(self) -> None:
        """Return if the store is reachable and writable; raise otherwise."""


def artifact_not_found(key: str) -> NotFound:
    return NotFound(f'Artifact "{key}" not found', details={"key": key})
