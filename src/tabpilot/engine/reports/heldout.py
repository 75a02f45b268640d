"""The held-out evaluation charts, drawn from a model card's `CardEvaluation` (computed in
training by `engine.training.evaluation`): ROC, precision-recall and calibration for
classification; predicted against actual, residuals and error by range for regression.

Shared by the training report and the web Results page. Plain data in, SVG out: no training
library is imported here (the API process draws these too).
"""

from __future__ import annotations

from markupsafe import Markup

from tabpilot.engine.card import CardEvaluation
from tabpilot.engine.reports.charts import (
    Series,
    format_number,
    render_bar_chart,
    render_histogram,
    render_line_chart,
    render_scatter,
)

UNIT = (0.0, 1.0)


def _curve_series(ev: CardEvaluation, part: str, area: str, short: str) -> list[Series]:
    out = []
    for curve in ev.curves:
        points = curve.get(part) or {}
        value = curve.get(area)
        name = str(curve.get("label", ""))
        if isinstance(value, int | float):
            name += f" ({short} {value:.3f})"
        colour = int(curve.get("index", len(out)))
        out.append(Series(name, points.get("x") or [], points.get("y") or [], colour=colour))
    return out


def roc_chart(ev: CardEvaluation) -> Markup | None:
    """The ROC curves with their AUC, or None without curves."""
    if not ev.curves:
        return None
    return render_line_chart(
        _curve_series(ev, "roc", "auc", "AUC"),
        title="ROC curve",
        x_label="false positive rate",
        y_label="true positive rate",
        x_range=UNIT,
        y_range=UNIT,
        diagonal=True,
    )


def pr_chart(ev: CardEvaluation) -> Markup | None:
    """The precision-recall curves with their average precision, or None without curves."""
    if not ev.curves:
        return None
    return render_line_chart(
        _curve_series(ev, "pr", "average_precision", "AP"),
        title="precision-recall curve",
        x_label="recall",
        y_label="precision",
        x_range=UNIT,
        y_range=(0.0, 1.02),
    )


def calibration_chart(ev: CardEvaluation) -> Markup | None:
    """Mean predicted probability against the observed rate per bin (line and points, with
    each bin's rows as a tooltip), or None without bins."""
    bins = ev.calibration_bins
    if not bins:
        return None
    name = str(ev.calibration.get("name") or "calibration")
    x = [float(b["predicted"]) for b in bins]
    y = [float(b["observed"]) for b in bins]
    tips = [
        f"predicted {b['predicted']:.3f}, observed {b['observed']:.3f} ({b['rows']} rows)"
        for b in bins
    ]
    return render_line_chart(
        [
            Series(name, x, y, colour=0),
            Series(name, x, y, points=True, colour=0, legend=False, tooltips=tips),
        ],
        title="calibration",
        x_label="mean predicted probability",
        y_label="observed frequency",
        x_range=UNIT,
        y_range=UNIT,
        diagonal=True,
    )


def scatter_chart(ev: CardEvaluation, target: str, *, width: int = 460) -> Markup | None:
    """The sampled held-out rows' predicted values against the actual ones, or None."""
    actual, predicted = ev.scatter.get("actual") or [], ev.scatter.get("predicted") or []
    if not actual:
        return None
    return render_scatter(
        actual,
        predicted,
        title="predicted against actual",
        x_label=f"actual {target}",
        y_label="predicted",
        diagonal=True,
        width=width,
        height=360,
    )


def residual_chart(ev: CardEvaluation, *, width: int = 460) -> Markup | None:
    """The histogram of the held-out residuals (actual − predicted), or None."""
    hist = ev.residuals.get("histogram") or {}
    if not hist.get("counts"):
        return None
    return render_histogram(
        hist["edges"],
        hist["counts"],
        title="residuals",
        x_label="actual − predicted",
        width=width,
        height=250,
    )


def error_chart(ev: CardEvaluation, target: str) -> Markup | None:
    """The mean absolute error by range of the actual value, or None."""
    bins = ev.error_bins
    if not bins:
        return None
    return render_bar_chart(
        [f"{format_number(b['lo'])} – {format_number(b['hi'])}" for b in bins],
        [float(b["mae"]) for b in bins],
        title="mean absolute error by range of the actual value",
        x_label=f"mean absolute error ({target})",
        width=560,
    )
