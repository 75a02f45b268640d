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
    from tabpilot.engine.training.metrics import METRICS

    for name, spec in METRICS.items():
        expected = "higher" if spec.greater_is_better else "lower"
        assert metric_direction(name) == expected, name


def test_parse_job_ids() -> None:
    assert parse_job_ids("a, b,,a ,c") == ["a", "b", "c"]
    assert parse_job_ids(["a", "b,c", "a"]) == ["a", "b", "c"]
    assert parse_job_ids("") == []
