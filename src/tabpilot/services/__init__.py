"""Use cases shared by the REST API, the web UI and the command line.

Each function takes the `AppContext` (or the one store it needs) and keyword-only arguments,
acts for one `owner`, and raises `tabpilot.errors` on anything a user can get wrong. Services
never see an HTTP request and never import FastAPI or click, so every front end gets the same
rules and the same messages:

- `datasets`: upload staging, validation, profiling, listing, EDA report, deletion.
- `jobs`: validating a training request, queuing, listing, cancel, delete, retry, events.
- `compare`: held-out metrics, importance and configuration of jobs side by side.
- `users` and `auth`: API tokens and who a caller is.
- `health`: whether the stores answer.
"""

from __future__ import annotations

import re

from tabpilot.errors import NotFound

_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def check_id(kind: str, value: str) -> str:
    """Return `value` if it can be a record id; otherwise the record is simply not found.

    Ids are short `[A-Za-z0-9_-]` strings, so anything else (slashes, dots, `..`) is refused
    before it reaches a store or an artifact key.
    """
    if not isinstance(value, str) or not _ID.match(value):
        shown = value if isinstance(value, str) and len(value) <= 100 else "(malformed)"
        raise NotFound(f'{kind} "{shown}" not found', details={"id": shown})
    return value
