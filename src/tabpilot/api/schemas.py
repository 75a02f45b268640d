"""Request and response bodies of the REST API, with the descriptions /docs shows.

Responses are built from records with the `*_out` functions below; routes never hand a
record to FastAPI directly, so what the API promises is written down here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model

from tabpilot.engine.spec import MAX_NAMES_SENT, TrainRequest, TrainSpec
from tabpilot.records import DatasetRecord, JobEvent, JobRecord, JobStatus
from tabpilot.services.jobs import MAX_TAGS_SENT

# -- errors and health -------------------------------------------------------------------------


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable kind, e.g. invalid_input, not_found.")
    message: str = Field(description="What was wrong and what to do about it.")
    details: dict[str, Any] = Field(
        default_factory=dict, description="Extra facts, e.g. the bad fields or the jobs in use."
    )


class ErrorEnvelope(BaseModel):
    """Every error reply has this shape."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "No valid API token (token mode only)."},
    404: {"model": ErrorEnvelope, "description": "No such record (or not yours)."},
    422: {"model": ErrorEnvelope, "description": "The request is not valid; the message says why."},
}


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class ReadyOut(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, str] = Field(description='Each store and "ok".')


# -- datasets ----------------------------------------------------------------------------------


class TopValue(BaseModel):
    value: str
    count: int


class TargetOption(BaseModel):
    """What the column would give as the target of a job."""

    problem_type: Literal["binary", "multiclass", "regression"] | None = Field(
        description="None when the column cannot be a target; `reason` says why."
    )
    reason: str
    n_classes: int | None = None


class ColumnOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    kind: str = Field(description="numeric, boolean, categorical, datetime, text or identifier.")
    dtype: str
    n_missing: int
    missing_fraction: float
    n_distinct: int
    unique_per_row: bool
    kind_reason: str = Field(description="Why the column was given its kind.")
    stats: dict[str, Any] = Field(default_factory=dict)
    top_values: list[TopValue] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)
    integer_valued: bool = False
    as_target: TargetOption | None = None


class DatasetWarning(BaseModel):
    column: str | None = Field(description="The column concerned; None for the whole file.")
    kind: str = Field(
        description="identifier, constant, mostly_missing, missing, high_cardinality, "
        "duplicate_rows or too_few_rows."
    )
    detail: str


class Preview(BaseModel):
    columns: list[str]
    rows: list[list[Any]] = Field(description="The first rows of the file, as read.")


class FileInfo(BaseModel):
    encoding: str
    delimiter: str
    compressed: bool


class DatasetSummary(BaseModel):
    id: str
    name: str
    filename: str = Field(description="The uploaded file's name.")
    sha256: str = Field(description="SHA-256 of the uploaded bytes.")
    n_bytes: int
    n_rows: int
    n_columns: int
    created_at: datetime


class DatasetOut(DatasetSummary):
    """A dataset with its profile: columns, target options and warnings."""

    n_duplicate_rows: int = 0
    columns: list[ColumnOut]
    warnings: list[DatasetWarning]
    file: FileInfo | None = None
    preview: Preview | None = Field(
        default=None, description="The first 20 rows (GET /api/datasets/{id} only)."
    )


class DatasetPage(BaseModel):
    items: list[DatasetSummary]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


class DatasetDeleted(BaseModel):
    id: str
    deleted_jobs: list[str] = Field(description="Jobs deleted with it (force=true).")


def dataset_summary(record: DatasetRecord) -> DatasetSummary:
    return DatasetSummary(
        id=record.id,
        name=record.name,
        filename=record.filename,
        sha256=record.sha256,
        n_bytes=record.n_bytes,
        n_rows=record.n_rows,
        n_columns=record.n_columns,
        created_at=record.created_at,
    )


def dataset_out(record: DatasetRecord, *, preview: bool = False) -> DatasetOut:
    profile = record.profile if isinstance(record.profile, dict) else {}
    file = profile.get("file")
    return DatasetOut(
        **dataset_summary(record).model_dump(),
        n_duplicate_rows=int(profile.get("n_duplicate_rows") or 0),
        columns=[ColumnOut.model_validate(c) for c in profile.get("columns") or []],
        warnings=[DatasetWarning.model_validate(w) for w in profile.get("warnings") or []],
        file=FileInfo.model_validate(file) if isinstance(file, dict) else None,
        preview=Preview.model_validate(profile["preview"])
        if preview and isinstance(profile.get("preview"), dict)
        else None,
    )


# -- jobs --------------------------------------------------------------------------------------


def _api_type(hint: Any) -> Any:
    """A `TrainRequest`/`TrainSpec` field's type as the API writes it: lists for sequences."""
    if get_origin(hint) in (Sequence, tuple):
        return list[str]
    if get_origin(hint) in (Union, UnionType):
        return Union[tuple(_api_type(a) for a in get_args(hint))]  # noqa: UP007
    return hint


def _is_list(api_type: Any) -> bool:
    if get_origin(api_type) is list:
        return True
    return get_origin(api_type) in (Union, UnionType) and any(
        get_origin(a) is list for a in get_args(api_type)
    )


def _request_fields() -> dict[str, Any]:
    """The API fields of a `TrainRequest`: same names, types, defaults and descriptions."""
    hints = get_type_hints(TrainRequest)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(TrainRequest):
        info = Field(description=f.metadata.get("doc"))
        # Name lists are bounded here, before any check runs on them.
        bound = {"max_length": MAX_NAMES_SENT} if _is_list(_api_type(hints[f.name])) else {}
        if f.default is dataclasses.MISSING:
            pass
        elif isinstance(f.default, tuple):
            info = Field(default_factory=list, description=f.metadata.get("doc"), **bound)
        else:
            info = Field(default=f.default, description=f.metadata.get("doc"), **bound)
        out[f.name] = (_api_type(hints[f.name]), info)
    return out


