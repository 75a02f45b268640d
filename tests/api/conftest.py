"""Fixtures of the API tests: an app on real temporary stores with a `RecordingRunner`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.context import AppContext
from tests.api.support import make_ctx


@pytest.fixture
def app_ctx(tmp_path: Path) -> Iterator[AppContext]:
    ctx = make_ctx(tmp_path)
    yield ctx
    ctx.metadata.close()


@pytest.fixture
def api(app_ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(create_app(app_ctx)) as client:
        yield client
