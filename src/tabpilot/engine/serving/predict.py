"""Prediction from model.onnx with onnxruntime: no FLAML, scikit-learn or boosting library.

This is what the API and `tabpilot predict` use. It validates what the user sent against
the model card: missing columns are an error naming them, extra columns are ignored and
reported, and bad values name their row and column.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tabpilot.engine.data.inputs import FeatureSpec, prepare_frame
from tabpilot.errors import InvalidInput, NotFound


@dataclass
class Predictions:
    labels: list[Any]  # class labels as in the training data, or numbers for regression
    probabilities: pd.DataFrame | None  # one column per class label (as text), or None
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_frame(self) -> pd.DataFrame:
        """`prediction` plus `proba_<label>` columns, as `tabpilot predict` writes them."""
        out = pd.DataFrame({"prediction": self.labels})
        if self.probabilities is not None:
            for col in self.probabilities.columns:
                out[f"proba_{col}"] = self.probabilities[col].to_numpy()
        return out


class OnnxPredictor:
    """Predicts from raw columns with a model bundle's ONNX graph and card."""

    def __init__(self, onnx_bytes: bytes, card: dict[str, Any]) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(
            onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.card = card
        self.features = [
            FeatureSpec(f["name"], f["kind"], bool(f.get("has_time", False)))
            for f in card["features"]
        ]
        self.inputs = card["inputs"]
        self.classes: list[Any] | None = card.get("classes")
        self.outputs = [o.name for o in self.session.get_outputs()]

    @classmethod
    def from_dir(cls, model_dir: str | Path) -> OnnxPredictor:
        path = Path(model_dir)
        onnx_path, card_path = path / "model.onnx", path / "model.json"
        if not onnx_path.is_file() or not card_path.is_file():
            raise NotFound(
                f"{path} is not a Tabpilot model folder: it needs model.onnx and model.json "
                "(written by `tabpilot train`)."
            )
        card = json.loads(card_path.read_text())
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
        target = self.card.get("target")
        needed = set(self.feature_names) | {target}
        return [str(c) for c in columns if str(c) not in needed]

    def predict(self, frame: pd.DataFrame) -> Predictions:
        started = time.perf_counter()
        frame = frame.rename(columns=str)
        ignored = self.check_columns(list(frame.columns))
        if len(frame) == 0:
            raise InvalidInput("No rows to predict: the input has a header but no data rows.")
        prepared = prepare_frame(frame, self.features, strict=True)
        feed = {}
        for spec in self.inputs:
            values = prepared[spec["column"]]
            if spec["type"] == "float32":
                feed[spec["name"]] = values.to_numpy(dtype=np.float32).reshape(-1, 1)
            else:
                feed[spec["name"]] = values.to_numpy(dtype=object).reshape(-1, 1)
        results = self.session.run(None, feed)
        if self.classes is None:
            labels = [float(v) for v in np.asarray(results[0]).reshape(-1)]
            return Predictions(labels, None, ignored, time.perf_counter() - started)
        proba = np.asarray(results[1], dtype="float64")
        classes = np.asarray(self.classes, dtype=object)
        labels = classes[proba.argmax(axis=1)].tolist()
        table = pd.DataFrame(proba, columns=[str(c) for c in self.classes])
        return Predictions(labels, table, ignored, time.perf_counter() - started)
