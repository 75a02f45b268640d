"""Jobs side by side: held-out metrics with the best marked, importance, configuration.

Everything comes from each job's model card (`ModelCard`: held-out metrics, feature
importance, what was chosen) and spec, so comparing never loads a model.
"""

from __future__ import annotations

import math
from typing import Any

from tabpilot.context import AppContext
from tabpilot.engine.card import ModelCard
from tabpilot.engine.choices import find_metric, metric_direction
from tabpilot.errors import Conflict, InvalidInput
from tabpilot.records import JobRecord, JobStatus, ModelRecord
from tabpilot.services import check_id

MAX_COMPARED = 20
MAX_SIDE_BY_SIDE = 6  # what fits side by side on a page

# Spec keys that explain a value rather than configure the run.
_EXPLANATORY_KEYS = frozenset({"time_budget_reason", "problem_type_reason", "metric_reason"})


def parse_job_ids(value: str | list[str]) -> list[str]:
    """Job ids from `a,b,c` (or a list of such strings), de-duplicated, in order."""
    parts = value if isinstance(value, list) else [value]
    ids = [p.strip() for part in parts for p in part.split(",") if p.strip()]
    return list(dict.fromkeys(ids))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def compare_jobs(
    ctx: AppContext, *, owner: str, job_ids: list[str], max_jobs: int = MAX_COMPARED
) -> dict[str, Any]:
    """Compare succeeded jobs (2 to `max_jobs`; the web page shows at most
    `MAX_SIDE_BY_SIDE` side by side).

    Returns a dict with:
        jobs: one summary per job (target, problem type, primary metric, chosen estimator).
        metrics: one row per held-out metric: `values` by job id, `direction` ("higher" or
            "lower" is better, None when unknown) and `best`, the job ids with the best value
            (ties share it; empty when fewer than two jobs have the metric).
        feature_importance: one row per feature, `values` by job id (None where a job did not
            use it), most important first.
        differences: configuration keys whose values differ, with `values` by job id.
        same: configuration keys with the value all jobs share.
        notes: caveats, e.g. jobs on different datasets.

    Raises:
        InvalidInput: fewer than two or more than `max_jobs` ids.
        NotFound: an id is unknown (for this owner).
        Conflict: a job has not succeeded (or has no model).
    """
    ids = [check_id("Job", i) for i in job_ids]
    if not 2 <= len(ids) <= max_jobs:
        raise InvalidInput(
            f"Give between 2 and {max_jobs} different job ids to compare "
            f"(as jobs=ID1,ID2), not {len(ids)}"
        )
    jobs = [ctx.metadata.get_job(i, owner=owner) for i in ids]
    unfinished = [j for j in jobs if j.status != JobStatus.SUCCEEDED or not j.model_id]
    if unfinished:
        shown = ", ".join(f"{j.id} ({j.status})" for j in unfinished)
        raise Conflict(
            f"Only succeeded jobs can be compared; these are not: {shown}",
            details={"jobs": {j.id: str(j.status) for j in unfinished}},
        )
    models = [ctx.metadata.get_model(str(j.model_id), owner=owner) for j in jobs]
    cards = [ModelCard.from_dict(m.card) for m in models]
    return {
        "jobs": [_summary(j, m, c) for j, m, c in zip(jobs, models, cards, strict=True)],
        "metrics": compare_metrics(jobs, cards),
        "feature_importance": compare_importance(jobs, cards),
        **compare_configuration(jobs, cards),
        "notes": _notes(jobs, cards),
    }


def _chosen(card: ModelCard) -> str | None:
    """What won, in words ("LightGBM found by the search"), else its short name."""
    return card.chosen.description or card.chosen.name or None


def _summary(job: JobRecord, model: ModelRecord, card: ModelCard) -> dict[str, Any]:
    return {
        "id": job.id,
        "dataset_id": job.dataset_id,
        "model_id": model.id,
        "target": card.target or job.spec.get("target"),
        "problem_type": card.problem_type or job.spec.get("problem_type"),
        "metric": card.metric.name or job.spec.get("metric"),
        "chosen_estimator": _chosen(card),
        "tags": list(job.tags),
        "created_at": job.created_at,
    }


