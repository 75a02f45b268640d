"""Who is calling: local mode, tokens, deploy keys, loopback checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from tabpilot.errors import Conflict, InvalidInput, Unauthenticated
from tabpilot.metadata import build_metadata_store
from tabpilot.metadata.base import MetadataStore
from tabpilot.services.auth import (
    authenticate,
    check_bind_host,
    hash_token,
    is_loopback_host,
    local_owner,
)
from tabpilot.services.users import create_user, list_all_users, rotate_token
from tabpilot.settings import load_settings


@pytest.fixture
def store(tmp_path: Path) -> MetadataStore:
    with build_metadata_store(f"sqlite:///{tmp_path / 'db.sqlite'}") as opened:
        yield opened


def test_local_mode_is_the_os_user(store: MetadataStore) -> None:
    principal = authenticate(store, mode="local", token=None)
    assert principal.owner == local_owner() and principal.auth == "local"
    assert principal.user_id is None
    assert authenticate(store, mode="local", token="anything").owner == local_owner()
    with pytest.raises(Unauthenticated, match="only works for its model's predict"):
        authenticate(store, mode="local", token="tpk_a-deploy-key")


def test_token_mode(store: MetadataStore) -> None:
    user, token = create_user(store, name="alice")
    principal = authenticate(store, mode="token", token=token)
    assert principal.owner == user.id and principal.name == "alice"
    with pytest.raises(Unauthenticated, match="tabpilot users create"):
        authenticate(store, mode="token", token=None)
    for wrong in ("", "tpu_nope", token + "x", "tpk_a-deploy-key"):
        with pytest.raises(Unauthenticated):
            authenticate(store, mode="token", token=wrong)


def test_tokens_are_stored_hashed_and_unique(store: MetadataStore) -> None:
    alice, token_a = create_user(store, name="alice")
    bob, token_b = create_user(store, name="bob")
    assert token_a != token_b
    assert alice.token_hash == hash_token(token_a) and token_a not in alice.token_hash
    with pytest.raises(Conflict):
        create_user(store, name="alice")
    for bad in ("", " ", "a b", "-lead", "x" * 65, "semi;colon"):
        with pytest.raises(InvalidInput):
            create_user(store, name=bad)
    assert [u.name for u in list_all_users(store)] == ["alice", "bob"]
    _, new = rotate_token(store, name="bob")
    with pytest.raises(Unauthenticated):
        authenticate(store, mode="token", token=token_b)
    assert authenticate(store, mode="token", token=new).owner == bob.id


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.5.5.5", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("myhost", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_check_bind_host(tmp_path: Path) -> None:
    local = load_settings(data_dir=tmp_path, runner_uri="inline://")
    check_bind_host(local)
    with pytest.raises(InvalidInput, match="TABPILOT_AUTH=token"):
        check_bind_host(local, "0.0.0.0")
    token = load_settings(data_dir=tmp_path, runner_uri="inline://", auth="token")
    check_bind_host(token, "0.0.0.0")
