"""What the commands share: the error wrapper and the --data-dir option.

Errors a user can cause print one clear line and exit with status 2; anything else is a bug
and says so (set TABPILOT_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from tabpilot.cli.display import print_error, print_internal_error, say
from tabpilot.errors import MissingDependency, TabpilotError

F = TypeVar("F", bound=Callable[..., Any])

# Top-level import names of the libraries the `train` extra installs (with the ones they
# bring): when one is missing, the fix is that extra, not a bug report.
TRAIN_EXTRA_MODULES = frozenset(
    {
        "flaml",
        "lightgbm",
        "xgboost",
        "sklearn",
        "scipy",
        "joblib",
        "skl2onnx",
        "onnxmltools",
        "onnx",
    }
)


def missing_train_extra(exc: ImportError) -> MissingDependency | None:
    """The `MissingDependency` an import error of a training library means, else None."""
    name = (exc.name or "").split(".")[0]
    if name not in TRAIN_EXTRA_MODULES:
        return None
    return MissingDependency(
        f"Training needs the optional training libraries ({name} is not installed); "
        "install them with: pip install 'tabpilot[train]'"
    )


def _call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except ImportError as exc:
        missing = missing_train_extra(exc)
        if missing is None:
            raise
        raise missing from exc


def friendly_errors(fn: F) -> F:
    """Turn domain errors into one line and exit 2; never show a traceback by default."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return _call(fn, *args, **kwargs)
        except TabpilotError as exc:
            print_error(exc.message)
            sys.exit(2)
        except KeyboardInterrupt:
            say("Interrupted.", err=True)
            sys.exit(130)
        except Exception as exc:
            if os.environ.get("TABPILOT_DEBUG"):
                raise
            print_internal_error(exc)
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


# Every service command can point at a data directory; the settings check it and name
# any problem, so click only parses a path here.
data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of the default SQLite database and artifacts (TABPILOT_DATA_DIR).",
)


def settings_with(**overrides: Any) -> Any:
    """`load_settings` with the command-line options that were given (None: from the env)."""
    from tabpilot.settings import load_settings

    return load_settings(**{k: v for k, v in overrides.items() if v is not None})
