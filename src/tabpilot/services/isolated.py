"""Run one memory-hungry function in a short-lived child process.

Reading and profiling a big CSV needs several times the file's size in memory. Done inside the
API server, that memory stays with the server process after the request (the allocators keep
freed pages), so one 1 GB upload would leave the server gigabytes larger. Done in a child, the
memory goes back to the system when the child exits, and a file too big for the machine kills
the child, not the server.

The child is started with "spawn" (a fresh interpreter, no copy of the server's threads or
sockets). Domain errors raised in the child come back as the same `TabpilotError` subclass
with the same message and details; anything else becomes a clear `ChildFailed`.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from tabpilot import errors
from tabpilot.errors import ChildFailed, QuotaExceeded, TabpilotError

T = TypeVar("T")

CHILD_WAIT_S = 60.0
"""How long a request waits for a free child slot before it is refused."""

_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


def _child_slots(limit: int) -> threading.BoundedSemaphore:
    """The process-wide semaphore bounding concurrent children to `limit`."""
    with _slots_lock:
        if limit not in _slots:
            _slots[limit] = threading.BoundedSemaphore(limit)
        return _slots[limit]


def call_in_child(
    fn: Callable[..., T], *args: Any, what: str, max_children: int | None = None
) -> T:
    """`fn(*args)` run in a fresh process; `fn` must be importable (a module-level function).

    `what` names the work in error messages, e.g. "reading the file". With `max_children`,
    at most that many children (of calls giving the same number) run at once in this process:
    each big file needs several times its size in memory, so they must not all run together.

    Raises:
        TabpilotError: the error `fn` raised, rebuilt with its class, message and details.
        ChildFailed: the child died or raised something else.
        QuotaExceeded: every child slot stayed busy for `CHILD_WAIT_S` seconds.
    """
    if max_children is None:
        return _run_in_child(fn, *args, what=what)
    slots = _child_slots(max_children)
    if not slots.acquire(timeout=CHILD_WAIT_S):
        raise QuotaExceeded(
            f"The server is already {what} for {max_children} other big file(s), its limit "
            "at once (TABPILOT_MAX_ISOLATED_CHILDREN); try again in a minute."
        )
    try:
        return _run_in_child(fn, *args, what=what)
    finally:
        slots.release()


def _run_in_child(fn: Callable[..., T], *args: Any, what: str) -> T:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        try:
            outcome = pool.submit(_guarded, fn, *args).result()
        except BrokenProcessPool:
            raise ChildFailed(
                f"The server process {what} stopped before finishing, most likely out of "
                "memory. Try a smaller file (fewer rows or columns), or run Tabpilot on a "
                "machine with more memory."
            ) from None
    kind, value = outcome
    if kind == "ok":
        return value
    if kind == "domain":
        raise rebuild_error(value)
    raise ChildFailed(f"{what.capitalize()} failed unexpectedly: {value}")


def _guarded(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """Runs in the child: the result, or the error as plain data (exceptions with keyword-only
    constructors do not survive pickling)."""
    try:
        return "ok", fn(*args)
    except TabpilotError as exc:
        return "domain", {
            "class": type(exc).__name__,
            "message": exc.message,
            "details": exc.details,
            "path": getattr(exc, "path", None),
            "line": getattr(exc, "line", None),
        }
    except Exception as exc:  # reported as ChildFailed with the exception's type only
        return "other", type(exc).__name__


def rebuild_error(data: dict[str, Any]) -> TabpilotError:
    """The `TabpilotError` described by `_guarded`, with its original class where known."""
    cls = getattr(errors, data["class"], None)
    if not (isinstance(cls, type) and issubclass(cls, TabpilotError)):
        cls = TabpilotError
    error = cls.__new__(cls)
    TabpilotError.__init__(error, data["message"], details=dict(data["details"]))
    if data.get("path") is not None or data.get("line") is not None:
        error.path = data.get("path")  # type: ignore[attr-defined]
        error.line = data.get("line")  # type: ignore[attr-defined]
    return error
