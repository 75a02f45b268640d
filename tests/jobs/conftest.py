"""Helpers for job tests: datasets and jobs made directly, waiting, processes.

The `settings` and `ctx` fixtures (real stores in a temporary directory) are in tests/conftest.py.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tabpilot.context import AppContext
from tabpilot.records import DatasetRecord, JobRecord
from tabpilot.storage import keys
from tests.conftest import make_mixed_frame
from tests.factories import OWNER as OWNER  # the tests here import it from this module
from tests.factories import dataset_record, job_record


def add_dataset(
    ctx: AppContext,
    frame: pd.DataFrame | None = None,
    *,
    raw: bytes | None = None,
    filename: str = "customers.csv",
) -> DatasetRecord:
    """Put a CSV in the artifact store and record it, as the upload service would."""
    if raw is None:
        frame = make_mixed_frame(300, seed=3) if frame is None else frame
        buffer = io.StringIO()
        frame.to_csv(buffer, index=False)
        raw = buffer.getvalue().encode()
    n_rows = 0 if frame is None else len(frame)
    n_columns = 0 if frame is None else len(frame.columns)
    record = dataset_record(
        name=filename.split(".")[0],
        filename=filename,
        n_bytes=len(raw),
        n_rows=n_rows,
        n_columns=n_columns,
    )
    ctx.artifacts.put_bytes(keys.dataset_data(record.id), raw)
    return ctx.metadata.create_dataset(record)


def add_job(ctx: AppContext, dataset: DatasetRecord, **spec: Any) -> JobRecord:
    """A QUEUED job, as the job service would create it."""
    full = {"target": "label", "time_budget": 5.0, "estimators": ["lgbm", "linear"], **spec}
    return ctx.metadata.create_job(job_record(dataset, spec=full))


def wait_for(
    predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = ""
) -> Any:
    """Poll until `predicate()` is truthy and return its value, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or predicate}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def processes_with(text: str) -> list[int]:
    """Pids of live processes whose command line contains `text`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found
