"""Prediction from model.onnx with onnxruntime: no FLAML, scikit-learn or boosting library.

`OnnxPredictor` is the one predictor: `tabpilot predict`, the API's JSON rows and its streamed
CSV all use it. It validates what the user sent against the model card: missing columns are an
error naming them, extra columns are ignored and reported, and bad values name their row and
column. Inputs are converted by `engine.data.inputs`, the code training used, so serving cannot
drift from it: a frame through `prepare_columns`, a single row of plain values through
`prepare_row` (no pandas, the common case for an application calling a deployed model).

Preparing and running are separate steps (`prepare`, then `run`), so a caller streaming a
large file can prepare the next chunk in one thread while the model runs on this one.
"""

from __future__ import annotations

import io
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabpilot.engine.card import ModelCard
from tabpilot.engine.data.inputs import FeatureSpec, prepare_columns, prepare_row
from tabpilot.errors import InvalidInput, NotFound

# A text cell starting with one of these is run as a formula by spreadsheet programs
# (=HYPERLINK(...), +cmd|..., @SUM(...)); tab and CR are stripped by some before that check.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Up to this many rows run on a one-thread onnxruntime session (see `_session_for`).
SMALL_BATCH_ROWS = 64
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def spreadsheet_safe(value: Any) -> Any:
    """`value`, with a text that a spreadsheet would run as a formula prefixed by `'`.

    Class labels come from whoever uploaded the training data, and predict.csv is opened by
    someone else in a spreadsheet (formula injection). A leading `'` makes the cell plain text
    there. Plain numbers written as text ("-1", "+2.5") are left alone: they are not formulas.
    Other values are returned unchanged.
    """
    unsafe = isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)
    if unsafe and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


@dataclass
class Predictions:
    """Predictions for a batch of rows: labels (or numbers), probabilities, and as CSV."""

    values: np.ndarray  # each row's class label (object) or number (float64)
    proba: np.ndarray | None  # rows x classes, in `classes` order; None for regression
    classes: list[Any] = field(default_factory=list)  # as in the card; empty for regression
    class_index: np.ndarray | None = None  # each row's class, by position in `classes`
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0  # from the start of the request to the model's answer

    @property
    def n_rows(self) -> int:
        return len(self.values)

    @property
    def class_names(self) -> list[str]:
        """The classes as text: probability column names and keys."""
        return [str(c) for c in self.classes]

    @property
    def labels(self) -> list[Any]:
        """Class labels as in the training data, or numbers (None where not finite)."""
        if self.proba is None:
            return [v if math.isfinite(v) else None for v in self.values.tolist()]
        return self.values.tolist()

    @property
    def probabilities(self) -> pd.DataFrame | None:
        """One column per class, named by `class_names`; None for regression."""
        if self.proba is None:
            return None
        return pd.DataFrame(self.proba, columns=self.class_names)

    def probability_dicts(self) -> list[dict[str, float]] | None:
        """Per row, class name to probability (as JSON shows them); None for regression."""
        if self.proba is None:
            return None
        names = self.class_names
        return [dict(zip(names, row, strict=True)) for row in self.proba.tolist()]

    def to_frame(self, *, spreadsheet_safe_labels: bool = False) -> pd.DataFrame:
        """`prediction` plus `proba_<label>` columns, as `tabpilot predict` writes them.

        With `spreadsheet_safe_labels`, text labels go through `spreadsheet_safe` (for a CSV).
        """
        labels = self.labels
        if spreadsheet_safe_labels and self.proba is not None:
            labels = [spreadsheet_safe(label) for label in labels]
        out = pd.DataFrame({"prediction": self.values if self.proba is None else labels})
        if self.proba is not None:
            for i, name in enumerate(self.class_names):
                out[f"proba_{name}"] = self.proba[:, i]
        return out

    def to_csv_bytes(self, *, header: bool) -> bytes:
        """The `to_frame` columns as CSV, written by Arrow (fast enough to stream); text labels
        that a spreadsheet would run as formulas are neutralised (`spreadsheet_safe`)."""
        import pyarrow as pa
        import pyarrow.csv as pacsv

        if self.class_index is not None:
            # Labels by index into the classes: no Python object per row. Classes of mixed
            # or unusual types (booleans) are written as Python prints them.
            kinds = {type(c) for c in self.classes}
            plain = len(kinds) == 1 and kinds <= {str, int, float}
            classes = self.classes if plain else self.class_names
            classes = [spreadsheet_safe(c) for c in classes]  # per class, not per row
            array = pa.array(classes).take(pa.array(self.class_index))
        else:
            array = pa.array(self.values)
        columns = {"prediction": array}
        if self.proba is not None:
            for i, name in enumerate(self.class_names):
                columns[f"proba_{name}"] = pa.array(self.proba[:, i])
        sink = io.BytesIO()
        pacsv.write_csv(
            pa.table(columns), sink, write_options=pacsv.WriteOptions(include_header=header)
        )
        return sink.getvalue()


@dataclass
class PreparedInput:
    """Rows checked and converted into the graph's feed, ready for `OnnxPredictor.run`."""

    feed: dict[str, np.ndarray]
    ignored_columns: list[str]
    started: float  # perf_counter() when this prediction began


