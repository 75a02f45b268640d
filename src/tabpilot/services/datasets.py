"""Datasets: uploaded CSV files, validated and profiled once, stored in the artifact store.

An upload is received into a `StagedUpload` (a temporary file written chunk by chunk, hashed
and size-checked as it arrives, so no upload is ever held in memory), then `create_dataset`
reads it with the engine's CSV reader, profiles it, stores the file under
`datasets/<id>/data.csv` (or `data.csv.gz` when the upload was gzip-compressed) and records it.

The stored profile (`DatasetRecord.profile`) is `profile_frame(...).to_dict()` plus:
- `columns[i].as_target`: the problem type the column would give as a target, with the reason
  (`problem_type` is None when it cannot be a target, and the reason says why);
- `warnings`: columns training would drop (identifiers, constants, mostly missing), missing
  values, high-cardinality categories, duplicate rows, too few rows (leakage needs a target:
  it is checked when a job is trained);
- `preview`: the first rows, JSON-ready;
- `file`: the artifact key, encoding, delimiter and compression the reader detected.

Everything here is pandas and numpy only: the API process can run it. Files bigger than
`ISOLATE_ABOVE_BYTES` once decompressed are read and profiled in a short-lived child process
(`isolated.py`), so the memory a big file needs goes back to the system afterwards instead of
staying with the server; the decompressed size is counted first (stopping at
`TABPILOT_MAX_INFLATED_MB`), since a small gzip file can hold gigabytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pandas as pd

from tabpilot.context import AppContext
from tabpilot.engine.data.csvbytes import inflated_size
from tabpilot.engine.data.io import CsvTable, read_csv
from tabpilot.engine.data.problem import decide_problem
from tabpilot.engine.data.profiling import ColumnProfile, DatasetProfile, profile_frame
from tabpilot.engine.data.quality import dataset_warnings
from tabpilot.engine.data.summary import summarize_data
from tabpilot.engine.reports import render_eda_report
from tabpilot.engine.serialize import to_jsonable
from tabpilot.errors import (
    STORAGE_FULL_MESSAGE,
    Conflict,
    DataFileError,
    InvalidInput,
    NotFound,
    StorageFull,
    UploadTooLarge,
    is_storage_full,
)
from tabpilot.metadata.base import DEFAULT_PAGE_LIMIT, Page
from tabpilot.records import DatasetRecord
from tabpilot.services import check_id
from tabpilot.services.isolated import call_in_child
from tabpilot.services.quotas import storage_reserved
from tabpilot.storage import keys
from tabpilot.storage.base import ArtifactStore

log = logging.getLogger(__name__)

PREVIEW_ROWS = 20
MAX_NAME_LENGTH = 200
MAX_FILENAME_LENGTH = 255
UPLOAD_DIR = "uploads"
# Reading a CSV into pandas takes a few times its size; above this the work moves to a child
# process (about a second to start), below it the server does it in a thread.
ISOLATE_ABOVE_BYTES = 16 * 1024 * 1024
SHOWN_CHARS = 200
"""Examples, frequent values and preview cells are cut to this many characters in the stored
profile, so its size follows the number of columns, not the length of the cells."""


def upload_too_large(limit_bytes: int) -> UploadTooLarge:
    mib = limit_bytes / (1024 * 1024)
    return UploadTooLarge(
        f"The upload is larger than this server's limit of {mib:,.0f} MiB. Upload a smaller "
        "file (gzip-compressing it as .csv.gz often helps), or raise TABPILOT_MAX_UPLOAD_MB.",
        details={"max_upload_bytes": limit_bytes},
    )


def inflated_too_large(limit_bytes: int) -> UploadTooLarge:
    """The error for a gzip upload that decompresses to more than `limit_bytes`."""
    mib = limit_bytes / (1024 * 1024)
    return UploadTooLarge(
        f"The gzip-compressed upload is larger than this server's limit of {mib:,.0f} MiB once "
        "decompressed. Upload a smaller file, or raise TABPILOT_MAX_INFLATED_MB.",
        details={"max_inflated_bytes": limit_bytes},
    )


def clean_filename(raw: str | None) -> str:
    """A display name for an uploaded file: its last path segment, without control characters.

    The name is only ever shown; stored files get fixed keys, so no name can point anywhere.
    """
    name = re.split(r"[\\/]", raw or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().lstrip(".")
    return name[:MAX_FILENAME_LENGTH] or "upload.csv"


def default_dataset_name(filename: str) -> str:
    name = re.sub(r"(\.csv)?(\.gz)?$", "", filename, flags=re.IGNORECASE)
    return (name or filename)[:MAX_NAME_LENGTH]


def dataset_file_key(record: DatasetRecord) -> str:
    """The artifact key of a recorded dataset's CSV file."""
    key = record.profile.get("file", {}).get("key") if isinstance(record.profile, dict) else None
    return key if isinstance(key, str) and key else keys.dataset_data(record.id)


