"""The job runners, by URI scheme; `build_runner(uri)` builds the one a URI names.

A new runner registers here: its scheme, a check of its URI and a builder that imports its
module only when called (see `tabpilot.backends`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from tabpilot.backends import BackendURI, Registry, parse_uri
from tabpilot.errors import MissingDependency
from tabpilot.jobs.base import JobRunner
from tabpilot.jobs.ray_hosts import is_this_machine

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


RAY_CLIENT_PORT = 10001
"""The port of Ray's client server, which `ray start --head` opens by default."""


@dataclass(frozen=True)
class RayOptions:
    """The parts of a `ray://HOST:PORT?cpus=C&jobs=N` runner URI."""

    address: str
    """What `ray.init` is given: `ray://HOST:PORT`, the cluster's client address."""
    host: str
    cpus: float = 1.0
    """CPUs Ray reserves for each job's task."""
    jobs: int | None = None
    """Jobs run at once; None: as many as the cluster's CPUs allow (at start), at least 1."""


def build_runner(uri: str) -> JobRunner:
    """Build (not start) the runner `uri` names.

    `inline://` runs jobs in the caller's thread; `local://?workers=N` (default 1) runs them
    in child processes of this one, each slot keeping a warm spare process unless `&warm=0`;
    `ray://HOST:PORT?cpus=C&jobs=N` runs each as a task on a Ray cluster;
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


def ray_options(uri: str) -> RayOptions:
    """The address, `cpus` and `jobs` of a `ray://` URI.

    Raises:
        InvalidInput: naming TABPILOT_RUNNER_URI, when a part is not usable.
    """
    parsed = parse_uri(uri)
    read = _read_ray(parsed)
    if isinstance(read, str):
        raise RUNNERS.error(read, parsed)
    return read


def _ray_address(uri: BackendURI) -> tuple[str, str] | str:
    """(host, `ray://HOST:PORT`) of a ray:// URI, or what is wrong with it."""
    try:
        parts = urlsplit(uri.text)
        port = parts.port or RAY_CLIENT_PORT
    except ValueError as exc:
        return f"the port of {uri.shown} is not usable ({exc})"
    host = parts.hostname or ""
    if not host:
        return (
            "ray:// needs the address of the cluster's head: ray://HOST:10001 (the client "
            "port that `ray start --head` opens)"
        )
    if parts.username or parts.password:
        return "ray://HOST:PORT takes no user name or password"
    if parts.path not in ("", "/"):
        return f'ray://HOST:PORT takes no path, not "{parts.path}"'
    shown = f"[{host}]" if ":" in host else host
    return host, f"ray://{shown}:{port}"


def _read_ray(uri: BackendURI) -> RayOptions | str:
    """The options of a ray:// URI, or what is wrong with them."""
    address = _ray_address(uri)
    if isinstance(address, str):
        return address
    problems = []
    unknown = sorted(set(uri.query) - {"cpus", "jobs"})
    if unknown:
        problems.append(f'unknown parameter "{unknown[0]}"; ray:// takes cpus=C and jobs=N')
    cpus = uri.param("cpus", "1")
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", cpus) or not 0 < float(cpus) <= 1024:
        problems.append(
            f'cpus must be a number of CPUs per job above 0 (e.g. 1 or 0.5), not "{cpus}"'
        )
    jobs = uri.param("jobs")
    if jobs and (not re.fullmatch(r"[0-9]+", jobs) or int(jobs) < 1):
        problems.append(f'jobs must be a whole number of at least 1, not "{jobs}"')
    if problems:
        return "; ".join(problems)
    host, client_address = address
    return RayOptions(
        address=client_address, host=host, cpus=float(cpus), jobs=int(jobs) if jobs else None
    )


def _check_ray(uri: BackendURI) -> str | None:
    read = _read_ray(uri)
    return read if isinstance(read, str) else None


def machine_local_stores(metadata_uri: str, artifact_uri: str) -> list[str]:
    """The stores that live in this machine's files (a SQLite file, a local folder), in words."""
    found = []
    if parse_uri(metadata_uri).scheme == "sqlite":
        found.append("the SQLite database file (TABPILOT_METADATA_URI)")
    if parse_uri(artifact_uri).scheme in ("", "file"):
        found.append("the artifact folder (TABPILOT_ARTIFACT_URI)")
    return found


def runner_store_problem(runner_uri: str, *, metadata_uri: str, artifact_uri: str) -> str | None:
    """What is wrong with running `runner_uri`'s jobs against these stores, or None.

    Jobs on a Ray cluster elsewhere run on other machines, which cannot see the files of a
    SQLite database or a local artifact folder; a cluster on this machine can.
    """
    parsed = parse_uri(runner_uri)
    if parsed.scheme != "ray":
        return None
    local = machine_local_stores(metadata_uri, artifact_uri)
    options = _read_ray(parsed)
    if not local or isinstance(options, str) or is_this_machine(options.host):
        return None
    return stores_out_of_reach(f"at {options.address} is", local)


def stores_out_of_reach(cluster: str, local: list[str]) -> str:
    """The refusal of a Ray cluster (`cluster`: "at ADDRESS is") that is not this machine,
    for stores that are files on this machine (`local`: `machine_local_stores`)."""
    return (
        f"the Ray cluster {cluster} not on this machine, so its workers could not see "
        f"{' or '.join(local)}: files on this machine only; use stores every worker reaches "
        "(postgresql://... and s3://...), or a Ray cluster on this machine "
        f"(ray://127.0.0.1:{RAY_CLIENT_PORT})"
    )


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


def _init_batch(_uri: BackendURI) -> str:
    # Nothing is created: a queue and job definition belong to the deployment (Terraform).
    return (
        "nothing to create: the job queue and job definition come from the deployment "
        "(Terraform); `tabpilot serve` checks them at start-up"
    )


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
    init=_init_batch,
)


def _build_ray(uri: BackendURI) -> JobRunner:
    options = ray_options(uri.text)
    try:
        from tabpilot.jobs.ray_runner import RayRunner  # imports ray: only when configured
    except ImportError as exc:
        if not (exc.name or "").startswith("ray"):
            raise
        raise MissingDependency(
            "The Ray runner needs Ray's client; install it with: pip install 'tabpilot[ray]'"
        ) from None
    return RayRunner(options.address, cpus=options.cpus, jobs=options.jobs)


RUNNERS.register(
    "ray",
    name="the Ray runner",
    example="ray://HOST:10001",
    build=_build_ray,
    check=_check_ray,
)
