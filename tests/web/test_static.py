"""Checks on the hand-written static files that no browser test would notice."""

from __future__ import annotations

import re
from pathlib import Path

import tabpilot.web

CSS = Path(tabpilot.web.__file__).parent / "static" / "css" / "app.css"


def _declarations(block: str) -> dict[str, str]:
    return dict(re.findall(r"(--[\w-]+|color-scheme):\s*([^;]+);", block))


def test_the_two_dark_palettes_are_the_same() -> None:
    css = CSS.read_text()
    system = re.search(r':root:not\(\[data-theme="light"\]\)\s*\{([^}]*)\}', css)
    chosen = re.search(r':root\[data-theme="dark"\]\s*\{([^}]*)\}', css)
    assert system and chosen, "app.css lost one of its dark palettes"
    assert _declarations(system.group(1)) == _declarations(chosen.group(1))
    assert len(_declarations(chosen.group(1))) > 5
