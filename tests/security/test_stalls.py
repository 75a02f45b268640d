"""Stalls (issue 11, items 1-4): no cheap request holds up the server, against a real
`tabpilot serve` on loopback.

Each test sends what used to stall the server (a predict row of 20,000 columns, 20,000 tags,
an 8,000-column CSV, dozens of idle event streams) and checks that it gets a clear 4xx quickly,
or is served, while `/health` keeps answering within `HEALTH_BUDGET_S`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tabpilot.records import JobStatus, ModelRecord, new_id
from tests.security.conftest import SecServer, start_server, stop_server

HEALTH_BUDGET_S = 0.2
"""/health answers within this while a hostile request is handled (90% of the calls; the
test machine is shared and loaded, so a rare call may wait for a CPU: `HEALTH_CEILING_S`)."""
HEALTH_CEILING_S = 1.0
"""No /health call at all may take longer (a stall of the event loop took seconds)."""

WIDE = 20_000


# -- helpers -----------------------------------------------------------------------------------


def health_latencies(server: SecServer, busy: Callable[[], None]) -> tuple[list[float], float]:
    """Run `busy` in a thread and time /health calls until it ends; (latencies, busy seconds)."""
    done = threading.Event()
    took: list[float] = []
    errors: list[BaseException] = []

    def work() -> None:
        started = time.perf_counter()
        try:
            busy()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            took.append(time.perf_counter() - started)
            done.set()

    latencies: list[float] = []
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        client.get("/health")  # connection open before timing
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        while not done.is_set() and len(latencies) < 2000:
            started = time.perf_counter()
            assert client.get("/health").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.005)
        thread.join(timeout=60)
    if errors:
        raise errors[0]
    return latencies, took[0]


def assert_health_answered(latencies: list[float], *, slow_allowed: int = 0) -> None:
    """90% of the calls within `HEALTH_BUDGET_S`, and no more than `slow_allowed` over
    `HEALTH_CEILING_S`: where the hostile request is sent several times, a handler that
    blocked the event loop would stall it once per request, while one slow call alone is the
    shared test machine giving its CPUs to something else (seen once in CI: 1.95 s, p90 32 ms)."""
    ordered = sorted(latencies)
    p90 = ordered[int(0.9 * (len(ordered) - 1))]
    slow = [t for t in ordered if t >= HEALTH_CEILING_S]
    shown = (
        f"{len(ordered)} calls, p90 {p90 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms, "
        f"{len(slow)} over {HEALTH_CEILING_S:g} s"
    )
    assert p90 < HEALTH_BUDGET_S, shown
    assert len(slow) <= slow_allowed, shown


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small trained model bundle (5 s budget, no reports)."""
    from tabpilot.engine.spec import TrainSpec
    from tabpilot.engine.training.run import run_training
    from tests.conftest import make_mixed_frame

    root = tmp_path_factory.mktemp("stall-bundle")
    data = root / "train.csv"
    make_mixed_frame(300, seed=1).to_csv(data, index=False)
    run_training(
        data, TrainSpec(target="label", time_budget=5, seed=0), out_dir=root / "m", reports=False
    )
    return root / "m"


def install(server: SecServer, bundle: Path) -> ModelRecord:
    """Put the bundle into the server's stores as a finished job would (local owner)."""
    from tabpilot.context import build_context
    from tabpilot.services.auth import local_owner
    from tabpilot.settings import load_settings
    from tabpilot.storage import keys
    from tests.factories import add_dataset, add_job, add_model

    ctx = build_context(load_settings(data_dir=server.data_dir, runner_uri="inline://"))
    try:
        owner = local_owner()
        dataset = add_dataset(ctx.metadata, owner=owner, filename="t.csv", n_rows=300)
        job = add_job(ctx.metadata, dataset, status=JobStatus.SUCCEEDED)
        model_id = new_id("mdl")
        for name in ("model.onnx", "model.json"):
            ctx.artifacts.put_file(keys.model_file(model_id, name), bundle / name)
        card = json.loads((bundle / "model.json").read_text())
        return add_model(ctx.metadata, job, id=model_id, card=card)
    finally:
        ctx.metadata.close()


@pytest.fixture(scope="module")
def model(sec_server: SecServer, bundle: Path) -> Iterator[tuple[ModelRecord, dict]]:
    """A model in the shared local server, and one valid row for it."""
    record = install(sec_server, bundle)
    features = [f["name"] for f in record.card["features"]]
    with sec_server.client() as client:
        frame_row = {"x1": 0.5, "x2": 10.0, "color": "red", "city": "city01", "flag": True}
        frame_row |= {"signup": "2024-01-02", "comment": "premium fast order"}
        row = {name: frame_row.get(name) for name in features}
        answer = client.post(f"/api/models/{record.id}/predict", json={"rows": [row]})
        assert answer.status_code == 200, answer.text
    yield record, row


