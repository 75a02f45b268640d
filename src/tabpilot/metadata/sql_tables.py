"""The SQL metadata schema: column types, tables and the ordered migrations that create them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Connection


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite itself keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: records hold timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Plain JSON, not JSONB, on PostgreSQL too: JSONB reorders object keys, and profiles, cards
# and metrics keep meaningful key order (columns in file order). Nothing queries inside them.
JsonType = JSON()

metadata_obj = MetaData()

schema_version = Table(
    "schema_version",
    metadata_obj,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("description", String(200), nullable=False),
    Column("applied_at", UtcDateTime, nullable=False),
)

users = Table(
    "users",
    metadata_obj,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("token_hash", String(200), nullable=False, unique=True),
    Column("created_at", UtcDateTime, nullable=False),
)

datasets = Table(
    "datasets",
    metadata_obj,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("name", Text, nullable=False),
    Column("filename", Text, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("n_bytes", BigInteger, nullable=False),
    Column("n_rows", BigInteger, nullable=False),
    Column("n_columns", Integer, nullable=False),
    Column("profile", JsonType, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_datasets_owner_created", "owner", "created_at", "id"),
)

jobs = Table(
    "jobs",
    metadata_obj,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("dataset_id", String(64), ForeignKey("datasets.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("spec", JsonType, nullable=False),
    Column("progress", JsonType, nullable=False),
    Column("error", Text),
    Column("model_id", String(64)),
    Column("tags", JsonType, nullable=False),
    Column("notes", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime),
    Column("finished_at", UtcDateTime),
    Column("lease_owner", String(200)),
    Column("lease_expires_at", UtcDateTime),
    Column("attempts", Integer, nullable=False),
    # Derived from spec, tags and notes on every write, so that filters stay plain SQL.
    Column("problem_type", String(32)),
    Column("search_text", Text, nullable=False),
    # The last event seq handed out; incrementing it serializes appends per job.
    Column("event_seq", Integer, nullable=False),
    Index("ix_jobs_owner_created", "owner", "created_at", "id"),
    Index("ix_jobs_status_created", "status", "created_at", "id"),
    Index("ix_jobs_status_lease", "status", "lease_expires_at"),
    Index("ix_jobs_dataset", "dataset_id"),
)

job_tags = Table(
    "job_tags",
    metadata_obj,
    Column("job_id", String(64), ForeignKey("jobs.id"), primary_key=True),
    Column("tag", String(200), primary_key=True),
    Index("ix_job_tags_tag", "tag", "job_id"),
)

job_events = Table(
    "job_events",
    metadata_obj,
    Column("job_id", String(64), ForeignKey("jobs.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("data", JsonType, nullable=False),
)

models = Table(
    "models",
    metadata_obj,
    Column("id", String(64), primary_key=True),
    Column("owner", String(64), nullable=False),
    Column("job_id", String(64), ForeignKey("jobs.id"), nullable=False),
    Column("card", JsonType, nullable=False),
    Column("artifact_prefix", Text, nullable=False),
    Column("deploy_key_hash", String(200), unique=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_models_owner_created", "owner", "created_at", "id"),
    Index("ix_models_job", "job_id"),
)


def _migrate_v1(conn: Connection) -> None:
    # Version 1 is the schema as first released. When a later step alters a table, freeze
    # these definitions here first, so that a fresh database still replays history exactly.
    metadata_obj.create_all(conn, tables=[users, datasets, jobs, job_tags, job_events, models])


MIGRATIONS: tuple[tuple[int, str, Callable[[Connection], None]], ...] = (
    (1, "users, datasets, jobs, job tags, job events, models", _migrate_v1),
)
"""Ordered schema steps. Never edit a released step; append a new one."""

SCHEMA_VERSION = MIGRATIONS[-1][0]
