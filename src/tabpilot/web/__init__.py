"""The web UI: server-rendered pages served by the same FastAPI app as the API.

Layout (a page is one routes module plus its templates):

    web/pages/<page>.py        `router = APIRouter(include_in_schema=False)`; list it in
                               pages/__init__.py ROUTERS
    web/templates/<page>.html  `{% extends "base.html" %}`, fills `title` and `content`
    web/static/css|js/         hand-written CSS and JS; web/static/vendor/ holds htmx 2 and its
                               SSE extension (versions and licences in vendor/VERSIONS)

A page route parses, calls the same service as its JSON twin and renders; it computes nothing a
service should:

    from tabpilot.api.deps import Ctx
    from tabpilot.services import jobs as service
    from tabpilot.web.access import CsrfChecked, PagePrincipal
    from tabpilot.web.render import render

    @router.get("/jobs/{job_id}", response_class=HTMLResponse)
    def job_page(request: Request, job_id: str, ctx: Ctx, principal: PagePrincipal):
        job = service.get_job(ctx, owner=principal.owner, job_id=job_id)
        return render(request, "job.html", job=job)

    @router.post("/jobs/{job_id}/cancel", dependencies=[CsrfChecked])
    def cancel(...): ...   # then RedirectResponse(..., status_code=303)

- `render(request, template, status=200, **context)` (web/render.py) fills the template with
  the context plus `principal`, `csrf_token`, `csrf_field()` and `static(path)`.
- Errors: raise the domain errors (`tabpilot.errors`); a browser gets `error.html` with the
  API's status and message (web/errors.py), the API keeps its JSON envelope.
- Forms that post include `{{ csrf_field() }}` and their route uses `CsrfChecked`. Scripts call
  the JSON API with `fetch`/XHR and the header `X-CSRF-Token` from `<meta name="csrf-token">`
  (static/js/app.js: `tabpilot.csrfHeaders()`); htmx requests get it automatically.
- Escaping: autoescape is on; never `|safe` on data. No inline `<script>` or `style=`: the
  Content-Security-Policy (web/security.py) forbids them; put code in static/js/.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from tabpilot.web.errors import install_page_errors
from tabpilot.web.pages import ROUTERS
from tabpilot.web.render import STATIC_DIR, STATIC_PREFIX
from tabpilot.web.security import BrowserSecurityMiddleware
from tabpilot.web.sessions import load_secret

__all__ = ["install_web"]


def install_web(app: FastAPI) -> None:
    """Add the pages, static files, page errors and browser security to the API app.

    Call it after the API's error handlers are installed (it wraps them) and after
    `app.state.ctx` is set.
    """
    settings = app.state.ctx.settings
    secret = load_secret(settings.data_dir, configured=settings.web_secret.get_secret_value())
    app.state.web_secret = secret
    install_page_errors(app)
    app.add_middleware(BrowserSecurityMiddleware, settings=settings, secret=secret)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="static")
    for router in ROUTERS:
        app.include_router(router)
