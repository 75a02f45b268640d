"""Server paths out of text that users see: `scrub_paths(text)`.

Job messages and errors are stored and shown to whoever owns the job, long after the process
that wrote them is gone; an exception's text can name a file under the data directory, the
temporary directory or the server account's home. Every job status change passes its message
and error through `scrub_paths` (`metadata.transitions.plan_transition`), so no writer can
forget to.

The roots replaced by `<server path>` (the rest of the path stays, so a message still says
which file): the temporary directories, the home directory of the process, the Python
installation, and every directory registered with `add_server_paths` (a context registers its
data directory and artifact root when it is built). Longest first, so a data directory inside
the home directory goes whole; a root matches only up to a path boundary (`/home/al` is not
replaced inside `/home/alice`).
"""

from __future__ import annotations

import functools
import os
import re
import sys
import tempfile
from pathlib import Path

SERVER_PATH = "<server path>"

# Process-wide, since stores are built far from where messages are written; a process has
# one context in practice, and more registered directories only mean more is scrubbed.
_registered: set[str] = set()


def add_server_paths(*paths: str | Path | None) -> None:
    """Also scrub these directories (and their resolved forms) from now on."""
    for path in paths:
        if path:
            text = os.path.abspath(os.path.expanduser(str(path)))
            _registered.update({text, os.path.realpath(text)})


def server_roots() -> tuple[str, ...]:
    """The directories `scrub_paths` replaces, longest first."""
    roots = {
        tempfile.gettempdir(),
        "/tmp",
        "/var/tmp",
        "/dev/shm",
        os.path.expanduser("~"),
        sys.prefix,
        sys.base_prefix,
        *_registered,
    }
    roots |= {os.path.realpath(root) for root in roots}
    kept = {root.rstrip("/") for root in roots if root and root.rstrip("/") not in ("", "~")}
    return tuple(sorted(kept, key=lambda root: (-len(root), root)))


@functools.lru_cache(maxsize=8)
def _pattern(roots: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(root) for root in roots)
    # A root ends where a name cannot go on: "/srv/al." ends a sentence, "/srv/al.bak" is
    # another file, "/srv/alice" another directory.
    return re.compile(f"(?:{alternatives})(?![A-Za-z0-9_-])(?!\\.[A-Za-z0-9_-])")


def scrub_paths(text: str) -> str:
    """`text` with every server root (see the module docstring) replaced by `<server path>`."""
    if not text:
        return text
    roots = server_roots()
    return _pattern(roots).sub(SERVER_PATH, text) if roots else text
