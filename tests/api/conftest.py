"""Fixtures of the API tests: an app on real temporary stores with a `RecordingRunner`; for the
/api/models tests, trained model bundles and an app that serves them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.context import AppContext
from tabpilot.services import predictions as prediction_service
from tests.api.model_support import Bundle, make_app_client, train_bundles
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


@pytest.fixture(scope="session")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Bundle]:
    """Trained once for the three /api/models test modules; tests only read them."""
    return train_bundles(tmp_path_factory.mktemp("bundles"))


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    """An app (local auth) on fresh stores under `tmp_path`, with an empty predictor cache."""
    prediction_service.predictor_cache().clear()
    with make_app_client(tmp_path) as c:
        yield c
