"""Jobs, their tags and events, claims and leases in SQL: the job part of `SqlMetadataStore`."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from tabpilot.errors import Conflict
from tabpilot.metadata.base import (
    DEFAULT_JOB_SORT,
    DEFAULT_PAGE_LIMIT,
    JOB_UPDATABLE,
    MAX_PAGE_LIMIT,
    Page,
    check_changes,
    check_limit,
    job_search_text,
    not_found,
    parse_job_sort,
    parse_statuses,
)
from tabpilot.metadata.sql_base import SqlStoreBase
from tabpilot.metadata.sql_rows import insert_new, paginate, row_to_job, scope
from tabpilot.metadata.sql_tables import datasets, job_events, job_tags, jobs, models
from tabpilot.metadata.transitions import (
    STATUS_EVENT,
    expected_statuses,
    plan_transition,
    status_event_data,
    transition_fields,
)
from tabpilot.records import JobEvent, JobRecord, JobStatus, ModelRecord, utc_now

_QUEUED = frozenset({JobStatus.QUEUED})


def insert_model(conn: Connection, model: ModelRecord) -> None:
    """Insert a new model row in the caller's transaction."""
    insert_new(conn, models, dataclasses.asdict(model), "Model")


class SqlJobs(SqlStoreBase):
    """Jobs with their tags and event logs; claims, leases and status transitions."""

    def create_job(self, record: JobRecord, *, message: str | None = None) -> JobRecord:
        values = _job_values(record) | {"event_seq": 0 if message is None else 1}
        with self._tx(write=True) as conn:
            dataset_owned = conn.execute(
                select(datasets.c.id).where(
                    datasets.c.id == record.dataset_id, datasets.c.owner == record.owner
                )
            ).first()
            if dataset_owned is None:
                raise not_found("Dataset", record.dataset_id)
            insert_new(conn, jobs, values, "Job")
            _write_tags(conn, record.id, record.tags)
            if message is not None:
                data = status_event_data(
                    record, previous=None, message=message, worker=record.lease_owner
                )
                _insert_event(conn, JobEvent(job_id=record.id, seq=1, kind=STATUS_EVENT, data=data))
        return record

    def find_job(self, job_id: str, *, owner: str | None) -> JobRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id, scope(jobs, owner))).first()
        return row_to_job(row) if row else None

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
        query = select(jobs).where(scope(jobs, owner))
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
            return paginate(conn, query, jobs, key, descending, sort, limit, cursor, row_to_job)

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
        if "tags" in changes:
            changes["tags"] = list(changes["tags"])
        with self._tx(write=True) as conn:
            current = self._lock_job(conn, job_id, owner)
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
        return row_to_job(row)

    def delete_job(self, job_id: str, *, owner: str | None) -> None:
        with self._tx(write=True) as conn:
            found = conn.execute(
                select(jobs.c.id).where(jobs.c.id == job_id, scope(jobs, owner))
            ).first()
            if found is None:
                raise not_found("Job", job_id)
            for child in (job_events, job_tags, models):
                conn.execute(delete(child).where(child.c.job_id == job_id))
            conn.execute(delete(jobs).where(jobs.c.id == job_id))

    def transition_job(
        self,
        job_id: str,
        *,
        owner: str | None,
        expect: JobStatus | Collection[JobStatus],
        to: JobStatus,
        message: str | None = None,
        held_by: str | None = None,
        worker_id: str | None = None,
        lease_seconds: float | None = None,
        error: str | None = None,
        model_id: str | None = None,
        progress: dict[str, Any] | None = None,
        model: ModelRecord | None = None,
    ) -> JobRecord | None:
        sources = expected_statuses(expect, to)
        fields = transition_fields(
            job_id,
            JobStatus(to),
            model,
            message=message,
            worker_id=worker_id,
            lease_seconds=lease_seconds,
            error=error,
            model_id=model_id,
            progress=progress,
        )
        with self._tx(write=True) as conn:
            moved = self._transition(conn, job_id, owner, sources, held_by, JobStatus(to), fields)
            if moved is not None and model is not None:
                if model.owner != moved.owner:
                    raise not_found("Job", job_id)  # as create_model: another owner's job
                insert_model(conn, model)  # only when the transition won; same commit
            return moved

    def claim_next_job(self, *, worker_id: str, lease_seconds: float) -> JobRecord | None:
        query = (
            select(jobs.c.id)
            .where(jobs.c.status == JobStatus.QUEUED.value)
            .order_by(jobs.c.created_at, jobs.c.id)
            .limit(1)
        )
        if self._postgres:
            query = query.with_for_update(skip_locked=True)
        lease = {"worker_id": worker_id, "lease_seconds": lease_seconds}
        # Under SQLite the write lock makes the first try win; under PostgreSQL the row lock
        # does. The status guard of _transition keeps it exactly-once on any isolation level.
        for _ in range(100):
            with self._tx(write=True) as conn:
                job_id = conn.execute(query).scalar()
                if job_id is None:
                    return None
                claimed = self._transition(
                    conn, job_id, None, _QUEUED, None, JobStatus.RUNNING, lease
                )
                if claimed is not None:
                    return claimed
        return None

    def claim_job(self, job_id: str, *, worker_id: str, lease_seconds: float) -> JobRecord:
        lease = {"worker_id": worker_id, "lease_seconds": lease_seconds}
        with self._tx(write=True) as conn:
            claimed = self._transition(conn, job_id, None, _QUEUED, None, JobStatus.RUNNING, lease)
            if claimed is None:
                status = conn.execute(select(jobs.c.status).where(jobs.c.id == job_id)).scalar()
                raise Conflict(
                    f'Job "{job_id}" is {status}; only queued jobs can be started',
                    details={"status": status},
                )
            return claimed

    def _lock_job(self, conn: Connection, job_id: str, owner: str | None) -> JobRecord:
        """The job, locked until the transaction ends; NotFound if the owner has no such job."""
        row = conn.execute(
            self._locked(select(jobs).where(jobs.c.id == job_id, scope(jobs, owner)))
        ).first()
        if row is None:
            raise not_found("Job", job_id)
        return row_to_job(row)

    def _transition(
        self,
        conn: Connection,
        job_id: str,
        owner: str | None,
        sources: frozenset[JobStatus],
        held_by: str | None,
        to: JobStatus,
        fields: dict[str, Any],
    ) -> JobRecord | None:
        """`transition_job` inside the caller's write transaction."""
        current = self._lock_job(conn, job_id, owner)
        if current.status not in sources or (
            held_by is not None and current.lease_owner != held_by
        ):
            return None
        plan = plan_transition(current, to=to, now=utc_now(), **fields)
        values = _job_values(dataclasses.replace(current, **plan.changes))
        seq = conn.execute(
            update(jobs)
            # The status guard repeats the check above, so that it holds on any isolation level.
            .where(jobs.c.id == job_id, jobs.c.status == current.status.value)
            .values(**{k: values[k] for k in plan.changes}, event_seq=jobs.c.event_seq + 1)
            .returning(jobs.c.event_seq)
        ).scalar()
        if seq is None:
            return None
        _insert_event(
            conn, JobEvent(job_id=job_id, seq=int(seq), kind=STATUS_EVENT, data=plan.event)
        )
        return row_to_job(conn.execute(select(jobs).where(jobs.c.id == job_id)).one())

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
        return [row_to_job(row) for row in rows]

    def append_job_event(
        self, job_id: str, *, owner: str | None, kind: str, data: dict[str, Any] | None = None
    ) -> JobEvent:
        with self._tx(write=True) as conn:
            seq = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, scope(jobs, owner))
                .values(event_seq=jobs.c.event_seq + 1)
                .returning(jobs.c.event_seq)
            ).scalar()
            if seq is None:
                raise not_found("Job", job_id)
            job_event = JobEvent(job_id=job_id, seq=int(seq), kind=kind, data=dict(data or {}))
            _insert_event(conn, job_event)
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
                select(jobs.c.id).where(jobs.c.id == job_id, scope(jobs, owner))
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


def _write_tags(conn: Connection, job_id: str, tags: Iterable[str]) -> None:
    unique = sorted(set(tags))
    if unique:
        conn.execute(insert(job_tags), [{"job_id": job_id, "tag": tag} for tag in unique])


def _job_values(record: JobRecord) -> dict[str, Any]:
    values = dataclasses.asdict(record)
    values["status"] = JobStatus(record.status).value
    values["problem_type"] = record.problem_type
    values["search_text"] = job_search_text(record)
    return values


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _insert_event(conn: Connection, job_event: JobEvent) -> None:
    conn.execute(insert(job_events).values(**dataclasses.asdict(job_event)))
