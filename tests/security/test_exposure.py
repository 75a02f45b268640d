"""Exposure (issue 11, items 11 and 12): who may reach the server, and what its answers carry.

Against real servers on 127.0.0.1: `tabpilot serve` in local and token mode (the session
fixtures), and `create_app()` under plain uvicorn with proxy headers trusted, which is how a
client on another machine looks to the app without leaving loopback.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.api.exposure import is_local_client
from tabpilot.settings import Settings
from tests.security.conftest import SecServer, start_server, stop_server

REMOTE = "198.51.100.7"  # TEST-NET-2: a documentation address, never a real peer

# create_app() served by another server: uvicorn trusting X-Forwarded-For from anyone, so a
# request naming REMOTE there reaches the app as a client at REMOTE.
UVICORN_APP = """
import sys
import uvicorn
from tabpilot.api.app import create_app
uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            proxy_headers=True, forwarded_allow_ips="*")
"""


def uvicorn_command(port: int) -> list[str]:
    return [sys.executable, "-c", UVICORN_APP, str(port)]


@pytest.fixture(scope="module")
def foreign_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecServer]:
    """`create_app()` in local mode under plain uvicorn (not `tabpilot serve`)."""
    server = start_server(tmp_path_factory.mktemp("sec-uvicorn"), command=uvicorn_command)
    try:
        yield server
    finally:
        stop_server(server)


# -- item 11: local mode refuses other machines, whoever serves the app --------------------------


@pytest.mark.parametrize(
    ("address", "local"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        (None, True),  # a Unix socket
        ("testclient", True),  # Starlette's in-process client
        ("0.0.0.0", False),
        ("10.1.2.3", False),
        ("192.168.1.5", False),
        ("::ffff:192.168.1.5", False),
        ("fe80::1", False),
        ("localhost.example.com", False),
        (REMOTE, False),
    ],
)
def test_which_client_addresses_are_local(address: str | None, local: bool) -> None:
    assert is_local_client(address) is local


def test_app_under_another_server_refuses_a_remote_client(foreign_server: SecServer) -> None:
    remote = {"X-Forwarded-For": REMOTE}
    with foreign_server.client() as client:
        assert client.get("/api/datasets").status_code == 200  # this machine: allowed
        for method, path in [
            ("GET", "/api/datasets"),
            ("GET", "/health"),
            ("GET", "/openapi.json"),
            ("GET", "/"),
            ("POST", "/api/jobs"),
        ]:
            answer = client.request(method, path, headers=remote)
            assert answer.status_code == 403, (method, path, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "not_loopback"
            assert REMOTE in error["message"]
            assert "TABPILOT_AUTH=token" in error["message"]


def test_app_in_process_refuses_a_remote_client(tmp_path: Path) -> None:
    app = create_app(settings=Settings(data_dir=tmp_path, runner_uri="inline://"))
    with TestClient(app, client=("192.0.2.44", 50000)) as remote:
        answer = remote.get("/api/datasets")
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "not_loopback"
    with TestClient(app) as local:
        assert local.get("/api/datasets").status_code == 200


def test_token_mode_app_serves_any_client(tmp_path: Path) -> None:
    app = create_app(settings=Settings(data_dir=tmp_path, runner_uri="inline://", auth="token"))
    with TestClient(app, client=("192.0.2.44", 50000)) as remote:
        assert remote.get("/health").status_code == 200
        assert remote.get("/api/datasets").status_code == 401  # a token, not an address


def test_tabpilot_serve_trusts_a_proxy_on_this_machine(sec_server: SecServer) -> None:
    """`tabpilot serve` in local mode takes the socket's peer, not X-Forwarded-For: a reverse
    proxy on loopback (which may authenticate, e.g. basic auth) keeps working."""
    with sec_server.client() as client:
        answer = client.get("/api/datasets", headers={"X-Forwarded-For": REMOTE})
    assert answer.status_code == 200, answer.text


# -- item 11: the Host check and the cross-site defence cover the API ---------------------------


API_READS = ["/api/datasets", "/api/jobs", "/api/models", "/openapi.json", "/docs"]


@pytest.mark.parametrize("path", API_READS)
def test_api_refuses_a_foreign_host_name(sec_server: SecServer, path: str) -> None:
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends Host: evil.example."""
    with sec_server.client() as client:
        answer = client.get(path, headers={"Host": "evil.example"})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "bad_host"
        assert "TABPILOT_ALLOWED_HOSTS" in answer.json()["error"]["message"]
        assert client.get(path, headers={"Host": f"localhost:{sec_server.port}"}).is_success


def test_token_api_refuses_a_foreign_host_before_the_token(sec_token_server: SecServer) -> None:
    with sec_token_server.client("alice") as client:
        answer = client.get("/api/datasets", headers={"Host": "evil.example"})
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "bad_host"
    with sec_token_server.client() as anonymous:  # refused before authentication
        answer = anonymous.get("/api/datasets", headers={"Host": "evil.example:80"})
        assert answer.status_code == 400


CROSS_SITE = [
    {"Origin": "http://evil.example"},
    {"Origin": "null"},
    {"Origin": "http://127.0.0.1:1"},  # another port of this machine is another origin
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},
]
API_CHANGES = [
    ("POST", "/api/jobs"),
    ("POST", "/api/datasets"),
    ("DELETE", "/api/datasets/ds_missing"),
    ("PATCH", "/api/jobs/job_missing"),
    ("POST", "/api/models/mdl_missing/predict"),
]


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_api_refuses_cross_site_changes_in_local_mode(
    sec_server: SecServer, headers: dict[str, str]
) -> None:
    with sec_server.client() as client:
        for method, path in API_CHANGES:
            answer = client.request(method, path, headers=headers, json={})
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "cross_site"
        # Reads are not changes, and programs without browser headers pass.
        assert client.get("/api/datasets", headers=headers).status_code == 200
        assert client.post("/api/jobs", json={}).status_code == 422


def test_api_refuses_cross_site_changes_in_token_mode(sec_token_server: SecServer) -> None:
    with sec_token_server.client("alice") as client:
        for method, path in API_CHANGES:
            answer = client.request(
                method, path, headers={"Origin": "http://evil.example"}, json={}
            )
            assert answer.status_code == 403, (method, path, answer.text)
            assert answer.json()["error"]["code"] == "cross_site"
        same_origin = {"Origin": sec_token_server.base_url, "Sec-Fetch-Site": "same-origin"}
        assert client.post("/api/jobs", headers=same_origin, json={}).status_code == 422
