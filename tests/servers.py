"""Helpers for tests that run a real `tabpilot serve` (or another server) on loopback."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tabpilot_command() -> list[str]:
    """The `tabpilot` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "tabpilot"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "tabpilot.cli"]


def server_environment(data_dir: Path, **settings: str) -> dict[str, str]:
    """This environment without any TABPILOT_* variable, plus the given settings.

    One local worker and no warm spare (most of these servers train nothing). `settings` are
    field names of `tabpilot.settings.Settings` (`auth="token"`, `max_upload_mb="1"`), turned
    into TABPILOT_<NAME> variables.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABPILOT_")}
    env.update(
        TABPILOT_DATA_DIR=str(data_dir),
        TABPILOT_RUNNER_URI="local://?workers=1&warm=0",
    )
    env.update({f"TABPILOT_{name.upper()}": str(value) for name, value in settings.items()})
    return env
