"""`SqlStoreBase`: the engine, transactions and migrations every SQL store part builds on.

SQLite and PostgreSQL share one code path; they differ only in how a connection is set up and
how a write transaction starts (see `tabpilot.metadata.sql`).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, func, insert, literal, select, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.sql import Select

from tabpilot.errors import InvalidInput
from tabpilot.metadata.base import MetadataStore
from tabpilot.metadata.sql_tables import MIGRATIONS, SCHEMA_VERSION, schema_version
from tabpilot.records import utc_now

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant works; it only has to be the same in every process that migrates.
_PG_MIGRATION_LOCK = 0x7461_6270_696C  # "tabpil"


class SqlStoreBase(MetadataStore):
    """The engine of a SQL metadata store: connection setup, transactions, migrations.

    Opening it creates the SQLite file's directory if needed and applies any pending schema
    migrations. The record methods live in the parts `SqlMetadataStore` is made of.
    """

    def __init__(self, uri: str) -> None:
        url = make_url(_normalize_uri(uri))
        self._sqlite = url.get_backend_name() == "sqlite"
        self._postgres = url.get_backend_name() == "postgresql"
        if not (self._sqlite or self._postgres):
            raise InvalidInput(
                f'Unsupported SQL database "{url.get_backend_name()}"; '
                "use sqlite:/// or postgresql://"
            )
        if self._sqlite:
            database = url.database or ""
            if database in ("", ":memory:") or database.startswith("file:"):
                raise InvalidInput(
                    "SQLite metadata needs a database file, shared by server and workers; "
                    "write sqlite:///path/to/tabpilot.db"
                )
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._database = str(Path(database).expanduser())
            self._version_conn: sqlite3.Connection | None = None
            self._version_lock = threading.Lock()
            self._engine = create_engine(
                url,
                connect_args={
                    "check_same_thread": False,
                    "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
                },
                pool_size=8,
                max_overflow=24,
            )
            event.listen(self._engine, "connect", _sqlite_on_connect)
            event.listen(self._engine, "begin", _sqlite_on_begin)
        else:
            self._engine = create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=24)
        try:
            self._migrate()
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def schema_version(self) -> int:
        with self._tx() as conn:
            return int(conn.execute(select(func.max(schema_version.c.version))).scalar() or 0)

    # -- lifecycle -------------------------------------------------------------------------

    def ping(self) -> None:
        with self._engine.connect() as conn:
            conn.execute(select(literal(1))).scalar_one()

    def close(self) -> None:
        if self._sqlite:
            with self._version_lock:
                if self._version_conn is not None:
                    self._version_conn.close()
                    self._version_conn = None
        self._engine.dispose()

    def data_version(self) -> int | None:
        """SQLite: `PRAGMA data_version` of a connection of its own that never writes.

        SQLite changes that number on a connection whenever another connection (of this
        process or any other, through the WAL index they share) has committed since its last
        read, and only then; as this connection writes nothing, every commit counts. A few
        microseconds, no record read. PostgreSQL has no such counter: None (nothing cached).
        """
        if not self._sqlite:
            return None
        with self._version_lock:
            if self._version_conn is None:
                self._version_conn = sqlite3.connect(
                    self._database,
                    timeout=SQLITE_BUSY_TIMEOUT_MS / 1000,
                    isolation_level=None,
                    check_same_thread=False,
                )
            return int(self._version_conn.execute("PRAGMA data_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._tx(write=True) as conn:
            if self._postgres:
                lock = text("SELECT pg_advisory_xact_lock(:key)")
                conn.execute(lock, {"key": _PG_MIGRATION_LOCK})
            schema_version.create(conn, checkfirst=True)
            current = conn.execute(select(func.max(schema_version.c.version))).scalar() or 0
            if current > SCHEMA_VERSION:
                raise InvalidInput(
                    f"The metadata database has schema version {current}, newer than this "
                    f"tabpilot understands ({SCHEMA_VERSION}); upgrade tabpilot"
                )
            for version, description, step in MIGRATIONS:
                if version > current:
                    step(conn)
                    conn.execute(
                        insert(schema_version).values(
                            version=version, description=description, applied_at=utc_now()
                        )
                    )

    @contextmanager
    def _tx(self, *, write: bool = False) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            if write and self._sqlite:
                conn.execution_options(tabpilot_begin="BEGIN IMMEDIATE")
            with conn.begin():
                yield conn

    def _locked(self, query: Select[Any]) -> Select[Any]:
        """Lock the selected rows until commit; SQLite's write lock already covers the file."""
        return query.with_for_update() if self._postgres else query


# -- connection setup --------------------------------------------------------------------------


def _normalize_uri(uri: str) -> str:
    """Point `postgresql://` at psycopg 3, which the `postgres` extra installs."""
    for prefix in ("postgresql://", "postgres://"):
        if uri.startswith(prefix):
            return "postgresql+psycopg://" + uri[len(prefix) :]
    return uri


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level, so that _sqlite_on_begin alone decides how each
    # transaction begins (pysqlite's implicit BEGIN would defeat BEGIN IMMEDIATE).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode = WAL`, retried while another connection holds the file.

    Switching a new file to WAL takes an exclusive lock for which SQLite does not wait (the
    busy timeout does not apply), so processes opening the same new database at once would
    otherwise fail with "database is locked".
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get("tabpilot_begin", "BEGIN"))
