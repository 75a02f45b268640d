"""The MetadataStore contract: every backend passes these same tests (see conftest.py)."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tabpilot.errors import Conflict, InvalidInput, NotFound
from tabpilot.metadata import MetadataStore, build_metadata_store, sql_jobs
from tabpilot.metadata.sql import MIGRATIONS, SCHEMA_VERSION, SqlMetadataStore, schema_version
from tabpilot.metadata.transitions import STATUS_EVENT, STATUS_EVENT_FIELDS
from tabpilot.records import (
    DatasetRecord,
    JobRecord,
    JobStatus,
    ModelRecord,
    UserRecord,
    utc_now,
)
from tests.factories import add_dataset, add_job, add_model, job_record, model_record

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


# -- CRUD --------------------------------------------------------------------------------------


def test_dataset_crud(store: MetadataStore) -> None:
    dataset = make_dataset(store)
    assert dataset.id.startswith("ds_")
    assert store.get_dataset(dataset.id, owner=ALICE) == dataset
    assert store.find_dataset("ds_missing", owner=ALICE) is None
    with pytest.raises(NotFound, match="ds_missing"):
        store.get_dataset("ds_missing", owner=ALICE)

    updated = store.update_dataset(dataset.id, owner=ALICE, name="renamed", profile={"x": [1]})
    assert (updated.name, updated.profile) == ("renamed", {"x": [1]})
    assert store.get_dataset(dataset.id, owner=ALICE) == updated
    # Key order is meaningful (columns in file order) and must survive every backend.
    columns = {"zeta": {"kind": "numeric"}, "alpha": {"kind": "text"}, "mid": {}}
    store.update_dataset(dataset.id, owner=ALICE, profile={"columns": columns, "a": 1})
    stored = store.get_dataset(dataset.id, owner=ALICE).profile
    assert list(stored) == ["columns", "a"] and list(stored["columns"]) == list(columns)
    with pytest.raises(InvalidInput, match="created_at cannot change"):
        store.update_dataset(dataset.id, owner=ALICE, created_at=T0)

    with pytest.raises(Conflict):
        store.create_dataset(dataset)
    store.delete_dataset(dataset.id, owner=ALICE)
    assert store.find_dataset(dataset.id, owner=ALICE) is None
    with pytest.raises(NotFound):
        store.delete_dataset(dataset.id, owner=ALICE)


def test_job_crud_and_cascading_delete(store: MetadataStore) -> None:
    dataset = make_dataset(store)
    job = make_job(store, dataset, tags=["baseline", "v1"], notes="first try")
    assert job.id.startswith("job_") and job.status is JobStatus.QUEUED
    fetched = store.get_job(job.id, owner=ALICE)
    assert fetched == job
    assert fetched.created_at.tzinfo is not None and fetched.created_at.utcoffset() == timedelta(0)

    changed = store.update_job(
        job.id, owner=ALICE, progress={"phase": "search", "trials": 3}, tags=["v2"], notes="n"
    )
    assert changed.progress == {"phase": "search", "trials": 3}
    assert (changed.tags, changed.notes) == (["v2"], "n")
    assert store.list_jobs(owner=ALICE, tag="v1").items == []
    assert [j.id for j in store.list_jobs(owner=ALICE, tag="v2").items] == [job.id]
    with pytest.raises(InvalidInput, match="dataset_id"):
        store.update_job(job.id, owner=ALICE, dataset_id="ds_other")
    with pytest.raises(InvalidInput, match="status"):
        store.update_job(job.id, owner=ALICE, status="exploded")

    store.append_job_event(job.id, owner=ALICE, kind="phase", data={"phase": "search"})
    model = make_model(store, job)
    with pytest.raises(Conflict):
        store.delete_dataset(dataset.id, owner=ALICE)

    store.delete_job(job.id, owner=ALICE)
    assert store.find_job(job.id, owner=ALICE) is None
    assert store.find_model(model.id, owner=ALICE) is None
    with pytest.raises(NotFound):
        store.list_job_events(job.id, owner=ALICE)
    store.delete_dataset(dataset.id, owner=ALICE)  # nothing refers to it any more


def test_create_job_requires_own_dataset(store: MetadataStore) -> None:
    bobs = make_dataset(store, owner=BOB)
    with pytest.raises(NotFound, match=bobs.id):
        store.create_job(job_record(bobs, owner=ALICE))
    with pytest.raises(NotFound):
        store.create_job(job_record(bobs, owner=ALICE, dataset_id="ds_nope"))


def test_delete_dataset_in_use_lists_jobs(store: MetadataStore) -> None:
    dataset = make_dataset(store)
    jobs = [make_job(store, dataset) for _ in range(2)]
    with pytest.raises(Conflict) as caught:
        store.delete_dataset(dataset.id, owner=ALICE)
    assert sorted(caught.value.details["jobs"]) == sorted(j.id for j in jobs)
    assert all(j.id in caught.value.message for j in jobs)


def test_model_crud_and_deploy_key(store: MetadataStore) -> None:
    job = make_job(store, make_dataset(store))
    model = make_model(store, job)
    assert model.id.startswith("mdl_")
    assert store.get_model(model.id, owner=ALICE) == model
    assert store.find_model_by_deploy_key_hash("h1") is None

    deployed = store.update_model(model.id, owner=ALICE, deploy_key_hash="h1")
    assert store.find_model_by_deploy_key_hash("h1") == deployed
    other = make_model(store, job)
    with pytest.raises(Conflict):
        store.update_model(other.id, owner=ALICE, deploy_key_hash="h1")
    store.update_model(model.id, owner=ALICE, deploy_key_hash=None)
    assert store.find_model_by_deploy_key_hash("h1") is None

    listed = all_pages(store.list_models, 1, owner=ALICE, job_id=job.id)
    assert {m.id for m in listed} == {model.id, other.id}
    with pytest.raises(NotFound):
        store.create_model(model_record(job, owner=BOB))
    store.delete_model(model.id, owner=ALICE)
    with pytest.raises(NotFound):
        store.get_model(model.id, owner=ALICE)


def test_users(store: MetadataStore) -> None:
    alice = store.create_user(UserRecord(name="alice", token_hash="th-a"))
    assert alice.id.startswith("usr_")
    assert store.get_user(alice.id) == alice
    assert store.find_user_by_name("alice") == alice
    assert store.find_user_by_token_hash("th-a") == alice
    assert store.find_user_by_token_hash("nope") is None
    with pytest.raises(Conflict, match="alice"):
        store.create_user(UserRecord(name="alice", token_hash="th-other"))

    bob = store.create_user(UserRecord(name="bob", token_hash="th-b"))
    with pytest.raises(Conflict, match="bob"):
        store.update_user(alice.id, name="bob")
    rotated = store.update_user(alice.id, token_hash="th-a2")
    assert store.find_user_by_token_hash("th-a2") == rotated
    assert store.find_user_by_token_hash("th-a") is None
    assert [u.id for u in all_pages(store.list_users, 1)] == [alice.id, bob.id]

    make_dataset(store, owner=bob.id)
    with pytest.raises(Conflict, match="owns"):
        store.delete_user(bob.id)
    store.delete_user(alice.id)
    assert store.find_user(alice.id) is None
    with pytest.raises(NotFound):
        store.delete_user(alice.id)


def test_ping_and_timestamps_are_utc(store: MetadataStore) -> None:
    store.ping()
    local = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC).astimezone(
        timezone(timedelta(hours=5))
    )
    dataset = make_dataset(store, created_at=local)
    fetched = store.get_dataset(dataset.id, owner=ALICE)
    assert fetched.created_at == local
    assert fetched.created_at.tzinfo == UTC


# -- owners ------------------------------------------------------------------------------------


def test_other_owner_sees_nothing(store: MetadataStore) -> None:
    dataset = make_dataset(store)
    job = make_job(store, dataset)
    model = make_model(store, job)
    store.append_job_event(job.id, owner=ALICE, kind="created")

    assert store.find_dataset(dataset.id, owner=BOB) is None
    assert store.find_job(job.id, owner=BOB) is None
    assert store.find_model(model.id, owner=BOB) is None
    calls = [
        lambda: store.get_dataset(dataset.id, owner=BOB),
        lambda: store.update_dataset(dataset.id, owner=BOB, name="x"),
        lambda: store.delete_dataset(dataset.id, owner=BOB),
        lambda: store.get_job(job.id, owner=BOB),
        lambda: store.update_job(job.id, owner=BOB, notes="x"),
        lambda: store.delete_job(job.id, owner=BOB),
        lambda: store.append_job_event(job.id, owner=BOB, kind="x"),
        lambda: store.list_job_events(job.id, owner=BOB),
        lambda: store.get_model(model.id, owner=BOB),
        lambda: store.update_model(model.id, owner=BOB, card={}),
        lambda: store.delete_model(model.id, owner=BOB),
    ]
    for call in calls:
        with pytest.raises(NotFound):
            call()
    assert store.list_datasets(owner=BOB).items == []
    assert store.list_jobs(owner=BOB).items == []
    assert store.list_models(owner=BOB).items == []

    # Nothing changed for the owner, and the system view (owner=None) sees everything.
    assert store.get_job(job.id, owner=ALICE).notes == ""
    assert store.get_dataset(dataset.id, owner=None) == dataset
    assert [j.id for j in store.list_jobs(owner=None).items] == [job.id]
    assert len(store.list_job_events(job.id, owner=ALICE)) == 1


# -- listing -----------------------------------------------------------------------------------


def _seed_jobs(store: MetadataStore) -> list[JobRecord]:
    """60 of Alice's jobs with varied fields (and tied timestamps), plus noise from Bob."""
    iris = make_dataset(store, name="iris")
    houses = make_dataset(store, name="houses")
    statuses = list(JobStatus)
    created = []
    for i in range(60):
        dataset = iris if i % 3 == 0 else houses
        problem = ["binary", "multiclass", "regression"][i % 3]
        status = statuses[i % len(statuses)]
        started = T0 + timedelta(minutes=i % 7) if status is not JobStatus.QUEUED else None
        record = job_record(
            dataset,
            spec={"target": f"col_{i % 4}", "problem_type": problem, "dataset_name": dataset.name},
            status=status,
            tags=["even" if i % 2 == 0 else "odd", *(["fifth"] if i % 5 == 0 else [])],
            notes="100% sure_thing" if i == 7 else f"note {i}",
            # Pairs of jobs share a creation time, so the id tie-break is exercised.
            created_at=T0 + timedelta(seconds=i // 2),
            started_at=started,
            finished_at=started + timedelta(seconds=i) if status.is_final and started else None,
        )
        created.append(store.create_job(record))
    bobs = make_dataset(store, owner=BOB)
    for _ in range(5):
        make_job(store, bobs, tags=["even"])
    return created


def _expected(jobs: list[JobRecord], sort: str) -> list[str]:
    key = sort.lstrip("-")
    far_past = datetime(1, 1, 1, tzinfo=UTC)

    def value(job: JobRecord) -> Any:
        raw = getattr(job, key)
        return (raw.value if isinstance(raw, JobStatus) else raw) or far_past

    ordered = sorted(jobs, key=lambda j: (value(j), j.id), reverse=sort.startswith("-"))
    return [j.id for j in ordered]


@pytest.mark.parametrize(
    "sort", ["-created_at", "created_at", "started_at", "-finished_at", "status", "-status"]
)
def test_list_jobs_pages_through_every_sort(store: MetadataStore, sort: str) -> None:
    jobs = _seed_jobs(store)
    listed = all_pages(store.list_jobs, 7, owner=ALICE, sort=sort)
    assert [j.id for j in listed] == _expected(jobs, sort)
    assert listed[0] == next(j for j in jobs if j.id == listed[0].id)


def test_list_jobs_filters_combine_with_pagination(store: MetadataStore) -> None:
    jobs = _seed_jobs(store)
    iris_id = next(j.dataset_id for j in jobs if j.spec["dataset_name"] == "iris")
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"status": "running"}, lambda j: j.status is JobStatus.RUNNING),
        (
            {"status": [JobStatus.FAILED, "canceled"]},
            lambda j: j.status in (JobStatus.FAILED, JobStatus.CANCELED),
        ),
        ({"tag": "fifth"}, lambda j: "fifth" in j.tags),
        ({"dataset_id": iris_id}, lambda j: j.dataset_id == iris_id),
        ({"problem_type": "multiclass"}, lambda j: j.problem_type == "multiclass"),
        ({"text": "COL_3"}, lambda j: j.spec["target"] == "col_3"),
        ({"text": "iris"}, lambda j: j.dataset_id == iris_id),
        ({"text": "100% sure_"}, lambda j: j.notes == "100% sure_thing"),
        ({"text": "0%"}, lambda j: "0%" in j.notes),
        ({"text": "_"}, lambda j: True),  # every id contains "_": no wildcard surprises
        (
            {"tag": "even", "problem_type": "binary", "status": ["queued", "succeeded"]},
            lambda j: (
                "even" in j.tags
                and j.problem_type == "binary"
                and j.status in (JobStatus.QUEUED, JobStatus.SUCCEEDED)
            ),
        ),
    ]
    for filters, wanted in cases:
        expected = _expected([j for j in jobs if wanted(j)], "-created_at")
        listed = all_pages(store.list_jobs, 4, owner=ALICE, **filters)
        assert [j.id for j in listed] == expected, filters
        assert expected, f"case matches nothing: {filters}"


