"""The DynamoDB table's layout: keys, indexes, and records to items and back.

One table, `<PREFIX>-metadata`, holds every record, each under a partition of its own:

- a dataset, job, model or user: pk `dataset#<id>` (`job#`, `model#`, `user#`), sk `#`;
- a job's event: pk `job#<id>`, sk `event#<seq, 10 digits>`;
- a job's model, as a link (so deleting the job finds it with a consistent read): pk
  `job#<id>`, sk `model#<model id>`;
- a piece of a large document (profile, card): the record's pk, sk
  `doc#<field>#<version>#<n>`;
- a unique name, token hash or deploy key hash (a guard): pk `username#<name>`,
  `token#<hash>` or `deploykey#<hash>`, sk `#`.

Three global secondary indexes, each sorted by `created_key` (`<created_at>#<id>`, so ties
break on the id like the SQL store): `by_owner` (`owner_key` = `<kind>#<owner>`: one user's
datasets, jobs or models), `by_kind` (`kind`: everyone's, and the users) and `by_status`
(`status`, on jobs only: the queue a claim takes from, the running jobs a reaper checks).

Times are stored as fixed-width UTC text (`0001-01-01T00:00:00.000000`), so that text order is
time order in keys and cursors. JSON documents (spec, progress, profile, card, event data) are
stored as JSON text, never as DynamoDB maps, because maps do not keep key order and profiles and
cards do (columns in file order). A missing value is a missing attribute: indexes stay sparse.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from tabpilot.metadata.base import job_search_text
from tabpilot.records import DatasetRecord, JobEvent, JobRecord, JobStatus, ModelRecord, UserRecord

TABLE_SUFFIX = "-metadata"
RECORD_SK = "#"
BY_OWNER, BY_KIND, BY_STATUS = "by_owner", "by_kind", "by_status"
INDEXES = {BY_OWNER: "owner_key", BY_KIND: "kind", BY_STATUS: "status"}
"""Each global secondary index and its partition key; every one sorts by `created_key`."""

EVENT_PREFIX = "event#"
LINK_PREFIX = "model#"
DOC_PREFIX = "doc#"

FAR_PAST = datetime(1, 1, 1, tzinfo=UTC)
"""Jobs never started (or not finished) sort as if at this instant, i.e. oldest."""

ITEM_LIMIT = 350_000
"""Bytes an item may take here; DynamoDB refuses items over 400 KB, so this leaves headroom."""

_SERIALIZER = TypeSerializer()
_DESERIALIZER = TypeDeserializer()


def table_name(prefix: str) -> str:
    return f"{prefix}{TABLE_SUFFIX}"


def table_definition(prefix: str) -> dict[str, Any]:
    """The CreateTable request of the store's table: keys, indexes, on-demand billing.

    `tabpilot init-stores` sends it; Terraform's table must match it (a test compares them).
    """
    attributes = ["pk", "sk", "created_key", *INDEXES.values()]
    return {
        "TableName": table_name(prefix),
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in attributes],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": index,
                "KeySchema": [
                    {"AttributeName": partition, "KeyType": "HASH"},
                    {"AttributeName": "created_key", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for index, partition in INDEXES.items()
        ],
    }


# -- values ------------------------------------------------------------------------------------


def time_text(value: datetime) -> str:
    """`value` in UTC as fixed-width text: text order is time order."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: records hold timezone-aware UTC times")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def created_key(created_at: datetime, record_id: str) -> str:
    return f"{time_text(created_at)}#{record_id}"


def record_pk(kind: str, record_id: str) -> str:
    return f"{kind}#{record_id}"


def key(pk: str, sk: str = RECORD_SK) -> dict[str, Any]:
    """A table key in DynamoDB's wire format."""
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def record_key(kind: str, record_id: str) -> dict[str, Any]:
    return key(record_pk(kind, record_id))


def event_sk(seq: int) -> str:
    return f"{EVENT_PREFIX}{seq:010d}"


def to_wire(values: dict[str, Any]) -> dict[str, Any]:
    """Plain values to DynamoDB attribute values; None means "no attribute"."""
    return {name: _SERIALIZER.serialize(v) for name, v in values.items() if v is not None}


def wire_value(value: Any) -> dict[str, Any]:
    return dict(_SERIALIZER.serialize(value))


