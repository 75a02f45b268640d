"""Exposure (issue 11, items 11 and 12): who may reach the server, and what its answers carry.

Against real servers on 127.0.0.1: `tabpilot serve` in local and token mode (the session
fixtures), and `create_app()` under plain uvicorn with proxy headers trusted, which is how a
client on another machine looks to the app without leaving loopback.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.api.exposure import is_local_client
from tabpilot.context import build_context
from tabpilot.engine.serving.predict import spreadsheet_safe
from tabpilot.errors import InvalidInput
from tabpilot.jobs.execute import execute_job, remove_temp_dirs
from tabpilot.jobs.lease import reap_expired_leases
from tabpilot.records import JobStatus, utc_now
from tabpilot.scrub import add_server_paths, scrub_paths
from tabpilot.settings import Settings
from tabpilot.storage import keys
from tests.factories import add_dataset, add_job, dataset_record, job_record, model_record
from tests.security.conftest import SecServer, TrainedModel, start_server, stop_server

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


# -- item 12: Authorization schemes, report headers, spreadsheet cells, paths, docs -------------


def csv_upload(client: httpx.Client, name: str, text: str) -> dict[str, Any]:
    answer = client.post("/api/datasets", files={"file": (name, text.encode(), "text/csv")})
    assert answer.status_code == 201, answer.text
    return dict(answer.json())


def test_local_mode_ignores_other_authorization_schemes(sec_server: SecServer) -> None:
    """An authenticating proxy in front (basic auth) passes its header on: local mode ignores it."""
    with sec_server.client() as client:
        for header in ("Basic dXNlcjpwYXNz", "Digest username=x", "Negotiate YII=", "junk"):
            answer = client.get("/api/datasets", headers={"Authorization": header})
            assert answer.status_code == 200, (header, answer.text)
        basic = {"Authorization": "Basic dXNlcjpwYXNz"}
        assert (
            client.post(
                "/api/datasets", headers=basic, files={"file": ("b.csv", b"a,b\n1,2\n3,4\n")}
            ).status_code
            == 201
        )


def test_token_mode_still_needs_a_bearer_token(sec_token_server: SecServer) -> None:
    with sec_token_server.client() as client:
        answer = client.get("/api/datasets", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == "Bearer"


def test_dataset_eda_report_is_sandboxed(sec_server: SecServer) -> None:
    hostile = '<script>alert(1)</script>,"=HYPERLINK(""http://evil.example"")"\n1,x\n2,y\n3,z\n'
    with sec_server.client(timeout=120) as client:
        dataset = csv_upload(client, "hostile.csv", hostile)
        answer = client.get(f"/api/datasets/{dataset['id']}/eda.html")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == "sandbox allow-scripts"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "<script>alert(1)</script>" not in answer.text


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-2", "-2"),  # a number written as text is no formula
        ("+1.5e3", "+1.5e3"),
        ("yes", "yes"),
        ("a=b", "a=b"),
        (7, 7),
        (-1.5, -1.5),
    ],
)
def test_spreadsheet_safe(value: Any, written: Any) -> None:
    assert spreadsheet_safe(value) == written


@pytest.mark.slow
def test_predict_csv_neutralises_formula_labels(
    sec_server: SecServer, sec_model: TrainedModel
) -> None:
    """Class labels come from the training data; whoever opens predict.csv in a spreadsheet
    must not run them as formulas. JSON answers keep the labels as they are."""
    with sec_server.client(timeout=60) as client:
        answer = client.post(
            f"/api/models/{sec_model.model_id}/predict.csv",
            files={"file": ("rows.csv", b"x,y\n1,0\n2,1\n3,2\n4,0\n", "text/csv")},
        )
        assert answer.status_code == 200, answer.text
        rows = list(csv.reader(io.StringIO(answer.text)))
        assert rows[0][0] == "prediction"
        cells = {row[0] for row in rows[1:]}
        assert cells and cells <= {"'" + label for label in sec_model.labels}, cells
        raw = client.post(
            f"/api/models/{sec_model.model_id}/predict",
            json={"rows": [{"x": 1, "y": 0}, {"x": 3, "y": 1}]},
        )
        assert raw.status_code == 200, raw.text
        assert set(raw.json()["predictions"]) <= set(sec_model.labels)


def test_stored_job_errors_carry_no_server_paths(tmp_path: Path) -> None:
    """Every status change scrubs its message and error, whoever writes them."""
    data_dir = tmp_path / "srv-data"
    ctx = build_context(Settings(data_dir=data_dir, runner_uri="inline://"))
    try:
        job = add_job(ctx.metadata, add_dataset(ctx.metadata))
        ctx.metadata.claim_job(job.id, worker_id="w1", lease_seconds=60)
        places = [
            str(data_dir / "artifacts" / "datasets" / "ds_1" / "data.csv"),
            os.path.join(tempfile.gettempdir(), "tabpilot-xyz", "input.csv"),
            os.path.join(os.path.expanduser("~"), ".cache", "thing"),
            os.path.join(sys.prefix, "lib", "site.py"),
        ]
        error = "OSError: cannot read " + "; ".join(f"'{place}'" for place in places)
        failed = ctx.metadata.transition_job(
            job.id, owner=None, expect=JobStatus.RUNNING, to=JobStatus.FAILED, error=error
        )
        assert failed is not None
        stored = ctx.metadata.get_job(job.id, owner=None)
        events = ctx.metadata.list_job_events(job.id, owner=None)
        texts = [stored.error or "", *(json.dumps(e.data) for e in events)]
        for text in texts:
            for root in (str(data_dir), tempfile.gettempdir(), os.path.expanduser("~")):
                assert root not in text, text
        # The artifact root is longer than the data dir that holds it: replaced whole.
        assert "'<server path>/datasets/ds_1/data.csv'" in (stored.error or "")
        assert "<server path>/tabpilot-xyz/input.csv" in (stored.error or "")
    finally:
        ctx.metadata.close()


def test_scrub_paths_stops_at_path_boundaries() -> None:
    root = "/srv/tabpilot-scrub-test/al"  # registered for this process only; need not exist
    add_server_paths(root)
    assert scrub_paths(f"{root}/x and {root}.") == "<server path>/x and <server path>."
    assert scrub_paths(f"{root}ice/x {root}.bak") == f"{root}ice/x {root}.bak"  # other names
    assert scrub_paths("no paths here") == "no paths here"


def test_api_docs_are_public_in_token_mode_and_reveal_no_data(sec_token_server: SecServer) -> None:
    """Decision (README, "Security and limits"): /docs and /openapi.json stay public. They
    describe the API's shape, the same for every install, and hold no user or data."""
    with sec_token_server.client("alice") as alice:
        csv_upload(alice, "alice-secret.csv", "secret_column,b\n1,2\n3,4\n")
    with sec_token_server.client() as anonymous:
        docs = anonymous.get("/docs")
        spec = anonymous.get("/openapi.json")
        assert anonymous.get("/api/datasets").status_code == 401
    assert docs.status_code == 200 and spec.status_code == 200
    for text in (docs.text, spec.text):
        for secret in (
            "alice",
            "bob",
            "secret_column",
            "alice-secret",
            str(sec_token_server.data_dir),
            *sec_token_server.tokens.values(),
        ):
            assert secret not in text
    assert "APIToken" in spec.text  # the bearer scheme is documented for the Authorize button


