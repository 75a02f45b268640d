"""The app itself: lifecycle, health and readiness, the error envelope, the OpenAPI docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tabpilot import __version__
from tabpilot.api.app import create_app
from tabpilot.context import AppContext
from tabpilot.settings import load_settings
from tests.api.support import make_ctx, runner_of


def test_runner_is_started_and_stopped_with_the_app(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    runner = runner_of(ctx)
    app = create_app(ctx)
    assert runner.started_with is None
    with TestClient(app):
        assert runner.started_with is ctx and not runner.stopped
    assert runner.stopped
    ctx.metadata.ping()  # a context given to the app stays open for its owner
    ctx.metadata.close()


def test_app_builds_its_context_from_settings(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "data", runner_uri="inline://")
    with TestClient(create_app(settings=settings)) as client:
        assert client.get("/ready").json() == {
            "status": "ready",
            "checks": {"metadata": "ok", "artifacts": "ok", "disk": "ok"},
        }
        assert client.app.state.ctx.settings is settings  # type: ignore[attr-defined]
    assert (tmp_path / "data" / "tabpilot.db").is_file()


def test_health_is_fast_and_touches_no_store(api: TestClient, app_ctx: AppContext) -> None:
    def broken() -> None:
        raise AssertionError("health must not touch the stores")

    app_ctx.metadata.ping = broken  # type: ignore[method-assign]
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


@pytest.mark.parametrize("store", ["metadata", "artifacts"])
def test_ready_names_the_store_that_fails(api: TestClient, app_ctx: AppContext, store: str) -> None:
    def broken() -> None:
        raise ConnectionError("could not connect to server at 10.1.2.3 password=hunter2")

    getattr(app_ctx, store).ping = broken
    response = api.get("/ready")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready"
    assert f"the {store} store does not answer" in error["message"]
    assert "hunter2" not in response.text and "10.1.2.3" not in response.text
    healthy = {"metadata", "artifacts"} - {store}
    assert error["details"]["checks"][healthy.pop()] == "ok"


def test_unknown_route_and_method_use_the_envelope(api: TestClient) -> None:
    response = api.get("/api/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert "/docs" in response.json()["error"]["message"]
    response = api.put("/api/datasets")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    # Predictions have a route of their own, ahead of the rest (models.predict_direct).
    response = api.get("/api/models/mdl_x/predict")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_unexpected_errors_are_500_with_an_id_and_no_internals(
    api: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from tabpilot.services import jobs as service

    def explode(*args: object, **kwargs: object) -> None:
        raise RuntimeError("SELECT * FROM jobs WHERE secret; file /srv/tabpilot/secret.db")

    monkeypatch.setattr(service, "list_jobs", explode)
    with caplog.at_level("ERROR", logger="tabpilot.api"):
        response = api.get("/api/jobs")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal_error"
    error_id = error["details"]["error_id"]
    assert error_id.startswith("err_") and error_id in error["message"]
    for leak in ("SELECT", "/srv", "secret", "Traceback", "RuntimeError"):
        assert leak not in response.text
    assert error_id in caplog.text and "SELECT * FROM jobs" in caplog.text


def test_server_paths_are_scrubbed_from_messages(
    api: TestClient, app_ctx: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tabpilot.errors import InvalidInput
    from tabpilot.services import jobs as service

    where = str(app_ctx.settings.data_dir / "tabpilot.db")

    def refuse(*args: object, **kwargs: object) -> None:
        raise InvalidInput(f"cannot read {where}", details={"path": where})

    monkeypatch.setattr(service, "list_jobs", refuse)
    response = api.get("/api/jobs")
    assert response.status_code == 422
    assert str(app_ctx.settings.data_dir) not in response.text
    assert response.json()["error"]["message"] == "cannot read <server path>/tabpilot.db"


def test_openapi_docs_describe_every_endpoint(api: TestClient) -> None:
    assert api.get("/docs").status_code == 200
    spec = api.get("/openapi.json").json()
    assert "curl -F file=@houses.csv" in spec["info"]["description"]
    paths = spec["paths"]
    expected = {
        "/health": ["get"],
        "/ready": ["get"],
        "/api/datasets": ["get", "post"],
        "/api/datasets/{dataset_id}": ["get", "delete"],
        "/api/datasets/{dataset_id}/eda.html": ["get"],
        "/api/jobs": ["get", "post"],
        "/api/jobs/{job_id}": ["get", "patch", "delete"],
        "/api/jobs/{job_id}/events": ["get"],
        "/api/jobs/{job_id}/stream": ["get"],
        "/api/jobs/{job_id}/cancel": ["post"],
        "/api/jobs/{job_id}/retry": ["post"],
        "/api/compare": ["get"],
    }
    for path, methods in expected.items():
        for method in methods:
            operation = paths[path][method]
            assert operation.get("summary") and operation.get("description"), (path, method)
    for path in (
        "/api/models",
        "/api/models/{model_id}",
        "/api/models/{model_id}/files/{name}",
        "/api/models/{model_id}/deploy",
        "/api/models/{model_id}/undeploy",
        "/api/models/{model_id}/predict",
        "/api/models/{model_id}/predict.csv",
    ):
        assert path in paths, path
    upload = paths["/api/datasets"]["post"]["requestBody"]["content"]
    assert upload["multipart/form-data"]["schema"]["properties"]["file"]["format"] == "binary"
    create = spec["components"]["schemas"]["JobCreate"]
    assert {"dataset_id", "target"} == set(create["required"])
    assert "5 to 86400" in create["properties"]["time_budget"]["description"]


def test_every_domain_error_has_its_status() -> None:
    from tabpilot import errors
    from tabpilot.api.errors import ERROR_STATUS, status_for

    expected = {
        errors.Unauthenticated: 401,
        errors.Forbidden: 403,
        errors.NotFound: 404,
        errors.Conflict: 409,
        errors.UploadTooLarge: 413,
        errors.DataFileError: 422,
        errors.InvalidInput: 422,
        errors.TooManyRequests: 429,
        errors.MissingDependency: 501,
        errors.StorageFull: 507,
        errors.QuotaExceeded: 429,
        errors.ChildFailed: 500,
        errors.TabpilotError: 400,
    }
    defined = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.TabpilotError)
    }
    # A new error class belongs in errors.py, with its status in ERROR_STATUS and here.
    assert defined == set(expected) == {kind for kind, _ in ERROR_STATUS}
    for kind, status in expected.items():
        assert status_for(kind("message")) == status, kind


def test_every_model_file_has_a_media_type() -> None:
    from tabpilot.api.routes.models import FILE_MEDIA_TYPES
    from tabpilot.services.models import MODEL_FILES

    assert set(FILE_MEDIA_TYPES) == set(MODEL_FILES)


def test_api_docs_are_served_from_the_package_without_a_cdn(api: TestClient) -> None:
    page = api.get("/docs")
    assert page.status_code == 200
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        answer = api.get(f"/static/vendor/swagger-ui/{asset}")
        assert answer.status_code == 200 and len(answer.content) > 100, asset
    assert api.get("/redoc").status_code == 404
    assert api.get("/openapi.json").json()["info"]["title"] == "Tabpilot"
