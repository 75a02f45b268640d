"""Copy-paste snippets for the predict page that work as printed.

- curl against this server's predict endpoints (one row as JSON; a CSV file, created by the
  snippet itself), with the Authorization header where the server wants one: the API token in
  token mode, and the deploy key when the model is deployed;
- Python with onnxruntime and numpy only, on the downloaded model.onnx: the graph's inputs come
  from the card (`ModelCard.inputs`, each the model input column of one feature: a number, a
  string, or a part of a date, as `engine.data.inputs` prepares them for the predictor).

The example row is the playground's current row, so the snippets predict what the page shows.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shlex
from dataclasses import dataclass
from typing import Any

from tabpilot.engine.card import ModelCard
from tabpilot.engine.data.inputs import FeatureSpec

TOKEN_VARIABLE = "TABPILOT_TOKEN"
DEPLOY_KEY_VARIABLE = "TABPILOT_DEPLOY_KEY"


@dataclass(frozen=True)
class Snippet:
    id: str  # the element id of its <pre>, for the copy button
    title: str
    language: str  # shell or python
    text: str
    note: str = ""


def _auth_line(variable: str | None) -> list[str]:
    return [] if variable is None else [f'-H "Authorization: Bearer ${variable}"']


def _curl(url: str, options: list[str]) -> str:
    """A curl command, one option per line."""
    lines = ["curl -sS -X POST " + shlex.quote(url), *options]
    return " \\\n  ".join(lines)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _csv_text(row: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(list(row))
    writer.writerow(["" if v is None else v for v in row.values()])
    return out.getvalue()


def curl_json(url: str, row: dict[str, Any], auth: str | None) -> str:
    body = json.dumps({"rows": [{k: _json_value(v) for k, v in row.items()}]})
    options = [
        "-H 'Content-Type: application/json'",
        *_auth_line(auth),
        "--data " + shlex.quote(body),
    ]
    return _curl(url, options)


def curl_csv(url: str, row: dict[str, Any], auth: str | None) -> str:
    """Writes rows.csv (the example row) and posts it; the predictions land in predictions.csv."""
    text = _csv_text(row)
    marker = "TABPILOT_ROWS"
    while marker in text:
        marker += "_"
    create = f"cat > rows.csv <<'{marker}'\n{text}{marker}\n"
    options = [*_auth_line(auth), "-F file=@rows.csv", "-o predictions.csv"]
    return create + _curl(url, options) + "\ncat predictions.csv"


# -- Python ----------------------------------------------------------------------------------

_PYTHON_HELPERS = '''
def date_part(text, part):
    """A date or date-time as the model's <column>__<part> inputs take it."""
    when = datetime.datetime.fromisoformat(text)
    if when.tzinfo is not None:
        when = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    if part == "days":  # days since 1970-01-01
        return (when - datetime.datetime(1970, 1, 1)).total_seconds() / 86400
    if part == "dayofweek":  # Monday is 0
        return when.weekday()
    if part == "dayofyear":
        return when.timetuple().tm_yday
    return getattr(when, part)  # year, month, day, hour, minute


def model_input(value, kind):
    """One value as the graph takes it: text as a string, the rest as a float (NaN if missing)."""
    if kind == "text":
        return "" if value is None else str(value)
    if value is None or value == "":
        return float("nan")
    if kind == "number":
        return float(value)
    if kind == "boolean":
        return 1.0 if str(value).strip().lower() in TRUE_WORDS else 0.0
    return float(date_part(value, kind))
