"""Write datasets beyond ../shared for bench/quality.py: wide synthetic tables and
scikit-learn's bundled real ones, with a manifest.json.

    .venv/bin/python bench/make_extra.py /tmp/extra
    .venv/bin/python bench/quality.py --data-dir /tmp/extra

The shared datasets are all narrow (at most 34 input columns) and the independent evaluation
uses datasets that are not in ../shared; these check that the engine is good at tabular data
in general. Wide tables (hundreds of columns, a few thousand rows) are where the per-column cost
of boosting and of k-fold bagging shows:

- wide_bin: 3,000 rows x 800 columns, binary, 30 informative (`make_classification`);
- wide_mc: 6,000 rows x 300 columns, 5 classes, 40 informative and 20 redundant;
- wide_reg: 4,000 rows x 300 columns, regression (Friedman #1: 5 columns matter, non-linearly);
- breast_cancer (569 x 30, binary), digits (1,797 x 64, 10 classes) and diabetes (442 x 10,
  regression): scikit-learn's bundled copies of the UCI data, so nothing is downloaded.

Every table is deterministic (fixed seeds), so a rerun writes the same files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
from sklearn.datasets import (
    load_breast_cancer,
    load_diabetes,
    load_digits,
    make_classification,
    make_friedman1,
)

# Run as a script: bench/ is on sys.path.
from quality_report import DEFAULT_METRIC


def _frame(X: object, y: object) -> pd.DataFrame:
    frame = pd.DataFrame(X).round(4)
    frame.columns = [f"f{i}" for i in range(frame.shape[1])]
    frame["y"] = y
    return frame


def wide_tables() -> dict[str, pd.DataFrame]:
    X, y = make_classification(
        n_samples=3000, n_features=800, n_informative=30, n_redundant=0, random_state=0
    )
    tables = {"wide_bin": _frame(X, y)}
    X, y = make_classification(
        n_samples=6000,
        n_features=300,
        n_informative=40,
        n_redundant=20,
        n_classes=5,
        n_clusters_per_class=2,
        random_state=1,
    )
    tables["wide_mc"] = _frame(X, [f"c{v}" for v in y])
    X, y = make_friedman1(n_samples=4000, n_features=300, noise=1.0, random_state=2)
    tables["wide_reg"] = _frame(X, y.round(4))
    return tables


def bundled_tables() -> dict[str, pd.DataFrame]:
    cancer = load_breast_cancer(as_frame=True).frame
    cancer["target"] = cancer["target"].map({0: "malignant", 1: "benign"})
    digits = load_digits(as_frame=True).frame
    digits["target"] = "d" + digits["target"].astype(str)
    diabetes = load_diabetes(as_frame=True, scaled=False).frame
    return {"breast_cancer": cancer, "digits": digits, "diabetes": diabetes}


MANIFEST = [
    {"name": "wide_bin", "task": "binary", "target": "y", "positive_class": "1"},
    {"name": "wide_mc", "task": "multiclass", "target": "y"},
    {"name": "wide_reg", "task": "regression", "target": "y"},
    {"name": "breast_cancer", "task": "binary", "target": "target", "positive_class": "malignant"},
    {"name": "digits", "task": "multiclass", "target": "target"},
    {"name": "diabetes", "task": "regression", "target": "target"},
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where to write the CSV files and manifest")
    args = parser.parse_args(argv)
    args.folder.mkdir(parents=True, exist_ok=True)
    tables = wide_tables() | bundled_tables()
    entries = []
    for entry in MANIFEST:
        name = entry["name"]
        tables[name].to_csv(args.folder / f"{name}.csv", index=False)
        entries.append(entry | {"file": f"{name}.csv", "metric": DEFAULT_METRIC[entry["task"]]})
        print(f"{name}: {tables[name].shape[0]:,} rows x {tables[name].shape[1] - 1} columns")
    manifest = {"description": "bench/make_extra.py", "datasets": entries}
    (args.folder / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
