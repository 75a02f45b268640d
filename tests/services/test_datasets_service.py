"""Dataset staging and description, without HTTP."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabpilot.errors import DataFileError
from tabpilot.services.datasets import (
    StagedUpload,
    UploadTooLarge,
    clean_filename,
    default_dataset_name,
    describe_dataset,
    read_upload,
)


def test_staged_upload_hashes_and_limits(tmp_path: Path) -> None:
    import hashlib

    with StagedUpload(directory=tmp_path / "up", filename="a.csv", limit_bytes=10) as upload:
        upload.write(b"12345")
        upload.write(b"67890")
        with pytest.raises(UploadTooLarge, match="larger than"):
            upload.write(b"x")
        upload.finish()
        assert upload.path.read_bytes() == b"1234567890"
        assert upload.sha256 == hashlib.sha256(b"1234567890").hexdigest()
        assert upload.n_bytes == 10
    assert not upload.path.exists()
    assert list((tmp_path / "up").iterdir()) == []


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("data.csv", "data.csv"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\sales.csv.gz", "sales.csv.gz"),
        ("..", "upload.csv"),
        ("", "upload.csv"),
        (None, "upload.csv"),
        (".hidden.csv", "hidden.csv"),
        ("bad\x00\x1bname.csv", "badname.csv"),
        ("x" * 400 + ".csv", "x" * 255),
    ],
)
def test_clean_filename(raw: str | None, expected: str) -> None:
    assert clean_filename(raw) == expected


def test_default_dataset_name() -> None:
    assert default_dataset_name("Sales 2024.CSV.gz") == "Sales 2024"
    assert default_dataset_name("data.tsv") == "data.tsv"


def test_read_errors_name_the_upload_not_the_temp_file(tmp_path: Path) -> None:
    with StagedUpload(directory=tmp_path, filename="mine.csv", limit_bytes=1000) as upload:
        upload.write(b"a,b\n1,2\n3,4,5\n")
        upload.finish()
        with pytest.raises(DataFileError) as caught:
            read_upload(upload)
    error = caught.value
    assert error.message.startswith("mine.csv")
    assert str(tmp_path) not in error.message and str(tmp_path) not in str(error.details)
    assert error.details["path"] == "mine.csv" and error.line == 3


def test_describe_dataset_warnings_targets_and_preview() -> None:
    n = 100
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "order_id": np.arange(n),
            "same": ["x"] * n,
            "empty": [None] * 97 + ["a", "b", "c"],
            "score": np.where(rng.random(n) < 0.2, np.nan, rng.normal(size=n)),
            "city": [f"c{i % 70}" for i in range(n)],
            "when": pd.date_range("2024-01-01", periods=n).astype(str),
            "y": rng.choice(["a", "b"], size=n),
        }
    )
    frame.loc[5] = frame.loc[4]
    frame.loc[5, "order_id"] = 5
    described = describe_dataset(frame)
    warnings = {(w["column"], w["kind"]) for w in described["warnings"]}
    assert {
        ("order_id", "identifier"),
        ("same", "constant"),
        ("empty", "mostly_missing"),
        ("score", "missing"),
        ("city", "high_cardinality"),
    } <= warnings
    targets = {c["name"]: c["as_target"] for c in described["columns"]}
    assert targets["y"]["problem_type"] == "binary"
    assert targets["score"]["problem_type"] == "regression"
    assert targets["same"]["problem_type"] is None
    preview = described["preview"]
    assert preview["columns"] == list(frame.columns) and len(preview["rows"]) == 20
    score_cell = preview["rows"][0][3]
    assert score_cell is None or isinstance(score_cell, float)
    import json

    json.dumps(described, allow_nan=False)  # JSON-ready: no NaN, no numpy types


def test_too_few_rows_and_duplicates_are_warned() -> None:
    frame = pd.DataFrame({"a": [1, 1, 2], "y": [0, 0, 1]})
    kinds = {w["kind"] for w in describe_dataset(frame)["warnings"]}
    assert {"too_few_rows", "duplicate_rows"} <= kinds
