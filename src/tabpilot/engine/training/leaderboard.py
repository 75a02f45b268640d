"""The leaderboard: the search's best configuration of each estimator kind (best first),
then every compared candidate in the order compared."""

from __future__ import annotations

from typing import Any

from tabpilot.engine.choices import ESTIMATORS
from tabpilot.engine.serialize import to_jsonable
from tabpilot.engine.training.candidates import Candidate
from tabpilot.engine.training.metrics import MetricSpec
from tabpilot.engine.training.search import SearchOutcome


def build_leaderboard(
    search: SearchOutcome | None, scored: list[Candidate], metric: MetricSpec
) -> list[dict[str, Any]]:
    """Rows for the model card and the reports: searched kinds have "validation_score",
        candidates have "candidate": True, their held-out score and the score they were chosen by
    (out-of-fold "cv_score" on small data, "valid_score" on the validation rows above it)."""
    rows = []
    for name, cfg in (search.best_configs if search is not None else {}).items():
        rows.append(
            {
                "estimator": name,
                "label": ESTIMATORS[name],
                "validation_score": search.best_scores.get(name),
                "trials": search.trials.get(name, 0),
                "search_seconds": round(search.seconds.get(name, 0.0), 2),
                "config": to_jsonable(cfg),
                "best": name == search.best_estimator,
            }
        )
    rows.sort(
        key=lambda r: (
            (r["validation_score"] is None, -(r["validation_score"] or 0.0))
            if metric.greater_is_better
            else (r["validation_score"] is None, r["validation_score"] or 0.0)
        )
    )
    for cand in scored:
        rows.append(
            {
                "estimator": cand.name,
                "label": cand.description,
                "holdout_score": cand.holdout_score,
                "cv_score": cand.cv_score,
                "valid_score": cand.valid_score,
                "source": cand.source,
                "fit_seconds": round(cand.fit_seconds, 2),
                "candidate": True,
            }
        )
    return rows
