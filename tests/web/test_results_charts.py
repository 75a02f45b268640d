"""The Results page's held-out evaluation charts (ROC, precision-recall and calibration for a
binary model; predicted against actual and residuals for regression), drawn from the card's
evaluation data; an older card without it keeps pointing to the training report."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tabpilot.api.app import create_app
from tabpilot.context import AppContext
from tabpilot.services.auth import authenticate
from tests import factories
from tests.api.support import fake_card, finish_job

BINARY_CHARTS = ("roc-chart", "pr-chart", "calibration-chart")
REGRESSION_CHARTS = ("scatter-chart", "residuals-chart")
OLD_CARD_SENTENCE = "which only the"


def results_page(ctx: AppContext, card: dict[str, Any], target: str) -> str:
    """The Results page of a finished job whose model has `card`."""
    owner = authenticate(ctx.metadata, mode="local", token=None).owner
    dataset = factories.add_dataset(ctx.metadata, owner=owner)
    job = factories.add_job(ctx.metadata, dataset, spec={"target": target})
    finish_job(ctx, job.id, card=card)
    answer = TestClient(create_app(ctx)).get(f"/jobs/{job.id}")
    assert answer.status_code == 200, answer.text
    return answer.text


def figure_ids(html: str) -> list[str]:
    return re.findall(r'<figure class="figure" id="([^"]+)"><svg', html)


def synthetic_card(problem_type: str) -> dict[str, Any]:
    from tabpilot.engine.training.evaluation import holdout_evaluation

    rng = np.random.default_rng(0)
    if problem_type == "binary":
        y = rng.integers(0, 2, 400)
        p1 = np.clip(0.4 * y + rng.random(400) * 0.6, 0, 1)
        ev = holdout_evaluation(y, (p1 > 0.5).astype(int), np.c_[1 - p1, p1], ["no", "yes"], seed=0)
        card = fake_card(target="churn") | {"classes": ["no", "yes"]}
    else:
        y = rng.normal(50, 10, 300)
        ev = holdout_evaluation(y, y + rng.normal(0, 3, 300), None, None, seed=0)
        card = fake_card(target="price", problem_type="regression", metric="rmse")
        card["metrics"] = {"holdout": {"rmse": 3.0}, "baseline": {"rmse": 10.0}}
    return card | {"evaluation": asdict(ev)}


@pytest.mark.parametrize(
    ("problem_type", "charts"), [("binary", BINARY_CHARTS), ("regression", REGRESSION_CHARTS)]
)
def test_the_card_evaluation_is_drawn(ctx: AppContext, problem_type: str, charts: tuple[str, ...]):
    card = synthetic_card(problem_type)
    html = results_page(ctx, card, card["target"])
    ids = figure_ids(html)
    assert all(c in ids for c in charts), ids
    assert OLD_CARD_SENTENCE not in html
    if problem_type == "binary":
        assert "yes (AUC 0." in html and "yes (AP 0." in html
        assert "for the positive class &#34;yes&#34;" in html  # escaped quotes
    else:
        assert "actual − predicted" in html and "actual price" in html
        assert "90% of them between -" in html  # the residual quantiles


def test_an_older_card_without_evaluation_points_to_the_report(ctx: AppContext):
    card = fake_card(target="churn") | {"classes": ["no", "yes"]}
    html = results_page(ctx, card, "churn")
    assert not any(c in figure_ids(html) for c in BINARY_CHARTS)
    assert OLD_CARD_SENTENCE in html and "ROC and precision-recall curves" in html


@pytest.mark.slow
@pytest.mark.parametrize("task", ["binary", "regression"])
def test_a_trained_bundle_shows_its_charts(ctx: AppContext, tmp_path: Path, task: str):
    from tabpilot.engine.spec import TrainSpec
    from tabpilot.engine.training.run import run_training
    from tests.conftest import make_mixed_frame

    csv = tmp_path / "data.csv"
    make_mixed_frame(300, seed=4, task=task).to_csv(csv, index=False)
    spec = TrainSpec(target="label", time_budget=5, estimators=("linear",))
    run_training(csv, spec, out_dir=tmp_path / "bundle", reports=False)
    card = json.loads((tmp_path / "bundle" / "model.json").read_text())
    html = results_page(ctx, card, "label")
    charts = BINARY_CHARTS if task == "binary" else REGRESSION_CHARTS
    assert all(c in figure_ids(html) for c in charts), figure_ids(html)
    assert OLD_CARD_SENTENCE not in html
    # What the download is: the card's own words (refitted on all rows, or why not).
    final_model = card["evaluation_method"]["final_model"]
    assert f"The model you download: {final_model}." in html
