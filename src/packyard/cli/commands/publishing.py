"""publish, publications list|rollback, keys show|rotate|import, jobs list|show, worker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from packyard.cli.client import CliError
from packyard.cli.commands._common import api
from packyard.cli.exit_codes import ExitCode
from packyard.cli.output import console, err_console, print_json, print_table

__all__ = ["register"]


def _wait_for_job(client: Any, job: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    from rich.status import Status

    deadline = time.monotonic() + timeout
    with Status(f"job {job['id']} {job['status']}…", console=err_console) as status:
        while job["status"] in ("queued", "running"):
            if time.monotonic() > deadline:
                raise CliError(
                    "error",
                    f"job {job['id']} did not finish within {timeout:.0f}s",
                    hint=f"follow it with `packyard jobs show {job['id']}`",
                )
            time.sleep(0.3)
            job = client.get(f"/api/v1/jobs/{job['id']}")
            status.update(f"job {job['id']} {job['status']}…")
    return job


def register(app: typer.Typer) -> None:
    @app.command()
    def publish(
        ctx: typer.Context,
        stage: list[str] = typer.Option(None, "--stage", "-s", help="Stage(s) [default: all]"),
        format: list[str] = typer.Option(
            None, "--format", "-f", help="apt, dnf, pacman, packet, munki, files"
        ),
        full: bool | None = typer.Option(
            None,
            "--full/--incremental",
            help="Rebuild every index from the stored entries (the default), or only the "
            "blocks that changed (what every promotion does by itself); with --to: upload "
            "every object again, or only the changed ones (the default there)",
            show_default=False,
        ),
        recompute: bool = typer.Option(
            False,
            "--recompute",
            help="Also re-read every package file to compute its index entry (a repair)",
        ),
        wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the job to finish"),
        timeout: float = typer.Option(600, "--timeout", help="Seconds to wait"),
        to: str = typer.Option(
            None,
            "--to",
            help="Push the live publications to s3://bucket/prefix instead (runs on the server "
            "host with its data dir; --full uploads every object again)",
        ),
        data_dir: Path = typer.Option(None, "--data-dir", envvar="PACKYARD_DATA_DIR"),
        config: Path = typer.Option(None, "--config", envvar="PACKYARD_CONFIG"),
    ) -> None:
        """Rebuild and publish channels now (a background job; every change also publishes the
        channels it affects, incrementally)."""
        if to:
            from packyard.cli.commands.mirror import push_publications

            push_publications(
                to=to,
                stages=stage,
                formats=format,
                full=bool(full),
                data_dir=data_dir,
                config=config,
                recompute=recompute,
                wait=wait,
            )
            return
        full = True if full is None else full
        with api(ctx) as client:
            job = client.post(
                "/api/v1/publish",
                json={
                    "stages": stage or None,
                    "formats": format or None,
                    "full": full,
                    "recompute": recompute,
                },
            )
            if not wait:
                console.print(f"Queued job {job['id']} ({job['url']}).")
                return
            job = _wait_for_job(client, job, timeout=timeout)
        if job["status"] != "succeeded":
            err_console.print(f"[bold red]Publishing failed:[/] {escape(str(job['error']))}")
            raise typer.Exit(int(ExitCode.ERROR))
        for line in (job["log"] or "").splitlines():
            console.print(f"[green]✓[/] {escape(line)}")

    pubs = typer.Typer(help="Publications: immutable snapshots of channels.", no_args_is_help=True)
    app.add_typer(pubs, name="publications")

    @pubs.command("list")
    def list_(
        ctx: typer.Context,
        channel: str = typer.Option(None, "--channel", "-c", help="e.g. apt/prod"),
        history: int = typer.Option(1, "--history", help="Snapshots per channel"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Channels with their live snapshot (and, with --history N, earlier ones)."""
        params: dict[str, Any] = {"history": max(history, 1)}
        if channel:
            params["channel"] = channel
        with api(ctx) as client:
            data = client.get("/api/v1/channels", params=params)
        if as_json:
            print_json(data)
            return
        rows = []
        for ch in data:
            shown = (
                ch["history"][: max(history, 1)]
                if history > 1
                else ([ch["current"]] if ch["current"] else [])
            )
            if not shown:
                rows.append((ch["channel"], "-", "never published", "", "", ""))
            for p in shown:
                rows.append(
                    (
                        ch["channel"],
                        p["snapshot"],
                        p["created_at"][:19].replace("T", " "),
                        p["artifact_count"],
                        p["status"],
                        ", ".join(k[-16:] for k in p["signed_by"]),
                    )
                )
        print_table(["channel", "snapshot", "published", "artifacts", "status", "signed by"], rows)

    @pubs.command("rollback")
    def rollback(
        ctx: typer.Context,
        channel: str = typer.Argument(..., help="e.g. apt/prod"),
        to: str = typer.Option(None, "--to", help="Snapshot id [default: the previous one]"),
    ) -> None:
        """Serve an earlier kept snapshot's content again (re-dated and re-signed with today's
        keys, as a new snapshot, so that clients which updated since take it)."""
        fmt, _, stage = channel.partition("/")
        if not fmt or not stage or "/" in stage:
            raise CliError(
                "not_found",
                f"{channel!r} is not a channel",
                hint="channels are FORMAT/STAGE, e.g. apt/prod; `packyard publications list` "
                "shows them",
            )
        with api(ctx) as client:
            pub = client.post(f"/api/v1/channels/{fmt}/{stage}/rollback", json={"snapshot": to})
        source = pub.get("rollback_of")
        console.print(
            f"{pub['channel']} now serves "
            + (f"the content of snapshot {source} as snapshot " if source else "snapshot ")
            + f"{pub['snapshot']} ({pub['artifact_count']} artifacts, signed "
            f"{pub['created_at'][:19]})."
        )

    keys = typer.Typer(
        help="Repository signing keys and client configuration.", no_args_is_help=True
    )
    app.add_typer(keys, name="keys")

    @keys.command("show")
    def show(
        ctx: typer.Context,
        stage: str = typer.Option("prod", "--stage", "-s"),
        base_url: str = typer.Option(
            None, "--base-url", help="URL clients use [default: the server's]"
        ),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """The public key and the exact lines apt, dnf, pacman and Munki need for a stage."""
        params = {"stage": stage, **({"base_url": base_url} if base_url else {})}
        with api(ctx) as client:
            data = client.get("/api/v1/keys", params=params)
        if as_json:
            print_json(data)
            return
        c = data["client_config"]
        for row in data["keys"]:
            when = (row["retire_after"] or "")[:10]
            state = (
                row["status"]
                + (f" until {when}" if row["status"] == "retiring" and when else "")
                + (f" since {when}" if row["status"] == "retired" and when else "")
            )
            console.print(f"key {row['fingerprint']}  {row['uid']}  ({state})", markup=False)
        if c["private"]:
            console.print(
                "\nThese repositories need a token: replace <TOKEN> below with a reader's API "
                "token (e.g. `packyard users create pkg-reader --role viewer`).",
                markup=False,
            )
        blocks = [
            ("apt: trust the key", c["apt_setup"]),
            (f"apt: {c['apt_sources_file']}", c["apt_sources"]),
            *([(f"apt: {c['apt_auth_file']}", c["apt_auth"])] if c["private"] else []),
            (f"dnf: {c['dnf_repo_file']}", c["dnf_repo"]),
            ("pacman: trust the key", c["pacman_setup"]),
            ("pacman: /etc/pacman.conf", c["pacman_conf"]),
            ("Munki", c["munki"]),
            ("public key", c["public_key"]),
        ]
        for title, text in blocks:
            console.print(f"\n[bold]# {title}[/]")
            console.print(text.rstrip("\n"), markup=False)

    @keys.command("rotate")
    def rotate(
        ctx: typer.Context,
        transition_days: int = typer.Option(
            30, "--transition-days", help="Days the old key keeps signing"
        ),
    ) -> None:
        """Create a new signing key; both sign until the transition ends."""
        with api(ctx) as client:
            key = client.post("/api/v1/keys/rotate", json={"transition_days": transition_days})
        console.print(
            f"New signing key {key['fingerprint']}. The previous key keeps signing for "
            f"{transition_days} days; publish the new public key to your clients "
            "(`packyard keys show`)."
        )

    @keys.command("import")
    def import_(
        ctx: typer.Context,
        file: Path = typer.Argument(..., exists=True, dir_okay=False),
        transition_days: int = typer.Option(30, "--transition-days"),
    ) -> None:
        """Import an ASCII-armored secret key and make it the active signing key."""
        with api(ctx) as client:
            key = client.post(
                "/api/v1/keys/import",
                json={"armored_secret_key": file.read_text(), "transition_days": transition_days},
            )
        console.print(
            f"Imported {key['fingerprint']} ({key['uid']}); it signs from the next publication."
        )

    jobs = typer.Typer(help="Background jobs.", no_args_is_help=True)
    app.add_typer(jobs, name="jobs")

    @jobs.command("list")
    def jlist(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
        """Recent jobs."""
        with api(ctx) as client:
            data = client.get("/api/v1/jobs")
        if as_json:
            print_json(data)
            return
        print_table(
            ["id", "kind", "status", "by", "created", "error"],
            [
                (
                    j["id"],
                    j["kind"],
                    j["status"],
                    j["actor"],
                    j["created_at"][:19].replace("T", " "),
                    (j["error"] or "")[:80],
                )
                for j in data
            ],
        )

    @jobs.command("show")
    def jshow(ctx: typer.Context, job_id: int = typer.Argument(...)) -> None:
        """One job with its log."""
        with api(ctx) as client:
            j = client.get(f"/api/v1/jobs/{job_id}")
        console.print(
            f"job {j['id']} {j['kind']} {j['args']}: {j['status']}"
            + (f" — {j['error']}" if j["error"] else ""),
            markup=False,
        )
        if j["log"]:
            console.print(j["log"], markup=False)

    @app.command()
    def worker(
        data_dir: Path = typer.Option(None, "--data-dir", envvar="PACKYARD_DATA_DIR"),
        config: Path = typer.Option(None, "--config", envvar="PACKYARD_CONFIG"),
        workers: int = typer.Option(2, "--workers", help="Worker threads"),
    ) -> None:
        """Run background jobs in this process (scale-out: jobs.backend = redis://...)."""
        from packyard.asgi import attach_jobs
        from packyard.cli.commands.server import _local_runtime
        from packyard.logs import configure_logging

        runtime = _local_runtime(data_dir, config)
        configure_logging(runtime.settings.log_level, runtime.settings.log_format)
        queue = attach_jobs(runtime)
        queue.recover()
        err_console.print(f"Packyard worker: {workers} threads on {runtime.settings.jobs.backend}.")
        queue.run_foreground(workers=workers)
