"""Predictions from a stored model: the ONNX session cache, JSON rows and streamed CSV.

Only onnxruntime, numpy, pandas and pyarrow are used here, never a training library, so the
API process stays small (see DESIGN.md). A model is loaded once: its ONNX session is kept in a
bounded, thread-safe LRU cache keyed by the model id and the sha256 of its model.onnx, so a
request costs one metadata read (the model record, which carries the card) and no artifact read.

Single rows, the common case for an application calling a deployed model, take a fast path
that builds the ONNX feed from the JSON values directly; it gives exactly what the pandas path
(`engine.inputs.prepare_frame`) gives, and falls back to it whenever a value is anything but a
plain number, boolean, missing value or a text it can read the same way.

CSV predictions read the upload in chunks of about `CSV_CHUNK_BYTES` (cut at record
boundaries, each parsed with the engine's CSV reader), so memory stays bounded however large
the file is. The first chunk is predicted before the response starts, so an invalid file is
still a clean error; a problem found in a later chunk can only stop the stream (see
`CsvPredictionStream`).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import math
import re
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from tabpilot.context import AppContext
from tabpilot.engine.data.inputs import FeatureSpec, prepare_frame
from tabpilot.engine.serving.predict import OnnxPredictor
from tabpilot.errors import Conflict, DataFileError, InvalidInput, NotFound
from tabpilot.records import ModelRecord
from tabpilot.storage.base import ArtifactStore

log = logging.getLogger(__name__)

SESSION_CACHE_SIZE = 8
"""How many models keep an ONNX session in memory; the least recently used is dropped first."""

CSV_CHUNK_BYTES = 4 << 20
"""About this many bytes of CSV are parsed and predicted at a time (tens of thousands of rows)."""

MAX_RECORD_BYTES = 64 << 20
"""A CSV record (row) may not be longer than this."""

MAX_JSON_ROWS = 100_000
"""Larger batches should use predict.csv, which streams."""

_TRUE = frozenset({"true", "t", "yes", "y", "1", "1.0"})
_FALSE = frozenset({"false", "f", "no", "n", "0", "0.0"})
_EPOCH = pd.Timestamp("1970-01-01")
_STRING_KINDS = frozenset({"categorical", "text"})  # fed to the graph as strings
_GZIP_MAGIC = b"\x1f\x8b"
_READ_BYTES = 1 << 20


# -- results ---------------------------------------------------------------------------------


@dataclass
class PredictionResult:
    """Predictions for a batch of rows, as numpy arrays (see `labels` for JSON-ready values)."""

    label_values: np.ndarray  # class labels (object) or numbers (float64), one per row
    probabilities: np.ndarray | None  # rows x classes, in `class_names` order; None: regression
    class_names: list[str]  # class labels as text, the keys of the probability dicts
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # Classes of mixed or unusual types (booleans) are written to CSV as Python prints them.
    labels_as_text: bool = False
    class_index: np.ndarray | None = None  # each row's class, by position in the classes
    label_classes: list[Any] = field(default_factory=list)  # the classes, as in the card

    @property
    def n_rows(self) -> int:
        return len(self.label_values)

    def labels(self) -> list[Any]:
        """Class labels as in the training data, or numbers (None where not finite)."""
        if self.probabilities is None:
            return [v if math.isfinite(v) else None for v in self.label_values.tolist()]
        return self.label_values.tolist()

    def probability_dicts(self) -> list[dict[str, float]] | None:
        if self.probabilities is None:
            return None
        names = self.class_names
        return [dict(zip(names, row, strict=True)) for row in self.probabilities.tolist()]

    def to_csv_bytes(self, *, header: bool) -> bytes:
        """`prediction` and `proba_<label>` columns, as `tabpilot predict` writes them."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        if self.class_index is not None:
            # Labels by index into the classes: no Python object per row.
            classes = self.class_names if self.labels_as_text else self.label_classes
            array = pa.array(classes).take(pa.array(self.class_index))
        else:
            array = pa.array(self.label_values)
        columns = {"prediction": array}
        if self.probabilities is not None:
            for i, name in enumerate(self.class_names):
                columns[f"proba_{name}"] = pa.array(self.probabilities[:, i])
        sink = io.BytesIO()
        pacsv.write_csv(
            pa.table(columns), sink, write_options=pacsv.WriteOptions(include_header=header)
        )
        return sink.getvalue()


# -- a loaded model --------------------------------------------------------------------------


