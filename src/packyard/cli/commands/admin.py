"""gc and scrub: maintenance run on the server host against its data (like `serve`)."""

from __future__ import annotations

from pathlib import Path

import typer

from packyard.cli.exit_codes import ExitCode
from packyard.cli.output import console, err_console, human_size, print_table, short

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    @app.command()
    def gc(
        data_dir: Path = typer.Option(None, "--data-dir", envvar="PACKYARD_DATA_DIR"),
        config: Path = typer.Option(None, "--config", envvar="PACKYARD_CONFIG"),
        dry_run: bool = typer.Option(False, "--dry-run", help="Only show what would be deleted"),
    ) -> None:
        """Apply retention: keep the newest N failed/deprecated per package, drop unreferenced blobs."""
        from packyard.cli.commands.server import _local_runtime
        from packyard.services.maintenance import (
            apply_gc,
            plan_gc,
            prune_index_cache,
            sweep_blobs,
        )

        runtime = _local_runtime(data_dir, config)
        with runtime.context() as ctx:
            plan = plan_gc(ctx)
        if plan.artifacts:
            print_table(
                ["id", "package", "version", "status", "size"],
                [
                    (short(v.sha256), v.package, v.version, v.status, human_size(v.size))
                    for v in plan.artifacts
                ],
                title="Artifacts beyond retention" + (" (dry run)" if dry_run else ""),
            )
        deleted = 0
        if not dry_run and plan.artifacts:
            with runtime.context(write=True) as ctx:
                deleted = apply_gc(ctx, plan)
        with runtime.context() as ctx:
            sweep = sweep_blobs(ctx, dry_run=dry_run)
            cache_files, cache_bytes = prune_index_cache(ctx, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        console.print(
            f"gc {verb} {len(plan.artifacts) if dry_run else deleted} artifacts "
            f"({human_size(plan.bytes)}) and {len(sweep.blobs)} unreferenced blobs "
            f"({human_size(sweep.bytes)})"
            + (f", removed {sweep.temp_files} abandoned uploads" if sweep.temp_files else "")
            + (
                f", {cache_files} index blocks unused for 30 days ({human_size(cache_bytes)})"
                if cache_files
                else ""
            )
            + "."
        )
        runtime.close()

    @app.command()
    def scrub(
        data_dir: Path = typer.Option(None, "--data-dir", envvar="PACKYARD_DATA_DIR"),
        config: Path = typer.Option(None, "--config", envvar="PACKYARD_CONFIG"),
    ) -> None:
        """Re-hash every stored blob; report missing or corrupt ones (exit 9 if any)."""
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        from packyard.cli.commands.server import _local_runtime
        from packyard.services.maintenance import scrub as run_scrub

        runtime = _local_runtime(data_dir, config)
        with runtime.context() as ctx:
            total = sum(size for _sha, size in ctx.repos.artifacts.iter_for_scrub())
            with Progress(
                TextColumn("scrub"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=err_console,
                transient=True,
            ) as progress:
                task = progress.add_task("scrub", total=total)
                report = run_scrub(ctx, progress=lambda n: progress.advance(task, n))
        runtime.close()
        if report.ok:
            console.print(
                f"[green]✓[/] scrub: {report.checked} blobs, {human_size(report.bytes)}, all intact."
            )
            return
        print_table(
            ["id", "problem"],
            [(p.sha256, p.problem) for p in report.problems],
            title=f"{len(report.problems)} of {report.checked} blobs have problems",
        )
        raise typer.Exit(int(ExitCode.INTEGRITY))
