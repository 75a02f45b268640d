"""The quality benchmark's comparison and tables, from its raw figures (see `quality.py`).

Kept apart from the running so that a finished run (or several, merged) can be read again:
`python bench/quality.py --report RUN.json [MORE.json ...]`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOOLS = ("tabpilot", "flaml", "autogluon")
TOOL_TITLES = {"tabpilot": "Tabpilot", "flaml": "raw FLAML", "autogluon": "AutoGluon"}
DEFAULT_METRIC = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}
SECONDARY_METRIC = {"binary": "accuracy", "multiclass": "accuracy", "regression": "r2"}
METRIC_TITLES = {
    "roc_auc": "ROC AUC",
    "log_loss": "log loss",
    "rmse": "RMSE",
    "accuracy": "accuracy",
    "balanced_accuracy": "bal. accuracy",
    "r2": "R²",
    "mae": "MAE",
}

# Targets of issue 2 (at a 60 s budget): never worse than raw FLAML beyond noise, better on
# average, wall time within budget + 10% (+ a few seconds on tiny budgets).
AUC_TOLERANCE = 0.005
LOSS_TOLERANCE = 0.03
WALL_TOLERANCE = 0.10
WALL_GRACE_S = 5.0


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    path: Path
    target: str
    task: str
    metric: str
    positive_class: str | None
    leakage_columns: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# Comparison with the targets


def wall_limit_s(budget: float) -> float:
    return max(budget * (1 + WALL_TOLERANCE), budget + WALL_GRACE_S)


def _metric(results: dict[str, Any], tool: str, name: str) -> float | None:
    entry = results.get(tool) or {}
    if entry.get("status") != "ok":
        return None
    value = entry.get("metrics", {}).get(name)
    return None if value is None or not math.isfinite(value) else float(value)


def compare_dataset(spec: DatasetSpec, results: dict[str, Any], *, budget: float) -> dict[str, Any]:
    """Tabpilot against raw FLAML on one dataset, against the issue's targets."""
    tab = _metric(results, "tabpilot", spec.metric)
    ref = _metric(results, "flaml", spec.metric)
    tab_entry = results.get("tabpilot") or {}
    wall = (tab_entry.get("train") or {}).get("wall_s")
    limit = wall_limit_s(budget)
    row: dict[str, Any] = {
        "metric": spec.metric,
        "tabpilot": tab,
        "flaml": ref,
        "autogluon": _metric(results, "autogluon", spec.metric),
        "tabpilot_wall_s": wall,
        "flaml_wall_s": ((results.get("flaml") or {}).get("train") or {}).get("wall_s"),
        "wall_limit_s": round(limit, 1),
        "within_budget": None if wall is None else wall <= limit,
        "delta": None,
        "gain": None,
        "outcome": None,
        "never_worse": None,
    }
    if tab is None:
        row["never_worse"] = False if "tabpilot" in results else None
        row["outcome"] = "Tabpilot failed" if "tabpilot" in results else None
        return row
    if ref is None:
        return row
    if spec.metric == "roc_auc":
        delta = tab - ref
        worse, better = delta < -AUC_TOLERANCE, delta > AUC_TOLERANCE
        # Relative reduction of the error 1 - AUC, comparable with the loss metrics below.
        gain = delta / max(1 - ref, 1e-9)
    else:
        delta = tab / ref - 1 if ref > 0 else tab - ref
        worse, better = delta > LOSS_TOLERANCE, delta < -LOSS_TOLERANCE
        gain = (ref - tab) / ref if ref > 0 else 0.0
    row.update(
        delta=delta,
        # Clipped so that one dataset cannot carry the average alone.
        gain=max(-1.0, min(1.0, gain)),
        outcome="better" if better else "worse" if worse else "tie",
        never_worse=not worse,
    )
    return row


def summarise(rows: dict[str, dict[str, Any]], *, budget: float) -> dict[str, Any]:
    judged = {name: row for name, row in rows.items() if row["never_worse"] is not None}
    gains = [row["gain"] for row in rows.values() if row["gain"] is not None]
    walls = [row["within_budget"] for row in rows.values() if row["within_budget"] is not None]
    mean_gain = float(np.mean(gains)) if gains else None
    summary = {
        "budget_s": budget,
        "wall_limit_s": round(wall_limit_s(budget), 1),
        "datasets_compared": len(gains),
        "better": sum(row["outcome"] == "better" for row in rows.values()),
        "ties": sum(row["outcome"] == "tie" for row in rows.values()),
        "worse": sum(row["outcome"] == "worse" for row in rows.values()),
        "failed": sum(row["outcome"] == "Tabpilot failed" for row in rows.values()),
        "never_worse": all(row["never_worse"] for row in judged.values()) if judged else None,
        "mean_gain": mean_gain,
        "better_on_average": None if mean_gain is None else mean_gain > 0,
        "within_budget": all(walls) if walls else None,
    }
    verdicts = [summary["never_worse"], summary["better_on_average"], summary["within_budget"]]
    summary["all_targets_met"] = False if False in verdicts else None if None in verdicts else True
    return summary


# --------------------------------------------------------------------------------------------
# Output


