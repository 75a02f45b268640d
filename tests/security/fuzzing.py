"""A property-based fuzzer of the whole REST API, driven by its own /openapi.json (issue 11).

Shared by tests/security/test_fuzz.py (a bounded run in `make test`) and bench/fuzz.py (10,000
cases or more). schemathesis 4 reads the live server's schema and gives, for every operation,
Hypothesis strategies of requests that fit it (positive) and that break it (negative). Each
generated request is sent by one of four callers: user "alice", alice's deploy key, a made-up
token or no credentials. Ids in the path, the query and a JSON body are sometimes replaced by
alice's real objects (so requests get past the 404 into the real work) or by user "bob"'s
(which must stay out of alice's reach); a job's target, a prediction's rows and an upload's file
are sometimes replaced by real column names and small generated CSV tables.

Each answer is checked (failure kinds):

- `server_error`: a 5xx (a 503 from /ready excepted: it reports a degraded store);
  `transport`: the connection dropped or the answer did not come within the timeout;
- `cross_user`: a request naming one of bob's objects succeeded;
- `leak`: one of bob's ids, his deploy key or his marker text is in the answer, though the
  request did not carry it (a 404 may name the id it was given);
- `trace`: "Traceback", 'File "', the data directory, the repository or the folder holding it,
  the Python installation or "site-packages" is in the answer, though the request did not
  carry it;
- `envelope`: a 4xx that is not the JSON error envelope with a code and a message.

After the run `bob_changes` reads bob's objects again as bob: the same as before, and his
deploy key still predicts. The server is `tests.security.conftest.start_server` in token
mode with two local workers (`fuzz_server`): the seed jobs train side by side, and every job
the fuzzer gets queued is canceled at once, so the run trains nothing else.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import secrets
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from schemathesis import Case, GenerationMode

from tests.security.conftest import SecServer, start_server, stop_server, wait_for_job

REPO_ROOT = Path(__file__).resolve().parents[2]
ID_KINDS = ("dataset_id", "job_id", "model_id")
MODEL_FILES = ("model.onnx", "model.pkl", "model.json", "eda.html", "report.html", "card.json")
DESTRUCTIVE = {"DELETE /api/datasets/{dataset_id}", "DELETE /api/jobs/{job_id}"}
REQUEST_TIMEOUT_S = 30.0
SECURITY_TEXT = ("Traceback", 'File "', "site-packages")
FAILURE_KINDS = ("server_error", "transport", "cross_user", "leak", "trace", "envelope")


def fuzz_server(root: Path) -> SecServer:
    """A token-mode server with users alice and bob and two local workers (see module doc)."""
    return start_server(
        root,
        auth="token",
        users=("alice", "bob"),
        runner_uri="local://?workers=2&warm=0",
    )


# -- seeding -------------------------------------------------------------------------------------


@dataclass
class UserObjects:
    """One user's seeded objects: ids by kind, the deployed model's key, a marker text."""

    ids: dict[str, list[str]]
    deploy_key: str
    marker: str
    model_id: str
    features: tuple[str, ...]


def _table(features: tuple[str, ...], rows: int = 60) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*features, "label"])
    for i in range(rows):
        writer.writerow([*(((i * (k + 3)) % 7) for k in range(len(features))), "ab"[i % 5 < 2]])
    return out.getvalue().encode()


def _upload(client: httpx.Client, name: str, body: bytes) -> str:
    answer = client.post(
        "/api/datasets", params={"name": name}, files={"file": (f"{name}.csv", body, "text/csv")}
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _train(client: httpx.Client, dataset_id: str, tags: list[str], notes: str) -> str:
    body = {
        "dataset_id": dataset_id,
        "target": "label",
        "time_budget": 5,
        "estimators": ["rf"],
        "tags": tags,
        "notes": notes,
    }
    answer = client.post("/api/jobs", json=body)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def seed_objects(server: SecServer) -> dict[str, UserObjects]:
    """For alice and bob: a trained, deployed model on its dataset, a spare dataset and a
    canceled job. Bob's names, tags, notes and one column carry his marker."""
    started: dict[str, dict[str, Any]] = {}
    for user in ("alice", "bob"):
        marker = f"{user}mark{secrets.token_hex(6)}"
        features = ("x", "y") if user == "alice" else ("x", "y", f"col_{marker}")
        with server.client(user, timeout=60) as client:
            main = _upload(client, f"main-{marker}", _table(features))
            spare = _upload(client, f"spare-{marker}", _table(features, rows=12))
            job = _train(client, main, [f"t-{marker}"], f"notes {marker}")
            canceled = _train(client, main, [], "")  # on main: no spare delete takes it
            answer = client.post(f"/api/jobs/{canceled}/cancel")
            assert answer.status_code in (200, 409), answer.text
        started[user] = {
            "marker": marker,
            "features": features,
            "ids": {"dataset_id": [main, spare], "job_id": [job, canceled], "model_id": []},
        }
    seeded: dict[str, UserObjects] = {}
    for user, info in started.items():
        with server.client(user, timeout=60) as client:
            job = wait_for_job(client, info["ids"]["job_id"][0])
            assert job["status"] == "succeeded", job
            deployed = client.post(f"/api/models/{job['model_id']}/deploy")
            assert deployed.status_code == 200, deployed.text
        info["ids"]["model_id"].append(job["model_id"])
        seeded[user] = UserObjects(
            info["ids"], deployed.json()["key"], info["marker"], job["model_id"], info["features"]
        )
    return seeded