class OnnxPredictor:
    """Predicts from raw columns with a model bundle's ONNX graph and card."""

    def __init__(self, onnx_bytes: bytes, card: ModelCard) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._onnx_bytes = onnx_bytes
        self._small_session: Any = None  # built on the first few-row prediction
        self.card = card
        self.features = [FeatureSpec(f.name, f.kind, f.has_time) for f in card.features]
        self.inputs = card.inputs
        self.classes: list[Any] | None = card.classes
        self.outputs = [o.name for o in self.session.get_outputs()]
        self._class_array = (
            np.asarray(self.classes, dtype=object) if self.classes is not None else None
        )
        # (graph input name, prepared column, is numeric) in graph order.
        self._feed_plan = [(spec.name, spec.column, spec.numeric) for spec in self.inputs]

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> OnnxPredictor:
        path = Path(model_dir)
        onnx_path, card_path = path / "model.onnx", path / "model.json"
        if not onnx_path.is_file() or not card_path.is_file():
            raise NotFound(
                f"{path} is not a Tabpilot model folder: it needs model.onnx and model.json "
                "(written by `tabpilot train`)."
            )
        card = ModelCard.from_dict(json.loads(card_path.read_text()))
        return cls(onnx_path.read_bytes(), card)

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    def check_columns(self, columns: list[str]) -> list[str]:
        """Raise for missing feature columns; return the extra ones, which are ignored."""
        present = set(map(str, columns))
        missing = [n for n in self.feature_names if n not in present]
        if missing:
            raise InvalidInput(
                f"Missing column(s) the model needs: {', '.join(map(repr, missing))}. "
                f"The model uses: {', '.join(self.feature_names)}.",
                details={"missing_columns": missing},
            )
        target = self.card.target
        needed = set(self.feature_names) | {target}
        return [str(c) for c in columns if str(c) not in needed]

    # -- predicting ------------------------------------------------------------------------

    def predict(self, frame: pd.DataFrame, *, started: float | None = None) -> Predictions:
        """Predict a frame of raw columns; `started`: when the caller's request began."""
        return self.run(self.prepare(frame, started=started))

    def predict_row(self, row: Mapping[str, Any], *, started: float | None = None) -> Predictions:
        """Predict one row of plain values (column to value), as a one-row frame would be.

        Numbers, booleans, text and missing values convert without pandas; anything else
        (text in a numeric column, say) takes the frame path, which names the bad value.
        """
        started = time.perf_counter() if started is None else started
        values = prepare_row(row, self.features)
        if values is None:
            return self.predict(pd.DataFrame.from_records([row]), started=started)
        ignored = self.check_columns(list(row))
        feed: dict[str, np.ndarray] = {}
        for name, column, numeric in self._feed_plan:
            if numeric:
                feed[name] = np.array([[values[column]]], dtype=np.float32)
            else:
                cell = np.empty((1, 1), dtype=object)
                cell[0, 0] = values[column]
                feed[name] = cell
        return self.run(PreparedInput(feed, ignored, started))

    def prepare(self, frame: pd.DataFrame, *, started: float | None = None) -> PreparedInput:
        """Check a frame of raw columns and build the graph's feed (no model run yet)."""
        started = time.perf_counter() if started is None else started
        frame = frame.rename(columns=str)
        ignored = self.check_columns(list(frame.columns))
        if len(frame) == 0:
            raise InvalidInput("No rows to predict: the input has a header but no data rows.")
        columns = prepare_columns(frame, self.features, strict=True)
        feed = {
            name: columns[column]
            .astype(np.float32 if numeric else object, copy=False)
            .reshape(-1, 1)
            for name, column, numeric in self._feed_plan
        }
        return PreparedInput(feed, ignored, started)

    def _session_for(self, n_rows: int) -> Any:
        """The session to run `n_rows` rows on: a one-thread session for a few rows (the
        default pool wakes a thread per core, whose start and idle spinning cost more than a
        row of trees: measured over HTTP on 2 cores, single-row p50 0.76 -> 0.66 ms and p99
        4.9 -> 1.6 ms), the default multi-threaded one for batches."""
        if n_rows > SMALL_BATCH_ROWS:
            return self.session
        if self._small_session is None:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.log_severity_level = 3
            options.intra_op_num_threads = options.inter_op_num_threads = 1
            self._small_session = ort.InferenceSession(
                self._onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        return self._small_session

    def run(self, prepared: PreparedInput) -> Predictions:
        """Run the graph on a prepared feed."""
        n_rows = len(next(iter(prepared.feed.values()))) if prepared.feed else 0
        results = self._session_for(n_rows).run(None, prepared.feed)
        if self._class_array is None:
            values = np.asarray(results[0], dtype="float64").reshape(-1)
            return Predictions(
                values,
                None,
                ignored_columns=prepared.ignored_columns,
                seconds=time.perf_counter() - prepared.started,
            )
        proba = np.asarray(results[1], dtype="float64")
        index = proba.argmax(axis=1)
        return Predictions(
            self._class_array[index],
            proba,
            classes=list(self.classes or []),
            class_index=index,
            ignored_columns=prepared.ignored_columns,
            seconds=time.perf_counter() - prepared.started,
        )
