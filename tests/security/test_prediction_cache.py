"""Predictions reuse the model record while the metadata store is unchanged
(`tabpilot.metadata.cache.VersionedCache`, keyed on SQLite's `PRAGMA data_version`). Whatever
changes the record must take effect at the next request, whichever process changed it: a
revoked or replaced deploy key, a deleted model, a rotated user token (the user record is
reused the same way). Checked on the cache itself (writes from
another connection and from another process) and against a real token-mode server whose
records are changed by this test process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tabpilot.metadata import build_metadata_store
from tabpilot.metadata.base import MetadataStore
from tabpilot.metadata.cache import VersionedCache
from tabpilot.records import JobStatus, ModelRecord
from tabpilot.services.auth import hash_token
from tabpilot.services.models import hash_deploy_key
from tests.factories import add_dataset, add_job, add_model
from tests.security.conftest import SecServer, start_server, stop_server
from tests.servers import server_environment, tabpilot_command

ROW = {"rows": [{"x": 1}]}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MetadataStore]:
    with build_metadata_store(f"sqlite:///{tmp_path / 'meta.db'}") as opened:
        yield opened


def a_model(store: MetadataStore, owner: str = "alice") -> ModelRecord:
    dataset = add_dataset(store, owner=owner)
    return add_model(store, add_job(store, dataset, status=JobStatus.SUCCEEDED))


def test_data_version_moves_with_every_commit_of_any_connection(
    store: MetadataStore, tmp_path: Path
) -> None:
    first = store.data_version()
    assert first is not None
    assert store.data_version() == first  # reads change nothing
    store.list_models(owner=None)
    assert store.data_version() == first
    a_model(store)  # this store's own pooled connections
    second = store.data_version()
    assert second != first
    with build_metadata_store(f"sqlite:///{tmp_path / 'meta.db'}") as other:
        a_model(other, owner="bob")
    assert store.data_version() != second


def test_cache_reuses_a_record_until_another_process_writes(
    store: MetadataStore, tmp_path: Path
) -> None:
    model = a_model(store)
    cache: VersionedCache[ModelRecord] = VersionedCache(store)
    reads: list[str] = []

    def load() -> ModelRecord | None:
        reads.append(model.id)
        return store.find_model(model.id, owner="alice")

    assert cache.get("m", load) is not None
    assert cache.get("m", load) is not None
    assert len(reads) == 1 and cache.hits == 1
    # Deleted by another process: the next get reads again and finds nothing.
    script = (
        "import sys; from tabpilot.metadata import build_metadata_store as b; "
        "s = b(sys.argv[1]); s.delete_model(sys.argv[2], owner=None); s.close()"
    )
    subprocess.run(
        [sys.executable, "-c", script, f"sqlite:///{tmp_path / 'meta.db'}", model.id],
        check=True,
        timeout=60,
    )
    assert cache.get("m", load) is None
    assert len(reads) == 2


def test_cache_keeps_only_found_records_and_is_bounded(store: MetadataStore) -> None:
    cache: VersionedCache[str] = VersionedCache(store, max_entries=2)
    assert cache.get("missing", lambda: None) is None
    for key in ("a", "b", "c"):
        assert cache.get(key, lambda key=key: key.upper()) == key.upper()
    reads: list[str] = []
    assert cache.get("a", lambda: reads.append("a") or "A") == "A"
    assert reads == ["a"]  # "a" was the least recently used, so it went
    assert cache.get("c", lambda: reads.append("c") or "C") == "C"
    assert reads == ["a"]


# -- against a real server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecServer]:
    started = start_server(
        tmp_path_factory.mktemp("sec-cache"), auth="token", users=("alice", "carol")
    )
    try:
        yield started
    finally:
        stop_server(started)


def server_store(server: SecServer) -> MetadataStore:
    return build_metadata_store(f"sqlite:///{server.data_dir / 'tabpilot.db'}")


def alice_model(server: SecServer) -> ModelRecord:
    """A model record of alice, made by this process; it has no files, so a prediction that
    passes every check ends in 404 "has no model.onnx" (a refusal says otherwise)."""
    with server_store(server) as store:
        alice = store.find_user_by_token_hash(hash_token(server.tokens["alice"]))
        assert alice is not None
        return a_model(store, owner=alice.id)


def predict(server: SecServer, model_id: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/api/models/{model_id}/predict",
        json=ROW,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def passed_checks(answer: httpx.Response) -> bool:
    return answer.status_code == 404 and "has no model.onnx" in answer.json()["error"]["message"]


def test_a_key_revoked_by_another_process_stops_at_once(server: SecServer) -> None:
    model = alice_model(server)
    with server.client("alice") as client:
        key = client.post(f"/api/models/{model.id}/deploy").json()["key"]
    for _ in range(3):  # the second and third reuse the record
        assert passed_checks(predict(server, model.id, key))
    with server_store(server) as store:
        store.update_model(model.id, owner=None, deploy_key_hash=None)
    refused = predict(server, model.id, key)
    assert refused.status_code == 401, refused.text


def test_a_replaced_key_stops_at_once(server: SecServer) -> None:
    model = alice_model(server)
    with server.client("alice") as client:
        old = client.post(f"/api/models/{model.id}/deploy").json()["key"]
        assert passed_checks(predict(server, model.id, old))
        new = client.post(f"/api/models/{model.id}/deploy").json()["key"]
    assert predict(server, model.id, old).status_code == 401
    assert passed_checks(predict(server, model.id, new))
    with server_store(server) as store:  # a key set by another process works at once
        store.update_model(model.id, owner=None, deploy_key_hash=hash_deploy_key(old))
    assert passed_checks(predict(server, model.id, old))
    assert predict(server, model.id, new).status_code == 401


def test_a_model_deleted_by_another_process_is_gone_at_once(server: SecServer) -> None:
    model = alice_model(server)
    token = server.tokens["alice"]
    for _ in range(3):
        assert passed_checks(predict(server, model.id, token))
    with server_store(server) as store:
        store.delete_model(model.id, owner=None)
    gone = predict(server, model.id, token)
    assert gone.status_code == 404
    assert "not found" in gone.json()["error"]["message"]


def test_a_token_rotated_by_another_process_stops_at_once(server: SecServer) -> None:
    old = server.tokens["carol"]
    for _ in range(3):  # the second and third reuse the user record
        assert httpx.get(f"{server.base_url}/api/models", headers=bearer(old)).status_code == 200
    rotated = subprocess.run(
        [*tabpilot_command(), "users", "rotate", "carol"],
        env=server_environment(server.data_dir, auth="token"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    new = rotated.stdout.strip().splitlines()[-1]
    assert httpx.get(f"{server.base_url}/api/models", headers=bearer(old)).status_code == 401
    assert httpx.get(f"{server.base_url}/api/models", headers=bearer(new)).status_code == 200


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
