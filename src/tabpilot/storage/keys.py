"""Where things live in the artifact store: every key the platform writes is built here.

    datasets/<dataset_id>/data.csv   an uploaded file (`data.csv.gz` when uploaded compressed)
    datasets/<dataset_id>/eda.html   its EDA report, rendered on first request
    models/<model_id>/<name>         a model's bundle: model.onnx, model.pkl, model.json,
                                     eda.html, report.html (`ModelRecord.artifact_prefix`
                                     is `models/<model_id>`)
    jobs/<job_id>/...                a job's own files, removed with the job

Ids must be record ids (`[A-Za-z0-9_-]`, as `records.new_id` makes them) and names must be
valid keys (`validate_key`), so a key built here never leaves its folder, whatever a caller
passes: a bad id or name raises `InvalidInput` before any store is touched.
"""

from __future__ import annotations

import re

from tabpilot.errors import InvalidInput
from tabpilot.storage.base import validate_key, validate_prefix

DATASETS = "datasets"
MODELS = "models"
JOBS = "jobs"

DATA_FILE = "data.csv"
"""The name of an uploaded dataset's file; `data.csv.gz` when it was uploaded compressed."""
DATA_FILES = (DATA_FILE, DATA_FILE + ".gz")
EDA_FILE = "eda.html"

_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


def record_id(value: str) -> str:
    """Return `value` if it is a record id, which is always one safe key segment."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        shown = value if isinstance(value, str) and len(value) <= 100 else "(malformed)"
        raise InvalidInput(
            f"{shown!r} is not a record id, so it cannot name artifacts", details={"id": shown}
        )
    return value


def in_prefix(prefix: str, name: str) -> str:
    """The key of the file `name` (one or more segments) under `prefix`.

    For prefixes read from a record, such as `ModelRecord.artifact_prefix`.
    """
    return f"{validate_prefix(prefix, allow_empty=False)}/{validate_key(name)}"


def dataset_prefix(dataset_id: str) -> str:
    """Everything stored for a dataset: delete this prefix to remove it all."""
    return f"{DATASETS}/{record_id(dataset_id)}"


def dataset_file(dataset_id: str, name: str) -> str:
    return in_prefix(dataset_prefix(dataset_id), name)


def dataset_data(dataset_id: str, *, compressed: bool = False) -> str:
    """The key of a dataset's uploaded file, as stored (gzip-compressed or not)."""
    return dataset_file(dataset_id, DATA_FILES[1] if compressed else DATA_FILE)


def dataset_eda(dataset_id: str) -> str:
    return dataset_file(dataset_id, EDA_FILE)


def model_prefix(model_id: str) -> str:
    """A model's bundle; what `ModelRecord.artifact_prefix` holds."""
    return f"{MODELS}/{record_id(model_id)}"


def model_file(model_id: str, name: str) -> str:
    return in_prefix(model_prefix(model_id), name)


def job_prefix(job_id: str) -> str:
    return f"{JOBS}/{record_id(job_id)}"