def test_list_jobs_rejects_bad_arguments(store: MetadataStore) -> None:
    _seed_jobs(store)
    with pytest.raises(InvalidInput, match="sort"):
        store.list_jobs(owner=ALICE, sort="price")
    with pytest.raises(InvalidInput, match="limit"):
        store.list_jobs(owner=ALICE, limit=0)
    with pytest.raises(InvalidInput, match="status"):
        store.list_jobs(owner=ALICE, status="done")
    with pytest.raises(InvalidInput, match="cursor"):
        store.list_jobs(owner=ALICE, cursor="not-a-cursor")
    cursor = store.list_jobs(owner=ALICE, limit=2).next_cursor
    assert cursor
    with pytest.raises(InvalidInput, match="cursor"):
        store.list_jobs(owner=ALICE, sort="status", cursor=cursor)


def test_list_datasets_pages_newest_first(store: MetadataStore) -> None:
    made = [make_dataset(store, created_at=T0 + timedelta(seconds=i // 3)) for i in range(11)]
    make_dataset(store, owner=BOB)
    listed = all_pages(store.list_datasets, 4, owner=ALICE)
    assert [d.id for d in listed] == _expected(made, "-created_at")
    assert all(d.profile == {} for d in listed), "listings leave the profile out"


# -- claims, leases, events --------------------------------------------------------------------


def test_claims_are_fifo_and_set_the_lease(store: MetadataStore) -> None:
    dataset = make_dataset(store)
    jobs = [make_job(store, dataset, created_at=T0 + timedelta(seconds=i)) for i in range(3)]
    before = utc_now()
    claimed = store.claim_next_job(worker_id="w1", lease_seconds=30)
    assert claimed is not None and claimed.id == jobs[0].id
    assert claimed.status is JobStatus.RUNNING
    assert (claimed.lease_owner, claimed.attempts) == ("w1", 1)
    assert claimed.started_at is not None and claimed.started_at >= before
    assert claimed.lease_expires_at is not None
    assert timedelta(seconds=29) < claimed.lease_expires_at - before < timedelta(seconds=31)
    assert store.get_job(claimed.id, owner=ALICE) == claimed

    second = store.claim_job(jobs[2].id, worker_id="w2", lease_seconds=30)
    assert (second.status, second.lease_owner) == (JobStatus.RUNNING, "w2")
    with pytest.raises(Conflict, match="running"):
        store.claim_job(jobs[2].id, worker_id="w3", lease_seconds=30)
    with pytest.raises(NotFound):
        store.claim_job("job_missing", worker_id="w3", lease_seconds=30)
    third = store.claim_next_job(worker_id="w1", lease_seconds=30)
    assert third is not None and third.id == jobs[1].id
    assert store.claim_next_job(worker_id="w1", lease_seconds=30) is None


def test_concurrent_claims_take_each_job_exactly_once(store: MetadataStore) -> None:
    dataset = make_dataset(store)
    jobs = [make_job(store, dataset) for _ in range(40)]
    start = threading.Barrier(8)

    def worker(n: int) -> list[str]:
        start.wait()
        mine = []
        while (job := store.claim_next_job(worker_id=f"w{n}", lease_seconds=60)) is not None:
            assert job.lease_owner == f"w{n}"
            mine.append(job.id)
        return mine

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(worker, range(8)))
    claims = Counter(job_id for result in results for job_id in result)
    assert set(claims) == {j.id for j in jobs}
    assert set(claims.values()) == {1}
    running = all_pages(store.list_jobs, 100, owner=ALICE, status="running")
    assert len(running) == 40 and {j.attempts for j in running} == {1}


def test_heartbeat_extends_only_the_holders_lease(store: MetadataStore) -> None:
    job = make_job(store, make_dataset(store))
    assert not store.heartbeat(job.id, worker_id="w1", lease_seconds=60)  # still queued
    claimed = store.claim_next_job(worker_id="w1", lease_seconds=5)
    assert claimed is not None and claimed.lease_expires_at is not None
    assert store.heartbeat(job.id, worker_id="w1", lease_seconds=600)
    extended = store.get_job(job.id, owner=ALICE).lease_expires_at
    assert extended is not None and extended > claimed.lease_expires_at + timedelta(seconds=500)
    assert not store.heartbeat(job.id, worker_id="w2", lease_seconds=600)

    store.transition_job(job.id, owner=ALICE, expect=JobStatus.RUNNING, to=JobStatus.CANCELED)
    assert not store.heartbeat(job.id, worker_id="w1", lease_seconds=600)


def test_expired_leases_are_listed(store: MetadataStore) -> None:
    dataset = make_dataset(store)
    short, long = make_job(store, dataset), make_job(store, dataset)
    make_job(store, dataset)  # stays queued: no lease at all
    store.claim_job(short.id, worker_id="w1", lease_seconds=-1)
    store.claim_job(long.id, worker_id="w2", lease_seconds=60)
    assert [j.id for j in store.list_expired_leases()] == [short.id]
    later = utc_now() + timedelta(seconds=120)
    assert [j.id for j in store.list_expired_leases(later)] == [short.id, long.id]

    # A reaper requeues the lost job, guarded so that it cannot clobber a live worker.
    requeue = {"owner": None, "expect": JobStatus.RUNNING, "to": JobStatus.QUEUED}
    assert store.transition_job(short.id, held_by="w-other", **requeue) is None  # type: ignore[arg-type]
    assert store.transition_job(short.id, held_by="w1", **requeue) is not None  # type: ignore[arg-type]
    assert store.list_expired_leases() == []
    reclaimed = store.claim_next_job(worker_id="w3", lease_seconds=60)
    assert reclaimed is not None and (reclaimed.id, reclaimed.attempts) == (short.id, 2)


def test_status_guard_protects_a_cancel(store: MetadataStore) -> None:
    job = make_job(store, make_dataset(store))
    store.claim_next_job(worker_id="w1", lease_seconds=60)
    running = {"if_status": [JobStatus.RUNNING], "if_lease_owner": "w1"}
    store.update_job(job.id, owner=None, progress={"phase": "searching"}, **running)  # type: ignore[arg-type]
    store.transition_job(job.id, owner=ALICE, expect=JobStatus.RUNNING, to=JobStatus.CANCELED)
    # The worker's next progress write finds the job canceled: that is how it learns to stop.
    with pytest.raises(Conflict, match="canceled") as caught:
        store.update_job(job.id, owner=None, progress={"phase": "x"}, **running)  # type: ignore[arg-type]
    assert caught.value.details["status"] == "canceled"
    with pytest.raises(Conflict, match="no longer leased"):
        store.update_job(job.id, owner=None, if_lease_owner="w2", progress={})
    done = store.get_job(job.id, owner=ALICE)
    assert done.status is JobStatus.CANCELED and done.progress == {"phase": "searching"}


def test_update_job_refuses_lifecycle_fields(store: MetadataStore) -> None:
    job = make_job(store, make_dataset(store))
    for field, value in [
        ("status", JobStatus.RUNNING),
        ("lease_owner", "w1"),
        ("attempts", 2),
        ("error", "x"),
        ("model_id", "mdl_x"),
        ("finished_at", T0),
    ]:
        with pytest.raises(InvalidInput, match=f"{field}.*transition_job"):
            store.update_job(job.id, owner=None, **{field: value})
    assert store.get_job(job.id, owner=ALICE) == job


def test_events_are_ordered_and_gap_free_under_concurrency(store: MetadataStore) -> None:
    job = make_job(store, make_dataset(store))
    start = threading.Barrier(6)

    def emit(n: int) -> None:
        start.wait()
        for i in range(10):
            store.append_job_event(job.id, owner=None, kind="trial", data={"w": n, "i": i})

    with ThreadPoolExecutor(6) as pool:
        list(pool.map(emit, range(6)))
    events = store.list_job_events(job.id, owner=ALICE)
    assert [e.seq for e in events] == list(range(1, 61))
    assert all(e.job_id == job.id and e.at.tzinfo is not None for e in events)
    for n in range(6):  # each writer's own events keep their order
        mine = [e.data["i"] for e in events if e.data["w"] == n]
        assert mine == list(range(10))
    assert [e.seq for e in store.list_job_events(job.id, owner=ALICE, after_seq=55)] == [
        56,
        57,
        58,
        59,
        60,
    ]
    assert [e.seq for e in store.list_job_events(job.id, owner=ALICE, after_seq=2, limit=2)] == [
        3,
        4,
    ]
    with pytest.raises(NotFound):
        store.append_job_event("job_missing", owner=None, kind="x")


# -- status transitions ------------------------------------------------------------------------


def _status_events(store: MetadataStore, job_id: str) -> list[dict[str, Any]]:
    return [e.data for e in store.list_job_events(job_id, owner=None) if e.kind == STATUS_EVENT]


def test_create_with_a_message_writes_the_first_status_event(store: MetadataStore) -> None:
    dataset = make_dataset(store)
    job = add_job(store, dataset, message="queued")
    events = store.list_job_events(job.id, owner=ALICE)
    assert [(e.seq, e.kind) for e in events] == [(1, "status")]
    assert events[0].data == {
        "status": "queued",
        "previous": None,
        "message": "queued",
        "attempt": 0,
        "worker": None,
        "error": None,
        "model_id": None,
    }
    store.append_job_event(job.id, owner=None, kind="log", data={"message": "next"})
    assert [e.seq for e in store.list_job_events(job.id, owner=ALICE)] == [1, 2]


def test_transitions_write_status_lease_and_one_event_shape(store: MetadataStore) -> None:
    job = make_job(store, make_dataset(store))
    before = utc_now()
    claimed = store.claim_job(job.id, worker_id="w1", lease_seconds=30)
    assert (claimed.status, claimed.lease_owner, claimed.attempts) == (JobStatus.RUNNING, "w1", 1)
    assert claimed.started_at is not None and claimed.started_at >= before

    done = store.transition_job(
        job.id,
        owner=None,
        expect=JobStatus.RUNNING,
        to=JobStatus.SUCCEEDED,
        held_by="w1",
        model_id="mdl_1",
        progress={"phase": "done"},
        message="trained model mdl_1",
    )
    assert done is not None and done == store.get_job(job.id, owner=ALICE)
    assert (done.status, done.model_id, done.progress) == (
        JobStatus.SUCCEEDED,
        "mdl_1",
        {"phase": "done"},
    )
    assert done.lease_owner is None and done.lease_expires_at is None
    assert done.finished_at is not None and done.finished_at >= claimed.started_at
    assert done.error is None

    events = store.list_job_events(job.id, owner=ALICE)
    assert [(e.seq, e.kind) for e in events] == [(1, "status"), (2, "status")]
    assert all(tuple(e.data) == STATUS_EVENT_FIELDS for e in events)
    assert events[0].data == {
        "status": "running",
        "previous": "queued",
        "message": "attempt 1 started",
        "attempt": 1,
        "worker": "w1",
        "error": None,
        "model_id": None,
    }
    assert events[1].data == {
        "status": "succeeded",
        "previous": "running",
        "message": "trained model mdl_1",
        "attempt": 1,
        "worker": "w1",
        "error": None,
        "model_id": "mdl_1",
    }


def test_requeue_and_fail_clear_the_lease(store: MetadataStore) -> None:
    job = make_job(store, make_dataset(store))
    store.claim_job(job.id, worker_id="w1", lease_seconds=30)
    store.update_job(job.id, owner=None, progress={"phase": "searching"})
    requeued = store.transition_job(
        job.id, owner=None, expect=JobStatus.RUNNING, to=JobStatus.QUEUED, held_by="w1",
        message="worker lost; queued again",
    )  # fmt: skip
    assert requeued is not None and requeued.status is JobStatus.QUEUED
    assert (requeued.lease_owner, requeued.lease_expires_at, requeued.started_at) == (
        None,
        None,
        None,
    )
    assert requeued.progress == {} and requeued.attempts == 1
    again = store.claim_next_job(worker_id="w2", lease_seconds=30)
    assert again is not None and (again.id, again.attempts) == (job.id, 2)
    failed = store.transition_job(
        job.id, owner=None, expect=[JobStatus.RUNNING], to=JobStatus.FAILED, held_by="w2",
        error="out of memory",
    )  # fmt: skip
    assert failed is not None and failed.error == "out of memory"
    assert failed.finished_at is not None and failed.lease_owner is None
    last = _status_events(store, job.id)[-1]
    assert last == {
        "status": "failed",
        "previous": "running",
        "message": "out of memory",
        "attempt": 2,
        "worker": "w2",
        "error": "out of memory",
        "model_id": None,
    }
    assert [e["status"] for e in _status_events(store, job.id)] == [
        "running",
        "queued",
        "running",
        "failed",
    ]


def test_transition_from_the_wrong_status_or_lease_changes_nothing(store: MetadataStore) -> None:
    job = make_job(store, make_dataset(store))
    # Not running yet: a worker's finish is refused, and nothing is written.
    finish = {"owner": None, "expect": JobStatus.RUNNING, "to": JobStatus.SUCCEEDED}
    assert store.transition_job(job.id, **finish) is None  # type: ignore[arg-type]
    assert store.get_job(job.id, owner=ALICE) == job
    assert store.list_job_events(job.id, owner=ALICE) == []

    store.claim_job(job.id, worker_id="w1", lease_seconds=30)
    held = store.get_job(job.id, owner=ALICE)
    assert store.transition_job(job.id, held_by="w2", **finish) is None  # type: ignore[arg-type]
    canceled = store.transition_job(
        job.id, owner=ALICE, expect={JobStatus.QUEUED, JobStatus.RUNNING}, to=JobStatus.CANCELED
    )
    assert canceled is not None and canceled.status is JobStatus.CANCELED
    # The worker, finishing after the cancel, does not resurrect the job.
    assert store.transition_job(job.id, held_by="w1", **finish) is None  # type: ignore[arg-type]
    assert store.get_job(job.id, owner=ALICE).status is JobStatus.CANCELED
    assert held.attempts == 1 and len(_status_events(store, job.id)) == 2

    # A final status never changes; that is a programming error, said plainly.
    with pytest.raises(InvalidInput, match="cannot go from canceled to queued"):
        store.transition_job(job.id, owner=None, expect=JobStatus.CANCELED, to=JobStatus.QUEUED)
    with pytest.raises(InvalidInput, match="worker_id"):
        store.transition_job(
            make_job(store, make_dataset(store)).id,
            owner=None,
            expect=JobStatus.QUEUED,
            to=JobStatus.RUNNING,
        )
    with pytest.raises(NotFound):
        store.transition_job(job.id, owner=BOB, expect=JobStatus.QUEUED, to=JobStatus.CANCELED)
    with pytest.raises(NotFound):
        store.transition_job(
            "job_missing", owner=None, expect=JobStatus.QUEUED, to=JobStatus.CANCELED
        )


def _jobs_module(store: MetadataStore) -> Any:
    """The module whose `_insert_event` writes a backend's status events."""
    if isinstance(store, SqlMetadataStore):
        return sql_jobs
    from tabpilot.metadata import dynamo_jobs  # needs boto3, as the store that got here

    return dynamo_jobs


def test_transition_and_its_event_are_one_transaction(
    store: MetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = make_job(store, make_dataset(store))

    def broken(*_args: Any) -> None:
        raise RuntimeError("the event could not be written")

    monkeypatch.setattr(_jobs_module(store), "_insert_event", broken)
    with pytest.raises(RuntimeError):
        store.transition_job(job.id, owner=None, expect=JobStatus.QUEUED, to=JobStatus.CANCELED)
    with pytest.raises(RuntimeError):
        store.claim_next_job(worker_id="w1", lease_seconds=30)
    monkeypatch.undo()
    assert store.get_job(job.id, owner=ALICE) == job  # neither the status nor the lease moved
    assert store.list_job_events(job.id, owner=ALICE) == []
    claimed = store.claim_next_job(worker_id="w1", lease_seconds=30)
    assert claimed is not None and claimed.attempts == 1
    assert [e.seq for e in store.list_job_events(job.id, owner=ALICE)] == [1]


@pytest.mark.parametrize("how", ["transition", "claim_job"])
def test_concurrent_claims_of_one_job_have_one_winner(store: MetadataStore, how: str) -> None:
    for _round in range(3):
        job = make_job(store, make_dataset(store))
        start = threading.Barrier(8)

        def claim(n: int, job_id: str = job.id, start: Any = start) -> str | None:
            start.wait()
            if how == "claim_job":
                try:
                    return store.claim_job(job_id, worker_id=f"w{n}", lease_seconds=60).lease_owner
                except Conflict:
                    return None
            won = store.transition_job(
                job_id, owner=None, expect=JobStatus.QUEUED, to=JobStatus.RUNNING,
                worker_id=f"w{n}", lease_seconds=60,
            )  # fmt: skip
            return won.lease_owner if won is not None else None

        with ThreadPoolExecutor(8) as pool:
            winners = [w for w in pool.map(claim, range(8)) if w is not None]
        assert len(winners) == 1
        final = store.get_job(job.id, owner=ALICE)
        assert (final.lease_owner, final.attempts) == (winners[0], 1)
        assert [e["worker"] for e in _status_events(store, job.id)] == winners


def test_concurrent_cancel_and_finish_have_one_winner(store: MetadataStore) -> None:
    for _round in range(5):
        job = make_job(store, make_dataset(store))
        store.claim_job(job.id, worker_id="w1", lease_seconds=60)
        start = threading.Barrier(2)

        def cancel(job_id: str = job.id, start: Any = start) -> JobRecord | None:
            start.wait()
            return store.transition_job(
                job_id, owner=ALICE, expect=JobStatus.RUNNING, to=JobStatus.CANCELED
            )

        def finish(job_id: str = job.id, start: Any = start) -> JobRecord | None:
            start.wait()
            return store.transition_job(
                job_id, owner=None, expect=JobStatus.RUNNING, to=JobStatus.SUCCEEDED,
                held_by="w1", model_id="mdl_x",
            )  # fmt: skip

        with ThreadPoolExecutor(2) as pool:
            results = [f.result() for f in [pool.submit(cancel), pool.submit(finish)]]
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert store.get_job(job.id, owner=ALICE).status is winners[0].status
        statuses = [e["status"] for e in _status_events(store, job.id)]
        assert statuses == ["running", winners[0].status.value]


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
