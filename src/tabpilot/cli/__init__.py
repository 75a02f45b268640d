"""The `tabpilot` command line.

The commands by area: training.py (train, predict, info, demo), service.py (serve, users),
jobs.py (worker, run-job), stores.py (init-stores). display.py is everything they show,
common.py the error wrapper and the shared options. Each command imports what it needs when
it runs, so `tabpilot --help` and the service commands never load the training libraries.
"""

from __future__ import annotations

import click

from tabpilot import __version__
from tabpilot.cli.jobs import run_job, worker
from tabpilot.cli.service import serve, users
from tabpilot.cli.stores import init_stores
from tabpilot.cli.training import demo, info, predict, train

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tabpilot")
def main() -> None:
    """Tabpilot: a CSV in, a trained, explained, exportable model out."""


for _command in (train, predict, info, demo, serve, users, worker, run_job, init_stores):
    main.add_command(_command)
