"""`/api/models`: model cards, bundle downloads, predictions and deploy keys.

Predict endpoints accept the owner's credentials or the model's deploy key
(`Authorization: Bearer tpk_...`); a deploy key is refused everywhere else.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.background import BackgroundTask
from starlette.types import Receive, Scope, Send

from tabpilot.api.auth import bearer_scheme, bearer_token, current_owner
from tabpilot.api.deps import Ctx
from tabpilot.api.exposure import report_headers
from tabpilot.api.schemas import ERROR_RESPONSES
from tabpilot.api.uploads import receive_upload
from tabpilot.context import AppContext
from tabpilot.engine.card import ModelCard
from tabpilot.errors import Forbidden
from tabpilot.records import ModelRecord
from tabpilot.services import models as model_service
from tabpilot.services import predictions as prediction_service
from tabpilot.services.datasets import StagedUpload

router = APIRouter(prefix="/api/models", tags=["models"], responses=ERROR_RESPONSES)

INLINE_BODY_BYTES = 16 * 1024
"""A predict body up to this size, for a model already loaded, is parsed and predicted on the
event loop (a few hundred microseconds: the common single row, without a thread hop); a
larger body, or a model to load first, is handled in a worker thread, so no request-sized
work ever holds up other requests (`/health` included)."""

_SPOOL_CHUNK = 1 << 20

CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
"""What predict.csv answers with."""

FILE_MEDIA_TYPES: dict[str, str] = {
    "model.onnx": "application/octet-stream",
    "model.pkl": "application/octet-stream",
    "model.json": "application/json",
    "eda.html": "text/html; charset=utf-8",
    "report.html": "text/html; charset=utf-8",
}
"""The content type each file of `model_service.MODEL_FILES` is sent with."""

PICKLE_WARNING = (
    "model.pkl is a Python pickle: loading it runs code, so load it only from a source you "
    "trust. Prefer model.onnx, which any ONNX runtime loads safely."
)
"""Sent as the X-Tabpilot-Warning header with every model.pkl download."""

_BINARY = {"schema": {"type": "string", "format": "binary"}}
PREDICT_CSV_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "The rows to predict as CSV (or gzip-compressed CSV), with a header "
        "line naming the columns: the raw body (curl --data-binary @rows.csv -H "
        "'Content-Type: text/csv' URL) or the multipart field `file` (curl -F file=@rows.csv "
        "URL).",
        "content": {
            "text/csv": _BINARY,
            "application/gzip": _BINARY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


# -- schemas ---------------------------------------------------------------------------------


class ModelSummary(BaseModel):
    id: str
    job_id: str
    created_at: datetime
    deployed: bool = Field(description="Whether a prediction-only deploy key is active.")
    target: str | None = None
    problem_type: str | None = None
    metric: str | None = Field(None, description="The metric the model was chosen by.")
    score: float | None = Field(None, description="That metric on the held-out rows.")
    chosen: str | None = Field(None, description="The winning estimator.")
    files: list[str] = Field(description="Downloadable files: GET /api/models/{id}/files/{name}")


class ModelPage(BaseModel):
    items: list[ModelSummary]
    next_cursor: str | None = Field(
        None, description="Pass as ?cursor= to get the next page; null on the last page."
    )


class ModelDetail(ModelSummary):
    card: dict[str, Any] = Field(
        description="The model card (model.json): features with types, allowed values and "
        "ranges, classes in order, metrics, leaderboard, dropped columns with reasons, versions."
    )


class DeployResponse(BaseModel):
    model_id: str
    deployed: bool
    key: str = Field(
        description="The prediction-only key, shown only now: send it as "
        "'Authorization: Bearer <key>' to this model's predict and predict.csv endpoints."
    )
    predict_url: str
    predict_csv_url: str
    note: str


class UndeployResponse(BaseModel):
    model_id: str
    deployed: bool


class PredictRequest(BaseModel):
    """Rows as objects (`rows`), or column names once plus value lists (`columns` + `data`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"rows": [{"age": 41, "plan": "pro", "signup": "2024-03-01"}]},
                {"columns": ["age", "plan"], "data": [[41, "pro"], [23, "free"]]},
            ]
        }
    )

    rows: list[dict[str, Any]] | None = Field(
        None, description="One object per row, column name to value."
    )
    columns: list[str] | None = Field(None, description="Column names, with `data`.")
    data: list[list[Any]] | None = Field(None, description="One list of values per row.")

    @model_validator(mode="after")
    def _one_form(self) -> PredictRequest:
        table = self.columns is not None or self.data is not None
        if self.rows is not None and table:
            raise ValueError('send either "rows" or "columns" with "data", not both')
        if self.rows is None and (self.columns is None or self.data is None):
            raise ValueError(
                'send {"rows": [{"column": value, ...}, ...]} or '
                '{"columns": [...], "data": [[...], ...]}'
            )
        return self


