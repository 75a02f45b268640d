"""Dataset staging and description, without HTTP."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tabpilot.errors import ChildFailed, DataFileError, UploadTooLarge
from tabpilot.services.datasets import (
    StagedUpload,
    clean_filename,
    default_dataset_name,
    describe_dataset,
    inspect_file,
    inspect_upload,
)
from tabpilot.services.isolated import call_in_child


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


@pytest.mark.parametrize("in_child", [False, True])
def test_read_errors_name_the_upload_not_the_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_child: bool
) -> None:
    """The same error whether the file is read in the server or (big files) in a child."""
    import tabpilot.services.datasets as datasets

    if in_child:
        monkeypatch.setattr(datasets, "ISOLATE_ABOVE_BYTES", 0)
    with StagedUpload(directory=tmp_path, filename="mine.csv", limit_bytes=1000) as upload:
        upload.write(b"a,b\n1,2\n3,4,5\n")
        upload.finish()
        with pytest.raises(DataFileError) as caught:
            inspect_upload(upload)
    error = caught.value
    assert type(error) is DataFileError
    assert error.message.startswith("mine.csv, line 3")
    assert str(tmp_path) not in error.message and str(tmp_path) not in str(error.details)
    assert error.details["path"] == "mine.csv" and error.line == 3


def test_big_uploads_are_inspected_in_a_child_with_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the threshold the work runs in a child process, with the same profile."""
    import tabpilot.services.datasets as datasets

    body = b"x;y;label\n" + b"".join(f"{i};{i % 7};{'ab'[i % 2]}\n".encode() for i in range(50))
    with StagedUpload(directory=tmp_path, filename="big.csv", limit_bytes=10**6) as upload:
        upload.write(body)
        upload.finish()
        in_thread = inspect_upload(upload)
        monkeypatch.setattr(datasets, "ISOLATE_ABOVE_BYTES", 0)
        in_child = inspect_upload(upload)
    assert in_child == in_thread
    assert in_child["n_rows"] == 50 and in_child["file"]["delimiter"] == ";"


def test_a_child_that_dies_is_a_clear_error() -> None:
    with pytest.raises(ChildFailed, match="stopped before finishing"):
        call_in_child(os._exit, 3, what="testing")
    with pytest.raises(ChildFailed, match="Testing failed unexpectedly: ZeroDivisionError"):
        call_in_child(divmod, 1, 0, what="testing")


def test_inspect_file_reports_what_the_reader_detected(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes("a\tb\n1\t\xe9\n2\tx\n".encode("cp1252"))
    facts = inspect_file(str(path))["file"]
    assert facts["delimiter"] == "\t" and facts["compressed"] is False
    assert facts["encoding"] in {"cp1252", "latin-1"}


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
