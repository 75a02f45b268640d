"""How numbers and shares are written for people, in one place: the reports, the data-quality
warnings and the description of preprocessing all write them the same way.

Plain Python (no numpy needed): the API uses it through the warnings.
"""

from __future__ import annotations

import math
from typing import Any


def format_number(value: Any, digits: int = 4) -> str:
    """A number as a person reads it: thousands separators, a few significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool) or type(value).__name__ in ("bool", "bool_"):  # numpy too
        return "yes" if value else "no"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(x):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x.is_integer() and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 1e15:
        return f"{x:.3g}"
    if abs(x) >= 1e5:
        return f"{x:,.0f}"
    if abs(x) >= 10 ** (digits - 1):
        return f"{x:,.1f}"
    if abs(x) < 1e-4:
        return f"{x:.2e}"
    return f"{x:.{digits}g}"


def format_share(x: float) -> str:
    """A share as a percentage that never rounds a few rows down to 0.0%."""
    return "<0.1%" if 0 < x < 0.001 else f"{x:.1%}"


def about_seconds(seconds: float) -> str:
    """An estimated duration: "about 12 s", or "under 1 s" rather than a misleading "0 s"."""
    return "under 1 s" if seconds < 0.5 else f"about {seconds:.0f} s"
