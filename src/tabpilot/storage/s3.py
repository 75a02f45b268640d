"""`S3ArtifactStore`: artifacts as objects in one S3 bucket, under an optional key prefix.

`s3://BUCKET/PREFIX` keeps the key `a/b.csv` as the object `PREFIX/a/b.csv` (`s3://BUCKET` uses
the whole bucket). Keys are validated as on every backend (`validate_key`), so no key can reach
an object outside the prefix. boto3 finds the credentials, the region and the endpoint the
standard AWS way (`AWS_PROFILE`/`AWS_ACCESS_KEY_ID`, an instance or task role, `AWS_REGION`,
`AWS_ENDPOINT_URL` for an emulator such as moto or MinIO); Tabpilot adds no AWS setting.

How the contract of `ArtifactStore` is kept:

- **Atomic writes** by design: an object appears only when its PUT or its multipart upload
  completes, so a reader sees the old content or the new. A failed multipart upload is
  aborted, so no parts are left behind and the old object stays.
- **Streaming**: `put_stream`/`put_file` use boto3's managed transfer with `PART_SIZE` parts and
  at most `PARTS_IN_MEMORY` of them held at once, never the whole file. `open_read` streams one
  GET; the returned reader is seekable, and a seek continues with a ranged GET (`Range`) pinned
  to the object's ETag (`If-Match`), so a reader never mixes two versions of an object: if it is
  replaced mid-read, the read fails with `Conflict`.
- **Downloads**: `presigned_url` gives a time-limited GET URL, so large files can go straight
  from S3 to the client instead of through the server.

Where S3 differs from a file system (decided here, the same for every caller):

- A key and a "folder" may share a name: `a` and `a/b` can both exist (the local store refuses
  the second with `Conflict`). A prefix covers the key itself and everything below it, so
  `list_keys("a")` lists both and `delete_prefix("a")` deletes both. The keys the platform
  writes (`storage/keys.py`) never collide like this.
- Objects under the prefix whose names are not valid keys (written by other tools, such as a
  console's `folder/` marker) are not listed, since no key can name them; `delete_prefix` still
  deletes them with their folder.
- `delete_prefix` returns how many objects it found and deleted; two deleting the same prefix
  at once may both count an object.
- `ping` checks that the bucket answers (HeadBucket); it writes nothing, so it cannot prove
  that this identity may write.

Configuration problems (no credentials, a missing bucket, access denied, no endpoint) raise
`InvalidInput` naming `TABPILOT_ARTIFACT_URI` and what to do. One exception: `exists`, `size`
and `delete` ask with HEAD, whose empty 404 cannot tell a missing bucket from a missing key, so
on a missing bucket they answer as for a missing key; every other operation and `ping` say
which bucket is missing.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from tabpilot.errors import Conflict, InvalidInput, NotFound
from tabpilot.storage.base import (
    CHUNK_SIZE,
    ArtifactStore,
    artifact_not_found,
    validate_key,
    validate_prefix,
)

SETTING = "TABPILOT_ARTIFACT_URI"
PART_SIZE = 8 * 1024 * 1024
"""Multipart upload part size: above S3's 5 MiB minimum; 10,000 parts reach 80 GB."""
PARTS_IN_MEMORY = 2
"""Parts read ahead of the upload at most: bounds what a streamed upload holds in memory."""
MAX_DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys
DEFAULT_URL_EXPIRY_S = 3600
MAX_URL_EXPIRY_S = 7 * 24 * 3600  # SigV4 presigned URLs live at most a week

_MISSING_KEY_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_MISSING_BUCKET_CODES = frozenset({"NoSuchBucket"})
_DENIED_CODES = frozenset({"403", "AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId"})
_DENIED_CODES |= {"SignatureDoesNotMatch", "ExpiredToken", "InvalidToken"}


def s3_client() -> Any:
    """An S3 client configured the standard AWS way (see the module docstring)."""
    config = Config(retries={"mode": "standard", "max_attempts": 5})
    return boto3.session.Session().client("s3", config=config)


