"""Fixtures for the artifact-store contract suite: one fresh store of every backend.

A backend joins the suite by adding its name to `BACKENDS`, a branch to `store_uri` that
returns the URI of a fresh, empty store, and the memory it may hold while streaming to
`STREAM_PEAK_LIMIT` in test_contract.py. The S3 store runs against a moto server over real
HTTP (tests/aws_support.py, a plugin of tests/conftest.py), a fresh bucket per test.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tabpilot.storage import ArtifactStore, build_artifact_store
from tabpilot.storage.local import LocalArtifactStore

BACKENDS = ["local", "s3"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URI of a fresh, empty store of the current backend."""
    if backend == "local":
        return f"file://{tmp_path}/artifacts"
    if backend == "s3":
        # Under a key prefix, so the suite also checks that nothing leaves it.
        return f"s3://{request.getfixturevalue('s3_bucket')}/artifacts"
    raise AssertionError(f"no store_uri for backend {backend!r}")


@pytest.fixture
def store(store_uri: str) -> ArtifactStore:
    return build_artifact_store(store_uri)


@pytest.fixture
def local_store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")