PREDICT_OPENAPI: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
    }
}
"""The predict body as OpenAPI shows it (the route parses it itself, off the event loop)."""


class PredictResponse(BaseModel):
    model_id: str
    predictions: list[Any] = Field(
        description="One per row: the class label as in the training data, or a number."
    )
    probabilities: list[dict[str, float]] | None = Field(
        description="Classification: one object per row, class label to probability, in the "
        "model's class order. Null for regression."
    )
    ignored_columns: list[str] = Field(description="Columns sent that the model does not use.")
    inference_ms: float = Field(description="Time to validate the rows and run the model.")


# -- dependencies ----------------------------------------------------------------------------


def _ctx(request: Request) -> AppContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


def _refuse_deploy_key(request: Request) -> None:
    token = bearer_token(request)
    if token and model_service.is_deploy_key(token):
        raise Forbidden(
            "A deploy key can only call predict and predict.csv of its model; "
            "use your API token for everything else"
        )


Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)]
"""Declares the bearer scheme in OpenAPI (the Authorize button of /docs); checked below."""


def owner_dependency(request: Request, _credentials: Credentials) -> str:
    """The caller's owner id; deploy keys are refused (they can only predict)."""
    _refuse_deploy_key(request)
    return current_owner(request)


Owner = Annotated[str, Depends(owner_dependency)]


def _model_for_prediction(request: Request, model_id: str) -> ModelRecord:
    """The model to predict with, for its owner or for a holder of its deploy key.

    A deploy key for another model is `Forbidden` whether or not `model_id` exists, so a key
    reveals nothing about other models.
    """
    ctx = _ctx(request)
    token = bearer_token(request)
    if token and model_service.is_deploy_key(token):
        return model_service.model_for_deploy_key(ctx, key=token, model_id=model_id)
    return model_service.model_for_prediction(ctx, owner=current_owner(request), model_id=model_id)


def _summary_fields(model: ModelRecord) -> dict[str, Any]:
    card = ModelCard.from_dict(model.card)
    score = card.score
    return {
        "id": model.id,
        "job_id": model.job_id,
        "created_at": model.created_at,
        "deployed": model.deploy_key_hash is not None,
        "target": card.target or None,
        "problem_type": card.problem_type or None,
        "metric": card.metric.name or None,
        "score": score if isinstance(score, int | float) else None,
        "chosen": card.chosen.name or None,
        "files": model_service.list_model_files(model),
    }


# -- models ----------------------------------------------------------------------------------


@router.get("", response_model=ModelPage, summary="List your models, newest first")
def list_models(
    ctx: Ctx,
    owner: Owner,
    job_id: Annotated[str | None, Query(description="Only the model of this job.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page.")] = None,
) -> ModelPage:
    page = model_service.list_models(ctx, owner=owner, job_id=job_id, limit=limit, cursor=cursor)
    return ModelPage(
        items=[ModelSummary(**_summary_fields(m)) for m in page.items],
        next_cursor=page.next_cursor,
    )


@router.get("/{model_id}", response_model=ModelDetail, summary="A model and its model card")
def get_model(model_id: str, ctx: Ctx, owner: Owner) -> ModelDetail:
    model = model_service.get_model(ctx, owner=owner, model_id=model_id)
    return ModelDetail(**_summary_fields(model), card=model.card)


