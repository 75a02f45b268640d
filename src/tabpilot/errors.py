"""Domain errors, one hierarchy for the engine, services, API and CLI.

Every error carries a message a user can act on: what was wrong and what to do about it.
The API maps these to HTTP status codes and the CLI prints them without a traceback.
"""

from __future__ import annotations

from typing import Any


class TabpilotError(Exception):
    """Base of every error a user may see."""

    code = "error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidInput(TabpilotError):
    """The user's input (file, option, row) cannot be used as given."""

    code = "invalid_input"


class DataFileError(InvalidInput):
    """A data file cannot be read; names the file and, where known, the line."""

    code = "invalid_data_file"

    def __init__(
        self, message: str, *, path: str | None = None, line: int | None = None, **kw: Any
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message, **kw)
        self.path = path
        self.line = line
        self.details.update({k: v for k, v in (("path", path), ("line", line)) if v is not None})


class NotFound(TabpilotError):
    code = "not_found"


class Conflict(TabpilotError):
    code = "conflict"


class MissingDependency(TabpilotError):
    """An optional extra is needed for this feature; says which `pip install` fixes it."""

    code = "missing_dependency"