def snapshot(server: SecServer, user: str, objects: UserObjects) -> dict[str, Any]:
    """What `user` reads of their own objects, as JSON, for a before/after comparison."""
    urls = [f"/api/datasets/{i}" for i in objects.ids["dataset_id"]]
    urls += [f"/api/jobs/{i}" for i in objects.ids["job_id"]]
    urls += [f"/api/models/{i}" for i in objects.ids["model_id"]]
    urls += ["/api/datasets?limit=100", "/api/jobs?limit=100", "/api/models?limit=100"]
    with server.client(user) as client:
        return {url: client.get(url).json() for url in urls}


# -- one case ------------------------------------------------------------------------------------


@dataclass
class Failure:
    kind: str
    operation: str
    caller: str
    status: int | None
    detail: str
    curl: str


@dataclass
class Tally:
    """What a run did: cases by operation and by status, failures, time."""

    cases: int = 0
    by_operation: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    by_outcome: Counter[tuple[str, int]] = field(default_factory=Counter)
    first_answer: dict[tuple[str, int], str] = field(default_factory=dict)
    """The start of the first answer of each (operation, status), to see what a run reached."""
    failures: list[Failure] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def failures_by_kind(self) -> Counter[str]:
        return Counter(f.kind for f in self.failures)

    def server_errors(self) -> int:
        return sum(n for status, n in self.by_status.items() if status >= 500)


@dataclass(frozen=True)
class Plan:
    """Who sends a case, and which generated parts to replace with what.

    Caller, id sources and realism go round in fixed cycles per operation (coprime lengths,
    so a short run still sees every combination); generated values and tables come with the
    case from Hypothesis."""

    caller: str
    ids: tuple[tuple[str, str, int], ...]
    """(slot, "keep" | "own" | "foreign", index) for each id slot of the operation."""
    realistic: bool
    """Replace the target, rows or file with ones that fit the seeded data."""
    values: tuple[Any, ...]
    table: Table


CALLER_CYCLE = ("alice", "deploy_key", "alice", "anonymous", "alice", "deploy_key", "alice")
SOURCE_CYCLE = ("own", "foreign", "keep")
REALISTIC_CYCLE = (True, True, False, True, False)