class S3ArtifactStore(ArtifactStore):
    """Artifacts in `bucket` under `prefix` ("" for the whole bucket); safe across threads.

    `client` is an S3 client to use instead of a new one (boto3 clients are thread-safe).
    """

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None) -> None:
        self._bucket = bucket
        self._prefix = validate_prefix(prefix, allow_empty=True)
        self._client = client if client is not None else s3_client()
        self._transfer = TransferConfig(
            multipart_threshold=PART_SIZE,
            multipart_chunksize=PART_SIZE,
            max_concurrency=PARTS_IN_MEMORY,
        )
        # Not a TransferConfig argument, but honoured by s3transfer: read-ahead of a stream.
        self._transfer.max_in_memory_upload_chunks = PARTS_IN_MEMORY

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def uri(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}" if self._prefix else f"s3://{self._bucket}"

    def __repr__(self) -> str:
        return f"S3ArtifactStore({self.uri!r})"

    def _object(self, key: str) -> str:
        validate_key(key)
        return f"{self._prefix}/{key}" if self._prefix else key

    def _key_of(self, name: str) -> str:
        return name[len(self._prefix) + 1 :] if self._prefix else name

    # -- writing ---------------------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> None:
        name = self._object(key)
        with self._errors(key):
            self._client.put_object(Bucket=self._bucket, Key=name, Body=data)

    def put_stream(self, key: str, stream: BinaryIO) -> int:
        name = self._object(key)
        counted = _CountingReader(stream)
        with self._errors(key):
            self._client.upload_fileobj(counted, self._bucket, name, Config=self._transfer)
        return counted.count

    # -- reading ---------------------------------------------------------------------------

    def open_read(self, key: str) -> BinaryIO:
        name = self._object(key)
        response = self._get(key, name)
        raw = _ObjectReader(self, key, name, response)
        return io.BufferedReader(raw, buffer_size=CHUNK_SIZE)  # type: ignore[return-value]

    def _get(self, key: str, name: str, **options: str) -> dict[str, Any]:
        """One GetObject; `options` such as Range and IfMatch are passed through."""
        try:
            with self._errors(key):
                return dict(self._client.get_object(Bucket=self._bucket, Key=name, **options))
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "412"):
                raise Conflict(
                    f'Artifact "{key}" was replaced while it was being read; read it again',
                    details={"key": key},
                ) from None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise artifact_not_found(key)
        return int(head["ContentLength"])

    def _head(self, key: str) -> dict[str, Any] | None:
        name = self._object(key)
        try:
            with self._errors(key):
                return dict(self._client.head_object(Bucket=self._bucket, Key=name))
        except NotFound:
            return None

    def list_keys(self, prefix: str = "") -> list[str]:
        prefix = validate_prefix(prefix, allow_empty=True)
        keys = [self._key_of(name) for name in self._names_under(prefix)]
        return sorted(key for key in keys if _is_key(key))

    def _names_under(self, prefix: str) -> Iterator[str]:
        """Object names of the key `prefix` and of everything below it ("" for all)."""
        if prefix and self._head(prefix) is not None:
            yield self._object(prefix)
        folder = self._object(prefix) if prefix else self._prefix
        below = f"{folder}/" if folder else ""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=below
        )
        with self._errors(prefix or None):
            for page in pages:
                for item in page.get("Contents", []):
                    yield str(item["Key"])

    # -- deleting --------------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        if self._head(key) is None:  # DeleteObject succeeds either way; say whether it was there
            return False
        with self._errors(key):
            self._client.delete_object(Bucket=self._bucket, Key=self._object(key))
        return True

    def delete_prefix(self, prefix: str) -> int:
        prefix = validate_prefix(prefix, allow_empty=False)
        names = list(self._names_under(prefix))
        for start in range(0, len(names), MAX_DELETE_BATCH):
            batch = [{"Key": name} for name in names[start : start + MAX_DELETE_BATCH]]
            with self._errors(prefix):
                response = self._client.delete_objects(
                    Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True}
                )
            failed = response.get("Errors") or []
            if failed:
                first = failed[0]
                raise OSError(
                    f"S3 could not delete {len(failed)} objects under {prefix!r}, e.g. "
                    f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
                )
        return len(names)

    # -- the bucket ------------------------------------------------------------------------

    def ping(self) -> None:
        with self._errors(None):
            self._client.head_bucket(Bucket=self._bucket)

    def ensure_bucket(self) -> bool:
        """Create the bucket if it is missing; returns whether it was created (idempotent)."""
        try:
            self.ping()
            return False
        except InvalidInput as exc:
            if exc.details.get("reason") != "no_bucket":
                raise
        options: dict[str, Any] = {}
        region = self._client.meta.region_name
        if region and region not in ("us-east-1", "aws-global"):  # us-east-1 takes no constraint
            options["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            with self._errors(None):
                self._client.create_bucket(Bucket=self._bucket, **options)
        except ClientError as exc:
            if _code(exc) == "BucketAlreadyOwnedByYou":  # created meanwhile by another run
                return False
            if _code(exc) == "BucketAlreadyExists":
                raise self._misconfigured(
                    f'the bucket name "{self._bucket}" is taken by another AWS account (bucket '
                    "names are global); choose another name",
                    reason="bucket_taken",
                ) from None
            raise
        return True

    def presigned_url(self, key: str, expires: int = DEFAULT_URL_EXPIRY_S) -> str | None:
        """A URL that downloads `key` without credentials for `expires` seconds.

        Made locally (no request), so it does not check that the key exists: a URL for a
        missing key answers 404 from S3.
        """
        name = self._object(key)
        if not 1 <= expires <= MAX_URL_EXPIRY_S:
            raise InvalidInput(f"A download URL lives 1 to {MAX_URL_EXPIRY_S} seconds")
        with self._errors(key):
            return str(
                self._client.generate_presigned_url(
                    "get_object", Params={"Bucket": self._bucket, "Key": name}, ExpiresIn=expires
                )
            )

    # -- errors ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, key: str | None) -> Iterator[None]:
        """Turn botocore's errors a user can fix into Tabpilot's; others pass through."""
        try:
            yield
        except NoCredentialsError:
            raise self._misconfigured(
                "no AWS credentials were found; set AWS_PROFILE, or AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or run with an IAM role",
                reason="no_credentials",
            ) from None
        except EndpointConnectionError as exc:
            where = os.environ.get("AWS_ENDPOINT_URL") or exc.kwargs.get("endpoint_url", "S3")
            raise self._misconfigured(
                f"cannot reach {where}; check the network (and AWS_ENDPOINT_URL if you use an "
                "emulator)",
                reason="unreachable",
            ) from None
        except ClientError as exc:
            raise self._translate(exc, key) from None

    def _translate(self, exc: ClientError, key: str | None) -> Exception:
        code = _code(exc)
        if code in _MISSING_BUCKET_CODES or (key is None and code in _MISSING_KEY_CODES):
            return self._misconfigured(
                f'the bucket "{self._bucket}" does not exist; create it with '
                "`tabpilot init-stores` (or Terraform), or fix the bucket name",
                reason="no_bucket",
            )
        if code in _MISSING_KEY_CODES and key is not None:
            return artifact_not_found(key)
        if code in _DENIED_CODES:
            return self._misconfigured(
                f'access to the bucket "{self._bucket}" was denied ({code}); give this AWS '
                "identity s3:ListBucket on the bucket and s3:GetObject, s3:PutObject and "
                "s3:DeleteObject on its objects",
                reason="access_denied",
            )
        return exc

    def _misconfigured(self, problem: str, *, reason: str) -> InvalidInput:
        return InvalidInput(
            f"{SETTING}: {self.uri}: {problem}",
            details={"setting": SETTING, "uri": self.uri, "reason": reason},
        )


class _CountingReader:
    """Reads whole parts from a stream and counts the bytes, so `put_stream` returns the size.

    boto3 takes a short read for the end of the stream, so each read here is repeated until
    it has `size` bytes or the stream ends (sockets and pipes return what has arrived). It has
    no `seek`, so boto3 streams it part by part instead of trying to rewind it.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = self._stream.read()
        else:
            pieces: list[bytes] = []
            wanted = size
            while wanted > 0 and (piece := self._stream.read(wanted)):
                pieces.append(piece)
                wanted -= len(piece)
            data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.count += len(data)
        return data


class _ObjectReader(io.RawIOBase):
    """One version of one object, read from a position; a seek reopens it with a ranged GET."""

    def __init__(self, store: S3ArtifactStore, key: str, name: str, response: dict) -> None:
        self._store = store
        self._key = key
        self._name = name
        self._size = int(response["ContentLength"])
        self._etag = str(response["ETag"])
        self._body: Any = response["Body"]
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self._position >= self._size:
            return 0
        if self._body is None:
            response = self._store._get(
                self._key, self._name, Range=f"bytes={self._position}-", IfMatch=self._etag
            )
            self._body = response["Body"]
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        position = base + offset
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        if position != self._position:
            self._drop_body()
            self._position = position
        return position

    def close(self) -> None:
        self._drop_body()
        super().close()

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _is_key(key: str) -> bool:
    try:
        validate_key(key)
    except InvalidInput:
        return False
    return True