# -- 1. predict ----------------------------------------------------------------------------------


def test_a_20000_column_row_is_refused_quickly_and_health_answers(
    sec_server: SecServer, model: tuple[ModelRecord, dict]
) -> None:
    record, row = model
    wide = {**row, **{f"extra_{i}": i for i in range(WIDE)}}
    url = f"{sec_server.base_url}/api/models/{record.id}/predict"
    answers: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(timeout=30) as client:
            for _ in range(3):
                answers.append(client.post(url, json={"rows": [wide]}))

    latencies, took = health_latencies(sec_server, send)
    assert [a.status_code for a in answers] == [422] * 3, answers[0].text
    message = answers[0].json()["error"]["message"]
    assert "TABPILOT_PREDICT_MAX_EXTRA_COLUMNS" in message and "20," in message
    assert took < 6, f"three refusals took {took:.1f} s"
    assert_health_answered(latencies, slow_allowed=1)  # three requests: a stall shows 3 times


def test_wide_table_form_and_duplicates_are_linear(
    sec_server: SecServer, model: tuple[ModelRecord, dict]
) -> None:
    """The columns + data form: 20,000 names took 6.6 s (quadratic duplicate check) and held
    /health for as long; now a quick 422."""
    record, row = model
    url = f"/api/models/{record.id}/predict"
    names = list(row) + [f"extra_{i}" for i in range(WIDE)]
    repeated = list(row) + ["dup"] * 900

    def send() -> None:
        with sec_server.client() as client:
            wide = client.post(url, json={"columns": names, "data": [[None] * len(names)]})
            assert wide.status_code == 422
            assert "TABPILOT_PREDICT_MAX_EXTRA_COLUMNS" in wide.json()["error"]["message"]
            # Within the limit but a name repeated: found in one pass, named briefly.
            body = {"columns": repeated, "data": [[None] * len(repeated)]}
            dup = client.post(url, json=body)
            assert dup.status_code == 422
            assert "'dup'" in dup.json()["error"]["message"]

    latencies, took = health_latencies(sec_server, send)
    assert took < 5, f"took {took:.1f} s"
    assert_health_answered(latencies)


def test_a_wide_csv_to_predict_csv_is_refused(
    sec_server: SecServer, model: tuple[ModelRecord, dict]
) -> None:
    record, row = model
    names = list(row) + [f"extra_{i}" for i in range(WIDE)]
    values = ["" if v is None else str(v) for v in row.values()] + ["1"] * WIDE
    body = (",".join(names) + "\n" + ",".join(values) + "\n").encode()
    url = f"{sec_server.base_url}/api/models/{record.id}/predict.csv"

    def send() -> None:
        with httpx.Client(timeout=30) as client:
            answer = client.post(url, content=body, headers={"Content-Type": "text/csv"})
            assert answer.status_code == 422, answer.text
            assert "TABPILOT_PREDICT_MAX_EXTRA_COLUMNS" in answer.json()["error"]["message"]

    latencies, took = health_latencies(sec_server, send)
    assert took < 5
    assert_health_answered(latencies)


def test_a_large_json_body_is_handled_off_the_event_loop(
    sec_server: SecServer, model: tuple[ModelRecord, dict]
) -> None:
    """3 MB of JSON within the width limit (long values in ignored columns) is served, and
    /health is not held up while it is parsed."""
    record, row = model
    wide = {**row, **{f"note_{i}": "x" * 3000 for i in range(1000)}}
    url = f"{sec_server.base_url}/api/models/{record.id}/predict"
    answers: list[httpx.Response] = []

    def send() -> None:
        with httpx.Client(timeout=30) as client:
            answers.append(client.post(url, json={"rows": [wide] * 1}))

    latencies, _ = health_latencies(sec_server, send)
    assert answers[0].status_code == 200, answers[0].text
    assert len(answers[0].json()["ignored_columns"]) == 1000
    assert_health_answered(latencies)


def test_width_limit_is_a_setting(tmp_path: Path, bundle: Path) -> None:
    server = start_server(tmp_path, predict_max_extra_columns="2")
    try:
        record = install(server, bundle)
        features = [f["name"] for f in record.card["features"]]
        row = dict.fromkeys(features)
        url = f"/api/models/{record.id}/predict"
        with server.client() as client:
            ok = client.post(url, json={"rows": [{**row, "a": 1, "b": 2}]})
            assert ok.status_code == 200, ok.text
            refused = client.post(url, json={"rows": [{**row, "a": 1, "b": 2, "c": 3, "d": 4}]})
            assert refused.status_code == 422
    finally:
        stop_server(server)


