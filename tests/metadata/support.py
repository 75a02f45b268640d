"""Helpers of the MetadataStore contract suite: owners, a fixed time, records with defaults."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tabpilot.metadata import MetadataStore
from tabpilot.records import DatasetRecord, JobRecord, ModelRecord
from tests.factories import add_dataset, add_job, add_model

ALICE, BOB = "usr_alice", "usr_bob"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def make_dataset(store: MetadataStore, owner: str = ALICE, **kw: Any) -> DatasetRecord:
    values: dict[str, Any] = {
        "name": "houses",
        "filename": "houses.csv",
        "profile": {"columns": [{"name": "price", "kind": "numeric"}]},
    }
    return add_dataset(store, owner=owner, **(values | kw))


def make_job(store: MetadataStore, dataset: DatasetRecord, **kw: Any) -> JobRecord:
    spec = {"target": "price", "problem_type": "regression", "time_budget": 30}
    return add_job(store, dataset, **({"spec": spec} | kw))


def make_model(store: MetadataStore, job: JobRecord, **kw: Any) -> ModelRecord:
    return add_model(store, job, **({"card": {"metrics": {"r2": 0.9}}} | kw))


def all_pages(fetch: Any, limit: int, **kw: Any) -> list[Any]:
    items, cursor, pages = [], None, 0
    while True:
        page = fetch(limit=limit, cursor=cursor, **kw)
        assert len(page.items) <= limit
        items.extend(page.items)
        pages += 1
        if page.next_cursor is None:
            return items
        assert page.items, "a page with a next cursor must not be empty"
        cursor = page.next_cursor
        assert pages < 1000
