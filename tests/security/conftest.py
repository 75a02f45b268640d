"""Security test harness: real `tabpilot serve` processes on 127.0.0.1, driven over HTTP.

Fixtures:
- `sec_server` (session): a server in local mode (TABPILOT_AUTH=local) on a free loopback port
  with its own temporary data directory.
- `sec_token_server` (session): the same in token mode (TABPILOT_AUTH=token) with two users,
  "alice" and "bob", created with `tabpilot users create`; their tokens are in `.tokens`.

Both yield a `SecServer`: `base_url`, `tokens` (user name -> token; empty in local mode),
`data_dir`, `pid`, `log_path`, `client(user=None)` (an httpx client, with the user's Bearer
token when a user is named) and `rss_kib()` / `peak_rss_kib()` (memory of the server process).

`sec_model` (session, slow): a model trained on `sec_server` whose class labels are spreadsheet
formulas (`TrainedModel`: dataset_id, job_id, model_id, features, labels); `wait_for_job`.

A test that needs other settings (a small limit, say) starts its own with
`start_server(tmp_path, auth=..., users=(...), max_upload_mb="1")` and stops it with
`stop_server(server)`, in a try/finally; keep those few, since each costs a second or two.

Memory: `read_rss_kib(pid)` and `read_peak_rss_kib(pid)` read /proc/<pid>/status (VmRSS,
VmHWM), so psutil is not needed; `reset_peak_rss(pid)` starts a new high-water mark, so a peak
read after it is a test's own; `child_pids(pid)` lists a process's children (job workers).
The job runner is `local://?workers=1&warm=0`: jobs run in a child process, started per job.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import free_port, server_environment, tabpilot_command

START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 20


def read_status_kib(pid: int, key: str) -> int:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM, ...), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise KeyError(f"/proc/{pid}/status has no {key} line")


def read_rss_kib(pid: int) -> int:
    """Resident memory of a process now, in KiB."""
    return read_status_kib(pid, "VmRSS")


def read_peak_rss_kib(pid: int) -> int:
    """The highest resident memory the process has had so far (high-water mark), in KiB."""
    return read_status_kib(pid, "VmHWM")


def reset_peak_rss(pid: int) -> None:
    """Set a process's high-water mark (VmHWM) back to its resident memory now (writing 5 to
    /proc/<pid>/clear_refs), so that a peak read next belongs to what ran in between."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (from /proc/<pid>/task/*/children)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return found


@dataclass
class SecServer:
    """A running `tabpilot serve` process."""

    base_url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    def headers(self, user: str | None = None) -> dict[str, str]:
        """The Authorization header of `user` (none for None)."""
        return {} if user is None else {"Authorization": f"Bearer {self.tokens[user]}"}

    def client(self, user: str | None = None, *, timeout: float = 30) -> httpx.Client:
        """An httpx client for this server, sending `user`'s token when one is named."""
        return httpx.Client(base_url=self.base_url, headers=self.headers(user), timeout=timeout)

    def rss_kib(self) -> int:
        return read_rss_kib(self.pid)

    def peak_rss_kib(self) -> int:
        return read_peak_rss_kib(self.pid)

    def reset_peak_rss(self) -> None:
        reset_peak_rss(self.pid)

    def log(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        return self.log_path.read_text(errors="replace")


def create_user(root: Path, env: dict[str, str], name: str) -> str:
    """Create a user with `tabpilot users create` and return their token."""
    created = subprocess.run(
        [*tabpilot_command(), "users", "create", name],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return created.stdout.strip().splitlines()[-1]


def serve_command(port: int) -> list[str]:
    """`tabpilot serve` on 127.0.0.1:`port`."""
    return [*tabpilot_command(), "serve", "--port", str(port), "--log-level", "warning"]


def start_server(
    root: Path,
    *,
    auth: str = "local",
    users: Sequence[str] = (),
    command: Callable[[int], list[str]] = serve_command,
    **settings: str,
) -> SecServer:
    """Start `tabpilot serve` with its data in `root/data` and wait until /health answers.

    `command(port)` gives another command line serving the app on 127.0.0.1:port (another
    ASGI server around `create_app()`, say); it gets the same environment.
    """
    root.mkdir(parents=True, exist_ok=True)
    data_dir = root / "data"
    env = server_environment(data_dir, auth=auth, **settings)
    tokens = {name: create_user(root, env, name) for name in users}
    port = free_port()
    log_path = root / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command(port),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    server = SecServer(f"http://127.0.0.1:{port}", data_dir, process, log_path, tokens)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            pytest.fail(f"tabpilot serve exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.base_url}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_server(server)
            pytest.fail(f"tabpilot serve did not answer /health within {START_TIMEOUT_S} s")
        time.sleep(0.2)


def stop_server(server: SecServer) -> None:
    """Ctrl-C the server (it stops its runner), or kill it after STOP_TIMEOUT_S."""
    if server.process.poll() is not None:
        return
    server.process.send_signal(signal.SIGINT)
    try:
        server.process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def sec_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecServer]:
    """A local-mode server for the whole session."""
    server = start_server(tmp_path_factory.mktemp("sec-local"))
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="session")
def sec_token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecServer]:
    """A token-mode server for the whole session, with users "alice" and "bob"."""
    server = start_server(
        tmp_path_factory.mktemp("sec-token"), auth="token", users=("alice", "bob")
    )
    try:
        yield server
    finally:
        stop_server(server)


# -- a trained model on the local server ----------------------------------------------------------

FORMULA_LABELS = ('=HYPERLINK("http://evil.example","x")', "@SUM(1+1)")
"""The two class labels of `sec_model`: text a spreadsheet would run as formulas."""


@dataclass(frozen=True)
class TrainedModel:
    dataset_id: str
    job_id: str
    model_id: str
    features: tuple[str, ...]
    labels: tuple[str, ...]


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 240) -> dict[str, Any]:
    """Poll a job until it is succeeded, failed or canceled; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        job = dict(client.get(f"/api/jobs/{job_id}").json())
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {job['status']} after {timeout} s")
        time.sleep(0.5)


@pytest.fixture(scope="session")
def sec_model(sec_server: SecServer) -> TrainedModel:
    """A random forest trained on `sec_server` (5 s budget) with features x and y and the class
    labels `FORMULA_LABELS`; tests using it are slow (they wait for a training job)."""
    rows = ["x,y,label"]
    for i in range(60):
        label = FORMULA_LABELS[0] if i % 5 < 2 else FORMULA_LABELS[1]
        rows.append(f'{i % 5},{i % 3},"{label.replace(chr(34), chr(34) * 2)}"')
    text = "\n".join(rows) + "\n"
    with sec_server.client(timeout=60) as client:
        upload = client.post(
            "/api/datasets", files={"file": ("formulas.csv", text.encode(), "text/csv")}
        )
        assert upload.status_code == 201, upload.text
        dataset_id = upload.json()["id"]
        created = client.post(
            "/api/jobs",
            json={
                "dataset_id": dataset_id,
                "target": "label",
                "time_budget": 5,
                "estimators": ["rf"],
            },
        )
        assert created.status_code == 202, created.text
        job = wait_for_job(client, created.json()["id"])
    assert job["status"] == "succeeded", job
    return TrainedModel(dataset_id, job["id"], job["model_id"], ("x", "y"), FORMULA_LABELS)