class ServingModel:
    """One model ready to predict: its ONNX session and what its card says about inputs."""

    def __init__(self, *, model_id: str, onnx_sha256: str, onnx_bytes: bytes, card: dict) -> None:
        self.model_id = model_id
        self.onnx_sha256 = onnx_sha256
        self.predictor = OnnxPredictor(onnx_bytes, card)
        self.features: list[FeatureSpec] = self.predictor.features
        self.classes: list[Any] | None = self.predictor.classes
        self.class_names = [str(c) for c in self.classes] if self.classes is not None else []
        self._class_array = (
            np.asarray(self.classes, dtype=object) if self.classes is not None else None
        )
        kinds = {type(c) for c in self.classes or []}
        self._labels_as_text = bool(kinds) and not (len(kinds) == 1 and kinds <= {str, int, float})
        # (input name, prepared column, is numeric) in graph order.
        self._inputs = [
            (spec["name"], spec["column"], spec["type"] == "float32")
            for spec in self.predictor.inputs
        ]

    # -- public --------------------------------------------------------------------------

    def predict_records(self, rows: Sequence[dict[str, Any]]) -> PredictionResult:
        """Predict JSON-style rows (column → value); row numbers in errors start at 1."""
        started = time.perf_counter()
        if not rows:
            raise InvalidInput('No rows to predict: send {"rows": [{"column": value, ...}]}.')
        for number, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise InvalidInput(
                    f'Row {number} is not an object; send each row as {{"column": value, ...}}.',
                    details={"row": number},
                )
        if len(rows) == 1:
            feed = self._fast_feed(rows[0])
            if feed is not None:
                ignored = self.predictor.check_columns(list(rows[0]))
                return self._run(feed, ignored, started)
        frame = pd.DataFrame.from_records(rows)
        return self.predict_frame(frame, started=started)

    def predict_table(
        self, *, columns: Sequence[str], data: Sequence[Sequence[Any]]
    ) -> PredictionResult:
        """Predict `data` rows whose values are in `columns` order."""
        started = time.perf_counter()
        names = [str(c) for c in columns]
        duplicates = sorted({n for n in names if names.count(n) > 1})
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
        if len(data) == 1:
            return self.predict_records([dict(zip(names, data[0], strict=True))])
        frame = pd.DataFrame(list(data), columns=names)
        return self.predict_frame(frame, started=started)

    def predict_frame(
        self, frame: pd.DataFrame, *, started: float | None = None
    ) -> PredictionResult:
        """Predict a frame of raw columns, as `OnnxPredictor.predict` does."""
        started = time.perf_counter() if started is None else started
        feed, ignored = self.prepare_feed(frame)
        return self.run_feed(feed, ignored, started)

    def prepare_feed(self, frame: pd.DataFrame) -> tuple[dict[str, np.ndarray], list[str]]:
        """Validate a frame of raw columns and build the ONNX feed; also the ignored columns."""
        frame = frame.rename(columns=str)
        ignored = self.predictor.check_columns(list(frame.columns))
        if len(frame) == 0:
            raise InvalidInput("No rows to predict: the input has a header but no data rows.")
        # Columns whose conversion is plain are converted here, the rest by the engine.
        direct: dict[str, np.ndarray] = {}
        rest: list[FeatureSpec] = []
        for spec in self.features:
            values = _direct_values(spec, frame[spec.name])
            if values is None:
                rest.append(spec)
            else:
                direct[spec.name] = values
        prepared = prepare_frame(frame, rest, strict=True) if rest else None
        feed: dict[str, np.ndarray] = {}
        for name, column, numeric in self._inputs:
            if column in direct:
                values = direct[column]
            else:
                assert prepared is not None
                values = prepared[column].to_numpy(dtype=np.float64 if numeric else object)
            feed[name] = values.astype(np.float32 if numeric else object, copy=False).reshape(-1, 1)
        return feed, ignored

    def run_feed(
        self, feed: dict[str, np.ndarray], ignored: list[str], started: float
    ) -> PredictionResult:
        """Run the graph on a prepared feed; `started` is when this prediction began."""
        return self._run(feed, ignored, started)

    # -- internals -----------------------------------------------------------------------

    def _run(
        self, feed: dict[str, np.ndarray], ignored: list[str], started: float
    ) -> PredictionResult:
        results = self.predictor.session.run(None, feed)
        if self._class_array is None:
            values = np.asarray(results[0], dtype="float64").reshape(-1)
            return PredictionResult(
                values, None, [], ignored, seconds=time.perf_counter() - started
            )
        proba = np.asarray(results[1], dtype="float64")
        index = proba.argmax(axis=1)
        labels = self._class_array[index]
        return PredictionResult(
            labels,
            proba,
            self.class_names,
            ignored,
            seconds=time.perf_counter() - started,
            labels_as_text=self._labels_as_text,
            class_index=index,
            label_classes=self.classes or [],
        )

    def _fast_feed(self, row: dict[str, Any]) -> dict[str, np.ndarray] | None:
        """The ONNX feed for one row without pandas, or None where only pandas decides."""
        prepared: dict[str, Any] = {}
        for spec in self.features:
            if spec.name not in row:
                return None  # the pandas path raises the missing-column error
            value = row[spec.name]
            if spec.kind == "datetime":
                parts = _fast_datetime_parts(spec, value)
                if parts is None:
                    return None
                prepared.update(parts)
                continue
            converted = _fast_value(spec.kind, value)
            if converted is _UNSURE:
                return None
            prepared[spec.name] = converted
        feed: dict[str, np.ndarray] = {}
        for name, column, numeric in self._inputs:
            if numeric:
                feed[name] = np.array([[prepared[column]]], dtype=np.float32)
            else:
                cell = np.empty((1, 1), dtype=object)
                cell[0, 0] = prepared[column]
                feed[name] = cell
        return feed


