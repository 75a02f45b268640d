"""The FastAPI application factory: `create_app(ctx=None, settings=None)`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from tabpilot import __version__
from tabpilot.api.errors import install_error_handlers
from tabpilot.api.exposure import LoopbackOnlyMiddleware
from tabpilot.api.limits import BodyLimitMiddleware, sweep_uploads_forever
from tabpilot.api.routes import compare, datasets, health, jobs, models
from tabpilot.context import AppContext, build_context
from tabpilot.settings import Settings, load_settings
from tabpilot.web import install_web
from tabpilot.web.render import STATIC_PREFIX

DESCRIPTION = """
Tabpilot trains, explains and serves models for tabular data. Upload a CSV, queue a training
job, follow it, then download or call the model. Every error is a JSON envelope
`{"error": {"code", "message", "details"}}` whose message says what to fix.

**Authentication.** With `TABPILOT_AUTH=local` (the default) nothing is needed. With
`TABPILOT_AUTH=token` every call except `/health` and `/ready` needs
`-H "Authorization: Bearer $TOKEN"` (create a token with `tabpilot users create NAME`).

**The whole flow with curl** (`U=http://127.0.0.1:8000`):

```
# 1. upload: the reply is the profile; note its "id"
curl -F file=@houses.csv $U/api/datasets
# 2. train: 202 with the job; the time budget is chosen from the data size unless given
curl -H 'Content-Type: application/json' \\
     -d '{"dataset_id": "ds_...", "target": "price", "time_budget": 60}' $U/api/jobs
# 3. follow it live, or poll until "status" is succeeded
curl -N $U/api/jobs/job_.../stream
curl $U/api/jobs/job_...
# 4. the model card, files and predictions ("model_id" of the succeeded job)
curl $U/api/models/mdl_...
curl -o model.onnx $U/api/models/mdl_.../files/model.onnx
curl -H 'Content-Type: application/json' -d '{"rows": [{"area": 120, "rooms": 4}]}' \\
     $U/api/models/mdl_.../predict
# 5. compare runs
curl "$U/api/compare?jobs=job_a,job_b"
```

Listings are paginated with `limit` and an opaque `cursor`: pass the reply's `next_cursor`
to get the next page (it is null on the last).
"""

TAGS = [
    {"name": "datasets", "description": "Upload CSV files and see their profiles."},
    {"name": "jobs", "description": "Queue training runs and follow them."},
    {"name": "models", "description": "Trained models: cards, files, predictions, deploy."},
    {"name": "compare", "description": "Jobs side by side."},
    {"name": "health", "description": "Liveness and readiness (no token needed)."},
]


def create_app(ctx: AppContext | None = None, settings: Settings | None = None) -> FastAPI:
    """Build the API app around `ctx`, or around a context built from `settings` (default:
    `load_settings()`, the environment).

    The runner is started (`ctx.runner.start(ctx)`) when the app starts serving and stopped
    when it shuts down. Stores the app opened itself are closed at shutdown; a given `ctx`
    stays open for its owner to close.
    """
    owns_ctx = ctx is None
    if ctx is None:
        ctx = build_context(settings if settings is not None else load_settings())
    context = ctx

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(context.runner.start, context)
        sweeper = asyncio.create_task(sweep_uploads_forever(context))
        try:
            yield
        finally:
            sweeper.cancel()
            try:
                await run_in_threadpool(context.runner.stop)
            finally:
                if owns_ctx:
                    context.metadata.close()

    app = FastAPI(
        title="Tabpilot",
        version=__version__,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        # /docs is served below from the package's own copy of Swagger UI; FastAPI's default
        # pages load it (and ReDoc) from a CDN, which an offline machine cannot reach.
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = context
    _install_docs(app)
    install_error_handlers(app)
    # Routes are matched in this order, one by one. Predictions, the hot path, come first, as a
    # plain route to the same handler (see models.predict_direct); the documented route stays
    # in models.router. The docs group operations by tag, in TAGS order.
    app.router.add_route(
        models.PREDICT_PATH, models.predict_direct, methods=["POST"], include_in_schema=False
    )
    app.include_router(health.router)
    app.include_router(models.router)
    app.include_router(datasets.router)
    app.include_router(jobs.router)
    app.include_router(compare.router)
    install_web(app)  # the pages, and browser security for the API and pages alike
    # Body caps and body timeouts, before anything reads a body (see api/limits.py).
    app.add_middleware(BodyLimitMiddleware, settings=context.settings)
    if context.settings.auth == "local":
        # Outermost: no login in local mode, so other machines are refused whatever server
        # runs this app and whatever address it listens on (see api/exposure.py).
        app.add_middleware(LoopbackOnlyMiddleware)
    return app


SWAGGER_UI = f"{STATIC_PREFIX}/vendor/swagger-ui"


def _install_docs(app: FastAPI) -> None:
    """The interactive API docs at /docs, with every asset served by this app."""

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="Tabpilot API",
            swagger_js_url=f"{SWAGGER_UI}/swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI}/swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI}/favicon-32x32.png",
            # No call to the public validator service.
            swagger_ui_parameters={"validatorUrl": None},
        )
