"""`tabpilot serve` (checks before serving) and `tabpilot users` (create, list, rotate)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.cli import main
from tabpilot.metadata import build_metadata_store
from tabpilot.services.auth import USER_TOKEN_PREFIX, hash_token
from tests.api.support import make_ctx


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("TABPILOT_AUTH", "TABPILOT_HOST", "TABPILOT_DATA_DIR", "TABPILOT_PORT"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


def never_serve(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    import uvicorn

    calls: list[dict] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_serve_refuses_a_public_host_in_local_mode(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, host: str
) -> None:
    calls = never_serve(monkeypatch)
    result = runner.invoke(main, ["serve", "--host", host, "--data-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "TABPILOT_AUTH=token" in result.output and host in result.output
    assert calls == []


def test_serve_names_every_bad_setting(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = never_serve(monkeypatch)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    monkeypatch.setenv("TABPILOT_RUNNER_URI", "carrier-pigeon://")
    monkeypatch.setenv("TABPILOT_METADATA_URI", "mysql://db")
    result = runner.invoke(main, ["serve", "--data-dir", str(not_a_dir)])
    assert result.exit_code == 2
    for name in ("TABPILOT_DATA_DIR", "TABPILOT_RUNNER_URI", "TABPILOT_METADATA_URI"):
        assert name in result.output
    assert "Traceback" not in result.output
    assert calls == []


def test_serve_runs_uvicorn_with_the_app_on_loopback(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = never_serve(monkeypatch)
    monkeypatch.setenv("TABPILOT_RUNNER_URI", "inline://")
    result = runner.invoke(main, ["serve", "--port", "8765", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 0, result.output
    assert len(calls) == 1
    expected = {"host": "127.0.0.1", "port": 8765, "log_level": "info", "proxy_headers": False}
    assert {key: calls[0].get(key) for key in expected} == expected
    assert calls[0]["limit_concurrency"] == 500  # TABPILOT_MAX_CONNECTIONS
    assert "http://127.0.0.1:8765" in result.output
    assert (tmp_path / "data" / "tabpilot.db").is_file()
    # Token mode may listen anywhere.
    monkeypatch.setenv("TABPILOT_AUTH", "token")
    result = runner.invoke(main, ["serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert calls[-1]["host"] == "0.0.0.0"
    assert calls[-1]["proxy_headers"] is True  # behind a TLS proxy, X-Forwarded-* count


def test_users_create_list_rotate(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TABPILOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TABPILOT_AUTH", "token")
    result = runner.invoke(main, ["users", "create", "alice"])
    assert result.exit_code == 0, result.output
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith(USER_TOKEN_PREFIX) and len(token) > 40
    assert "shown only now" in result.stderr

    again = runner.invoke(main, ["users", "create", "alice"])
    assert again.exit_code == 2 and "already exists" in again.output
    bad = runner.invoke(main, ["users", "create", "no spaces please"])
    assert bad.exit_code == 2 and "not valid" in bad.output

    listed = runner.invoke(main, ["users", "list"])
    assert listed.exit_code == 0 and "alice" in listed.output and token not in listed.output
    as_json = runner.invoke(main, ["users", "list", "--json"])
    assert '"name": "alice"' in as_json.stdout

    db = f"sqlite:///{tmp_path / 'data' / 'tabpilot.db'}"
    with build_metadata_store(db) as store:
        user = store.find_user_by_name("alice")
        assert user is not None and user.token_hash == hash_token(token)
        assert token not in str(store.list_users().items)

    # The printed token opens the API; after a rotation only the new one does.
    ctx = make_ctx(tmp_path, auth="token")
    with TestClient(create_app(ctx)) as client:
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/jobs", headers=headers).status_code == 200
        rotated = runner.invoke(main, ["users", "rotate", "alice"])
        assert rotated.exit_code == 0, rotated.output
        new_token = rotated.stdout.strip().splitlines()[-1]
        assert client.get("/api/jobs", headers=headers).status_code == 401
        new_headers = {"Authorization": f"Bearer {new_token}"}
        assert client.get("/api/jobs", headers=new_headers).status_code == 200
    ctx.metadata.close()
    missing = runner.invoke(main, ["users", "rotate", "nobody"])
    assert missing.exit_code == 2 and "No user named" in missing.output


def test_users_create_warns_in_local_mode(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = runner.invoke(main, ["users", "create", "bob", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "TABPILOT_AUTH is local" in result.stderr
    empty = runner.invoke(main, ["users", "list", "--data-dir", str(tmp_path / "other")])
    assert empty.exit_code == 0 and "No users yet" in empty.output