_UNSURE = object()


def _fast_value(kind: str, value: Any) -> Any:
    """`value` as `prepare_frame` would make it in a one-row frame, or `_UNSURE`.

    Mirrors engine.inputs: a one-row frame gives a column of the value's own type, so numbers
    and booleans convert directly and None or NaN is missing; text in a numeric column, and
    any kind of feature this function does not know, is left to pandas.
    """
    if kind in _STRING_KINDS:
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        if isinstance(value, float):
            return "" if math.isnan(value) else str(value)
        if isinstance(value, bool | int):
            return str(value)
        return _UNSURE
    if kind not in ("numeric", "boolean"):
        return _UNSURE
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float):
        return float(value)
    if kind == "boolean" and isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return 1.0
        if text in _FALSE:
            return 0.0
        if text == "":
            return math.nan
    return _UNSURE


def _direct_values(spec: FeatureSpec, series: pd.Series) -> np.ndarray | None:
    """What `prepare_frame` gives for this column when that is a plain conversion, else None.

    Numbers stay numbers (as float64, NaN for missing); a text column read by pyarrow feeds a
    string input as its values with "" for missing, straight from Arrow memory (the engine's
    way goes through a second string array). Anything else is left to the engine.
    """
    dtype = series.dtype
    if spec.kind == "numeric":
        if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
            return series.to_numpy(dtype="float64", na_value=np.nan)
        return None
    arrow = (
        spec.kind in _STRING_KINDS
        and isinstance(dtype, pd.StringDtype)
        and dtype.storage == "pyarrow"
        and hasattr(series.array, "__arrow_array__")
    )
    if arrow:
        import pyarrow.compute as pc

        values = pc.fill_null(series.array.__arrow_array__(), "")
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)
    return None


