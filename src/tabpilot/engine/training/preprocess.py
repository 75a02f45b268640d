"""The preprocessing half of every model: a ColumnTransformer over the model input columns.

Built only from parts that export to ONNX exactly (checked by tests): numbers are imputed
with the median (skl2onnx silently ignores SimpleImputer's add_indicator, so there is no
missing-value indicator); categories are one-hot encoded when few, or
ordinal encoded when many. Categories too rare to learn from are left out of the encoder's
list, so they share the code of unseen values. Free text becomes the presence (0/1) of its
most frequent words. Fitted on the training split only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

# A category needs this many training rows to get its own code.
MIN_CATEGORY_COUNT = 5
# At most this many categories one-hot encoded; more become ordinal codes.
MAX_ONE_HOT = 12
MAX_CATEGORIES = 500
# Free text: the presence of up to this many words, each in at least TEXT_MIN_SHARE of rows.
TEXT_MAX_WORDS = 40
TEXT_MIN_SHARE = 0.01
# Words are ASCII letters, digits and "_" (2 or more), case kept: the exported ONNX graph's
# tokenizer uses the same regular expression (RE2 has no Unicode \w), so they agree exactly.
TOKEN_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_]+"


def frequent_categories(
    values: pd.Series, y: np.ndarray | None = None, *, order_by_target: bool = False
) -> list[str]:
    """Categories common enough to learn from.

    With `order_by_target`, categories are ordered by the mean (encoded) target, so that
    ordinal codes let tree splits group similar categories; otherwise by frequency.
    """
    counts = values.value_counts()
    keep = counts[counts >= min(MIN_CATEGORY_COUNT, max(1, len(values) // 100))]
    keep = keep.iloc[:MAX_CATEGORIES]
    if order_by_target and y is not None and len(keep) > MAX_ONE_HOT:
        means = pd.Series(y, index=values.index).groupby(values).mean()
        return [str(c) for c in means.reindex(keep.index).sort_values(kind="stable").index]
    return [str(c) for c in keep.index]


def build_preprocessor(
    prepared: pd.DataFrame,
    columns: list[tuple[str, str]],
    y: np.ndarray | None = None,
    *,
    order_by_target: bool = False,
) -> ColumnTransformer:
    """An unfitted ColumnTransformer for the prepared input columns.

    Args:
        prepared: model input columns (see `inputs.prepare_frame`) of the rows it will be
            fitted on; used to pick the categories.
        columns: (name, "numeric" | "categorical") pairs, in input order.
        y: encoded target of those rows, to order high-cardinality categories.
        order_by_target: order high-cardinality categories by mean target (binary,
            regression); multiclass targets have no single mean to order by.
    """
    numeric = [name for name, kind in columns if kind == "numeric"]
    parts: list[tuple[str, object, list[str]]] = []
    if numeric:
        parts.append(("num", SimpleImputer(strategy="median"), numeric))
    for i, (name, kind) in enumerate(columns):
        if kind == "text":
            vectorizer = text_vectorizer(prepared[name])
            if vectorizer is not None:
                parts.append((f"text{i}", vectorizer, name))
            continue
        if kind != "categorical":
            continue
        cats = frequent_categories(prepared[name], y, order_by_target=order_by_target)
        if not cats:
            continue  # every value rare: nothing to learn from this column
        if len(cats) <= MAX_ONE_HOT:
            encoder: object = OneHotEncoder(
                categories=[cats], handle_unknown="ignore", sparse_output=False
            )
        else:
            encoder = OrdinalEncoder(
                categories=[cats], handle_unknown="use_encoded_value", unknown_value=-1
            )
        parts.append((f"cat{i}", encoder, [name]))
    return ColumnTransformer(parts, remainder="drop", sparse_threshold=0)


def text_vectorizer(values: pd.Series) -> CountVectorizer | None:
    """Word-presence features for a text column, or None if no word is common enough."""
    min_rows = max(2, int(len(values) * TEXT_MIN_SHARE))
    vectorizer = CountVectorizer(
        binary=True,
        lowercase=False,
        token_pattern=TOKEN_PATTERN,
        min_df=min_rows,
        max_features=TEXT_MAX_WORDS,
        dtype=np.float64,
    )
    try:
        vectorizer.fit(values)
    except ValueError:  # no word in enough rows: nothing to learn
        return None
    # Fixing the vocabulary makes the later fit (inside the pipeline) choose the same words.
    return CountVectorizer(
        binary=True,
        lowercase=False,
        token_pattern=TOKEN_PATTERN,
        vocabulary=sorted(vectorizer.vocabulary_),
        dtype=np.float64,
    )