class StagedUpload:
    """An upload being received: written to a temporary file in chunks, hashed as it arrives.

    Use as a context manager; the temporary file is removed on exit whatever happened.

    Raises (from `write`):
        UploadTooLarge: as soon as more than `limit_bytes` have arrived.
    """

    def __init__(self, *, directory: Path, filename: str | None, limit_bytes: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix="upload-", suffix=".part")
        self._file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self.filename = clean_filename(filename)
        self.limit_bytes = limit_bytes
        self.n_bytes = 0
        self._hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        if self.n_bytes + len(chunk) > self.limit_bytes:
            raise upload_too_large(self.limit_bytes)
        try:
            self._file.write(chunk)
        except OSError as exc:
            if is_storage_full(exc):
                raise StorageFull(STORAGE_FULL_MESSAGE) from exc
            raise
        self._hash.update(chunk)
        self.n_bytes += len(chunk)

    def finish(self) -> None:
        """Flush and close the file; call once every chunk is written."""
        if not self._file.closed:
            try:
                self._file.close()
            except OSError as exc:  # the last buffered bytes did not fit
                if is_storage_full(exc):
                    raise StorageFull(STORAGE_FULL_MESSAGE) from exc
                raise

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def discard(self) -> None:
        self.finish()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()


def upload_directory(ctx: AppContext) -> Path:
    """Where uploads are staged: inside the data directory, which settings checked is writable."""
    return ctx.settings.data_dir / UPLOAD_DIR


def free_space_problem(ctx: AppContext) -> str | None:
    """Why the data directory's disk is too full to take more (free space below
    `TABPILOT_MIN_FREE_MB`), or None."""
    try:
        free = shutil.disk_usage(ctx.settings.data_dir).free
    except OSError:
        return None  # not knowable here; writes will tell
    minimum = ctx.settings.min_free_mb * 1024 * 1024
    if free >= minimum:
        return None
    return (
        f"only {free / (1024 * 1024):,.1f} MiB free on the data directory's disk, below "
        f"TABPILOT_MIN_FREE_MB ({ctx.settings.min_free_mb:,} MiB)"
    )


def stage_upload(ctx: AppContext, *, filename: str | None) -> StagedUpload:
    """A `StagedUpload` with this server's directory and size limit.

    Raises:
        StorageFull: the disk has less free space than `TABPILOT_MIN_FREE_MB`.
    """
    problem = free_space_problem(ctx)
    if problem is not None:
        raise StorageFull(f"{STORAGE_FULL_MESSAGE} ({problem})")
    return StagedUpload(
        directory=upload_directory(ctx),
        filename=filename,
        limit_bytes=ctx.settings.max_upload_bytes,
    )


STALE_UPLOAD_S = 15 * 60
"""A staged file untouched this long belongs to no request any more (a crash, a kill): swept."""


def sweep_staged_uploads(ctx: AppContext, *, older_than_s: float = STALE_UPLOAD_S) -> int:
    """Remove staged uploads and temporary copies not modified for `older_than_s` seconds;
    return how many were removed. An upload still arriving is written to all the time, and on
    POSIX a file being read stays readable after removal, so only leftovers go."""
    directory = upload_directory(ctx)
    if not directory.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for entry in directory.iterdir():
        if not entry.name.startswith(("upload-", "copy-")):
            continue  # only what this module stages
        try:
            if entry.lstat().st_mtime > cutoff:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except FileNotFoundError:
            continue  # its request removed it meanwhile
        except OSError:
            log.warning("could not remove the stale staged upload %s", entry, exc_info=True)
    if removed:
        log.info("removed %d stale staged upload(s) from %s", removed, directory)
    return removed


