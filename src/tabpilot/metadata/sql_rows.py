"""Rows to records and back, and the query helpers every SQL store part shares."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Table, and_, func, insert, literal, or_, select, true
from sqlalchemy.engine import Connection, Row
from sqlalchemy.sql import ColumnElement, Select

from tabpilot.errors import Conflict
from tabpilot.metadata.base import Page, check_limit, decode_cursor, encode_cursor
from tabpilot.metadata.sql_tables import UtcDateTime
from tabpilot.records import DatasetRecord, JobRecord, JobStatus, ModelRecord, UserRecord

R = TypeVar("R")

# Jobs never started (or not finished) sort as if at this instant, i.e. oldest.
_FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)


# -- rows and records --------------------------------------------------------------------------


def scope(table: Table, owner: str | None) -> ColumnElement[bool]:
    return true() if owner is None else table.c.owner == owner


def insert_new(conn: Connection, table: Table, values: dict[str, Any], kind: str) -> None:
    exists = conn.execute(select(table.c.id).where(table.c.id == values["id"])).first()
    if exists:
        raise Conflict(f'{kind} "{values["id"]}" already exists')
    conn.execute(insert(table).values(**values))


def paginate(
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


def row_to_dataset(row: Row[Any]) -> DatasetRecord:
    return DatasetRecord(**row._asdict())


def row_to_job(row: Row[Any]) -> JobRecord:
    values = row._asdict()
    for derived in ("problem_type", "search_text", "event_seq"):
        values.pop(derived)
    values["status"] = JobStatus(values["status"])
    return JobRecord(**values)


def row_to_model(row: Row[Any]) -> ModelRecord:
    return ModelRecord(**row._asdict())


def row_to_user(row: Row[Any]) -> UserRecord:
    return UserRecord(**row._asdict())
