"""S3ArtifactStore only: the prefix, where S3 differs from files, multipart, ranged reads, errors.

What every backend promises is tested in test_contract.py (against the same moto server over
HTTP); this file keeps what is about keeping artifacts as objects in a bucket.
"""

from __future__ import annotations

import io
import os
import urllib.error
import urllib.request
from typing import Any

import pytest

from tabpilot.errors import Conflict, InvalidInput, NotFound
from tabpilot.storage import build_artifact_store
from tests.aws_support import new_bucket_name, s3_client

pytest.importorskip("boto3", reason="the S3 store needs the aws extra: pip install -e '.[aws]'")

from tabpilot.storage.s3 import PART_SIZE, S3ArtifactStore

MIB = 1024 * 1024


@pytest.fixture
def client(aws_env: dict[str, str]) -> Any:
    return s3_client()


def object_names(client: Any, bucket: str) -> list[str]:
    listed = client.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_keys_are_objects_under_the_prefix(s3_bucket: str, client: Any) -> None:
    store = build_artifact_store(f"s3://{s3_bucket}/tabpilot/prod/")
    assert isinstance(store, S3ArtifactStore) and store.prefix == "tabpilot/prod"
    store.put_bytes("datasets/ds_1/data.csv", b"a,b\n")
    client.put_object(Bucket=s3_bucket, Key="tabpilot/production/other", Body=b"not ours")
    client.put_object(Bucket=s3_bucket, Key="elsewhere", Body=b"not ours")
    assert object_names(client, s3_bucket) == [
        "elsewhere",
        "tabpilot/prod/datasets/ds_1/data.csv",
        "tabpilot/production/other",
    ]
    assert store.list_keys() == ["datasets/ds_1/data.csv"]  # the prefix is a whole segment
    whole = build_artifact_store(f"s3://{s3_bucket}")
    assert whole.list_keys("tabpilot/prod") == ["tabpilot/prod/datasets/ds_1/data.csv"]
    assert whole.get_bytes("tabpilot/prod/datasets/ds_1/data.csv") == b"a,b\n"
    assert store.local_path_hint("datasets/ds_1/data.csv") is None


def test_a_key_and_a_folder_may_share_a_name(s3_bucket: str) -> None:
    """Unlike files (the local store refuses with Conflict): documented in storage/s3.py."""
    store = build_artifact_store(f"s3://{s3_bucket}/p")
    store.put_bytes("a/b", b"below")
    store.put_bytes("a", b"itself")
    assert store.get_bytes("a") == b"itself" and store.get_bytes("a/b") == b"below"
    assert store.list_keys("a") == ["a", "a/b"]
    assert store.delete_prefix("a") == 2
    assert store.list_keys() == []


def test_objects_no_key_can_name_are_not_listed_but_go_with_their_folder(
    s3_bucket: str, client: Any
) -> None:
    store = build_artifact_store(f"s3://{s3_bucket}/p")
    store.put_bytes("jobs/job_1/model.onnx", b"x")
    for odd in ("p/jobs/job_1/", "p/jobs/job_1//x", "p/jobs/job_1/./y"):  # e.g. a console folder
        client.put_object(Bucket=s3_bucket, Key=odd, Body=b"")
    assert store.list_keys() == ["jobs/job_1/model.onnx"]
    assert store.delete_prefix("jobs/job_1") == 4
    assert object_names(client, s3_bucket) == []


