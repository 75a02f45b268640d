"""The one time budget of a training run, and how its steps share it.

The clock starts before the file is read; every step asks it what is left. The arithmetic
lives here so that the shares and reserves are read in one place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

# Share of the time left after preparation that goes to the search; the rest pays for
# evaluation, importance, the refit on all rows, export and reports, which cost little on
# small data and more on large (above all the refit on all rows, which is worth more than
# the end of the search): from SEARCH_SHARE_SMALL at SMALL_ROWS training rows down to
# SEARCH_SHARE_LARGE at LARGE_ROWS.
SEARCH_SHARE_SMALL, SEARCH_SHARE_LARGE = 0.8, 0.6
SMALL_ROWS, LARGE_ROWS = 2_000, 20_000
# The refit on all rows happens if this share of the budget is still left after it, for the
# export and the reports.
REFIT_RESERVE = 0.06
# Permutation importance gets at least this long (a repeat or two on small data).
MIN_IMPORTANCE_SECONDS = 0.5
# Optional candidates are only fitted while they can finish before the search's share of
# the budget plus this share of what is left; the rest pays for importance, the refit,
# export and reports.
EVALUATION_SHARE = 0.5


def refit_cost(fit_seconds: float, test_size: float) -> float:
    """Expected seconds to refit on all rows: one fit on 1/(1-test_size) as many rows."""
    return fit_seconds * (1 + test_size) * 1.2 + 0.2


@dataclass
class Clock:
    """Seconds since `started` (a `time.perf_counter()` reading) against `budget`."""

    started: float
    budget: float
    search_share: float = field(default=SEARCH_SHARE_LARGE)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def left(self) -> float:
        return self.budget - self.elapsed()

    def search_seconds(self, n_train: int) -> float:
        """Seconds for the search on `n_train` training rows (and remember its share)."""
        time_left = self.left()
        size = min(1.0, max(0.0, (n_train - SMALL_ROWS) / (LARGE_ROWS - SMALL_ROWS)))
        share = SEARCH_SHARE_SMALL - (SEARCH_SHARE_SMALL - SEARCH_SHARE_LARGE) * size
        self.search_share = share
        return max(1.0, time_left * share - 1.0)

    def too_late_for(self, expected: float) -> bool:
        """Whether a fit of `expected` seconds would end after the evaluation's deadline."""
        deadline = self.search_share + (1 - self.search_share) * EVALUATION_SHARE
        return self.elapsed() + expected > self.budget * deadline

    def importance_limit(self, refit_cost: float = 0.0) -> float:
        """Seconds for permutation importance; with `refit_cost`, leaving time for a refit
        that must happen (a chosen blend's)."""
        limit = min(0.08 * self.budget, self.left() * 0.25)
        if refit_cost:
            limit = min(limit, self.left() - refit_cost - REFIT_RESERVE * self.budget)
        return max(MIN_IMPORTANCE_SECONDS, limit)

    def refit_fits(self, refit_cost: float) -> bool:
        """Whether a refit of `refit_cost` seconds leaves the reserve for export and reports."""
        return self.left() - refit_cost > REFIT_RESERVE * self.budget

    def blend_refit_fits(self, refit_cost: float) -> bool:
        """Whether a blend, if chosen, still has time for importance and its refit (a blend
        must be refitted: it exists only as its members until then)."""
        spare = self.left() - MIN_IMPORTANCE_SECONDS - refit_cost
        return spare >= REFIT_RESERVE * self.budget
