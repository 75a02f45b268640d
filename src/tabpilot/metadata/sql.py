"""`SqlMetadataStore`: the metadata store on SQLAlchemy Core, for SQLite and PostgreSQL.

One code path serves both databases; the differences are confined to how a connection is set
up and how a write transaction starts:

- SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
  `BEGIN IMMEDIATE`. Taking the write lock up front means a writer waits (up to the busy
  timeout) instead of failing with "database is locked" when it would otherwise upgrade a read
  snapshot that another writer has already moved past. Write transactions are kept short.
- PostgreSQL claims jobs with `SELECT ... FOR UPDATE SKIP LOCKED`, so concurrent workers never
  wait on each other's candidate row, and updates lock the row they read.

The schema is versioned: `schema_version` records each applied step of `MIGRATIONS`, and
opening a store applies the missing ones under a lock, so several processes may open the same
database at once.

The store is assembled from parts that share one engine (`sql_base.SqlStoreBase`): jobs and
their events (`sql_jobs`), datasets, models and users (`sql_records`), over the tables of
`sql_tables` and the row helpers of `sql_rows`.
"""

from __future__ import annotations

from tabpilot.metadata.sql_base import SQLITE_BUSY_TIMEOUT_MS
from tabpilot.metadata.sql_jobs import SqlJobs
from tabpilot.metadata.sql_records import SqlDatasets, SqlModels, SqlUsers
from tabpilot.metadata.sql_tables import (
    MIGRATIONS,
    SCHEMA_VERSION,
    UtcDateTime,
    metadata_obj,
    schema_version,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SqlMetadataStore",
    "UtcDateTime",
    "metadata_obj",
    "schema_version",
]


class SqlMetadataStore(SqlJobs, SqlDatasets, SqlModels, SqlUsers):
    """Metadata in SQLite (`sqlite:///path.db`) or PostgreSQL (`postgresql://...`).

    Opening the store creates the SQLite file's directory if needed and applies any pending
    schema migrations.
    """
