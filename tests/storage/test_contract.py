"""The ArtifactStore contract: every backend passes these same tests (see conftest.py).

What `storage/base.py` promises: bytes under `/`-separated keys; atomic writes (a reader sees
the old content or the new, never half, and a failed write leaves the old content); streaming
reads and writes; keys validated the same way everywhere, so none can leave the store; absent
keys raise `NotFound`; prefixes are whole path segments; listings are sorted.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import tracemalloc
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tabpilot.errors import InvalidInput, NotFound
from tabpilot.storage import ArtifactStore, build_artifact_store, validate_key

MIB = 1024 * 1024

# Most memory a backend may hold while streaming a 48 MiB file. S3 holds whole upload parts:
# about three of 8 MiB (two read ahead, one being sent; storage/s3.py PART_SIZE).
STREAM_PEAK_LIMIT = {"local": 8 * MIB, "s3": 32 * MIB}

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
    "x" * 1025,
]

ORDINARY_KEYS = ["a", "a/b.csv", "jobs/job_1/model.onnx", "weird name/ünïcode (1).csv", "..a"]


# -- reading and writing ---------------------------------------------------------------------


def test_round_trip(store: ArtifactStore) -> None:
    store.put_bytes("datasets/ds_1/data.csv", b"a,b\n1,2\n")
    assert store.exists("datasets/ds_1/data.csv")
    assert store.get_bytes("datasets/ds_1/data.csv") == b"a,b\n1,2\n"
    assert store.size("datasets/ds_1/data.csv") == 8
    with store.open_read("datasets/ds_1/data.csv") as stream:
        assert stream.read(3) == b"a,b"
        assert stream.read() == b"\n1,2\n"
    assert not store.exists("datasets/ds_1/other.csv")
    assert not store.exists("datasets/ds_1")  # a folder is not a key
    store.ping()


@pytest.mark.parametrize("key", ORDINARY_KEYS)
def test_ordinary_keys_are_accepted_and_round_trip(store: ArtifactStore, key: str) -> None:
    assert validate_key(key) == key
    store.put_bytes(key, key.encode())
    assert store.get_bytes(key) == key.encode()
    assert store.list_keys() == [key]


def test_empty_content_is_a_file(store: ArtifactStore) -> None:
    store.put_bytes("empty", b"")
    assert store.exists("empty") and store.size("empty") == 0
    assert store.get_bytes("empty") == b""
    assert store.list_keys() == ["empty"]


def test_overwrite_replaces_the_content(store: ArtifactStore) -> None:
    store.put_bytes("k", b"first, longer content")
    store.put_bytes("k", b"second")
    assert store.get_bytes("k") == b"second" and store.size("k") == 6
    assert store.list_keys() == ["k"]


def test_put_stream_and_put_file_return_the_size(store: ArtifactStore, tmp_path: Path) -> None:
    data = os.urandom(3 * MIB + 17)  # more than one chunk, not a whole number of them
    assert store.put_stream("s/stream.bin", io.BytesIO(data)) == len(data)
    assert store.get_bytes("s/stream.bin") == data
    source = tmp_path / "source.bin"
    source.write_bytes(data[:1000])
    assert store.put_file("s/file.bin", source) == 1000
    assert store.get_bytes("s/file.bin") == data[:1000]
    assert store.size("s/file.bin") == 1000


def test_get_file_creates_the_folders_and_returns_the_path(
    store: ArtifactStore, tmp_path: Path
) -> None:
    store.put_bytes("models/m/model.onnx", b"onnx bytes")
    dest = tmp_path / "deep" / "er" / "copy.onnx"
    assert store.get_file("models/m/model.onnx", dest) == dest
    assert dest.read_bytes() == b"onnx bytes"
    store.put_bytes("models/m/model.onnx", b"new")
    store.get_file("models/m/model.onnx", str(dest))  # overwrites; a str path works too
    assert dest.read_bytes() == b"new"


def test_local_path_hint_is_none_or_a_file_with_the_content(store: ArtifactStore) -> None:
    store.put_bytes("datasets/ds_1/data.csv", b"x,y\n")
    hint = store.local_path_hint("datasets/ds_1/data.csv")
    assert hint is None or Path(hint).read_bytes() == b"x,y\n"
    assert store.local_path_hint("datasets/ds_1/missing.csv") is None


def test_presigned_url_is_none_or_downloads_the_content(store: ArtifactStore) -> None:
    store.put_bytes("models/m/model.onnx", b"onnx bytes")
    url = store.presigned_url("models/m/model.onnx", expires=60)
    if url is not None:  # a backend without such URLs serves the bytes itself
        with urllib.request.urlopen(url) as reply:
            assert reply.read() == b"onnx bytes"


def test_a_second_store_on_the_same_uri_sees_the_same_keys(
    store: ArtifactStore, store_uri: str
) -> None:
    store.put_bytes("shared/key", b"written by the first")
    again = build_artifact_store(store_uri)
    assert again.get_bytes("shared/key") == b"written by the first"
    again.put_bytes("shared/other", b"written by the second")
    assert store.list_keys("shared") == ["shared/key", "shared/other"]


# -- missing keys ----------------------------------------------------------------------------


def test_missing_keys_raise_not_found_naming_the_key(store: ArtifactStore, tmp_path: Path) -> None:
    store.put_bytes("datasets/ds_1/data.csv", b"x")
    reads = [
        store.get_bytes,
        store.open_read,
        store.size,
        lambda key: store.get_file(key, tmp_path / "out"),
    ]
    for read in reads:
        for key in ("missing", "datasets/ds_1/nope.csv", "datasets"):  # a folder is not a key
            with pytest.raises(NotFound) as caught:
                read(key)
            assert key in caught.value.message and caught.value.details == {"key": key}
    assert not (tmp_path / "out").exists()


def test_missing_keys_and_prefixes_are_not_errors_elsewhere(store: ArtifactStore) -> None:
    assert not store.exists("missing")
    assert not store.delete("missing")
    assert store.delete_prefix("missing") == 0
    assert store.list_keys("missing") == []
    assert store.list_keys() == []


# -- atomic writes ---------------------------------------------------------------------------


def test_overwrite_is_atomic_for_readers(store: ArtifactStore) -> None:
    key = "models/m/model.json"
    old, new = b"o" * 300_000, b"n" * 300_000
    store.put_bytes(key, old)
    seen: set[bytes] = set()
    stop = threading.Event()

    def read_constantly() -> None:
        while not stop.is_set():
            seen.add(store.get_bytes(key))

    reader = threading.Thread(target=read_constantly)
    reader.start()
    try:
        for i in range(30):
            store.put_bytes(key, new if i % 2 == 0 else old)
    finally:
        stop.set()
        reader.join()
    assert seen <= {old, new}  # never a torn or empty file
    assert store.list_keys() == [key]  # no temporary files show


class Exploding:
    """A stream that fails after two reads, like an upload whose connection drops."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, _size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 2:
            raise OSError("connection reset by peer")
        return b"partial"