# -- 2. tags, include and exclude ---------------------------------------------------------------


def upload_small_dataset(client: httpx.Client) -> str:
    rows = "\n".join(f"{i},{i % 3},{'ab'[i % 2]}" for i in range(40))
    answer = client.post("/api/datasets", files={"file": ("s.csv", f"a,b,y\n{rows}\n")})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def test_20000_tags_are_refused_at_once(sec_server: SecServer) -> None:
    """20,000 tags on a job that does not exist took 3.7 s (quadratic de-duplication run
    before the lookup); now the list's length is checked first."""
    tags = [f"t{i}" for i in range(WIDE)]
    with sec_server.client() as client:
        started = time.perf_counter()
        patched = client.patch("/api/jobs/job_0123456789abcdef", json={"tags": tags})
        assert patched.status_code == 422, patched.text
        dataset_id = upload_small_dataset(client)
        created = client.post(
            "/api/jobs", json={"dataset_id": dataset_id, "target": "y", "tags": tags}
        )
        assert created.status_code == 422, created.text
        assert time.perf_counter() - started < 3
        # Within the bound, a missing job is looked up before its tags are checked.
        few = client.patch("/api/jobs/job_0123456789abcdef", json={"tags": ["x"] * 50})
        assert few.status_code == 404, few.text


def test_long_include_and_exclude_lists_are_linear(sec_server: SecServer) -> None:
    with sec_server.client() as client:
        dataset_id = upload_small_dataset(client)
        started = time.perf_counter()
        names = [f"c{i}" for i in range(10_000)]
        for option in ("include", "exclude"):
            body = {"dataset_id": dataset_id, "target": "y", option: names}
            answer = client.post("/api/jobs", json=body)
            assert answer.status_code == 422, answer.text
            message = answer.json()["error"]["message"]
            assert "'c0'" in message and "more" in message and len(message) < 2000
        too_many = client.post(
            "/api/jobs", json={"dataset_id": dataset_id, "target": "y", "include": names * 3}
        )
        assert too_many.status_code == 422
        assert time.perf_counter() - started < 3


# -- 3. wide files ----------------------------------------------------------------------------


def wide_csv(n_columns: int, n_rows: int = 15) -> bytes:
    header = ",".join(f"c{i}" for i in range(n_columns))
    rows = [",".join(f"v{(r * 7 + i) % 13}" for i in range(n_columns)) for r in range(n_rows)]
    return ("\n".join([header, *rows]) + "\n").encode()


def test_an_8000_column_csv_is_refused_before_profiling(sec_server: SecServer) -> None:
    """8,000 columns x 15 rows cost 41.7 s of server CPU and a 7.75 MB answer; now a 422
    naming the setting, quickly, while /health answers."""
    body = wide_csv(8000)
    answers: list[httpx.Response] = []

    def send() -> None:
        with sec_server.client() as client:
            answers.append(client.post("/api/datasets", files={"file": ("wide.csv", body)}))

    latencies, took = health_latencies(sec_server, send)
    assert answers[0].status_code == 422, answers[0].text[:500]
    message = answers[0].json()["error"]["message"]
    assert message.startswith("wide.csv: has 8,000 columns") and "TABPILOT_MAX_COLUMNS" in message
    assert took < 5, f"took {took:.1f} s"
    assert_health_answered(latencies)


def test_a_huge_cell_is_refused_and_long_values_are_cut(sec_server: SecServer) -> None:
    with sec_server.client() as client:
        huge = f"a,b\n1,{'x' * 200_000}\n2,y\n".encode()
        refused = client.post("/api/datasets", files={"file": ("huge.csv", huge)})
        assert refused.status_code == 422, refused.text[:500]
        assert "TABPILOT_MAX_CELL_CHARS" in refused.json()["error"]["message"]
        long_value = "L" * 5000
        rows = "\n".join(f"{i},{long_value if i % 2 else 'short'}" for i in range(30))
        accepted = client.post("/api/datasets", files={"file": ("long.csv", f"a,b\n{rows}\n")})
        assert accepted.status_code == 201, accepted.text[:500]
        assert len(accepted.content) < 20_000, "cells are cut in the stored profile"
        profile = accepted.json()
        column = next(c for c in profile["columns"] if c["name"] == "b")
        shown = column["examples"] + [t["value"] for t in column["top_values"]]
        shown += [str(row[1]) for row in profile["preview"]["rows"]]
        assert max(len(v) for v in shown) <= 200
        listing = client.get("/api/datasets", params={"limit": 100})
        assert listing.status_code == 200 and len(listing.content) < 50_000


