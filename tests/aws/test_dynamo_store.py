"""The DynamoDB metadata store beyond the shared contract (tests/metadata runs that on it too):
its table made by init, its errors, no Scan on request paths, documents of megabytes, claims
racing from separate clients, and transactions that fail at the server writing nothing.

All against a moto server over HTTP (tests/aws_support.py), as Tabpilot talks to DynamoDB.
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tabpilot.errors import Conflict, InvalidInput, MissingDependency
from tabpilot.metadata import build_metadata_store
from tabpilot.metadata.registry import METADATA_STORES
from tabpilot.records import JobStatus
from tests.factories import add_dataset, add_job, add_model, model_record, user_record

pytest.importorskip("boto3", reason="the DynamoDB store needs the aws extra")

from tabpilot.metadata.dynamo import DynamoMetadataStore
from tabpilot.metadata.dynamo_docs import INLINE_LIMIT
from tabpilot.metadata.dynamo_items import INDEXES, table_definition

OWNER = "usr_dyn"
ITEM_MAX = 400 * 1024


def _client() -> Any:
    import boto3

    return boto3.session.Session().client("dynamodb")


@pytest.fixture
def prefix(aws_env: dict[str, str]) -> Iterator[str]:
    """A table prefix whose table is removed after the test (if one was made)."""
    name = f"t-{uuid.uuid4().hex[:16]}"
    client = _client()
    yield name
    with contextlib.suppress(client.exceptions.ResourceNotFoundException):
        client.delete_table(TableName=f"{name}-metadata")
    client.close()


@pytest.fixture
def store(prefix: str) -> Iterator[DynamoMetadataStore]:
    METADATA_STORES.initialize(f"dynamodb://{prefix}")
    with build_metadata_store(f"dynamodb://{prefix}") as opened:
        assert isinstance(opened, DynamoMetadataStore)
        yield opened


# -- the table ---------------------------------------------------------------------------------


def test_init_creates_the_table_once_even_when_run_at_once(prefix: str) -> None:
    uri = f"dynamodb://{prefix}?region=us-east-1"
    start = threading.Barrier(3)

    def init(_: int) -> str:
        start.wait()
        return str(METADATA_STORES.initialize(uri)[1])

    with ThreadPoolExecutor(3) as pool:
        said = list(pool.map(init, range(3)))
    table = f"{prefix}-metadata"
    assert all(table in words for words in said)
    assert [w.startswith("created the table") for w in said].count(True) >= 1
    assert METADATA_STORES.initialize(uri)[1] == f'the table "{table}" exists already'

    description = _client().describe_table(TableName=table)["Table"]
    assert description["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    indexes = {i["IndexName"]: i["KeySchema"] for i in description["GlobalSecondaryIndexes"]}
    assert {name: [k["AttributeName"] for k in keys] for name, keys in indexes.items()} == {
        name: [partition, "created_key"] for name, partition in INDEXES.items()
    }
    assert table_definition(prefix)["TableName"] == table


def test_a_foreign_table_of_the_same_name_is_refused(prefix: str) -> None:
    _client().create_table(
        TableName=f"{prefix}-metadata",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
    )
    with pytest.raises(InvalidInput, match="was not made for Tabpilot"):
        METADATA_STORES.initialize(f"dynamodb://{prefix}")


def test_a_missing_table_names_the_table_and_init_stores(prefix: str) -> None:
    with build_metadata_store(f"dynamodb://{prefix}") as store:
        for call in (store.ping, lambda: store.find_job("job_x", owner=None)):
            with pytest.raises(InvalidInput) as caught:
                call()
            message = caught.value.message
            assert message.startswith(f"TABPILOT_METADATA_URI: dynamodb://{prefix}: ")
            assert f'the table "{prefix}-metadata" does not exist' in message
            assert "tabpilot init-stores" in message
            assert caught.value.details["reason"] == "no_table"


def test_no_region_is_named_with_both_ways_to_give_one(
    aws_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name)
    with pytest.raises(InvalidInput, match=r"no AWS region is set; add \?region=REGION"):
        build_metadata_store("dynamodb://tabpilot")
    with build_metadata_store("dynamodb://tabpilot?region=eu-west-1") as store:
        assert store.client.meta.region_name == "eu-west-1"


def test_without_boto3_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.startswith("tabpilot.metadata.dynamo")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail
    with pytest.raises(MissingDependency, match=r"pip install 'tabpilot\[aws\]'"):
        build_metadata_store("dynamodb://tabpilot?region=eu-west-1")


# -- request paths read through indexes --------------------------------------------------------


def _record_operations(store: DynamoMetadataStore) -> list[str]:
    """The names of the operations the store's client sends from now on (botocore's hook)."""
    sent: list[str] = []

    def note(model: Any, **_: Any) -> None:
        sent.append(model.name)

    store.client.meta.events.register("before-call.dynamodb", note)
    return sent


def test_listings_claims_and_lookups_never_scan(store: DynamoMetadataStore) -> None:
    owner = store.create_user(user_record()).id
    dataset = add_dataset(store, owner=owner)
    jobs = [
        add_job(store, dataset, tags=["a"], spec={"target": "y", "problem_type": "binary"})
        for _ in range(5)
    ]
    model = add_model(store, jobs[0], deploy_key_hash="kh")
    sent = _record_operations(store)

    for sort in ("-created_at", "created_at", "status", "-started_at", "finished_at"):
        assert len(store.list_jobs(owner=owner, sort=sort, limit=2, tag="a").items) == 2
    assert store.list_jobs(owner=None, status="queued", text="Y", problem_type="binary").items
    assert store.list_datasets(owner=owner).items and store.list_datasets(owner=None).items
    assert store.list_models(owner=owner, job_id=jobs[0].id).items == [model]
    assert store.list_users().items and store.find_user_by_name("alice") is not None
    assert store.find_model_by_deploy_key_hash("kh") == model
    claimed = store.claim_next_job(worker_id="w1", lease_seconds=-1)
    assert claimed is not None and claimed.id == jobs[0].id
    assert [j.id for j in store.list_expired_leases()] == [claimed.id]
    assert store.heartbeat(claimed.id, worker_id="w1", lease_seconds=60)
    assert len(store.list_job_events(claimed.id, owner=owner)) == 1
    with pytest.raises(Conflict):
        store.delete_dataset(dataset.id, owner=owner)
    with pytest.raises(Conflict):
        store.delete_user(owner)

    counted = Counter(sent)
    assert "Scan" not in counted, counted
    assert counted["Query"] >= 10, counted


# -- documents that can grow -------------------------------------------------------------------


def _wide_profile(columns: int, tag: str) -> dict[str, Any]:
    """A profile of `columns` columns with their statistics (about 3.4 MB of JSON at 10,000)."""
    return {
        "columns": {
            f"{tag}_{i:05d}": {
                "kind": "numeric" if i % 3 else "categorical",
                "missing": i % 7,
                "stats": {"mean": i * 1.5, "std": i / 3, "top": [f"v{i}-{k}" for k in range(6)]},
                "histogram": [(i * k) % 97 for k in range(40)],
            }
            for i in range(columns)
        },
        "n_rows": 123_456,
    }


def _partition_sizes(store: DynamoMetadataStore, pk: str) -> dict[str, int]:
    """Every item of a partition and its size in bytes, as DynamoDB counts it (roughly)."""
    pages = (
        _client()
        .get_paginator("query")
        .paginate(
            TableName=store.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}},
        )
    )
    sizes = {}
    for page in pages:
        for item in page["Items"]:
            size = 0
            for name, value in item.items():
                raw = next(iter(value.values()))
                size += len(name) + (len(raw) if isinstance(raw, bytes | str) else len(str(raw)))
            sizes[item["sk"]["S"]] = size
    return sizes


def test_a_profile_of_megabytes_is_kept_in_pieces_under_the_item_limit(
    store: DynamoMetadataStore,
) -> None:
    profile = _wide_profile(10_000, "col")
    raw = len(json.dumps(profile))
    assert raw > 3_000_000  # a multi-MB document
    dataset = add_dataset(store, owner=OWNER, profile=profile)
    fetched = store.get_dataset(dataset.id, owner=OWNER)
    assert fetched.profile == profile
    assert list(fetched.profile["columns"]) == list(profile["columns"])  # file order kept

    pk = f"dataset#{dataset.id}"
    sizes = _partition_sizes(store, pk)
    pieces = {sk for sk in sizes if sk.startswith("doc#profile#")}
    assert pieces and max(sizes.values()) < ITEM_MAX
    assert sizes["#"] < 2_000  # the record holds a pointer, not the profile
    assert store.list_datasets(owner=OWNER).items[0].profile == {}

    # A new version replaces the pieces; a small one goes back inside the record.
    replaced = _wide_profile(6000, "new")
    store.update_dataset(dataset.id, owner=OWNER, profile=replaced)
    assert store.get_dataset(dataset.id, owner=OWNER).profile == replaced
    after = {sk for sk in _partition_sizes(store, pk) if sk.startswith("doc#")}
    assert after and not (after & pieces)
    store.update_dataset(dataset.id, owner=OWNER, profile={"columns": {"a": {}}})
    assert set(_partition_sizes(store, pk)) == {"#"}
    assert len(json.dumps({"columns": {"a": {}}})) < INLINE_LIMIT

    store.delete_dataset(dataset.id, owner=OWNER)
    assert _partition_sizes(store, pk) == {}


def test_a_large_card_goes_with_its_job_in_one_transaction(store: DynamoMetadataStore) -> None:
    job = add_job(store, add_dataset(store, owner=OWNER))
    store.claim_job(job.id, worker_id="w1", lease_seconds=60)
    card = {"evaluation": _wide_profile(3000, "curve")}
    model = model_record(job, card=card)
    done = store.transition_job(
        job.id, owner=None, expect=JobStatus.RUNNING, to=JobStatus.SUCCEEDED, held_by="w1",
        model=model,
    )  # fmt: skip
    assert done is not None and done.model_id == model.id
    assert store.get_model(model.id, owner=OWNER).card == card
    assert max(_partition_sizes(store, f"model#{model.id}").values()) < ITEM_MAX
    assert [m.id for m in store.list_models(owner=OWNER).items] == [model.id]

    store.delete_job(job.id, owner=OWNER)  # takes its model and the model's pieces along
    assert store.find_model(model.id, owner=None) is None
    assert _partition_sizes(store, f"model#{model.id}") == {}
    assert _partition_sizes(store, f"job#{job.id}") == {}


def test_a_transaction_that_fails_at_the_server_writes_nothing(store: DynamoMetadataStore) -> None:
    """The model's Put fails its condition (the id is taken): the job, its lease, its events
    and the card's pieces stay as they were."""
    dataset = add_dataset(store, owner=OWNER)
    first, second = add_job(store, dataset), add_job(store, dataset)
    taken = add_model(store, first)
    store.claim_job(second.id, worker_id="w1", lease_seconds=60)
    before = store.get_job(second.id, owner=OWNER)
    clash = model_record(second, id=taken.id, card={"big": _wide_profile(500, "c")})
    with pytest.raises(Conflict, match="already exists"):
        store.transition_job(
            second.id, owner=None, expect=JobStatus.RUNNING, to=JobStatus.SUCCEEDED,
            held_by="w1", model=clash,
        )  # fmt: skip
    assert store.get_job(second.id, owner=OWNER) == before
    assert [e.seq for e in store.list_job_events(second.id, owner=OWNER)] == [1]
    assert store.get_model(taken.id, owner=OWNER) == taken
    assert set(_partition_sizes(store, f"model#{taken.id}")) == {"#"}
    assert not any(sk.startswith("model#") for sk in _partition_sizes(store, f"job#{second.id}"))


