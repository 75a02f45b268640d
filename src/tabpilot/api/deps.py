"""Dependencies shared by every route: the application context of the running app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tabpilot.context import AppContext


async def get_ctx(request: Request) -> AppContext:
    """The `AppContext` that `create_app` put on `app.state.ctx`."""
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[AppContext, Depends(get_ctx)]
