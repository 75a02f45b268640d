"""`build_runner` and the import boundary of the job modules a server loads."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tabpilot.errors import InvalidInput
from tabpilot.jobs import worker
from tabpilot.jobs.inline import InlineRunner
from tabpilot.jobs.local import LocalRunner
from tabpilot.jobs.registry import build_runner
from tabpilot.jobs.worker import worker_runner
from tabpilot.settings import load_settings


def test_inline_and_local_runners_are_built_from_their_uris() -> None:
    assert isinstance(build_runner("inline://"), InlineRunner)
    local = build_runner("local://")
    assert isinstance(local, LocalRunner) and local.workers == 1
    assert local.warm and build_runner("local://?workers=3").workers == 3
    assert not build_runner("local://?workers=2&warm=0").warm


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("batch://queue", "job_definition is missing: write batch://QUEUE?job_definition=NAME"),
        ("local://?workers=0", "at least 1"),
        ("local://?warm=maybe", 'warm must be 1 or 0 (true or false), not "maybe"'),
        ("ray://", "ray:// needs the address of the cluster's head: ray://HOST:10001"),
        ("ray://head:10001?cpus=0", "cpus must be a number of CPUs per job above 0"),
        ("ray://head?workers=2", 'unknown parameter "workers"; ray:// takes cpus=C and jobs=N'),
        ("celery://broker", 'unsupported scheme "celery"; use inline://, local://?workers=N'),
    ],
)
def test_unusable_runner_uris_say_what_to_use(uri: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)) as err:
        build_runner(uri)
    assert err.value.message.startswith("TABPILOT_RUNNER_URI: ")


@pytest.mark.parametrize(
    ("runner_uri", "workers", "expected"),
    [
        ("local://?workers=3&warm=0", None, (3, False)),
        ("local://?workers=2&warm=off", 4, (4, False)),
        ("local://?workers=2", None, (2, True)),
        ("inline://", None, (1, True)),
    ],
)
def test_the_worker_runs_the_runner_uris_workers_and_warm_flag(
    tmp_path: Path, runner_uri: str, workers: int | None, expected: tuple[int, bool]
) -> None:
    """`tabpilot worker` used to ignore `warm=0` and always keep spare processes."""
    settings = load_settings(data_dir=tmp_path, runner_uri=runner_uri)
    runner = worker_runner(settings, workers=workers)
    assert isinstance(runner, LocalRunner)
    assert (runner.workers, runner.warm) == expected


def test_tabpilot_worker_starts_the_runner_the_uri_describes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[LocalRunner] = []
    monkeypatch.setattr(LocalRunner, "start", lambda self, ctx: started.append(self))
    monkeypatch.setattr(LocalRunner, "stop", lambda self, *args, **kwargs: None)
    monkeypatch.setattr(worker, "_on_sigterm", lambda action: None)  # keep pytest's handler
    stop = threading.Event()
    stop.set()
    settings = load_settings(data_dir=tmp_path, runner_uri="local://?workers=2&warm=0")
    worker.run_worker(settings, stop=stop)
    assert [(r.workers, r.warm) for r in started] == [(2, False)]


def test_runner_modules_do_not_import_the_ml_libraries() -> None:
    code = (
        "import sys\n"
        "from tabpilot.jobs.registry import build_runner\n"
        "import tabpilot.jobs.local, tabpilot.jobs.inline, tabpilot.jobs.execute\n"
        "import tabpilot.jobs.worker, tabpilot.jobs.lease, tabpilot.cli\n"
        "build_runner('local://?workers=2')\n"
        "bad = [m for m in ('flaml', 'sklearn', 'lightgbm', 'xgboost') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
