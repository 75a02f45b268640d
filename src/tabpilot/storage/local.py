"""`LocalArtifactStore`: artifacts as files under one root directory.

Writes go to a temporary file in the destination's directory, are fsynced, then renamed over
the destination (`os.replace` is atomic within a file system), so readers and crashes never see
half a file. Temporary files carry a reserved name prefix; listings skip them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from tabpilot.errors import Conflict, InvalidInput
from tabpilot.storage.base import (
    CHUNK_SIZE,
    ArtifactStore,
    artifact_not_found,
    validate_key,
    validate_prefix,
)

TEMP_PREFIX = ".tabpilot-tmp-"

# Writes content to an open file; returns how many bytes it wrote.
_Fill = Callable[[BinaryIO], int | None]


class LocalArtifactStore(ArtifactStore):
    """Artifacts under `root`, created if missing. Safe to share between threads and processes."""

    def __init__(self, root: str | Path) -> None:
        self._root = Path(root).expanduser().resolve()
        self._root.mkdir(parents=True, exist_ok=True)

    @property
    def root(self) -> Path:
        return self._root

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self._root)!r})"

    def _path(self, key: str) -> Path:
        validate_key(key)
        if any(segment.startswith(TEMP_PREFIX) for segment in key.split("/")):
            raise InvalidInput(f"Artifact key {key!r} uses the reserved prefix {TEMP_PREFIX!r}")
        path = self._root.joinpath(*key.split("/"))
        # Valid keys cannot climb out, but a symlink placed inside the root could.
        resolved = path.resolve()
        if resolved != self._root and self._root not in resolved.parents:
            raise InvalidInput(f"Artifact key {key!r} points outside the store")
        return path

    # -- writing ---------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        self._write(key, lambda out: out.write(data))

    def put_stream(self, key: str, stream: BinaryIO) -> int:
        def copy(out: BinaryIO) -> int:
            total = 0
            while chunk := stream.read(CHUNK_SIZE):
                out.write(chunk)
                total += len(chunk)
            return total

        return self._write(key, copy)

    def _write(self, key: str, fill: _Fill) -> int:
        path = self._path(key)
        fd, tmp = self._temp_file(key, path)
        try:
            with os.fdopen(fd, "wb") as out:
                written = fill(out)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except IsADirectoryError:
            _unlink_quietly(tmp)
            raise _collision(key) from None
        except BaseException:
            _unlink_quietly(tmp)
            raise
        _fsync_dir(path.parent)
        return int(written or 0)

    def _temp_file(self, key: str, path: Path) -> tuple[int, str]:
        # A concurrent delete may prune the parent directory between mkdir and mkstemp.
        for attempt in range(5):
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                return tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
            except (FileExistsError, NotADirectoryError):
                raise _collision(key) from None
            except FileNotFoundError:
                if attempt == 4:
                    raise
        raise AssertionError("unreachable")

    # -- reading ---------------------------------------------------------------------------

    def open_read(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise artifact_not_found(key) from None

    def get_file(self, key: str, dest: str | Path) -> Path:
        path = self._path(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copyfile(path, dest)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise artifact_not_found(key) from None
        return dest

    def local_path_hint(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise artifact_not_found(key)
        return path.stat().st_size

    def list_keys(self, prefix: str = "") -> list[str]:
        prefix = validate_prefix(prefix, allow_empty=True)
        base = self._path(prefix) if prefix else self._root
        if base.is_file():
            return [prefix]
        keys = []
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    keys.append(Path(dirpath, name).relative_to(self._root).as_posix())
        return sorted(keys)

    # -- deleting --------------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
            if path.is_dir() or not path.exists():
                return False
            raise
        self._prune(path.parent)
        return True

    def delete_prefix(self, prefix: str) -> int:
        prefix = validate_prefix(prefix, allow_empty=False)
        path = self._path(prefix)
        if path.is_file():
            return int(self.delete(prefix))
        if not path.is_dir():
            return 0
        count = len(self.list_keys(prefix))
        shutil.rmtree(path, onerror=_ignore_missing)
        self._prune(path.parent)
        return count

    def _prune(self, directory: Path) -> None:
        """Remove now-empty directories from `directory` up to (not including) the root."""
        while directory != self._root and self._root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def ping(self) -> None:
        if not self._root.is_dir():
            raise FileNotFoundError(f"artifact directory {self._root} is missing")
        if not os.access(self._root, os.W_OK | os.X_OK):
            raise PermissionError(f"artifact directory {self._root} is not writable")


def _collision(key: str) -> Conflict:
    return Conflict(
        f"Artifact key {key!r} collides with an existing key: one names a file, the other "
        "treats it as a folder",
        details={"key": key},
    )


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself, so a crash right after a write cannot lose it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _ignore_missing(_func: Any, _path: str, exc_info: Any) -> None:
    # A concurrent delete of the same prefix may remove entries first; that is fine.
    if not isinstance(exc_info[1], FileNotFoundError):
        raise exc_info[1]
