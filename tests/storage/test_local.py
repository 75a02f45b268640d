"""LocalArtifactStore: atomic writes, keys that cannot escape the root, streaming, deletes."""

from __future__ import annotations

import hashlib
import os
import threading
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tabpilot.errors import Conflict, InvalidInput, NotFound
from tabpilot.storage import validate_key
from tabpilot.storage.local import TEMP_PREFIX, LocalArtifactStore

TRAVERSALS = [
    "../x",
    "/etc/passwd",
    "a/../../b",
    "a/..",
    "..",
    ".",
    "./a",
    "a\\b",
    "..\\..\\x",
    "a\x00b",
    "a\nb",
    "",
    "a//b",
    "a/",
    "/",
]


def test_round_trip(local_store: LocalArtifactStore) -> None:
    local_store.put_bytes("datasets/ds_1/data.csv", b"a,b\n1,2\n")
    assert local_store.exists("datasets/ds_1/data.csv")
    assert local_store.get_bytes("datasets/ds_1/data.csv") == b"a,b\n1,2\n"
    assert local_store.size("datasets/ds_1/data.csv") == 8
    with local_store.open_read("datasets/ds_1/data.csv") as stream:
        assert stream.read(3) == b"a,b"
    hint = local_store.local_path_hint("datasets/ds_1/data.csv")
    assert hint == local_store.root / "datasets" / "ds_1" / "data.csv"
    assert local_store.local_path_hint("datasets/ds_1/other.csv") is None
    assert not local_store.exists("datasets/ds_1")  # a folder is not a key
    with pytest.raises(NotFound, match="missing"):
        local_store.get_bytes("missing")
    with pytest.raises(NotFound):
        local_store.open_read("datasets")
    with pytest.raises(NotFound):
        local_store.size("datasets/nope")
    local_store.ping()


def test_overwrite_is_atomic_and_leaves_no_temp_files(local_store: LocalArtifactStore) -> None:
    key = "models/m/model.json"
    old, new = b"o" * 300_000, b"n" * 300_000
    local_store.put_bytes(key, old)
    seen: set[bytes] = set()
    stop = threading.Event()

    def read_constantly() -> None:
        while not stop.is_set():
            seen.add(local_store.get_bytes(key))

    reader = threading.Thread(target=read_constantly)
    reader.start()
    try:
        for i in range(30):
            local_store.put_bytes(key, new if i % 2 == 0 else old)
    finally:
        stop.set()
        reader.join()
    assert seen <= {old, new}  # never a torn or empty file
    leftovers = [p for p in local_store.root.rglob("*") if p.name.startswith(TEMP_PREFIX)]
    assert leftovers == []


def test_failed_write_keeps_the_old_content(local_store: LocalArtifactStore) -> None:
    class Exploding:
        def __init__(self) -> None:
            self.calls = 0

        def read(self, _size: int = -1) -> bytes:
            self.calls += 1
            if self.calls > 2:
                raise OSError("connection reset by peer")
            return b"partial"

    local_store.put_bytes("k/file", b"complete")
    with pytest.raises(OSError, match="reset"):
        local_store.put_stream("k/file", Exploding())  # type: ignore[arg-type]
    assert local_store.get_bytes("k/file") == b"complete"
    assert local_store.list_keys() == ["k/file"]
    assert os.listdir(local_store.root / "k") == ["file"]


@pytest.mark.parametrize("key", TRAVERSALS)
def test_keys_that_could_escape_are_rejected(
    local_store: LocalArtifactStore, key: str, tmp_path: Path
) -> None:
    operations = [
        lambda: local_store.put_bytes(key, b"x"),
        lambda: local_store.get_bytes(key),
        lambda: local_store.open_read(key),
        lambda: local_store.exists(key),
        lambda: local_store.delete(key),
        lambda: local_store.local_path_hint(key),
        lambda: local_store.get_file(key, tmp_path / "out"),
    ]
    for operation in operations:
        with pytest.raises(InvalidInput):
            operation()
    # As prefixes a trailing "/" is allowed, and an empty prefix lists (never deletes) all.
    if key != "a/":
        with pytest.raises(InvalidInput):
            local_store.delete_prefix(key)
    if key not in ("a/", "/", ""):
        with pytest.raises(InvalidInput):
            local_store.list_keys(key)
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()
    assert local_store.list_keys() == []


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


def test_validate_key_accepts_ordinary_keys() -> None:
    for key in ["a", "a/b.csv", "jobs/job_1/model.onnx", "weird name/ünïcode (1).csv", "..a"]:
        assert validate_key(key) == key


def test_put_file_streams_a_large_file(local_store: LocalArtifactStore, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    block = os.urandom(1024 * 1024)
    with open(source, "wb") as out:
        for _ in range(48):
            out.write(block)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    tracemalloc.start()
    try:
        size = local_store.put_file("datasets/big/data.bin", source)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == 48 * 1024 * 1024
    assert peak < 8 * 1024 * 1024, f"put_file held {peak} bytes at once; it should stream"

    copy = local_store.get_file("datasets/big/data.bin", tmp_path / "back" / "copy.bin")
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
    with local_store.open_read("datasets/big/data.bin") as stream:
        assert hashlib.file_digest(stream, "sha256").hexdigest() == digest


def test_concurrent_writers_of_distinct_keys(local_store: LocalArtifactStore) -> None:
    def write(n: int) -> None:
        for i in range(20):
            local_store.put_bytes(f"jobs/job_{n}/part_{i}", f"{n}:{i}".encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    keys = local_store.list_keys("jobs")
    assert len(keys) == 160
    assert local_store.get_bytes("jobs/job_3/part_7") == b"3:7"


def test_delete_prefix_covers_whole_segments_only(local_store: LocalArtifactStore) -> None:
    for key in ["jobs/job_1/model.onnx", "jobs/job_1/reports/eda.html", "jobs/job_12/model.onnx"]:
        local_store.put_bytes(key, b"x")
    local_store.put_bytes("datasets/ds_1.csv", b"x")

    assert local_store.list_keys("jobs/job_1") == [
        "jobs/job_1/model.onnx",
        "jobs/job_1/reports/eda.html",
    ]
    assert local_store.list_keys("jobs/job_1/") == local_store.list_keys("jobs/job_1")
    assert local_store.delete_prefix("jobs/job_1") == 2
    assert local_store.list_keys() == ["datasets/ds_1.csv", "jobs/job_12/model.onnx"]
    assert not (local_store.root / "jobs" / "job_1").exists()
    assert local_store.delete_prefix("jobs/job_1") == 0

    assert local_store.delete_prefix("datasets/ds_1.csv") == 1  # a key is its own prefix
    assert not (local_store.root / "datasets").exists()  # empty folders are pruned
    with pytest.raises(InvalidInput, match="whole store"):
        local_store.delete_prefix("")
    with pytest.raises(InvalidInput, match="whole store"):
        local_store.delete_prefix("/")
    assert local_store.delete("jobs/job_12/model.onnx")
    assert not local_store.delete("jobs/job_12/model.onnx")
    assert local_store.list_keys() == []
    assert local_store.root.is_dir()


def test_file_and_folder_keys_collide_clearly(local_store: LocalArtifactStore) -> None:
    local_store.put_bytes("a/b", b"x")
    with pytest.raises(Conflict, match="collides"):
        local_store.put_bytes("a/b/c", b"y")
    with pytest.raises(Conflict, match="collides"):
        local_store.put_bytes("a", b"y")
    assert local_store.get_bytes("a/b") == b"x"
