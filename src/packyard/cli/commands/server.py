"""serve, init, login."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from packyard.cli.client import Client, ClientSettings, CliError, save_client_config
from packyard.cli.output import console, err_console, fail

if TYPE_CHECKING:
    from packyard.bootstrap import Runtime
    from packyard.config import Settings

__all__ = ["register"]


def _local_runtime(
    data_dir: Path | None, config: Path | None, *, create: bool = False, **overrides: object
) -> Runtime:
    """Settings + runtime for commands that run on the server host.

    Only ``serve`` (``create``) sets up a new installation. The others (publish --to, worker,
    gc, scrub) refuse a data directory without a Packyard database before writing anything:
    run from the wrong directory, they would otherwise create an empty installation and act
    on it (a push from one deleted the bucket's public keys).
    """
    from packyard.bootstrap import Runtime
    from packyard.config import load_settings
    from packyard.domain.errors import ConfigError

    try:
        settings = load_settings(config_file=config, data_dir=data_dir, **overrides)
        if not create:
            _require_installation(settings)
        return Runtime.from_settings(settings)
    except ConfigError as exc:
        fail(CliError(exc.code, exc.message, hint=exc.hint))


def _require_installation(settings: Settings) -> None:
    """Raise ConfigError unless ``settings`` name an existing data dir and Packyard database.

    Reads only: SQLite files are opened only when they exist (connecting would create one).
    """
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from packyard.domain.errors import ConfigError

    data_dir = settings.data_dir.resolve()
    hint = (
        "pass --data-dir (or set PACKYARD_DATA_DIR) to the server's data directory, or run "
        "this where ./packyard-data is; `packyard serve` sets up a new installation"
    )
    if not data_dir.is_dir():
        raise ConfigError(
            f"{data_dir} has no Packyard database: the directory does not exist", hint=hint
        )
    url = make_url(settings.resolved_database_url)
    where = str(url.render_as_string(hide_password=True))
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        if not url.database or not path.is_file():
            raise ConfigError(
                f"{data_dir} has no Packyard database ({path} does not exist)", hint=hint
            )
        where = str(path)
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            ready = inspect(connection).has_table("alembic_version")
    except SQLAlchemyError as exc:
        raise ConfigError(
            f"cannot open the database {where}: {exc}",
            hint="check database_url in the configuration and that the database is running",
        ) from exc
    finally:
        engine.dispose()
    if not ready:
        raise ConfigError(
            f"{data_dir} has no Packyard database ({where} has no Packyard tables)",
            hint=f"check database_url; {hint}" if settings.database_url else hint,
        )


def write_admin_token(data_dir: Path, token: str) -> Path:
    import os

    path = data_dir / "admin-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    os.chmod(path, 0o600)
    return path


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        data_dir: Path = typer.Option(
            None,
            "--data-dir",
            envvar="PACKYARD_DATA_DIR",
            help="Data directory [default: ./packyard-data]",
        ),
        host: str = typer.Option(None, "--host", help="Listen address [default: 127.0.0.1]"),
        port: int = typer.Option(None, "--port", help="Listen port [default: 8000]"),
        config: Path = typer.Option(None, "--config", envvar="PACKYARD_CONFIG", help="Config file"),
        demo: bool = typer.Option(
            False, "--demo", help="Load a small demo data set on first start"
        ),
    ) -> None:
        """Run the Packyard server (creates the database and, on first start, an admin)."""
        import uvicorn

        from packyard.asgi import attach_jobs, create_app, prepare_publishing
        from packyard.logs import configure_logging, uvicorn_log_config
        from packyard.services.users import bootstrap_admin

        runtime = _local_runtime(data_dir, config, create=True, host=host, port=port)
        settings = runtime.settings
        configure_logging(settings.log_level, settings.log_format)
        attach_jobs(runtime)
        with runtime.context(write=True) as ctx:
            token = bootstrap_admin(ctx)
        if token:
            path = write_admin_token(settings.data_dir, token)
            err_console.print("[bold green]Created the first admin account 'admin'.[/]")
            err_console.print(
                f"One-time admin token (also in {path}, readable only by you):", markup=False
            )
            err_console.print(f"  [bold]{token}[/]")
            err_console.print(
                "Sign the CLI in with: packyard login "
                f"--server http://{settings.host}:{settings.port} --token-file {path}",
                markup=False,
            )
        if demo:
            from packyard.services.demo import load_demo

            with runtime.context(write=True) as ctx:
                loaded = load_demo(ctx)
            if loaded:
                err_console.print(f"Loaded {loaded} demo artifacts.")
        prepare_publishing(runtime)
        err_console.print(
            f"Packyard listening on http://{settings.host}:{settings.port} "
            f"(API docs at /api/docs, data in {settings.data_dir})",
            markup=False,
        )
        app = create_app(runtime)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=settings.host,
                port=settings.port,
                log_config=uvicorn_log_config(settings.log_level, settings.log_format),
                timeout_graceful_shutdown=5,
            )
        )
        # Long polls (a mirror waiting for changes) end as soon as the server is told to stop.
        app.state.http_server = server
        server.run()

    @app.command()
    def init(
        data_dir: Path = typer.Option(
            Path("packyard-data"), "--data-dir", envvar="PACKYARD_DATA_DIR"
        ),
        force: bool = typer.Option(False, "--force", help="Overwrite an existing file"),
    ) -> None:
        """Write a commented packyard.toml listing every setting with its default."""
        from packyard.config import render_default_config

        path = data_dir / "packyard.toml"
        if path.exists() and not force:
            fail(
                CliError(
                    "invalid_request", f"{path} already exists", hint="pass --force to overwrite"
                )
            )
        data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(render_default_config(data_dir=data_dir))
        console.print(
            f"Wrote {path}. Edit it, then run `packyard serve --data-dir {data_dir}`.",
            markup=False,
        )

    @app.command()
    def login(
        ctx: typer.Context,
        server_url: str | None = typer.Option(None, "--server", help="Server URL"),
        token: str | None = typer.Option(
            None, "--token", help="API token (or use --token-file / prompt)"
        ),
        token_file: Path = typer.Option(None, "--token-file", help="Read the token from this file"),
    ) -> None:
        """Check a token against the server and save server + token for later commands."""
        obj = ctx.find_root().obj or {}
        server_url = server_url or obj.get("server")
        if token_file is not None:
            token = token_file.read_text().strip()
        token = str(token or obj.get("token") or typer.prompt("API token", hide_input=True))
        settings = ClientSettings.resolve(server=server_url, token=token)
        client = Client(settings)
        try:
            me = client.get("/api/v1/whoami")
        except CliError as error:
            fail(error)
        finally:
            client.close()
        path = save_client_config(server=settings.server, token=token)
        console.print(
            f"Logged in to {settings.server} as {me['name']} ({me['role']}); saved to {path}.",
            markup=False,
        )
