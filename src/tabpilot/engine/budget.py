"""The automatic time budget: pure arithmetic, so the API can say what a job will get."""

from __future__ import annotations

MIN_BUDGET, MAX_BUDGET = 5.0, 24 * 3600.0


def auto_budget(n_rows: int, n_features: int) -> tuple[float, str]:
    """A time budget from the data size, and the sentence that explains it."""
    cells = n_rows * max(n_features, 1)
    budget = float(min(600, max(30, round(30 + cells / 20_000))))
    return budget, (
        f"chosen from the data size: {n_rows:,} rows x {n_features} features "
        f"-> {budget:.0f} s (30 s plus 1 s per 20,000 cells, at most 600 s)"
    )
