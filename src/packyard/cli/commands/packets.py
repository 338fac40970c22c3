"""packet init|build|info: jamesd's packet workflow, locally (upload with `packyard upload`)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from packyard.cli.client import CliError
from packyard.cli.output import console, fail, print_json

__all__ = ["register"]


def _domain_error(exc: Exception) -> CliError:
    return CliError(
        getattr(exc, "code", "error"),
        getattr(exc, "message", str(exc)),
        hint=getattr(exc, "hint", None),
    )


def register(app: typer.Typer) -> None:
    packet_app = typer.Typer(
        help="Build and inspect packets (file trees with scripts, for devices).",
        no_args_is_help=True,
    )
    app.add_typer(packet_app, name="packet")

    @packet_app.command("init")
    def init(
        directory: Path = typer.Argument(..., help="Folder to create"),
        name: str = typer.Option(..., "--name"),
        version: str = typer.Option(..., "--version"),
        tags: str = typer.Option(
            "", "--tags", help="Comma-separated tags, e.g. arch=armv7l,systemd"
        ),
    ) -> None:
        """Create a packet folder: control.json, data/ and example scripts."""
        from packyard.domain.errors import PackyardError
        from packyard.services.packets import init_packet

        try:
            init_packet(
                directory,
                name=name,
                version=version,
                tags=[t.strip() for t in tags.split(",") if t.strip()],
            )
        except PackyardError as exc:
            fail(_domain_error(exc))
        console.print(
            f"Created {directory}/: put the files under data/ as laid out on the device, "
            f"edit the scripts, then `packyard packet build {directory}`."
        )

    @packet_app.command("build")
    def build(
        directory: Path = typer.Argument(..., exists=True, file_okay=False),
        output: Path = typer.Option(
            None, "--output", "-o", help="Output file [default: NAME-VERSION.packet]"
        ),
        compression: str = typer.Option("xz", "--compression", help="xz, zst or gz"),
    ) -> None:
        """Build a packet file from a packet folder."""
        import json

        from packyard.domain.errors import PackyardError
        from packyard.services.packets import build_packet

        if output is None:
            try:
                control = json.loads((directory / "control.json").read_text())
                output = Path(f"{control['name']}-{control['version']}.packet")
            except (OSError, ValueError, KeyError, TypeError):
                output = Path(directory.resolve().name + ".packet")
        try:
            meta = build_packet(directory, output, compression=compression)
        except PackyardError as exc:
            fail(_domain_error(exc))
        console.print(
            f"Built {output}: packet {meta.name} {meta.version}, "
            f"{meta.fields.get('files', '?')} files, scripts: {', '.join(meta.fields.get('scripts', [])) or 'none'}."
        )

    @packet_app.command("info")
    def info(
        file: Path = typer.Argument(..., exists=True, dir_okay=False),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Show what Packyard reads from any package file (not only packets)."""
        from dataclasses import asdict

        from packyard.domain.errors import PackyardError
        from packyard.formats import inspect_artifact

        try:
            with file.open("rb") as stream:
                meta = inspect_artifact(stream, filename=file.name)
        except PackyardError as exc:
            fail(_domain_error(exc))
        data = asdict(meta)
        data["format"] = meta.format.value
        if as_json:
            print_json(data)
            return
        console.print(
            f"[bold]{escape(str(meta.name))} {escape(str(meta.version))}[/] ({meta.format.value}"
            f"{', ' + escape(meta.arch) if meta.arch else ''}"
            f"{', ' + escape(meta.kind) if meta.kind else ''})"
        )
        for key, values in meta.relations.items():
            if values:
                console.print(f"  [dim]{key:>12}[/]  {escape(', '.join(values))}")
        for key, value in meta.fields.items():
            if key != "control":
                console.print(f"  [dim]{key:>12}[/]  {escape(str(value))}")
