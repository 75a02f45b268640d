"""One module per page (or small group of pages); each defines `router`, listed in `ROUTERS`."""

from __future__ import annotations

from fastapi import APIRouter

from tabpilot.web.pages import compare, datasets, history, home, login
from tabpilot.web.pages import jobs as jobs_page
from tabpilot.web.pages import predict as predict_page

ROUTERS: list[APIRouter] = [home.router, login.router, datasets.router]
ROUTERS += [history.router, compare.router]
ROUTERS += [predict_page.router]
ROUTERS += [jobs_page.router]
