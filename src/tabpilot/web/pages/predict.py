"""Predict page: a playground built from the model card, batch CSV predictions, and snippets.

- `GET /models/{id}/predict`: one input per feature of the card (a select of the allowed values
  for categories and booleans, a number input with the training range, a date input, a text
  input), the prediction for the form's values, the batch upload and the snippets.
- `POST /models/{id}/predict`: the form's values predicted by `services.predictions.predict_rows`
  (the JSON API's service). htmx posts the form on every change and swaps in only the result
  panel (`predict_result.html`), which also shows what changed since the previous result (the
  previous result travels in the form's hidden `previous` field); without JavaScript the whole
  page comes back.
- Batch predictions go from the browser straight to `POST /api/models/{id}/predict.csv`
  (static/js/predict.js), so they stream through the same service as curl's.

Form fields are named by position (`f0`, `f1`, ...), never by column name: a column can be
called anything, including `csrf_token`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from tabpilot.api.deps import Ctx
from tabpilot.context import AppContext
from tabpilot.engine.card import CardFeature, ModelCard
from tabpilot.errors import Conflict, InvalidInput, NotFound
from tabpilot.records import ModelRecord
from tabpilot.services import models as model_service
from tabpilot.services import predictions as prediction_service
from tabpilot.web.access import CsrfChecked, PagePrincipal
from tabpilot.web.pages.predict_snippets import Snippet, build_snippets
from tabpilot.web.render import render

router = APIRouter(include_in_schema=False)

PREVIOUS_FIELD = "previous"
BOOLEAN_FALLBACK = ["true", "false"]


# -- the form --------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormField:
    """One input of the playground, for one feature of the card."""

    index: int
    feature: CardFeature
    control: str  # number, select, date, datetime-local or text
    value: str  # the value shown, as text ("" is missing)
    options: list[str] = field(default_factory=list)  # select: the allowed values
    low: str = ""  # the training range as text (numbers and dates)
    high: str = ""
    note: str = ""  # the card's note (values kept, free text)

    @property
    def name(self) -> str:
        return f"f{self.index}"

    @property
    def input_id(self) -> str:
        return f"predict-{self.name}"

    @property
    def hint_id(self) -> str:
        return f"{self.input_id}-hint"


def _plain_number(value: float) -> str:
    """A number as a number input takes it: no thousands separator, at most 6 digits."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.6g}"


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _date_text(value: Any, *, has_time: bool) -> str:
    """A card's date ("2021-11-30 00:00:00") as a date or datetime-local input's value."""
    parsed = _parse_when(value)
    if parsed is None:
        return ""
    return parsed.strftime("%Y-%m-%dT%H:%M" if has_time else "%Y-%m-%d")


def _parse_when(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=None)


def _default_value(feature: CardFeature, options: list[str]) -> str:
    """A starting value: the middle of a number's range, the latest date, the first category."""
    low = _number_or_none(feature.details.get("min"))
    high = _number_or_none(feature.details.get("max"))
    if feature.kind == "numeric" and low is not None and high is not None:
        middle = (low + high) / 2
        return _plain_number(float(round(middle)) if "int" in feature.dtype else middle)
    if feature.kind == "datetime":
        return _date_text(feature.details.get("max"), has_time=feature.has_time)
    if feature.kind in ("categorical", "boolean") and options:
        return options[0]
    return ""


def _field_for(index: int, feature: CardFeature, posted: str | None) -> FormField:
    details = feature.details
    note = str(details.get("values_note") or details.get("note") or "")
    options: list[str] = []
    control = "text"
    low = high = ""
    if feature.kind in ("categorical", "boolean"):
        control = "select"
        options = feature.values or (BOOLEAN_FALLBACK if feature.kind == "boolean" else [])
        if not options:
            control = "text"
    elif feature.kind == "numeric":
        control = "number"
        numbers = [_number_or_none(details.get(k)) for k in ("min", "max")]
        low, high = (_plain_number(n) if n is not None else "" for n in numbers)
    elif feature.kind == "datetime":
        control = "datetime-local" if feature.has_time else "date"
        low, high = (_date_text(details.get(k), has_time=feature.has_time) for k in ("min", "max"))
    value = _default_value(feature, options) if posted is None else posted
    if control == "select" and value not in options and value != "":
        options = [*options, value]  # keep what was sent selectable, so the form shows it
    return FormField(index, feature, control, value, options, low, high, note)


