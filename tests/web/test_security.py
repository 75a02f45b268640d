"""Browser security and page plumbing, in-process (no browser): hosts, cross-site requests,
CSRF, sessions, error pages, escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.context import AppContext
from tabpilot.errors import InvalidInput
from tabpilot.services.users import create_user, rotate_token
from tabpilot.settings import load_settings
from tabpilot.web.render import TEMPLATES_DIR
from tabpilot.web.security import HostPolicy, host_name
from tabpilot.web.sessions import SESSION_TTL, load_secret, new_session, read_session
from tests.api.support import make_ctx

BASE = "http://127.0.0.1:8000"
HTML = {"Accept": "text/html"}


@pytest.fixture
def local_ctx(tmp_path: Path) -> Iterator[AppContext]:
    ctx = make_ctx(tmp_path)
    yield ctx
    ctx.metadata.close()


@pytest.fixture
def token_ctx(tmp_path: Path) -> Iterator[AppContext]:
    ctx = make_ctx(tmp_path, auth="token")
    yield ctx
    ctx.metadata.close()


def csrf_of(client: TestClient) -> str:
    page = client.get("/login", headers=HTML, follow_redirects=False)
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("LOCALHOST", "localhost"),
        ("[::1]:8000", "::1"),
        ("example.com.", "example.com"),
        ("", None),
        (None, None),
        ("[::1", None),
    ],
)
def test_host_name(header: str | None, name: str | None) -> None:
    assert host_name(header) == name


def test_host_policy(tmp_path: Path) -> None:
    default = HostPolicy.from_settings(load_settings(data_dir=tmp_path))
    assert all(default.allows(n) for n in ("127.0.0.1", "localhost", "::1"))
    assert not default.allows("evil.example") and not default.allows(None)
    bound = HostPolicy.from_settings(load_settings(data_dir=tmp_path, host="192.168.1.5"))
    assert bound.allows("192.168.1.5")
    wildcard = HostPolicy.from_settings(load_settings(data_dir=tmp_path, host="0.0.0.0"))
    assert not wildcard.allows("0.0.0.0")
    listed = HostPolicy.from_settings(
        load_settings(data_dir=tmp_path, allowed_hosts="pilot.example.com, *.corp.example")
    )
    assert listed.allows("pilot.example.com") and listed.allows("a.corp.example")
    assert not listed.allows("corp.example.evil") and not listed.allows("example.com")
    assert HostPolicy.from_settings(load_settings(data_dir=tmp_path, allowed_hosts="*")).allows(
        "anything"
    )
    with pytest.raises(InvalidInput, match='TABPILOT_ALLOWED_HOSTS: "https://x" is not a host'):
        load_settings(data_dir=tmp_path, allowed_hosts="https://x")


def test_foreign_hosts_and_cross_site_changes_are_refused(local_ctx: AppContext) -> None:
    with TestClient(create_app(local_ctx), base_url=BASE) as client:
        assert client.get("/api/datasets").status_code == 200
        refused = client.get("/api/datasets", headers={"Host": "rebind.example"})
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "bad_host"
        assert client.get("/health", headers={"Host": "10.0.0.7"}).status_code == 200
        # Only the path requested is exempt, whatever the Host header says.
        crafted = client.get("/api/datasets", headers={"Host": "rebind.example/health?"})
        assert crafted.status_code == 400
        upload = {"file": ("a.csv", b"a,b\n1,2\n3,4\n")}
        for headers in (
            {"Origin": "http://evil.example"},
            {"Origin": "null"},
            {"Origin": "http://127.0.0.1:9999"},  # another port is another origin
            {"Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "same-site"},
        ):
            answer = client.post("/api/datasets", files=upload, headers=headers)
            assert answer.status_code == 403, headers
            assert answer.json()["error"]["code"] == "cross_site"
        same = client.post(
            "/api/datasets",
            files=upload,
            headers={"Origin": BASE, "Sec-Fetch-Site": "same-origin"},
        )
        assert same.status_code == 201
        assert client.post("/api/datasets", files=upload).status_code == 201  # curl
        default_port = client.post(
            "/api/datasets",
            files=upload,
            headers={"Host": "localhost:80", "Origin": "http://localhost"},
        )
        assert default_port.status_code == 201


def test_pages_send_security_headers_and_a_csrf_cookie(local_ctx: AppContext) -> None:
    with TestClient(create_app(local_ctx), base_url=BASE) as client:
        page = client.get("/", headers=HTML)
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        assert page.headers["cache-control"] == "no-store"
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("tabpilot_csrf=") and "HttpOnly" in cookie
        assert "SameSite=Strict" in cookie
        client.cookies.clear()
        api = client.get("/api/datasets")
        assert api.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in api.headers
        assert "set-cookie" not in api.headers  # the CSRF cookie is for pages
        assert "<script>" not in page.text  # every script is a file under /static/


def test_forms_need_the_csrf_token(token_ctx: AppContext) -> None:
    _, token = create_user(token_ctx.metadata, name="bob")
    with TestClient(create_app(token_ctx), base_url=BASE) as client:
        csrf = csrf_of(client)
        refused = client.post("/login", data={"token": token}, headers=HTML)
        assert refused.status_code == 403
        assert "CSRF token" in refused.text and "site-header" in refused.text
        wrong = client.post("/login", data={"token": token, "csrf_token": "x" * 43})
        assert wrong.status_code == 403
        done = client.post(
            "/login",
            data={"token": token, "csrf_token": csrf, "next": "//evil.example/"},
            follow_redirects=False,
        )
        assert done.status_code == 303 and done.headers["location"] == "/"
        session = client.cookies["tabpilot_session"]
        assert token not in session and "Max-Age" in done.headers["set-cookie"]


def test_session_cookie_authenticates_api_calls_with_the_csrf_header(
    token_ctx: AppContext,
) -> None:
    _, token = create_user(token_ctx.metadata, name="bob")
    with TestClient(create_app(token_ctx), base_url=BASE) as client:
        assert client.get("/", headers=HTML, follow_redirects=False).headers["location"] == (
            "/login?next=/"
        )
        csrf = csrf_of(client)
        client.post("/login", data={"token": token, "csrf_token": csrf})
        assert client.get("/api/datasets").status_code == 200
        upload = {"file": ("a.csv", b"a,b\n1,2\n3,4\n")}
        without = client.post("/api/datasets", files=upload)
        assert without.status_code == 403
        assert without.json()["error"]["code"] == "csrf_failed"
        created = client.post("/api/datasets", files=upload, headers={"X-CSRF-Token": csrf})
        assert created.status_code == 201
        assert client.get("/", headers=HTML).status_code == 200
        # The token is worth nothing without the CSRF cookie it was made for.
        client.cookies.delete("tabpilot_csrf")
        bare = client.post("/api/datasets", files=upload, headers={"X-CSRF-Token": csrf})
        assert bare.status_code == 403
        assert bare.json()["error"]["code"] == "csrf_failed"
        assert "set-cookie" not in bare.headers  # API answers mint no cookie

        rotate_token(token_ctx.metadata, name="bob")  # ends every session of bob
        assert client.get("/api/datasets").status_code == 401
        assert client.get("/", headers=HTML, follow_redirects=False).status_code == 303


def test_session_values(token_ctx: AppContext, tmp_path: Path) -> None:
    user, _ = create_user(token_ctx.metadata, name="carol")
    secret = load_secret(tmp_path / "keys")
    assert load_secret(tmp_path / "keys") == secret  # kept in the file
    assert (tmp_path / "keys" / "web-secret.key").stat().st_mode & 0o077 == 0
    value = new_session(secret, user_id=user.id, token_hash=user.token_hash, now=1000.0)
    found = read_session(secret, value, token_ctx.metadata, now=1000.0 + SESSION_TTL - 1)
    assert found is not None and found.owner == user.id and found.name == "carol"
    assert read_session(secret, value, token_ctx.metadata, now=1000.0 + SESSION_TTL + 1) is None
    assert read_session(b"another secret" * 3, value, token_ctx.metadata, now=1000.0) is None
    forged = value.rsplit(".", 1)[0] + ".AAAA"
    assert read_session(secret, forged, token_ctx.metadata, now=1000.0) is None
    other = value.replace(user.id, "usr_0000000000000000")
    assert read_session(secret, other, token_ctx.metadata, now=1000.0) is None
    assert read_session(secret, "garbage", token_ctx.metadata) is None


def test_error_pages_for_browsers_and_envelopes_for_the_api(local_ctx: AppContext) -> None:
    app = create_app(local_ctx)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail at /srv/data")

    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as client:
        missing = client.get("/nowhere", headers=HTML)
        assert missing.status_code == 404 and "Page not found" in missing.text
        assert "There is no page at /nowhere." in missing.text
        assert missing.headers["content-security-policy"]
        assert client.get("/nowhere").json()["error"]["code"] == "not_found"
        assert client.get("/api/nowhere", headers=HTML).json()["error"]["code"] == "not_found"
        dataset = client.get("/datasets/ds_0123456789abcdef", headers=HTML)
        assert dataset.status_code == 404 and "ds_0123456789abcdef" in dataset.text
        failed = client.get("/boom", headers=HTML)
        assert failed.status_code == 500 and "Something went wrong" in failed.text
        assert "err_" in failed.text and "secret detail" not in failed.text
        assert client.get("/boom").json()["error"]["code"] == "internal_error"


def test_templates_never_mark_data_safe() -> None:
    for path in TEMPLATES_DIR.glob("*.html"):
        text = path.read_text()
        assert not re.search(r"\|\s*safe\b", text), f"{path.name} uses |safe"
        assert not re.search(r"<script>|<script\s+(?![^>]*\bsrc=)", text), (
            f"{path.name} has an inline script (the CSP forbids it)"
        )
        assert not re.search(r"\sstyle=", text), f"{path.name} has a style attribute"
