"""Predictions from a stored model: the predictor cache, JSON rows and streamed CSV.

The predicting itself is the engine's (`engine.serving.predict.OnnxPredictor`, the same one
`tabpilot predict` uses); this module keeps loaded models and runs the use cases. Only
onnxruntime, numpy, pandas and pyarrow are used, never a training library, so the API process
stays small (see DESIGN.md). A model is loaded once: its predictor is kept in a bounded,
thread-safe LRU cache keyed by the model id and the sha256 of its model.onnx, so a prediction
reads no artifact; and the model record (which carries the card) is itself reused while the
metadata store is unchanged (`services.models.model_for_prediction`), so in the common case a
prediction reads no record either.

CSV predictions read the upload in chunks of about `CSV_CHUNK_BYTES` (cut at record
boundaries by the engine's `csvbytes.split_records`, each parsed with the engine's CSV reader),
so memory stays bounded however large the file is. The first chunk is predicted before the
caller gets the stream, so an invalid file is still a clean error; a problem found in a later
chunk can only stop the stream (see `CsvPredictionStream`).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

import pandas as pd

from tabpilot.context import AppContext
from tabpilot.engine.card import ModelCard, stored_file_sha256
from tabpilot.engine.data.csvbytes import decompressed, split_records
from tabpilot.engine.data.io import read_csv_bytes
from tabpilot.engine.serving.predict import OnnxPredictor, Predictions, PreparedInput
from tabpilot.errors import Conflict, DataFileError, InvalidInput, NotFound
from tabpilot.records import ModelRecord
from tabpilot.services.datasets import inflated_too_large
from tabpilot.storage import keys
from tabpilot.storage.base import ArtifactStore

__all__ = [
    "CsvPredictionStream",
    "Predictions",
    "PredictorCache",
    "get_predictor",
    "predict_rows",
    "predict_table",
    "predictor_cache",
    "start_csv_predictions",
]

log = logging.getLogger(__name__)

SESSION_CACHE_SIZE = 8
"""How many models keep an ONNX session in memory; the least recently used is dropped first."""

CSV_CHUNK_BYTES = 4 << 20
"""About this many bytes of CSV are parsed and predicted at a time (tens of thousands of rows)."""

MAX_JSON_ROWS = 100_000
"""Larger batches should use predict.csv, which streams."""


# -- the session cache -----------------------------------------------------------------------


class PredictorCache:
    """A bounded LRU of `OnnxPredictor`s keyed by (model id, sha256 of model.onnx); thread-safe.

    Loading happens outside the cache's lock, under a lock per key, so one slow load never
    blocks predictions of other models and concurrent first uses load a model only once.
    """

    def __init__(self, max_models: int = SESSION_CACHE_SIZE) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, not {max_models}")
        self.max_models = max_models
        self._items: OrderedDict[tuple[str, str], OnnxPredictor] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self.loads = 0  # how many times a model was loaded, for tests and diagnostics

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def cached_keys(self) -> list[tuple[str, str]]:
        """Cached keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def _recent(self, key: tuple[str, str]) -> OnnxPredictor | None:
        """The cached predictor for `key`, marked as most recently used (hold the lock)."""
        predictor = self._items.get(key)
        if predictor is not None:
            self._items.move_to_end(key)
        return predictor

    def peek(self, model: ModelRecord) -> OnnxPredictor | None:
        """The model's predictor if it is loaded already, else None (never loads)."""
        with self._lock:
            return self._recent((model.id, model_onnx_sha256(model)))

    def get(self, model: ModelRecord, artifacts: ArtifactStore) -> OnnxPredictor:
        """The model ready to predict, loading its model.onnx on first use."""
        key = (model.id, model_onnx_sha256(model))
        with self._lock:
            predictor = self._recent(key)
            if predictor is not None:
                return predictor
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                predictor = self._items.get(key)
                if predictor is not None:
                    self._items.move_to_end(key)
                    return predictor
            try:
                predictor = _load(model, artifacts, key[1])
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self.loads += 1
                # A re-trained or replaced model.onnx makes the old entry useless.
                for old in [k for k in self._items if k[0] == model.id]:
                    del self._items[old]
                self._items[key] = predictor
                while len(self._items) > self.max_models:
                    self._items.popitem(last=False)
            return predictor


_default_cache = PredictorCache()


def predictor_cache() -> PredictorCache:
    """The process-wide cache (model ids are random, so one cache serves every context)."""
    return _default_cache


def model_onnx_sha256(model: ModelRecord) -> str:
    return stored_file_sha256(model.card, "model.onnx") or ""


def _load(model: ModelRecord, artifacts: ArtifactStore, expected_sha: str) -> OnnxPredictor:
    key = keys.in_prefix(model.artifact_prefix, "model.onnx")
    try:
        onnx_bytes = artifacts.get_bytes(key)
    except NotFound:
        raise NotFound(
            f'Model "{model.id}" has no model.onnx in the artifact store, so it cannot '
            "predict; train it again",
            details={"id": model.id},
        ) from None
    actual = hashlib.sha256(onnx_bytes).hexdigest()
    if expected_sha and actual != expected_sha:
        raise Conflict(
            f'Model "{model.id}": model.onnx does not match the sha256 in its model card, so it '
            "was changed or damaged after training; train the model again",
            details={"id": model.id},
        )
    return OnnxPredictor(onnx_bytes, ModelCard.from_dict(model.card))