# -- creating ----------------------------------------------------------------------------------


def create_dataset(
    ctx: AppContext, *, owner: str, upload: StagedUpload, name: str | None = None
) -> DatasetRecord:
    """Validate, profile, store and record a received upload. Slow for big files: call it
    from a worker thread, never on an event loop.

    Raises:
        DataFileError: the file is not a readable CSV; the message names the uploaded file
            (never a server path) and, where known, the line.
        InvalidInput: the name is too long.
    """
    upload.finish()
    shown_name = (name or "").strip() or default_dataset_name(upload.filename)
    if len(shown_name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"The dataset name is longer than {MAX_NAME_LENGTH} characters")
    if upload.n_bytes == 0:
        raise DataFileError(
            "is empty; upload a CSV file with a header row and data rows", path=upload.filename
        )
    # Held until the record is written, so uploads sent at once are counted together.
    with storage_reserved(ctx, owner=owner, adding=upload.n_bytes):
        profile = inspect_upload(
            upload,
            max_inflated_bytes=ctx.settings.max_inflated_bytes,
            limits=shape_limits(ctx),
            max_children=ctx.settings.max_isolated_children,
        )
        record = DatasetRecord(
            owner=owner,
            name=shown_name,
            filename=upload.filename,
            sha256=upload.sha256,
            n_bytes=upload.n_bytes,
            n_rows=int(profile["n_rows"]),
            n_columns=int(profile["n_columns"]),
            profile=profile,
        )
        key = keys.dataset_data(record.id, compressed=bool(profile["file"]["compressed"]))
        profile["file"] = {"key": key, **profile["file"]}
        ctx.artifacts.put_file(key, upload.path)
        try:
            return ctx.metadata.create_dataset(record)
        except BaseException:
            ctx.artifacts.delete_prefix(keys.dataset_prefix(record.id))
            raise


def inspect_upload(
    upload: StagedUpload,
    *,
    max_inflated_bytes: int | None = None,
    limits: ShapeLimits | None = None,
    max_children: int | None = None,
) -> dict[str, Any]:
    """`inspect_file` on the staged file (in a child process when it is big once
    decompressed), with errors naming the uploaded file, not the temporary path.

    Raises:
        UploadTooLarge: a gzip upload decompresses to more than `max_inflated_bytes` (None:
            no limit).
    """
    try:
        stop = ISOLATE_ABOVE_BYTES if max_inflated_bytes is None else max_inflated_bytes
        size = inflated_size(upload.path, stop_after=stop)
        if max_inflated_bytes is not None and size > max_inflated_bytes:
            raise inflated_too_large(max_inflated_bytes)
        if size > ISOLATE_ABOVE_BYTES:
            profile = call_in_child(
                inspect_file,
                str(upload.path),
                limits,
                what="reading the file",
                max_children=max_children,
            )
        else:
            profile = inspect_file(str(upload.path), limits)
    except DataFileError as exc:
        raise renamed_data_error(exc, server_path=str(upload.path), shown=upload.filename) from None
    profile["file"]["inflated_bytes"] = size
    return profile


@dataclass(frozen=True)
class ShapeLimits:
    """The widest file and the longest cell a dataset may have (`TABPILOT_MAX_COLUMNS`,
    `TABPILOT_MAX_CELL_CHARS`): profiling costs milliseconds of CPU per column, and every
    cell may end up in the stored profile."""

    max_columns: int
    max_cell_chars: int


def shape_limits(ctx: AppContext) -> ShapeLimits:
    return ShapeLimits(ctx.settings.max_columns, ctx.settings.max_cell_chars)


def check_shape(frame: pd.DataFrame, limits: ShapeLimits, *, path: str) -> None:
    """Raise `DataFileError` for a file wider or with longer cells than `limits` allow.

    Raises:
        DataFileError: naming the limit and the setting that raises it.
    """
    n_columns = frame.shape[1]
    if n_columns > limits.max_columns:
        raise DataFileError(
            f"has {n_columns:,} columns; this server takes at most {limits.max_columns:,} "
            "(TABPILOT_MAX_COLUMNS). Keep the columns you need, or raise the setting.",
            path=path,
            details={"columns": n_columns, "max_columns": limits.max_columns},
        )
    longest, where = max(((len(str(c)), str(c)) for c in frame.columns), default=(0, ""))
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column):
            length = column.astype("string").str.len().max()
            if pd.notna(length) and int(length) > longest:
                longest, where = int(length), str(name)
    if longest > limits.max_cell_chars:
        raise DataFileError(
            f'has a cell of {longest:,} characters (column "{where[:100]}"); this server takes '
            f"at most {limits.max_cell_chars:,} (TABPILOT_MAX_CELL_CHARS). Shorten the long "
            "values, or raise the setting.",
            path=path,
            details={"max_cell_chars": limits.max_cell_chars},
        )