def from_wire(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB attribute values to plain ones (whole numbers as int, binary as bytes)."""
    return {name: _plain(_DESERIALIZER.deserialize(v)) for name, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "value") and isinstance(value.value, bytes):  # boto3's Binary
        return bytes(value.value)
    return value


def item_size(item: dict[str, Any]) -> int:
    """Roughly what DynamoDB counts for a wire item: names plus values (an upper bound)."""
    return sum(len(name.encode()) + len(json_text(value).encode()) for name, value in item.items())


# -- records to attributes ---------------------------------------------------------------------


def _common(kind: str, record_id: str, created_at: datetime, owner: str | None) -> dict[str, Any]:
    values: dict[str, Any] = {
        "pk": record_pk(kind, record_id),
        "sk": RECORD_SK,
        "kind": kind,
        "id": record_id,
        "created_at": time_text(created_at),
        "created_key": created_key(created_at, record_id),
        "rev": 0,
    }
    if owner is not None:
        values["owner"] = owner
        values["owner_key"] = f"{kind}#{owner}"
    return values


def dataset_attrs(record: DatasetRecord) -> dict[str, Any]:
    """The dataset's attributes, less its profile (a document: `dynamo_docs`)."""
    values = _common("dataset", record.id, record.created_at, record.owner)
    values.update(
        name=record.name,
        filename=record.filename,
        sha256=record.sha256,
        n_bytes=record.n_bytes,
        n_rows=record.n_rows,
        n_columns=record.n_columns,
        job_count=0,
    )
    return values


def job_attrs(record: JobRecord) -> dict[str, Any]:
    values = _common("job", record.id, record.created_at, record.owner)
    values.update(job_fields(record, list(_JOB_FIELDS)))
    values["event_seq"] = 0
    return values


_JOB_FIELDS = (
    "dataset_id",
    "spec",
    "status",
    "progress",
    "error",
    "model_id",
    "tags",
    "notes",
    "started_at",
    "finished_at",
    "lease_owner",
    "lease_expires_at",
    "attempts",
)
_JOB_JSON = frozenset({"spec", "progress", "tags"})
_JOB_TIMES = frozenset({"started_at", "finished_at", "lease_expires_at"})


def job_fields(record: JobRecord, names: list[str]) -> dict[str, Any]:
    """Attributes of the job fields `names`, with the derived ones that follow them (the
    problem type and search text follow the spec, tags and notes). None: remove it."""
    values: dict[str, Any] = {}
    for name in names:
        raw = getattr(record, name)
        if name in _JOB_JSON:
            values[name] = json_text(list(raw) if name == "tags" else raw)
        elif name in _JOB_TIMES:
            values[name] = time_text(raw) if raw is not None else None
        elif name == "status":
            values[name] = JobStatus(raw).value
        else:
            values[name] = raw
    if {"spec", "tags", "notes"} & set(names):
        values["problem_type"] = record.problem_type
        values["search_text"] = job_search_text(record)
    return values


def model_attrs(record: ModelRecord) -> dict[str, Any]:
    """The model's attributes, less its card (a document: `dynamo_docs`)."""
    values = _common("model", record.id, record.created_at, record.owner)
    values.update(
        job_id=record.job_id,
        artifact_prefix=record.artifact_prefix,
        deploy_key_hash=record.deploy_key_hash,
    )
    return values


def user_attrs(record: UserRecord) -> dict[str, Any]:
    values = _common("user", record.id, record.created_at, None)
    values.update(name=record.name, token_hash=record.token_hash)
    return values


def event_attrs(event: JobEvent) -> dict[str, Any]:
    return {
        "pk": record_pk("job", event.job_id),
        "sk": event_sk(event.seq),
        "seq": event.seq,
        "event_kind": event.kind,  # not `kind`, which puts record items in by_kind
        "data": json_text(event.data),
        "at": time_text(event.at),
    }


# -- attributes to records ---------------------------------------------------------------------


def to_dataset(values: dict[str, Any], profile: dict[str, Any]) -> DatasetRecord:
    names = ("id", "owner", "name", "filename", "sha256", "n_bytes", "n_rows", "n_columns")
    return DatasetRecord(
        **{n: values[n] for n in names},
        profile=profile,
        created_at=parse_time(values["created_at"]),
    )


def to_job(values: dict[str, Any]) -> JobRecord:
    fields: dict[str, Any] = {}
    for name in _JOB_FIELDS:
        raw = values.get(name)
        if name in _JOB_JSON:
            fields[name] = json.loads(raw) if raw is not None else ([] if name == "tags" else {})
        elif name in _JOB_TIMES:
            fields[name] = parse_time(raw) if raw is not None else None
        else:
            fields[name] = raw
    fields["status"] = JobStatus(fields["status"])
    fields["notes"] = fields["notes"] or ""
    fields["attempts"] = int(fields["attempts"] or 0)
    return JobRecord(
        id=values["id"],
        owner=values["owner"],
        created_at=parse_time(values["created_at"]),
        **fields,
    )


def to_model(values: dict[str, Any], card: dict[str, Any]) -> ModelRecord:
    return ModelRecord(
        id=values["id"],
        owner=values["owner"],
        job_id=values["job_id"],
        card=card,
        artifact_prefix=values["artifact_prefix"],
        deploy_key_hash=values.get("deploy_key_hash"),
        created_at=parse_time(values["created_at"]),
    )


def to_user(values: dict[str, Any]) -> UserRecord:
    return UserRecord(
        id=values["id"],
        name=values["name"],
        token_hash=values["token_hash"],
        created_at=parse_time(values["created_at"]),
    )


def to_event(values: dict[str, Any]) -> JobEvent:
    return JobEvent(
        job_id=values["pk"].split("#", 1)[1],
        seq=int(values["seq"]),
        kind=values["event_kind"],
        data=json.loads(values["data"]),
        at=parse_time(values["at"]),
    )