def test_column_limit_is_a_setting(tmp_path: Path) -> None:
    server = start_server(tmp_path, max_columns="5")
    try:
        with server.client() as client:
            ok = client.post("/api/datasets", files={"file": ("five.csv", wide_csv(5, 20))})
            assert ok.status_code == 201, ok.text[:300]
            six = client.post("/api/datasets", files={"file": ("six.csv", wide_csv(6, 20))})
            assert six.status_code == 422
            assert "at most 5 (TABPILOT_MAX_COLUMNS)" in six.json()["error"]["message"]
    finally:
        stop_server(server)


# -- 4. event streams ---------------------------------------------------------------------------


def running_job(server: SecServer, user: str | None = None) -> str:
    """A job recorded as running (with a lease far ahead, so no worker touches it)."""
    from datetime import UTC, datetime, timedelta

    from tabpilot.context import build_context
    from tabpilot.services.auth import local_owner
    from tabpilot.settings import load_settings
    from tests.factories import add_dataset, add_job

    ctx = build_context(load_settings(data_dir=server.data_dir, runner_uri="inline://"))
    try:
        owner = local_owner()
        if user is not None:
            found = ctx.metadata.find_user_by_name(user)
            assert found is not None
            owner = found.id
        dataset = add_dataset(ctx.metadata, owner=owner, filename="t.csv", n_rows=10)
        job = add_job(
            ctx.metadata,
            dataset,
            status=JobStatus.RUNNING,
            lease_owner="elsewhere",
            lease_expires_at=datetime.now(UTC) + timedelta(days=1),
            message="queued",
        )
        return job.id
    finally:
        ctx.metadata.close()


class OpenStream:
    """A stream held open: its first event read, closed on `close`."""

    def __init__(self, client: httpx.Client, job_id: str) -> None:
        self._context = client.stream("GET", f"/api/jobs/{job_id}/stream")
        self.response = self._context.__enter__()
        self.lines = self.response.iter_lines() if self.response.status_code == 200 else None
        if self.lines is not None:
            for line in self.lines:  # up to the first event: the stream is live
                if line.startswith("event: job"):
                    break

    def close(self) -> None:
        self._context.__exit__(None, None, None)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks


def test_streams_are_capped_per_user_and_in_all(tmp_path: Path) -> None:
    server = start_server(
        tmp_path,
        auth="token",
        users=("alice", "bob"),
        stream_max_per_user="20",
        stream_max_total="24",
    )
    opened: list[OpenStream] = []
    try:
        alice_job, bob_job = running_job(server, "alice"), running_job(server, "bob")
        with server.client("alice") as alice, server.client("bob") as bob:
            opened += [OpenStream(alice, alice_job) for _ in range(20)]
            assert {s.response.status_code for s in opened} == {200}
            # 20 idle streams of one job share one poller: 1-3% of a core (10.7% before, when
            # every stream polled the store itself).
            before, started = cpu_seconds(server.pid), time.monotonic()
            time.sleep(3)
            share = (cpu_seconds(server.pid) - before) / (time.monotonic() - started)
            assert share < 0.05, f"20 idle streams used {share:.0%} of a core"
            extra = OpenStream(alice, alice_job)
            assert extra.response.status_code == 429
            extra.response.read()
            assert "TABPILOT_STREAM_MAX_PER_USER" in extra.response.json()["error"]["message"]
            extra.close()
            opened += [OpenStream(bob, bob_job) for _ in range(4)]
            assert {s.response.status_code for s in opened} == {200}
            full = OpenStream(bob, bob_job)
            assert full.response.status_code == 429
            full.response.read()
            assert "TABPILOT_STREAM_MAX_TOTAL" in full.response.json()["error"]["message"]
            full.close()
            # A closed stream gives its slot back.
            opened.pop().close()
            deadline = time.monotonic() + 5
            while True:
                again = OpenStream(bob, bob_job)
                if again.response.status_code == 200 or time.monotonic() > deadline:
                    break
                again.response.read()
                again.close()
                time.sleep(0.2)
            assert again.response.status_code == 200
            opened.append(again)
    finally:
        for stream in opened:
            stream.close()
        stop_server(server)


def test_a_stream_ends_after_its_lifetime_and_resumes(tmp_path: Path) -> None:
    server = start_server(tmp_path, stream_max_seconds="2")
    try:
        job_id = running_job(server)
        with server.client() as client:
            started = time.monotonic()
            text = client.get(f"/api/jobs/{job_id}/stream", timeout=20).text
            took = time.monotonic() - started
            assert 1.5 < took < 8, f"the stream lasted {took:.1f} s"
            assert "event: job" in text and "id: 1" in text and "event: end" not in text
            resumed = client.get(
                f"/api/jobs/{job_id}/stream", headers={"Last-Event-ID": "1"}, timeout=20
            ).text
            assert "event: job" in resumed and "id: 1" not in resumed
    finally:
        stop_server(server)
