"""The final model: the chosen one refitted on every usable row, held-out rows included.

What is evaluated learned from the training rows only (on larger data 64% of the rows, less
the slice each boosted model stops on; on small data each fold model 80% of the training
rows). The shipped model then learns from all of them: on small data as a fold average drawn
anew over every row, on larger data as the same configuration fitted on every row (each
early-stopped model stopping on a slice of its own). The figures reported stay those of the
model as evaluated, on rows it never saw.

A blend is refitted member by member, heaviest weight first, each in its share of the time
reserved for the refit (`clock.py`), less the time the export will need to convert its trees
(`sizes.export_seconds`); a member whose refit does not fit in what is left is kept as
trained, and the decisions say which. The weights (and temperatures) stay those chosen on the
selection rows. Every member takes the preprocessor as fitted on the training rows, so
refitted and kept members read the same inputs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sklearn.base import clone
from sklearn.pipeline import Pipeline

from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.training.candidates import Candidate
from tabpilot.engine.training.clock import Clock, refit_cost
from tabpilot.engine.training.estimators import fitted_ensemble
from tabpilot.engine.training.holdout import Split
from tabpilot.engine.training.scoring import with_time_limit
from tabpilot.engine.training.sizes import export_seconds
from tabpilot.engine.wording import about_seconds

# A member's refit may run this many times its expected seconds when time is left over
# (early stopping on more rows can take more rounds).
STRETCH = 2.0


@dataclass(eq=False)
class _Part:
    """One model to refit: the chosen model, or one member of the chosen blend."""

    label: str
    key: str
    estimator: Any  # unfitted, with its configuration
    fitted: Any  # as trained on the training rows
    cost: float  # expected seconds of its refit on all rows
    weight: int = 1
    note: str = ""  # how its refit differs from its training, for the decisions


@dataclass
class RefitOutcome:
    """The shipped model and which parts of it learned from every row."""

    pipeline: Any  # preprocessor + model
    refitted: list[str] = field(default_factory=list)  # labels of the parts refitted
    kept: list[str] = field(default_factory=list)  # labels of the parts kept as trained

    @property
    def any(self) -> bool:
        return bool(self.refitted)


def _parts(chosen: Candidate, test_size: float) -> list[_Part]:
    """What the refit trains: each member of a blend, else the chosen model itself."""
    blend = chosen.blend
    if blend is not None and len(blend.members) > 1:
        return [
            _Part(m.label, m.key, m.estimator, m.fitted, refit_cost(m.fit_seconds, test_size), w)
            for m, w in zip(blend.members, blend.weights, strict=True)
        ]
    cost = refit_cost(chosen.fit_seconds, test_size)
    return [_Part(chosen.description, chosen.name, chosen.estimator, chosen.model, cost)]


def unfolded(estimator: Any) -> Any:
    """A fresh copy of `estimator` whose fold averages draw new folds (theirs were the training
    rows'; a refit on all rows draws its own)."""
    params = estimator.get_params(deep=True)
    keys = [k for k, v in params.items() if (k == "folds" or k.endswith("__folds")) and v]
    return clone(estimator).set_params(**dict.fromkeys(keys)) if keys else clone(estimator)


def _plan(parts: list[_Part], seconds: float) -> list[_Part]:
    """The parts whose refits fit in `seconds`, heaviest weight first (then cheapest). A seed
    average that does not fit whole is refitted with as many of its seeds as fit (at least
    one): one net on every row beats several on fewer rows."""
    chosen, left = [], seconds
    for part in sorted(parts, key=lambda p: (-p.weight, p.cost)):
        if part.cost > left:
            part = _fewer_seeds(part, left)
        if part.cost <= left:
            chosen.append(part)
            left -= part.cost
    return chosen


def _fewer_seeds(part: _Part, seconds: float) -> _Part:
    """`part` with as many seeds as `seconds` refit, if it is a seed average and one fits."""
    params = part.estimator.get_params(deep=True)
    # The seed average itself, or inside a temperature scaling or a fold average.
    keys = [k for k in params if k == "n_seeds" or k.endswith("__n_seeds")]
    if len(keys) != 1 or params[keys[0]] < 2:
        return part
    n_seeds = params[keys[0]]
    per_seed = part.cost / n_seeds
    seeds = min(n_seeds - 1, int(seconds // max(per_seed, 1e-9)))
    if seeds < 1:
        return part
    note = (
        f"is refitted on all rows with {seeds} of its {n_seeds} seeds: the refit of all "
        f"{n_seeds} ({about_seconds(part.cost)}) did not fit in the time left"
    )
    fewer = clone(part.estimator).set_params(**{keys[0]: seeds})
    return _Part(part.label, part.key, fewer, part.fitted, per_seed * seeds, part.weight, note)


def refit_chosen(
    chosen: Candidate,
    split: Split,
    *,
    problem: ProblemType,
    n_classes: int,
    clock: Clock,
    test_size: float,
    decisions: list[str],
    emit: Callable[..., None],
) -> RefitOutcome:
    """The chosen model refitted on all rows, as far as the time left allows."""
    if chosen.source == "baseline" or chosen.estimator is None:
        return RefitOutcome(chosen.pipeline)
    parts = _parts(chosen, test_size)
    # The export converts the refitted trees after this, and the refit gives that time up:
    # the export reserve is then left for importance and the reports. `size` was counted when
    # the model joined the pool (a blend's: its members').
    given_up = export_seconds(chosen.size)

    def seconds_left() -> float:
        return clock.refit_seconds() - given_up

    planned = _plan(parts, seconds_left())
    kept = [p for p in parts if p.key not in {q.key for q in planned}]

    def what(part: _Part) -> str:
        return "The model" if len(parts) == 1 else f"Blend member {part.label}"

    for part in kept:
        decisions.append(
            f"{what(part)} was not refitted on all rows: its refit "
            f"({about_seconds(part.cost)}) did not fit in the time left; it is used as trained "
            "on the training rows."
        )
    decisions.extend(f"{what(p)} {p.note}." for p in planned if p.note)
    if not planned:
        return RefitOutcome(chosen.pipeline, kept=[p.label for p in kept])
    emit("refitting", "refitting the chosen model on all rows")
    Xt = split.pre.transform(split.prepared)
    models: dict[str, Any] = {p.key: p.fitted for p in kept}
    for i, part in enumerate(planned):
        # The time left is shared by the refits still to come, in proportion to their cost.
        still = sum(p.cost for p in planned[i:])
        share = seconds_left() * part.cost / max(still, 1e-9)
        limit = max(0.2, min(share, STRETCH * part.cost))
        estimator = with_time_limit(unfolded(part.estimator), limit)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            models[part.key] = estimator.fit(Xt, split.y)
    if len(parts) == 1:
        model = models[parts[0].key]
    else:
        model = fitted_ensemble(
            [(p.key, clone(p.estimator), models[p.key]) for p in parts],
            problem,
            weights=[p.weight for p in parts],
            n_classes=n_classes,
        )
    return RefitOutcome(
        Pipeline([("pre", split.pre), ("model", model)]),
        refitted=[p.label for p in planned],
        kept=[p.label for p in kept],
    )