def _fast_datetime_parts(spec: FeatureSpec, value: Any) -> dict[str, float] | None:
    """The date parts of one value as `prepare_frame` makes them, or None to leave it to pandas.

    Parsing one scalar is the same parser (`format="mixed"`) without the cost of a frame.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {column: math.nan for column, _ in spec.input_columns()}
    if not isinstance(value, str):
        return None
    try:
        parsed = pd.to_datetime(value, errors="coerce", format="mixed")
    except (ValueError, TypeError, OverflowError):
        return None
    if not isinstance(parsed, pd.Timestamp) or pd.isna(parsed):
        return None  # pandas raises the error naming the row
    if parsed.tzinfo is not None:
        parsed = parsed.tz_convert("UTC").tz_localize(None)
    parts = {
        "year": parsed.year,
        "month": parsed.month,
        "day": parsed.day,
        "dayofweek": parsed.dayofweek,
        "dayofyear": parsed.dayofyear,
        "days": (parsed - _EPOCH).total_seconds() / 86400.0,
        "hour": parsed.hour,
        "minute": parsed.minute,
    }
    return {column: float(parts[column.rsplit("__", 1)[1]]) for column, _ in spec.input_columns()}


# -- the session cache -----------------------------------------------------------------------


class PredictorCache:
    """A bounded LRU of `ServingModel`s keyed by (model id, sha256 of model.onnx); thread-safe.

    Loading happens outside the cache's lock, under a lock per key, so one slow load never
    blocks predictions of other models and concurrent first requests load a model only once.
    """

    def __init__(self, max_models: int = SESSION_CACHE_SIZE) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, not {max_models}")
        self.max_models = max_models
        self._items: OrderedDict[tuple[str, str], ServingModel] = OrderedDict()
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

    def get(self, model: ModelRecord, artifacts: ArtifactStore) -> ServingModel:
        """The model ready to predict, loading its model.onnx on first use."""
        key = (model.id, model_onnx_sha256(model))
        with self._lock:
            serving = self._items.get(key)
            if serving is not None:
                self._items.move_to_end(key)
                return serving
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                serving = self._items.get(key)
                if serving is not None:
                    self._items.move_to_end(key)
                    return serving
            try:
                serving = _load(model, artifacts, key[1])
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            with self._lock:
                self.loads += 1
                # A re-trained or replaced model.onnx makes the old entry useless.
                for old in [k for k in self._items if k[0] == model.id]:
                    del self._items[old]
                self._items[key] = serving
                while len(self._items) > self.max_models:
                    self._items.popitem(last=False)
            return serving


_default_cache = PredictorCache()


def predictor_cache() -> PredictorCache:
    """The process-wide cache (model ids are random, so one cache serves every context)."""
    return _default_cache


def model_onnx_sha256(model: ModelRecord) -> str:
    entry = (model.card.get("files") or {}).get("model.onnx") or {}
    return str(entry.get("sha256") or "")


def _load(model: ModelRecord, artifacts: ArtifactStore, expected_sha: str) -> ServingModel:
    key = f"{model.artifact_prefix}/model.onnx"
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
    return ServingModel(
        model_id=model.id, onnx_sha256=actual, onnx_bytes=onnx_bytes, card=model.card
    )


# -- use cases -------------------------------------------------------------------------------


def get_serving_model(ctx: AppContext, *, model: ModelRecord) -> ServingModel:
    return predictor_cache().get(model, ctx.artifacts)


def predict_rows(
    ctx: AppContext, *, model: ModelRecord, rows: Sequence[dict[str, Any]]
) -> PredictionResult:
    """Predict JSON rows (`[{"column": value, ...}, ...]`) with `model`."""
    _check_batch(len(rows))
    return get_serving_model(ctx, model=model).predict_records(rows)


def predict_table(
    ctx: AppContext,
    *,
    model: ModelRecord,
    columns: Sequence[str],
    data: Sequence[Sequence[Any]],
) -> PredictionResult:
    """Predict rows given as value lists in `columns` order."""
    _check_batch(len(data))
    if not data:
        raise InvalidInput('No rows to predict: "data" is empty.')
    return get_serving_model(ctx, model=model).predict_table(columns=columns, data=data)


def _check_batch(n_rows: int) -> None:
    if n_rows > MAX_JSON_ROWS:
        raise InvalidInput(
            f"{n_rows:,} rows is more than one JSON request takes ({MAX_JSON_ROWS:,}); "
            "send them to predict.csv, which streams any number of rows.",
            details={"rows": n_rows, "max_rows": MAX_JSON_ROWS},
        )


# -- CSV -------------------------------------------------------------------------------------


@dataclass
class _PreparedChunk:
    feed: dict[str, np.ndarray]
    ignored: list[str]
    started: float


class CsvPredictionStream:
    """Predictions of a CSV file as CSV bytes, chunk by chunk; iterate it once.

    The first chunk is already predicted when this object exists. While the model runs on
    one chunk, the next is read and validated in a second thread (onnxruntime and pyarrow
    release the GIL), so parsing hides behind inference instead of adding to it.

    If a later chunk is invalid, iteration raises `InvalidInput` with row numbers counted in
    the whole file: the HTTP response then ends without its final chunk, which every client
    reports as an incomplete (failed) response rather than a short, valid-looking CSV.
    """

    media_type = "text/csv; charset=utf-8"

    def __init__(self, serving: ServingModel, chunks: Iterator[bytes], header: bytes) -> None:
        self._serving = serving
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
            from tabpilot.engine.data.io import read_csv_bytes

            read_csv_bytes(header, name="the uploaded CSV")
            raise InvalidInput("The CSV has no data rows; add at least one row to predict.")
        self.ignored_columns = first.ignored
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

    def _prepare_next(self) -> _PreparedChunk | None:
        """Read, parse and validate the next chunk (in order: one caller at a time)."""
        from tabpilot.engine.data.io import read_csv_bytes

        chunk = next(self._chunks, None)
        if chunk is None:
            return None
        started = time.perf_counter()
        try:
            table = read_csv_bytes(self._header + chunk, name="the uploaded CSV")
            feed, ignored = self._serving.prepare_feed(table.frame)
        except InvalidInput as exc:
            if self.rows:
                log.warning("predict.csv stopped: %s", exc.message)
                raise _shifted(
                    exc, rows_before=self.rows, lines_shift=self._lines - self._header_lines
                ) from None
            raise
        self._lines += chunk.count(b"\n")
        self.rows += len(table.frame)
        return _PreparedChunk(feed, ignored, started)

    def _run(self, chunk: _PreparedChunk) -> PredictionResult:
        result = self._serving.run_feed(chunk.feed, chunk.ignored, chunk.started)
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

    `stream` (plain or gzip CSV) must stay open while the result is iterated.

    Raises:
        InvalidInput: the CSV is unreadable, misses columns, or a value in its first chunk is
            invalid (naming the row and column).
    """
    serving = get_serving_model(ctx, model=model)
    source = _open_maybe_gzip(stream)
    header, chunks = _split_csv(source, chunk_bytes or CSV_CHUNK_BYTES)
    return CsvPredictionStream(serving, chunks, header)


