"""The model commands: train, predict, info and demo. They work on files, without a server."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path

import click

from tabpilot.cli.common import friendly_errors
from tabpilot.cli.display import ProgressView, print_features, print_summary, say
from tabpilot.engine.card import ModelCard
from tabpilot.errors import InvalidInput


def _split_names(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _slug(path: Path) -> str:
    stem = path.name.split(".")[0] or "data"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem)[:40]


# The training options, all declared here (the README's option table lists them too).
@click.command()
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", "-t", required=True, help="The column to predict.")
@click.option(
    "--time-budget",
    "-b",
    type=float,
    default=None,
    help="Seconds for the whole run, reading to export. Default: chosen from the data size.",
)
@click.option(
    "--metric",
    "-m",
    default=None,
    help="Metric to optimise: roc_auc, log_loss, accuracy, f1, macro_f1 (classification); "
    "rmse, mae, r2, mape (regression). Default: roc_auc / log_loss / rmse.",
)
@click.option(
    "--problem-type",
    "-p",
    type=click.Choice(["binary", "multiclass", "classification", "regression"]),
    default=None,
    help="Override the detected problem type.",
)
@click.option("--exclude", "-x", default=None, help="Comma-separated columns not to use.")
@click.option(
    "--include", "-i", default=None, help="Comma-separated columns to use even if judged useless."
)
@click.option(
    "--estimators",
    "-e",
    default=None,
    help="Comma-separated subset of: lgbm, xgboost, rf, extra_tree, linear. Default: all.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the model bundle. Default: tabpilot-models/<file>-<time>.",
)
@click.option("--no-reports", is_flag=True, help="Skip eda.html and report.html.")
@friendly_errors
def train(
    data: Path,
    target: str,
    time_budget: float | None,
    metric: str | None,
    problem_type: str | None,
    exclude: str | None,
    include: str | None,
    estimators: str | None,
    seed: int,
    out: Path | None,
    no_reports: bool,
) -> None:
    """Train a model on DATA (a .csv or .csv.gz file) to predict --target."""
    started = time.perf_counter()
    # Imported here: the training libraries are an optional extra, and slow to load.
    from tabpilot.engine.spec import TrainRequest, TrainSpec
    from tabpilot.engine.training.run import run_training

    out_dir = out or Path("tabpilot-models") / f"{_slug(data)}-{datetime.now():%Y%m%d-%H%M%S}"
    # What needs no data is checked here; the engine decides the rest from the file.
    request = TrainRequest(
        target=target,
        problem_type=problem_type,  # type: ignore[arg-type]  # click.Choice checked it
        metric=metric,
        time_budget=time_budget,
        include=_split_names(include),
        exclude=_split_names(exclude),
        estimators=_split_names(estimators) or None,
        seed=seed,
    )
    spec = TrainSpec.from_request(request)
    with ProgressView() as view:
        outcome = run_training(
            data,
            spec,
            out_dir=out_dir,
            progress=view.update,
            started=started,
            reports=not no_reports,
        )
    print_summary(outcome.card, outcome.paths, outcome.elapsed)


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--input",
    "-i",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="CSV of rows to predict.",
)
@click.option(
    "--output",
    "-o",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the predictions CSV.",
)
@friendly_errors
def predict(model_dir: Path, input_path: Path, output_path: Path) -> None:
    """Predict the rows of --input with the model in MODEL_DIR (uses model.onnx)."""
    from tabpilot.engine.data.io import read_csv
    from tabpilot.engine.serving.predict import OnnxPredictor

    predictor = OnnxPredictor.from_dir(model_dir)
    table = read_csv(input_path, min_columns=1)  # a model may have a single feature
    result = predictor.predict(table.frame)
    out = result.to_frame(spreadsheet_safe_labels=True)  # the CSV may open in a spreadsheet
    output_path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output_path, index=False)
    if result.ignored_columns:
        ignored = ", ".join(result.ignored_columns)
        say(f"Ignored column(s) the model does not use: {ignored}", err=True)
    say(
        f"Wrote {len(out):,} prediction(s) to {output_path} ({result.seconds * 1000:.1f} ms)",
        err=True,
    )


@click.command()
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the whole model card as JSON.")
@friendly_errors
def info(model_dir: Path, as_json: bool) -> None:
    """Show the model card of MODEL_DIR."""
    card_path = model_dir / "model.json"
    if not card_path.is_file():
        raise InvalidInput(f"{model_dir} has no model.json; is it a folder made by tabpilot train?")
    written = json.loads(card_path.read_text())
    if as_json:
        click.echo(json.dumps(written, indent=2))
        return
    card = ModelCard.from_dict(written)
    paths = {name: model_dir / name for name in card.files}
    paths["model.json"] = card_path
    print_summary(card, paths, card.budget.elapsed or 0.0)
    print_features(card)


@click.command()
@click.option("--time-budget", "-b", type=float, default=30.0, show_default=True)
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("tabpilot-models/demo"),
    show_default=True,
)
@friendly_errors
def demo(time_budget: float, out: Path) -> None:
    """Train on a demo dataset (scikit-learn's breast cancer data) and predict with it."""
    from tabpilot.cli.demo import run_demo

    run_demo(out=out, time_budget=time_budget)