def render_table(headers: list[str], rows: list[list[str]], *, markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
        lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) if _numeric(cell) else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def _numeric(cell: str) -> bool:
    return bool(cell) and cell.replace(",", "").replace(".", "").lstrip("+-").isdigit()


def fmt_metric(name: str, value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if name in ("rmse", "mae"):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4g}"
    return f"{value:.4f}"


def fmt_number(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def fmt_pass(value: bool | None) -> str:
    return "n/a" if value is None else "PASS" if value else "FAIL"


def _note(entry: dict[str, Any]) -> str:
    if entry.get("status") == "ok":
        best = (entry.get("info") or {}).get("best")
        return f"best: {best}" if best else ""
    if entry.get("status") == "not installed":
        return entry.get("error", "not installed")
    return entry.get("error", "failed")


def render_dataset(spec: DatasetSpec, data: dict[str, Any], *, markdown: bool) -> str:
    secondary = SECONDARY_METRIC[spec.task]
    headers = [
        "tool",
        METRIC_TITLES[spec.metric],
        METRIC_TITLES[secondary],
        "wall s",
        "peak MB",
        "predict s",
        "note",
    ]
    rows = []
    for tool, entry in data["tools"].items():
        metrics = entry.get("metrics") or {}
        train, predict = entry.get("train") or {}, entry.get("predict") or {}
        rows.append(
            [
                TOOL_TITLES[tool],
                fmt_metric(spec.metric, metrics.get(spec.metric)),
                fmt_metric(secondary, metrics.get(secondary)),
                fmt_number(train.get("wall_s")),
                fmt_number(train.get("peak_mb"), 0),
                fmt_number(predict.get("wall_s")),
                _note(entry),
            ]
        )
    split = data["split"]
    title = (
        f"{spec.name}: {spec.task}, target {spec.target!r}, "
        f"{split['rows_train']:,} train / {split['rows_test']:,} test rows"
        + (
            f", leakage dropped: {', '.join(split['dropped_columns'])}"
            if split["dropped_columns"]
            else ""
        )
    )
    heading = f"### {title}" if markdown else title
    return f"{heading}\n\n{render_table(headers, rows, markdown=markdown)}"


def render_overview(
    specs: list[DatasetSpec], datasets: dict[str, Any], tools: list[str], *, markdown: bool
) -> str:
    headers = ["dataset", "metric", *(TOOL_TITLES[t] for t in tools)]
    rows = []
    for spec in specs:
        if spec.name not in datasets:
            continue
        cells = [spec.name, METRIC_TITLES[spec.metric]]
        for tool in tools:
            entry = datasets[spec.name]["tools"].get(tool) or {}
            if entry.get("status") == "ok":
                train = entry["train"]
                cells.append(
                    f"{fmt_metric(spec.metric, entry['metrics'].get(spec.metric))} "
                    f"({fmt_number(train['wall_s'], 0)} s, {fmt_number(train['peak_mb'], 0)} MB)"
                )
            else:
                cells.append(entry.get("status", "–"))
        rows.append(cells)
    return render_table(headers, rows, markdown=markdown)


def render_summary(
    specs: list[DatasetSpec], comparison: dict[str, Any], summary: dict[str, Any], *, markdown: bool
) -> str:
    headers = [
        "dataset",
        "metric",
        "Tabpilot",
        "raw FLAML",
        "change",
        "never worse",
        "Tabpilot wall s",
        "within budget",
    ]
    rows = []
    for spec in specs:
        row = comparison.get(spec.name)
        if row is None:
            continue
        delta = row["delta"]
        if delta is None:
            change = "–"
        elif spec.metric == "roc_auc":
            change = f"{delta:+.4f}"
        else:
            change = f"{delta * 100:+.1f}%"
        rows.append(
            [
                spec.name,
                METRIC_TITLES[spec.metric],
                fmt_metric(spec.metric, row["tabpilot"]),
                fmt_metric(spec.metric, row["flaml"]),
                change,
                fmt_pass(row["never_worse"]),
                f"{fmt_number(row['tabpilot_wall_s'])} / {row['wall_limit_s']:g}",
                fmt_pass(row["within_budget"]),
            ]
        )
    gain = summary["mean_gain"]
    lines = [
        f"- never worse than raw FLAML beyond noise (AUC -{AUC_TOLERANCE}, log loss and RMSE "
        f"+{LOSS_TOLERANCE:.0%}): {fmt_pass(summary['never_worse'])} "
        f"({summary['better']} better, {summary['ties']} within noise, {summary['worse']} worse, "
        f"{summary['failed']} failed)",
        "- better on average (mean relative error reduction against raw FLAML): "
        + (f"{gain * 100:+.1f}%" if gain is not None else "–")
        + f" {fmt_pass(summary['better_on_average'])}",
        f"- training wall time within budget + {WALL_TOLERANCE:.0%} "
        f"(limit {summary['wall_limit_s']:g} s): {fmt_pass(summary['within_budget'])}",
        f"- all targets: {fmt_pass(summary['all_targets_met'])}",
    ]
    title = f"Tabpilot against raw FLAML at a {summary['budget_s']:g} s budget"
    heading = f"### {title}" if markdown else title
    table = render_table(headers, rows, markdown=markdown)
    return f"{heading}\n\n{table}\n\n" + "\n".join(lines)


def render_report(report: dict[str, Any], *, markdown: bool) -> str:
    """Every table of a run, from its raw figures (as written to the JSON file)."""
    budget, tools = float(report["budget_s"]), list(report["tools"])
    specs = [
        DatasetSpec(
            name=name,
            path=Path(name),
            target=data["target"],
            task=data["task"],
            metric=data["metric"],
            positive_class=None,
            leakage_columns=(),
        )
        for name, data in report["datasets"].items()
        if "tools" in data
    ]
    comparison = {
        spec.name: compare_dataset(spec, report["datasets"][spec.name]["tools"], budget=budget)
        for spec in specs
    }
    summary = summarise(comparison, budget=budget)
    sections = [
        render_dataset(spec, report["datasets"][spec.name], markdown=markdown) for spec in specs
    ]
    title = f"All datasets at a {budget:g} s budget: metric (training wall time, peak memory)"
    sections.append(
        (f"### {title}" if markdown else title)
        + "\n\n"
        + render_overview(specs, report["datasets"], tools, markdown=markdown)
    )
    if "tabpilot" in tools and "flaml" in tools:
        sections.append(render_summary(specs, comparison, summary, markdown=markdown))
    if len(tools) > 1:
        sections.append(render_ranks(specs, report["datasets"], tools, markdown=markdown))
    merged = report.get("merged_from")
    if merged:
        sections.append(
            "Merged from separate runs (started "
            + ", ".join(str(m) for m in merged)
            + "): the tools did not run side by side, so machine load may differ between them."
        )
    skipped = [
        f"- {name}: {data['error']}" for name, data in report["datasets"].items() if "error" in data
    ]
    if skipped:
        sections.append("Skipped datasets:\n" + "\n".join(skipped))
    return "\n\n".join(sections)


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from several runs of the same budget (e.g. one run per tool): each
    dataset's tools are gathered, a later run's entry for a tool replacing an earlier one."""
    if len(reports) == 1:
        return reports[0]
    budgets = {float(r["budget_s"]) for r in reports}
    if len(budgets) > 1:
        raise SystemExit(f"Cannot merge runs of different budgets: {sorted(budgets)}")
    merged = dict(reports[0])
    merged["datasets"] = {}
    seen: list[str] = []
    for report in reports:
        seen += [t for t in report["tools"] if t not in seen]
        for name, data in report["datasets"].items():
            into = merged["datasets"].setdefault(name, {k: v for k, v in data.items()})
            if "tools" in data:
                into["tools"] = {**into.get("tools", {}), **data["tools"]}
                into.pop("error", None)
    merged["tools"] = [t for t in TOOLS if t in seen]
    merged["merged_from"] = [r.get("started") for r in reports]
    return merged


def _beats(metric: str, a: float, b: float) -> bool:
    """Whether score `a` is better than `b` beyond noise (AUC 0.005, losses 3%)."""
    if metric == "roc_auc":
        return a - b > AUC_TOLERANCE
    return a < b * (1 - LOSS_TOLERANCE)


def tool_ranks(
    specs: list[DatasetSpec], datasets: dict[str, Any], tools: list[str]
) -> dict[str, dict[str, float]]:
    """Each dataset's rank of every tool (1 = best; a tool's rank is 1 + the number of tools
    better beyond noise, so ties within noise share a rank), on datasets every tool scored."""
    ranks: dict[str, dict[str, float]] = {}
    for spec in specs:
        tool_entries = (datasets.get(spec.name) or {}).get("tools") or {}
        values = {t: _metric(tool_entries, t, spec.metric) for t in tools}
        if any(v is None for v in values.values()):
            continue
        ranks[spec.name] = {
            t: 1.0 + sum(_beats(spec.metric, values[o], values[t]) for o in tools if o != t)
            for t in tools
        }
    return ranks


def render_ranks(
    specs: list[DatasetSpec], datasets: dict[str, Any], tools: list[str], *, markdown: bool
) -> str:
    ranks = tool_ranks(specs, datasets, tools)
    headers = ["dataset", *(TOOL_TITLES[t] for t in tools)]
    rows = [[name, *(f"{r[t]:g}" for t in tools)] for name, r in ranks.items()]
    means = {t: float(np.mean([r[t] for r in ranks.values()])) for t in tools} if ranks else {}
    rows.append(["mean rank", *(f"{means[t]:.2f}" if means else "–" for t in tools)])
    title = "Ranks (1 = best; within noise is a tie: AUC 0.005, log loss and RMSE 3%)"
    lines = []
    if "tabpilot" in means and "autogluon" in means:
        better = means["tabpilot"] < means["autogluon"]
        lines.append(
            f"- better than AutoGluon on mean rank over {len(ranks)} datasets: {fmt_pass(better)}"
        )
    heading = f"### {title}" if markdown else title
    return f"{heading}\n\n{render_table(headers, rows, markdown=markdown)}\n\n" + "\n".join(lines)