# What to train: `TrainRequest`'s fields (the engine's), on a dataset, with the job's labels.
JobCreate = create_model(
    "JobCreate",
    __config__=ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"dataset_id": "ds_0123456789abcdef", "target": "price"},
                {
                    "dataset_id": "ds_0123456789abcdef",
                    "target": "churned",
                    "metric": "f1",
                    "time_budget": 60,
                    "exclude": ["customer_name"],
                    "estimators": ["lgbm", "xgboost"],
                    "tags": ["baseline"],
                },
            ]
        },
    ),
    __doc__="What to train. Only `dataset_id` and `target` are required.",
    __module__=__name__,
    dataset_id=(str, Field(description="From POST /api/datasets.")),
    **_request_fields(),
    tags=(
        list[str],
        Field(
            default_factory=list,
            max_length=MAX_TAGS_SENT,
            description="At most 10 tags of at most 50 characters.",
        ),
    ),
    notes=(str, Field(default="", description="Free text, at most 10,000 characters.")),
)


class JobPatch(BaseModel):
    """Fields to change; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] | None = Field(
        default=None,
        max_length=MAX_TAGS_SENT,
        description="The new tags (replacing the old): at most 10 of 50 chars.",
    )
    notes: str | None = Field(default=None, description="The new notes.")


# The job's full training specification (`TrainSpec.to_dict()`), every automatic choice
# resolved with its reason. Loosely typed (every field may be null, other keys are kept): a
# spec written by an older version must still display.
JobSpec = create_model(
    "JobSpec",
    __config__=ConfigDict(extra="allow"),
    __doc__="The job's full training specification, with every automatic choice resolved "
    "and the reason for each.",
    __module__=__name__,
    **{name: (_api_type(hint) | None, None) for name, hint in get_type_hints(TrainSpec).items()},
)


class JobProgress(BaseModel):
    """The latest progress report of a running (or finished) job."""

    model_config = ConfigDict(extra="allow")

    phase: str | None = Field(default=None, description="e.g. reading, searching, exporting.")
    elapsed: float | None = Field(default=None, description="Seconds since the run started.")
    budget: float | None = Field(default=None, description="The run's time budget in seconds.")
    message: str | None = None
    trials: int | None = Field(default=None, description="Configurations tried so far.")
    estimator: str | None = Field(default=None, description="The model kind being tried.")
    best_score: float | None = None
    best_estimator: str | None = None


class JobOut(BaseModel):
    id: str
    dataset_id: str
    status: JobStatus = Field(description="queued, running, succeeded, failed or canceled.")
    spec: JobSpec
    progress: JobProgress
    error: str | None = Field(description="Why the job failed, in words a user can act on.")
    model_id: str | None = Field(description="The trained model, once succeeded.")
    tags: list[str]
    notes: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int = Field(description="How many times a worker claimed the job.")


class JobCreated(JobOut):
    message: str = Field(description="What was queued, with the automatic choices explained.")


class JobPage(BaseModel):
    items: list[JobOut]
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; null at the end."
    )


class JobEventOut(BaseModel):
    seq: int = Field(description="1, 2, 3... per job; pass the last one seen as `after`.")
    kind: str = Field(description="status, progress or log.")
    data: dict[str, Any]
    at: datetime


class JobDeleted(BaseModel):
    id: str
    deleted: bool = True


def job_out(record: JobRecord) -> JobOut:
    return JobOut(
        id=record.id,
        dataset_id=record.dataset_id,
        status=record.status,
        spec=JobSpec.model_validate(record.spec),
        progress=JobProgress.model_validate(record.progress or {}),
        error=record.error,
        model_id=record.model_id,
        tags=list(record.tags),
        notes=record.notes,
        created_at=record.created_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        attempts=record.attempts,
    )


def job_created(record: JobRecord, message: str) -> JobCreated:
    return JobCreated(**job_out(record).model_dump(), message=message)


def event_out(event: JobEvent) -> JobEventOut:
    return JobEventOut(seq=event.seq, kind=event.kind, data=event.data, at=event.at)


# -- compare -----------------------------------------------------------------------------------


class ComparedJob(BaseModel):
    id: str
    dataset_id: str
    model_id: str
    target: str | None
    problem_type: str | None
    metric: str | None = Field(description="The metric the job optimised.")
    chosen_estimator: str | None
    tags: list[str]
    created_at: datetime


class MetricRow(BaseModel):
    name: str
    direction: Literal["higher", "lower"] | None = Field(
        description="Whether higher or lower is better; null when unknown."
    )
    primary: bool = Field(description="True for a metric some job optimised.")
    values: dict[str, float | None] = Field(description="By job id.")
    best: list[str] = Field(description="The job ids with the best value (ties share it).")


class ImportanceRow(BaseModel):
    feature: str
    values: dict[str, float | None] = Field(description="By job id; null where unused.")


class DifferenceRow(BaseModel):
    key: str
    values: dict[str, Any] = Field(description="By job id.")


class CompareOut(BaseModel):
    jobs: list[ComparedJob]
    metrics: list[MetricRow] = Field(description="Held-out metrics, the optimised one first.")
    feature_importance: list[ImportanceRow] = Field(description="Most important first.")
    differences: list[DifferenceRow] = Field(
        description="Configuration keys whose values differ (spec, dataset, chosen estimator)."
    )
    same: dict[str, Any] = Field(description="Configuration all the jobs share.")
    notes: list[str]
