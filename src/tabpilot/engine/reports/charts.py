"""Hand-written inline SVG charts: bars, histograms, lines, scatter, heatmaps, beeswarms.

No plotting library and no script: every chart is a string of SVG that the page embeds, so a
report opens from disk with no network and prints as it shows. Colours come from CSS classes
that the page defines for light and dark themes. Every label is HTML-escaped here, since
these strings are marked safe for the templates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from markupsafe import Markup, escape

from tabpilot.engine.wording import format_number

N_COLOURS = 8
MAX_LABEL = 28
MAX_LINE_POINTS = 400
FONT = 11
CHAR_W = 6.2  # average glyph width at FONT px, to size label gutters


def format_tick(value: float) -> str:
    """A compact axis label: 1.2k, 3.5M, 0.25."""
    x = float(value)
    if x == 0:
        return "0"
    ax = abs(x)
    for threshold, size, suffix in (
        (1e12, 1e12, "T"),
        (1e9, 1e9, "G"),
        (1e6, 1e6, "M"),
        (1e4, 1e3, "k"),
    ):
        if ax >= threshold:
            return f"{x / size:.3g}{suffix}"
    if ax >= 1:
        return f"{x:.4g}"
    return f"{x:.3g}"


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if raw <= m * mag)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    t = start
    while t <= hi + step * 1e-6:
        ticks.append(0.0 if abs(t) < step * 1e-9 else t)
        t += step
    return ticks


def _e(text: Any) -> str:
    return str(escape(str(text)))


def _short(text: Any, limit: int = MAX_LABEL) -> str:
    s = str(text)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _svg(width: float, height: float, body: list[str], label: str) -> Markup:
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width:.0f} {height:.0f}" width="{width:.0f}" '
        f'height="{height:.0f}" role="img" aria-label="{_e(label)}">'
        f"<title>{_e(label)}</title>{''.join(body)}</svg>"
    )


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype="float64")
    return arr[np.isfinite(arr)]


@dataclass
class _Scale:
    lo: float
    hi: float
    a: float  # pixel of lo
    b: float  # pixel of hi

    def __call__(self, v: float) -> float:
        if self.hi == self.lo:
            return (self.a + self.b) / 2
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)


def _padded(lo: float, hi: float, pad: float = 0.04) -> tuple[float, float]:
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return 0.0, 1.0
    if hi == lo:
        d = abs(lo) * 0.1 or 1.0
        return lo - d, hi + d
    d = (hi - lo) * pad
    return lo - d, hi + d


def _axes(
    xs: _Scale,
    ys: _Scale,
    *,
    x_label: str,
    y_label: str,
    x_ticks: list[float] | None = None,
    y_ticks: list[float] | None = None,
    x_tick_labels: list[str] | None = None,
) -> list[str]:
    out: list[str] = []
    y_ticks = y_ticks if y_ticks is not None else nice_ticks(ys.lo, ys.hi)
    x_ticks = x_ticks if x_ticks is not None else nice_ticks(xs.lo, xs.hi)
    left, right = min(xs.a, xs.b), max(xs.a, xs.b)
    top, bottom = min(ys.a, ys.b), max(ys.a, ys.b)
    for t in y_ticks:
        y = ys(t)
        if top - 0.5 <= y <= bottom + 0.5:
            out.append(
                f'<line class="grid" x1="{left:.1f}" x2="{right:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
            )
            out.append(
                f'<text class="tick" x="{left - 5:.1f}" y="{y + 3.5:.1f}" text-anchor="end">'
                f"{_e(format_tick(t))}</text>"
            )
    for i, t in enumerate(x_ticks):
        x = xs(t)
        if left - 0.5 <= x <= right + 0.5:
            text = x_tick_labels[i] if x_tick_labels is not None else format_tick(t)
            out.append(
                f'<line class="axis" x1="{x:.1f}" x2="{x:.1f}" y1="{bottom:.1f}" '
                f'y2="{bottom + 4:.1f}"/>'
            )
            out.append(
                f'<text class="tick" x="{x:.1f}" y="{bottom + 15:.1f}" text-anchor="middle">'
                f"{_e(text)}</text>"
            )
    out.append(
        f'<line class="axis" x1="{left:.1f}" x2="{right:.1f}" y1="{bottom:.1f}" y2="{bottom:.1f}"/>'
    )
    out.append(
        f'<line class="axis" x1="{left:.1f}" x2="{left:.1f}" y1="{top:.1f}" y2="{bottom:.1f}"/>'
    )
    if x_label:
        out.append(
            f'<text class="label" x="{(left + right) / 2:.1f}" y="{bottom + 32:.1f}" '
            f'text-anchor="middle">{_e(x_label)}</text>'
        )
    if y_label:
        cy = (top + bottom) / 2
        out.append(
            f'<text class="label" x="12" y="{cy:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 12 {cy:.1f})">{_e(y_label)}</text>'
        )
    return out


def render_bar_chart(
    labels: Sequence[Any],
    values: Sequence[float],
    *,
    errors: Sequence[float] | None = None,
    title: str = "bar chart",
    x_label: str = "",
    width: int = 640,
    value_labels: Sequence[str] | None = None,
    highlight: Sequence[bool] | None = None,
) -> Markup:
    """Horizontal bars, one per label, with the value written at the end of each bar."""
    vals = np.asarray(values, dtype="float64")
    n = len(vals)
    if n == 0:
        return Markup('<p class="muted">Nothing to chart.</p>')
    shown = [_short(lb) for lb in labels]
    gutter = min(max(len(s) for s in shown) * CHAR_W + 12, width * 0.4)
    bar_h, gap, top = 16, 5, 8
    height = top + n * (bar_h + gap) + (34 if x_label else 22)
    finite = _finite(vals)
    hi = max(float(finite.max()) if len(finite) else 1.0, 0.0)
    lo = min(float(finite.min()) if len(finite) else 0.0, 0.0)
    errs = np.asarray(errors, dtype="float64") if errors is not None else None
    if errs is not None and len(finite):
        hi = max(hi, float(np.nanmax(vals + errs)))
        lo = min(lo, float(np.nanmin(vals - errs)))
    if hi == lo:
        hi = lo + 1.0
    texts = list(value_labels) if value_labels is not None else [format_number(v) for v in vals]
    # Room on the right for the longest value written after its bar.
    margin = min(max(len(str(s)) for s in texts) * CHAR_W + 10, width * 0.35)
    xs = _Scale(lo, hi, gutter, width - max(margin, 40))
    body: list[str] = []
    bottom = top + n * (bar_h + gap)
    for t in nice_ticks(lo, hi, 4):
        x = xs(t)
        body.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}"/>')
        body.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 13}" text-anchor="middle">'
            f"{_e(format_tick(t))}</text>"
        )
    zero = xs(0.0)
    for i in range(n):
        v = vals[i]
        y = top + i * (bar_h + gap)
        full = str(labels[i])
        text = texts[i]
        body.append(
            f'<text class="tick" x="{gutter - 6:.1f}" y="{y + bar_h - 4}" text-anchor="end">'
            f"<title>{_e(full)}</title>{_e(shown[i])}</text>"
        )
        if not math.isfinite(v):
            continue
        x0, x1 = sorted((zero, xs(v)))
        cls = "bar hl" if highlight is not None and highlight[i] else "bar"
        if v < 0:
            cls += " neg"
        body.append(
            f'<rect class="{cls}" x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 0.5):.1f}" '
            f'height="{bar_h}"><title>{_e(full)}: {_e(text)}</title></rect>'
        )
        end = x1
        if errs is not None and math.isfinite(errs[i]) and errs[i] > 0:
            ea, eb = xs(v - errs[i]), xs(v + errs[i])
            cy = y + bar_h / 2
            body.append(f'<line class="err" x1="{ea:.1f}" x2="{eb:.1f}" y1="{cy}" y2="{cy}"/>')
            end = max(end, eb)
        body.append(f'<text class="val" x="{end + 4:.1f}" y="{y + bar_h - 4}">{_e(text)}</text>')
    body.append(f'<line class="axis" x1="{zero:.1f}" x2="{zero:.1f}" y1="{top}" y2="{bottom}"/>')
    if x_label:
        body.append(
            f'<text class="label" x="{(gutter + width - 70) / 2:.1f}" y="{bottom + 28}" '
            f'text-anchor="middle">{_e(x_label)}</text>'
        )
    return _svg(width, height, body, title)


def render_histogram(
    edges: Sequence[float],
    counts: Sequence[float],
    *,
    title: str = "histogram",
    x_label: str = "",
    y_label: str = "rows",
    width: int = 360,
    height: int = 170,
    x_tick_format: Any = None,
) -> Markup:
    """Vertical bars over numeric bins (`edges` has one more entry than `counts`)."""
    e = np.asarray(edges, dtype="float64")
    c = np.asarray(counts, dtype="float64")
    if len(c) == 0 or len(e) != len(c) + 1:
        return Markup('<p class="muted">No values to chart.</p>')
    left, right, top = 48, width - 10, 8
    bottom = height - (34 if x_label else 22)
    xs = _Scale(float(e[0]), float(e[-1]), left, right)
    ymax = float(c.max()) or 1.0
    ys = _Scale(0.0, ymax * 1.05, bottom, top)
    x_ticks = nice_ticks(float(e[0]), float(e[-1]), 4)
    labels = [x_tick_format(t) for t in x_ticks] if x_tick_format else None
    body = _axes(
        xs,
        ys,
        x_label=x_label,
        y_label="",
        x_ticks=x_ticks,
        y_ticks=nice_ticks(0, ymax, 3),
        x_tick_labels=labels,
    )
    for i in range(len(c)):
        x0, x1 = xs(e[i]), xs(e[i + 1])
        y = ys(c[i])
        lo_t = x_tick_format(e[i]) if x_tick_format else format_number(e[i])
        hi_t = x_tick_format(e[i + 1]) if x_tick_format else format_number(e[i + 1])
        body.append(
            f'<rect class="bar" x="{x0 + 0.5:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 0.5):.1f}" '
            f'height="{max(bottom - y, 0):.1f}"><title>{_e(lo_t)} to {_e(hi_t)}: '
            f"{_e(format_number(c[i]))} {_e(y_label)}</title></rect>"
        )
    return _svg(width, height, body, title)


@dataclass
class Series:
    """One line (or set of points) of a line chart."""

    name: str
    x: Sequence[float] | np.ndarray
    y: Sequence[float] | np.ndarray
    step: bool = False
    points: bool = False
    dashed: bool = False
    colour: int | None = None
    legend: bool = True
    tooltips: list[str] = field(default_factory=list)


def _thin(x: np.ndarray, y: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    if len(x) <= limit:
        return x, y
    idx = np.unique(np.linspace(0, len(x) - 1, limit).round().astype(int))
    return x[idx], y[idx]


def render_line_chart(
    series: Sequence[Series],
    *,
    title: str = "line chart",
    x_label: str = "",
    y_label: str = "",
    x_range: tuple[float, float] | None = None,
    y_range: tuple[float, float] | None = None,
    diagonal: bool = False,
    width: int = 420,
    height: int = 300,
) -> Markup:
    """Lines (or step lines, or points) on shared axes, with a legend below."""
    series = [s for s in series if len(s.x)]
    if not series:
        return Markup('<p class="muted">Nothing to chart.</p>')
    all_x = np.concatenate([_finite(s.x) for s in series] or [np.zeros(1)])
    all_y = np.concatenate([_finite(s.y) for s in series] or [np.zeros(1)])
    if not len(all_x):
        all_x = np.zeros(1)
    if not len(all_y):
        all_y = np.zeros(1)
    xr = x_range or _padded(float(all_x.min()), float(all_x.max()), 0.02)
    yr = y_range or _padded(float(all_y.min()), float(all_y.max()))
    colours = [(s.colour if s.colour is not None else i) % N_COLOURS for i, s in enumerate(series)]
    in_legend = [(s, c) for s, c in zip(series, colours, strict=True) if s.legend and s.name]
    left, right, top = 56, width - 12, 10
    per_row = max(1, int((right - left) // 150))
    legend_rows = math.ceil(len(in_legend) / per_row)
    bottom = height - 40 - legend_rows * 16
    xs, ys = _Scale(xr[0], xr[1], left, right), _Scale(yr[0], yr[1], bottom, top)
    body = _axes(xs, ys, x_label=x_label, y_label=y_label)
    if diagonal:
        lo, hi = max(xr[0], yr[0]), min(xr[1], yr[1])
        if hi > lo:
            body.append(
                f'<line class="ref" x1="{xs(lo):.1f}" y1="{ys(lo):.1f}" x2="{xs(hi):.1f}" '
                f'y2="{ys(hi):.1f}"/>'
            )
    for s, colour in zip(series, colours, strict=True):
        x = np.asarray(s.x, dtype="float64")
        y = np.asarray(s.y, dtype="float64")
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        if s.points:
            tips = s.tooltips if len(s.tooltips) == len(s.x) else []
            tips = [t for t, k in zip(tips, ok, strict=True) if k] if tips else []
            for j in range(len(x)):
                tip = f"<title>{_e(tips[j])}</title>" if tips else ""
                body.append(
                    f'<circle class="dot f{colour}" cx="{xs(x[j]):.1f}" cy="{ys(y[j]):.1f}" '
                    f'r="3.5">{tip}</circle>'
                )
            continue
        x, y = _thin(x, y, MAX_LINE_POINTS)
        pts: list[str] = []
        for j in range(len(x)):
            if s.step and j:
                pts.append(f"{xs(x[j]):.1f},{ys(y[j - 1]):.1f}")
            pts.append(f"{xs(x[j]):.1f},{ys(y[j]):.1f}")
        dash = " dashed" if s.dashed else ""
        body.append(
            f'<polyline class="line s{colour}{dash}" points="{" ".join(pts)}">'
            f"<title>{_e(s.name)}</title></polyline>"
        )
    if legend_rows:
        for i, (s, colour) in enumerate(in_legend):
            col, row = i % per_row, i // per_row
            lx = left + col * (right - left) / per_row
            ly = height - 6 - (legend_rows - 1 - row) * 16
            body.append(
                f'<rect class="f{colour}" x="{lx:.1f}" y="{ly - 9:.1f}" width="10" height="10"/>'
            )
            body.append(
                f'<text class="tick" x="{lx + 14:.1f}" y="{ly:.1f}">{_e(_short(s.name, 22))}</text>'
            )
    return _svg(width, height, body, title)


def render_scatter(
    x: Sequence[float] | np.ndarray,
    y: Sequence[float] | np.ndarray,
    *,
    title: str = "scatter plot",
    x_label: str = "",
    y_label: str = "",
    diagonal: bool = False,
    width: int = 420,
    height: int = 320,
) -> Markup:
    """Points, optionally with the y = x line (predicted against actual)."""
    xa = np.asarray(x, dtype="float64")
    ya = np.asarray(y, dtype="float64")
    ok = np.isfinite(xa) & np.isfinite(ya)
    xa, ya = xa[ok], ya[ok]
    if not len(xa):
        return Markup('<p class="muted">No values to chart.</p>')
    if diagonal:
        lo = min(float(xa.min()), float(ya.min()))
        hi = max(float(xa.max()), float(ya.max()))
        xr = yr = _padded(lo, hi)
    else:
        xr = _padded(float(xa.min()), float(xa.max()))
        yr = _padded(float(ya.min()), float(ya.max()))
    left, right, top, bottom = 56, width - 12, 10, height - 40
    xs, ys = _Scale(xr[0], xr[1], left, right), _Scale(yr[0], yr[1], bottom, top)
    body = _axes(xs, ys, x_label=x_label, y_label=y_label)
    if diagonal:
        body.append(
            f'<line class="ref" x1="{xs(xr[0]):.1f}" y1="{ys(xr[0]):.1f}" x2="{xs(xr[1]):.1f}" '
            f'y2="{ys(xr[1]):.1f}"/>'
        )
    dots = [
        f'<circle cx="{xs(a):.1f}" cy="{ys(b):.1f}" r="2.2"/>' for a, b in zip(xa, ya, strict=True)
    ]
    body.append(f'<g class="pts">{"".join(dots)}</g>')
    return _svg(width, height, body, title)


def render_heatmap(
    row_labels: Sequence[Any],
    col_labels: Sequence[Any],
    matrix: Sequence[Sequence[float]] | np.ndarray,
    *,
    title: str = "heatmap",
    vmax: float | None = None,
    annotate: bool = True,
    cell_text: Sequence[Sequence[str]] | None = None,
    x_label: str = "",
    y_label: str = "",
    max_cell: int = 44,
    width: int = 720,
) -> Markup:
    """A matrix as shaded cells: blue for positive values, red for negative ones."""
    m = np.asarray(matrix, dtype="float64")
    if m.size == 0:
        return Markup('<p class="muted">Nothing to chart.</p>')
    nr, nc = m.shape
    rows = [_short(r, 22) for r in row_labels]
    cols = [_short(c, 22) for c in col_labels]
    gutter = max(len(r) for r in rows) * CHAR_W + 14 + (16 if y_label else 0)
    col_h = max(len(c) for c in cols) * CHAR_W * 0.72 + 14 + (16 if x_label else 0)
    cell = max(8.0, min(max_cell, (width - gutter - 10) / nc))
    w = gutter + nc * cell + 10
    h = col_h + nr * cell + 10
    scale = vmax if vmax else (float(np.nanmax(np.abs(m))) if np.isfinite(m).any() else 1.0)
    scale = scale or 1.0
    annotate = annotate and cell >= 26
    body: list[str] = []
    if x_label:
        body.append(
            f'<text class="label" x="{gutter + nc * cell / 2:.1f}" y="12" text-anchor="middle">'
            f"{_e(x_label)}</text>"
        )
    if y_label:
        cy = col_h + nr * cell / 2
        body.append(
            f'<text class="label" x="12" y="{cy:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 12 {cy:.1f})">{_e(y_label)}</text>'
        )
    for j, c in enumerate(cols):
        cx = gutter + (j + 0.5) * cell
        cy = col_h - 6
        body.append(
            f'<text class="tick" x="{cx + 3:.1f}" y="{cy:.1f}" transform="rotate(-45 {cx + 3:.1f} '
            f'{cy:.1f})"><title>{_e(col_labels[j])}</title>{_e(c)}</text>'
        )
    for i, r in enumerate(rows):
        y = col_h + i * cell
        body.append(
            f'<text class="tick" x="{gutter - 6:.1f}" y="{y + cell / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{_e(row_labels[i])}</title>{_e(r)}</text>"
        )
        for j in range(nc):
            v = m[i, j]
            x = gutter + j * cell
            text = cell_text[i][j] if cell_text is not None else format_number(v, 2)
            tip = f"{row_labels[i]} × {col_labels[j]}: {text}"
            if not math.isfinite(v):
                body.append(
                    f'<rect class="cell-na" x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" '
                    f'height="{cell:.1f}"><title>{_e(tip)}</title></rect>'
                )
                continue
            strength = min(abs(v) / scale, 1.0)
            cls = "pos" if v >= 0 else "neg"
            body.append(
                f'<rect class="cell-bg" x="{x:.1f}" y="{y:.1f}" width="{cell:.1f}" '
                f'height="{cell:.1f}"/><rect class="cell {cls}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{cell:.1f}" height="{cell:.1f}" '
                f'fill-opacity="{0.08 + 0.92 * strength:.2f}">'
                f"<title>{_e(tip)}</title></rect>"
            )
            if annotate:
                tcls = "cell-text strong" if strength > 0.55 else "cell-text"
                body.append(
                    f'<text class="{tcls}" x="{x + cell / 2:.1f}" y="{y + cell / 2 + 4:.1f}" '
                    f'text-anchor="middle">{_e(text)}</text>'
                )
    return _svg(w, h, body, title)


def _ramp(t: float) -> str:
    """Blue (low) to red (high): the usual SHAP colouring, readable in both themes."""
    t = min(max(t, 0.0), 1.0)
    lo, hi = (30, 136, 229), (255, 13, 87)
    r, g, b = (round(lo[k] + (hi[k] - lo[k]) * t) for k in range(3))
    return f"rgb({r},{g},{b})"


def render_beeswarm(
    features: Sequence[str],
    contributions: Sequence[np.ndarray],
    colour_values: Sequence[np.ndarray | None],
    *,
    title: str = "SHAP summary",
    x_label: str = "contribution to the prediction",
    width: int = 720,
) -> Markup:
    """One row of points per feature: each point a row's contribution, coloured by the
    feature's value in that row (blue low, red high; grey when the value has no order)."""
    n = len(features)
    if n == 0:
        return Markup('<p class="muted">Nothing to chart.</p>')
    shown = [_short(f) for f in features]
    gutter = max(len(s) for s in shown) * CHAR_W + 14
    row_h, top = 26, 8
    bottom = top + n * row_h
    height = bottom + 60
    every = np.concatenate([_finite(c) for c in contributions] or [np.zeros(1)])
    lim = float(np.abs(every).max()) if len(every) else 1.0
    lim = lim or 1.0
    xs = _Scale(-lim * 1.05, lim * 1.05, gutter, width - 16)
    body: list[str] = []
    for t in nice_ticks(-lim, lim, 6):
        x = xs(t)
        body.append(f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{bottom}"/>')
        body.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 13}" text-anchor="middle">'
            f"{_e(format_tick(t))}</text>"
        )
    body.append(f'<line class="axis" x1="{xs(0):.1f}" x2="{xs(0):.1f}" y1="{top}" y2="{bottom}"/>')
    rng = np.random.default_rng(0)
    for i in range(n):
        cy = top + i * row_h + row_h / 2
        body.append(
            f'<text class="tick" x="{gutter - 6:.1f}" y="{cy + 4:.1f}" text-anchor="end">'
            f"<title>{_e(features[i])}</title>{_e(shown[i])}</text>"
        )
        c = np.asarray(contributions[i], dtype="float64")
        cv = colour_values[i]
        # Jitter grows with local density so that dense regions spread out like a swarm.
        hist, edges = np.histogram(c, bins=40, range=(-lim * 1.05, lim * 1.05))
        dens = hist[np.clip(np.searchsorted(edges, c) - 1, 0, len(hist) - 1)]
        spread = (row_h / 2 - 2) * np.sqrt(dens / max(hist.max(), 1))
        jitter = rng.uniform(-1, 1, len(c)) * spread
        dots = []
        for k in range(len(c)):
            if not math.isfinite(c[k]):
                continue
            if cv is None or not math.isfinite(cv[k]):
                fill = 'class="nocolour"'
            else:
                fill = f'fill="{_ramp(float(cv[k]))}"'
            dots.append(f'<circle {fill} cx="{xs(c[k]):.1f}" cy="{cy + jitter[k]:.1f}" r="2"/>')
        body.append(f'<g class="swarm">{"".join(dots)}</g>')
    body.append(
        f'<text class="label" x="{(gutter + width) / 2:.1f}" y="{bottom + 30}" '
        f'text-anchor="middle">{_e(x_label)}</text>'
    )
    ly = bottom + 46
    lx = gutter
    body.append(f'<text class="tick" x="{lx:.1f}" y="{ly + 4}">feature value: low</text>')
    for k in range(20):
        body.append(
            f'<rect x="{lx + 100 + k * 5:.1f}" y="{ly - 5}" width="5" height="10" '
            f'fill="{_ramp(k / 19)}"/>'
        )
    body.append(f'<text class="tick" x="{lx + 206:.1f}" y="{ly + 4}">high</text>')
    body.append(f'<circle class="nocolour" cx="{lx + 250:.1f}" cy="{ly}" r="3"/>')
    body.append(f'<text class="tick" x="{lx + 258:.1f}" y="{ly + 4}">unordered (category)</text>')
    return _svg(width, height, body, title)
