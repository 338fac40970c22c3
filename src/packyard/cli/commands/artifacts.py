"""upload, download, promote/demote/hold/release/fail/deprecate, artifacts list/show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from packyard.cli.client import CliError
from packyard.cli.commands._common import api
from packyard.cli.exit_codes import ExitCode
from packyard.cli.output import (
    console,
    err_console,
    human_size,
    print_json,
    print_table,
    short,
    transfer_progress,
)

__all__ = ["register"]

CHUNK = 1024 * 1024


def _print_artifact(a: dict[str, Any]) -> None:
    console.print(
        f"[bold]{escape(a['name'])} {escape(a['version'])}[/] ({a['format']}"
        f"{', ' + escape(a['arch']) if a.get('arch') else ''})  id {a['sha256']}"
    )
    rows = [
        ("package", f"{a['package']} (pipeline {a['pipeline']})"),
        ("file", f"{a['filename']}, {human_size(a['size'])}"),
        (
            "status",
            a["status"]
            + (f" — {a['status_reason']}" if a.get("status_reason") else "")
            + (
                "  [HELD" + (f": {a['hold_reason']}" if a.get("hold_reason") else "") + "]"
                if a["held"]
                else ""
            ),
        ),
        ("stages", " → ".join(e["stage"] for e in a["stages"]) or "-"),
        ("uploaded", f"{a['uploaded_at']} by {a['uploaded_by']}"),
        ("provenance", a["provenance"]),
        ("justification", a["justification"]),
    ]
    if a.get("distro"):
        rows.insert(2, ("distro", a["distro"]))
    for key, values in (a.get("relations") or {}).items():
        if values:
            rows.append((key, ", ".join(values)))
    if "next_stage" in a:
        if a["next_stage"] is None:
            rows.append(("next", "none: the artifact is in the last stage"))
        elif a["open_gates"]:
            rows.append(
                (
                    "next",
                    f"{a['next_stage']}: blocked by "
                    + "; ".join(g["message"] for g in a["open_gates"]),
                )
            )
        else:
            rows.append(("next", f"{a['next_stage']}: no gate is closed"))
    for key, value in rows:
        console.print(f"  [dim]{key:>13}[/]  {escape(str(value))}")


def register(app: typer.Typer) -> None:
    @app.command()
    def upload(
        ctx: typer.Context,
        files: list[Path] = typer.Argument(
            ..., exists=True, dir_okay=False, readable=True, help="Package files"
        ),
        justification: str = typer.Option(
            "", "--justification", "-j", help="Why it should be deployed"
        ),
        provenance: str = typer.Option(
            "", "--provenance", "-p", help="Where it came from (CI job, commit)"
        ),
        package: str = typer.Option(
            None, "--package", help="Package to group under (and name of generic files)"
        ),
        version: str = typer.Option(None, "--version", help="Version, for files that carry none"),
        as_json: bool = typer.Option(False, "--json", help="Print the artifacts as JSON"),
    ) -> None:
        """Upload package files (format detected from content) with a progress bar."""
        from rich.progress import (
            Progress,
            TaskID,
        )

        results: list[dict[str, Any]] = []
        failures = 0
        last_error: CliError | None = None
        with api(ctx) as client:
            for path in files:
                size = path.stat().st_size
                progress = transfer_progress("{task.description}", disable=as_json)

                def body(task: TaskID, path: Path = path, progress: Progress = progress) -> Any:
                    with path.open("rb") as handle:
                        while chunk := handle.read(CHUNK):
                            progress.advance(task, len(chunk))
                            yield chunk

                params = {
                    "filename": path.name,
                    "justification": justification,
                    "provenance": provenance,
                }
                if package:
                    params["package"] = package
                if version:
                    params["version"] = version
                try:
                    with progress:
                        task = progress.add_task(path.name, total=size)
                        response = client.request(
                            "POST",
                            "/api/v1/artifacts",
                            params=params,
                            content=body(task),
                            headers={
                                "Content-Type": "application/octet-stream",
                                "Content-Length": str(size),
                            },
                        )
                except CliError as error:
                    failures += 1
                    last_error = error
                    err_console.print(f"[red]✗ {escape(path.name)}:[/] {escape(error.message)}")
                    if error.hint:
                        err_console.print(f"  [yellow]hint:[/] {escape(error.hint)}")
                    continue
                artifact = response.json()
                results.append(artifact)
                if not as_json:
                    verb = "uploaded" if artifact["created"] else "already stored"
                    console.print(
                        f"[green]✓[/] {escape(path.name)}: {verb} as {artifact['format']} "
                        f"{escape(artifact['name'])} {escape(artifact['version'])} — id "
                        f"{short(artifact['sha256'])}, stage {artifact['current_stage']}"
                    )
        if as_json:
            print_json(results)
        if failures:
            from packyard.cli.exit_codes import exit_code_for

            raise typer.Exit(
                int(exit_code_for(last_error.code))
                if failures == len(files) and last_error
                else int(ExitCode.ERROR)
            )

    @app.command()
    def download(
        ctx: typer.Context,
        artifact: str = typer.Argument(..., help="Artifact id (sha256 or a prefix of 8+ digits)"),
        output: Path = typer.Option(
            None, "--output", "-o", help="File to write [default: the original name]"
        ),
    ) -> None:
        """Download an artifact's file and verify its sha256."""
        import hashlib
        import os

        with api(ctx) as client:
            meta = client.get(f"/api/v1/artifacts/{artifact}")
            target = output or Path(meta["filename"])
            partial = target.with_name(target.name + ".part")
            digest = hashlib.sha256()
            with client.http.stream("GET", f"/api/v1/artifacts/{meta['sha256']}/file") as response:
                client.check(response)
                with partial.open("wb") as handle:
                    for chunk in response.iter_bytes(CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
            if digest.hexdigest() != meta["sha256"]:
                partial.unlink(missing_ok=True)
                raise CliError(
                    "integrity",
                    "the downloaded file does not match its sha256",
                    hint="try again; if it persists run `packyard scrub` on the server",
                )
            os.replace(partial, target)
        console.print(f"Saved {target} ({human_size(meta['size'])}, sha256 verified).")

    def _transition(
        ctx: typer.Context, artifact: str, action: str, body: dict[str, Any], done: str
    ) -> None:
        with api(ctx) as client:
            result = client.post(f"/api/v1/artifacts/{artifact}/{action}", json=body)
        a = result["artifact"]
        label = escape(f"{a['name']} {a['version']} ({short(a['sha256'])})")
        if result["changed"]:
            console.print(
                f"[green]✓[/] {label} {done}. Stages: {' → '.join(e['stage'] for e in a['stages'])}"
            )
        else:
            console.print(f"{label}: nothing to do, already {done}.")

    @app.command()
    def promote(
        ctx: typer.Context,
        artifact: str = typer.Argument(..., help="Artifact id"),
        to: str = typer.Option(..., "--to", help="Target stage"),
        change_control: str = typer.Option(
            None, "--change-control", "-c", help="Change-control (ticket) id"
        ),
        note: str = typer.Option(None, "--note", help="Why (kept in the audit log)"),
    ) -> None:
        """Promote an artifact into a stage; gates that refuse say why."""
        _transition(
            ctx,
            artifact,
            "promote",
            {"stage": to, "change_control": change_control, "note": note},
            f"promoted to {to}",
        )

    @app.command()
    def demote(
        ctx: typer.Context,
        artifact: str = typer.Argument(...),
        stage: str = typer.Option(
            None, "--from", help="Stage to leave [default: the highest reached]"
        ),
        note: str = typer.Option(None, "--note"),
    ) -> None:
        """Take an artifact out of a stage (and the stages that require it)."""
        _transition(ctx, artifact, "demote", {"stage": stage, "note": note}, "demoted")

    @app.command()
    def hold(
        ctx: typer.Context,
        artifact: str = typer.Argument(...),
        reason: str = typer.Option(None, "--reason"),
    ) -> None:
        """Hold an artifact: no promotions until released."""
        _transition(ctx, artifact, "hold", {"reason": reason}, "held")

    @app.command()
    def release(
        ctx: typer.Context,
        artifact: str = typer.Argument(...),
        reason: str = typer.Option(None, "--reason"),
    ) -> None:
        """Release a hold."""
        _transition(ctx, artifact, "release", {"reason": reason}, "released")

    @app.command()
    def fail(
        ctx: typer.Context,
        artifact: str = typer.Argument(...),
        reason: str = typer.Option(None, "--reason"),
    ) -> None:
        """Mark an artifact failed: it leaves every channel and cannot be promoted."""
        _transition(ctx, artifact, "fail", {"reason": reason}, "marked failed")

    @app.command()
    def deprecate(
        ctx: typer.Context,
        artifact: str = typer.Argument(...),
        reason: str = typer.Option(None, "--reason"),
    ) -> None:
        """Mark an artifact deprecated: it leaves every channel and cannot be promoted."""
        _transition(ctx, artifact, "deprecate", {"reason": reason}, "deprecated")

    artifacts_app = typer.Typer(help="Query artifacts.", no_args_is_help=True)
    app.add_typer(artifacts_app, name="artifacts")

    @artifacts_app.command("list")
    def list_(
        ctx: typer.Context,
        package: str = typer.Option(None, "--package"),
        stage: str = typer.Option(None, "--stage", help="Artifacts that have reached this stage"),
        format: str = typer.Option(None, "--format"),
        arch: str = typer.Option(None, "--arch"),
        status: str = typer.Option(None, "--status", help="active, failed, deprecated or held"),
        q: str = typer.Option(None, "--search", "-q", help="Free text"),
        sort: str = typer.Option("uploaded_at", "--sort"),
        ascending: bool = typer.Option(False, "--asc", help="Ascending order"),
        page: int = typer.Option(1, "--page"),
        per_page: int = typer.Option(50, "--per-page"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """List artifacts with filters, sorting and paging."""
        params = {
            k: v
            for k, v in {
                "package": package,
                "stage": stage,
                "format": format,
                "arch": arch,
                "status": status,
                "q": q,
                "sort": sort,
                "order": "asc" if ascending else "desc",
                "page": page,
                "per_page": per_page,
            }.items()
            if v is not None
        }
        with api(ctx) as client:
            data = client.get("/api/v1/artifacts", params=params)
        if as_json:
            print_json(data)
            return
        print_table(
            ["id", "package", "format", "version", "arch", "stage", "status", "uploaded"],
            [
                (
                    short(a["sha256"]),
                    a["package"],
                    a["format"],
                    a["version"],
                    a["arch"] or "",
                    a["current_stage"],
                    a["status"] + (" (held)" if a["held"] else ""),
                    a["uploaded_at"][:19].replace("T", " "),
                )
                for a in data["items"]
            ],
        )
        shown = len(data["items"])
        first = (data["page"] - 1) * data["per_page"] + (1 if shown else 0)
        err_console.print(f"[dim]{first}-{first + shown - 1 if shown else 0} of {data['total']}[/]")

    @artifacts_app.command("show")
    def show(
        ctx: typer.Context,
        artifact: str = typer.Argument(...),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Show an artifact: metadata, stages and what its next stage still needs."""
        with api(ctx) as client:
            data = client.get(f"/api/v1/artifacts/{artifact}")
        if as_json:
            print_json(data)
        else:
            _print_artifact(data)
