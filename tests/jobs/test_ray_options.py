"""The `ray://` runner URI, the refusal of stores a cluster elsewhere could not see, and the
import boundary: no Ray cluster needed (tests/jobs/test_ray_runner.py starts one)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tabpilot.errors import InvalidInput
from tabpilot.jobs.ray_hosts import is_local_address, is_this_machine
from tabpilot.jobs.registry import RayOptions, ray_options, runner_store_problem
from tabpilot.settings import load_settings
from tests.servers import free_port, server_environment, tabpilot_command

REMOTE = "203.0.113.7"  # TEST-NET-3: never an address of this machine


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("ray://head", RayOptions("ray://head:10001", "head")),
        ("ray://127.0.0.1:6000?cpus=2", RayOptions("ray://127.0.0.1:6000", "127.0.0.1", 2.0)),
        ("ray://[::1]:7000?cpus=0.5&jobs=3", RayOptions("ray://[::1]:7000", "::1", 0.5, 3)),
        (
            "ray://Head.Example/?jobs=1",
            RayOptions("ray://head.example:10001", "head.example", 1, 1),
        ),
    ],
)
def test_ray_uris_give_the_client_address_cpus_and_jobs(uri: str, expected: RayOptions) -> None:
    assert ray_options(uri) == expected


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ray://user:secret@head:10001", "ray://HOST:PORT takes no user name or password"),
        ("ray://head:10001/cluster", 'ray://HOST:PORT takes no path, not "/cluster"'),
        (
            "ray://head?cpus=-1",
            'cpus must be a number of CPUs per job above 0 (e.g. 1 or 0.5), not "-1"',
        ),
        ("ray://head?jobs=0", 'jobs must be a whole number of at least 1, not "0"'),
        ("ray://head:http", "the port of ray://head:http is not usable"),
    ],
)
def test_bad_ray_uris_are_refused_at_start_up_naming_the_setting(uri: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_settings(runner_uri=uri)
    assert f"TABPILOT_RUNNER_URI: {message}" in caught.value.message
    assert "secret" not in caught.value.message


def test_this_machine_is_known_by_its_loopback_names_its_name_and_its_addresses() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "localhost", "::1", "[::1]", socket.gethostname()):
        assert is_this_machine(host), host
    assert not is_this_machine(REMOTE)
    assert not is_this_machine("no-such-host.invalid")
    assert not is_local_address("0.0.0.0") and not is_local_address("not an address")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((REMOTE, 9))  # no packet is sent: it only picks the outgoing address
        own = probe.getsockname()[0]
    assert is_this_machine(own), own  # the machine's own network address, not loopback


def test_a_cluster_elsewhere_is_refused_with_stores_in_this_machines_files(
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidInput) as caught:
        load_settings(data_dir=tmp_path, runner_uri=f"ray://{REMOTE}:10001")
    message = caught.value.message
    assert (
        f"TABPILOT_RUNNER_URI: the Ray cluster at ray://{REMOTE}:10001 is not on this " in message
    )
    assert "the SQLite database file (TABPILOT_METADATA_URI)" in message
    assert "the artifact folder (TABPILOT_ARTIFACT_URI)" in message
    assert "use stores every worker reaches (postgresql://... and s3://...)" in message
    assert "or a Ray cluster on this machine (ray://127.0.0.1:10001)" in message

    # Only the store that lives in files is named; shared stores are fine anywhere.
    shared_metadata = "postgresql://tabpilot@db.example/tabpilot"
    problem = runner_store_problem(
        f"ray://{REMOTE}", metadata_uri=shared_metadata, artifact_uri=str(tmp_path)
    )
    assert problem is not None and "artifact folder" in problem and "SQLite" not in problem
    assert (
        runner_store_problem(
            f"ray://{REMOTE}", metadata_uri=shared_metadata, artifact_uri="s3://bucket/tabpilot"
        )
        is None
    )
    # A cluster on this machine sees the files.
    settings = load_settings(data_dir=tmp_path, runner_uri="ray://localhost:10001?cpus=2")
    assert settings.runner_uri == "ray://localhost:10001?cpus=2"


@pytest.mark.slow
def test_tabpilot_serve_refuses_the_pairing_before_it_starts(tmp_path: Path) -> None:
    env = server_environment(tmp_path / "data", runner_uri=f"ray://{REMOTE}:10001")
    result = subprocess.run(
        [*tabpilot_command(), "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "TABPILOT_RUNNER_URI: the Ray cluster at" in result.stderr
    assert "could not see the SQLite database file" in result.stderr


@pytest.mark.slow
def test_ray_is_imported_only_by_a_process_whose_runner_is_ray(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    code = (
        "import sys\n"
        "from tabpilot.api.app import create_app\n"
        "from tabpilot.settings import load_settings\n"
        "app = create_app(settings=load_settings())\n"
        "assert 'ray' not in sys.modules, 'the API imported ray'\n"
        "from tabpilot.jobs.registry import build_runner\n"
        "runner = build_runner('ray://127.0.0.1:10001?cpus=2&jobs=3')\n"
        "assert 'ray' in sys.modules\n"
        "print(type(runner).__name__, runner.address, runner.cpus, runner.jobs)\n"
    )
    env = server_environment(tmp_path / "data")  # a local:// runner
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["RayRunner", "ray://127.0.0.1:10001", "2.0", "3"]


def test_tabpilot_worker_runs_the_ray_runner_of_a_ray_uri(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from tabpilot.jobs.ray_runner import RayRunner
    from tabpilot.jobs.worker import worker_runner

    settings = load_settings(data_dir=tmp_path, runner_uri="ray://127.0.0.1:10001?cpus=0.5")
    runner = worker_runner(settings)
    assert isinstance(runner, RayRunner)
    assert (runner.address, runner.cpus, runner.jobs) == ("ray://127.0.0.1:10001", 0.5, None)
    assert worker_runner(settings, workers=4).jobs == 4  # --workers sets the jobs at once


def test_without_the_ray_extra_the_runner_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tabpilot.errors import MissingDependency
    from tabpilot.jobs.registry import build_runner

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    monkeypatch.delitem(sys.modules, "tabpilot.jobs.ray_runner", raising=False)
    with pytest.raises(MissingDependency, match=re.escape("pip install 'tabpilot[ray]'")):
        build_runner("ray://127.0.0.1:10001")


@pytest.mark.slow
def test_tabpilot_worker_names_a_cluster_it_cannot_reach(tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed")
    address = f"ray://127.0.0.1:{free_port()}"  # nothing listens there
    env = server_environment(tmp_path / "data", runner_uri=address)
    # Ray's own client timeouts, shortened: about 5 s of tries instead of 30.
    env.update(RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S="1", RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S="2")
    result = subprocess.run(
        [*tabpilot_command(), "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert f"TABPILOT_RUNNER_URI: cannot reach the Ray cluster at {address}" in result.stderr
    assert "start it with `ray start --head`" in result.stderr
