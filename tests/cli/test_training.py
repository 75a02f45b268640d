"""The command line as a user drives it: train, predict, info, demo, and clear errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from tabpilot.cli import main
from tests.conftest import make_mixed_frame


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("cli-data") / "train.csv"
    make_mixed_frame(400, task="binary", seed=7).to_csv(data, index=False)
    return data


@pytest.fixture(scope="module")
def trained(data_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    out = tmp_path_factory.mktemp("cli") / "model"
    result = CliRunner().invoke(
        main, ["train", str(data_csv), "--target", "label", "--time-budget", "6", "--out", str(out)]
    )
    return data_csv, out, result.output


@pytest.mark.slow
def test_train_prints_summary_and_writes_bundle(trained: tuple[Path, Path, str]) -> None:
    _, out, output = trained
    assert "Problem: binary" in output
    assert "customer_id: looks like an identifier" in output
    assert "Leaderboard" in output and "Held-out metrics" in output
    for name in ("model.onnx", "model.pkl", "model.json"):
        assert (out / name).is_file()
        assert name in output


@pytest.mark.slow
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

    # A path that looks like markup is printed as it is.
    odd = tmp_path / "preds[/b].csv"
    result = CliRunner().invoke(main, ["predict", str(out), "-i", str(inp), "-o", str(odd)])
    assert result.exit_code == 0, result.output
    assert f"Wrote 25 prediction(s) to {odd}" in result.output


@pytest.mark.slow
def test_info_shows_the_card(trained: tuple[Path, Path, str]) -> None:
    _, out, _ = trained
    result = CliRunner().invoke(main, ["info", str(out)])
    assert result.exit_code == 0, result.output
    assert "Features" in result.output and "color" in result.output
    as_json = CliRunner().invoke(main, ["info", str(out), "--json"])
    assert json.loads(as_json.output)["target"] == "label"


@pytest.mark.slow
def test_info_prints_names_that_look_like_markup_as_they_are(
    trained: tuple[Path, Path, str], tmp_path: Path
) -> None:
    _, out, _ = trained
    folder = tmp_path / "models[usd]"
    shutil.copytree(out, folder)
    card = json.loads((folder / "model.json").read_text())
    card["target"] = "price[usd]"
    card["dropped_columns"][0]["name"] = "id[/i]"
    card["features"][0]["name"] = "x[/y]"
    card["features"][1]["name"] = ":smile:"
    card["feature_importance"][0]["feature"] = "[bold]z"
    (folder / "model.json").write_text(json.dumps(card))

    result = CliRunner().invoke(main, ["info", str(folder)])

    assert result.exit_code == 0, result.output
    for text in ("target price[usd]", "id[/i]: ", "x[/y]", ":smile:", "Most important: [bold]z"):
        assert text in result.output
    assert f"{folder / 'model.json'}" in result.output


@pytest.mark.parametrize("name", ["models[usd]", "x[/y]", "[bold]:smile:"])
def test_errors_print_user_text_as_it_is(tmp_path: Path, name: str) -> None:
    folder = tmp_path / name
    result = CliRunner().invoke(main, ["info", str(folder)])
    assert result.exit_code == 2, result.output
    assert f"Error: {folder} has no model.json" in result.output
    assert "Traceback" not in result.output

    result = CliRunner().invoke(main, ["train", str(folder / "data.csv"), "--target", name])
    assert result.exit_code == 2, result.output
    assert f"{folder / 'data.csv'}" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "nope"], 'Target column "nope" not found; columns are: customer_id'),
        (["--target", "label", "--exclude", "zzz"], "--exclude: column(s) not found: 'zzz'"),
        (["--target", "label", "--time-budget", "0.5"], "Time budget 0.5 s is out of range"),
        (["--target", "label", "--metric", "rmse"], 'Metric "rmse" is not available'),
        (["--target", "[/x]"], 'Target column "[/x]" not found'),
    ],
)
def test_train_errors_are_one_clear_line(data_csv: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["train", str(data_csv), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output


def test_bad_files_are_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    result = CliRunner().invoke(main, ["train", str(empty), "--target", "y"])
    assert result.exit_code == 2 and "empty.csv" in result.output
    missing = CliRunner().invoke(main, ["train", str(tmp_path / "nope.csv"), "--target", "y"])
    assert missing.exit_code == 2 and "nope.csv" in missing.output
    short = tmp_path / "short.csv"
    short.write_text("x1,color\n1.0\n")
    result = CliRunner().invoke(main, ["predict", str(tmp_path), "-i", str(short), "-o", "p.csv"])
    assert result.exit_code == 2 and "not a Tabpilot model folder" in result.output


@pytest.mark.slow
def test_a_short_row_at_prediction_names_its_line(
    trained: tuple[Path, Path, str], tmp_path: Path
) -> None:
    _, out, _ = trained
    short = tmp_path / "short.csv"
    short.write_text("x1,color\n1.0\n")
    result = CliRunner().invoke(main, ["predict", str(out), "-i", str(short), "-o", "p.csv"])
    assert result.exit_code == 2 and "line 2" in result.output


# Runs the command line in a fresh interpreter where the `train` extra's libraries cannot be
# imported, as after `pip install tabpilot` without [train].
WITHOUT_TRAIN_EXTRA = """
import sys

BLOCKED = {"flaml", "lightgbm", "xgboost", "sklearn", "skl2onnx", "onnxmltools", "onnx"}


class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())
from tabpilot.cli import main

main()
"""


@pytest.mark.parametrize("command", [["train", "{data}", "--target", "label"], ["demo"]])
def test_without_the_train_extra_training_names_the_install_line(
    data_csv: Path, tmp_path: Path, command: list[str]
) -> None:
    args = [a.format(data=data_csv) for a in command] + (
        ["--out", str(tmp_path / "model")] if command[0] == "demo" else []
    )
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TRAIN_EXTRA, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'tabpilot[train]'" in result.stderr
    assert "is not installed" in result.stderr
    assert "bug" not in result.stderr and "Traceback" not in result.stderr
