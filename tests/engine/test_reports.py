"""EDA and training reports on real datasets: sections, charts, values, escaping, isolation."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabpilot.engine.data import summary as summary_module
from tabpilot.engine.data.association import cramers_v, encode_codes, mutual_information
from tabpilot.engine.data.profiling import profile_frame
from tabpilot.engine.data.summary import summarize_data
from tabpilot.engine.reports import eda as eda_module
from tabpilot.engine.reports import render_eda_report, render_training_report, write_reports
from tabpilot.engine.reports import training as training_module
from tabpilot.engine.reports.charts import format_number, nice_ticks, render_bar_chart

DATASETS = Path(__file__).resolve().parents[3] / "shared" / "datasets"
HOSTILE = "<script>alert(1)</script>"
HOSTILE_VALUE = "<img src=x onerror=alert(2)>"
EDA_SECTIONS = ("overview", "warnings", "target", "columns", "correlations", "association")
REPORT_SECTIONS = (
    "summary",
    "leaderboard",
    "evaluation",
    "predictions",
    "importance",
    "shap",
    "decisions",
    "reproducibility",
)
FAILED = "This section could not be computed"


def _read(name: str) -> pd.DataFrame:
    path = DATASETS / f"{name}.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the shared datasets live beside the checkout only")
    return pd.read_csv(path)


class Trained:
    def __init__(self, result, frame: pd.DataFrame, paths: dict[str, Path]) -> None:
        self.result = result
        self.frame = frame
        self.paths = paths
        self.eda = paths["eda"].read_text(encoding="utf-8")
        self.report = paths["report"].read_text(encoding="utf-8")


def _write(result, frame: pd.DataFrame, out: Path) -> dict[str, Path]:
    """Both reports, from the values computed for them (as the training run does)."""
    from tabpilot.engine.training.explain import explain_model

    data = summarize_data(
        frame,
        result.profile,
        target=result.spec.target,
        problem=result.problem,
        plan=result.plan,
    )
    return write_reports(result, out, data=data, explanation=explain_model(result, time_limit=10))


def _eda(frame: pd.DataFrame, *, target: str | None = None, title: str = "Dataset") -> str:
    return render_eda_report(
        summarize_data(frame, profile_frame(frame), target=target), title=title
    )


def _train(frame: pd.DataFrame, target: str, out: Path) -> Trained:
    from tabpilot.engine.spec import TrainSpec
    from tabpilot.engine.training.train import train

    # The two boosting libraries only: quick and steady to fit, and the SHAP path for both.
    options = TrainSpec(target=target, time_budget=5, estimators=("lgbm", "xgboost"))
    result = train(frame, options)
    return Trained(result, frame, _write(result, frame, out))


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    frame = _read("titanic")
    # A hostile column name and hostile values: both reports must show them as text.
    frame[HOSTILE] = np.where(frame["Pclass"] == 1, HOSTILE_VALUE, "plain")
    return _train(frame, "Survived", tmp_path_factory.mktemp("binary"))


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    return _train(_read("penguins"), "species", tmp_path_factory.mktemp("multiclass"))


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    frame = _read("california_housing").sample(3000, random_state=0)
    return _train(frame, "median_house_value", tmp_path_factory.mktemp("regression"))


@pytest.fixture(params=["binary", "multiclass", "regression"])
def trained(request: pytest.FixtureRequest) -> Trained:
    return request.getfixturevalue(request.param)


def _section(html: str, section_id: str) -> str:
    match = re.search(
        rf'<section class="report-section" id="{section_id}">(.*?)</section>', html, re.S
    )
    assert match, f"section {section_id} missing"
    return match.group(1)


def _score(value: float) -> str:
    """A score as the report writes it."""
    return f"{value:.4f}" if abs(value) < 1000 else format_number(value)


def _confusion_counts(html: str) -> np.ndarray:
    table = re.search(r'<table class="cm" id="confusion-matrix".*?</table>', html, re.S)
    assert table
    rows = re.findall(r"<tr>.*?</tr>", table.group(0), re.S)
    counts = [[int(v) for v in re.findall(r'data-count="(\d+)"', r)] for r in rows]
    return np.array([c for c in counts if c])


# -- both reports, every problem type -------------------------------------------------------


@pytest.mark.slow
def test_every_section_present_and_computed(trained: Trained) -> None:
    for sid in EDA_SECTIONS:
        assert FAILED not in _section(trained.eda, sid), sid
    for sid in REPORT_SECTIONS:
        assert FAILED not in _section(trained.report, sid), sid


@pytest.mark.slow
def test_self_contained_and_themed(trained: Trained) -> None:
    for html in (trained.eda, trained.report):
        assert html.startswith("<!DOCTYPE html>")
        assert "http://" not in html and "https://" not in html
        assert "<script" not in html.lower()
        links = re.findall(r"""\s(?:src|href)\s*=\s*["']([^"']*)["']""", html)
        assert all(link.startswith("#") for link in links), links
        assert "<link" not in html
        assert "prefers-color-scheme: dark" in html
        assert "@media print" in html


@pytest.mark.slow
def test_charts_present(trained: Trained) -> None:
    assert trained.eda.count("<svg") >= 8
    assert "<svg" in _section(trained.eda, "correlations")
    assert "<svg" in _section(trained.eda, "association")
    assert "<svg" in _section(trained.eda, "target")
    for sid in ("leaderboard", "evaluation", "importance", "reproducibility"):
        assert "<svg" in _section(trained.report, sid), sid


@pytest.mark.slow
def test_row_counts_shown(trained: Trained) -> None:
    r = trained.result
    assert f'id="overview-rows">{len(trained.frame):,}<' in trained.eda
    assert f'id="summary-rows">{r.n_rows:,}<' in trained.report
    assert f"<strong>{r.n_test:,}</strong> held-out rows" in trained.report
    split = _section(trained.report, "decisions")
    assert f"<strong>{r.n_train:,}</strong> training rows" in split


@pytest.mark.slow
def test_held_out_metric_and_baseline_shown(trained: Trained) -> None:
    r = trained.result
    summary = _section(trained.report, "summary")
    assert _score(r.holdout_metrics["primary"]["value"]) in summary
    assert _score(r.baseline_metrics["primary"]["value"]) in summary
    assert r.metric.label in summary


@pytest.mark.slow
def test_leaderboard_lists_every_searched_estimator(trained: Trained) -> None:
    board = _section(trained.report, "leaderboard")
    for row in trained.result.leaderboard:
        assert str(row["label"]) in board


@pytest.mark.slow
def test_dropped_columns_explained(trained: Trained) -> None:
    decisions = _section(trained.report, "decisions")
    for d in trained.result.plan.dropped:
        assert d.name in decisions


@pytest.mark.slow
def test_shap_drawn_or_reason_given(trained: Trained) -> None:
    shap = _section(trained.report, "shap")
    assert "<svg" in shap or "No SHAP summary:" in shap


@pytest.mark.slow
def test_reports_say_what_preprocessing_did(binary: Trained) -> None:
    # Regression: both reports promised a missing-value flag that preprocessing never adds,
    # and a column with gaps (titanic's Age) was described as having none.
    decisions = _section(binary.report, "decisions")
    age = re.search(r"<td>Age</td>.*?</tr>", decisions, re.S)
    assert age and "filled with the median of the training rows" in age.group(0)
    assert "no gaps" not in decisions
    for html in (binary.report, binary.eda):
        assert "flag" not in html.lower()
    assert "median of the training rows" in _section(binary.eda, "warnings")


# -- classification -----------------------------------------------------------------------


@pytest.mark.slow
def test_binary_confusion_matrix_sums_to_held_out_rows(binary: Trained) -> None:
    counts = _confusion_counts(binary.report)
    assert counts.shape == (2, 2)
    assert counts.sum() == binary.result.n_test
    assert counts.tolist() == binary.result.holdout_metrics["confusion_matrix"]


@pytest.mark.slow
def test_binary_curves(binary: Trained) -> None:
    evaluation = _section(binary.report, "evaluation")
    for fig in ("roc-curve", "pr-curve", "calibration"):
        assert f'id="{fig}"' in evaluation
    assert "AUC" in evaluation


@pytest.mark.slow
def test_binary_eda_target_and_warnings(binary: Trained) -> None:
    target = _section(binary.eda, "target")
    assert "549" in target and "342" in target  # titanic: died / survived
    warnings = _section(binary.eda, "warnings")
    assert "Cabin" in warnings and "Missing values" in warnings
    assert "PassengerId" in warnings  # an identifier
    columns = _section(binary.eda, "columns")
    assert "not used" in columns and "used as a numeric feature" in columns


@pytest.mark.slow
def test_multiclass_report(multiclass: Trained) -> None:
    counts = _confusion_counts(multiclass.report)
    assert counts.shape == (3, 3)
    assert counts.sum() == multiclass.result.n_test
    evaluation = _section(multiclass.report, "evaluation")
    for label in ("Adelie", "Chinstrap", "Gentoo"):
        assert f"{label} (AUC" in evaluation
    per_class = re.search(r'<table id="per-class">.*?</table>', evaluation, re.S)
    assert per_class and per_class.group(0).count("<tr>") == 4


# -- regression ---------------------------------------------------------------------------


@pytest.mark.slow
def test_regression_report(regression: Trained) -> None:
    r = regression.result
    evaluation = _section(regression.report, "evaluation")
    for fig in ("predicted-vs-actual", "residuals", "error-by-range"):
        assert f'id="{fig}"' in evaluation
    table = re.search(r'<table id="error-table">.*?</table>', evaluation, re.S)
    assert table
    rows = re.findall(r'<td class="nowrap">.*?</td><td class="n">([\d,]+)</td>', table.group(0))
    assert sum(int(v.replace(",", "")) for v in rows) == r.n_test
    assert _score(r.holdout_metrics["rmse"]) in evaluation
    assert "quantile" in _section(regression.eda, "target")


# -- escaping -----------------------------------------------------------------------------


@pytest.mark.slow
def test_hostile_names_and_values_escaped(binary: Trained) -> None:
    for html in (binary.eda, binary.report):
        assert HOSTILE not in html
        assert HOSTILE_VALUE not in html
        assert "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in binary.eda
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in binary.report
    assert "&lt;img src=x onerror=alert(2)&gt;" in binary.eda


def test_hostile_synthetic_frame_eda() -> None:
    rng = np.random.default_rng(0)
    n = 300
    frame = pd.DataFrame(
        {
            HOSTILE: rng.normal(size=n),
            "cat": rng.choice([HOSTILE_VALUE, 'quote " & amp', "ok"], size=n),
            '"><svg onload=alert(3)>': rng.integers(0, 5, size=n),
            "y": rng.choice(["a", "b"], size=n),
        }
    )
    html = _eda(frame, target="y", title=HOSTILE)
    assert HOSTILE not in html and HOSTILE_VALUE not in html
    assert "<svg onload" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for sid in EDA_SECTIONS:
        assert FAILED not in _section(html, sid), sid


# -- failures stay in their section -------------------------------------------------------


def test_eda_section_failure_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    frame = pd.DataFrame({"a": range(50), "b": ["x", "y"] * 25, "y": [0, 1] * 25})

    def boom(self: object) -> str:
        raise RuntimeError("correlations exploded")

    monkeypatch.setattr(eda_module._Eda, "section_correlations", boom)
    html = _eda(frame, target="y")
    assert f"{FAILED}: RuntimeError: correlations exploded" in _section(html, "correlations")
    for sid in ("overview", "warnings", "target", "columns", "association"):
        assert FAILED not in _section(html, sid)


@pytest.mark.slow
def test_training_section_failure_is_contained(
    binary: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: object) -> str:
        raise ValueError("no leaderboard today")

    monkeypatch.setattr(training_module._Report, "section_leaderboard", boom)
    from tabpilot.engine.training.explain import explain_model

    html = render_training_report(binary.result, explain_model(binary.result))
    assert f"{FAILED}: ValueError: no leaderboard today" in _section(html, "leaderboard")
    assert FAILED not in _section(html, "summary")


@pytest.mark.slow
def test_broken_result_still_writes_both_files(binary: Trained, tmp_path: Path) -> None:
    broken = copy.copy(binary.result)
    broken.holdout = broken.holdout.drop(columns=["__prediction__"])
    broken.evaluation = None  # type: ignore[assignment]  # the evaluation section draws this
    paths = _write(broken, binary.frame, tmp_path / "out")
    report = paths["report"].read_text(encoding="utf-8")
    assert FAILED in _section(report, "evaluation")
    assert FAILED not in _section(report, "summary")
    assert paths["eda"].is_file()


# -- EDA without a target, sampling, import boundary --------------------------------------


def test_eda_without_target() -> None:
    frame = _read("titanic")
    html = _eda(frame, title="titanic.csv")
    assert "No target chosen yet" in _section(html, "target")
    assert "No target chosen yet" in _section(html, "association")
    columns = _section(html, "columns")
    assert "will not be used" in columns  # PassengerId and Name, previewed
    for sid in EDA_SECTIONS:
        assert FAILED not in _section(html, sid), sid


def test_large_data_is_sampled_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(summary_module, "SAMPLE_ROWS", 1000)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=3000), "c": rng.choice(list("abc"), 3000)})
    frame["y"] = (frame["x"] > 0).astype(int)
    html = _eda(frame, target="y")
    assert "random sample of 1,000 rows" in html
    assert 'id="overview-rows">3,000<' in html


def test_eda_imports_no_training_library() -> None:
    code = (
        "import sys, pandas as pd\n"
        "from tabpilot.engine.data.profiling import profile_frame\n"
        "from tabpilot.engine.data.summary import summarize_data\n"
        "from tabpilot.engine.reports import render_eda_report\n"
        "f = pd.DataFrame({'a': range(100), 'b': ['x', 'y'] * 50, 'y': [0, 1] * 50})\n"
        "render_eda_report(summarize_data(f, profile_frame(f), target='y'))\n"
        "bad = [m for m in ('sklearn', 'lightgbm', 'xgboost', 'flaml') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- building blocks ----------------------------------------------------------------------


def test_association_measures() -> None:
    rng = np.random.default_rng(0)
    a = pd.Series(rng.choice(list("abcd"), 5000))
    b = pd.Series(rng.choice(list("xyz"), 5000))
    ca, cb = encode_codes(a), encode_codes(b)
    ka, kb = int(ca.max()) + 1, int(cb.max()) + 1
    assert mutual_information(ca, ka, cb, kb) < 0.005
    assert cramers_v(ca, ka, cb, kb) < 0.05
    assert mutual_information(ca, ka, ca, ka) == pytest.approx(np.log(4), rel=0.02)
    assert cramers_v(ca, ka, ca, ka) == pytest.approx(1.0, abs=0.01)
    numeric = pd.Series(rng.normal(size=5000))
    codes = encode_codes(numeric.where(numeric > -2))  # missing values get their own code
    assert int(codes.max()) + 1 == 11


def test_chart_helpers_escape_and_format() -> None:
    svg = render_bar_chart([HOSTILE], [1.0])
    assert HOSTILE not in svg and "&lt;script&gt;" in svg
    assert "http" not in svg
    assert format_number(1234567) == "1,234,567"
    assert format_number(None) == "–"
    assert nice_ticks(0, 1, 5) == pytest.approx([0, 0.2, 0.4, 0.6, 0.8, 1.0])


def _refit_with(trained: Trained, estimator: object) -> object:
    """A copy of the result whose model is `estimator`, fitted on the held-out rows."""
    from sklearn.base import clone
    from sklearn.pipeline import Pipeline

    from tabpilot.engine.data.inputs import prepare_frame

    result = copy.copy(trained.result)
    result.model = copy.copy(result.model)
    h = result.holdout
    X = prepare_frame(h, result.model.features)
    y = h[result.spec.target].map({c: i for i, c in enumerate(result.classes)}).to_numpy()
    pre = clone(result.model.pipeline.named_steps["pre"])
    result.model.pipeline = Pipeline([("pre", pre), ("model", estimator)]).fit(X, y)
    result.chosen = "search"
    return result


@pytest.mark.slow
def test_shap_values_add_up_to_the_margin(multiclass: Trained) -> None:
    import xgboost

    from tabpilot.engine.data.inputs import prepare_frame
    from tabpilot.engine.training.explain import Contributions, compute_contributions

    model = xgboost.XGBClassifier(n_estimators=15, max_depth=3, n_jobs=1)
    result = _refit_with(multiclass, model)
    out = compute_contributions(result, time_limit=10)
    assert isinstance(out, Contributions)
    n_features = len(result.model.features)
    assert out.values.shape == (3, len(result.holdout), n_features)
    pipe = result.model.pipeline
    Xt = pipe.named_steps["pre"].transform(prepare_frame(result.holdout, result.model.features))
    margin = model.predict(Xt, output_margin=True)  # (rows, classes)
    # Contributions plus a constant bias per class give the raw score of every row.
    bias = margin - out.values.sum(axis=2).T
    assert np.ptp(bias, axis=0).max() < 1e-3


@pytest.mark.slow
def test_shap_skipped_with_reason_for_other_models(binary: Trained) -> None:
    from sklearn.ensemble import ExtraTreesClassifier

    from tabpilot.engine.training.explain import compute_contributions, explain_model

    result = _refit_with(binary, ExtraTreesClassifier(n_estimators=5, random_state=0))
    out = compute_contributions(result, time_limit=10)
    assert isinstance(out, str) and "extra trees" in out
    html = render_training_report(result, explain_model(result))
    assert "No SHAP summary:" in _section(html, "shap")
    assert FAILED not in html


@pytest.mark.slow
def test_output_sources_cover_every_model_input(trained: Trained) -> None:
    from tabpilot.engine.data.inputs import prepare_frame
    from tabpilot.engine.training.preprocess import output_sources

    r = trained.result
    pre = r.model.pipeline.named_steps["pre"]
    width = pre.transform(prepare_frame(r.holdout.head(5), r.model.features)).shape[1]
    sources = output_sources(pre)
    assert len(sources) == width
    inputs = {c for f in r.model.features for c, _ in f.input_columns()}
    assert set(sources) <= inputs
