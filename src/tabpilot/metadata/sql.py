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
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

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
    and_,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Connection, Engine, Row, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import ColumnElement, Select

from tabpilot.errors import Conflict, InvalidInput
from tabpilot.metadata.base import (
    DATASET_UPDATABLE,
    DEFAULT_JOB_SORT,
    DEFAULT_PAGE_LIMIT,
    JOB_UPDATABLE,
    MAX_PAGE_LIMIT,
    MODEL_UPDATABLE,
    USER_UPDATABLE,
    MetadataStore,
    Page,
    check_changes,
    check_limit,
    decode_cursor,
    encode_cursor,
    not_found,
    parse_job_sort,
    parse_statuses,
)
from tabpilot.records import (
    DatasetRecord,
    JobEvent,
    JobRecord,
    JobStatus,
    ModelRecord,
    UserRecord,
    utc_now,
)

R = TypeVar("R")

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Any constant works; it only has to be the same in every process that migrates.
_PG_MIGRATION_LOCK = 0x7461_6270_696C  # "tabpil"
# Jobs never started (or not finished) sort as if at this instant, i.e. oldest.
_FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)


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


class SqlMetadataStore(MetadataStore):
    """Metadata in SQLite (`sqlite:///path.db`) or PostgreSQL (`postgresql://...`).

    Opening the store creates the SQLite file's directory if needed and applies any pending
    schema migrations.
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
        self._engine.dispose()

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

    # -- datasets --------------------------------------------------------------------------

    def create_dataset(self, record: DatasetRecord) -> DatasetRecord:
        values = dataclasses.asdict(record)
        with self._tx(write=True) as conn:
            _insert_new(conn, datasets, values, "Dataset")
        return record

    def find_dataset(self, dataset_id: str, *, owner: str | None) -> DatasetRecord | None:
        with self._tx() as conn:
            row = conn.execute(
                select(datasets).where(datasets.c.id == dataset_id, _scope(datasets, owner))
            ).first()
        return _dataset(row) if row else None

    def list_datasets(
        self, *, owner: str | None, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[DatasetRecord]:
        query = select(datasets).where(_scope(datasets, owner))
        with self._tx() as conn:
            return _paginate(
                conn, query, datasets, "created_at", True, "-created_at", limit, cursor, _dataset
            )

    def update_dataset(
        self, dataset_id: str, *, owner: str | None, **changes: Any
    ) -> DatasetRecord:
        check_changes("dataset", changes, DATASET_UPDATABLE)
        where = (datasets.c.id == dataset_id, _scope(datasets, owner))
        with self._tx(write=True) as conn:
            if changes:
                result = conn.execute(update(datasets).where(*where).values(**changes))
                if result.rowcount != 1:
                    raise not_found("Dataset", dataset_id)
            row = conn.execute(select(datasets).where(*where)).first()
        if row is None:
            raise not_found("Dataset", dataset_id)
        return _dataset(row)

    def delete_dataset(self, dataset_id: str, *, owner: str | None) -> None:
        with self._tx(write=True) as conn:
            found = conn.execute(
                select(datasets.c.id).where(datasets.c.id == dataset_id, _scope(datasets, owner))
            ).first()
            if found is None:
                raise not_found("Dataset", dataset_id)
            using = list(
                conn.execute(
                    select(jobs.c.id).where(jobs.c.dataset_id == dataset_id).order_by(jobs.c.id)
                ).scalars()
            )
            if using:
                shown = ", ".join(using[:10]) + (", ..." if len(using) > 10 else "")
                raise Conflict(
                    f'Dataset "{dataset_id}" is used by {len(using)} job(s) ({shown}); '
                    "delete those jobs first",
                    details={"jobs": using},
                )
            conn.execute(delete(datasets).where(datasets.c.id == dataset_id))

    # -- jobs ------------------------------------------------------------------------------

    def create_job(self, record: JobRecord) -> JobRecord:
        values = _job_values(record) | {"event_seq": 0}
        with self._tx(write=True) as conn:
            dataset_owned = conn.execute(
                select(datasets.c.id).where(
                    datasets.c.id == record.dataset_id, datasets.c.owner == record.owner
                )
            ).first()
            if dataset_owned is None:
                raise not_found("Dataset", record.dataset_id)
            _insert_new(conn, jobs, values, "Job")
            _write_tags(conn, record.id, record.tags)
        return record

    def find_job(self, job_id: str, *, owner: str | None) -> JobRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id, _scope(jobs, owner))).first()
        return _job(row) if row else None

    def list_jobs(
        self,
        *,
        owner: str | None,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        tag: str | None = None,
        dataset_id: str | None = None,
        problem_type: str | None = None,
        text: str | None = None,
        sort: str = DEFAULT_JOB_SORT,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[JobRecord]:
        key, descending = parse_job_sort(sort)
        statuses = parse_statuses(status)
        query = select(jobs).where(_scope(jobs, owner))
        if statuses is not None:
            query = query.where(jobs.c.status.in_([s.value for s in statuses]))
        if tag is not None:
            query = query.where(
                select(job_tags.c.job_id)
                .where(job_tags.c.job_id == jobs.c.id, job_tags.c.tag == tag)
                .exists()
            )
        if dataset_id is not None:
            query = query.where(jobs.c.dataset_id == dataset_id)
        if problem_type is not None:
            query = query.where(jobs.c.problem_type == problem_type)
        if text:
            pattern = "%" + _escape_like(text.lower()) + "%"
            query = query.where(jobs.c.search_text.like(pattern, escape="\\"))
        with self._tx() as conn:
            return _paginate(conn, query, jobs, key, descending, sort, limit, cursor, _job)

    def update_job(
        self,
        job_id: str,
        *,
        owner: str | None,
        if_status: Collection[JobStatus] | None = None,
        if_lease_owner: str | None = None,
        **changes: Any,
    ) -> JobRecord:
        check_changes("job", changes, JOB_UPDATABLE)
        if "status" in changes:
            changes["status"] = parse_statuses(changes["status"])[0]  # type: ignore[index]
        if "tags" in changes:
            changes["tags"] = list(changes["tags"])
        with self._tx(write=True) as conn:
            row = conn.execute(
                self._locked(select(jobs).where(jobs.c.id == job_id, _scope(jobs, owner)))
            ).first()
            if row is None:
                raise not_found("Job", job_id)
            current = _job(row)
            if if_status is not None:
                allowed = parse_statuses(if_status) or []
                if current.status not in allowed:
                    raise Conflict(
                        f'Job "{job_id}" is {current.status.value}, not '
                        f"{' or '.join(s.value for s in allowed)}",
                        details={"status": current.status.value},
                    )
            if if_lease_owner is not None and current.lease_owner != if_lease_owner:
                raise Conflict(
                    f'Job "{job_id}" is no longer leased to worker "{if_lease_owner}"',
                    details={"status": current.status.value},
                )
            updated = dataclasses.replace(current, **changes)
            values = _job_values(updated)
            changed = {k: values[k] for k in changes}
            changed.update(problem_type=values["problem_type"], search_text=values["search_text"])
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**changed))
            if "tags" in changes:
                conn.execute(delete(job_tags).where(job_tags.c.job_id == job_id))
                _write_tags(conn, job_id, updated.tags)
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one()
        return _job(row)

    def delete_job(self, job_id: str, *, owner: str | None) -> None:
        with self._tx(write=True) as conn:
            found = conn.execute(
                select(jobs.c.id).where(jobs.c.id == job_id, _scope(jobs, owner))
            ).first()
            if found is None:
                raise not_found("Job", job_id)
            for child in (job_events, job_tags, models):
                conn.execute(delete(child).where(child.c.job_id == job_id))
            conn.execute(delete(jobs).where(jobs.c.id == job_id))

    def claim_next_job(self, *, worker_id: str, lease_seconds: float) -> JobRecord | None:
        query = (
            select(jobs.c.id)
            .where(jobs.c.status == JobStatus.QUEUED.value)
            .order_by(jobs.c.created_at, jobs.c.id)
            .limit(1)
        )
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        # Under SQLite the write lock makes the first try win; under PostgreSQL the row lock
        # does. The status guard in _claim keeps it exactly-once on any isolation level.
        for _ in range(100):
            with self._tx(write=True) as conn:
                job_id = conn.execute(query).scalar()
                if job_id is None:
                    return None
                claimed = _claim(conn, job_id, worker_id, lease_seconds)
                if claimed is not None:
                    return claimed
        return None

    def claim_job(self, job_id: str, *, worker_id: str, lease_seconds: float) -> JobRecord:
        with self._tx(write=True) as conn:
            status = conn.execute(
                self._locked(select(jobs.c.status).where(jobs.c.id == job_id))
            ).scalar()
            if status is None:
                raise not_found("Job", job_id)
            claimed = _claim(conn, job_id, worker_id, lease_seconds)
            if claimed is None:
                raise Conflict(
                    f'Job "{job_id}" is {status}; only queued jobs can be started',
                    details={"status": status},
                )
            return claimed

    def heartbeat(self, job_id: str, *, worker_id: str, lease_seconds: float) -> bool:
        with self._tx(write=True) as conn:
            result = conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.status == JobStatus.RUNNING.value,
                    jobs.c.lease_owner == worker_id,
                )
                .values(lease_expires_at=utc_now() + timedelta(seconds=lease_seconds))
            )
            return result.rowcount == 1

    def list_expired_leases(self, now: datetime | None = None) -> list[JobRecord]:
        now = now or utc_now()
        with self._tx() as conn:
            rows = conn.execute(
                select(jobs)
                .where(jobs.c.status == JobStatus.RUNNING.value, jobs.c.lease_expires_at < now)
                .order_by(jobs.c.lease_expires_at, jobs.c.id)
            ).all()
        return [_job(row) for row in rows]

    def append_job_event(
        self, job_id: str, *, owner: str | None, kind: str, data: dict[str, Any] | None = None
    ) -> JobEvent:
        with self._tx(write=True) as conn:
            seq = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, _scope(jobs, owner))
                .values(event_seq=jobs.c.event_seq + 1)
                .returning(jobs.c.event_seq)
            ).scalar()
            if seq is None:
                raise not_found("Job", job_id)
            job_event = JobEvent(job_id=job_id, seq=int(seq), kind=kind, data=dict(data or {}))
            conn.execute(insert(job_events).values(**dataclasses.asdict(job_event)))
        return job_event

    def list_job_events(
        self,
        job_id: str,
        *,
        owner: str | None,
        after_seq: int = 0,
        limit: int = MAX_PAGE_LIMIT,
    ) -> list[JobEvent]:
        check_limit(limit)
        with self._tx() as conn:
            found = conn.execute(
                select(jobs.c.id).where(jobs.c.id == job_id, _scope(jobs, owner))
            ).first()
            if found is None:
                raise not_found("Job", job_id)
            rows = conn.execute(
                select(job_events)
                .where(job_events.c.job_id == job_id, job_events.c.seq > after_seq)
                .order_by(job_events.c.seq)
                .limit(limit)
            ).all()
        return [
            JobEvent(job_id=r.job_id, seq=r.seq, at=r.at, kind=r.kind, data=r.data) for r in rows
        ]

    # -- models ----------------------------------------------------------------------------

    def create_model(self, record: ModelRecord) -> ModelRecord:
        values = dataclasses.asdict(record)
        with self._tx(write=True) as conn:
            job_owned = conn.execute(
                select(jobs.c.id).where(jobs.c.id == record.job_id, jobs.c.owner == record.owner)
            ).first()
            if job_owned is None:
                raise not_found("Job", record.job_id)
            _insert_new(conn, models, values, "Model")
        return record

    def find_model(self, model_id: str, *, owner: str | None) -> ModelRecord | None:
        with self._tx() as conn:
            row = conn.execute(
                select(models).where(models.c.id == model_id, _scope(models, owner))
            ).first()
        return _model(row) if row else None

    def find_model_by_deploy_key_hash(self, key_hash: str) -> ModelRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(models).where(models.c.deploy_key_hash == key_hash)).first()
        return _model(row) if row else None

    def list_models(
        self,
        *,
        owner: str | None,
        job_id: str | None = None,
        limit: int = DEFAULT_PAGE_LIMIT,
        cursor: str | None = None,
    ) -> Page[ModelRecord]:
        query = select(models).where(_scope(models, owner))
        if job_id is not None:
            query = query.where(models.c.job_id == job_id)
        with self._tx() as conn:
            return _paginate(
                conn, query, models, "created_at", True, "-created_at", limit, cursor, _model
            )

    def update_model(self, model_id: str, *, owner: str | None, **changes: Any) -> ModelRecord:
        check_changes("model", changes, MODEL_UPDATABLE)
        where = (models.c.id == model_id, _scope(models, owner))
        with self._tx(write=True) as conn:
            if changes:
                try:
                    result = conn.execute(update(models).where(*where).values(**changes))
                except IntegrityError:
                    raise Conflict("That deploy key is already in use; mint a new one") from None
                if result.rowcount != 1:
                    raise not_found("Model", model_id)
            row = conn.execute(select(models).where(*where)).first()
        if row is None:
            raise not_found("Model", model_id)
        return _model(row)

    def delete_model(self, model_id: str, *, owner: str | None) -> None:
        with self._tx(write=True) as conn:
            result = conn.execute(
                delete(models).where(models.c.id == model_id, _scope(models, owner))
            )
            if result.rowcount != 1:
                raise not_found("Model", model_id)

    # -- users -----------------------------------------------------------------------------

    def create_user(self, record: UserRecord) -> UserRecord:
        with self._tx(write=True) as conn:
            if conn.execute(select(users.c.id).where(users.c.name == record.name)).first():
                raise _user_exists(record.name)
            _insert_new(conn, users, dataclasses.asdict(record), "User")
        return record

    def find_user(self, user_id: str) -> UserRecord | None:
        return self._find_user(users.c.id == user_id)

    def find_user_by_name(self, name: str) -> UserRecord | None:
        return self._find_user(users.c.name == name)

    def find_user_by_token_hash(self, token_hash: str) -> UserRecord | None:
        return self._find_user(users.c.token_hash == token_hash)

    def _find_user(self, condition: ColumnElement[bool]) -> UserRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(users).where(condition)).first()
        return _user(row) if row else None

    def list_users(
        self, *, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
    ) -> Page[UserRecord]:
        with self._tx() as conn:
            return _paginate(
                conn, select(users), users, "created_at", False, "created_at", limit, cursor, _user
            )

    def update_user(self, user_id: str, **changes: Any) -> UserRecord:
        check_changes("user", changes, USER_UPDATABLE)
        with self._tx(write=True) as conn:
            if "name" in changes:
                taken = conn.execute(
                    select(users.c.id).where(users.c.name == changes["name"], users.c.id != user_id)
                ).first()
                if taken:
                    raise _user_exists(str(changes["name"]))
            if changes:
                try:
                    result = conn.execute(
                        update(users).where(users.c.id == user_id).values(**changes)
                    )
                except IntegrityError:
                    raise Conflict("That token is already in use; mint a new one") from None
                if result.rowcount != 1:
                    raise not_found("User", user_id)
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        if row is None:
            raise not_found("User", user_id)
        return _user(row)

    def delete_user(self, user_id: str) -> None:
        with self._tx(write=True) as conn:
            owned = {
                table.name: conn.execute(
                    select(func.count()).select_from(table).where(table.c.owner == user_id)
                ).scalar_one()
                for table in (datasets, jobs, models)
            }
            if any(owned.values()):
                summary = ", ".join(f"{n} {name}" for name, n in owned.items() if n)
                raise Conflict(
                    f'User "{user_id}" still owns {summary}; delete those first',
                    details={"owned": owned},
                )
            result = conn.execute(delete(users).where(users.c.id == user_id))
            if result.rowcount != 1:
                raise not_found("User", user_id)


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
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    conn.exec_driver_sql(conn.get_execution_options().get("tabpilot_begin", "BEGIN"))


# -- rows and records --------------------------------------------------------------------------


def _scope(table: Table, owner: str | None) -> ColumnElement[bool]:
    return true() if owner is None else table.c.owner == owner


def _insert_new(conn: Connection, table: Table, values: dict[str, Any], kind: str) -> None:
    exists = conn.execute(select(table.c.id).where(table.c.id == values["id"])).first()
    if exists:
        raise Conflict(f'{kind} "{values["id"]}" already exists')
    conn.execute(insert(table).values(**values))


def _write_tags(conn: Connection, job_id: str, tags: Iterable[str]) -> None:
    unique = sorted(set(tags))
    if unique:
        conn.execute(insert(job_tags), [{"job_id": job_id, "tag": tag} for tag in unique])


def _job_values(record: JobRecord) -> dict[str, Any]:
    values = dataclasses.asdict(record)
    values["status"] = JobStatus(record.status).value
    values["problem_type"] = record.problem_type
    values["search_text"] = _search_text(record)
    return values


def _search_text(record: JobRecord) -> str:
    spec = record.spec or {}
    fields = ("target", "problem_type", "metric", "name", "dataset_name")
    parts = [
        record.id,
        record.dataset_id,
        *(str(spec[k]) for k in fields if spec.get(k)),
        *record.tags,
        record.notes,
    ]
    return "\n".join(part for part in parts if part).lower()


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _claim(conn: Connection, job_id: str, worker_id: str, lease_seconds: float) -> JobRecord | None:
    now = utc_now()
    result = conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.status == JobStatus.QUEUED.value)
        .values(
            status=JobStatus.RUNNING.value,
            started_at=now,
            finished_at=None,
            lease_owner=worker_id,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=jobs.c.attempts + 1,
        )
    )
    if result.rowcount != 1:
        return None
    return _job(conn.execute(select(jobs).where(jobs.c.id == job_id)).one())


def _paginate(
    conn: Connection,
    query: Select[Any],
    table: Table,
    key: str,
    descending: bool,
    sort: str,
    limit: int,
    cursor: str | None,
    convert: Callable[[Row[Any]], R],
) -> Page[R]:
    """Keyset pagination on (key, id): stable under inserts, and cheap at any depth."""
    check_limit(limit)
    column = table.c[key]
    is_time = isinstance(column.type, UtcDateTime)
    sort_key: ColumnElement[Any] = column
    if is_time and column.nullable:
        sort_key = func.coalesce(column, literal(_FAR_PAST, UtcDateTime()))
    if cursor:
        raw, last_id = decode_cursor(cursor, sort)
        value: Any = raw
        if is_time:
            try:
                value = datetime.fromisoformat(raw or "")
            except ValueError:
                value = None
            if value is None or value.tzinfo is None:
                decode_cursor("", sort)  # raises the standard invalid-cursor error
        after = (sort_key < value) if descending else (sort_key > value)
        after_id = (table.c.id < last_id) if descending else (table.c.id > last_id)
        query = query.where(or_(after, and_(sort_key == value, after_id)))
    if descending:
        query = query.order_by(sort_key.desc(), table.c.id.desc())
    else:
        query = query.order_by(sort_key.asc(), table.c.id.asc())
    rows = conn.execute(query.limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        last = rows[-1]
        last_value = getattr(last, key)
        if is_time:
            last_value = (last_value or _FAR_PAST).isoformat()
        next_cursor = encode_cursor(sort, last_value, last.id)
    return Page([convert(row) for row in rows], next_cursor)


def _dataset(row: Row[Any]) -> DatasetRecord:
    return DatasetRecord(**row._asdict())


def _job(row: Row[Any]) -> JobRecord:
    values = row._asdict()
    for derived in ("problem_type", "search_text", "event_seq"):
        values.pop(derived)
    values["status"] = JobStatus(values["status"])
    return JobRecord(**values)


def _model(row: Row[Any]) -> ModelRecord:
    return ModelRecord(**row._asdict())


def _user(row: Row[Any]) -> UserRecord:
    return UserRecord(**row._asdict())


def _user_exists(name: str) -> Conflict:
    return Conflict(f'User "{name}" already exists; choose another name')
