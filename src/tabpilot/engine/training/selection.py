"""Choosing among the candidates by their selection scores (out-of-fold or validation rows,
never the held-out rows that are reported), with the decisions that explain the choice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tabpilot.engine.training.metrics import MetricSpec

if TYPE_CHECKING:
    from tabpilot.engine.training.candidates import Candidate


def choose_winner(scored: list[Candidate], metric: MetricSpec, decisions: list[str]) -> Candidate:
    """The candidate with the best selection score (the earlier one on a tie); `decisions`
    gets why, when it is not the search's winner or is the constant baseline."""
    by_name = {c.name: c for c in scored}
    best = scored[0]
    for cand in scored[1:]:
        if metric.better(cand.selection_score, best.selection_score):
            best = cand
    if best.cv_score is not None:
        where = "on out-of-fold predictions of the training rows"
    elif best.valid_score is not None:
        where = "on the validation rows"
    else:
        where = "on the held-out rows"
    winner = by_name.get("search")
    if winner is not None and best is not winner:
        decisions.append(
            f"The search's winner ({winner.description}) scored "
            f"{winner.selection_score:.4g} {metric.label} {where}, worse than "
            f"{best.description} ({best.selection_score:.4g}); the latter is used."
        )
    elif winner is None:
        decisions.append(
            f"{best.description[:1].upper()}{best.description[1:]} scored best "
            f"({best.selection_score:.4g} {metric.label} {where}) and is used."
        )
    if best.name == "baseline":
        decisions.append(
            "No model beat the constant baseline: the features may not predict the target."
        )
    return best