def test_failed_write_keeps_the_old_content(store: ArtifactStore) -> None:
    store.put_bytes("k/file", b"complete")
    with pytest.raises(OSError, match="reset"):
        store.put_stream("k/file", Exploding())  # type: ignore[arg-type]
    assert store.get_bytes("k/file") == b"complete"
    assert store.list_keys() == ["k/file"]


def test_failed_first_write_leaves_no_key(store: ArtifactStore) -> None:
    with pytest.raises(OSError, match="reset"):
        store.put_stream("k/new", Exploding())  # type: ignore[arg-type]
    assert not store.exists("k/new")
    assert store.list_keys() == []


# -- keys that could escape ------------------------------------------------------------------


@pytest.mark.parametrize("key", TRAVERSALS)
def test_keys_that_could_escape_are_rejected(
    store: ArtifactStore, key: str, tmp_path: Path
) -> None:
    operations = [
        lambda: store.put_bytes(key, b"x"),
        lambda: store.put_stream(key, io.BytesIO(b"x")),
        lambda: store.get_bytes(key),
        lambda: store.open_read(key),
        lambda: store.exists(key),
        lambda: store.size(key),
        lambda: store.delete(key),
        lambda: store.local_path_hint(key),
        lambda: store.presigned_url(key),
        lambda: store.get_file(key, tmp_path / "out"),
    ]
    for operation in operations:
        with pytest.raises(InvalidInput):
            operation()
    # As prefixes a trailing "/" is allowed, and an empty prefix lists (never deletes) all.
    if key != "a/":
        with pytest.raises(InvalidInput):
            store.delete_prefix(key)
    if key not in ("a/", "/", ""):
        with pytest.raises(InvalidInput):
            store.list_keys(key)
    assert not (tmp_path / "x").exists() and not (tmp_path / "b").exists()
    assert not (tmp_path / "out").exists()
    assert store.list_keys() == []


