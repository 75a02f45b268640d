"""Everything the command line shows comes from cli/display.py, and user text stays text."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from rich.console import Console

import tabpilot.cli
from tabpilot.cli import display

CLI_DIR = Path(tabpilot.cli.__file__).parent


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_display_module_uses_rich() -> None:
    users = sorted(
        path.name
        for path in CLI_DIR.glob("*.py")
        if any(name.split(".")[0] == "rich" for name in _imports(path))
    )
    assert users == ["display.py"]


def test_a_line_is_plain_text_with_our_styles(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Console(record=True, width=200, highlight=False)
    monkeypatch.setattr(display, "console", recorder)
    display.say(("Problem:", "bold"), " target price[usd] [/x] :smile: [bold]y[/bold]")
    assert recorder.export_text() == "Problem: target price[usd] [/x] :smile: [bold]y[/bold]\n"