def form_fields(card: ModelCard, posted: dict[str, str] | None = None) -> list[FormField]:
    """The playground's inputs; `posted` (form name to text) overrides the defaults."""
    return [
        _field_for(i, f, None if posted is None else posted.get(f"f{i}", ""))
        for i, f in enumerate(card.features)
    ]


def row_of(fields: list[FormField]) -> dict[str, Any]:
    """The row to predict: blank is missing, numbers as numbers, everything else as typed (the
    predictor checks it and names the column of a value it cannot read)."""
    row: dict[str, Any] = {}
    for f in fields:
        text = f.value.strip()
        # Categories and free text as sent: their spaces may be part of the value.
        exact = f.control in ("text", "select")
        value: Any = f.value if exact else text
        if (f.value if exact else text) == "":
            value = None
        elif f.control == "number":
            value = _parsed_number(text)
        row[f.feature.name] = value
    return row


def _parsed_number(text: str) -> int | float | str:
    """A number input's text as a number (an integer stays one, as the user typed it)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


# -- the result ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One class's probability, and how it moved since the previous result."""

    label: str
    probability: float
    chosen: bool
    delta: float | None = None

    @property
    def percent(self) -> str:
        return f"{self.probability * 100:.1f}%"

    @property
    def width(self) -> str:
        """The bar's width as an SVG length (attributes, not styles: the CSP forbids those)."""
        return f"{max(self.probability, 0.0) * 100:.2f}%"

    @property
    def delta_text(self) -> str:
        return "" if self.delta is None else f"{self.delta * 100:+.1f} pts"


@dataclass(frozen=True)
class Change:
    """A field whose value differs from the previous prediction's."""

    name: str
    before: str
    after: str


@dataclass(frozen=True)
class Outcome:
    """What the result panel shows."""

    problem_type: str
    label: str | None = None
    value: float | None = None
    bars: list[Bar] = field(default_factory=list)
    previous_label: str | None = None
    previous_value: float | None = None
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    inference_ms: float | None = None
    state: str = ""  # JSON for the next request's `previous` field

    @property
    def value_text(self) -> str:
        return format_value(self.value)

    @property
    def delta_text(self) -> str:
        if self.value is None or self.previous_value is None:
            return ""
        return f"{self.value - self.previous_value:+,.4g}"

    @property
    def label_changed(self) -> bool:
        return self.previous_label is not None and self.previous_label != self.label


def format_value(value: float | None) -> str:
    if value is None:
        return "no value"
    if abs(value) >= 1000:
        return f"{value:,.2f}"
    return f"{value:.4g}"


