"""What the platform says about data and preprocessing: one set of words, and true ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tabpilot.engine.data.profiling import profile_frame
from tabpilot.engine.data.quality import KINDS, dataset_warnings, report_warnings
from tabpilot.engine.data.summary import summarize_data
from tabpilot.engine.reports import render_eda_report


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "row_id": np.arange(n),
            "age": np.where(rng.random(n) < 0.3, np.nan, rng.normal(40, 10, n)),
            "income": rng.lognormal(10, 1, n),
            "city": rng.choice(["a", "b", "c", None], size=n),
            "code": [f"k{i % 80}" for i in range(n)],
            "same": ["x"] * n,
            "y": rng.choice(["no", "yes"], size=n, p=[0.8, 0.2]),
        }
    )
    return frame


def test_preprocessing_describes_the_median_fill_and_no_flag() -> None:
    """Regression: gaps were said to get a missing-value flag (skl2onnx ignores
    add_indicator, so none is added) and columns with gaps were described as having none."""
    pytest.importorskip("sklearn")
    from tabpilot.engine.data.inputs import FeatureSpec, input_columns, prepare_frame
    from tabpilot.engine.training.preprocess import (
        KIND_TREATMENT,
        build_preprocessor,
        describe_kinds,
        describe_preprocessing,
    )

    frame = _frame()
    features = [
        FeatureSpec("age", "numeric"),
        FeatureSpec("income", "numeric"),
        FeatureSpec("city", "categorical"),
    ]
    X = prepare_frame(frame, features)
    pre = build_preprocessor(X, input_columns(features)).fit(X)
    described = describe_preprocessing(pre, features)
    median = float(np.nanmedian(frame["age"]))
    assert "filled with the median of the training rows" in described["age"]
    assert f"{median:.4g}" in described["age"]
    assert "one-hot encoded" in described["city"]
    texts = [*described.values(), *KIND_TREATMENT.values()]
    texts += [text for _, _, text in describe_kinds(features)]
    for text in texts:
        assert "flag" not in text and "indicator" not in text and "no gaps" not in text, text
    # What was described is what the transformer does: no indicator column is added (age,
    # income, then one column per city, missing being a city of its own).
    assert pre.transform(X).shape[1] == 2 + frame["city"].nunique(dropna=False)


def test_api_and_eda_warnings_say_the_same_words() -> None:
    frame = _frame()
    profile = profile_frame(frame)
    api = dataset_warnings(profile)
    kinds = {w.kind for w in api}
    assert {"missing", "identifier", "constant", "high_cardinality"} <= kinds
    html = render_eda_report(summarize_data(frame, profile, target="y"))
    warnings = html[html.index('id="warnings"') : html.index('id="target"')]
    for w in api:
        # Rendered HTML escapes quotes; compare with the same escaping.
        shown = w.detail.replace("&", "&amp;").replace('"', "&#34;").replace("'", "&#39;")
        assert shown in warnings, w
        assert KINDS[w.kind].title in warnings
    assert "flag" not in warnings
    # The report adds what needs the rows or the target, never other words for the same.
    more = report_warnings(frame, profile, target="y", classification=True)
    assert [w for w in more if w.kind in kinds] == api
    assert "imbalance" in {w.kind for w in more}


def test_warning_kinds_all_have_words() -> None:
    frame = _frame()
    profile = profile_frame(frame)
    for w in report_warnings(frame, profile, target="y", classification=True):
        assert w.kind in KINDS and w.detail