# -- listing and deleting --------------------------------------------------------------------


def test_prefixes_are_whole_segments(store: ArtifactStore) -> None:
    for key in ["jobs/job_1/model.onnx", "jobs/job_1/reports/eda.html", "jobs/job_12/model.onnx"]:
        store.put_bytes(key, b"x")
    store.put_bytes("datasets/ds_1.csv", b"x")

    assert store.list_keys() == [
        "datasets/ds_1.csv",
        "jobs/job_1/model.onnx",
        "jobs/job_1/reports/eda.html",
        "jobs/job_12/model.onnx",
    ]
    assert store.list_keys("jobs/job_1") == ["jobs/job_1/model.onnx", "jobs/job_1/reports/eda.html"]
    assert store.list_keys("jobs/job_1/") == store.list_keys("jobs/job_1")
    assert store.list_keys("jobs/job") == []
    assert store.list_keys("datasets/ds_1.csv") == ["datasets/ds_1.csv"]  # a key is its own prefix

    assert store.delete_prefix("jobs/job_1") == 2
    assert store.list_keys() == ["datasets/ds_1.csv", "jobs/job_12/model.onnx"]
    assert store.delete_prefix("jobs/job_1") == 0
    assert store.delete_prefix("datasets/ds_1.csv") == 1
    assert store.list_keys() == ["jobs/job_12/model.onnx"]


def test_the_whole_store_is_never_deleted_by_prefix(store: ArtifactStore) -> None:
    store.put_bytes("a/b", b"x")
    for prefix in ("", "/"):
        with pytest.raises(InvalidInput, match="whole store"):
            store.delete_prefix(prefix)
    assert store.list_keys() == ["a/b"]


def test_delete_removes_one_key(store: ArtifactStore) -> None:
    store.put_bytes("a/b", b"x")
    store.put_bytes("a/c", b"y")
    assert store.delete("a/b")
    assert not store.delete("a/b")
    assert not store.exists("a/b")
    assert not store.delete("a")  # a folder is not a key
    assert store.list_keys() == ["a/c"]
    with pytest.raises(NotFound):
        store.get_bytes("a/b")
    store.put_bytes("a/b", b"again")  # a deleted key can be written again
    assert store.get_bytes("a/b") == b"again"


def test_listings_are_sorted(store: ArtifactStore) -> None:
    for key in ["b/2", "a/10", "a/9", "c", "a/1"]:
        store.put_bytes(key, b"x")
    assert store.list_keys() == ["a/1", "a/10", "a/9", "b/2", "c"]


# -- streaming and concurrency ---------------------------------------------------------------


def test_large_files_stream_in_and_out(store: ArtifactStore, backend: str, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    block = os.urandom(MIB)
    with open(source, "wb") as out:
        for _ in range(48):
            out.write(block)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    tracemalloc.start()
    try:
        size = store.put_file("datasets/big/data.bin", source)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == 48 * MIB
    limit = STREAM_PEAK_LIMIT[backend]
    assert peak < limit, f"put_file held {peak} bytes at once; it should stream"

    copy = store.get_file("datasets/big/data.bin", tmp_path / "back" / "copy.bin")
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
    with store.open_read("datasets/big/data.bin") as stream:
        assert hashlib.file_digest(stream, "sha256").hexdigest() == digest


def test_concurrent_writers_of_distinct_keys(store: ArtifactStore) -> None:
    def write(n: int) -> None:
        for i in range(20):
            store.put_bytes(f"jobs/job_{n}/part_{i}", f"{n}:{i}".encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(8)))
    assert len(store.list_keys("jobs")) == 160
    assert store.get_bytes("jobs/job_3/part_7") == b"3:7"


def test_concurrent_deletes_of_one_prefix(store: ArtifactStore) -> None:
    for i in range(50):
        store.put_bytes(f"models/m/part_{i}", b"x")
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda _: store.delete_prefix("models/m"), range(4)))
    assert sum(counts) >= 50 and max(counts) <= 50
    assert store.list_keys() == []