class Trickle:
    """A stream that returns at most 1000 bytes a read, as a socket does."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self._data.read(1000 if size < 0 else min(size, 1000))


def test_short_reads_are_not_taken_for_the_end_of_the_stream(s3_bucket: str) -> None:
    store = build_artifact_store(f"s3://{s3_bucket}/p")
    data = os.urandom(PART_SIZE + 12_345)  # a multipart upload of two parts
    assert store.put_stream("big", Trickle(data)) == len(data)  # type: ignore[arg-type]
    assert store.size("big") == len(data) and store.get_bytes("big") == data


class FailsLate:
    """A stream that fails after more than one part, so a multipart upload had begun."""

    def __init__(self) -> None:
        self.sent = 0

    def read(self, size: int = -1) -> bytes:
        if self.sent > PART_SIZE + MIB:
            raise OSError("connection reset by peer")
        chunk = b"x" * (MIB if size < 0 else min(size, MIB))
        self.sent += len(chunk)
        return chunk


def test_a_failed_multipart_upload_is_aborted(s3_bucket: str, client: Any) -> None:
    store = build_artifact_store(f"s3://{s3_bucket}/p")
    store.put_bytes("k", b"complete")
    with pytest.raises(OSError, match="reset"):
        store.put_stream("k", FailsLate())  # type: ignore[arg-type]
    assert store.get_bytes("k") == b"complete"
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []


def test_reads_are_ranged_after_a_seek(s3_bucket: str) -> None:
    store = build_artifact_store(f"s3://{s3_bucket}/p")
    data = bytes(range(256)) * 4096  # 1 MiB
    store.put_bytes("data.bin", data)
    with store.open_read("data.bin") as stream:
        assert stream.seekable()
        assert stream.read(10) == data[:10]
        stream.seek(700_000)
        assert stream.tell() == 700_000
        assert stream.read(5) == data[700_000:700_005]
        stream.seek(-3, io.SEEK_END)
        assert stream.read() == data[-3:]
        stream.seek(0)
        assert stream.read() == data


def test_an_object_replaced_mid_read_is_never_mixed(s3_bucket: str) -> None:
    store = build_artifact_store(f"s3://{s3_bucket}/p")
    store.put_bytes("model.json", b"o" * (3 * MIB))
    with store.open_read("model.json") as stream:
        assert stream.read(10) == b"o" * 10
        store.put_bytes("model.json", b"n" * (3 * MIB))
        stream.seek(2 * MIB)  # past what is buffered: a ranged GET pinned to the first version
        with pytest.raises(Conflict, match="replaced while it was being read"):
            stream.read(10)


def test_presigned_urls_download_without_credentials(s3_bucket: str) -> None:
    store = build_artifact_store(f"s3://{s3_bucket}/p")
    store.put_bytes("models/m/model.onnx", b"onnx bytes")
    url = store.presigned_url("models/m/model.onnx", expires=60)
    assert url is not None and s3_bucket in url and "Signature" in url
    with urllib.request.urlopen(url) as reply:  # a plain HTTP GET, as a browser would do
        assert reply.read() == b"onnx bytes"
    with pytest.raises(InvalidInput, match="1 to"):
        store.presigned_url("models/m/model.onnx", expires=0)
    missing = store.presigned_url("models/m/missing.onnx")  # made locally: no check
    assert missing is not None
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(missing)
    assert caught.value.code == 404


def test_a_missing_bucket_says_how_to_create_it(aws_env: dict[str, str]) -> None:
    store = build_artifact_store(f"s3://{new_bucket_name()}/p")
    for operation in (
        store.ping,
        lambda: store.put_bytes("k", b"x"),
        lambda: store.get_bytes("k"),
        lambda: store.list_keys(),
    ):
        with pytest.raises(InvalidInput) as caught:
            operation()
        message = caught.value.message
        assert message.startswith("TABPILOT_ARTIFACT_URI: s3://tabpilot-test-")
        assert "does not exist; create it with `tabpilot init-stores`" in message
        assert caught.value.details["setting"] == "TABPILOT_ARTIFACT_URI"


def test_ensure_bucket_creates_it_once(aws_env: dict[str, str], client: Any) -> None:
    name = new_bucket_name()
    store = build_artifact_store(f"s3://{name}/p")
    assert isinstance(store, S3ArtifactStore)
    assert store.ensure_bucket() is True
    assert store.ensure_bucket() is False
    store.ping()
    client.delete_bucket(Bucket=name)


def test_no_credentials_says_what_to_set(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = build_artifact_store("s3://some-bucket/p")
    with pytest.raises(InvalidInput, match="no AWS credentials were found; set AWS_PROFILE"):
        store.get_bytes("k")


def test_an_unreachable_endpoint_is_named(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: refused
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = build_artifact_store("s3://some-bucket/p")
    with pytest.raises(InvalidInput, match=r"cannot reach http://127\.0\.0\.1:9; check"):
        store.ping()


def test_missing_keys_on_s3_are_not_found(s3_bucket: str) -> None:
    store = build_artifact_store(f"s3://{s3_bucket}/p")
    with pytest.raises(NotFound, match='Artifact "nope" not found'):
        store.size("nope")
