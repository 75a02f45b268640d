import numpy as np
import pandas as pd
import pytest

from tabpilot.engine.data.columns import build_feature_plan
from tabpilot.engine.data.problem import ProblemType
from tabpilot.engine.data.profiling import ColumnKind, looks_like_id_name, profile_frame
from tabpilot.errors import InvalidInput


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "order_id": rng.permutation(np.arange(5000, 5000 + n)),
            "row": np.arange(n),
            "sku": [f"SKU-{i:05d}X" for i in rng.permutation(n)],
            "product_width": rng.normal(10, 2, size=n),
            "paid": rng.integers(0, 500, size=n),
            "constant": 7,
            "copy_of_width": None,
            "notes": [f"free text number {i} with several words here" for i in range(n)],
            "mostly_empty": [1.0, 2.0] + [np.nan] * (n - 2),
            "color": rng.choice(["a", "b"], size=n),
            "y": rng.choice(["u", "v"], size=n),
        }
    ).assign(copy_of_width=lambda f: f["product_width"])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("customer_id", True),
        ("customerID", True),
        ("PassengerId", True),
        ("uuid", True),
        ("EmployeeNumber", True),
        ("product_width", False),
        ("paid", False),
        ("valid", False),
    ],
)
def test_id_names_are_tokens_not_substrings(name: str, expected: bool) -> None:
    assert looks_like_id_name(name) is expected


def test_plan_drops_useless_columns_with_reasons() -> None:
    frame = _frame()
    plan = build_feature_plan(frame, profile_frame(frame), target="y")
    reasons = {d.name: d.reason for d in plan.dropped}
    assert reasons == {
        "order_id": "identifier",
        "row": "identifier",
        "sku": "identifier",
        "constant": "constant",
        "copy_of_width": "duplicate",
        "mostly_empty": "mostly_missing",
    }
    kinds = {f.name: f.kind for f in plan.features}
    assert kinds == {
        "product_width": "numeric",
        "paid": "numeric",
        "notes": "text",
        "color": "categorical",
    }
    assert all(d.detail for d in plan.dropped)


def test_user_can_force_columns_in_and_out() -> None:
    frame = _frame()
    plan = build_feature_plan(
        frame, profile_frame(frame), target="y", include=("order_id",), exclude=("paid",)
    )
    names = [f.name for f in plan.features]
    assert "order_id" in names and "paid" not in names
    assert any(d.name == "paid" and d.reason == "excluded" for d in plan.dropped)
    assert any(w.column == "order_id" and w.kind == "forced" for w in plan.warnings)


def test_unknown_forced_column_lists_the_columns() -> None:
    frame = _frame()
    with pytest.raises(
        InvalidInput, match=r"--exclude: column\(s\) not found: 'nope'.*columns are"
    ):
        build_feature_plan(frame, profile_frame(frame), target="y", exclude=("nope",))


def test_leakage_is_a_warning_not_a_drop() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=500)
    frame = pd.DataFrame({"leak": y * 2 + 1, "noise": rng.normal(size=500), "y": y})
    plan = build_feature_plan(
        frame, profile_frame(frame), target="y", problem_type=ProblemType.REGRESSION
    )
    assert [f.name for f in plan.features] == ["leak", "noise"]
    assert [w.column for w in plan.warnings if w.kind == "leakage"] == ["leak"]

    labels = np.where(y > 0, "pos", "neg")
    frame = pd.DataFrame({"status": labels, "noise": y, "y": labels})
    frame["noise"] = rng.normal(size=500)
    plan = build_feature_plan(
        frame, profile_frame(frame), target="y", problem_type=ProblemType.BINARY
    )
    assert [w.column for w in plan.warnings if w.kind == "leakage"] == ["status"]


def test_profile_kinds() -> None:
    frame = pd.DataFrame(
        {
            "n": [1.5, 2.5, None, 4.0] * 10,
            "b": [True, False] * 20,
            "yn": ["yes", "no"] * 20,
            "d": [f"2021-01-0{i % 9 + 1}" for i in range(40)],
            "c": ["x", "y", "z", "x"] * 10,
        }
    )
    profile = profile_frame(frame)
    kinds = {c.name: c.kind for c in profile.columns}
    assert kinds == {
        "n": ColumnKind.NUMERIC,
        "b": ColumnKind.BOOLEAN,
        "yn": ColumnKind.BOOLEAN,
        "d": ColumnKind.DATETIME,
        "c": ColumnKind.CATEGORICAL,
    }
    n = profile.column("n")
    assert n.n_missing == 10 and n.n_distinct == 3
    assert n.stats["min"] == 1.5 and n.stats["max"] == 4.0
    assert profile.n_duplicate_rows > 0
    assert profile.column("c").top_values[0] == ("x", 20)
