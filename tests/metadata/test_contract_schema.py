"""The MetadataStore contract, schemas: SQL migrations and SQLite's concurrent opens and writes.

The migration tests run on every backend of conftest.py (DynamoDB skips them, saying why); the
SQLite tests open files of their own.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tabpilot.metadata import build_metadata_store
from tabpilot.metadata.sql import MIGRATIONS, SCHEMA_VERSION, SqlMetadataStore, schema_version
from tests.metadata.support import ALICE, all_pages, make_dataset, make_job

# -- schema ------------------------------------------------------------------------------------


def _sql_only(store_uri: str) -> None:
    if store_uri.startswith("dynamodb://"):
        pytest.skip(
            "DynamoDB has no schema migrations: `tabpilot init-stores` makes the table, "
            "idempotently also when run at once (tests/aws/test_dynamo_store.py)"
        )


def test_migrations_are_idempotent(store_uri: str) -> None:
    _sql_only(store_uri)
    with build_metadata_store(store_uri) as first:
        dataset = make_dataset(first)
    for _ in range(2):
        with build_metadata_store(store_uri) as again:
            assert isinstance(again, SqlMetadataStore)
            assert again.schema_version == SCHEMA_VERSION
            with again.engine.connect() as conn:
                rows = conn.execute(schema_version.select()).all()
            assert [r.version for r in rows] == [m[0] for m in MIGRATIONS]
            assert again.get_dataset(dataset.id, owner=ALICE) == dataset


def test_concurrent_opens_migrate_once(store_uri: str) -> None:
    _sql_only(store_uri)
    start = threading.Barrier(4)

    def open_store(_: int) -> int:
        start.wait()
        with build_metadata_store(store_uri) as opened:
            assert isinstance(opened, SqlMetadataStore)
            return opened.schema_version

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(open_store, range(4))) == [SCHEMA_VERSION] * 4


def test_sqlite_open_waits_while_another_process_writes_a_new_file(tmp_path: Path) -> None:
    # Switching a file to WAL does not wait on the busy timeout by itself: a store opened while
    # another connection writes (another process opening the same new database) must retry.
    import sqlite3

    path = tmp_path / "new.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE placeholder (i INTEGER)")
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO placeholder VALUES (1)")
    release = threading.Timer(0.3, other.execute, args=("COMMIT",))
    release.start()
    try:
        with build_metadata_store(f"sqlite:///{path}") as opened:
            assert isinstance(opened, SqlMetadataStore)
            assert opened.schema_version == SCHEMA_VERSION
    finally:
        release.join()
        other.close()


def test_sqlite_concurrent_writers_never_see_locked(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/busy.db"
    # Two store objects on one file stand in for the server and a worker process.
    stores = [build_metadata_store(uri), build_metadata_store(uri)]
    dataset = make_dataset(stores[0])
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        store = stores[n % 2]
        start.wait()
        try:
            for i in range(25):
                job = make_job(store, dataset, tags=[f"w{n}"])
                store.append_job_event(job.id, owner=None, kind="created", data={"i": i})
                store.update_job(job.id, owner=ALICE, notes=f"writer {n} job {i}")
                store.claim_next_job(worker_id=f"w{n}", lease_seconds=30)
                store.list_jobs(owner=ALICE, tag=f"w{n}", limit=5)
        except BaseException as exc:  # collected so the assertion names the error
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert len(all_pages(stores[0].list_jobs, 1000, owner=ALICE)) == 200
        assert len(all_pages(stores[1].list_jobs, 1000, owner=ALICE, status="running")) == 200
    finally:
        for store in stores:
            store.close()
