"""Dataset page: the profile (overview, warnings, a column table saying what training will do
with each column), the EDA report, and the form that starts a training job.

Routes:
- `GET /datasets/{id}`: the page.
- `GET /datasets/{id}/target?target=...`: the htmx partial under the target select: problem
  type with its reason, class balance or distribution, and the options that depend on the
  target (problem type, metric, time budget, columns to force in or out), keeping what the
  form holds; the column table follows out of band. The problem type and column selects
  ask for it too.
- `POST /datasets/{id}/jobs`: `services.jobs.create_job`, as `POST /api/jobs`; then 303 to
  `/jobs/{job_id}`, or the page again (422) with every problem beside its field.
- `POST /datasets/{id}/delete`: `services.datasets.delete_dataset`; then 303 to `/`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from tabpilot.api.deps import Ctx
from tabpilot.context import AppContext
from tabpilot.engine.choices import ESTIMATORS
from tabpilot.engine.data.problem import PROBLEM_CHOICES
from tabpilot.engine.data.profiling import ColumnKind, ColumnProfile
from tabpilot.engine.data.quality import DataWarning
from tabpilot.engine.reports.charts import render_bar_chart, render_histogram
from tabpilot.errors import Conflict, InvalidInput
from tabpilot.records import DatasetRecord
from tabpilot.services import datasets as datasets_service
from tabpilot.services import jobs as jobs_service
from tabpilot.services import training_plan
from tabpilot.web.access import CsrfChecked, PagePrincipal
from tabpilot.web.render import format_number, render

router = APIRouter(include_in_schema=False)

# Column overrides in the form: one select per column, named by position (column names can
# hold anything, so they never become field names).
COLUMN_CHOICES = {"auto": "automatic", "include": "force in", "exclude": "leave out"}


@dataclass
class TrainForm:
    """What the training form holds, as typed (kept when the page is shown again)."""

    target: str = ""
    problem_type: str = ""
    metric: str = ""
    time_budget: str = ""
    overrides: dict[int, str] = field(default_factory=dict)  # column position -> choice
    estimators: list[str] = field(default_factory=lambda: list(ESTIMATORS))
    seed: str = "0"
    tags: str = ""

    @classmethod
    def parse(cls, values: Mapping[str, Any], getlist: Any, *, submitted: bool) -> TrainForm:
        """From form or query values; `getlist(name)` gives every value of a repeated field.
        Estimators default to all unless the form was submitted (unchecked means left out)."""
        overrides = {}
        for key in values:
            if key.startswith("col_") and key[4:].isdigit() and values[key] in COLUMN_CHOICES:
                overrides[int(key[4:])] = str(values[key])
        estimators = [str(v) for v in getlist("estimators")]
        if not estimators and not submitted:
            estimators = list(ESTIMATORS)
        return cls(
            target=str(values.get("target") or ""),
            problem_type=str(values.get("problem_type") or ""),
            metric=str(values.get("metric") or ""),
            time_budget=str(values.get("time_budget") or "").strip(),
            overrides=overrides,
            estimators=estimators,
            seed=str(values.get("seed") or "").strip(),
            tags=str(values.get("tags") or ""),
        )

    def chosen(self, names: list[str], choice: str) -> list[str]:
        return [
            names[i] for i, c in sorted(self.overrides.items()) if c == choice and i < len(names)
        ]

    def request(self, dataset_id: str, names: list[str]) -> jobs_service.JobRequest:
        """The job request; values that do not parse are passed on as typed, so the spec's
        own checks word the problem (as the API's would)."""
        all_estimators = set(self.estimators) == set(ESTIMATORS)
        return jobs_service.JobRequest(
            dataset_id=dataset_id,
            target=self.target,
            problem_type=self.problem_type or None,  # the spec checks it
            metric=self.metric or None,
            time_budget=_number(self.time_budget, float),
            include=self.chosen(names, "include"),
            exclude=self.chosen(names, "exclude"),
            estimators=None if all_estimators else list(self.estimators),
            seed=_number(self.seed, int),
            tags=[t.strip() for t in self.tags.split(",") if t.strip()],
        )


def _number(text: str, kind: type) -> Any:
    if not text:
        return None
    try:
        value = kind(text)
    except ValueError:
        return text
    return value if not isinstance(value, float) or math.isfinite(value) else text


# -- what the templates show -------------------------------------------------------------------


def column_stats(col: ColumnProfile) -> str:
    """A short summary of a column's statistics, by kind."""
    stats = col.stats
    if col.kind in (ColumnKind.NUMERIC, ColumnKind.IDENTIFIER) and "median" in stats:
        return (
            f"min {format_number(stats['min'])}, median {format_number(stats['median'])}, "
            f"max {format_number(stats['max'])}, mean {format_number(stats['mean'])}"
        )
    if col.kind == ColumnKind.DATETIME and "min" in stats:
        return f"{stats['min']} to {stats['max']}"
    if col.top_values and col.kind in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        value, count = col.top_values[0]
        return f'most frequent "{value}" ({format_number(count)} rows)'
    if "mean_length" in stats:
        return f"{format_number(stats['mean_length'])} characters on average"
    return ""


def kinds_summary(columns: list[ColumnProfile]) -> list[tuple[str, int]]:
    counts = Counter(str(c.kind) for c in columns)
    return [(str(kind), counts[str(kind)]) for kind in ColumnKind if counts[str(kind)]]


def stored_warnings(dataset: DatasetRecord) -> list[DataWarning]:
    stored = dataset.profile.get("warnings") if isinstance(dataset.profile, dict) else None
    return [DataWarning(**w) for w in stored or [] if isinstance(w, dict)]


def target_chart(preview: training_plan.TargetPreview) -> Markup | None:
    """Class balance bars, or the target's approximate distribution, as SVG."""
    if preview.classes:
        return render_bar_chart(
            [s.label for s in preview.classes],
            [s.fraction * 100 for s in preview.classes],
            value_labels=[f"{s.fraction:.1%} ({format_number(s.count)})" for s in preview.classes],
            title=f"Class balance of {preview.column.name}",
            x_label="% of the rows with a value",
            width=560,
        )
    edges, density = training_plan.distribution_bins(preview.column, preview.n_present)
    if not edges:
        return None
    return render_histogram(
        edges,
        density,
        title=f"Distribution of {preview.column.name} (from its percentiles)",
        x_label=preview.column.name,
        y_label="rows per unit",
        width=420,
    )


def target_context(dataset: DatasetRecord, form: TrainForm) -> dict[str, Any]:
    """The context of the target panel (dataset_target.html)."""
    profile = training_plan.stored_profile(dataset)
    names = [c.name for c in profile.columns]
    preview = None
    if form.target in names:
        preview = training_plan.preview_target(
            dataset, form.target, problem_type=form.problem_type or None
        )
    uses = training_plan.column_uses(
        dataset,
        target=form.target or None,
        include=form.chosen(names, "include"),
        exclude=form.chosen(names, "exclude"),
    )
    detected = training_plan.column_uses(dataset, target=form.target or None)
    metrics = preview.metrics if preview else training_plan.valid_metrics(None)
    return {
        "dataset": dataset,
        "form": form,
        "preview": preview,
        "chart": target_chart(preview) if preview else None,
        "metrics": metrics,
        "uses": list(zip(uses, detected, strict=True)),
        "columns": list(zip(profile.columns, uses, strict=True)),
        "column_stats": column_stats,
        "oob": False,
        "column_choices": list(COLUMN_CHOICES.items()),
        "problem_choices": PROBLEM_CHOICES,
        "problems": {},
    }


def page_context(dataset: DatasetRecord, form: TrainForm) -> dict[str, Any]:
    profile = training_plan.stored_profile(dataset)
    stored = dataset.profile if isinstance(dataset.profile, dict) else {}
    preview = stored.get("preview") if isinstance(stored.get("preview"), dict) else None
    return {
        **target_context(dataset, form),
        "profile": profile,
        "kinds": kinds_summary(profile.columns),
        "warnings": stored_warnings(dataset),
        "table_preview": preview or {"columns": [], "rows": []},
        "estimators": ESTIMATORS,
        "problems": {},
        "delete_error": None,
        "delete_jobs": 0,
    }


# -- routes ----------------------------------------------------------------------------------


def _dataset(ctx: AppContext, owner: str, dataset_id: str) -> DatasetRecord:
    return datasets_service.get_dataset(ctx, owner=owner, dataset_id=dataset_id)


@router.get("/datasets/{dataset_id}", response_class=HTMLResponse)
def dataset_page(
    request: Request, dataset_id: str, ctx: Ctx, principal: PagePrincipal
) -> HTMLResponse:
    dataset = _dataset(ctx, principal.owner, dataset_id)
    context = page_context(dataset, TrainForm())
    context["delete_jobs"] = len(
        datasets_service.list_dataset_job_ids(ctx, owner=principal.owner, dataset_id=dataset.id)
    )
    return render(request, "dataset.html", **context)


@router.get("/datasets/{dataset_id}/target", response_class=HTMLResponse)
def target_panel(
    request: Request, dataset_id: str, ctx: Ctx, principal: PagePrincipal
) -> HTMLResponse:
    dataset = _dataset(ctx, principal.owner, dataset_id)
    query = request.query_params
    form = TrainForm.parse(query, query.getlist, submitted=False)
    # The column table follows, swapped out of band, so "In training" matches the new target.
    context = target_context(dataset, form)
    context["oob"] = True
    return render(request, "dataset_target.html", **context)


@router.post("/datasets/{dataset_id}/jobs", dependencies=[CsrfChecked], response_model=None)
async def start_job(
    request: Request, dataset_id: str, ctx: Ctx, principal: PagePrincipal
) -> HTMLResponse | RedirectResponse:
    dataset = _dataset(ctx, principal.owner, dataset_id)
    values = await request.form()
    form = TrainForm.parse(values, values.getlist, submitted=True)
    names = [c.name for c in training_plan.stored_profile(dataset).columns]
    try:
        job = jobs_service.create_job(
            ctx, owner=principal.owner, request=form.request(dataset.id, names)
        )
    except InvalidInput as exc:
        problems = dict(exc.details.get("problems") or {"target": exc.message})
        context = page_context(dataset, form)
        context["problems"] = problems
        return render(request, "dataset.html", status=422, **context)
    return RedirectResponse(f"/jobs/{job.id}", status_code=303)


@router.post("/datasets/{dataset_id}/delete", dependencies=[CsrfChecked], response_model=None)
async def delete_dataset(
    request: Request, dataset_id: str, ctx: Ctx, principal: PagePrincipal
) -> HTMLResponse | RedirectResponse:
    dataset = _dataset(ctx, principal.owner, dataset_id)
    values = await request.form()
    force = values.get("force") == "yes"
    try:
        datasets_service.delete_dataset(
            ctx, owner=principal.owner, dataset_id=dataset.id, force=force
        )
    except Conflict as exc:
        context = page_context(dataset, TrainForm())
        context.update(delete_error=exc.message, delete_jobs=len(exc.details.get("jobs") or []))
        return render(request, "dataset.html", status=409, **context)
    return RedirectResponse("/", status_code=303)
