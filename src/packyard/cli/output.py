"""Printing for the CLI: tables and records with Rich, JSON for scripts, errors to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from packyard.cli.client import CliError
from packyard.cli.exit_codes import exit_code_for

if TYPE_CHECKING:
    from rich.progress import Progress

__all__ = [
    "console",
    "err_console",
    "fail",
    "human_size",
    "print_json",
    "print_table",
    "short",
    "transfer_progress",
]

# Pipes and CI logs get a wide console so tables are not folded into unreadable columns.
console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def fail(error: CliError) -> NoReturn:
    """Print ``error`` to stderr and exit with its code of the exit-code table.

    The message and hint are printed as they are: they name config sections (``[publish.s3]``)
    and user input, which Rich would otherwise read as markup (dropping them, or crashing on a
    stray ``[/…]``).
    """
    err_console.print(Text.assemble(("Error:", "bold red"), " ", error.message))
    if error.hint:
        err_console.print(Text.assemble("  ", ("hint:", "yellow"), " ", error.hint))
    if error.code not in ("error", "unreachable", "integrity"):
        err_console.print(Text(f"  code: {error.code}", style="dim"))
    raise typer.Exit(int(exit_code_for(error.code)))


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def print_table(
    columns: Sequence[str], rows: Iterable[Sequence[Any]], *, title: str | None = None
) -> None:
    table = Table(title=title, show_lines=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Cells are data (names, justifications, errors) and print as they are; a cell that
        # wants a style passes a rich Text.
        table.add_row(
            *[v if isinstance(v, Text) else Text("" if v is None else str(v)) for v in row]
        )
    console.print(table)


def transfer_progress(label: str, *extra: Any, disable: bool = False) -> Progress:
    """A byte-transfer progress bar on stderr (uploads, pushes, mirror downloads): ``label``
    (a column template), bar, bytes, speed, time left, then ``extra`` columns; gone when done."""
    from rich.progress import (  # imported here: `packyard --help` stays fast
        BarColumn,
        DownloadColumn,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )
    from rich.progress import Progress as RichProgress

    return RichProgress(
        TextColumn(label),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        *extra,
        console=err_console,
        transient=True,
        disable=disable,
    )


def short(sha: str) -> str:
    return sha[:12]


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
