"""The whole REST API fuzzed from its own /openapi.json (issue 11), and what the fuzzer found.

`test_fuzzer_finds_nothing` is the bounded run of `make test`: every operation, positive and
negative cases, up to FUZZ_EXAMPLES each with a fixed seed, on a token-mode server with users
alice and bob (a trained, deployed model each; see tests/security/fuzzing.py for the callers,
the id substitutions and the checks). bench/fuzz.py is the long run (10,000 cases or more).
The tests after it keep what the fuzzer found fixed, each with the request it found.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.conftest import SecServer
from tests.security.fuzzing import (
    FAILURE_KINDS,
    Fuzzer,
    Table,
    UserObjects,
    bob_changes,
    load_schema,
    make_plan,
    seeded_server,
    snapshot,
)

FUZZ_EXAMPLES = 25
"""Cases per operation and generation mode in `make test` (about 1,100 cases in all)."""
FUZZ_SEED = 20261204

# Operations whose success the bounded run must reach (alice's own objects, the right shapes):
# a run answered only 401, 404 and 422 would prove little.
MUST_SUCCEED = {
    "GET /api/datasets/{dataset_id}",
    "GET /api/datasets/{dataset_id}/eda.html",
    "GET /api/jobs/{job_id}",
    "GET /api/models/{model_id}",
    "GET /api/models/{model_id}/files/{name}",
    "POST /api/models/{model_id}/deploy",
    "POST /api/models/{model_id}/predict",
    "PATCH /api/jobs/{job_id}",
    "GET /api/jobs",
    "GET /api/datasets",
    "GET /api/models",
}

World = tuple[SecServer, dict[str, UserObjects]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A token-mode server with alice's and bob's seeded objects (two 5 s training jobs)."""
    with seeded_server(tmp_path_factory.mktemp("fuzz")) as seeded:
        yield seeded


@pytest.mark.slow
def test_fuzzer_finds_nothing(world: World) -> None:
    server, seeded = world
    before = snapshot(server, "bob", seeded["bob"])
    schema = load_schema(server)
    tally = Fuzzer(server, seeded).run(schema, examples=FUZZ_EXAMPLES, rng_seed=FUZZ_SEED)
    report = "\n\n".join(
        f"{f.kind}: {f.operation} as {f.caller} -> {f.status}\n{f.detail}\n{f.curl}"
        for f in tally.failures[:20]
    )
    assert tally.failures == [], f"{len(tally.failures)} failure(s):\n{report}"
    assert tally.server_errors() == 0
    operations = {result.ok().label for result in schema.get_all_operations()}
    assert set(tally.by_operation) == operations  # every operation was fuzzed
    assert tally.cases >= 800, tally.cases
    succeeded = {op for (op, status), _ in tally.by_outcome.items() if 200 <= status < 300}
    assert succeeded >= MUST_SUCCEED, sorted(MUST_SUCCEED - succeeded)
    assert bob_changes(server, seeded["bob"], before) == []


def test_checks_catch_leaks_traces_and_cross_user_success(world: World) -> None:
    """The checks themselves fail on what they look for (and let an echoed id through)."""
    server, seeded = world
    fuzzer = Fuzzer(server, seeded)
    operation = load_schema(server)["/api/jobs/{job_id}"]["GET"]
    bob_job = seeded["bob"].ids["job_id"][0]
    case = operation.Case(path_parameters={"job_id": "job_0"})
    plan = make_plan(case, 0, ((1, 2, 3, 4), Table(("a",), (), "utf-8")))
    answers: list[tuple[int, bytes, bool]] = [
        (200, f'{{"id": "{bob_job}"}}'.encode(), False),  # leak
        (200, f'{{"marker": "{seeded["bob"].marker}"}}'.encode(), False),  # leak
        (404, f'{{"error": "{server.data_dir}/x"}}'.encode(), False),  # trace and envelope
        (500, b'Traceback (most recent call last):\n  File "x.py"', False),  # 5xx, trace
        (200, b"{}", True),  # bob's object answered 200: cross_user
    ]
    for status, content, foreign in answers:
        fuzzer._check(case, plan, status, {}, content, "", foreign)
    kinds = [f.kind for f in fuzzer.tally.failures]
    assert set(kinds) == set(FAILURE_KINDS) - {"transport"}  # a dropped connection is not faked
    assert kinds.count("leak") == 2 and kinds.count("trace") == 2
    echoed = Fuzzer(server, seeded)
    sent = f'{{"job_id": "{bob_job}"}}'
    echo = f'{{"error": {{"code": "not_found", "message": "Job {bob_job} not found"}}}}'
    echoed._check(case, plan, 404, {}, echo.encode(), sent, True)
    assert echoed.tally.failures == []


# -- what the fuzzer found ----------------------------------------------------------------------


def _alice_job(world: World) -> tuple[SecServer, str]:
    server, seeded = world
    return server, seeded["alice"].ids["job_id"][0]


@pytest.mark.slow
def test_events_after_beyond_a_store_integer_is_a_clear_422(world: World) -> None:
    """Found: GET /api/jobs/{id}/events?after=340402986070986981376 answered 500 (SQLite
    OverflowError: Python int too large to convert to SQLite INTEGER)."""
    server, job_id = _alice_job(world)
    with server.client("alice") as client:
        for url in (f"/api/jobs/{job_id}/events", f"/api/jobs/{job_id}/stream"):
            for after in (2**63, 340402986070986981376, 10**400):
                answer = client.get(url, params={"after": str(after)})
                assert answer.status_code == 422, (url, after, answer.text)
                error = answer.json()["error"]
                assert "after" in error["message"] and "9223372036854775807" in error["message"]
            highest = client.get(url, params={"after": str(2**63 - 1)})
            assert highest.status_code == 200, highest.text
        events = client.get(f"/api/jobs/{job_id}/events", params={"after": 2**63 - 1})
        assert events.json() == []


@pytest.mark.slow
def test_stream_ignores_a_last_event_id_no_store_could_have_sent(world: World) -> None:
    """Found with the fix above: `Last-Event-ID: ²` (byte 0xB2, which the server reads as
    Latin-1: a digit to str.isdigit, not to int) or a 5,000-digit number (past int's limit)
    made the stream answer 500; the header only says where to resume, so such values are
    ignored and the whole log is replayed."""
    server, job_id = _alice_job(world)
    with server.client("alice") as client:
        full = client.get(f"/api/jobs/{job_id}/stream").text
        assert "event: end" in full
        values: list[bytes] = [b"\xb2", b"9" * 5000, str(2**63).encode(), b"-1", b"12a"]
        for value in values:
            answer = client.get(f"/api/jobs/{job_id}/stream", headers={"Last-Event-ID": value})
            assert answer.status_code == 200, (value[:20], answer.text[:300])
            assert answer.text.count("event: status") == full.count("event: status"), value[:20]
        resumed = client.get(f"/api/jobs/{job_id}/stream", headers={"Last-Event-ID": "1"})
        assert resumed.text.count("event: status") == full.count("event: status") - 1
