"""What both reports share: the Jinja2 environment, guarded sections, the page shell.

A report is a list of sections. Each section is computed and rendered on its own, inside a
guard: if it fails, it becomes a short note saying why, and the rest of the report stands.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from tabpilot.engine.reports.charts import format_number

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class Section:
    id: str
    title: str
    html: Markup
    error: str | None = None
    seconds: float = 0.0


def _pct(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    x = float(value) * 100
    if 0 < x < 10 ** (-digits):
        return f"<{10 ** (-digits):g}%"
    return f"{x:.{digits}f}%"


def _bytes(value: Any) -> str:
    x = float(value)
    for unit in ("B", "KB", "MB", "GB"):
        if x < 1024 or unit == "GB":
            return f"{x:,.0f} {unit}" if unit == "B" else f"{x:,.1f} {unit}"
        x /= 1024
    return f"{x:.1f} TB"


def _seconds(value: Any) -> str:
    if value is None:
        return "–"
    x = float(value)
    if x < 1:
        return f"{x * 1000:.0f} ms"
    if x < 120:
        return f"{x:.1f} s"
    return f"{x / 60:.1f} min"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["pct"] = _pct
    env.filters["bytes"] = _bytes
    env.filters["secs"] = _seconds
    return env


def macro(template: str, name: str) -> Callable[..., Markup]:
    """A macro of a template, callable from Python (it returns escaped Markup)."""
    return getattr(environment().get_template(template).module, name)


def build_section(section_id: str, title: str, build: Callable[[], Markup | str]) -> Section:
    """Run one section's builder; a failure becomes the section's stated reason."""
    started = time.perf_counter()
    try:
        html = Markup(build())
        error = None
    except Exception as exc:
        log.warning("report section %s failed", section_id, exc_info=True)
        html = Markup("")
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return Section(section_id, title, html, error, time.perf_counter() - started)


def render_page(
    *, kind: str, title: str, subtitle: str, sections: list[Section], notes: list[str]
) -> str:
    """The complete, self-contained HTML document."""
    return (
        environment()
        .get_template("page.html.j2")
        .render(
            kind=kind,
            title=title,
            subtitle=subtitle,
            sections=sections,
            notes=notes,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        )
    )


def render_failure_page(*, kind: str, title: str, reason: str) -> str:
    """The page written when a whole report fails; it still says why."""
    section = Section("error", "Report", Markup(""), reason)
    try:
        return render_page(kind=kind, title=title, subtitle="", sections=[section], notes=[])
    except Exception:  # the shell itself failed: fall back to the plainest page
        from markupsafe import escape

        return (
            '<!DOCTYPE html><html lang="en"><meta charset="utf-8"><title>'
            f"{escape(title)}</title><h1>{escape(title)}</h1><p>This report could not be "
            f"computed: {escape(reason)}</p></html>"
        )
