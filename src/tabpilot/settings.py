"""Process settings, read from `TABPILOT_*` environment variables and validated at start-up.

There is deliberately no module-level instance: each entry point (serve, worker, run-job, tests)
calls `load_settings()` once, so a bad value fails the process up front, naming every invalid
setting, instead of failing later inside a job. Every field is documented in docs/settings.md
(a test keeps the two in step).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from tabpilot.backends import Registry, writable_dir_problem
from tabpilot.errors import InvalidInput
from tabpilot.jobs.registry import RUNNERS, runner_store_problem
from tabpilot.metadata.registry import METADATA_STORES
from tabpilot.storage.registry import ARTIFACT_STORES

ENV_PREFIX = "TABPILOT_"
# A DNS name or an IPv4/IPv6 address, without scheme or port.
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_.-]*[a-z0-9_])?|[0-9a-f:.]*:[0-9a-f:.]*")

# Each backend URI setting is checked by the registry of its kind, with the words it uses when
# building, so a backend that registers a scheme is accepted here without any change.
_REGISTRIES: dict[str, Registry[Any]] = {
    "metadata_uri": METADATA_STORES,
    "artifact_uri": ARTIFACT_STORES,
    "runner_uri": RUNNERS,
}


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
        description="Metadata store: sqlite:///PATH or postgresql://USER@HOST/DB. "
        "Empty means sqlite:///{data_dir}/tabpilot.db.",
    )
    artifact_uri: str = Field(
        default="",
        description="Artifact store: a directory or file:///PATH. "
        "Empty means {data_dir}/artifacts.",
    )
    runner_uri: str = Field(
        default="local://?workers=1",
        description="Job runner: inline://, local://?workers=N (&warm=0: no spare process), "
        "batch://QUEUE?job_definition=NAME or ray://HOST:10001?cpus=C&jobs=N.",
    )
    batch_reconcile_s: float = Field(
        default=30,
        gt=0,
        description="With batch://, how often (seconds) the server checks the AWS Batch jobs "
        "of unfinished jobs, retrying or failing those whose Batch job ended.",
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
    max_inflated_mb: int = Field(
        default=4096,
        gt=0,
        description="Largest size a gzip-compressed upload (.csv.gz) may have once "
        "decompressed, in MiB.",
    )
    max_active_jobs: int = Field(
        default=10, gt=0, description="Jobs one user may have queued or running at once."
    )
    max_user_storage_mb: int = Field(
        default=20480, gt=0, description="Bytes of datasets one user may store, in MiB."
    )
    max_isolated_children: int = Field(
        default=2,
        gt=0,
        description="Big files read or rendered at once, each in its own child process.",
    )
    min_free_mb: int = Field(
        default=256,
        ge=0,
        description="Free disk space (MiB) below which uploads are refused and /ready fails.",
    )
    max_json_mb: int = Field(
        default=16, gt=0, description="Largest body of a JSON predict request, in MiB."
    )
    max_body_kb: int = Field(
        default=1024,
        gt=0,
        description="Largest body of any other request (uploads excepted), in KiB.",
    )
    body_timeout_s: float = Field(
        default=60, gt=0, description="Seconds a request body may stop arriving before 408."
    )
    max_header_kb: int = Field(
        default=64, gt=0, description="Largest request line and headers together, in KiB."
    )
    header_timeout_s: float = Field(
        default=30,
        gt=0,
        description="Seconds a client has to send a request's line and headers.",
    )
    max_connections: int = Field(
        default=500,
        gt=0,
        description="Connections and requests served at once; beyond it 503.",
    )
    allowed_hosts: str = Field(
        default="",
        description="Host names this server answers to besides the loopback names and the "
        "address it listens on, comma-separated (a leading *. allows subdomains; * allows any).",
    )
    download_link_mb: int = Field(
        default=4,
        ge=0,
        description="Model files at least this big (MiB) are downloaded straight from the "
        "artifact store through a short-lived link, when the store has them (S3); 0: never.",
    )
    web_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Key that signs browser sessions and CSRF tokens (at least 32 characters). "
        "Empty means a random key kept in {data_dir}/web-secret.key.",
    )
    max_columns: int = Field(
        default=1000, gt=0, description="Most columns an uploaded dataset may have."
    )
    max_cell_chars: int = Field(
        default=100_000,
        gt=0,
        description="Longest cell an uploaded dataset may have, in characters.",
    )
    predict_max_extra_columns: int = Field(
        default=1000,
        ge=0,
        description="Columns a prediction may send beyond the model's features (they are "
        "ignored); wider requests are refused.",
    )
    stream_max_per_user: int = Field(
        default=20, gt=0, description="Open job event streams (SSE) per user."
    )
    stream_max_total: int = Field(
        default=500, gt=0, description="Open job event streams (SSE) on this server."
    )
    stream_max_seconds: int = Field(
        default=3600,
        gt=0,
        description="A job event stream is closed after this many seconds (clients reconnect "
        "and resume with Last-Event-ID).",
    )

    @field_validator("web_secret")
    @classmethod
    def _check_web_secret(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret and len(secret.strip()) < 32:
            raise ValueError(
                "must be at least 32 characters (e.g. the output of `openssl rand -hex 32`), "
                "or empty for a key kept in the data directory"
            )
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: str) -> str:
        names = [name.strip().lower().rstrip(".") for name in value.split(",") if name.strip()]
        for name in names:
            bare = name.removeprefix("*.").strip("[]")
            if name != "*" and not _HOST_NAME.fullmatch(bare):
                raise ValueError(
                    f'"{name}" is not a host name; give names such as tabpilot.example.com, '
                    "192.168.1.5 or *.example.com, comma-separated, without scheme or port"
                )
        return ",".join(names)

    @property
    def allowed_host_names(self) -> tuple[str, ...]:
        """`allowed_hosts` as a tuple of lower-case names (brackets of IPv6 addresses dropped)."""
        return tuple(n.strip("[]") for n in self.allowed_hosts.split(",") if n)

    @field_validator("data_dir")
    @classmethod
    def _check_data_dir(cls, value: Path) -> Path:
        path = Path(os.path.abspath(value.expanduser()))
        problem = writable_dir_problem(path)
        if problem:
            raise ValueError(f'"{value}" {problem}; choose a directory this process can write')
        return path

    @field_validator("metadata_uri", "artifact_uri", "runner_uri")
    @classmethod
    def _check_backend_uri(cls, value: str, info: ValidationInfo) -> str:
        """The registry of the backend kind checks the URI, as it does again when building."""
        value = value.strip()
        if not value and info.field_name != "runner_uri":
            return value  # derived from data_dir below
        problem = _REGISTRIES[str(info.field_name)].problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _derive_defaults(self) -> Settings:
        if not self.metadata_uri:
            self.metadata_uri = f"sqlite:///{self.data_dir / 'tabpilot.db'}"
        if not self.artifact_uri:
            self.artifact_uri = str(self.data_dir / "artifacts")
        # A runner on other machines (ray:// elsewhere) cannot use stores in this one's files.
        problem = runner_store_problem(
            self.runner_uri, metadata_uri=self.metadata_uri, artifact_uri=self.artifact_uri
        )
        if problem:
            error = {"type": "value_error", "loc": ("runner_uri",), "input": self.runner_uri}
            raise ValidationError.from_exception_data(
                "Settings", [{**error, "ctx": {"error": ValueError(problem)}}]
            )
        return self

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    @property
    def max_inflated_bytes(self) -> int:
        return self.max_inflated_mb * 1024 * 1024

    def store_environment(self, *, runner_uri: str) -> dict[str, str]:
        """This process's environment for a child that must use these settings' stores.

        Every `TABPILOT_*` variable is replaced: the data directory and the two stores get
        their resolved values (so options given on the command line, such as `--data-dir`,
        reach the child), the runner becomes `runner_uri`, and the rest are dropped, so nothing
        inherited can make the child's settings differ or fail.
        """
        names = {env_var_name(field) for field in type(self).model_fields}
        env = {key: value for key, value in os.environ.items() if key not in names}
        env[env_var_name("data_dir")] = str(self.data_dir)
        env[env_var_name("metadata_uri")] = self.metadata_uri
        env[env_var_name("artifact_uri")] = self.artifact_uri
        env[env_var_name("runner_uri")] = runner_uri
        return env


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
