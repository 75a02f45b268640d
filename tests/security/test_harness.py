"""The harness itself: both servers answer on loopback, tokens work, memory can be read."""

from __future__ import annotations

from tests.security.conftest import SecServer, child_pids


def test_local_server_answers(sec_server: SecServer) -> None:
    with sec_server.client() as client:
        assert client.get("/health").status_code == 200
        assert client.get("/api/datasets").status_code == 200
    assert sec_server.data_dir.is_dir()
    assert sec_server.rss_kib() > 0
    assert sec_server.peak_rss_kib() >= sec_server.rss_kib()
    assert isinstance(child_pids(sec_server.pid), list)


def test_token_server_needs_a_token(sec_token_server: SecServer) -> None:
    assert set(sec_token_server.tokens) == {"alice", "bob"}
    with sec_token_server.client() as anonymous:
        assert anonymous.get("/api/datasets").status_code == 401
    for user in ("alice", "bob"):
        with sec_token_server.client(user) as client:
            assert client.get("/api/datasets").status_code == 200
