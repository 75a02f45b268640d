"""storage/keys.py: the one place artifact keys are built; ids and names cannot climb out."""

from __future__ import annotations

import pytest

from tabpilot.errors import InvalidInput
from tabpilot.records import new_id
from tabpilot.storage import keys


def test_the_layout_of_the_store() -> None:
    """Changing a key moves stored files: stores already in use would lose them."""
    assert keys.dataset_prefix("ds_1") == "datasets/ds_1"
    assert keys.dataset_data("ds_1") == "datasets/ds_1/data.csv"
    assert keys.dataset_data("ds_1", compressed=True) == "datasets/ds_1/data.csv.gz"
    assert keys.dataset_eda("ds_1") == "datasets/ds_1/eda.html"
    assert keys.dataset_file("ds_1", "x/y.csv") == "datasets/ds_1/x/y.csv"
    assert keys.model_prefix("mdl_1") == "models/mdl_1"
    assert keys.model_file("mdl_1", "model.onnx") == "models/mdl_1/model.onnx"
    assert keys.job_prefix("job_1") == "jobs/job_1"
    assert keys.in_prefix("models/mdl_1/", "report.html") == "models/mdl_1/report.html"
    for kind in ("ds", "mdl", "job"):
        assert keys.record_id(new_id(kind)).startswith(f"{kind}_")


@pytest.mark.parametrize("bad_id", ["", "..", ".", "a/b", "a\\b", "ds 1", "x" * 101, "é", None])
def test_ids_that_are_not_one_plain_segment_are_refused(bad_id: str) -> None:
    for build in (keys.dataset_prefix, keys.model_prefix, keys.job_prefix):
        with pytest.raises(InvalidInput, match="not a record id"):
            build(bad_id)
    with pytest.raises(InvalidInput):
        keys.model_file(bad_id, "model.onnx")


@pytest.mark.parametrize("bad_name", ["", "..", "../x", "a/../../b", "/etc/passwd", "a//b", "a\\b"])
def test_names_that_could_climb_out_are_refused(bad_name: str) -> None:
    with pytest.raises(InvalidInput):
        keys.model_file("mdl_1", bad_name)
    with pytest.raises(InvalidInput):
        keys.dataset_file("ds_1", bad_name)
    with pytest.raises(InvalidInput):
        keys.in_prefix("models/mdl_1", bad_name)


@pytest.mark.parametrize("bad_prefix", ["", "/", "../models", "models/../x"])
def test_prefixes_read_from_records_are_checked_too(bad_prefix: str) -> None:
    with pytest.raises(InvalidInput):
        keys.in_prefix(bad_prefix, "model.onnx")