def compare_metrics(jobs: list[JobRecord], cards: list[ModelCard]) -> list[dict[str, Any]]:
    holdouts = [_holdout(c) for c in cards]
    names: list[str] = []
    for holdout in holdouts:
        names.extend(k for k, v in holdout.items() if _number(v) is not None and k not in names)
    primary = {c.metric.name for c in cards}
    rows = []
    for name in names:
        values = {j.id: _number(h.get(name)) for j, h in zip(jobs, holdouts, strict=True)}
        direction = metric_direction(name)
        present = {k: v for k, v in values.items() if v is not None}
        best: list[str] = []
        if direction is not None and len(present) >= 2:
            target = max(present.values()) if direction == "higher" else min(present.values())
            best = [k for k, v in present.items() if math.isclose(v, target, rel_tol=1e-12)]
        rows.append(
            {
                "name": name,
                "direction": direction,
                "primary": name in primary,
                "values": values,
                "best": best,
            }
        )
    rows.sort(key=lambda r: not r["primary"])  # the optimised metric first; stable otherwise
    return rows


def _holdout(card: ModelCard) -> dict[str, Any]:
    """The card's held-out metrics under the metric table's names (older cards used others)."""
    out: dict[str, Any] = {}
    for key, value in card.holdout.items():
        spec = find_metric(key)
        out[spec.name if spec is not None else key] = value
    return out


def compare_importance(jobs: list[JobRecord], cards: list[ModelCard]) -> list[dict[str, Any]]:
    by_feature: dict[str, dict[str, float | None]] = {}
    for job, card in zip(jobs, cards, strict=True):
        for entry in card.feature_importance:
            feature = str(entry.get("feature"))
            row = by_feature.setdefault(feature, {j.id: None for j in jobs})
            row[job.id] = _number(entry.get("importance"))

    def weight(values: dict[str, float | None]) -> float:
        return max((abs(x) for x in values.values() if x is not None), default=0.0)

    ordered = sorted(by_feature.items(), key=lambda item: -weight(item[1]))
    return [{"feature": f, "values": v} for f, v in ordered]


def _configuration(job: JobRecord, card: ModelCard) -> dict[str, Any]:
    config = {k: v for k, v in job.spec.items() if k not in _EXPLANATORY_KEYS}
    config["dataset_id"] = job.dataset_id
    config["chosen_estimator"] = _chosen(card)
    config["estimator_class"] = card.estimator.get("class")
    return config


def compare_configuration(jobs: list[JobRecord], cards: list[ModelCard]) -> dict[str, Any]:
    configs = [_configuration(j, c) for j, c in zip(jobs, cards, strict=True)]
    keys: list[str] = []
    for config in configs:
        keys.extend(k for k in config if k not in keys)
    differences, same = [], {}
    for key in keys:
        values = [c.get(key) for c in configs]
        if all(v == values[0] for v in values):
            same[key] = values[0]
        else:
            differences.append(
                {"key": key, "values": {j.id: v for j, v in zip(jobs, values, strict=True)}}
            )
    return {"differences": differences, "same": same}


def _notes(jobs: list[JobRecord], cards: list[ModelCard]) -> list[str]:
    notes = []
    if len({j.dataset_id for j in jobs}) > 1:
        notes.append(
            "The jobs were trained on different datasets; their held-out rows differ, so "
            "compare their metrics with care."
        )
    elif len({j.spec.get("seed") for j in jobs}) > 1:
        notes.append(
            "The jobs used different seeds, so each was evaluated on different held-out rows."
        )
    if len({c.target for c in cards}) > 1:
        notes.append("The jobs predict different targets; their metrics are not comparable.")
    if len({c.problem_type for c in cards}) > 1:
        notes.append("The jobs solve different problem types.")
    return notes
