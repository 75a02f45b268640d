"""Readiness: whether the metadata and artifact stores answer, and the disk has room."""

from __future__ import annotations

import logging

from tabpilot.context import AppContext

log = logging.getLogger(__name__)


def check_stores(ctx: AppContext) -> dict[str, str | None]:
    """Ping each store; map its name to None when it answers, else to a short reason.

    The reason is the error's type only: driver messages can hold connection strings,
    paths or SQL, which belong in the server log (where the full error goes), not in a reply.
    """
    problems: dict[str, str | None] = {}
    for name, store in (("metadata", ctx.metadata), ("artifacts", ctx.artifacts)):
        try:
            store.ping()
        except Exception as exc:
            log.warning("readiness: the %s store failed its ping", name, exc_info=True)
            problems[name] = f"{type(exc).__name__}; see the server log"
        else:
            problems[name] = None
    return problems


def check_disk(ctx: AppContext) -> str | None:
    """None when the data directory's disk has at least `TABPILOT_MIN_FREE_MB` free, else
    how much is left."""
    from tabpilot.services.datasets import free_space_problem

    return free_space_problem(ctx)
