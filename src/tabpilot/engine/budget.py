"""The automatic time budget: pure arithmetic, so the API can say what a job will get."""

from __future__ import annotations

# The range a chosen budget must lie in (seconds).
MIN_BUDGET, MAX_BUDGET = 5.0, 24 * 3600.0
# The automatic budget: AUTO_BASE seconds plus one per AUTO_CELLS_PER_SECOND cells, within
# [AUTO_BASE, MAX_AUTO_BUDGET].
AUTO_BASE = 30.0
AUTO_CELLS_PER_SECOND = 20_000
MAX_AUTO_BUDGET = 600.0


def auto_budget(n_rows: int, n_features: int) -> tuple[float, str]:
    """A time budget from the data size, and the sentence that explains it."""
    cells = n_rows * max(n_features, 1)
    budget = float(
        min(MAX_AUTO_BUDGET, max(AUTO_BASE, round(AUTO_BASE + cells / AUTO_CELLS_PER_SECOND)))
    )
    return budget, (
        f"chosen from the data size: {n_rows:,} rows x {n_features} features "
        f"-> {budget:.0f} s ({AUTO_BASE:.0f} s plus 1 s per {AUTO_CELLS_PER_SECOND:,} cells, "
        f"at most {MAX_AUTO_BUDGET:.0f} s)"
    )
