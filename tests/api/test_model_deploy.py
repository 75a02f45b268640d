"""/api/models/{id}/deploy and undeploy: deploy keys, and owners' models kept apart.

Models come from the session's trained bundles (tests/api/model_support.py), installed into
each test's stores.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tabpilot.services import predictions as prediction_service
from tabpilot.services.auth import local_owner
from tabpilot.services.users import create_user
from tests.api.model_support import (
    Bundle,
    ctx_of,
    features_of,
    install_model,
    json_rows,
    make_app_client,
)
from tests.api.support import csv_bytes

# -- deploy keys ---------------------------------------------------------------------------------


@pytest.fixture
def token_client(tmp_path: Path) -> Iterator[TestClient]:
    prediction_service.predictor_cache().clear()
    with make_app_client(tmp_path, auth="token") as c:
        yield c


def user(client: TestClient, name: str) -> tuple[str, dict[str, str]]:
    record, token = create_user(ctx_of(client).metadata, name=name)
    return record.id, {"Authorization": f"Bearer {token}"}


@pytest.mark.slow
def test_deploy_key_predicts_with_its_model_only(
    token_client: TestClient, bundles: dict[str, Bundle]
) -> None:
    client = token_client
    alice, as_alice = user(client, "alice")
    model = install_model(ctx_of(client), bundles["binary"], owner=alice)
    other = install_model(ctx_of(client), bundles["binary"], owner=alice)
    deployed = client.post(f"/api/models/{model.id}/deploy", headers=as_alice)
    assert deployed.status_code == 200
    key = deployed.json()["key"]
    assert key.startswith("tpk_") and len(key) > 40
    assert key not in json.dumps(ctx_of(client).metadata.get_model(model.id, owner=None).card)
    assert ctx_of(client).metadata.get_model(model.id, owner=None).deploy_key_hash != key
    assert client.get(f"/api/models/{model.id}", headers=as_alice).json()["deployed"] is True

    with_key = {"Authorization": f"Bearer {key}"}
    rows = json_rows(features_of(bundles["binary"]).head(3))
    response = client.post(f"/api/models/{model.id}/predict", json={"rows": rows}, headers=with_key)
    assert response.status_code == 200
    csv_response = client.post(
        f"/api/models/{model.id}/predict.csv",
        content=csv_bytes(features_of(bundles["binary"]).head(3)),
        headers={**with_key, "content-type": "text/csv"},
    )
    assert csv_response.status_code == 200

    # Everything else is refused, and other models' existence is not revealed.
    refused = [
        client.post(f"/api/models/{other.id}/predict", json={"rows": rows}, headers=with_key),
        client.post(
            "/api/models/mdl_0000000000000000/predict", json={"rows": rows}, headers=with_key
        ),
        client.post(
            f"/api/models/{other.id}/predict.csv",
            content=b"x1\n1\n",
            headers={**with_key, "content-type": "text/csv"},
        ),
        client.get("/api/models", headers=with_key),
        client.get(f"/api/models/{model.id}", headers=with_key),
        client.get(f"/api/models/{model.id}/files/model.onnx", headers=with_key),
        client.post(f"/api/models/{model.id}/deploy", headers=with_key),
        client.post(f"/api/models/{model.id}/undeploy", headers=with_key),
        client.get("/api/jobs", headers=with_key),
        client.get("/api/datasets", headers=with_key),
    ]
    for response in refused:
        assert response.status_code in (401, 403), (response.request.url, response.status_code)
        assert "error" in response.json()
    assert refused[0].json() == refused[1].json()  # same answer whether the model exists


@pytest.mark.slow
def test_deploy_key_reaches_nothing_else_in_local_mode(
    client: TestClient, bundles: dict[str, Bundle]
) -> None:
    model = install_model(ctx_of(client), bundles["binary"], owner=local_owner())
    key = client.post(f"/api/models/{model.id}/deploy").json()["key"]
    with_key = {"Authorization": f"Bearer {key}"}
    rows = json_rows(features_of(bundles["binary"]).head(2))
    ok = client.post(f"/api/models/{model.id}/predict", json={"rows": rows}, headers=with_key)
    assert ok.status_code == 200
    for path in ("/api/jobs", "/api/datasets"):
        refused = client.get(path, headers=with_key)
        assert refused.status_code == 401, path
        assert "only works for its model's predict endpoints" in refused.json()["error"]["message"]
    assert client.get("/api/models", headers=with_key).status_code in (401, 403)


@pytest.mark.slow
def test_redeploy_replaces_and_undeploy_revokes_the_key(
    token_client: TestClient, bundles: dict[str, Bundle]
) -> None:
    client = token_client
    alice, as_alice = user(client, "alice")
    model = install_model(ctx_of(client), bundles["binary"], owner=alice)
    url = f"/api/models/{model.id}/predict"
    rows = json_rows(features_of(bundles["binary"]).head(1))

    def predict(key: str) -> int:
        headers = {"Authorization": f"Bearer {key}"}
        return client.post(url, json={"rows": rows}, headers=headers).status_code

    first = client.post(f"/api/models/{model.id}/deploy", headers=as_alice).json()["key"]
    second = client.post(f"/api/models/{model.id}/deploy", headers=as_alice).json()["key"]
    assert first != second
    assert predict(first) == 401
    assert predict(second) == 200
    undeployed = client.post(f"/api/models/{model.id}/undeploy", headers=as_alice)
    assert undeployed.json() == {"model_id": model.id, "deployed": False}
    assert predict(second) == 401
    assert (
        "revoked"
        in client.post(
            url, json={"rows": rows}, headers={"Authorization": f"Bearer {second}"}
        ).json()["error"]["message"]
    )
    assert predict("tpk_" + "x" * 43) == 401
    # The owner still predicts without a key.
    assert client.post(url, json={"rows": rows}, headers=as_alice).status_code == 200


@pytest.mark.slow
def test_users_cannot_see_or_use_each_others_models(
    token_client: TestClient, bundles: dict[str, Bundle]
) -> None:
    client = token_client
    alice, as_alice = user(client, "alice")
    _bob, as_bob = user(client, "bob")
    model = install_model(ctx_of(client), bundles["binary"], owner=alice)
    rows = json_rows(features_of(bundles["binary"]).head(1))
    assert client.get("/api/models", headers=as_bob).json()["items"] == []
    for response in (
        client.get(f"/api/models/{model.id}", headers=as_bob),
        client.get(f"/api/models/{model.id}/files/model.onnx", headers=as_bob),
        client.post(f"/api/models/{model.id}/predict", json={"rows": rows}, headers=as_bob),
        client.post(f"/api/models/{model.id}/deploy", headers=as_bob),
        client.post(f"/api/models/{model.id}/undeploy", headers=as_bob),
    ):
        assert response.status_code == 404
    assert client.get("/api/models", headers={}).status_code == 401
    assert client.get(f"/api/models/{model.id}", headers=as_alice).status_code == 200
