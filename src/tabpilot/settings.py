"""Process settings, read from `TABPILOT_*` environment variables and validated at start-up.

There is deliberately no module-level instance: each entry point (serve, worker, run-job, tests)
calls `load_settings()` once, so a bad value fails the process up front, naming every invalid
setting, instead of failing later inside a job. Every field is documented in docs/settings.md
(a test keeps the two in step).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tabpilot.errors import InvalidInput
from tabpilot.storage.registry import local_artifact_path

ENV_PREFIX = "TABPILOT_"

METADATA_SCHEMES_HINT = "use sqlite:///, postgresql:// or dynamodb://"
ARTIFACT_SCHEMES_HINT = "use a directory path, file:// or s3://"
RUNNER_SCHEMES_HINT = "use inline://, local://?workers=N or batch://QUEUE?job_definition=NAME"


def env_var_name(field_name: str) -> str:
    """The environment variable that sets a `Settings` field, e.g. `TABPILOT_DATA_DIR`."""
    return ENV_PREFIX + field_name.upper()


class Settings(BaseSettings):
    """Everything a tabpilot process needs to know about its environment.

    Values come from keyword arguments first, then `TABPILOT_<FIELD>` environment variables,
    then the defaults below. `metadata_uri` and `artifact_uri` default to locations inside
    `data_dir`; `data_dir` defaults to `./tabpilot-data`, relative to the working directory of
    the process, and is stored as an absolute path.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="forbid")

    data_dir: Path = Field(
        default=Path("tabpilot-data"),
        description="Directory for the default SQLite database and artifact files.",
    )
    metadata_uri: str = Field(
        default="",
        description="Metadata store: sqlite:///PATH, postgresql://... or dynamodb://TABLE. "
        "Empty means sqlite:///{data_dir}/tabpilot.db.",
    )
    artifact_uri: str = Field(
        default="",
        description="Artifact store: a directory, file:///PATH or s3://BUCKET/PREFIX. "
        "Empty means {data_dir}/artifacts.",
    )
    runner_uri: str = Field(
        default="local://?workers=1",
        description="Job runner: inline://, local://?workers=N or batch://QUEUE?...",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Address to listen on.")
    port: int = Field(default=8000, ge=1, le=65535, description="TCP port to listen on.")
    auth: Literal["local", "token"] = Field(
        default="local",
        description="local: one user, no login, loopback only; token: API tokens per user.",
    )
    max_upload_mb: int = Field(
        default=1024, gt=0, description="Largest dataset upload accepted, in MiB."
    )

    @field_validator("data_dir")
    @classmethod
    def _check_data_dir(cls, value: Path) -> Path:
        path = Path(os.path.abspath(value.expanduser()))
        problem = _writable_dir_problem(path)
        if problem:
            raise ValueError(f'"{value}" {problem}; choose a directory this process can write')
        return path

    @field_validator("metadata_uri")
    @classmethod
    def _check_metadata_uri(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        scheme = _scheme(value)
        if scheme == "sqlite":
            path = sqlite_path(value)
            if path is None:
                raise ValueError(
                    f'"{value}" has no database file; write sqlite:///relative/path.db '
                    "or sqlite:////absolute/path.db"
                )
            problem = _writable_dir_problem(Path(os.path.abspath(path)).parent)
            if problem:
                raise ValueError(f'the directory of "{path}" {problem}')
        elif scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
            if not urlsplit(value).path.strip("/"):
                raise ValueError(f'"{_redact(value)}" names no database; add /DBNAME')
        elif scheme == "dynamodb":
            if not urlsplit(value).netloc:
                raise ValueError(f'"{value}" names no table; write dynamodb://TABLE?region=...')
        else:
            raise ValueError(f'unsupported scheme "{scheme}"; {METADATA_SCHEMES_HINT}')
        return value

    @field_validator("artifact_uri")
    @classmethod
    def _check_artifact_uri(cls, value: str) -> str:
        value = value.strip()
        if not value:
            return value
        scheme = _scheme(value)
        if scheme in ("", "file"):
            try:
                path = local_artifact_path(value)
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
            problem = _writable_dir_problem(path)
            if problem:
                raise ValueError(f'"{path}" {problem}; choose a directory this process can write')
        elif scheme == "s3":
            if not urlsplit(value).netloc:
                raise ValueError(f'"{value}" names no bucket; write s3://BUCKET/PREFIX')
        else:
            raise ValueError(f'unsupported scheme "{scheme}"; {ARTIFACT_SCHEMES_HINT}')
        return value

    @field_validator("runner_uri")
    @classmethod
    def _check_runner_uri(cls, value: str) -> str:
        value = value.strip()
        scheme = _scheme(value)
        parts = urlsplit(value)
        query = parse_qs(parts.query)
        if scheme == "inline":
            return value
        if scheme == "local":
            workers = query.get("workers", ["1"])[-1]
            if not workers.isdigit() or int(workers) < 1:
                raise ValueError(f'workers must be a whole number of at least 1, not "{workers}"')
            return value
        if scheme == "batch":
            if not parts.netloc:
                raise ValueError(f'"{value}" names no job queue; write batch://QUEUE?...')
            return value
        shown = scheme or value
        raise ValueError(f'unsupported scheme "{shown}"; {RUNNER_SCHEMES_HINT}')

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        if not self.metadata_uri:
            self.metadata_uri = f"sqlite:///{self.data_dir / 'tabpilot.db'}"
        if not self.artifact_uri:
            self.artifact_uri = str(self.data_dir / "artifacts")
        return self

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024


def load_settings(**overrides: Any) -> Settings:
    """Build `Settings` from the environment and `overrides`, or raise one `InvalidInput`.

    The error names every bad setting by its environment variable, one per line, and
    `details["settings"]` maps each variable to its problem.

    Raises:
        InvalidInput: if any setting is missing or invalid.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = _describe_errors(exc)
    lines = "\n".join(f"  {name}: {message}" for name, message in problems.items())
    raise InvalidInput(
        f"Invalid settings; fix these and start again:\n{lines}",
        details={"settings": problems},
    )


def sqlite_path(uri: str) -> str | None:
    """The database file of a `sqlite:///` URI (`sqlite:////abs` is absolute), or None."""
    rest = uri.split(":", 1)[1]
    if not rest.startswith("///"):
        return None
    path = unquote(rest[3:].split("?", 1)[0])
    return path or None


def _scheme(uri: str) -> str:
    if "://" not in uri:
        return ""
    return uri.split("://", 1)[0].lower()


def _redact(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return uri


def _writable_dir_problem(path: Path) -> str | None:
    """Why `path` cannot be used (or created) as a writable directory, or None if it can."""
    if path.exists():
        if not path.is_dir():
            return "is not a directory"
        if not os.access(path, os.W_OK | os.X_OK):
            return "is not writable"
        return None
    # It will be created on first use, so the nearest existing ancestor must allow that.
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f'cannot be created because "{parent}" is not a directory'
            if not os.access(parent, os.W_OK | os.X_OK):
                return f'cannot be created because "{parent}" is not writable'
            return None
    return "cannot be created"


def _describe_errors(exc: ValidationError) -> dict[str, str]:
    problems: dict[str, str] = {}
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "settings"
        name = env_var_name(field)
        if error["type"] == "value_error":
            # Our own validators already name the value and say what to do.
            message = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
        elif error["type"] == "extra_forbidden":
            message = "unknown setting; see docs/settings.md for the list"
        else:
            reason = error["msg"][:1].lower() + error["msg"][1:]
            message = f"{error['input']!r} is not valid: {reason}"
        problems[name] = f"{problems[name]}; {message}" if name in problems else message
    return problems
