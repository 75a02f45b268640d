"""Weighted ensembles, chosen greedily from the candidates' predictions.

Ensemble selection (Caruana et al., "Ensemble Selection from Libraries of Models", ICML 2004):
start from nothing and, round after round, add (with replacement) the model whose addition
makes the running average score best; a model added k times gets weight k. The weights come
from predictions the models did not train on: out-of-fold predictions on small data, validation
rows on larger data (never the held-out rows that are reported). No model is fitted here:
the members are already trained, so a blend costs no training time.

Pure numpy: the predictions and a scoring function come in, integer weights go out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

BLEND_ROUNDS = 25
"""Rounds of greedy selection: weights are multiples of 1/25 at finest."""


@dataclass
class BlendMember:
    """One model that may go into a blend."""

    key: str  # unique name inside the ensemble: letters, digits and underscores
    label: str  # for people, e.g. "XGBoost found by the search"
    estimator: Any  # unfitted, with its configuration: what the refit trains
    selection: np.ndarray  # predictions the weights are chosen on (out-of-fold or validation)
    holdout: np.ndarray  # predictions on the held-out rows, by the model fitted on the rest
    fit_seconds: float
    predict: Callable[[Any], np.ndarray]  # the fitted model on raw rows: probabilities or values
    temperature: float | None = None  # set when its probabilities are temperature-scaled
    fitted: Any = None  # the model trained on the training rows (preprocessed inputs)
    size: int = 0  # its trees' size (`sizes.py`)


@dataclass
class Blend:
    """Members with integer weights (only members with a weight above zero)."""

    members: list[BlendMember]
    weights: list[int]
    selection_score: float

    @property
    def fit_seconds(self) -> float:
        return sum(m.fit_seconds for m in self.members)

    def describe(self) -> str:
        if len(self.members) == 1:
            return self.members[0].label
        total = sum(self.weights)
        parts = [
            f"{m.label} {w / total:.0%}" for m, w in zip(self.members, self.weights, strict=True)
        ]
        return "weighted average of " + ", ".join(parts)

    def holdout(self) -> np.ndarray:
        return average([m.holdout for m in self.members], self.weights)

    def predict(self, X: Any) -> np.ndarray:
        return average([m.predict(X) for m in self.members], self.weights)


def average(predictions: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted mean of same-shaped prediction arrays."""
    w = np.asarray(weights, dtype="float64")
    stacked = np.stack([np.asarray(p, dtype="float64") for p in predictions])
    return np.tensordot(w / w.sum(), stacked, axes=1)


def select_blend(
    members: Sequence[BlendMember],
    score: Callable[[np.ndarray], float],
    *,
    greater_is_better: bool,
    rounds: int = BLEND_ROUNDS,
    allow_single: bool = False,
    max_members: int | None = None,
    max_size: int | None = None,
) -> Blend | None:
    """Greedy ensemble selection over `members`' selection predictions.

    Args:
        score: the metric of a prediction array against the true values.

    Returns:
        The best blend found (the best prefix of the greedy rounds), or None when it is a
        single model (then a blend brings nothing over that model alone) unless
        `allow_single`.

    With `max_members`, once that many different members are in, later rounds choose only
    among them (a blend's cost to predict and export grows with its members); with
    `max_size`, a member joins only if the members' sizes together stay within it (the first
    member always may).
    """
    if not members or (len(members) < 2 and not allow_single):
        return None
    sign = 1.0 if greater_is_better else -1.0
    counts = np.zeros(len(members), dtype=int)
    total = np.zeros_like(np.asarray(members[0].selection, dtype="float64"))
    best_counts: np.ndarray | None = None
    best_value = -np.inf
    for step in range(1, rounds + 1):
        allowed = _may_join(members, counts, max_members, max_size)
        values = [
            sign * score((total + m.selection) / step) if allowed[i] else -np.inf
            for i, m in enumerate(members)
        ]
        pick = int(np.argmax(values))  # ties go to the earlier (higher-priority) member
        counts[pick] += 1
        total = total + members[pick].selection
        if values[pick] > best_value + 1e-12:
            best_value, best_counts = values[pick], counts.copy()
    assert best_counts is not None
    used = [i for i in range(len(members)) if best_counts[i] > 0]
    if len(used) < 2 and not allow_single:
        return None
    return Blend(
        members=[members[i] for i in used],
        weights=[int(best_counts[i]) for i in used],
        selection_score=sign * best_value,
    )


def _may_join(
    members: Sequence[BlendMember],
    counts: np.ndarray,
    max_members: int | None,
    max_size: int | None,
) -> list[bool]:
    """Which members the next round may pick: those in already, and new ones while the
    blend has room for another member of their size."""
    inside = counts > 0
    if max_members is not None and int(inside.sum()) >= max_members:
        return list(inside)  # full: only the members already in
    if max_size is None or not inside.any():
        return [True] * len(members)
    used = sum(m.size for m, i in zip(members, inside, strict=True) if i)
    return [bool(i) or used + m.size <= max_size for m, i in zip(members, inside, strict=True)]
