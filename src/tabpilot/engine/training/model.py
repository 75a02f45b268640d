"""The trained model as one Python object: what `model.pkl` holds (trusted use only)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tabpilot.engine.data.inputs import FeatureSpec, prepare_frame
from tabpilot.engine.data.problem import ProblemType


class TabpilotModel:
    """A fitted sklearn Pipeline plus what it takes to speak the user's language.

    It takes the raw columns (as read from a CSV), and returns labels as they were in the
    data (text, integer codes, booleans) and probabilities keyed by label.
    """

    def __init__(
        self,
        *,
        pipeline: Any,
        features: list[FeatureSpec],
        problem_type: ProblemType,
        classes: list[Any] | None,
        target: str,
    ) -> None:
        self.pipeline = pipeline
        self.features = features
        self.problem_type = problem_type
        self.classes = classes
        self.target = target

    def _inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        missing = [f.name for f in self.features if f.name not in frame.columns]
        if missing:
            raise KeyError(f"missing columns: {', '.join(missing)}")
        return prepare_frame(frame, self.features, strict=True)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        raw = self.pipeline.predict(self._inputs(frame))
        if self.classes is None:
            return np.asarray(raw, dtype="float64")
        return np.asarray(self.classes, dtype=object)[np.asarray(raw, dtype=int)]

    def predict_proba(self, frame: pd.DataFrame) -> pd.DataFrame:
        if self.classes is None:
            raise TypeError("a regression model has no class probabilities")
        proba = self.pipeline.predict_proba(self._inputs(frame))
        return pd.DataFrame(proba, columns=[str(c) for c in self.classes], index=frame.index)
