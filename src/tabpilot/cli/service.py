"""The service commands: `serve` (the REST API and its job runner) and `users`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from tabpilot import __version__
from tabpilot.cli.common import data_dir_option, friendly_errors, settings_with
from tabpilot.cli.display import print_users, say


@click.command()
@click.option("--host", default=None, help="Address to listen on (TABPILOT_HOST; 127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="TCP port (TABPILOT_PORT; 8000)."
)
@data_dir_option
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
)
@friendly_errors
def serve(host: str | None, port: int | None, data_dir: Path | None, log_level: str) -> None:
    """Serve the platform: the REST API (docs at /docs) and the job runner, until Ctrl-C.

    Settings are checked first; each bad one is named. With TABPILOT_AUTH=local (the default)
    only loopback addresses are allowed, since nobody has to log in.
    """
    import logging

    import uvicorn

    from tabpilot.api.app import create_app
    from tabpilot.api.protocol import guarded_protocol
    from tabpilot.context import build_context
    from tabpilot.services.auth import check_bind_host

    settings = settings_with(host=host, port=port, data_dir=data_dir)
    check_bind_host(settings)
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    ctx = build_context(settings)
    try:
        ctx.runner.check(settings)  # a missing AWS Batch queue, say, named before listening
        app = create_app(ctx)
        shown = f"[{settings.host}]" if ":" in settings.host else settings.host
        if settings.host in ("0.0.0.0", "::"):  # every interface: open it by a name it answers to
            shown = "127.0.0.1"
        say(
            f"Tabpilot {__version__}: http://{shown}:{settings.port} (web UI; API docs at /docs); "
            f"data in {settings.data_dir}; auth {settings.auth}; runner {settings.runner_uri}",
            err=True,
        )
        if settings.host in ("0.0.0.0", "::"):
            say(
                "Listening on every interface: to open it from other machines, list the name "
                "or address they use in TABPILOT_ALLOWED_HOSTS (requests naming another host "
                "are refused).",
                err=True,
            )
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            # Local mode admits loopback clients only (api/exposure.py): the client is the
            # socket's peer, so a proxy on this machine is local, whatever X-Forwarded-For says.
            proxy_headers=settings.auth != "local",
            # Header size and header time limits (api/protocol.py), and the most connections
            # and requests at once (503 beyond); body limits are the app's (api/limits.py).
            http=guarded_protocol(
                max_header_bytes=settings.max_header_kb * 1024,
                header_timeout_s=settings.header_timeout_s,
            ),
            limit_concurrency=settings.max_connections,
        )
    finally:
        ctx.metadata.close()


@click.group()
def users() -> None:
    """API users of a server run with TABPILOT_AUTH=token."""


@users.command("create")
@click.argument("name")
@data_dir_option
@friendly_errors
def users_create(name: str, data_dir: Path | None) -> None:
    """Create the user NAME and print their API token (shown this once; only a hash is kept)."""
    from tabpilot.metadata import build_metadata_store
    from tabpilot.services.users import create_user

    settings = settings_with(data_dir=data_dir)
    with build_metadata_store(settings.metadata_uri) as store:
        user, token = create_user(store, name=name)
    say(
        f"Created user {user.name} ({user.id}). The API token below is shown only now; send it "
        "as 'Authorization: Bearer <token>'.",
        err=True,
    )
    click.echo(token)
    if settings.auth != "token":
        say(
            "Note: TABPILOT_AUTH is local, so the server ignores tokens; "
            "run it with TABPILOT_AUTH=token to require them.",
            err=True,
        )


@users.command("list")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@friendly_errors
def users_list(data_dir: Path | None, as_json: bool) -> None:
    """List the users (never their tokens)."""
    from tabpilot.metadata import build_metadata_store
    from tabpilot.services.users import list_all_users

    settings = settings_with(data_dir=data_dir)
    with build_metadata_store(settings.metadata_uri) as store:
        found = list_all_users(store)
    if as_json:
        rows = [{"id": u.id, "name": u.name, "created_at": u.created_at.isoformat()} for u in found]
        click.echo(json.dumps(rows, indent=2))
        return
    if not found:
        say("No users yet; create one with: tabpilot users create NAME", err=True)
        return
    print_users(found)


@users.command("rotate")
@click.argument("name")
@data_dir_option
@friendly_errors
def users_rotate(name: str, data_dir: Path | None) -> None:
    """Give the user NAME a new API token (printed once); the old one stops working."""
    from tabpilot.metadata import build_metadata_store
    from tabpilot.services.users import rotate_token

    settings = settings_with(data_dir=data_dir)
    with build_metadata_store(settings.metadata_uri) as store:
        user, token = rotate_token(store, name=name)
    say(f"New API token of {user.name}; the old one no longer works:", err=True)
    click.echo(token)
