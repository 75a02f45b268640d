"""Small builders for records, so tests and benchmarks say only the fields that matter to them.

Each builder returns an unsaved record with plausible defaults; any field can be given. The
`add_*` helpers also store the record in a `MetadataStore` and return it.
"""

from __future__ import annotations

from typing import Any

from tabpilot.metadata import MetadataStore
from tabpilot.records import DatasetRecord, JobRecord, ModelRecord, UserRecord, new_id
from tabpilot.storage import keys

OWNER = "usr_tester"
"""The owner of records built without one."""


def dataset_record(
    *, owner: str = OWNER, filename: str = "data.csv", **fields: Any
) -> DatasetRecord:
    """A dataset of 100 rows and 5 columns named after its file, with an empty profile."""
    values: dict[str, Any] = {
        "owner": owner,
        "name": filename,
        "filename": filename,
        "sha256": "0" * 64,
        "n_bytes": 1,
        "n_rows": 100,
        "n_columns": 5,
    }
    return DatasetRecord(**(values | fields))


def job_record(
    dataset: DatasetRecord, *, spec: dict[str, Any] | None = None, **fields: Any
) -> JobRecord:
    """A QUEUED job of `dataset`'s owner on `dataset`; the spec names only a target, "label"."""
    values: dict[str, Any] = {
        "owner": dataset.owner,
        "dataset_id": dataset.id,
        "spec": {"target": "label"} if spec is None else spec,
    }
    return JobRecord(**(values | fields))


def model_record(job: JobRecord, **fields: Any) -> ModelRecord:
    """A model of `job`, stored where the worker stores models (`keys.model_prefix`)."""
    model_id = str(fields.pop("id", None) or new_id("mdl"))
    values: dict[str, Any] = {
        "id": model_id,
        "owner": job.owner,
        "job_id": job.id,
        "card": {},
        "artifact_prefix": keys.model_prefix(model_id),
    }
    return ModelRecord(**(values | fields))


def user_record(name: str = "alice", **fields: Any) -> UserRecord:
    """A user whose token hash is made up from the name (no token hashes to it)."""
    return UserRecord(**({"name": name, "token_hash": f"hash-of-{name}"} | fields))


def add_dataset(store: MetadataStore, **fields: Any) -> DatasetRecord:
    return store.create_dataset(dataset_record(**fields))


def add_job(
    store: MetadataStore, dataset: DatasetRecord, *, message: str | None = None, **fields: Any
) -> JobRecord:
    """Store a job; with a `message`, with its first status event, as the job service does."""
    return store.create_job(job_record(dataset, **fields), message=message)


def add_model(store: MetadataStore, job: JobRecord, **fields: Any) -> ModelRecord:
    return store.create_model(model_record(job, **fields))
