"""The artifact backends, by URI scheme; `build_artifact_store(uri)` opens the one a URI names.

A new backend registers here: its scheme, a check of its URI and a builder that imports its
module only when called (see `tabpilot.backends`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote

from tabpilot.backends import BackendURI, Registry, parse_uri, writable_dir_problem
from tabpilot.errors import InvalidInput, MissingDependency
from tabpilot.storage.base import ArtifactStore, validate_prefix

if TYPE_CHECKING:
    from tabpilot.storage.s3 import S3ArtifactStore

ARTIFACT_STORES: Registry[ArtifactStore] = Registry(
    "artifact store", setting="TABPILOT_ARTIFACT_URI"
)


def build_artifact_store(uri: str | Path) -> ArtifactStore:
    """Open the artifact store named by `uri`.

    A plain directory path or `file:///PATH` opens a `LocalArtifactStore` (the directory is
    created if missing); `s3://BUCKET/PREFIX` opens an `S3ArtifactStore` (the bucket must
    exist: `tabpilot init-stores` creates it).

    Raises:
        InvalidInput: for an unsupported scheme or a backend that is not available.
        MissingDependency: for `s3://` without boto3 (the `aws` extra).
    """
    return ARTIFACT_STORES.build(uri)


def local_artifact_path(uri: str | BackendURI) -> Path:
    """The directory of a plain-path or `file://` URI, made absolute (relative to the cwd).

    Raises:
        InvalidInput: when the URI names another host or no directory.
    """
    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    path = parsed.text
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidInput(f'"{parsed.text}" names a remote host; write file:///absolute/path')
        path = unquote(parsed.path)
    if not path:
        raise InvalidInput("The artifact directory is empty; give a directory path")
    return Path(os.path.abspath(Path(path).expanduser()))


def _check_local(uri: BackendURI) -> str | None:
    try:
        path = local_artifact_path(uri)
    except InvalidInput as exc:
        return exc.message
    problem = writable_dir_problem(path)
    return f'"{path}" {problem}; choose a directory this process can write' if problem else None


def _build_local(uri: BackendURI) -> ArtifactStore:
    from tabpilot.storage.local import LocalArtifactStore

    return LocalArtifactStore(local_artifact_path(uri))


ARTIFACT_STORES.register(
    "",
    "file",
    name="the local artifact store",
    example=("a directory path", "file:///PATH"),
    build=_build_local,
    check=_check_local,
)


# S3 bucket names: 3-63 lower-case letters, digits, dots and hyphens, starting and ending with a
# letter or digit (the AWS rules, less the rare ones S3 itself reports).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


def s3_location(uri: str | BackendURI) -> tuple[str, str]:
    """The bucket and key prefix ("" for none) of an `s3://BUCKET/PREFIX` URI.

    Raises:
        InvalidInput: when the URI names no valid bucket, has options, or a bad prefix.
    """
    parsed = parse_uri(uri) if isinstance(uri, str) else uri
    bucket = parsed.netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise InvalidInput(
            f'"{parsed.shown}" names no valid bucket: write s3://BUCKET/PREFIX, where BUCKET is '
            "3 to 63 lower-case letters, digits, dots or hyphens"
        )
    if parsed.query or "?" in parsed.text or "#" in parsed.text:
        raise InvalidInput(
            f'"{parsed.shown}" has options, and s3:// takes none: the region, credentials and '
            "endpoint come from the standard AWS settings (AWS_REGION, AWS_PROFILE, "
            "AWS_ENDPOINT_URL)"
        )
    path = unquote(parsed.path).strip("/")
    try:
        prefix = validate_prefix(path, allow_empty=True)
    except InvalidInput as exc:
        raise InvalidInput(f'"{parsed.shown}" has an unusable key prefix: {exc.message}') from None
    return bucket, prefix


def _check_s3(uri: BackendURI) -> str | None:
    try:
        s3_location(uri)
    except InvalidInput as exc:
        return exc.message
    return None


def _build_s3(uri: BackendURI) -> ArtifactStore:
    return _s3_store(uri)


def _init_s3(uri: BackendURI) -> str:
    store = _s3_store(uri)
    if store.ensure_bucket():
        return f'created the bucket "{store.bucket}"'
    return f'the bucket "{store.bucket}" exists already'


def _s3_store(uri: BackendURI) -> S3ArtifactStore:
    """The store of an `s3://` URI; boto3 is imported only here, when one is opened."""
    try:
        from tabpilot.storage.s3 import S3ArtifactStore
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("boto3", "botocore", "s3transfer"):
            raise
        raise MissingDependency(
            "The S3 artifact store needs boto3, which is not installed; install it with: "
            "pip install 'tabpilot[aws]'"
        ) from None
    bucket, prefix = s3_location(uri)
    return S3ArtifactStore(bucket, prefix)


ARTIFACT_STORES.register(
    "s3",
    name="the S3 artifact store",
    example="s3://BUCKET/PREFIX",
    build=_build_s3,
    check=_check_s3,
    init=_init_s3,
)