def inspect_file(path: str, limits: ShapeLimits | None = None) -> dict[str, Any]:
    """Read a CSV and describe it: the stored profile, with `file` holding what the reader
    detected (encoding, delimiter, compression). A module-level function so that a child
    process can run it. With `limits`, a file beyond them is refused before it is profiled."""
    table = read_csv(Path(path))
    if limits is not None:
        check_shape(table.frame, limits, path=path)
    profile = describe_dataset(table.frame)
    profile["file"] = file_facts(table)
    return profile


def file_facts(table: CsvTable) -> dict[str, Any]:
    return {
        "encoding": table.encoding,
        "delimiter": table.delimiter,
        "compressed": table.compressed,
    }


def renamed_data_error(exc: DataFileError, *, server_path: str, shown: str) -> DataFileError:
    """The same error with every mention of `server_path` replaced by `shown`."""
    error = DataFileError(exc.message.replace(server_path, shown))
    error.path = shown
    error.line = exc.line
    error.details = {
        k: (v.replace(server_path, shown) if isinstance(v, str) else v)
        for k, v in exc.details.items()
    }
    error.details["path"] = shown
    return error


def describe_dataset(frame: pd.DataFrame) -> dict[str, Any]:
    """The stored profile: columns with kinds, statistics and target suitability, warnings and a
    preview (see the module docstring)."""
    profile = profile_frame(frame)
    for described in profile.columns:
        shorten_values(described)
    out = profile.to_dict()
    for column, described in zip(out["columns"], profile.columns, strict=True):
        column["as_target"] = describe_as_target(described, profile.n_rows)
    out["warnings"] = build_warnings(profile)
    out["preview"] = build_preview(frame)
    return to_jsonable(out)


