"""Helpers shared by the command modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from packyard.cli.client import Client, ClientSettings, CliError
from packyard.cli.output import fail

__all__ = ["api"]


@contextmanager
def api(ctx: typer.Context) -> Iterator[Client]:
    """A client from global options/env/config; CliErrors become a message and exit code."""
    obj = ctx.find_root().obj or {}
    try:
        client = Client(ClientSettings.resolve(server=obj.get("server"), token=obj.get("token")))
        try:
            yield client
        finally:
            client.close()
    except CliError as error:
        fail(error)
