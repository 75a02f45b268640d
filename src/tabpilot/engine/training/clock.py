"""The one time budget of a training run, and the plan that shares it.

The clock starts before the file is read; every step asks it what is left. The plan is made
up front, when the data is prepared, so the strong result is the one that always happens:

1. `END_SHARE` of the budget (at least `MIN_END_SECONDS`) is kept for what follows the
   training: the blend, permutation importance, export and reports;
2. the portfolio of strong defaults trains first, within `PORTFOLIO_SHARE` of the rest and
   never into the search's floor (`SEARCH_MIN_SHARE`): each fit is started only if its
   expected time, corrected by how fast the fits so far ran, ends inside that share;
3. the refit on all rows of what the portfolio's blend holds is reserved next (measured from
   the portfolio's own fits; `refit.py` refits the chosen model member by member in it);
4. FLAML's search gets the time that is left; the blend costs no training (its members are
   trained) and always happens.

The arithmetic lives here so that the shares and reserves are read in one place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

END_SHARE, MIN_END_SECONDS = 0.2, 1.5
PORTFOLIO_SHARE = 0.6
# A fit expected to take at most CHEAP_SECONDS or CHEAP_SHARE of the budget (a linear model)
# is always made while the training time left is five times as long: it costs nothing that
# matters, and it is often what a blend of trees lacks.
CHEAP_SECONDS, CHEAP_SHARE, CHEAP_SHARE_OF_LEFT = 0.5, 0.02, 0.2
# The refit on all rows may take at most this share of the training time.
MAX_REFIT_SHARE = 0.3
# On small data, this share of the search's window bags its best configurations.
SEARCH_JOIN_SHARE = 0.15
# The search gets at least this share of the training time planned at the start (before the
# refit's reserve, which then may not be met: on tiny budgets a search beats a refit).
SEARCH_MIN_SHARE = 0.25
# On wide data (`portfolio.WIDE_COLS`) each search trial is slow and few end, and the refit on
# all rows is worth more: the search's floor is lower and the refit may reserve more of the
# time. On three wide synthetic tables at 60 s, 14-16 s of search found nothing near the
# portfolio's models (ROC AUC 0.918 against 0.97; log loss 1.107 against 0.69), while
# CatBoost's refit on 25% more rows (about 10 s, past the 30% cap) was worth 0.013 to
# 0.017 AUC (runs with and without it).
# (Giving the portfolio 85% of the time instead of 60% left no time for that refit.)
WIDE_SEARCH_MIN_SHARE, WIDE_MAX_REFIT_SHARE = 0.1, 0.7
# Below this many seconds FLAML's search is not started (one trial would not end in time).
MIN_SEARCH_SECONDS = 0.5
# Permutation importance gets at least this long (a repeat or two on small data).
MIN_IMPORTANCE_SECONDS = 0.5
# The refit on all rows (each part of it) is made only where this share of the budget (at
# least MIN_EXPORT_SECONDS) is still left after it, for importance, the export (ONNX
# conversion of every member) and the reports.
REFIT_RESERVE, MIN_EXPORT_SECONDS = 0.12, 1.0


def refit_cost(fit_seconds: float, test_size: float) -> float:
    """Expected seconds to refit on all rows: one fit on 1/(1-test_size) as many rows."""
    return fit_seconds * (1 + test_size) * 1.2 + 0.2


@dataclass
class Clock:
    """Seconds since `started` (a `time.perf_counter()` reading) against `budget`."""

    started: float
    budget: float
    portfolio_deadline: float = 0.0  # seconds since `started`
    planned_training: float = 0.0  # training seconds when the plan was made
    refit_reserve: float = 0.0
    search_share: float = SEARCH_MIN_SHARE
    refit_share: float = MAX_REFIT_SHARE
    # Measured / expected seconds of the fits so far (the machine's speed, contention).
    slowdown: float = 1.0
    _expected: float = field(default=0.0, repr=False)
    _measured: float = field(default=0.0, repr=False)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.budget - self.elapsed()

    def end_reserve(self) -> float:
        """Seconds kept for importance, export and reports."""
        return max(MIN_END_SECONDS, END_SHARE * self.budget)

    def training_seconds(self) -> float:
        """Seconds left for training (portfolio, search, refit)."""
        return max(0.0, self.left() - self.end_reserve())

    def plan_portfolio(self, *, wide: bool = False) -> float:
        """Start the plan: the portfolio's deadline (seconds since start); on `wide` data the
        search's floor is lower and the refit may reserve more."""
        if wide:
            self.search_share, self.refit_share = WIDE_SEARCH_MIN_SHARE, WIDE_MAX_REFIT_SHARE
        self.planned_training = self.training_seconds()
        self.portfolio_deadline = self.elapsed() + self.planned_training * PORTFOLIO_SHARE
        return self.portfolio_deadline

    def expected(self, seconds: float) -> float:
        """`seconds` of a planned fit, corrected by how the fits so far ran."""
        return seconds * self.slowdown

    def record_fit(self, expected: float, measured: float) -> None:
        """Learn the machine's speed from a fit expected to take `expected` seconds."""
        if expected <= 0:
            return
        self._expected += expected
        self._measured += measured
        self.slowdown = min(5.0, max(0.5, self._measured / max(self._expected, 1e-3)))

    def portfolio_fits(self, expected: float, *, first: bool) -> bool:
        """Whether a portfolio fit of `expected` (corrected) seconds ends in its share; the
        first one is always made (`first_limit` bounds it)."""
        if first:
            return True  # without it there may be nothing but the search: it stops in time
        if expected <= max(CHEAP_SECONDS, CHEAP_SHARE * self.budget):
            return expected <= self.training_seconds() * CHEAP_SHARE_OF_LEFT
        ends = self.elapsed() + expected
        return ends <= self.portfolio_deadline and expected <= (
            self.training_seconds() - self.search_floor()
        )

    def first_limit(self, expected: float) -> float:
        """Seconds the portfolio's first fit may take: its share, or twice its expected time
        when longer, within half the training time left (boosted trees stop early there)."""
        share = self.portfolio_deadline - self.elapsed()
        room = min(0.5 * self.training_seconds(), self.training_seconds() - self.search_floor())
        return max(0.3, min(max(share, 2 * expected), room))

    def search_floor(self) -> float:
        """The search's least seconds: its share (SEARCH_MIN_SHARE, less on wide data) of the
        planned training time."""
        return self.search_share * self.planned_training

    def reserve_refit(self, cost: float) -> float:
        """Reserve the refit's `cost` seconds (at most its share, MAX_REFIT_SHARE but more on
        wide data, of the training time)."""
        self.refit_reserve = min(cost, self.refit_share * self.training_seconds())
        return self.refit_reserve

    def search_window(self) -> float:
        """Seconds for the search and the joining of its winners: what the refit's reserve
        leaves, and at least SEARCH_MIN_SHARE of the planned training time (within the
        training time left)."""
        window = self.training_seconds() - self.refit_reserve
        floor = min(self.search_floor(), self.training_seconds())
        return max(0.0, window, floor)

    def export_reserve(self) -> float:
        """Seconds kept after the refit for importance, the export and the reports."""
        return max(MIN_EXPORT_SECONDS, REFIT_RESERVE * self.budget)

    def export_window(self) -> float:
        """Seconds the export of the chosen model can count on, asked when choosing it: the
        export reserve plus the training time that the refit's reserve does not need (on
        small data the search often ends early and leaves plenty), and at least the end
        reserve (the refit gives up what a larger export needs, `refit.py`)."""
        spare = max(0.0, self.training_seconds() - self.refit_reserve)
        return max(self.end_reserve(), self.export_reserve() + spare)

    def importance_limit(self) -> float:
        """Seconds for permutation importance (after the refit), leaving the export's."""
        limit = min(0.05 * self.budget, self.left() - self.export_reserve())
        return max(MIN_IMPORTANCE_SECONDS, limit)

    def refit_seconds(self) -> float:
        """Seconds the refit may take and leave the reserve for export and reports."""
        return self.left() - self.export_reserve()
