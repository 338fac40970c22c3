"""packages list|show|set-pipeline, pipelines list."""

from __future__ import annotations

import typer
from rich.markup import escape

from packyard.cli.commands._common import api
from packyard.cli.output import console, print_json, print_table, short

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    packages_app = typer.Typer(help="Packages (names grouping artifacts).", no_args_is_help=True)
    pipelines_app = typer.Typer(help="Pipelines and their stages.", no_args_is_help=True)
    app.add_typer(packages_app, name="packages")
    app.add_typer(pipelines_app, name="pipelines")

    @packages_app.command("list")
    def list_(
        ctx: typer.Context,
        q: str = typer.Option(None, "--search", "-q"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """List packages."""
        with api(ctx) as client:
            packages = client.get("/api/v1/packages", params={"q": q} if q else None)
        if as_json:
            print_json(packages)
            return
        print_table(
            ["package", "pipeline", "artifacts", "last upload"],
            [
                (
                    p["name"],
                    p["pipeline"],
                    p["artifact_count"],
                    (p["last_upload"] or "")[:19].replace("T", " "),
                )
                for p in packages
            ],
        )

    @packages_app.command("show")
    def show(
        ctx: typer.Context,
        name: str = typer.Argument(...),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """All versions of a package with the stages each reached."""
        with api(ctx) as client:
            package = client.get(f"/api/v1/packages/{name}")
        if as_json:
            print_json(package)
            return
        console.print(
            f"[bold]{escape(package['name'])}[/] — pipeline {escape(package['pipeline'])}: "
            f"{' → '.join(package['stages'])}"
        )
        print_table(
            ["id", "version", "format", "arch", *package["stages"], "status"],
            [
                (
                    short(a["sha256"]),
                    a["version"],
                    a["format"],
                    a["arch"] or "",
                    *[
                        "●" if s in {e["stage"] for e in a["stages"]} else ""
                        for s in package["stages"]
                    ],
                    a["status"] + (" (held)" if a["held"] else ""),
                )
                for a in package["artifacts"]
            ],
        )

    @packages_app.command("set-pipeline")
    def set_pipeline(
        ctx: typer.Context,
        name: str = typer.Argument(...),
        pipeline: str = typer.Argument(None, help="Pipeline name; omit for the default"),
    ) -> None:
        """Assign a pipeline to a package."""
        with api(ctx) as client:
            package = client.request(
                "PUT", f"/api/v1/packages/{name}/pipeline", json={"pipeline": pipeline}
            ).json()
        console.print(f"{package['name']} now follows pipeline {package['pipeline']}.")

    @pipelines_app.command("list")
    def plist(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
        """List pipelines, their stages and gates."""
        with api(ctx) as client:
            pipelines = client.get("/api/v1/pipelines")
        if as_json:
            print_json(pipelines)
            return
        for p in pipelines:
            print_table(
                ["stage", "requires", "change control", "who may promote"],
                [
                    (
                        s["name"],
                        ", ".join(s["requires"]),
                        "required" if s["change_control"] else "",
                        ", ".join(s["promote_roles"]),
                    )
                    for s in p["stages"]
                ],
                title=f"{p['name']}{' (default)' if p['default'] else ''}",
            )