# -- use cases -------------------------------------------------------------------------------


def get_predictor(ctx: AppContext, *, model: ModelRecord) -> OnnxPredictor:
    """`model`'s predictor, from the process-wide cache."""
    return predictor_cache().get(model, ctx.artifacts)


def is_loaded(model: ModelRecord) -> bool:
    """Whether `model`'s predictor is in the cache, so predicting needs no model load."""
    return predictor_cache().peek(model) is not None


def max_columns(ctx: AppContext, predictor: OnnxPredictor) -> int:
    """The widest input a prediction may send: the model's features (and target) plus
    `TABPILOT_PREDICT_MAX_EXTRA_COLUMNS`."""
    return len(predictor.features) + 1 + ctx.settings.predict_max_extra_columns


def check_width(ctx: AppContext, predictor: OnnxPredictor, n_columns: int, *, where: str) -> None:
    """Refuse an input wider than `max_columns` before any work on its values."""
    limit = max_columns(ctx, predictor)
    if n_columns > limit:
        raise InvalidInput(
            f"{where} has {n_columns:,} columns; this model uses {len(predictor.features):,} "
            f"and at most {ctx.settings.predict_max_extra_columns:,} more are accepted "
            f"({limit:,} in all). Send only the model's columns (GET /api/models/{{id}} lists "
            "them), or raise TABPILOT_PREDICT_MAX_EXTRA_COLUMNS.",
            details={"columns": n_columns, "max_columns": limit},
        )


def predict_rows(
    ctx: AppContext, *, model: ModelRecord, rows: Sequence[dict[str, Any]]
) -> Predictions:
    """Predict rows given as objects (`[{"column": value, ...}, ...]`); rows count from 1."""
    _check_batch(len(rows))
    predictor = get_predictor(ctx, model=model)
    started = time.perf_counter()  # the timing leaves out a first use's model load
    if not rows:
        raise InvalidInput('No rows to predict: send {"rows": [{"column": value, ...}]}.')
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise InvalidInput(
                f'Row {number} is not an object; send each row as {{"column": value, ...}}.',
                details={"row": number},
            )
        check_width(ctx, predictor, len(row), where=f"Row {number}")
    if len(rows) == 1:
        return predictor.predict_row(rows[0], started=started)
    return predictor.predict(pd.DataFrame.from_records(rows), started=started)


def predict_table(
    ctx: AppContext,
    *,
    model: ModelRecord,
    columns: Sequence[str],
    data: Sequence[Sequence[Any]],
) -> Predictions:
    """Predict rows given as value lists in `columns` order."""
    _check_batch(len(data))
    if not data:
        raise InvalidInput('No rows to predict: "data" is empty.')
    predictor = get_predictor(ctx, model=model)
    started = time.perf_counter()
    check_width(ctx, predictor, len(columns), where='"columns"')
    names = [str(c) for c in columns]
    _check_table(names, data)
    if len(data) == 1:
        return predictor.predict_row(dict(zip(names, data[0], strict=True)), started=started)
    return predictor.predict(pd.DataFrame(list(data), columns=names), started=started)


def _check_table(names: list[str], data: Sequence[Sequence[Any]]) -> None:
    """Unique column names, and one value per name in every row."""
    # Counted in one pass: list.count per name would be quadratic in the width.
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)[:20]
    if duplicates:
        raise InvalidInput(
            f"Duplicate column name(s): {', '.join(map(repr, duplicates))}; "
            "every name in columns must be unique.",
            details={"duplicate_columns": duplicates},
        )
    for number, values in enumerate(data, start=1):
        if not isinstance(values, list | tuple) or len(values) != len(names):
            size = len(values) if isinstance(values, list | tuple) else "not a list of"
            raise InvalidInput(
                f"Row {number} has {size} value(s), expected {len(names)} (one per name in "
                "columns).",
                details={"row": number},
            )


def _check_batch(n_rows: int) -> None:
    if n_rows > MAX_JSON_ROWS:
        raise InvalidInput(
            f"{n_rows:,} rows is more than one JSON request takes ({MAX_JSON_ROWS:,}); "
            "send them to predict.csv, which streams any number of rows.",
            details={"rows": n_rows, "max_rows": MAX_JSON_ROWS},
        )


# -- CSV -------------------------------------------------------------------------------------


