"""Metric directions and job id parsing of the compare service."""

from __future__ import annotations

from tabpilot.services.compare import metric_direction, parse_job_ids


def test_metric_directions() -> None:
    for name in ("accuracy", "roc_auc", "r2", "f1", "macro_f1", "balanced_accuracy"):
        assert metric_direction(name) == "higher"
    for name in ("log_loss", "rmse", "mae", "mape"):
        assert metric_direction(name) == "lower"
    assert metric_direction("confusion_matrix") is None


def test_engine_metrics_have_known_directions() -> None:
    from tabpilot.engine.choices import ALL_METRICS

    for name, spec in ALL_METRICS.items():
        expected = "higher" if spec.greater_is_better else "lower"
        assert metric_direction(name) == expected, name


def test_every_reported_metric_is_in_the_one_table() -> None:
    import numpy as np

    from tabpilot.engine.choices import ALL_METRICS
    from tabpilot.engine.training.metrics import evaluate_classification, evaluate_regression

    y = np.array([0, 1, 1, 0, 1, 0])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])
    reported = set(evaluate_classification(y, proba.argmax(axis=1), proba, 2))
    reported |= set(evaluate_regression(y.astype(float), proba[:, 1]))
    reported -= {"confusion_matrix", "per_class"}
    assert reported <= set(ALL_METRICS), reported - set(ALL_METRICS)


def test_older_cards_metric_name_still_has_its_direction() -> None:
    assert metric_direction("f1_macro") == "higher"  # model cards before "macro_f1"


def test_parse_job_ids() -> None:
    assert parse_job_ids("a, b,,a ,c") == ["a", "b", "c"]
    assert parse_job_ids(["a", "b,c", "a"]) == ["a", "b", "c"]
    assert parse_job_ids("") == []
