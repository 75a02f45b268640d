"""Every estimator that can win exports to ONNX, and ONNX agrees with the pickle."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from tabpilot.engine.card import ModelCard
from tabpilot.engine.choices import ESTIMATORS
from tabpilot.engine.data.columns import build_feature_plan
from tabpilot.engine.data.inputs import input_columns, prepare_frame, prepare_row
from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.data.profiling import profile_frame
from tabpilot.engine.serving.predict import SMALL_BATCH_ROWS, OnnxPredictor
from tabpilot.engine.training.calibrate import TemperatureScaled, with_temperature
from tabpilot.engine.training.estimators import (
    build_ensemble,
    build_estimator,
    constant_baseline,
    default_lightgbm,
    default_linear,
)
from tabpilot.engine.training.export import build_onnx
from tabpilot.engine.training.model import TabpilotModel
from tabpilot.engine.training.preprocess import build_preprocessor
from tabpilot.errors import InvalidInput
from tests.conftest import make_mixed_frame

PROBLEMS = {
    "binary": ProblemType.BINARY,
    "multiclass": ProblemType.MULTICLASS,
    "regression": ProblemType.REGRESSION,
}


# Mid-sized configurations in each estimator's own search-space terms, so the graphs to
# convert are non-trivial (FLAML's first tries are a handful of tiny trees).
CONFIGS = {
    "lgbm": {"n_estimators": 40, "num_leaves": 15, "learning_rate": 0.1},
    "xgboost": {"n_estimators": 40, "max_leaves": 15, "learning_rate": 0.1},
    "rf": {"n_estimators": 30, "max_features": 0.6, "max_leaves": 60},
    "extra_tree": {"n_estimators": 30, "max_features": 0.6, "max_leaves": 60},
    "linear": {},
}


def _init_config(name: str, problem: ProblemType, n_rows: int) -> dict:
    if name == "linear":
        return {"C": 1.0} if problem.is_classification else {"alpha": 0.01, "l1_ratio": 0.5}
    return dict(CONFIGS[name])


def _fit_model(task: str, estimator: str) -> tuple[TabpilotModel, pd.DataFrame]:
    problem = PROBLEMS[task]
    frame = make_mixed_frame(500, seed=3, task=task)
    train, test = frame.iloc[:400], frame.iloc[400:]
    plan = build_feature_plan(train, profile_frame(train), target="label")
    if problem.is_classification:
        classes = sorted(train["label"].unique().tolist())
        y = pd.Categorical(train["label"], categories=classes).codes.astype(int)
    else:
        classes, y = None, train["label"].to_numpy(dtype=float)
    prepared = prepare_frame(train, plan.features)
    pre = build_preprocessor(
        prepared,
        input_columns(plan.features),
        y,
        order_by_target=problem != ProblemType.MULTICLASS,
    )
    if estimator == "default_lgbm":
        est = default_lightgbm(problem, seed=0, n_jobs=1)
    elif estimator == "ensemble":
        members = [
            (
                name,
                build_estimator(
                    name,
                    _init_config(name, problem, len(train)),
                    problem=problem,
                    seed=0,
                    n_jobs=1,
                    y_train=np.asarray(y),
                ),
            )
            for name in ("lgbm", "xgboost", "linear")
        ]
        est = build_ensemble(members, problem)
    elif estimator == "blend":
        # What a weighted blend ships: searched, default and linear models, unequal weights.
        members = [
            (
                "search",
                build_estimator(
                    "xgboost",
                    _init_config("xgboost", problem, len(train)),
                    problem=problem,
                    seed=0,
                    n_jobs=1,
                    y_train=np.asarray(y),
                ),
            ),
            ("default_lgbm", default_lightgbm(problem, seed=0, n_jobs=1)),
            ("default_linear", default_linear(problem)),
        ]
        est = build_ensemble(members, problem, weights=[11, 2, 7])
    elif estimator == "calibrated":
        # Temperature-scaled: alone (classification) and inside a weighted blend.
        if problem.is_classification:
            scaled = TemperatureScaled(default_lightgbm(problem, seed=0, n_jobs=1), 0.6)
            est = build_ensemble(
                [("scaled", scaled), ("linear", with_temperature(default_linear(problem), 2.5))],
                problem,
                weights=[3, 1],
            )
        else:
            est = default_linear(problem)
    elif estimator == "calibrated_alone":
        est = (
            TemperatureScaled(default_lightgbm(problem, seed=0, n_jobs=1), 0.4)
            if problem.is_classification
            else default_lightgbm(problem, seed=0, n_jobs=1)
        )
    elif estimator == "default_linear":
        est = default_linear(problem)
    elif estimator == "baseline":
        est = constant_baseline(problem, n_jobs=1)
    else:
        config = _init_config(estimator, problem, len(train))
        est = build_estimator(
            estimator, config, problem=problem, seed=0, n_jobs=1, y_train=np.asarray(y)
        )
    pipe = Pipeline([("pre", clone(pre)), ("model", est)]).fit(prepared, y)
    model = TabpilotModel(
        pipeline=pipe, features=plan.features, problem_type=problem, classes=classes, target="label"
    )
    return model, test


def _card(model: TabpilotModel, inputs: list) -> ModelCard:
    written = {
        "target": "label",
        "classes": model.classes,
        "features": [f.to_dict() for f in model.features],
        "inputs": inputs,
    }
    return ModelCard.from_dict(written)


@pytest.mark.parametrize("task", list(PROBLEMS))
@pytest.mark.parametrize(
    "estimator",
    [
        *ESTIMATORS,
        "ensemble",
        "blend",
        "calibrated",
        "calibrated_alone",
        "default_lgbm",
        "default_linear",
        "baseline",
    ],
)
def test_onnx_agrees_with_pickle(task: str, estimator: str) -> None:
    model, test = _fit_model(task, estimator)
    onnx_bytes, inputs = build_onnx(model)
    # The pickle round-trip is what model.pkl users get.
    restored: TabpilotModel = pickle.loads(pickle.dumps(model))
    predictor = OnnxPredictor(onnx_bytes, _card(model, inputs))
    result = predictor.predict(test.drop(columns=["label"]))
    expected = restored.predict(test)
    if model.classes is None:
        np.testing.assert_allclose(result.labels, expected, rtol=1e-4, atol=1e-3)
        assert result.probabilities is None
    else:
        proba = restored.predict_proba(test)
        assert list(result.probabilities.columns) == [str(c) for c in model.classes]
        np.testing.assert_allclose(result.probabilities.to_numpy(), proba.to_numpy(), atol=1e-4)
        assert list(result.labels) == list(expected)
        # Labels come back as they were in the data: text, or the integer codes 1/2/3.
        assert {type(v) for v in result.labels} <= {type(c) for c in model.classes}


@pytest.fixture(scope="module")
def lgbm_predictor() -> tuple[OnnxPredictor, pd.DataFrame]:
    model, test = _fit_model("binary", "lgbm")
    onnx_bytes, inputs = build_onnx(model)
    return OnnxPredictor(onnx_bytes, _card(model, inputs)), test


def test_missing_columns_are_named(lgbm_predictor: tuple[OnnxPredictor, pd.DataFrame]) -> None:
    predictor, test = lgbm_predictor
    with pytest.raises(InvalidInput, match=r"Missing column\(s\) the model needs: 'x1', 'color'"):
        predictor.predict(test.drop(columns=["x1", "color"]))


def test_extra_columns_are_ignored_and_reported(
    lgbm_predictor: tuple[OnnxPredictor, pd.DataFrame],
) -> None:
    predictor, test = lgbm_predictor
    result = predictor.predict(test.assign(extra=1))
    assert "extra" in result.ignored_columns
    assert "customer_id" in result.ignored_columns  # dropped as an identifier in training
    assert len(result.labels) == len(test)


def test_bad_values_name_row_and_column(
    lgbm_predictor: tuple[OnnxPredictor, pd.DataFrame],
) -> None:
    predictor, test = lgbm_predictor
    bad = test.copy()
    bad["x2"] = bad["x2"].astype(object)
    bad.iloc[2, bad.columns.get_loc("x2")] = "twelve"
    with pytest.raises(InvalidInput, match=r'Column "x2" expects numbers.*row 3 \(\'twelve\'\)'):
        predictor.predict(bad)
    bad = test.copy()
    bad.iloc[0, bad.columns.get_loc("signup")] = "not a date"
    with pytest.raises(InvalidInput, match=r'Column "signup" expects dates.*row 1'):
        predictor.predict(bad)


def test_unseen_categories_and_missing_values_predict(
    lgbm_predictor: tuple[OnnxPredictor, pd.DataFrame],
) -> None:
    predictor, test = lgbm_predictor
    odd = test.head(3).copy()
    odd["color"] = ["purple", None, "red"]
    odd["city"] = ["atlantis", "city01", None]
    odd["x1"] = [np.nan, np.nan, 1.0]
    odd["signup"] = [None, "2021-05-05", "2019-01-01"]
    odd["flag"] = [None, True, False]
    result = predictor.predict(odd)
    assert len(result.labels) == 3
    assert np.allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_empty_input_is_an_error(lgbm_predictor: tuple[OnnxPredictor, pd.DataFrame]) -> None:
    predictor, test = lgbm_predictor
    with pytest.raises(InvalidInput, match="No rows"):
        predictor.predict(test.head(0))


def test_from_dir_explains_a_wrong_folder(tmp_path: Path) -> None:
    from tabpilot.errors import NotFound

    with pytest.raises(NotFound, match="not a Tabpilot model folder"):
        OnnxPredictor.from_dir(tmp_path)


# -- one row without pandas, and single rows against batches -------------------------------------


def _json_rows(frame: pd.DataFrame) -> list[dict]:
    """Rows as a JSON client sends them: missing values as null."""
    return json.loads(frame.to_json(orient="records"))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("x1", 1),
        ("x1", -2.5),
        ("x1", True),
        ("x1", None),
        ("x1", float("nan")),
        ("x1", " 3.5 "),
        ("x1", "1e3"),
        ("x1", "lots"),
        ("x1", [1, 2]),
        ("x2", 10**20),
        ("color", 7),
        ("color", 1.0),
        ("color", None),
        ("color", True),
        ("color", "purple"),
        ("city", float("nan")),
        ("flag", "Yes"),
        ("flag", " f "),
        ("flag", ""),
        ("flag", 0),
        ("flag", 2.0),
        ("flag", "maybe"),
        ("flag", None),
        ("signup", "2021-02-03"),
        ("signup", "2021-02-03T10:11:12"),
        ("signup", "2021-02-03 10:11:12+02:00"),
        ("signup", "03/04/2021"),
        ("signup", "Feb 3 2021"),
        ("signup", ""),
        ("signup", None),
        ("signup", "not a date"),
        ("signup", 20210203),
        ("comment", None),
        ("comment", "premium fast"),
        ("comment", 12),
    ],
)
def test_single_row_equals_a_one_row_frame(
    lgbm_predictor: tuple[OnnxPredictor, pd.DataFrame], column: str, value: object
) -> None:
    """One row, however its values are typed, predicts exactly as a one-row frame does."""
    predictor, test = lgbm_predictor
    row = _json_rows(test.drop(columns=["label"]).head(1))[0]
    row[column] = value
    try:
        expected = predictor.predict(pd.DataFrame.from_records([row]))
    except InvalidInput as exc:
        with pytest.raises(InvalidInput) as caught:
            predictor.predict_row(row)
        assert caught.value.message == exc.message
        return
    got = predictor.predict_row(row)
    assert got.labels == expected.labels
    np.testing.assert_array_equal(got.proba, expected.proba)
    assert got.ignored_columns == expected.ignored_columns


def test_plain_rows_skip_pandas(lgbm_predictor: tuple[OnnxPredictor, pd.DataFrame]) -> None:
    predictor, test = lgbm_predictor
    for row in _json_rows(test.drop(columns=["label"]).head(20)):
        assert prepare_row(row, predictor.features) is not None


@pytest.mark.parametrize("task", list(PROBLEMS))
def test_single_rows_agree_with_the_batch_and_the_pickle(task: str) -> None:
    model, test = _fit_model(task, "lgbm")
    onnx_bytes, inputs = build_onnx(model)
    predictor = OnnxPredictor(onnx_bytes, _card(model, inputs))
    rows = _json_rows(test.drop(columns=["label"]).head(25))
    # Vary how values are sent: numbers as text, booleans as words, missing as null.
    rows[0]["x1"] = str(rows[0]["x1"])
    rows[1]["flag"] = "yes"
    rows[2]["flag"] = " FALSE "
    rows[3]["x2"] = None
    rows[4]["color"] = None
    rows[5]["flag"] = 1
    rows[6]["signup"] = "2021-02-03T10:00:00"
    rows[7]["city"] = 7
    batch = predictor.predict(pd.DataFrame.from_records(rows))
    singles = [predictor.predict_row(row) for row in rows]
    # And the pickled model (what model.pkl users get), on the same rows.
    restored: TabpilotModel = pickle.loads(pickle.dumps(model))
    expected = restored.predict(pd.DataFrame.from_records(rows))
    if model.classes is None:
        np.testing.assert_allclose([one.labels[0] for one in singles], batch.labels, rtol=1e-6)
        np.testing.assert_allclose(batch.labels, expected, rtol=1e-4, atol=1e-3)
    else:
        assert [one.labels[0] for one in singles] == batch.labels == list(expected)
        np.testing.assert_allclose(
            np.vstack([one.proba for one in singles]), batch.proba, rtol=0, atol=1e-6
        )
    # A few rows run on a one-thread session, larger batches on the default one: they agree.
    assert predictor._session_for(1).get_session_options().intra_op_num_threads == 1
    big = pd.DataFrame.from_records(rows * 3)
    assert len(big) > SMALL_BATCH_ROWS and predictor._session_for(len(big)) is predictor.session
    np.testing.assert_allclose(
        np.asarray(predictor.predict(big).values[:25], dtype=float)
        if model.classes is None
        else predictor.predict(big).proba[:25],
        np.asarray(batch.values, dtype=float) if model.classes is None else batch.proba,
        rtol=1e-6,
        atol=1e-6,
    )
