"""Fixtures for the metadata contract suite: SQLite files, a real PostgreSQL server and
DynamoDB on a moto server over HTTP (`tests/aws_support.py`; a table of its own per test, made
by the store's own init as `tabpilot init-stores` makes it, and deleted afterwards).

The PostgreSQL server is started once per test session from the local binaries (initdb and
pg_ctl), listens on 127.0.0.1 only with its socket inside a temporary directory, and is stopped
at the end of the session. Each test gets a database of its own.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tabpilot.metadata import MetadataStore, build_metadata_store
from tests.servers import free_port

BACKENDS = ["sqlite", "postgres", "dynamodb"]


@dataclass
class PostgresServer:
    port: int
    user: str
    base_dir: Path

    def uri(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database; returns its URI."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.uri("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.uri(name)


def _find_binary(name: str) -> str | None:
    found = shutil.which(name) or shutil.which(name, path="/usr/local/bin")
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    initdb, pg_ctl = _find_binary("initdb"), _find_binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found on PATH or in /usr/local/bin")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install 'tabpilot[postgres]')")

    run_as: list[str] = []
    if os.geteuid() == 0:
        # initdb refuses to run as root; run the server as the postgres system user.
        try:
            account = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
        runuser = shutil.which("runuser")
        if not runuser:
            pytest.skip("running as root and runuser is missing, so PostgreSQL cannot start")
        run_as = [runuser, "-u", "postgres", "--"]

    # Not pytest's tmp_path: its parents are private to root, and the server must reach it.
    base_dir = Path(tempfile.mkdtemp(prefix="tabpilot-pg-"))
    if run_as:
        os.chown(base_dir, account.pw_uid, account.pw_gid)
    data_dir, log_file = base_dir / "data", base_dir / "server.log"

    def run(*args: str) -> None:
        subprocess.run(
            [*run_as, *args], cwd=base_dir, check=True, capture_output=True, text=True, timeout=60
        )

    started = False
    try:
        run(initdb, "-D", str(data_dir), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync")  # fmt: skip
        for _attempt in range(3):
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={port} "
                f"-c unix_socket_directories={base_dir} -c max_connections=300 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            )
            try:
                run(pg_ctl, "-D", str(data_dir), "-l", str(log_file), "-w", "-t", "30",
                    "-o", options, "start")  # fmt: skip
            except subprocess.CalledProcessError:
                continue  # most likely the port was taken in between; pick another
            started = True
            break
        if not started:
            log = log_file.read_text() if log_file.exists() else ""
            pytest.fail(f"PostgreSQL did not start; server log:\n{log[-3000:]}")
        yield PostgresServer(port=port, user="postgres", base_dir=base_dir)
    finally:
        if started:
            with contextlib.suppress(Exception):
                run(pg_ctl, "-D", str(data_dir), "-m", "immediate", "-w", "stop")
        shutil.rmtree(base_dir, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database of the current backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/metadata.db"
    elif backend == "dynamodb":
        yield from dynamo_table(request)
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        yield server.create_database()


def dynamo_table(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URI of a new DynamoDB table on the moto server, made by the registry's init."""
    request.getfixturevalue("aws_env")
    import boto3

    from tabpilot.metadata.registry import METADATA_STORES

    prefix = f"t-{uuid.uuid4().hex[:16]}"
    _, done = METADATA_STORES.initialize(f"dynamodb://{prefix}")
    assert done is not None and done.startswith("created the table")
    client = boto3.session.Session().client("dynamodb")  # made now: a test may undo aws_env
    try:
        yield f"dynamodb://{prefix}"
    finally:
        client.delete_table(TableName=f"{prefix}-metadata")
        client.close()


@pytest.fixture
def store(store_uri: str) -> Iterator[MetadataStore]:
    with build_metadata_store(store_uri) as opened:
        yield opened