def _open_maybe_gzip(stream: BinaryIO) -> BinaryIO:
    head = stream.read(2)
    stream.seek(0)
    if head == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    return stream


def _record_end(data: bytes, start: int, end: int, quotes_before: int) -> int:
    """Offset just after the last record boundary in `data[start:end]`, or -1.

    A newline ends a record when an even number of quotes precede it: quoted values (and
    doubled quotes inside them) always come in pairs, so an odd count means the newline is
    inside a quoted value. Newlines and quotes are the same single bytes in every encoding
    the reader accepts (UTF-8, cp1252, latin-1).
    """
    pos = data.rfind(b"\n", start, end)
    while pos >= 0:
        if (quotes_before + data.count(b'"', start, pos)) % 2 == 0:
            return pos + 1
        pos = data.rfind(b"\n", start, pos)
    return -1


def _split_csv(source: BinaryIO, chunk_bytes: int) -> tuple[bytes, Iterator[bytes]]:
    """The header record and an iterator of chunks of whole records after it."""
    buffer = b""
    header = b""
    eof = False
    while not eof:
        block = _read(source, _READ_BYTES)
        eof = not block
        buffer += block
        # Blank lines before the header are part of it for the engine's reader.
        first = _first_record_end(buffer)
        if first >= 0:
            header, buffer = buffer[:first], buffer[first:]
            break
        if len(buffer) > MAX_RECORD_BYTES:
            raise InvalidInput(
                f"The CSV's header line is longer than {MAX_RECORD_BYTES >> 20} MB; is it a CSV "
                "file? Send a header line with the column names, then one row per line."
            )
    else:
        header, buffer = buffer, b""

    def chunks(buffer: bytes, eof: bool) -> Iterator[bytes]:
        while True:
            while not eof and len(buffer) < chunk_bytes:
                block = _read(source, chunk_bytes - len(buffer))
                if not block:
                    eof = True
                    break
                buffer += block
            if eof:
                if buffer.strip():
                    yield buffer
                return
            cut = _record_end(buffer, 0, min(len(buffer), chunk_bytes), 0)
            if cut <= 0:
                cut = _record_end(buffer, 0, len(buffer), 0)
            if cut <= 0:
                # One record longer than a chunk, or a quote never closed: read on, up to a
                # limit, so a broken file cannot fill the memory.
                if len(buffer) > MAX_RECORD_BYTES:
                    raise InvalidInput(
                        f"A row of the CSV is longer than {MAX_RECORD_BYTES >> 20} MB, which "
                        'usually means a quote (") is never closed; check the quotes in the file'
                    )
                block = _read(source, chunk_bytes)
                if not block:
                    eof = True
                buffer += block
                continue
            piece, buffer = buffer[:cut], buffer[cut:]
            if piece.strip():
                yield piece

    return header, chunks(buffer, eof)


def _read(source: BinaryIO, size: int) -> bytes:
    try:
        return source.read(size)
    except (OSError, EOFError, zlib.error) as exc:
        raise InvalidInput(
            f"The gzip-compressed CSV is damaged or truncated ({exc}); compress it again or "
            "send the plain CSV."
        ) from None


def _first_record_end(data: bytes) -> int:
    """Offset after the first non-blank record (the header) in `data`, or -1 if incomplete."""
    start = 0
    quotes = 0
    while True:
        pos = data.find(b"\n", start)
        if pos < 0:
            return -1
        quotes += data.count(b'"', start, pos)
        start = pos + 1
        if quotes % 2 == 0 and data[:pos].strip():
            return start


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
