"""The preprocessing half of every model: a ColumnTransformer over the model input columns.

Built only from parts that export to ONNX exactly (checked by tests): numbers are imputed
with the median (skl2onnx silently ignores SimpleImputer's add_indicator, so there is no
missing-value indicator); categories are one-hot encoded when few, or
ordinal encoded when many. Categories too rare to learn from are left out of the encoder's
list, so they share the code of unseen values. Free text becomes the presence (0/1) of its
most frequent words. Fitted on the training split only.

What it does is said here too, beside the code that does it: `KIND_TREATMENT` per kind of
feature, and `describe_preprocessing` per column from the fitted transformer. The reports
show these words and write none of their own.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from tabpilot.engine.data.inputs import FeatureSpec
from tabpilot.engine.wording import format_number

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


# -- what it does, in words ------------------------------------------------------------------

_GAPS = "missing values filled with the median of the training rows"
# What preprocessing does to each kind of feature.
KIND_TREATMENT: dict[str, str] = {
    "numeric": _GAPS,
    "boolean": f"read as 1/0 (true/yes/1 → 1); {_GAPS}",
    "categorical": f"one-hot encoded when there are at most {MAX_ONE_HOT} frequent "
    "categories, otherwise one integer code per category; categories with too few training "
    "rows share the code of unseen values; missing is a category of its own",
    "datetime": "split into year, month, day, day of week, day of year and days since 1970 "
    f"(plus hour and minute when times are present), then treated as numbers: {_GAPS}",
    "text": f"the presence (0/1) of up to {TEXT_MAX_WORDS} words, each found in at least "
    f"{TEXT_MIN_SHARE:.0%} of the training rows",
}


def describe_kinds(features: list[FeatureSpec]) -> list[tuple[str, int, str]]:
    """(kind, number of features, treatment) for each kind of feature present."""
    counts: dict[str, int] = {}
    for f in features:
        counts[f.kind] = counts.get(f.kind, 0) + 1
    return [(k, n, KIND_TREATMENT.get(k, "")) for k, n in counts.items()]


def describe_preprocessing(pre: ColumnTransformer, features: list[FeatureSpec]) -> dict[str, str]:
    """What the fitted preprocessor does to each of the user's columns, by column name."""
    owner = {c: f.name for f in features for c, _ in f.input_columns()}
    kinds = {f.name: f.kind for f in features}
    out: dict[str, str] = {}
    for _name, trans, cols in pre.transformers_:
        if isinstance(trans, str):  # "drop", or an empty remainder
            continue
        names = [str(c) for c in ([cols] if isinstance(cols, str) else cols)]
        if isinstance(trans, SimpleImputer):
            for col, stat in zip(names, trans.statistics_, strict=True):
                feature = owner.get(col, col)
                out.setdefault(feature, _imputed(kinds.get(feature, "numeric"), float(stat)))
        else:
            out[owner.get(names[0], names[0])] = _encoded(trans)
    for f in features:
        if f.name not in out and f.kind == "categorical":
            out[f.name] = "left out: every category too rare to learn from"
        elif f.name not in out and f.kind == "text":
            out[f.name] = "left out: no word is frequent enough to learn from"
    return out


def _imputed(kind: str, median: float) -> str:
    if kind == "datetime":
        return "split into date parts; missing values filled with the median of the training rows"
    if math.isnan(median):
        return "all training values missing: left out"
    base = "read as 1/0" if kind == "boolean" else "used as a number"
    shown = format_number(median)
    return f"{base}; missing values filled with the median of the training rows ({shown})"


def _encoded(trans: Any) -> str:
    if isinstance(trans, OneHotEncoder):
        cats = _count(len(trans.categories_[0]), "category", "categories")
        return f"one-hot encoded ({cats}; unseen categories get no column)"
    if isinstance(trans, OrdinalEncoder):
        cats = _count(len(trans.categories_[0]), "frequent category", "frequent categories")
        return f"integer codes ({cats}; rarer and unseen ones share one code)"
    if isinstance(trans, CountVectorizer):
        words = _count(len(trans.vocabulary_), "frequent word", "frequent words")
        return f"the presence (0/1) of {words}"
    return type(trans).__name__


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def output_sources(pre: ColumnTransformer) -> list[str]:
    """For each output column of a fitted ColumnTransformer, the input column it came from."""
    out: list[str] = []
    for name, trans, cols in pre.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        names = [str(c) for c in ([cols] if isinstance(cols, str) else cols)]
        if name == "remainder" and not names:
            continue
        if isinstance(trans, str) and trans == "passthrough":
            out.extend(names)
        elif isinstance(trans, SimpleImputer):
            # A column with no training value is dropped unless keep_empty_features.
            stats = np.asarray(trans.statistics_, dtype="float64")
            keep = trans.keep_empty_features
            out.extend(c for c, s in zip(names, stats, strict=True) if keep or not math.isnan(s))
        else:
            out.extend(_encoder_sources(trans, names))
    return out


def _encoder_sources(trans: Any, cols: list[str]) -> list[str]:
    names = [str(n) for n in trans.get_feature_names_out(cols)]
    if len(cols) == 1:
        return cols * len(names)
    out = []
    for n in names:  # several inputs: match each output name to its input's name
        match = max((c for c in cols if n.startswith(c)), key=len, default=None)
        if match is None:
            raise ValueError(f'cannot tell which column output "{n}" comes from')
        out.append(match)
    return out