'''


def _input_plan(card: ModelCard) -> list[tuple[str, str, str]]:
    """(graph input name, raw column, kind) in the graph's order; kind is number, boolean,
    text, or the name of a date part."""
    by_column: dict[str, tuple[str, str]] = {}
    for feature in card.features:
        spec = FeatureSpec(feature.name, feature.kind, feature.has_time)  # type: ignore[arg-type]
        for column, input_kind in spec.input_columns():
            if feature.kind == "datetime":
                kind = column.rsplit("__", 1)[1]
            elif input_kind in ("categorical", "text"):
                kind = "text"
            else:
                kind = "boolean" if feature.kind == "boolean" else "number"
            by_column[column] = (feature.name, kind)
    return [(i.name, *by_column.get(i.column, (i.column, "number"))) for i in card.inputs]


def _python_literal(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "None"
    return repr(value)


def python_snippet(card: ModelCard, row: dict[str, Any], onnx_download: str) -> str:
    """A script that predicts `row` with onnxruntime on model.onnx in the current folder."""
    rows = "\n".join(f"    {k!r}: {_python_literal(v)}," for k, v in row.items())
    plan = "\n".join(f"    ({n!r}, {c!r}, {k!r})," for n, c, k in _input_plan(card))
    if card.classes is not None:
        classes = ", ".join(repr(str(c)) for c in card.classes)
        output = (
            f"classes = [{classes}]\n"
            "probabilities = outputs[1][0]\n"
            'print("prediction:", classes[int(probabilities.argmax())])\n'
            "for name, probability in zip(classes, probabilities):\n"
            '    print(f"  {name}: {probability:.4f}")\n'
        )
    else:
        output = 'print("prediction:", float(np.asarray(outputs[0]).reshape(-1)[0]))\n'
    return (
        "# pip install onnxruntime numpy\n"
        "# Download the model next to this script first:\n"
        f"#   {onnx_download}\n"
        "import datetime\n\n"
        "import numpy as np\n"
        "import onnxruntime as ort\n\n"
        "# The row to predict: raw column values (None for missing).\n"
        f"row = {{\n{rows}\n}}\n\n"
        "# The graph's inputs (model.json lists them): input name, column, kind.\n"
        f"INPUTS = [\n{plan}\n]\n"
        'TRUE_WORDS = {"true", "t", "yes", "y", "1", "1.0"}\n'
        f"{_PYTHON_HELPERS}\n\n"
        "feed = {\n"
        "    name: np.array(\n"
        "        [[model_input(row[column], kind)]],\n"
        '        dtype=object if kind == "text" else np.float32,\n'
        "    )\n"
        "    for name, column, kind in INPUTS\n"
        "}\n"
        'session = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])\n'
        "outputs = session.run(None, feed)\n"
        f"{output}"
    )


# -- all of them -----------------------------------------------------------------------------


def build_snippets(
    *,
    base_url: str,
    model_id: str,
    card: ModelCard,
    row: dict[str, Any],
    token_mode: bool,
    deployed: bool,
) -> list[Snippet]:
    """The page's snippets for `row`, against the server at `base_url`."""
    api = f"{base_url}/api/models/{model_id}"
    owner_auth = TOKEN_VARIABLE if token_mode else None
    token_note = (
        f"Put your API token in {TOKEN_VARIABLE} first: export {TOKEN_VARIABLE}='...' "
        "(the token you log in with)."
        if token_mode
        else "This server runs in local mode: no token is needed."
    )
    download = "curl -sS -o model.onnx " + " ".join(
        [*(_auth_line(owner_auth)), shlex.quote(f"{api}/files/model.onnx")]
    )
    snippets = [
        Snippet(
            "snippet-curl-json",
            "curl: one row as JSON",
            "shell",
            curl_json(f"{api}/predict", row, owner_auth),
            token_note,
        ),
        Snippet(
            "snippet-curl-csv",
            "curl: a CSV file, predictions as CSV",
            "shell",
            curl_csv(f"{api}/predict.csv", row, owner_auth),
            "The file can have any number of rows; the answer streams.",
        ),
    ]
    if deployed:
        snippets.append(
            Snippet(
                "snippet-curl-deploy",
                "curl with the deploy key (for applications)",
                "shell",
                curl_json(f"{api}/predict", row, DEPLOY_KEY_VARIABLE),
                f"Put this model's deploy key in {DEPLOY_KEY_VARIABLE} first: export "
                f"{DEPLOY_KEY_VARIABLE}='tpk_...' (it is shown once, when the model is "
                "deployed; deploy again for a new one). It can only predict with this model.",
            )
        )
    snippets.append(
        Snippet(
            "snippet-python",
            "Python with onnxruntime on model.onnx",
            "python",
            python_snippet(card, row, download),
            "Runs without Tabpilot: download model.onnx (the command is in the first "
            "lines), then run the script in the same folder.",
        )
    )
    return snippets
