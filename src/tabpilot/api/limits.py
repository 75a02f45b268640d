"""Housekeeping and limits of the running server that no single request owns.

`sweep_uploads_forever`: staged uploads left behind by a crash or a kill are removed when the
server starts and then every `SWEEP_EVERY_S`, so leftovers cannot pile up on the disk.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi.concurrency import run_in_threadpool

from tabpilot.context import AppContext
from tabpilot.services.datasets import STALE_UPLOAD_S, sweep_staged_uploads

log = logging.getLogger(__name__)

SWEEP_EVERY_S = STALE_UPLOAD_S / 3


async def sweep_uploads_forever(ctx: AppContext, every_s: float = SWEEP_EVERY_S) -> None:
    """Sweep stale staged uploads now and every `every_s` seconds, until cancelled."""
    while True:
        try:
            await run_in_threadpool(sweep_staged_uploads, ctx)
        except Exception:  # housekeeping must never take the server down
            log.exception("sweeping stale staged uploads failed")
        await asyncio.sleep(every_s)
