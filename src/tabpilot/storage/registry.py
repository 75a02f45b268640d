"""`build_artifact_store(uri)`: the artifact backend a URI names, imported only when used."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from tabpilot.errors import InvalidInput
from tabpilot.storage.base import ArtifactStore


def build_artifact_store(uri: str | Path) -> ArtifactStore:
    """Open the artifact store named by `uri`.

    A plain directory path or `file:///PATH` opens a `LocalArtifactStore` (the directory is
    created if missing); `s3://BUCKET/PREFIX` is reserved for the S3 backend.

    Raises:
        InvalidInput: for an unsupported scheme or a backend that is not available.
    """
    uri = str(uri)
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme in ("", "file"):
        from tabpilot.storage.local import LocalArtifactStore

        return LocalArtifactStore(local_artifact_path(uri))
    if scheme == "s3":
        raise InvalidInput(
            "The S3 artifact store (s3://) is not built yet (it will need "
            "pip install 'tabpilot[aws]'); use a directory path or file:// for "
            "TABPILOT_ARTIFACT_URI"
        )
    raise InvalidInput(
        f'Unsupported artifact store "{scheme}"; use a directory path, file:// or s3://'
    )


def local_artifact_path(uri: str) -> Path:
    """The directory of a plain-path or `file://` URI, made absolute (relative to the cwd)."""
    if uri.startswith("file://"):
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise InvalidInput(f'"{uri}" names a remote host; write file:///absolute/path')
        uri = unquote(parts.path)
    if not uri:
        raise InvalidInput("The artifact directory is empty; give a directory path")
    return Path(os.path.abspath(Path(uri).expanduser()))