def _previous(text: str | None) -> dict[str, Any]:
    """The previous result sent back by the browser; anything unreadable is no previous."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _range_notes(fields: list[FormField]) -> list[str]:
    """Values outside what the model saw in training: it extrapolates there."""
    notes = []
    for f in fields:
        value, low, high = f.value.strip(), f.low, f.high
        if not value or not (low or high):
            continue
        if f.control == "number":
            try:
                number = float(value)
                outside = (low and number < float(low)) or (high and number > float(high))
            except ValueError:
                continue
        else:
            when, first, last = _parse_when(value), _parse_when(low), _parse_when(high)
            if when is None:
                continue
            outside = bool((first and when < first) or (last and when > last))
        if outside:
            notes.append(
                f"{f.feature.name} = {value} is outside the training range "
                f"({low} to {high}); the model extrapolates there."
            )
    return notes


def _changes(fields: list[FormField], before: Any) -> list[Change]:
    if not isinstance(before, list) or len(before) != len(fields):
        return []
    return [
        Change(f.feature.name, str(old), f.value)
        for f, old in zip(fields, before, strict=True)
        if str(old) != f.value
    ]


def predict_form(
    ctx: AppContext,
    model: ModelRecord,
    card: ModelCard,
    fields: list[FormField],
    previous: str | None = None,
) -> Outcome:
    """Predict the form's row with the API's service and compare it with the previous result."""
    before = _previous(previous)
    changes = _changes(fields, before.get("inputs"))
    notes = _range_notes(fields)
    try:
        result = prediction_service.predict_rows(ctx, model=model, rows=[row_of(fields)])
    except (InvalidInput, NotFound, Conflict) as exc:
        # A bad value, or a model whose model.onnx is gone or changed: said inline, so the
        # form stays usable; the previous result stays the one to compare with.
        return Outcome(card.problem_type, changes=changes, error=exc.message, state=previous or "")
    inputs = [f.value for f in fields]
    ms = round(result.seconds * 1000, 2)
    probabilities = result.probability_dicts()
    if probabilities is None:
        value = _number_or_none(result.labels[0])
        state = json.dumps({"inputs": inputs, "value": value})
        return Outcome(
            card.problem_type,
            value=value,
            previous_value=_number_or_none(before.get("value")),
            changes=changes,
            notes=notes,
            inference_ms=ms,
            state=state,
        )
    label = str(result.labels[0])
    old = before.get("probabilities")
    old = old if isinstance(old, dict) else None
    bars = [
        Bar(name, p, name == label, None if old is None else _delta(p, old.get(name)))
        for name, p in probabilities[0].items()
    ]
    old_label = before.get("label")
    return Outcome(
        card.problem_type,
        label=label,
        bars=bars,
        previous_label=str(old_label) if isinstance(old_label, str) else None,
        changes=changes,
        notes=notes,
        inference_ms=ms,
        state=json.dumps({"inputs": inputs, "label": label, "probabilities": probabilities[0]}),
    )


def _delta(now: float, before: Any) -> float | None:
    old = _number_or_none(before)
    return None if old is None else now - old


# -- routes ----------------------------------------------------------------------------------


def _snippets(
    request: Request, model: ModelRecord, card: ModelCard, fields: list[FormField]
) -> list[Snippet]:
    """The snippets for the form's row, against this server as the browser reached it."""
    ctx: AppContext = request.app.state.ctx
    return build_snippets(
        base_url=str(request.base_url).rstrip("/"),
        model_id=model.id,
        card=card,
        row=row_of(fields),
        token_mode=ctx.settings.auth == "token",
        deployed=model.deploy_key_hash is not None,
    )


def _page_context(
    request: Request, model: ModelRecord, card: ModelCard, fields: list[FormField], outcome: Outcome
) -> dict[str, Any]:
    return {
        "model": model,
        "card": card,
        "fields": fields,
        "outcome": outcome,
        "snippets": _snippets(request, model, card, fields),
        "previous_field": PREVIOUS_FIELD,
        "predict_csv_url": f"/api/models/{model.id}/predict.csv",
        "onnx_url": f"/api/models/{model.id}/files/model.onnx",
    }


@router.get("/models/{model_id}/predict", response_class=HTMLResponse)
def predict_page(
    request: Request, model_id: str, ctx: Ctx, principal: PagePrincipal
) -> HTMLResponse:
    model = model_service.get_model(ctx, owner=principal.owner, model_id=model_id)
    card = ModelCard.from_dict(model.card)
    fields = form_fields(card)
    outcome = predict_form(ctx, model, card, fields)
    return render(request, "predict.html", **_page_context(request, model, card, fields, outcome))


@router.post("/models/{model_id}/predict", response_class=HTMLResponse, dependencies=[CsrfChecked])
async def predict_post(
    request: Request, model_id: str, ctx: Ctx, principal: PagePrincipal
) -> HTMLResponse:
    form = await request.form()
    posted = {k: v for k, v in form.items() if isinstance(v, str)}
    model = await run_in_threadpool(
        model_service.get_model, ctx, owner=principal.owner, model_id=model_id
    )
    card = ModelCard.from_dict(model.card)
    fields = form_fields(card, posted)
    outcome = await run_in_threadpool(
        predict_form, ctx, model, card, fields, posted.get(PREVIOUS_FIELD)
    )
    if request.headers.get("hx-request") == "true":
        if outcome.error:  # the snippets keep the last row that could be predicted
            return render(request, "predict_result.html", outcome=outcome)
        snippets = _snippets(request, model, card, fields)
        return render(request, "predict_update.html", outcome=outcome, snippets=snippets)
    return render(request, "predict.html", **_page_context(request, model, card, fields, outcome))
