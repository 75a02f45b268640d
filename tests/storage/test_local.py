"""LocalArtifactStore only: files under one root, temporary files, symlinks, folders.

What every backend promises is tested in test_contract.py; this file keeps what is about
keeping artifacts as files on a local disk.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tabpilot.errors import Conflict, InvalidInput
from tabpilot.storage.local import TEMP_PREFIX, LocalArtifactStore


def temp_files(store: LocalArtifactStore) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.name.startswith(TEMP_PREFIX)]


def test_keys_are_files_under_the_root(local_store: LocalArtifactStore) -> None:
    local_store.put_bytes("datasets/ds_1/data.csv", b"a,b\n1,2\n")
    path = local_store.root / "datasets" / "ds_1" / "data.csv"
    assert path.read_bytes() == b"a,b\n1,2\n"
    assert local_store.local_path_hint("datasets/ds_1/data.csv") == path  # zero-copy reads
    assert local_store.local_path_hint("datasets/ds_1/other.csv") is None


def test_writes_leave_no_temporary_files(local_store: LocalArtifactStore) -> None:
    class Exploding:
        def read(self, _size: int = -1) -> bytes:
            raise OSError("connection reset by peer")

    for i in range(5):
        local_store.put_bytes("k/file", str(i).encode())
    with pytest.raises(OSError, match="reset"):
        local_store.put_stream("k/file", Exploding())  # type: ignore[arg-type]
    assert temp_files(local_store) == []
    assert os.listdir(local_store.root / "k") == ["file"]


def test_temporary_files_are_never_listed(local_store: LocalArtifactStore) -> None:
    local_store.put_bytes("k/file", b"x")
    (local_store.root / "k" / f"{TEMP_PREFIX}abc").write_bytes(b"half")  # a crashed write
    assert local_store.list_keys() == ["k/file"]


def test_reserved_and_symlinked_keys_are_rejected(
    local_store: LocalArtifactStore, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput, match="reserved"):
        local_store.put_bytes(f"a/{TEMP_PREFIX}x", b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (local_store.root / "link").symlink_to(outside)
    with pytest.raises(InvalidInput, match="outside"):
        local_store.put_bytes("link/secret", b"x")
    assert list(outside.iterdir()) == []


def test_deleting_prunes_empty_folders_but_never_the_root(local_store: LocalArtifactStore) -> None:
    for key in ["jobs/job_1/model.onnx", "jobs/job_1/reports/eda.html", "jobs/job_12/model.onnx"]:
        local_store.put_bytes(key, b"x")
    local_store.put_bytes("datasets/ds_1.csv", b"x")

    assert local_store.delete_prefix("jobs/job_1") == 2
    assert not (local_store.root / "jobs" / "job_1").exists()
    assert (local_store.root / "jobs" / "job_12").is_dir()
    assert local_store.delete_prefix("datasets/ds_1.csv") == 1  # a key is its own prefix
    assert not (local_store.root / "datasets").exists()  # empty folders are pruned
    assert local_store.delete("jobs/job_12/model.onnx")
    assert local_store.list_keys() == []
    assert local_store.root.is_dir() and list(local_store.root.iterdir()) == []


def test_file_and_folder_keys_collide_clearly(local_store: LocalArtifactStore) -> None:
    local_store.put_bytes("a/b", b"x")
    with pytest.raises(Conflict, match="collides"):
        local_store.put_bytes("a/b/c", b"y")
    with pytest.raises(Conflict, match="collides"):
        local_store.put_bytes("a", b"y")
    assert local_store.get_bytes("a/b") == b"x"


def test_ping_fails_when_the_root_is_gone(local_store: LocalArtifactStore) -> None:
    local_store.ping()
    shutil.rmtree(local_store.root)
    with pytest.raises(FileNotFoundError, match="missing"):
        local_store.ping()
