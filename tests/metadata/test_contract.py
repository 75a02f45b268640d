"""The MetadataStore contract, records: datasets, jobs, models and users; owners; listings.

Every backend passes these same tests (the backends are in conftest.py; helpers in support.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tabpilot.errors import Conflict, InvalidInput, NotFound
from tabpilot.metadata import MetadataStore
from tabpilot.records import JobRecord, JobStatus, UserRecord
from tests.factories import job_record, model_record
from tests.metadata.support import ALICE, BOB, T0, all_pages, make_dataset, make_job, make_model

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
