"""Request and response bodies of the REST API, with the descriptions /docs shows.

Responses are built from records with the `*_out` functions below; routes never hand a
record to FastAPI directly, so what the API promises is written down here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tabpilot.records import DatasetRecord, JobEvent, JobRecord, JobStatus

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

ProblemTypeName = Literal["binary", "multiclass", "regression", "classification"]


class JobCreate(BaseModel):
    """What to train. Only `dataset_id` and `target` are required."""

    model_config = ConfigDict(
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
    )

    dataset_id: str = Field(description="From POST /api/datasets.")
    target: str = Field(description="The column to predict.")
    problem_type: ProblemTypeName | None = Field(
        default=None,
        description="Detected from the target when absent; classification lets the class "
        "count choose binary or multiclass.",
    )
    metric: str | None = Field(
        default=None,
        description="What the search optimises. binary: roc_auc (default), log_loss, accuracy, "
        "f1, macro_f1; multiclass: log_loss (default), roc_auc, accuracy, macro_f1; "
        "regression: rmse (default), mae, r2, mape.",
    )
    time_budget: float | None = Field(
        default=None,
        description="Seconds for the whole run, 5 to 86400. When absent it is chosen from "
        "the data size and the reply says what and why.",
    )
    include: list[str] = Field(
        default_factory=list,
        description="Columns to use even if they look useless (identifiers, constants...).",
    )
    exclude: list[str] = Field(default_factory=list, description="Columns never to use.")
    estimators: list[str] | None = Field(
        default=None,
        description="Model kinds to search: lgbm, xgboost, rf, extra_tree, linear. Default: all.",
    )
    seed: int | None = Field(default=None, description="Random seed (default 0).")
    tags: list[str] = Field(
        default_factory=list, description="At most 10 tags of at most 50 characters."
    )
    notes: str = Field(default="", description="Free text, at most 10,000 characters.")


class JobPatch(BaseModel):
    """Fields to change; absent fields stay as they are."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] | None = Field(
        default=None, description="The new tags (replacing the old): at most 10 of 50 chars."
    )
    notes: str | None = Field(default=None, description="The new notes.")


class JobSpec(BaseModel):
    """The job's full training specification, with every automatic choice resolved."""

    model_config = ConfigDict(extra="allow")

    # Loosely typed: a spec written by an older version (or by hand) must still display.
    target: str | None = None
    problem_type: str | None = None
    problem_type_reason: str | None = None
    metric: str | None = None
    time_budget: float | None = None
    time_budget_reason: str | None = None
    include: list[str] | None = None
    exclude: list[str] | None = None
    estimators: list[str] | None = None
    seed: int | None = None
    dataset_name: str | None = None


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