@router.get(
    "/{model_id}/files/{name}",
    summary="Download a file of the model bundle",
    description="`name` is one of: model.onnx (ONNX graph, preprocessing included), model.pkl "
    "(the scikit-learn pipeline; **unpickling runs code, so load it only from a source you "
    "trust**), model.json (the model card), eda.html and report.html (the reports). Any other "
    "name is 404. A model file of TABPILOT_DOWNLOAD_LINK_MB or more, in a store that makes links "
    "(S3), answers 307 with a 5-minute link to download it straight from the store.",
    responses={
        200: {
            "content": {
                "application/octet-stream": {},
                "application/json": {},
                "text/html": {},
            },
            "description": "The file.",
        },
        307: {"description": "A large model file: download it from the link in `Location`."},
    },
)
def get_model_file(model_id: str, name: str, ctx: Ctx, owner: Owner) -> Response:
    file = model_service.get_model_file(ctx, owner=owner, model_id=model_id, name=name)
    media_type = FILE_MEDIA_TYPES[file.name]
    html = media_type.startswith("text/html")
    headers = {"X-Content-Type-Options": "nosniff"}
    if html:
        # The reports show data values: render them in a sandbox, never as this site.
        headers.update(report_headers())
    if file.name == "model.pkl":
        headers["X-Tabpilot-Warning"] = PICKLE_WARNING
    disposition = "inline" if html else "attachment"
    link = None if file.local_path is not None else model_service.download_link(ctx, file=file)
    if link is not None:
        # Large files go straight from the store (S3): Lambda's responses stop at 6 MB.
        return RedirectResponse(link, status_code=307, headers=headers)
    if file.local_path is not None:
        return FileResponse(
            file.local_path,
            media_type=media_type,
            filename=file.download_name,
            content_disposition_type=disposition,
            headers=headers,
        )
    headers["Content-Disposition"] = f'{disposition}; filename="{file.download_name}"'
    headers["Content-Length"] = str(file.size)
    return StreamingResponse(
        _iter_file(model_service.open_model_file(ctx, file=file)),
        media_type=media_type,
        headers=headers,
    )


def _iter_file(stream: BinaryIO) -> Iterator[bytes]:
    with stream:
        while chunk := stream.read(_SPOOL_CHUNK):
            yield chunk


# -- deploy keys -----------------------------------------------------------------------------


@router.post(
    "/{model_id}/deploy",
    response_model=DeployResponse,
    summary="Mint a prediction-only key for this model",
    description="Returns a key (shown only now) that calls this model's predict and "
    "predict.csv and nothing else. Deploying again replaces the key; undeploy revokes it.",
)
def deploy_model(model_id: str, ctx: Ctx, owner: Owner) -> DeployResponse:
    model, key = model_service.deploy_model(ctx, owner=owner, model_id=model_id)
    return DeployResponse(
        model_id=model.id,
        deployed=True,
        key=key,
        predict_url=f"/api/models/{model.id}/predict",
        predict_csv_url=f"/api/models/{model.id}/predict.csv",
        note="Store this key now: only its hash is kept, so it cannot be shown again. "
        "Send it as 'Authorization: Bearer <key>'.",
    )


@router.post(
    "/{model_id}/undeploy",
    response_model=UndeployResponse,
    summary="Revoke this model's deploy key",
)
def undeploy_model(model_id: str, ctx: Ctx, owner: Owner) -> UndeployResponse:
    model = model_service.undeploy_model(ctx, owner=owner, model_id=model_id)
    return UndeployResponse(model_id=model.id, deployed=False)


# -- predictions -----------------------------------------------------------------------------


@router.post(
    "/{model_id}/predict",
    response_model=PredictResponse,
    # The bearer scheme is declared here rather than by a `Credentials` parameter: a
    # dependency to solve on every call costs the hot path more than the rest of routing.
    openapi_extra={**PREDICT_OPENAPI, "security": [{bearer_scheme.scheme_name: []}]},
    summary="Predict rows sent as JSON",
    description="Accepts the owner's credentials or this model's deploy key. Columns the model "
    "does not use are ignored (and listed); a missing column or a value of the wrong kind is "
    "422, naming the row (from 1) and the column. For more than a few thousand rows use "
    "predict.csv, which streams.",
)
async def predict(model_id: str, request: Request) -> Response:
    # The body is parsed here rather than by FastAPI, which would parse and validate it on
    # the event loop whatever its size.
    ctx = _ctx(request)
    # Usually no record read: the record is reused while the store is unchanged
    # (services.models.model_for_prediction).
    model = _model_for_prediction(request, model_id)
    raw = await request.body()
    if len(raw) <= INLINE_BODY_BYTES and prediction_service.is_loaded(model):
        result = _predict_json(ctx, model, raw)
    else:
        result = await run_in_threadpool(_predict_json, ctx, model, raw)
    # Built by hand: the response model documents the shape, and skipping its validation
    # keeps the single-row path fast. The bytes are those JSONResponse would send.
    body = _JSON_ENCODER.encode(
        {
            "model_id": model.id,
            "predictions": result.labels,
            "probabilities": result.probability_dicts(),
            "ignored_columns": result.ignored_columns,
            "inference_ms": round(result.seconds * 1000, 3),
        }
    )
    return Response(body.encode("utf-8"), media_type=JSONResponse.media_type)


_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
"""JSONResponse's encoding, made once (json.dumps with options builds an encoder per call)."""


PREDICT_PATH = "/api/models/{model_id}/predict"


