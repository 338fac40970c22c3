"""The ``packyard`` command. Commands are thin: they call the API (or, for server-side
maintenance such as ``serve``, ``gc`` and ``scrub``, the services directly) and import lazily so
``--help`` stays fast.
"""

from __future__ import annotations

import typer

from packyard.cli.commands import (
    admin,
    artifacts,
    audit,
    mirror,
    packages,
    packets,
    publishing,
    server,
    users,
)

__all__ = ["app", "main"]

app = typer.Typer(
    name="packyard",
    help="Packyard: package files through gated stages to signed repositories and devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _global(
    ctx: typer.Context,
    server_url: str = typer.Option(
        None,
        "--server",
        envvar="PACKYARD_SERVER",
        help="Server URL (default http://127.0.0.1:8000)",
    ),
    token: str = typer.Option(
        None,
        "--token",
        envvar="PACKYARD_TOKEN",
        help="API token (prefer PACKYARD_TOKEN or `packyard login`)",
    ),
) -> None:
    ctx.obj = {"server": server_url, "token": token}


server.register(app)
artifacts.register(app)
audit.register(app)
users.register(app)
packages.register(app)
packets.register(app)
admin.register(app)
publishing.register(app)
mirror.register(app)


def main() -> None:
    app()