def shorten(text: str, limit: int = SHOWN_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def shorten_values(column: ColumnProfile) -> None:
    """Cut the column's examples and frequent values to `SHOWN_CHARS` for the stored profile
    (display only: training profiles its own copy of the data)."""
    column.examples = [shorten(v) for v in column.examples]
    column.top_values = [(shorten(v), c) for v, c in column.top_values]


def describe_as_target(column: ColumnProfile, n_rows: int) -> dict[str, Any]:
    """The problem type `column` would give as a target, or None with the reason it cannot
    (the decision a job on it makes at creation and at training: `decide_problem`)."""
    try:
        decision = decide_problem(column, n_rows)
    except InvalidInput as exc:
        return {"problem_type": None, "reason": exc.message, "n_classes": None}
    return decision.to_dict()


def build_warnings(profile: DatasetProfile) -> list[dict[str, Any]]:
    """Column problems a person should see before choosing a target (`engine.data.quality`:
    the EDA report says the same)."""
    return [w.to_dict() for w in dataset_warnings(profile)]


def build_preview(frame: pd.DataFrame, rows: int = PREVIEW_ROWS) -> dict[str, Any]:
    head = frame.head(rows)
    values = [[_cell(v) for v in row] for row in head.itertuples(index=False, name=None)]
    values = [[shorten(v) if isinstance(v, str) else v for v in row] for row in values]
    return {"columns": [str(c) for c in frame.columns], "rows": values}


def _cell(value: Any) -> Any:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return to_jsonable(value)


# -- reading -----------------------------------------------------------------------------------


def get_dataset(ctx: AppContext, *, owner: str, dataset_id: str) -> DatasetRecord:
    """Raises `NotFound` if missing or owned by someone else."""
    return ctx.metadata.get_dataset(check_id("Dataset", dataset_id), owner=owner)


def list_datasets(
    ctx: AppContext, *, owner: str, limit: int = DEFAULT_PAGE_LIMIT, cursor: str | None = None
) -> Page[DatasetRecord]:
    """Newest first."""
    return ctx.metadata.list_datasets(owner=owner, limit=limit, cursor=cursor)


@contextlib.contextmanager
def local_copy(artifacts: ArtifactStore, key: str, *, directory: Path) -> Iterator[Path]:
    """A local file holding `key`: the store's own file when it is local, else a temporary copy."""
    hint = artifacts.local_path_hint(key)
    if hint is not None:
        yield hint
        return
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix="copy-"))
    try:
        yield artifacts.get_file(key, tmp / key.rsplit("/", 1)[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def render_dataset_eda(ctx: AppContext, *, owner: str, dataset_id: str) -> bytes:
    """The dataset's EDA report (HTML), rendered on first request and then kept in the store.

    Slow for big files the first time: call it from a worker thread.
    """
    record = get_dataset(ctx, owner=owner, dataset_id=dataset_id)
    key = keys.dataset_eda(record.id)
    with contextlib.suppress(NotFound):
        return ctx.artifacts.get_bytes(key)
    data = dataset_file_key(record)
    with local_copy(ctx.artifacts, data, directory=upload_directory(ctx)) as path:
        try:
            if _data_size(record, path) > ISOLATE_ABOVE_BYTES:
                html = call_in_child(
                    eda_html,
                    str(path),
                    record.name,
                    what="rendering the EDA report",
                    max_children=ctx.settings.max_isolated_children,
                )
            else:
                html = eda_html(str(path), record.name)
        except DataFileError as exc:
            raise renamed_data_error(exc, server_path=str(path), shown=record.filename) from None
    body = html.encode("utf-8")
    ctx.artifacts.put_bytes(key, body)
    return body


def _data_size(record: DatasetRecord, path: Path) -> int:
    """The dataset file's size once decompressed: recorded at upload (older records: counted,
    stopping just past the point where the size decides anything)."""
    facts = record.profile.get("file", {}) if isinstance(record.profile, dict) else {}
    recorded = facts.get("inflated_bytes") if isinstance(facts, dict) else None
    if isinstance(recorded, int):
        return recorded
    return inflated_size(path, stop_after=ISOLATE_ABOVE_BYTES)


def eda_html(path: str, title: str) -> str:
    """The EDA report of a CSV file (module-level so that a child process can run it)."""
    frame = read_csv(Path(path)).frame
    return render_eda_report(summarize_data(frame, profile_frame(frame)), title=title)


# -- deleting ----------------------------------------------------------------------------------


def list_dataset_job_ids(ctx: AppContext, *, owner: str, dataset_id: str) -> list[str]:
    """Every job (of this owner) trained on the dataset."""
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = ctx.metadata.list_jobs(
            owner=owner, dataset_id=dataset_id, limit=1000, cursor=cursor, sort="created_at"
        )
        ids.extend(job.id for job in page.items)
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def delete_dataset(
    ctx: AppContext, *, owner: str, dataset_id: str, force: bool = False
) -> list[str]:
    """Delete a dataset and its files; returns the ids of the jobs deleted with it.

    Raises:
        Conflict: jobs use the dataset and `force` is False (`details["jobs"]` lists them).
    """
    from tabpilot.services.jobs import delete_job

    record = get_dataset(ctx, owner=owner, dataset_id=dataset_id)
    job_ids = list_dataset_job_ids(ctx, owner=owner, dataset_id=record.id)
    if job_ids and not force:
        shown = ", ".join(job_ids[:10]) + (", ..." if len(job_ids) > 10 else "")
        raise Conflict(
            f'Dataset "{record.id}" is used by {len(job_ids)} job(s) ({shown}). Delete those '
            "jobs first, or delete the dataset with force=true to delete them (and their "
            "models) too.",
            details={"jobs": job_ids},
        )
    for job_id in job_ids:
        with contextlib.suppress(NotFound):  # deleted meanwhile: that is what we want
            delete_job(ctx, owner=owner, job_id=job_id)
    ctx.metadata.delete_dataset(record.id, owner=owner)
    try:
        ctx.artifacts.delete_prefix(keys.dataset_prefix(record.id))
    except Exception:  # the record is gone; leftover files are only disk space
        log.exception("could not delete the files of dataset %s", record.id)
    return job_ids