class _DirectPredict:
    """`predict` as a bare ASGI endpoint, which `create_app` routes first (`PREDICT_PATH`,
    POST): every prediction is answered here, by the same code, without FastAPI's nested-router
    matching and per-request dependency machinery (about half the framework's time on a
    single-row prediction). The `predict` route above documents it in OpenAPI. An error goes
    up to the app's exception middleware, whose handlers are those a route would use."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        response = await predict(scope["path_params"]["model_id"], request)
        await response(scope, receive, send)


predict_direct = _DirectPredict()


def _predict_json(
    ctx: AppContext, model: ModelRecord, raw: bytes
) -> prediction_service.Predictions:
    try:
        body = PredictRequest.model_validate_json(raw)
    except ValidationError as exc:
        # The same 422 envelope as a body FastAPI validates itself.
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        ) from None
    if body.rows is not None:
        return prediction_service.predict_rows(ctx, model=model, rows=body.rows)
    return prediction_service.predict_table(
        ctx, model=model, columns=body.columns or [], data=body.data or []
    )


@router.post(
    "/{model_id}/predict.csv",
    summary="Predict a CSV file; the predictions come back as a streamed CSV",
    description="Send the CSV as the raw request body (Content-Type: text/csv; gzip also "
    "accepted) or as the `file` field of a multipart form. The answer has a `prediction` "
    "column and, for classification, one `proba_<label>` column per class, row for row. The "
    "file is processed in chunks, so any size works in bounded memory. The first chunk (tens "
    "of thousands of rows) is checked before the answer starts, so a bad file is a 422 naming "
    "the row and column; a bad value further down stops the stream, and the response ends "
    "incomplete (clients report a broken transfer), never as a short CSV that looks whole. "
    "Columns the model does not use are listed in the `X-Tabpilot-Ignored-Columns` header, "
    "each name percent-encoded as UTF-8 (decode with urllib.parse.unquote or "
    "decodeURIComponent), comma-separated. "
    "Accepts the owner's credentials or this model's deploy key.",
    responses={200: {"content": {"text/csv": {}}, "description": "The predictions."}},
    openapi_extra=PREDICT_CSV_OPENAPI,
)
async def predict_csv(model_id: str, request: Request, _credentials: Credentials) -> Response:
    ctx = _ctx(request)
    model = await run_in_threadpool(_model_for_prediction, request, model_id)
    upload, _fields = await receive_upload(request, ctx, filename="predict.csv")
    source: BinaryIO | None = None
    # The staged file goes on every path: an error before the answer starts (here), an error
    # while streaming (the generator's finally), the end of the answer or a client that went
    # away (the background task, which Starlette runs in both cases).
    try:
        source = open(upload.path, "rb")  # noqa: SIM115 - closed when the response ends
        stream = await run_in_threadpool(
            prediction_service.start_csv_predictions, ctx, model=model, stream=source
        )
        headers = {"Content-Disposition": f'attachment; filename="{model.id}-predictions.csv"'}
        if stream.ignored_columns:
            headers[IGNORED_COLUMNS_HEADER] = ignored_columns_header(stream.ignored_columns)
        return StreamingResponse(
            _iter_and_close(stream, source, upload),
            media_type=CSV_MEDIA_TYPE,
            headers=headers,
            background=BackgroundTask(_close_and_discard, source, upload),
        )
    except BaseException:
        _close_and_discard(source, upload)
        raise


IGNORED_COLUMNS_HEADER = "X-Tabpilot-Ignored-Columns"
IGNORED_COLUMNS_HEADER_CHARS = 4000


def ignored_columns_header(names: list[str]) -> str:
    """The ignored column names for a response header: each percent-encoded as UTF-8 (RFC 3986,
    so any name, line breaks and non-Latin text included, is plain ASCII; commas in a name are
    %2C), comma-separated, as many whole names as fit in `IGNORED_COLUMNS_HEADER_CHARS`."""
    shown: list[str] = []
    length = 0
    for name in names:
        encoded = quote(str(name), safe="")
        length += len(encoded) + (1 if shown else 0)
        if length > IGNORED_COLUMNS_HEADER_CHARS:
            break
        shown.append(encoded)
    return ",".join(shown)


def _iter_and_close(
    stream: prediction_service.CsvPredictionStream, source: BinaryIO, upload: StagedUpload
) -> Iterator[bytes]:
    try:
        yield from stream
    finally:
        _close_and_discard(source, upload)


def _close_and_discard(source: BinaryIO | None, upload: StagedUpload) -> None:
    """Close the staged file and remove it (safe to call more than once)."""
    if source is not None:
        source.close()
    upload.discard()
