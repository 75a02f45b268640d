"""Everything the command line shows: the two consoles, the live training line, the model card
as tables, the user table and error lines.

User text (paths, column and model names, error messages) is never read as Rich markup or
emoji codes: every line is assembled as a `rich.text.Text` from plain values and our own
(text, style) labels in `line`, and every table cell goes through `_table`. A column called
`price[usd]` or a folder called `x[/y]` prints as itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tabpilot.engine.card import ModelCard

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

# A piece of a line: plain text shown as it is, or (text, style) for our own labels.
Part = str | tuple[str, str]


def line(*parts: Part) -> Text:
    """One line of plain text and styled labels; nothing in it is parsed as markup."""
    return Text.assemble(*parts)


def say(*parts: Part, err: bool = False) -> None:
    """Print one line (on stderr with `err`), wrapped by the terminal rather than by Rich."""
    (err_console if err else console).print(line(*parts), soft_wrap=True)


def print_error(message: str) -> None:
    """The one line an error a user can fix prints on stderr."""
    say(("Error:", "bold red"), " ", message, err=True)


def print_internal_error(exc: BaseException) -> None:
    say(
        ("Internal error:", "bold red"),
        f" {type(exc).__name__}: {exc}\n"
        "This is a bug in Tabpilot; rerun with TABPILOT_DEBUG=1 to see the traceback.",
        err=True,
    )


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Table:
    """A table whose title, headers and cells are all plain text."""
    table = Table(title=Text(title, style="table.title"), title_justify="left")
    for column in columns:
        table.add_column(Text(column))
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def fmt(value: Any) -> str:
    """A metric or count for a table cell: 4 significant digits, a dash for nothing."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class ProgressView:
    """A live line on stderr while training: phase, elapsed against budget, trials, best score.

    Use as a context manager and pass `update` as the engine's progress callback.
    """

    def __init__(self) -> None:
        # markup=False: the detail carries model names and the engine's messages.
        self.progress = Progress(
            TextColumn("{task.fields[phase]:<10}", style="bold", markup=False),
            BarColumn(),
            TextColumn("{task.fields[clock]}", markup=False),
            TimeElapsedColumn(),
            TextColumn("{task.fields[detail]}", markup=False),
            console=err_console,
            transient=False,
        )
        self.task: Any = None

    def __enter__(self) -> ProgressView:
        self.progress.__enter__()
        self.task = self.progress.add_task("train", total=1.0, phase="reading", clock="", detail="")
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.progress.update(self.task, completed=1.0, phase="done")
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def update(self, event: Any) -> None:
        """Show one `ProgressEvent` of the engine."""
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


def print_summary(card: ModelCard, paths: dict[str, Path], elapsed: float) -> None:
    """The model card after training (and in `info`): data, choices, scores, files."""
    console.print()
    _print_data_and_budget(card, elapsed)
    for table in _leaderboards(card):
        console.print(table)
    for decision in card.decisions:
        say(("Note:", "cyan"), f" {decision}")
    console.print(_metrics_table(card))
    if card.feature_importance:
        top = ", ".join(
            f"{f['feature']} ({f['importance']:.3g})" for f in card.feature_importance[:8]
        )
        say(("Most important:", "bold"), f" {top}")
    say(("Files:", "bold"))
    for name, path in paths.items():
        say(f"  {name:<12} {path}")


def _print_data_and_budget(card: ModelCard, elapsed: float) -> None:
    say(
        ("Problem:", "bold"),
        f" {card.problem_type} ({card.problem_reason}); target ",
        (card.target, "bold"),
    )
    rows = card.rows
    say(
        ("Rows:", "bold"),
        f" {rows.used:,} used of {rows.total:,} ({rows.train:,} train, {rows.test:,} held out)",
    )
    for removed in rows.removed:
        say(f"  removed {removed['rows']:,} row(s): {removed['reason']}")
    budget = card.budget
    say(("Budget:", "bold"), f" {budget.seconds:.0f} s ({budget.reason}); took {elapsed:.1f} s")
    if card.dropped_columns:
        say(("Columns not used:", "bold"))
        for dropped in card.dropped_columns:
            say(f"  {dropped['name']}: {dropped['detail']}")
    for warning in card.warnings:
        say(("Warning", "yellow"), f" {warning['column']}: {warning['detail']}")


def _leaderboards(card: ModelCard) -> tuple[Table, Table]:
    """The search's leaderboard (one row per kind) and the candidates compared held out."""
    label = card.metric.label
    with_cv = any(r.get("cv_score") is not None for r in card.leaderboard)
    # Above the bagging size the candidates are chosen on validation rows instead.
    chosen_by = "cv_score" if with_cv else "valid_score"
    with_cv = with_cv or any(r.get("valid_score") is not None for r in card.leaderboard)
    searched: list[list[str]] = []
    candidates: list[list[str]] = []
    for row in card.leaderboard:
        if row.get("candidate"):
            mark = " ✔" if row["estimator"] == card.chosen.name else ""
            cells = [row["label"] + mark]
            if with_cv:
                cells.append(fmt(row.get(chosen_by)))
            candidates.append([*cells, fmt(row["holdout_score"]), fmt(row["fit_seconds"])])
        else:
            searched.append(
                [
                    row["label"] + (" ★" if row.get("best") else ""),
                    fmt(row["validation_score"]),
                    str(row["trials"]),
                    fmt(row["search_seconds"]),
                ]
            )
    board = _table(
        "Leaderboard (search, validation score)",
        ("estimator", label, "trials", "seconds"),
        searched,
    )
    columns = ["model"]
    if with_cv:
        where = "out-of-fold, training rows" if chosen_by == "cv_score" else "validation rows"
        columns.append(f"{label} ({where})")
    columns += [f"{label} (held-out)", "fit seconds"]
    return board, _table("Candidates", columns, candidates)


def _metrics_table(card: ModelCard) -> Table:
    hold, base = card.holdout, card.baseline
    rows = [
        (key, fmt(value), fmt(base.get(key)))
        for key, value in hold.items()
        if isinstance(value, int | float) or value is None
    ]
    return _table("Held-out metrics", ("metric", "model", "baseline"), rows)


def print_features(card: ModelCard) -> None:
    """The features table of `info`: kind, share missing, range or first values."""
    rows = []
    for feature in card.features:
        values = feature.values
        if values is not None:
            span = ", ".join(values[:6]) + (" …" if len(values) > 6 else "")
        else:
            span = f"{fmt(feature.details.get('min'))} .. {fmt(feature.details.get('max'))}"
        rows.append((feature.name, feature.kind, f"{feature.missing_fraction:.1%}", span))
    console.print(_table("Features", ("name", "kind", "missing", "range / values"), rows))


def print_users(found: Sequence[Any]) -> None:
    """`users list`: name, id and creation time of each user (never a token)."""
    rows = [(u.name, u.id, u.created_at.strftime("%Y-%m-%d %H:%M UTC")) for u in found]
    console.print(_table(f"{len(found)} user(s)", ("name", "id", "created"), rows))
