"""audit: list events; audit verify: check the hash chain."""

from __future__ import annotations

import json

import typer
from rich.markup import escape

from packyard.cli.commands._common import api
from packyard.cli.exit_codes import ExitCode
from packyard.cli.output import console, err_console, print_json, print_table, short

__all__ = ["register"]


def _object(ev: dict) -> str:  # type: ignore[type-arg]
    oid = ev["object_id"]
    return f"{ev['object_type']}:{short(oid) if ev['object_type'] == 'artifact' else oid}"


def register(app: typer.Typer) -> None:
    audit_app = typer.Typer(help="The tamper-evident audit log.", invoke_without_command=True)
    app.add_typer(audit_app, name="audit")

    @audit_app.callback()
    def audit(
        ctx: typer.Context,
        artifact: str = typer.Option(None, "--artifact", help="Only events of this artifact"),
        actor: str = typer.Option(None, "--actor"),
        action: str = typer.Option(None, "--action", help="e.g. artifact.promote"),
        limit: int = typer.Option(50, "--limit"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """List audit events, newest first."""
        if ctx.invoked_subcommand is not None:
            return
        params = {
            k: v
            for k, v in {
                "artifact": artifact,
                "actor": actor,
                "action": action,
                "per_page": limit,
            }.items()
            if v is not None
        }
        with api(ctx) as client:
            data = client.get("/api/v1/events", params=params)
        if as_json:
            print_json(data["items"])
            return

        def describe(ev: dict) -> str:  # type: ignore[type-arg]
            after = ev.get("after") or {}
            parts = [
                f"{k}={json.dumps(v) if not isinstance(v, str) else v}"
                for k, v in after.items()
                if k not in ("stages",) and v not in (None, [], {})
            ]
            return ", ".join(parts)[:120]

        print_table(
            ["#", "time", "actor", "action", "object", "details", "reason"],
            [
                (
                    ev["seq"],
                    ev["at"][:19].replace("T", " "),
                    ev["actor"],
                    ev["action"],
                    _object(ev),
                    describe(ev),
                    ev.get("reason") or "",
                )
                for ev in data["items"]
            ],
        )
        err_console.print(f"[dim]{len(data['items'])} of {data['total']} events[/]")

    @audit_app.command("verify")
    def verify(ctx: typer.Context) -> None:
        """Verify the hash chain of the whole audit log."""
        with api(ctx) as client:
            report = client.get("/api/v1/events/verify")
        if report["ok"]:
            console.print(
                f"[green]✓[/] audit log intact: {report['checked']} events, hash chain verified."
            )
            return
        err_console.print(
            f"[bold red]✗ audit log broken at event #{report['broken_at']}:[/] "
            f"{escape(str(report['problem']))}"
        )
        raise typer.Exit(int(ExitCode.INTEGRITY))
