"""Compare: 2 to 6 succeeded jobs side by side, from `services.compare` (the service of the
JSON twin `GET /api/compare`).

The page is fully described by its URL, `/compare?jobs=ID1,ID2`: the history's form sends
`jobs=ID1&jobs=ID2`, which is redirected to that one shareable form. Held-out metrics with the
best value per metric marked (the service decides, direction-aware), a bar chart per metric,
feature importance as grouped bars, and the configuration keys whose values differ. A wrong
selection (too few or too many ids, an unknown or unfinished job) is shown on the page in the
service's words.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup, escape

from tabpilot.api.deps import Ctx
from tabpilot.api.errors import ERROR_STATUS
from tabpilot.engine.choices import find_metric
from tabpilot.engine.reports.charts import format_tick, nice_ticks, render_bar_chart
from tabpilot.errors import TabpilotError
from tabpilot.services import compare as service
from tabpilot.web.access import PagePrincipal
from tabpilot.web.pages.history import format_metric
from tabpilot.web.render import format_when, render

router = APIRouter(include_in_schema=False)

TOP_FEATURES = 12
LETTERS = "ABCDEF"  # one per job, at most MAX_SIDE_BY_SIDE
# Configuration keys as a person reads them; others are shown as they are stored.
KEY_LABELS = {
    "dataset_id": "dataset",
    "chosen_estimator": "chosen model",
    "estimator_class": "estimator class",
    "time_budget": "time budget (s)",
    "problem_type": "problem type",
}


@dataclass(frozen=True)
class MetricRow:
    name: str
    label: str
    direction: str | None
    primary: bool
    cells: list[tuple[str, bool]]  # (shown value, best?) per job, in the jobs' order
    chart: Markup


def _metric_label(name: str | None) -> str:
    spec = find_metric(name) if name else None
    return spec.label if spec is not None else (name or "")


def _status_of(error: TabpilotError) -> int:
    return next(status for kind, status in ERROR_STATUS if isinstance(error, kind))


def _shown(value: Any) -> str:
    """A configuration value in words: lists joined, None as "automatic"."""
    if value is None or value == "" or value == []:
        return "automatic"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _metric_rows(result: dict[str, Any], ids: list[str], names: dict[str, str]) -> list[MetricRow]:
    rows = []
    for metric in result["metrics"]:
        spec = find_metric(metric["name"])
        label = spec.label if spec is not None else metric["name"]
        values = [metric["values"].get(i) for i in ids]
        shown = [format_metric(metric["name"], v) if v is not None else "–" for v in values]
        best = set(metric["best"])
        chart = render_bar_chart(
            [names[i] for i in ids],
            [v if v is not None else math.nan for v in values],
            title=f"{label} per job",
            value_labels=shown,
            highlight=[i in best for i in ids],
            width=420,
        )
        rows.append(
            MetricRow(
                name=metric["name"],
                label=label,
                direction=metric["direction"],
                primary=metric["primary"],
                cells=[(s, i in best) for s, i in zip(shown, ids, strict=True)],
                chart=chart,
            )
        )
    return rows


def render_grouped_bars(
    groups: list[str], series: list[str], values: list[list[float | None]], *, title: str
) -> Markup:
    """Horizontal grouped bars: one group per label in `groups`, one bar per series in it
    (coloured by the CSS classes s0, s1, ...); `values[g][s]`, None where a series has none."""
    finite = [v for row in values for v in row if v is not None and math.isfinite(v)]
    if not groups or not finite:
        return Markup('<p class="muted">Nothing to chart.</p>')
    width, gutter, bar_h, gap, top = 640, 150.0, 9, 10, 6
    lo, hi = min(min(finite), 0.0), max(max(finite), 0.0)
    hi = hi if hi > lo else lo + 1.0
    right = width - 60

    def x(v: float) -> float:
        return gutter + (v - lo) / (hi - lo) * (right - gutter)

    group_h = len(series) * bar_h + gap
    bottom = top + len(groups) * group_h
    body: list[str] = []
    for t in nice_ticks(lo, hi, 4):
        body.append(
            f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{bottom}"/>'
            f'<text class="tick" x="{x(t):.1f}" y="{bottom + 13}" text-anchor="middle">'
            f"{escape(format_tick(t))}</text>"
        )
    for g, label in enumerate(groups):
        y0 = top + g * group_h
        short = label if len(label) <= 24 else label[:23] + "…"
        body.append(
            f'<text class="tick" x="{gutter - 6:.1f}" y="{y0 + group_h / 2 + 1:.1f}" '
            f'text-anchor="end"><title>{escape(label)}</title>{escape(short)}</text>'
        )
        for s, name in enumerate(series):
            v = values[g][s]
            if v is None or not math.isfinite(v):
                continue
            a, b = sorted((x(0.0), x(v)))
            body.append(
                f'<rect class="bar s{s}" x="{a:.1f}" y="{y0 + s * bar_h}" '
                f'width="{max(b - a, 0.5):.1f}" height="{bar_h - 1}">'
                f"<title>{escape(label)}, {escape(name)}: {escape(format_tick(v))}</title></rect>"
            )
    body.append(
        f'<line class="axis" x1="{x(0.0):.1f}" x2="{x(0.0):.1f}" y1="{top}" y2="{bottom}"/>'
    )
    height = bottom + 22
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f"{''.join(body)}</svg>"
    )


def _importance(result: dict[str, Any], ids: list[str], names: dict[str, str]) -> Markup:
    rows = result["feature_importance"][:TOP_FEATURES]
    return render_grouped_bars(
        [str(r["feature"]) for r in rows],
        [names[i] for i in ids],
        [[r["values"].get(i) for i in ids] for r in rows],
        title=f"Feature importance, the {len(rows)} most important features, per job",
    )


def _differences(result: dict[str, Any], ids: list[str]) -> list[tuple[str, list[str]]]:
    return [
        (
            KEY_LABELS.get(d["key"], d["key"].replace("_", " ")),
            [_shown(d["values"].get(i)) for i in ids],
        )
        for d in result["differences"]
    ]


def _same(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(KEY_LABELS.get(k, k.replace("_", " ")), _shown(v)) for k, v in result["same"].items()]


def comparison_context(result: dict[str, Any]) -> dict[str, Any]:
    """What compare.html shows, from the service's comparison (no new numbers)."""
    ids = [j["id"] for j in result["jobs"]]
    names = {i: f"{LETTERS[n]} · {i}" for n, i in enumerate(ids)}
    return {
        "jobs": [
            {
                **j,
                "letter": LETTERS[n],
                "created": format_when(j["created_at"]),
                "metric_label": _metric_label(j["metric"]),
            }
            for n, j in enumerate(result["jobs"])
        ],
        "metric_rows": _metric_rows(result, ids, names),
        "importance_chart": _importance(result, ids, names),
        "has_importance": bool(result["feature_importance"]),
        "differences": _differences(result, ids),
        "same": _same(result),
        "notes": result["notes"],
    }


@router.get("/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    ctx: Ctx,
    principal: PagePrincipal,
    jobs: Annotated[list[str] | None, Query()] = None,
) -> Response:
    ids = service.parse_job_ids(jobs or [])
    if jobs and (len(jobs) > 1 or jobs[0] != ",".join(ids)):
        # One shareable form of the URL: jobs=ID1,ID2 (a form sends jobs=ID1&jobs=ID2).
        url = "/compare?jobs=" + quote(",".join(ids), safe=",")
        return RedirectResponse(url, status_code=303)
    context: dict[str, Any] = {"ids": ids, "max_jobs": service.MAX_SIDE_BY_SIDE, "error": None}
    if not jobs:
        return render(request, "compare.html", **context)
    try:
        result = service.compare_jobs(
            ctx, owner=principal.owner, job_ids=ids, max_jobs=service.MAX_SIDE_BY_SIDE
        )
    except TabpilotError as error:
        context["error"] = error.message
        return render(request, "compare.html", status=_status_of(error), **context)
    return render(request, "compare.html", **context, **comparison_context(result))