class CsvPredictionStream:
    """Predictions of a CSV file as CSV bytes, chunk by chunk; iterate it once.

    The first chunk is already predicted when this object exists. While the model runs on
    one chunk, the next is read and validated in a second thread (onnxruntime and pyarrow
    release the GIL), so parsing hides behind inference instead of adding to it.

    If a later chunk is invalid, iteration raises `InvalidInput` with row numbers counted in
    the whole file, after yielding the predictions of every chunk before it; so whoever
    delivers the stream can end the delivery as failed rather than as a short, valid-looking
    CSV.
    """

    def __init__(
        self,
        predictor: OnnxPredictor,
        chunks: Iterator[bytes],
        header: bytes,
        check_width: Callable[[int], None] | None = None,
    ) -> None:
        self._predictor = predictor
        self._check_width = check_width
        self._chunks = chunks
        self._header = header
        self.rows = 0  # rows read and validated so far
        self._header_lines = header.count(b"\n")
        self._lines = self._header_lines  # physical lines of the file before the next chunk
        self.ignored_columns: list[str] = []
        self.seconds = 0.0
        first = self._prepare_next()
        if first is None:
            # The engine's reader says best what is wrong: empty, binary, or no data rows.
            read_csv_bytes(header, name="the uploaded CSV", min_columns=1)
            raise InvalidInput("The CSV has no data rows; add at least one row to predict.")
        self.ignored_columns = first.ignored_columns
        self._first = self._run(first).to_csv_bytes(header=True)

    def __iter__(self) -> Iterator[bytes]:
        yield self._first
        self._first = b""
        # Three stages in step: chunk k+1 is read and validated, and chunk k-1 written as
        # CSV, while the model runs on chunk k; so the model is never kept waiting.
        with (
            ThreadPoolExecutor(1, thread_name_prefix="tabpilot-csv-read") as reader,
            ThreadPoolExecutor(1, thread_name_prefix="tabpilot-csv-write") as writer,
        ):
            pending = reader.submit(self._prepare_next)
            written: Future[bytes] | None = None
            while True:
                try:
                    chunk = pending.result()
                except InvalidInput:
                    # Deliver every row before the bad one, then stop the stream.
                    if written is not None:
                        yield written.result()
                    raise
                if chunk is None:
                    break
                pending = reader.submit(self._prepare_next)
                result = self._run(chunk)
                if written is not None:
                    yield written.result()
                written = writer.submit(result.to_csv_bytes, header=False)
            if written is not None:
                yield written.result()

    def _prepare_next(self) -> PreparedInput | None:
        """Read, parse and validate the next chunk (in order: one caller at a time)."""
        chunk = next(self._chunks, None)
        if chunk is None:
            return None
        started = time.perf_counter()
        try:
            table = read_csv_bytes(self._header + chunk, name="the uploaded CSV", min_columns=1)
            if self._check_width is not None:
                self._check_width(table.frame.shape[1])
            prepared = self._predictor.prepare(table.frame, started=started)
        except InvalidInput as exc:
            if self.rows:
                log.warning("predict.csv stopped: %s", exc.message)
                raise _shifted(
                    exc, rows_before=self.rows, lines_shift=self._lines - self._header_lines
                ) from None
            raise
        self._lines += chunk.count(b"\n")
        self.rows += len(table.frame)
        return prepared

    def _run(self, chunk: PreparedInput) -> Predictions:
        result = self._predictor.run(chunk)
        self.seconds += result.seconds
        return result


def start_csv_predictions(
    ctx: AppContext,
    *,
    model: ModelRecord,
    stream: BinaryIO,
    chunk_bytes: int | None = None,
) -> CsvPredictionStream:
    """Validate and predict the first chunk of the CSV in `stream`; stream the rest lazily.

    `stream` (plain or gzip CSV, seekable) must stay open while the result is iterated.

    Raises:
        InvalidInput: the CSV is unreadable, misses columns, or a value in its first chunk is
            invalid (naming the row and column).
        UploadTooLarge: a gzip stream decompresses past `TABPILOT_MAX_INFLATED_MB` (while
            iterating, too).
    """
    predictor = get_predictor(ctx, model=model)
    plain = decompressed(
        stream, max_bytes=ctx.settings.max_inflated_bytes, too_large=inflated_too_large
    )
    header, chunks = split_records(plain, chunk_bytes or CSV_CHUNK_BYTES)
    width = functools.partial(check_width, ctx, predictor, where="The CSV")
    return CsvPredictionStream(predictor, chunks, header, check_width=width)


_ROW_NUMBER = re.compile(r"\brow (\d+)(?= \()")


def _shifted(exc: InvalidInput, *, rows_before: int, lines_shift: int) -> InvalidInput:
    """The same error with row and line numbers counted from the start of the whole file.

    Each chunk is parsed as the header plus the chunk, so its row 1 is the file's row
    `rows_before + 1` and its lines are `lines_shift` lines further down in the file.
    """
    details = dict(exc.details)
    message = exc.message
    if isinstance(exc, DataFileError) and exc.line is not None:
        line = exc.line + lines_shift
        prefix = f"{exc.path}, line {exc.line}: "
        message = message.removeprefix(prefix)
        details["line"] = line
        message = f"{exc.path}, line {line}: {message}"
    if "rows" in details:
        details["rows"] = [int(r) + rows_before for r in details["rows"]]
        message = _ROW_NUMBER.sub(lambda m: f"row {int(m.group(1)) + rows_before}", message)
    return InvalidInput(
        f"Prediction stopped after {rows_before:,} rows: {message}",
        details={**details, "rows_predicted": rows_before},
    )