def make_plan(case: Case, count: int, extras: tuple[tuple[Any, ...], Table]) -> Plan:
    """The plan of the `count`-th case of its operation (see `Plan`)."""
    caller = CALLER_CYCLE[count % len(CALLER_CYCLE)]
    if caller == "anonymous" and count % 2:
        caller = "bad_token"
    source = SOURCE_CYCLE[count % len(SOURCE_CYCLE)]
    ids = tuple((slot, source, count // len(SOURCE_CYCLE)) for slot in _id_slots(case))
    realistic = REALISTIC_CYCLE[count % len(REALISTIC_CYCLE)]
    return Plan(caller, ids, realistic, *extras)


def _id_slots(case: Case) -> list[str]:
    """The slots of a case that hold ids: path:NAME, query:NAME or body:dataset_id."""
    slots = [f"path:{k}" for k in case.path_parameters or {} if k in ID_KINDS]
    slots += [f"query:{k}" for k in case.query or {} if k in (*ID_KINDS, "jobs")]
    if isinstance(case.body, dict) and "dataset_id" in case.body:
        slots.append("body:dataset_id")
    return slots


_VALUES = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.none(),
    st.booleans(),
)


@dataclass(frozen=True)
class Table:
    """A small generated table (hostile text included) to send as CSV."""

    names: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    encoding: str

    def csv(self, names: tuple[str, ...] | None = None, *, numeric: bool = False) -> bytes:
        """The table as CSV, with other column names when given (as many as fit), and only
        numbers in its cells when `numeric` (each other value replaced by its position)."""
        header = list(names or self.names)
        width = len(header)
        rows = [(list(row) * width)[:width] for row in self.rows if row]
        if numeric:
            rows = [[v if _is_number(v) else i for i, v in enumerate(row)] for row in rows]
            rows = rows or [list(range(width))]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
        return out.getvalue().encode(self.encoding, errors="replace")


@st.composite
def _tables(draw: st.DrawFn) -> Table:
    n_cols = draw(st.integers(1, 4))
    names = draw(st.lists(st.text(min_size=1, max_size=8), min_size=n_cols, max_size=n_cols))
    rows = draw(st.lists(st.lists(_VALUES, min_size=n_cols, max_size=n_cols), max_size=6))
    encoding = draw(st.sampled_from(("utf-8", "utf-8", "latin-1", "utf-16")))
    return Table(tuple(names), tuple(tuple(r) for r in rows), encoding)


@st.composite
def cases_with_extras(
    draw: st.DrawFn, strategy: st.SearchStrategy[Case]
) -> tuple[Case, tuple[tuple[Any, ...], Table]]:
    """A generated case with values for a prediction's rows and a table for a CSV."""
    case = draw(strategy)
    values = tuple(draw(st.lists(_VALUES, min_size=4, max_size=4)))
    return case, (values, draw(_tables()))


class Fuzzer:
    """Sends planned cases to a seeded server and records what the checks find."""

    def __init__(self, server: SecServer, seeded: dict[str, UserObjects]) -> None:
        self.server = server
        self.alice = seeded["alice"]
        self.bob = seeded["bob"]
        # What alice's deletes may take: her spare dataset, and the jobs the run queues (and
        # cancels); her main dataset, trained job, canceled job and model stay for the run.
        self.spare: dict[str, list[str]] = {
            "dataset_id": self.alice.ids["dataset_id"][1:],
            "job_id": [],
            "model_id": [],
        }
        self.secrets = {self.bob.deploy_key, self.bob.marker}
        self.secrets.update(i for ids in self.bob.ids.values() for i in ids)
        data_dir = server.data_dir
        self.server_paths = {str(data_dir), str(data_dir.resolve()), str(REPO_ROOT), sys.prefix}
        if len(REPO_ROOT.parent.parts) > 1:  # the checkout's folder too (/work), never "/"
            self.server_paths.add(str(REPO_ROOT.parent))
        self.server_paths.update(SECURITY_TEXT)
        self.session = requests.Session()
        self.tally = Tally()

    # - building the request ---------------------------------------------------------------

    def _pick(self, kind: str, source: str, index: int, destructive: bool) -> str | None:
        if source == "foreign":
            pool = self.bob.ids[kind]
        elif destructive:
            pool = self.spare[kind]
        else:
            pool = self.alice.ids[kind] + self.spare[kind]
        return pool[index % len(pool)] if pool else None

    def _apply_ids(self, case: Case, plan: Plan) -> bool:
        """Put the planned ids in; True when one of bob's went in."""
        destructive = case.operation.label in DESTRUCTIVE
        foreign = False
        for slot, source, index in plan.ids:
            where, name = slot.split(":")
            kind = "job_id" if name == "jobs" else name
            if source == "keep":
                continue
            value = self._pick(kind, source, index, destructive)
            if value is None:
                continue
            # A listing filtered by one of bob's ids may answer 200 (an empty page); a path,
            # a body or a comparison naming one must not.
            foreign = (
                foreign
                or (source == "foreign" and slot != f"query:{name}")
                or (source == "foreign" and name == "jobs")
            )
            if where == "path":
                case.path_parameters[name] = value
            elif where == "query" and name == "jobs":
                case.query[name] = f"{self.alice.ids['job_id'][0]},{value}"
            elif where == "query":
                case.query[name] = value
            else:
                case.body["dataset_id"] = value
        return foreign

    def _make_realistic(self, case: Case, plan: Plan) -> None:
        """Give the request a shape that reaches the real work: a column to train on, rows
        with the model's features, a CSV table to upload or predict, a real file name."""
        label = case.operation.label
        body = case.body
        if label == "POST /api/jobs" and isinstance(body, dict):
            body["target"] = "label"
            body.pop("time_budget", None)
        elif label.endswith("/predict") and isinstance(body, dict):
            values = plan.values
            if len(plan.table.rows) % 2 == 0:  # half the time, numbers the model accepts
                values = tuple(v if _is_number(v) else i for i, v in enumerate(values))
            row = dict(zip(self.alice.features, values, strict=False))
            body.pop("columns", None)
            body.pop("data", None)
            body["rows"] = [row, dict.fromkeys(self.alice.features, values[-1])]
        elif label.endswith("/files/{name}"):
            case.path_parameters["name"] = MODEL_FILES[len(plan.table.rows) % len(MODEL_FILES)]
        elif label.endswith(("/predict.csv", "POST /api/datasets")):
            names = self.alice.features if label.endswith("/predict.csv") else None
            table = plan.table.csv(names, numeric=len(plan.table.names) % 2 == 0 and bool(names))
            if isinstance(body, dict) and "file" in body:
                body["file"] = table
            elif case.media_type == "text/csv":
                case.body = table

    def _headers(self, caller: str) -> dict[str, str]:
        if caller == "alice":
            return self.server.headers("alice")
        if caller == "deploy_key":
            return {"Authorization": f"Bearer {self.alice.deploy_key}"}
        if caller == "bad_token":
            return {"Authorization": "Bearer tpu_not-a-token"}
        return {}

    # - sending and checking ---------------------------------------------------------------

    def run_case(self, case: Case, extras: tuple[tuple[Any, ...], Table]) -> None:
        """Send one case as planned, check the answer, and keep alice's objects usable."""
        plan = make_plan(case, self.tally.by_operation[case.operation.label], extras)
        foreign = self._apply_ids(case, plan)
        if plan.realistic:
            self._make_realistic(case, plan)
        label = case.operation.label
        self.tally.cases += 1
        self.tally.by_operation[label] += 1
        headers = self._headers(plan.caller)
        if plan.caller == "anonymous" and case.headers:
            case.headers.pop("Authorization", None)  # schemathesis makes up a bearer token
        try:
            answer = case.call(
                base_url=self.server.base_url,
                session=self.session,
                headers=headers,
                timeout=REQUEST_TIMEOUT_S,
            )
        except (requests.RequestException, OSError) as exc:
            self._fail("transport", case, plan, None, f"{type(exc).__name__}: {exc}")
            return
        self.tally.by_status[answer.status_code] += 1
        self.tally.by_outcome[(label, answer.status_code)] += 1
        start = answer.content[:200].decode("utf-8", errors="replace")
        self.tally.first_answer.setdefault((label, answer.status_code), start)
        sent = _request_text(case)
        self._check(case, plan, answer.status_code, answer.headers, answer.content, sent, foreign)
        if plan.caller == "alice" and 200 <= answer.status_code < 300:
            self._after_success(label, case, answer.content)

    def _check(
        self,
        case: Case,
        plan: Plan,
        status: int,
        headers: Any,
        content: bytes,
        sent: str,
        foreign: bool,
    ) -> None:
        text = content.decode("utf-8", errors="replace")
        label = case.operation.label
        if status >= 500 and not (label == "GET /ready" and status == 503):
            self._fail("server_error", case, plan, status, text[:300])
        if foreign and 200 <= status < 300:
            self._fail("cross_user", case, plan, status, text[:300])
        leaked = sorted(s for s in self.secrets if s in text and s not in sent)
        if leaked:
            self._fail("leak", case, plan, status, f"{leaked} in {text[:300]}")
        shown = sorted(p for p in self.server_paths if p in text and p not in sent)
        if shown:
            self._fail("trace", case, plan, status, f"{shown} in {text[:300]}")
        if 400 <= status < 500 and not _is_envelope(content):
            kind = _first_value(headers, "content-type")
            self._fail("envelope", case, plan, status, f"{kind}: {text[:300]}")

    def _fail(self, kind: str, case: Case, plan: Plan, status: int | None, detail: str) -> None:
        try:
            curl = case.as_curl_command(headers=self._headers(plan.caller))
        except Exception as exc:  # only the reproduction is lost
            curl = f"(no curl: {exc})"
        self.tally.failures.append(
            Failure(kind, case.operation.label, plan.caller, status, detail, curl[:2000])
        )

    def _after_success(self, label: str, case: Case, content: bytes) -> None:
        """Keep the run's premises: queued jobs canceled (nothing trains), alice's deploy key
        current, deleted spares out of the pools (and a new spare dataset)."""
        with contextlib.suppress(ValueError):
            answer = json.loads(content)
            if label in ("POST /api/jobs", "POST /api/jobs/{job_id}/retry"):
                with self.server.client("alice") as client:
                    client.post(f"/api/jobs/{answer['id']}/cancel")
                self.spare["job_id"].append(answer["id"])
            elif label == "POST /api/models/{model_id}/deploy":
                if answer["model_id"] == self.alice.model_id:
                    self.alice.deploy_key = answer["key"]
            elif label == "POST /api/models/{model_id}/undeploy":
                self._redeploy()
            elif label in DESTRUCTIVE:
                self._forget(case)

    def _redeploy(self) -> None:
        with self.server.client("alice") as client:
            answer = client.post(f"/api/models/{self.alice.model_id}/deploy")
        assert answer.status_code == 200, answer.text
        self.alice.deploy_key = answer.json()["key"]

    def _forget(self, case: Case) -> None:
        for kind, value in case.path_parameters.items():
            if kind in self.spare and value in self.spare[kind]:
                self.spare[kind].remove(value)
        if not self.spare["dataset_id"]:
            with self.server.client("alice") as client:
                new = _upload(client, "spare", _table(self.alice.features, rows=12))
            self.spare["dataset_id"].append(new)

    # - the run ----------------------------------------------------------------------------

    def run(self, schema: Any, *, examples: int, rng_seed: int) -> Tally:
        """Every operation of `schema`, positive then negative, up to `examples` cases each."""
        started = time.monotonic()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for result in schema.get_all_operations():
                operation = result.ok()
                self._run_operation(operation, mode, examples, rng_seed)
        self.tally.seconds = time.monotonic() - started
        return self.tally

    def _run_operation(self, operation: Any, mode: GenerationMode, examples: int, rng: int) -> None:
        @seed(rng)
        @settings(
            max_examples=examples,
            database=None,
            deadline=None,
            derandomize=False,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(cases_with_extras(operation.as_strategy(generation_mode=mode)))
        def fuzz(drawn: tuple[Case, tuple[tuple[Any, ...], Table]]) -> None:
            self.run_case(*drawn)

        try:
            fuzz()
        except (Unsatisfiable, FailedHealthCheck) as exc:
            self.tally.skipped[f"{mode.value} {operation.label}"] = type(exc).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _request_text(case: Case) -> str:
    """Everything the request carried, as text, to tell an echo from a leak."""
    parts = [json.dumps(case.path_parameters, default=repr, ensure_ascii=False)]
    parts.append(json.dumps(case.query, default=repr, ensure_ascii=False))
    parts.append(json.dumps(dict(case.headers or {}), default=repr, ensure_ascii=False))
    body = case.body
    if isinstance(body, bytes):
        parts.append(body.decode("utf-8", errors="replace"))
    else:
        parts.append(json.dumps(body, default=_text_of, ensure_ascii=False))
    return "\n".join(parts)


def _text_of(value: Any) -> str:
    data = getattr(value, "data", value)
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return repr(value)


def _is_envelope(content: bytes) -> bool:
    try:
        error = json.loads(content)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return (
        isinstance(error, dict)
        and isinstance(error.get("code"), str)
        and isinstance(error.get("message"), str)
        and bool(error["message"])
    )


def _first_value(headers: Any, name: str) -> str:
    value = headers.get(name) if hasattr(headers, "get") else None
    if isinstance(value, list):
        return str(value[0]) if value else ""
    return str(value or "")


def load_schema(server: SecServer) -> Any:
    """The server's /openapi.json as a schemathesis schema (the server is its base URL)."""
    return schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")


@contextlib.contextmanager
def seeded_server(root: Path) -> Iterator[tuple[SecServer, dict[str, UserObjects]]]:
    """`fuzz_server` with `seed_objects`, stopped on the way out."""
    server = fuzz_server(root)
    try:
        yield server, seed_objects(server)
    finally:
        stop_server(server)


def bob_changes(server: SecServer, bob: UserObjects, before: dict[str, Any]) -> list[str]:
    """What changed in bob's objects since `before` (empty when nothing), and whether his
    deploy key still predicts."""
    after = snapshot(server, "bob", bob)
    changed = [url for url in before if before[url] != after.get(url)]
    row = dict.fromkeys(bob.features, 1)
    answer = httpx.post(
        f"{server.base_url}/api/models/{bob.model_id}/predict",
        json={"rows": [row]},
        headers={"Authorization": f"Bearer {bob.deploy_key}"},
        timeout=30,
    )
    if answer.status_code != 200:
        changed.append(f"bob's deploy key: {answer.status_code} {answer.text[:200]}")
    return changed
