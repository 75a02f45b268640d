from __future__ import annotations

from pathlib import Path

import pytest

from tabpilot.storage.local import LocalArtifactStore


@pytest.fixture
def local_store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "artifacts")
