"""services/training_plan: what training would do with a stored dataset, before any job."""

from __future__ import annotations

import pandas as pd
import pytest

from tabpilot.engine.data.profiling import ColumnKind, ColumnProfile
from tabpilot.errors import InvalidInput
from tabpilot.records import DatasetRecord
from tabpilot.services.datasets import describe_dataset
from tabpilot.services.training_plan import (
    class_shares,
    column_uses,
    distribution_bins,
    preview_target,
    valid_metrics,
)


def record(frame: pd.DataFrame) -> DatasetRecord:
    profile = describe_dataset(frame)
    return DatasetRecord(
        owner="me",
        name="t",
        filename="t.csv",
        sha256="0" * 64,
        n_bytes=1,
        n_rows=len(frame),
        n_columns=frame.shape[1],
        profile=profile,
    )


@pytest.fixture
def dataset() -> DatasetRecord:
    n = 100
    return record(
        pd.DataFrame(
            {
                "row_id": range(1000, 1000 + n),
                "city": [("oslo", "rome", "lima")[i % 3] for i in range(n)],
                "when": pd.date_range("2024-01-01", periods=n, freq="D").astype(str),
                "same": ["x"] * n,
                "label": ["a" if i % 5 else "b" for i in range(n)],
                "amount": [float(i % 37) for i in range(n)],
            }
        )
    )


def test_column_uses_follow_the_engine_detection_and_the_users_choices(dataset):
    uses = {u.name: u for u in column_uses(dataset, target="label")}
    assert uses["label"].role == "target"
    assert not uses["row_id"].used and "identifier" in uses["row_id"].reason
    assert not uses["same"].used and "same value" in uses["same"].reason
    assert uses["city"].feature_kind == "categorical"
    assert uses["when"].feature_kind == "datetime"
    assert uses["amount"].feature_kind == "numeric"
    forced = {
        u.name: u
        for u in column_uses(dataset, target="label", include=["row_id"], exclude=["city"])
    }
    assert forced["row_id"].used and forced["row_id"].forced
    assert "kept because you included it" in forced["row_id"].reason
    assert not forced["city"].used and forced["city"].reason == "left out by you"


def test_preview_target_classification_and_regression(dataset):
    label = preview_target(dataset, "label")
    assert label.problem_type == "binary" and label.default_metric == "roc_auc"
    assert label.spec is not None and label.spec.time_budget_reason
    assert [(s.label, s.count) for s in label.classes] == [("a", 80), ("b", 20)]
    assert {m.name for m in label.metrics} >= {"roc_auc", "f1"}
    assert "rmse" not in {m.name for m in label.metrics}

    amount = preview_target(dataset, "amount")
    assert amount.problem_type == "regression" and amount.default_metric == "rmse"
    assert amount.classes == []
    edges, rows = distribution_bins(amount.column, amount.n_present)
    assert edges[0] == 0 and edges[-1] == 36 and len(rows) == len(edges) - 1
    assert all(r > 0 for r in rows)

    same = preview_target(dataset, "same")
    assert same.spec is None and "target" in same.problems

    chosen = preview_target(dataset, "label", problem_type="regression")
    assert chosen.spec is None and "problem_type" in chosen.problems
    with pytest.raises(InvalidInput, match='Column "nope" not found'):
        preview_target(dataset, "nope")


def test_class_shares_group_the_classes_beyond_the_top_values():
    col = ColumnProfile(
        name="c",
        kind=ColumnKind.CATEGORICAL,
        dtype="object",
        n_missing=0,
        missing_fraction=0.0,
        n_distinct=12,
        unique_per_row=False,
        kind_reason="",
        top_values=[("a", 50), ("b", 30)],
    )
    shares = class_shares(col, 100)
    assert [(s.label, s.count) for s in shares] == [("a", 50), ("b", 30), ("10 other classes", 20)]
    assert class_shares(col, 0) == []


def test_valid_metrics_while_the_problem_is_unknown_lists_every_metric():
    assert len(valid_metrics(None)) > len(valid_metrics("regression")) > 0