# -- item 13: a model exists exactly when its job succeeded -------------------------------------

# A child process that runs one claimed job with a stand-in for training (one small file and a
# card), and SIGKILLs itself at the given point of the ending.
KILLED_WORKER = """
import os, signal, sys
from pathlib import Path
from types import SimpleNamespace

import tabpilot.engine.training.run as run_module
import tabpilot.metadata.sql_jobs as sql_jobs
from tabpilot.context import build_context
from tabpilot.jobs.execute import execute_job, remove_temp_dirs
from tabpilot.settings import Settings

data_dir, job_id, worker, point = sys.argv[1:5]

def fake_training(data_path, spec, *, out_dir, progress, started):
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "model.json").write_text("{}")
    card = SimpleNamespace(to_dict=lambda: {})
    return SimpleNamespace(result=SimpleNamespace(budget=5.0), card=card, elapsed=0.1)

run_module.run_training = fake_training
ctx = build_context(Settings(data_dir=data_dir, runner_uri="inline://"))

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if point == "before_success":  # the model files are stored; the ending has not begun
    real = ctx.metadata.transition_job
    def transition(job_id, **kwargs):
        if str(kwargs.get("to")) in ("succeeded", "JobStatus.SUCCEEDED"):
            die()
        return real(job_id, **kwargs)
    ctx.metadata.transition_job = transition
else:  # "inside_commit": the job row says succeeded and the model row is written, uncommitted
    real_insert = sql_jobs.insert_model
    def insert_then_die(conn, model):
        real_insert(conn, model)
        die()
    sql_jobs.insert_model = insert_then_die
execute_job(ctx, job_id, worker_id=worker)
print("finished without being killed")
"""


def fake_training(
    data_path: Any, spec: Any, *, out_dir: Path, progress: Any, started: float
) -> Any:
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    (Path(out_dir) / "model.json").write_text("{}")
    card = SimpleNamespace(to_dict=lambda: {})
    return SimpleNamespace(result=SimpleNamespace(budget=5.0), card=card, elapsed=0.1)


