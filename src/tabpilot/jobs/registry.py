"""The job runners, by URI scheme; `build_runner(uri)` builds the one a URI names.

A new runner registers here: its scheme, a check of its URI and a builder that imports its
module only when called (see `tabpilot.backends`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tabpilot.backends import BackendURI, Registry, parse_uri
from tabpilot.jobs.base import JobRunner

RUNNERS: Registry[JobRunner] = Registry("job runner", setting="TABPILOT_RUNNER_URI")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class LocalOptions:
    """The parameters of a `local://?workers=N&warm=0|1` runner URI."""

    workers: int = 1
    """Jobs run at once, each in a child process."""
    warm: bool = True
    """Whether each slot keeps a spare child with the ML libraries already imported."""


def build_runner(uri: str) -> JobRunner:
    """Build (not start) the runner `uri` names.

    `inline://` runs jobs in the caller's thread; `local://?workers=N` (default 1) runs them
    in child processes of this one, each slot keeping a warm spare process unless `&warm=0`;
    `batch://QUEUE?job_definition=NAME` submits each to AWS Batch (`jobs/batch.py`).

    Raises:
        InvalidInput: for an unknown scheme, a bad parameter or a runner not in this version.
    """
    return RUNNERS.build(uri)


def local_options(uri: str) -> LocalOptions:
    """`workers` and `warm` of a `local://` URI.

    Raises:
        InvalidInput: naming TABPILOT_RUNNER_URI, when a value is not usable.
    """
    parsed = parse_uri(uri)
    read = _read_local(parsed)
    if isinstance(read, str):
        raise RUNNERS.error(read, parsed)
    return read


def _read_local(uri: BackendURI) -> LocalOptions | str:
    """The options of a local:// URI, or what is wrong with them."""
    problems = []
    workers = uri.param("workers", "1")
    if not re.fullmatch(r"[0-9]+", workers) or int(workers) < 1:
        problems.append(f'workers must be a whole number of at least 1, not "{workers}"')
    warm = uri.param("warm").lower()
    if warm and warm not in _TRUE + _FALSE:
        problems.append(f'warm must be 1 or 0 (true or false), not "{warm}"')
    if problems:
        return "; ".join(problems)
    return LocalOptions(workers=int(workers), warm=warm not in _FALSE)


def _check_local(uri: BackendURI) -> str | None:
    read = _read_local(uri)
    return read if isinstance(read, str) else None


def _build_inline(_uri: BackendURI) -> JobRunner:
    from tabpilot.jobs.inline import InlineRunner

    return InlineRunner()


def _build_local(uri: BackendURI) -> JobRunner:
    from tabpilot.jobs.local import LocalRunner

    options = local_options(uri.text)
    return LocalRunner(workers=options.workers, warm=options.warm)


def _check_batch(uri: BackendURI) -> str | None:
    from tabpilot.jobs.batch import read_batch_uri  # no boto3 until a runner is built

    read = read_batch_uri(uri)
    return read if isinstance(read, str) else None


def _build_batch(uri: BackendURI) -> JobRunner:
    from tabpilot.jobs.batch import BatchRunner, batch_options

    return BatchRunner(batch_options(uri))


RUNNERS.register("inline", name="the inline runner", example="inline://", build=_build_inline)
RUNNERS.register(
    "local",
    name="the local runner",
    example="local://?workers=N",
    build=_build_local,
    check=_check_local,
)
RUNNERS.register(
    "batch",
    name="the AWS Batch runner",
    example="batch://QUEUE?job_definition=NAME",
    build=_build_batch,
    check=_check_batch,
)
RUNNERS.plan("ray", name="the Ray runner", example="ray://HOST:PORT")
