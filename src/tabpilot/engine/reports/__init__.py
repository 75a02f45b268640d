"""EDA and training reports: self-contained HTML files stored with every model.

The reports render; what they show is computed beforehand by the code that owns it: data
statistics and warnings by `engine.data.summary` (a `DataSummary`), the explanation of a model
(SHAP values, what preprocessing did) by `engine.training.explain` (a `ModelExplanation`).
`render_eda_report` needs only numpy and pandas (the API renders it for uploaded datasets);
the training report imports the training modules lazily, when called.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from tabpilot.engine.data.summary import DataSummary
from tabpilot.engine.reports.eda import render_eda_report
from tabpilot.engine.reports.page import render_failure_page

if TYPE_CHECKING:
    from tabpilot.engine.training.explain import ModelExplanation
    from tabpilot.engine.training.train import TrainResult

__all__ = ["render_eda_report", "render_training_report", "write_reports"]

log = logging.getLogger(__name__)


def render_training_report(
    result: TrainResult, explanation: ModelExplanation, *, title: str = "Model"
) -> str:
    """The training report as one self-contained HTML page (see `training.py`)."""
    from tabpilot.engine.reports.training import render_training_report as render

    return render(result, explanation, title=title)


def write_reports(
    result: TrainResult,
    out_dir: Path,
    *,
    data: DataSummary,
    explanation: ModelExplanation,
) -> dict[str, Path]:
    """Write `eda.html` and `report.html` into `out_dir` and return their paths.

    Never raises for a failing section (it says why in place); should a whole report fail,
    its file still gets written, saying why.

    Args:
        result: what `train` returned.
        out_dir: created if missing.
        data: `summarize_data(...)` of the data the model was trained from.
        explanation: `explain_model(result)`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = result.spec.target
    paths = {"eda": out_dir / "eda.html", "report": out_dir / "report.html"}
    try:
        eda = render_eda_report(data, title=f"Data for predicting {target}")
    except Exception as exc:
        log.exception("the EDA report failed")
        eda = render_failure_page(kind="EDA report", title="Data", reason=_reason(exc))
    paths["eda"].write_text(eda, encoding="utf-8")
    try:
        report = render_training_report(result, explanation, title=f"Model predicting {target}")
    except Exception as exc:
        log.exception("the training report failed")
        report = render_failure_page(kind="training report", title="Model", reason=_reason(exc))
    paths["report"].write_text(report, encoding="utf-8")
    return paths


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
