"""The artifact backends, by URI scheme; `build_artifact_store(uri)` opens the one a URI names.

A new backend registers here: its scheme, a check of its URI and a builder that imports its
module only when called (see `tabpilot.backends`).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

from tabpilot.backends import BackendURI, Registry, parse_uri, writable_dir_problem
from tabpilot.errors import InvalidInput
from tabpilot.storage.base import ArtifactStore

ARTIFACT_STORES: Registry[ArtifactStore] = Registry(
    "artifact store", setting="TABPILOT_ARTIFACT_URI"
)


def build_artifact_store(uri: str | Path) -> ArtifactStore:
    """Open the artifact store named by `uri`.

    A plain directory path or `file:///PATH` opens a `LocalArtifactStore` (the directory is
    created if missing).

    Raises:
        InvalidInput: for an unsupported scheme or a backend that is not available.
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
ARTIFACT_STORES.plan("s3", name="the S3 artifact store", example="s3://BUCKET/PREFIX")
