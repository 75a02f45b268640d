"""Users and security: token mode, user isolation, deploy keys are not user tokens, local mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.api.auth import parse_bearer
from tabpilot.context import AppContext
from tabpilot.errors import Unauthenticated
from tabpilot.services.auth import hash_token, local_owner
from tabpilot.services.users import create_user
from tests.api.support import csv_bytes, finish_job, make_ctx, upload
from tests.conftest import make_mixed_frame


@pytest.fixture
def token_ctx(tmp_path: Path) -> Iterator[AppContext]:
    ctx = make_ctx(tmp_path, auth="token")
    yield ctx
    ctx.metadata.close()


@pytest.fixture
def token_api(token_ctx: AppContext) -> Iterator[TestClient]:
    with TestClient(create_app(token_ctx)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_mode_needs_a_valid_user_token(token_api: TestClient, token_ctx: AppContext) -> None:
    assert token_api.get("/health").status_code == 200
    assert token_api.get("/ready").status_code == 200
    assert token_api.get("/openapi.json").status_code == 200
    for headers in ({}, bearer("tpu_wrong"), {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = token_api.get("/api/datasets", headers=headers)
        assert response.status_code == 401, headers
        assert response.headers["www-authenticate"] == "Bearer"
        error = response.json()["error"]
        assert error["code"] == "unauthenticated"
        assert "tabpilot users create" in error["message"] or "Bearer" in error["message"]
    # Uploads are refused before a byte is stored.
    response = upload(token_api, csv_bytes(make_mixed_frame(50)))
    assert response.status_code == 401
    assert token_ctx.artifacts.list_keys() == []
    _, token = create_user(token_ctx.metadata, name="alice")
    assert token_api.get("/api/datasets", headers=bearer(token)).status_code == 200


def test_users_see_only_their_own_records(token_api: TestClient, token_ctx: AppContext) -> None:
    alice, alice_token = create_user(token_ctx.metadata, name="alice")
    _, bob_token = create_user(token_ctx.metadata, name="bob")
    a, b = bearer(alice_token), bearer(bob_token)

    dataset = upload(token_api, csv_bytes(make_mixed_frame(80)), headers=a).json()
    assert token_ctx.metadata.get_dataset(dataset["id"], owner=alice.id).owner == alice.id
    body = {"dataset_id": dataset["id"], "target": "label", "time_budget": 5}
    job = token_api.post("/api/jobs", json=body, headers=a).json()
    other = token_api.post("/api/jobs", json=body, headers=a).json()
    finish_job(token_ctx, job["id"])
    finish_job(token_ctx, other["id"])

    # Bob cannot see, use, change or delete any of it: every id answers 404.
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/datasets/{dataset['id']}", {}),
        ("GET", f"/api/datasets/{dataset['id']}/eda.html", {}),
        ("DELETE", f"/api/datasets/{dataset['id']}?force=true", {}),
        ("POST", "/api/jobs", {"json": body}),
        ("GET", f"/api/jobs/{job['id']}", {}),
        ("GET", f"/api/jobs/{job['id']}/events", {}),
        ("GET", f"/api/jobs/{job['id']}/stream", {}),
        ("PATCH", f"/api/jobs/{job['id']}", {"json": {"notes": "mine"}}),
        ("POST", f"/api/jobs/{job['id']}/cancel", {}),
        ("POST", f"/api/jobs/{job['id']}/retry", {}),
        ("DELETE", f"/api/jobs/{job['id']}", {}),
        ("GET", f"/api/compare?jobs={job['id']},{other['id']}", {}),
    ]
    for method, url, kwargs in requests:
        response = token_api.request(method, url, headers=b, **kwargs)
        assert response.status_code == 404, (method, url, response.text)
        assert response.json()["error"]["code"] == "not_found"
    assert token_api.get("/api/datasets", headers=b).json()["items"] == []
    assert token_api.get("/api/jobs", headers=b).json()["items"] == []
    assert token_api.get("/api/jobs", headers=b, params={"q": "label"}).json()["items"] == []

    # Alice still has everything, untouched.
    assert token_api.get(f"/api/jobs/{job['id']}", headers=a).json()["notes"] == ""
    assert len(token_api.get("/api/jobs", headers=a).json()["items"]) == 2
    compared = token_api.get(f"/api/compare?jobs={job['id']},{other['id']}", headers=a)
    assert compared.status_code == 200


def test_a_deploy_key_is_not_a_user_token(token_api: TestClient, token_ctx: AppContext) -> None:
    alice, token = create_user(token_ctx.metadata, name="alice")
    dataset = upload(token_api, csv_bytes(make_mixed_frame(80)), headers=bearer(token)).json()
    job = token_api.post(
        "/api/jobs", json={"dataset_id": dataset["id"], "target": "label"}, headers=bearer(token)
    ).json()
    model = finish_job(token_ctx, job["id"])
    assert model is not None
    deploy_key = "tpk_deploy-key-for-one-model"
    token_ctx.metadata.update_model(
        model.id, owner=alice.id, deploy_key_hash=hash_token(deploy_key)
    )
    for url in ("/api/datasets", f"/api/jobs/{job['id']}", "/api/jobs"):
        assert token_api.get(url, headers=bearer(deploy_key)).status_code == 401
    # The model routes know deploy keys and say why they refuse one: 403, not 401.
    refused = token_api.get("/api/models", headers=bearer(deploy_key))
    assert refused.status_code == 403 and "www-authenticate" not in refused.headers
    assert refused.json() == {
        "error": {
            "code": "forbidden",
            "message": "A deploy key can only call predict and predict.csv of its model; "
            "use your API token for everything else",
            "details": {},
        }
    }
    elsewhere = token_api.post(
        "/api/models/mdl_0000000000000000/predict",
        json={"rows": [{"x": 1}]},
        headers=bearer(deploy_key),
    )
    assert elsewhere.status_code == 403
    assert elsewhere.json()["error"] == {
        "code": "forbidden",
        "message": "This deploy key only predicts with the model it was minted for",
        "details": {},
    }


def test_local_mode_acts_for_the_local_user_whatever_the_headers(
    api: TestClient, app_ctx: AppContext
) -> None:
    response = upload(api, csv_bytes(make_mixed_frame(40)), headers=bearer("anything"))
    assert response.status_code == 201
    record = app_ctx.metadata.get_dataset(response.json()["id"], owner=local_owner())
    assert record.owner == local_owner()
    assert api.get("/api/datasets").json()["items"][0]["id"] == record.id
    # Other schemes (Basic from an authenticating proxy in front) are ignored in local mode.
    for other in ("Basic dXNlcjpwYXNz", "Negotiate abc", "Bearer", "garbage"):
        assert api.get("/api/datasets", headers={"Authorization": other}).status_code == 200


def test_parse_bearer_messages() -> None:
    for missing in (None, "", "  "):
        with pytest.raises(Unauthenticated, match="tabpilot users create"):
            parse_bearer(missing)
    for malformed in ("Basic abc", "Bearer", "Token abc", "Bearer   "):
        with pytest.raises(Unauthenticated, match="Bearer <token>"):
            parse_bearer(malformed)
    assert parse_bearer("Bearer abc") == "abc"
    assert parse_bearer("  bearer   abc ") == "abc"


def test_openapi_documents_the_bearer_scheme(token_api: TestClient) -> None:
    spec = token_api.get("/openapi.json").json()
    assert "APIToken" in spec["components"]["securitySchemes"]
    assert spec["paths"]["/api/jobs"]["post"]["security"] == [{"APIToken": []}]
    assert "security" not in spec["paths"]["/health"]["get"]