@pytest.fixture
def job_ctx(tmp_path: Path) -> Iterator[Any]:
    ctx = build_context(Settings(data_dir=tmp_path / "data", runner_uri="inline://"))
    try:
        yield ctx
    finally:
        ctx.metadata.close()


def claimed_job(ctx: Any, worker: str = "w-test") -> Any:
    dataset = ctx.metadata.create_dataset(dataset_record())
    ctx.artifacts.put_bytes(keys.dataset_data(dataset.id), b"a,label\n1,x\n2,y\n")
    job = ctx.metadata.create_job(job_record(dataset, spec={"target": "label", "time_budget": 5.0}))
    return ctx.metadata.claim_job(job.id, worker_id=worker, lease_seconds=60)


def test_store_writes_the_model_only_with_a_winning_success(job_ctx: Any) -> None:
    store = job_ctx.metadata
    job = claimed_job(job_ctx)
    store.transition_job(job.id, owner=None, expect=JobStatus.RUNNING, to=JobStatus.CANCELED)
    lost = store.transition_job(
        job.id,
        owner=None,
        expect=JobStatus.RUNNING,
        to=JobStatus.SUCCEEDED,
        held_by="w-test",
        model=model_record(job),
    )
    assert lost is None
    assert store.list_models(owner=None, job_id=job.id).items == []

    job = claimed_job(job_ctx)
    model = model_record(job)
    won = store.transition_job(
        job.id,
        owner=None,
        expect=JobStatus.RUNNING,
        to=JobStatus.SUCCEEDED,
        held_by="w-test",
        model=model,
    )
    assert won is not None and won.status == JobStatus.SUCCEEDED and won.model_id == model.id
    assert [m.id for m in store.list_models(owner=None, job_id=job.id).items] == [model.id]


def test_cancel_during_upload_leaves_no_model_and_no_files(
    job_ctx: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel lands while the model files are being stored, just before the ending."""
    import tabpilot.engine.training.run as run_module

    monkeypatch.setattr(run_module, "run_training", fake_training)
    job = claimed_job(job_ctx)
    real_put = job_ctx.artifacts.put_file

    def put_then_cancel(key: str, path: Path) -> None:
        real_put(key, path)
        job_ctx.metadata.transition_job(
            job.id, owner=None, expect=JobStatus.RUNNING, to=JobStatus.CANCELED
        )

    monkeypatch.setattr(job_ctx.artifacts, "put_file", put_then_cancel)
    execute_job(job_ctx, job.id, worker_id="w-test")
    after = job_ctx.metadata.get_job(job.id, owner=None)
    assert after.status == JobStatus.CANCELED and after.model_id is None
    assert job_ctx.metadata.list_models(owner=None, job_id=job.id).items == []
    assert job_ctx.artifacts.list_keys("models/") == []


@pytest.mark.parametrize("point", ["before_success", "inside_commit"])
def test_worker_killed_at_the_ending_leaves_no_model(job_ctx: Any, point: str) -> None:
    job = claimed_job(job_ctx)
    data_dir = str(job_ctx.settings.data_dir)
    child = subprocess.run(
        [sys.executable, "-c", KILLED_WORKER, data_dir, job.id, "w-test", point],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    after = job_ctx.metadata.get_job(job.id, owner=None)
    assert after.status == JobStatus.RUNNING and after.model_id is None  # nothing committed
    assert job_ctx.metadata.list_models(owner=None, job_id=job.id).items == []
    # The reaper finds the lease expired and queues the job again: still no model on it.
    reaped = reap_expired_leases(job_ctx.metadata, now=utc_now() + timedelta(hours=1))
    assert [j.id for j in reaped] == [job.id]
    assert job_ctx.metadata.get_job(job.id, owner=None).status == JobStatus.QUEUED
    assert job_ctx.metadata.list_models(owner=None, job_id=job.id).items == []
    remove_temp_dirs(job.id)  # what the runner does after a kill


def test_error_answers_carry_no_home_or_install_paths(tmp_path: Path) -> None:
    app = create_app(settings=Settings(data_dir=tmp_path, runner_uri="inline://"))
    home_file = os.path.join(os.path.expanduser("~"), "secret", "file.csv")
    install_file = os.path.join(sys.prefix, "lib", "thing.py")

    def boom() -> None:
        raise InvalidInput(f"cannot read {home_file} or {install_file}", details={"p": home_file})

    app.add_api_route("/api/boom", boom)
    with TestClient(app) as client:
        answer = client.get("/api/boom")
    assert answer.status_code == 422
    assert os.path.expanduser("~") not in answer.text and sys.prefix not in answer.text
    assert "<server path>/secret/file.csv" in answer.json()["error"]["message"]
