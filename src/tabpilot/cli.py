"""The `tabpilot` command line: train, predict, info and demo.

Errors a user can cause print one clear message and exit with status 2; anything else is
a bug and says so (set TABPILOT_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from tabpilot import __version__
from tabpilot.errors import InvalidInput, TabpilotError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Turn domain errors into one line and exit 2; never show a traceback by default."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TabpilotError as exc:
            err_console.print(f"[bold red]Error:[/] {exc.message}", markup=True, soft_wrap=True)
            sys.exit(2)
        except KeyboardInterrupt:
            err_console.print("Interrupted.")
            sys.exit(130)
        except Exception as exc:
            if os.environ.get("TABPILOT_DEBUG"):
                raise
            err_console.print(
                f"[bold red]Internal error:[/] {type(exc).__name__}: {exc}\n"
                "This is a bug in Tabpilot; rerun with TABPILOT_DEBUG=1 to see the traceback.",
                soft_wrap=True,
            )
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


# Every service command can point at a data directory; the settings check it and name
# any problem, so click only parses a path here.
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of the default SQLite database and artifacts (TABPILOT_DATA_DIR).",
)


def _split_names(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(v.strip() for v in value.split(",") if v.strip())


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tabpilot")
def main() -> None:
    """Tabpilot: a CSV in, a trained, explained, exportable model out."""


@main.command()
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
    from tabpilot.engine.training.run import run_training

    out_dir = out or Path("tabpilot-models") / f"{_slug(data)}-{datetime.now():%Y%m%d-%H%M%S}"
    from tabpilot.engine.training.train import TrainOptions

    options = TrainOptions(
        target=target,
        problem_type=problem_type,
        metric=metric,
        time_budget=time_budget,
        include=_split_names(include),
        exclude=_split_names(exclude),
        estimators=_split_names(estimators) or None,
        seed=seed,
    )
    with _ProgressView() as view:
        outcome = run_training(
            data,
            options,
            out_dir=out_dir,
            progress=view.update,
            started=started,
            reports=not no_reports,
        )
    _print_summary(outcome.card, outcome.paths, outcome.elapsed)


def _slug(path: Path) -> str:
    stem = path.name.split(".")[0] or "data"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem)[:40]


class _ProgressView:
    """A live line: phase, elapsed against budget, trials, best score."""

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.fields[phase]:<10}"),
            BarColumn(),
            TextColumn("{task.fields[clock]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}"),
            console=err_console,
            transient=False,
        )
        self.task: Any = None

    def __enter__(self) -> _ProgressView:
        self.progress.__enter__()
        self.task = self.progress.add_task("train", total=1.0, phase="reading", clock="", detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.progress.update(self.task, completed=1.0, phase="done")
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, event: Any) -> None:
        detail = ""
        if event.trials:
            detail = f"trials {event.trials}"
            if event.best_score is not None:
                detail += f" | best {event.best_score:.4g} ({event.best_estimator})"
        elif event.message:
            detail = event.message
        budget = event.budget or 0.0
        self.progress.update(
            self.task,
            completed=min(1.0, event.elapsed / budget) if budget else 0.0,
            phase=event.phase,
            clock=f"{event.elapsed:5.1f}/{budget:.0f} s" if budget else "",
            detail=detail,
        )


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _print_summary(card: dict[str, Any], paths: dict[str, Path], elapsed: float) -> None:
    c = console
    c.print()
    c.print(
        f"[bold]Problem:[/] {card['problem_type']} ({card['problem_reason']}); "
        f"target [bold]{card['target']}[/]",
        soft_wrap=True,
    )
    rows = card["rows"]
    c.print(
        f"[bold]Rows:[/] {rows['used']:,} used of {rows['total']:,} "
        f"({rows['train']:,} train, {rows['test']:,} held out)"
    )
    for removed in rows["removed"]:
        c.print(f"  removed {removed['rows']:,} row(s): {removed['reason']}", soft_wrap=True)
    budget = card["budget"]
    c.print(
        f"[bold]Budget:[/] {budget['seconds']:.0f} s ({budget['reason']}); took {elapsed:.1f} s",
        soft_wrap=True,
    )
    if card["dropped_columns"]:
        c.print("[bold]Columns not used:[/]")
        for d in card["dropped_columns"]:
            c.print(f"  {d['name']}: {d['detail']}", soft_wrap=True, markup=False)
    for w in card["warnings"]:
        c.print(f"[yellow]Warning[/] {w['column']}: {w['detail']}", soft_wrap=True)

    board = Table(title="Leaderboard (search, validation score)", title_justify="left")
    for col in ("estimator", card["metric"]["label"], "trials", "seconds"):
        board.add_column(col)
    with_cv = any(r.get("cv_score") is not None for r in card["leaderboard"])
    cands = Table(title="Candidates", title_justify="left")
    cands.add_column("model")
    if with_cv:
        cands.add_column(f"{card['metric']['label']} (5-fold CV, training rows)")
    cands.add_column(f"{card['metric']['label']} (held-out)")
    cands.add_column("fit seconds")
    for row in card["leaderboard"]:
        if row.get("candidate"):
            mark = " ✔" if row["estimator"] == card["chosen"]["name"] else ""
            cells = [row["label"] + mark]
            if with_cv:
                cells.append(_fmt(row.get("cv_score")))
            cells += [_fmt(row["holdout_score"]), _fmt(row["fit_seconds"])]
            cands.add_row(*cells)
        else:
            board.add_row(
                row["label"] + (" ★" if row.get("best") else ""),
                _fmt(row["validation_score"]),
                str(row["trials"]),
                _fmt(row["search_seconds"]),
            )
    c.print(board)
    c.print(cands)
    for decision in card["decisions"]:
        c.print(f"[cyan]Note:[/] {decision}", soft_wrap=True)

    hold, base = card["metrics"]["holdout"], card["metrics"]["baseline"]
    metrics = Table(title="Held-out metrics", title_justify="left")
    metrics.add_column("metric")
    metrics.add_column("model")
    metrics.add_column("baseline")
    for key, value in hold.items():
        if isinstance(value, int | float) or value is None:
            metrics.add_row(key, _fmt(value), _fmt(base.get(key)))
    c.print(metrics)
    if card["feature_importance"]:
        top = ", ".join(
            f"{f['feature']} ({f['importance']:.3g})" for f in card["feature_importance"][:8]
        )
        c.print(f"[bold]Most important:[/] {top}", soft_wrap=True)
    c.print("[bold]Files:[/]")
    for name, path in paths.items():
        c.print(f"  {name:<12} {path}", soft_wrap=True, markup=False)


@main.command()
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
    table = read_csv(input_path)
    result = predictor.predict(table.frame)
    out = result.to_frame()
    output_path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output_path, index=False)
    if result.ignored_columns:
        err_console.print(
            f"Ignored column(s) the model does not use: {', '.join(result.ignored_columns)}",
            soft_wrap=True,
            markup=False,
        )
    err_console.print(
        f"Wrote {len(out):,} prediction(s) to {output_path} ({result.seconds * 1000:.1f} ms)",
        soft_wrap=True,
        markup=False,
    )


@main.command()
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the whole model card as JSON.")
@friendly_errors
def info(model_dir: Path, as_json: bool) -> None:
    """Show the model card of MODEL_DIR."""
    card_path = model_dir / "model.json"
    if not card_path.is_file():
        raise InvalidInput(f"{model_dir} has no model.json; is it a folder made by tabpilot train?")
    card = json.loads(card_path.read_text())
    if as_json:
        click.echo(json.dumps(card, indent=2))
        return
    paths = {name: model_dir / name for name in card.get("files", {})}
    paths["model.json"] = card_path
    _print_summary(card, paths, card["budget"].get("elapsed") or 0.0)
    features = Table(title="Features", title_justify="left")
    for col in ("name", "kind", "missing", "range / values"):
        features.add_column(col)
    for f in card["features"]:
        if "values" in f:
            span = ", ".join(map(str, f["values"][:6])) + (" …" if len(f["values"]) > 6 else "")
        else:
            span = f"{_fmt(f.get('min'))} .. {_fmt(f.get('max'))}"
        features.add_row(f["name"], f["kind"], f"{f['missing_fraction']:.1%}", span)
    console.print(features)


@main.command()
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
    from tabpilot.demo import run_demo

    run_demo(out=out, time_budget=time_budget, console=console)


# -- jobs: `worker` and `run-job` -------------------------------------------------------------


@main.command()
@click.option(
    "--workers",
    "-w",
    type=click.IntRange(min=1),
    default=None,
    help="Jobs to run at once. Default: workers=N of TABPILOT_RUNNER_URI if local://, else 1.",
)
@data_dir_option
@friendly_errors
def worker(workers: int | None, data_dir: Path | None) -> None:
    """Run queued jobs in this process, against the configured stores, until Ctrl-C.

    Each job trains in its own child process; jobs whose worker died are retried once or
    failed. Any number of workers (and servers) may share the same stores.
    """
    from tabpilot.jobs.worker import configure_logging, run_worker
    from tabpilot.settings import load_settings

    settings = load_settings(**({"data_dir": data_dir} if data_dir is not None else {}))
    configure_logging()
    run_worker(settings, workers=workers)


@main.command("run-job")
@click.argument("job_id")
@friendly_errors
def run_job(job_id: str) -> None:
    """Run the queued job JOB_ID here and exit: 0 if it succeeded, 1 if not.

    Needs nothing but the job id and the store settings (TABPILOT_METADATA_URI,
    TABPILOT_ARTIFACT_URI): the job's whole specification is read from the store. This is the
    entry point of a Batch container.
    """
    from tabpilot.jobs.worker import configure_logging, run_single_job
    from tabpilot.records import JobStatus
    from tabpilot.settings import load_settings

    settings = load_settings()
    configure_logging()
    job = run_single_job(settings, job_id)
    if job.status == JobStatus.SUCCEEDED:
        console.print(f"Job {job.id} succeeded: model {job.model_id}", markup=False)
        return
    reason = f": {job.error}" if job.error else ""
    err_console.print(f"Job {job.id} {job.status.value}{reason}", markup=False, soft_wrap=True)
    sys.exit(1)


# -- end of jobs commands ----------------------------------------------------------------------


# -- service: `serve` and `users` -------------------------------------------------------------


def _settings_with(**overrides: Any) -> Any:
    """`load_settings` with the command-line options that were given (None: from the env)."""
    from tabpilot.settings import load_settings

    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


@main.command()
@click.option("--host", default=None, help="Address to listen on (TABPILOT_HOST; 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="TCP port (TABPILOT_PORT; 8000)."
)
@data_dir_option
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@friendly_errors
def serve(host: str | None, port: int | None, data_dir: Path | None, log_level: str) -> None:
    """Serve the platform: the REST API (docs at /docs) and the job runner, until Ctrl-C.

    Settings are checked first; each bad one is named. With TABPILOT_AUTH=local (the default)
    only loopback addresses are allowed, since nobody has to log in.
    """
    import logging

    import uvicorn

    from tabpilot.api.app import create_app
    from tabpilot.context import build_context
    from tabpilot.services.auth import check_bind_host

    settings = _settings_with(host=host, port=port, data_dir=data_dir)
    check_bind_host(settings)
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx = build_context(settings)
    try:
        app = create_app(ctx)
        shown = f"[{settings.host}]" if ":" in settings.host else settings.host
        err_console.print(
            f"Tabpilot {__version__}: http://{shown}:{settings.port} (API docs at /docs); "
            f"data in {settings.data_dir}; auth {settings.auth}; runner {settings.runner_uri}",
            markup=False,
            soft_wrap=True,
        )
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level)
    finally:
        ctx.metadata.close()


@main.group()
def users() -> None:
    """API users of a server run with TABPILOT_AUTH=token."""


@users.command("create")
@click.argument("name")
@data_dir_option
@friendly_errors
def users_create(name: str, data_dir: Path | None) -> None:
    """Create the user NAME and print their API token (shown this once; only a hash is kept)."""
    from tabpilot.metadata import build_metadata_store
    from tabpilot.services.users import create_user

    settings = _settings_with(data_dir=data_dir)
    with build_metadata_store(settings.metadata_uri) as store:
        user, token = create_user(store, name=name)
    err_console.print(
        f"Created user {user.name} ({user.id}). The API token below is shown only now; send it "
        "as 'Authorization: Bearer <token>'.",
        markup=False,
        soft_wrap=True,
    )
    click.echo(token)
    if settings.auth != "token":
        err_console.print(
            "Note: TABPILOT_AUTH is local, so the server ignores tokens; "
            "run it with TABPILOT_AUTH=token to require them.",
            markup=False,
            soft_wrap=True,
        )


@users.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@friendly_errors
def users_list(data_dir: Path | None, as_json: bool) -> None:
    """List the users (never their tokens)."""
    from tabpilot.metadata import build_metadata_store
    from tabpilot.services.users import list_all_users

    settings = _settings_with(data_dir=data_dir)
    with build_metadata_store(settings.metadata_uri) as store:
        found = list_all_users(store)
    if as_json:
        rows = [{"id": u.id, "name": u.name, "created_at": u.created_at.isoformat()} for u in found]
        click.echo(json.dumps(rows, indent=2))
        return
    if not found:
        err_console.print("No users yet; create one with: tabpilot users create NAME")
        return
    table = Table(title=f"{len(found)} user(s)", title_justify="left")
    for col in ("name", "id", "created"):
        table.add_column(col)
    for u in found:
        table.add_row(u.name, u.id, u.created_at.strftime("%Y-%m-%d %H:%M UTC"))
    console.print(table)


@users.command("rotate")
@click.argument("name")
@data_dir_option
@friendly_errors
def users_rotate(name: str, data_dir: Path | None) -> None:
    """Give the user NAME a new API token (printed once); the old one stops working."""
    from tabpilot.metadata import build_metadata_store
    from tabpilot.services.users import rotate_token

    settings = _settings_with(data_dir=data_dir)
    with build_metadata_store(settings.metadata_uri) as store:
        user, token = rotate_token(store, name=name)
    err_console.print(f"New API token of {user.name}; the old one no longer works:", markup=False)
    click.echo(token)


# -- end of service commands -------------------------------------------------------------------


if __name__ == "__main__":  # pragma: no cover
    main()
