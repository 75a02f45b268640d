"""Request limits (issue 11, item 6): body caps enforced while reading and before auth,
header caps, header and body timeouts, and a concurrency limit, against a real
`tabpilot serve` on loopback (raw sockets where a client library would not misbehave)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.security.conftest import SecServer, start_server, stop_server

MIB = 1024 * 1024


# -- item 6: request bodies, headers, slow clients, connections ------------------------------


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecServer]:
    """A token-mode server with small request limits (user "alice")."""
    server = start_server(
        tmp_path_factory.mktemp("sec-limits"),
        auth="token",
        users=("alice",),
        max_body_kb="64",
        max_json_mb="1",
        body_timeout_s="2",
        max_header_kb="16",
        header_timeout_s="3",
        max_connections="8",
    )
    try:
        yield server
    finally:
        stop_server(server)


def raw_exchange(
    server: SecServer,
    head: bytes,
    pieces: Iterator[bytes] | tuple[bytes, ...] = (),
    *,
    timeout_s: float = 10,
) -> tuple[bytes, float]:
    """Send `head` then each piece on a new socket, read until the server closes it or
    `timeout_s`; (what came back, seconds until the server closed or stopped answering)."""
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout_s) as sock:
        try:
            sock.sendall(head)
            for piece in pieces:
                sock.sendall(piece)
        except OSError:
            pass  # the server answered and closed while we were still sending
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except OSError:
            pass
    return received, time.monotonic() - started


def request_head(server: SecServer, method: str, path: str, *headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{server.port}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer[9:12])


def body_of(answer: bytes) -> dict:
    return json.loads(answer.split(b"\r\n\r\n", 1)[1])


def test_a_body_without_any_token_is_401_before_it_is_read(limits_server: SecServer) -> None:
    # The issue: 150 MB of JSON without a token cost +440 MB and 3.4 s before its 401.
    head = request_head(
        limits_server,
        "POST",
        "/api/jobs",
        "Content-Type: application/json",
        f"Content-Length: {150 * MIB}",
    )
    answer, took = raw_exchange(limits_server, head, (b"{" * 1000,))
    assert status_of(answer) == 401
    assert body_of(answer)["error"]["code"] == "unauthenticated"
    assert took < 2


def test_a_declared_oversized_body_is_refused_before_reading(limits_server: SecServer) -> None:
    head = request_head(
        limits_server,
        "POST",
        "/api/jobs",
        "Content-Type: application/json",
        f"Content-Length: {150 * MIB}",
        "Authorization: Bearer not-checked-yet",
    )
    answer, took = raw_exchange(limits_server, head, (b"{" * 1000,))
    assert status_of(answer) == 413
    error = body_of(answer)["error"]
    assert error["code"] == "too_large"
    assert "65,536 bytes" in error["message"]
    assert "TABPILOT_MAX_BODY_KB" in error["message"]
    assert took < 2


def test_a_chunked_body_is_counted_while_it_arrives(limits_server: SecServer) -> None:
    before = limits_server.peak_rss_kib()
    head = request_head(
        limits_server,
        "POST",
        "/api/jobs",
        "Content-Type: application/json",
        "Transfer-Encoding: chunked",
        f"Authorization: Bearer {limits_server.tokens['alice']}",
    )
    block = b"x" * 65536
    pieces = (b"%x\r\n%s\r\n" % (len(block), block) for _ in range(20 * 16))  # 20 MiB
    answer, _ = raw_exchange(limits_server, head, pieces)
    assert status_of(answer) == 413, answer[:300]
    assert "TABPILOT_MAX_BODY_KB" in body_of(answer)["error"]["message"]
    assert (limits_server.peak_rss_kib() - before) / 1024 < 20


def test_predict_json_has_its_own_larger_cap(limits_server: SecServer) -> None:
    headers = {"Authorization": f"Bearer {limits_server.tokens['alice']}"}
    with httpx.Client(base_url=limits_server.base_url, headers=headers, timeout=30) as client:
        small = client.post(
            "/api/models/mdl_nothere/predict", json={"rows": [{"a": "x" * 200_000}]}
        )
        big = client.post(
            "/api/models/mdl_nothere/predict", json={"rows": [{"a": "x" * (2 * MIB)}]}
        )
    assert small.status_code == 404  # under 1 MiB: passed on to the route
    assert big.status_code == 413
    assert "TABPILOT_MAX_JSON_MB" in big.json()["error"]["message"]


def test_oversized_headers_are_refused_and_the_connection_closed(
    limits_server: SecServer,
) -> None:
    before = limits_server.peak_rss_kib()
    head = request_head(limits_server, "GET", "/health", "X-Big: " + "a" * (8 * MIB))
    answer, took = raw_exchange(limits_server, head)
    assert status_of(answer) == 431
    assert b"TABPILOT_MAX_HEADER_KB" in answer
    assert took < 5
    assert (limits_server.peak_rss_kib() - before) / 1024 < 20


def trickle(piece: bytes, every_s: float, count: int) -> Iterator[bytes]:
    for _ in range(count):
        time.sleep(every_s)
        yield piece


def test_trickled_headers_time_out(limits_server: SecServer) -> None:
    start = f"GET /health HTTP/1.1\r\nHost: 127.0.0.1:{limits_server.port}\r\n".encode()
    answer, took = raw_exchange(limits_server, start, trickle(b"X-A: b\r\n", 0.5, 40))
    assert status_of(answer) == 408
    assert b"TABPILOT_HEADER_TIMEOUT_S" in answer
    assert took < 8  # 3 s allowed; it would have gone on for 20 s


def test_an_idle_connection_is_closed(limits_server: SecServer) -> None:
    answer, took = raw_exchange(limits_server, b"", timeout_s=20)
    assert answer == b""
    assert took < 8


def test_a_stalled_body_times_out(limits_server: SecServer) -> None:
    head = request_head(
        limits_server,
        "POST",
        "/api/jobs",
        "Content-Type: application/json",
        "Content-Length: 100",
        f"Authorization: Bearer {limits_server.tokens['alice']}",
    )
    answer, took = raw_exchange(limits_server, head + b'{"dataset_id": ', timeout_s=20)
    assert status_of(answer) == 408
    assert "TABPILOT_BODY_TIMEOUT_S" in body_of(answer)["error"]["message"]
    assert took < 8


def test_connections_beyond_the_limit_get_503(limits_server: SecServer) -> None:
    held = [socket.create_connection(("127.0.0.1", limits_server.port)) for _ in range(8)]
    try:
        with httpx.Client(base_url=limits_server.base_url, timeout=10) as client:
            refused = client.get("/health")
    finally:
        for sock in held:
            sock.close()
    assert refused.status_code == 503
    time.sleep(0.5)
    with httpx.Client(base_url=limits_server.base_url, timeout=10) as client:
        assert client.get("/health").status_code == 200
