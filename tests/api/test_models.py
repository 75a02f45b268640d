"""/api/models: listing, the model card, file downloads.

Models come from the session's trained bundles (tests/api/model_support.py), installed into each
test's stores.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.api.model_support import BUNDLE_FILES, Bundle, ctx_of, install_model

# -- listing and the card ------------------------------------------------------------------------


@pytest.mark.slow
def test_list_models_pages_newest_first(client: TestClient, bundles: dict[str, Bundle]) -> None:
    assert client.get("/api/models").json()["items"] == []
    ids = [install_model(ctx_of(client), bundles["binary"]).id for _ in range(3)]
    first = client.get("/api/models", params={"limit": 2}).json()
    assert [m["id"] for m in first["items"]] == ids[::-1][:2]
    assert first["next_cursor"]
    second = client.get("/api/models", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [m["id"] for m in second["items"]] == [ids[0]]
    assert second["next_cursor"] is None
    item = first["items"][0]
    assert item["target"] == "label"
    assert item["problem_type"] == "binary"
    assert item["deployed"] is False
    assert isinstance(item["score"], float)
    assert set(item["files"]) == set(BUNDLE_FILES)


@pytest.mark.slow
def test_list_models_filters_by_job(client: TestClient, bundles: dict[str, Bundle]) -> None:
    models = [install_model(ctx_of(client), bundles["binary"]) for _ in range(2)]
    page = client.get("/api/models", params={"job_id": models[1].job_id}).json()
    assert [m["id"] for m in page["items"]] == [models[1].id]


def test_list_models_rejects_bad_paging(client: TestClient) -> None:
    assert client.get("/api/models", params={"limit": 0}).status_code == 422
    response = client.get("/api/models", params={"cursor": "not-a-cursor"})
    assert response.status_code == 422
    assert "cursor" in response.json()["error"]["message"]


@pytest.mark.slow
def test_get_model_returns_the_card(client: TestClient, bundles: dict[str, Bundle]) -> None:
    model = install_model(ctx_of(client), bundles["binary"])
    body = client.get(f"/api/models/{model.id}").json()
    assert body["id"] == model.id
    assert body["job_id"] == model.job_id
    assert body["card"]["classes"] == bundles["binary"].card["classes"]
    assert [f["name"] for f in body["card"]["features"]]
    assert "deploy_key_hash" not in body


def test_unknown_model_is_404_in_the_envelope(client: TestClient) -> None:
    for path in (
        "/api/models/mdl_0000000000000000",
        "/api/models/mdl_0000000000000000/files/model.onnx",
        "/api/models/mdl_0000000000000000/deploy",
        "/api/models/mdl_0000000000000000/predict",
    ):
        method = client.get if "deploy" not in path and "predict" not in path else client.post
        kwargs = {"json": {"rows": [{"x1": 1}]}} if "predict" in path else {}
        response = method(path, **kwargs)
        assert response.status_code == 404, path
        error = response.json()["error"]
        assert error["code"] == "not_found"
        assert "mdl_0000000000000000" in error["message"]


# -- files ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("model.onnx", "application/octet-stream"),
        ("model.pkl", "application/octet-stream"),
        ("model.json", "application/json"),
        ("eda.html", "text/html"),
        ("report.html", "text/html"),
    ],
)
def test_download_bundle_files(
    client: TestClient, bundles: dict[str, Bundle], name: str, media_type: str
) -> None:
    model = install_model(ctx_of(client), bundles["binary"])
    response = client.get(f"/api/models/{model.id}/files/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.content == (bundles["binary"].path / name).read_bytes()
    disposition = response.headers["content-disposition"]
    assert f"{model.id}-{name}" in disposition
    assert disposition.startswith("inline" if name.endswith(".html") else "attachment")
    assert response.headers["x-content-type-options"] == "nosniff"
    if name == "model.pkl":
        assert "trust" in response.headers["x-tabpilot-warning"]
    if name.endswith(".html"):
        assert "sandbox" in response.headers["content-security-policy"]


@pytest.mark.slow
def test_missing_report_is_404(client: TestClient, bundles: dict[str, Bundle]) -> None:
    model = install_model(ctx_of(client), bundles["regression"])  # trained without reports
    response = client.get(f"/api/models/{model.id}/files/report.html")
    assert response.status_code == 404
    assert "report.html" in response.json()["error"]["message"]
    assert client.get(f"/api/models/{model.id}").json()["files"] == [
        "model.onnx",
        "model.pkl",
        "model.json",
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "../model.json",
        "..%2Fmodel.json",
        "..%2fmodel.json",
        "%2e%2e%2fmodel.json",
        "%2E%2E/%2E%2E/tabpilot.db",
        "..%5Cmodel.json",
        "..\\model.json",
        "%2Fetc%2Fpasswd",
        "/etc/passwd",
        "%252e%252e%252fmodel.json",
        "..",
        "%2e%2e",
        "model.onnx%00",
        "model.onnx%00.json",
        "MODEL.ONNX",
        "model.onnx.",
        "data.csv",
        "tabpilot.db",
    ],
)
def test_file_names_outside_the_allow_list_are_404(
    client: TestClient, bundles: dict[str, Bundle], name: str
) -> None:
    model = install_model(ctx_of(client), bundles["binary"])
    secret = b"tabpilot-secret-marker"
    (Path(ctx_of(client).settings.data_dir) / "secret.txt").write_bytes(secret)
    response = client.get(f"/api/models/{model.id}/files/{name}", follow_redirects=False)
    assert secret not in response.content
    assert response.headers["content-type"].startswith("application/json")
    if b"/files/" not in response.request.url.raw_path:
        # The client itself resolved "files/.." (to the model's card): no file was asked for.
        assert response.status_code in (200, 307, 404)
        return
    assert response.status_code == 404, (name, response.status_code)
    assert b"SQLite" not in response.content
    assert response.headers["content-type"].startswith("application/json")