# -- racing workers ----------------------------------------------------------------------------


def test_workers_with_their_own_clients_claim_each_job_once(
    store: DynamoMetadataStore, prefix: str
) -> None:
    """Like worker processes: each has its own store and connection; every job has one winner."""
    dataset = add_dataset(store, owner=OWNER)
    jobs = [add_job(store, dataset) for _ in range(12)]
    workers = [build_metadata_store(f"dynamodb://{prefix}") for _ in range(4)]
    start = threading.Barrier(len(workers))

    def work(n: int) -> list[str]:
        start.wait()
        mine = []
        while (job := workers[n].claim_next_job(worker_id=f"w{n}", lease_seconds=60)) is not None:
            mine.append(job.id)
        return mine

    try:
        with ThreadPoolExecutor(len(workers)) as pool:
            results = list(pool.map(work, range(len(workers))))
    finally:
        for worker in workers:
            worker.close()
    claims = Counter(job_id for mine in results for job_id in mine)
    assert set(claims) == {j.id for j in jobs} and set(claims.values()) == {1}
    for job in jobs:
        events = store.list_job_events(job.id, owner=OWNER)
        assert [e.data["status"] for e in events] == ["running"]


def test_the_init_stores_command_creates_the_table_once(
    prefix: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from click.testing import CliRunner

    from tabpilot.cli import main

    for name in ("TABPILOT_ARTIFACT_URI", "TABPILOT_RUNNER_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TABPILOT_METADATA_URI", f"dynamodb://{prefix}")
    said = []
    for _ in range(2):
        result = CliRunner().invoke(main, ["init-stores", "--data-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
        said.append(result.output.splitlines()[0])
    table = f"{prefix}-metadata"
    assert said == [
        f'TABPILOT_METADATA_URI (the DynamoDB metadata store): created the table "{table}" '
        "with its indexes",
        f'TABPILOT_METADATA_URI (the DynamoDB metadata store): the table "{table}" exists already',
    ]
    with build_metadata_store(f"dynamodb://{prefix}") as store:
        store.ping()


def test_a_job_too_large_for_an_item_is_refused_in_words(store: DynamoMetadataStore) -> None:
    dataset = add_dataset(store, owner=OWNER)
    with pytest.raises(InvalidInput, match="more than a DynamoDB item holds"):
        add_job(store, dataset, notes="n" * 400_000)
    job = add_job(store, dataset)
    with pytest.raises(InvalidInput, match="shorten its spec, progress or notes"):
        store.update_job(job.id, owner=OWNER, spec={"columns": ["c" * 50] * 10_000})
    assert store.get_job(job.id, owner=OWNER) == job
