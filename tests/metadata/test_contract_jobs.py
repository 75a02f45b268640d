"""The MetadataStore contract, job lifecycles: claims, leases, events, status transitions.

Every backend passes these same tests (the backends are in conftest.py; helpers in support.py).
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest

from tabpilot.errors import Conflict, InvalidInput, NotFound
from tabpilot.metadata import MetadataStore, sql_jobs
from tabpilot.metadata.sql import SqlMetadataStore
from tabpilot.metadata.transitions import STATUS_EVENT, STATUS_EVENT_FIELDS
from tabpilot.records import JobRecord, JobStatus, utc_now
from tests.factories import add_job
from tests.metadata.support import ALICE, BOB, T0, all_pages, make_dataset, make_job

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
