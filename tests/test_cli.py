"""The command line as a user drives it: train, predict, info, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from tabpilot.cli import main
from tests.conftest import make_mixed_frame


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    root = tmp_path_factory.mktemp("cli")
    data = root / "train.csv"
    make_mixed_frame(400, task="binary", seed=7).to_csv(data, index=False)
    out = root / "model"
    result = CliRunner().invoke(
        main, ["train", str(data), "--target", "label", "--time-budget", "6", "--out", str(out)]
    )
    return data, out, result.output


def test_train_prints_summary_and_writes_bundle(trained: tuple[Path, Path, str]) -> None:
    _, out, output = trained
    assert "Problem: binary" in output
    assert "customer_id: looks like an identifier" in output
    assert "Leaderboard" in output and "Held-out metrics" in output
    for name in ("model.onnx", "model.pkl", "model.json"):
        assert (out / name).is_file()
        assert name in output


def test_predict_writes_labels_and_probabilities(
    trained: tuple[Path, Path, str], tmp_path: Path
) -> None:
    data, out, _ = trained
    rows = pd.read_csv(data).head(25).drop(columns=["label"])
    rows["unused"] = 1
    inp, preds = tmp_path / "new.csv", tmp_path / "preds.csv"
    rows.to_csv(inp, index=False)
    result = CliRunner().invoke(main, ["predict", str(out), "-i", str(inp), "-o", str(preds)])
    assert result.exit_code == 0, result.output
    assert "Ignored column(s) the model does not use: customer_id, constant, unused" in (
        result.output
    )
    table = pd.read_csv(preds)
    assert list(table.columns) == ["prediction", "proba_no", "proba_yes"]
    assert len(table) == 25
    assert set(table["prediction"]) <= {"no", "yes"}


def test_info_shows_the_card(trained: tuple[Path, Path, str]) -> None:
    _, out, _ = trained
    result = CliRunner().invoke(main, ["info", str(out)])
    assert result.exit_code == 0, result.output
    assert "Features" in result.output and "color" in result.output
    as_json = CliRunner().invoke(main, ["info", str(out), "--json"])
    assert json.loads(as_json.output)["target"] == "label"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nope"], 'Target column "nope" not found; columns are: customer_id'),
        (["--target", "label", "--exclude", "zzz"], "--exclude: column(s) not found: 'zzz'"),
        (["--target", "label", "--time-budget", "0.5"], "Time budget 0.5 s is out of range"),
        (["--target", "label", "--metric", "rmse"], 'Metric "rmse" is not available'),
    ],
)
def test_train_errors_are_one_clear_line(
    trained: tuple[Path, Path, str], args: list[str], message: str
) -> None:
    data, _, _ = trained
    result = CliRunner().invoke(main, ["train", str(data), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_files_are_clear_errors(tmp_path: Path, trained: tuple[Path, Path, str]) -> None:
    _, out, _ = trained
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = CliRunner().invoke(main, ["train", str(empty), "--target", "y"])
    assert result.exit_code == 2 and "empty.csv" in result.output
    missing = CliRunner().invoke(main, ["train", str(tmp_path / "nope.csv"), "--target", "y"])
    assert missing.exit_code == 2 and "nope.csv" in missing.output
    short = tmp_path / "short.csv"
    short.write_text("x1,color\n1.0\n")
    result = CliRunner().invoke(main, ["predict", str(out), "-i", str(short), "-o", "p.csv"])
    assert result.exit_code == 2 and "line 2" in result.output
    result = CliRunner().invoke(main, ["predict", str(tmp_path), "-i", str(short), "-o", "p.csv"])
    assert result.exit_code == 2 and "not a Tabpilot model folder" in result.output
