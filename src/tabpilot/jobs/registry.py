"""`build_runner(uri)`: the job runner a `TABPILOT_RUNNER_URI` names."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from tabpilot.errors import InvalidInput
from tabpilot.jobs.base import JobRunner

RUNNER_HINT = "use inline:// or local://?workers=N"


def build_runner(uri: str) -> JobRunner:
    """Build (not start) the runner `uri` names.

    `inline://` runs jobs in the caller's thread; `local://?workers=N` (default 1) runs them
    in child processes of this one, each slot keeping a warm spare process unless `&warm=0`;
    `batch://QUEUE?...` is reserved for AWS Batch.

    Raises:
        InvalidInput: for an unknown scheme, a bad `workers` value or a runner not built yet.
    """
    uri = uri.strip()
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "inline":
        from tabpilot.jobs.inline import InlineRunner

        return InlineRunner()
    if scheme == "local":
        from tabpilot.jobs.local import LocalRunner

        return LocalRunner(workers=local_workers(uri), warm=_flag(uri, "warm", default=True))
    if scheme == "batch":
        raise InvalidInput(
            "The AWS Batch runner (batch://) is not built yet; "
            f"{RUNNER_HINT} for TABPILOT_RUNNER_URI"
        )
    raise InvalidInput(f'Unsupported job runner "{scheme or uri}"; {RUNNER_HINT}')


def local_workers(uri: str) -> int:
    """The `workers` of a `local://?workers=N` URI (default 1)."""
    value = parse_qs(urlsplit(uri).query).get("workers", ["1"])[-1]
    if not value.isdigit() or int(value) < 1:
        raise InvalidInput(
            f'TABPILOT_RUNNER_URI: workers must be a whole number of at least 1, not "{value}"'
        )
    return int(value)


def _flag(uri: str, name: str, *, default: bool) -> bool:
    value = parse_qs(urlsplit(uri).query).get(name, [""])[-1].lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise InvalidInput(f'TABPILOT_RUNNER_URI: {name} must be 1 or 0 (true or false), not "{value}"')
