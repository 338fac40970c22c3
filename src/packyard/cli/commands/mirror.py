"""mirrors create|list|token|revoke (admins), mirror sync (on a mirror host), and the S3 push
behind ``packyard publish --to s3://bucket/prefix`` (on the server host, like gc and scrub).

``mirror sync`` talks to the server over HTTP with the mirror's own token and checks
signatures with gpgv; it needs no database or data directory.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import typer
from rich.markup import escape
from rich.text import Text

from packyard.cli.client import CliError
from packyard.cli.commands._common import api
from packyard.cli.output import (
    console,
    err_console,
    fail,
    human_size,
    print_json,
    print_table,
    transfer_progress,
)

__all__ = ["push_publications", "register"]


def _split(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


def _ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _when(timestamp: str | None) -> str:
    return (timestamp or "never")[:19].replace("T", " ")


# --------------------------------------------------------------------------- S3 push


def push_publications(
    *,
    to: str,
    stages: Sequence[str] | None,
    formats: Sequence[str] | None,
    full: bool,
    data_dir: Path | None,
    config: Path | None,
    recompute: bool = False,
    wait: bool = True,
) -> None:
    """Push the live publications to ``to`` (s3://bucket/prefix) from this host's data.

    ``recompute`` and ``wait`` are the `publish` options that a push has no use for: passed
    only to be refused (a usage error) rather than silently ignored.
    """
    from rich.progress import (
        TaskID,
        TextColumn,
    )
    from rich.text import Text

    from packyard.cli.commands.server import _local_runtime
    from packyard.domain.errors import PackyardError
    from packyard.integrations.s3 import open_object_store
    from packyard.services.s3_push import PushProgress, push, s3_url_problem

    # `publish` options that mean nothing to a push (it uploads what is published, in this
    # process) are refused rather than ignored.
    for given, flag in ((recompute, "--recompute"), (not wait, "--no-wait")):
        if given:
            raise typer.BadParameter(
                "does not apply to --to (a push uploads the live publications as they are "
                "and returns when it is done)",
                param_hint=f"'{flag}'",
            )
    problem = s3_url_problem(to)
    if problem:
        fail(CliError("config_error", problem, hint="write s3://bucket or s3://bucket/prefix"))

    runtime = _local_runtime(data_dir, config)
    bar = transfer_progress(
        "push",
        TextColumn("{task.fields[objects]}"),
        disable=not err_console.is_terminal,  # logs get the line above and the result only
    )
    task: list[TaskID] = []

    def show(step: PushProgress) -> None:
        if not task:
            err_console.print(
                Text(
                    f"Pushing {', '.join(step.channels)} to {step.url}: {step.objects} objects "
                    f"to upload ({human_size(step.bytes)}), {step.unchanged} unchanged."
                )
            )
            task.append(bar.add_task("push", total=step.bytes, objects=""))
        bar.update(
            task[0],
            completed=step.done_bytes,
            objects=f"{step.done_objects}/{step.objects} objects",
        )

    try:
        store = open_object_store(runtime.settings.publish.s3, to)
        try:
            with bar:
                result = push(
                    runtime.context,
                    store=store,
                    stages=stages or None,
                    formats=formats or None,
                    full=full,
                    progress=show,
                    actor=f"cli:{os.environ.get('USER') or 'publish'}",
                )
        finally:
            store.close()
    except PackyardError as exc:
        fail(CliError(exc.code, exc.message, hint=exc.hint))
    finally:
        runtime.close()
    if not result.channels:
        console.print(
            Text(f"{result.url}: nothing pushed, no published channel among those chosen.")
        )
        return
    console.print(
        Text.assemble(
            ("✓", "green"),
            f" {result.url}: {len(result.uploaded)} objects uploaded, "
            f"{result.unchanged} unchanged, {len(result.deleted)} deleted "
            f"({', '.join(result.channels)}).",
        )
    )


# --------------------------------------------------------------------------- mirror sync client


class HttpMirrorSource:
    """The ``MirrorSource`` port over HTTP: the mirror API and /repos with a bearer token."""

    def __init__(self, server: str, token: str, *, timeout: float = 60.0) -> None:
        import httpx

        from packyard import __version__

        self.server = server.rstrip("/")
        self._httpx = httpx
        self.http = httpx.Client(
            base_url=self.server,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"packyard-mirror/{__version__}",
            },
            timeout=httpx.Timeout(timeout),
        )

    def close(self) -> None:
        self.http.close()

    def _error(self, response: Any, what: str) -> Exception:
        from packyard.domain.errors import (
            InvalidRequest,
            NotAuthenticated,
            NotAuthorized,
            NotFound,
        )
        from packyard.services.published_tree import MirrorUnavailable

        try:
            body = response.json()["error"]
            message, hint = str(body["message"]), body.get("hint")
        except (ValueError, KeyError, TypeError):
            message, hint = f"HTTP {response.status_code} for {what}", None
        status = response.status_code
        if status == 401:
            return NotAuthenticated(
                f"the server refused the mirror's token: {message}",
                hint="check --token; an admin can issue a new one with "
                "`packyard mirrors token NAME`",
            )
        if status == 403:
            return NotAuthorized(message, hint=hint or "use the mirror's own token")
        if status == 404:
            return NotFound(message, hint=hint)
        if status >= 500 or status in (408, 429):
            return MirrorUnavailable(
                f"the server answered HTTP {status} for {what}", hint="try again later"
            )
        return InvalidRequest(message, hint=hint)

    def _get(self, path: str, **kwargs: Any) -> Any:
        from packyard.services.published_tree import MirrorUnavailable

        try:
            response = self.http.get(path, **kwargs)
        except self._httpx.TransportError as exc:
            raise MirrorUnavailable(
                f"cannot reach {self.server} ({type(exc).__name__})",
                hint="is the server up? check the URL",
            ) from exc
        if not response.is_success:
            raise self._error(response, path)
        return response

    def changes(self, *, since: str | None, wait: float) -> dict[str, Any]:
        params: dict[str, Any] = {"wait": wait}
        if since:
            params["since"] = since
        response = self._get(
            "/api/v1/mirror/changes",
            params=params,
            timeout=self._httpx.Timeout(60.0, read=wait + 60.0),
        )
        data: dict[str, Any] = response.json()
        return data

    def listing(self, *, channel: str, snapshot: str) -> tuple[bytes, bytes]:
        data = self._get(
            "/api/v1/mirror/listing", params={"channel": channel, "snapshot": snapshot}
        ).json()
        return str(data["listing"]).encode(), str(data["signature"]).encode()

    def public_keys(self) -> bytes:
        content: bytes = self._get("/repos/keys/packyard.asc").content
        return content

    def download(self, path: str, write: Any) -> None:
        from packyard.services.published_tree import MirrorUnavailable

        url = "/repos/" + quote(path, safe="/~")
        try:
            with self.http.stream("GET", url) as response:
                if response.status_code == 404:
                    # The sync asks the change feed whether a publication explains it.
                    raise MirrorUnavailable(
                        f"{path} is not on the server (HTTP 404), though its signed listing "
                        "names it",
                        hint="sync again; if it persists, the server's published files are "
                        "damaged (`packyard scrub` on the server)",
                    )
                if not response.is_success:
                    response.read()
                    raise self._error(response, path)
                for chunk in response.iter_bytes(1024 * 1024):
                    write(chunk)
        except self._httpx.TransportError as exc:
            raise MirrorUnavailable(
                f"downloading {path} from {self.server} failed ({type(exc).__name__})",
                hint="sync again",
            ) from exc

    def heartbeat(self, report: dict[str, Any]) -> None:
        from packyard.services.published_tree import MirrorUnavailable

        try:
            response = self.http.post("/api/v1/mirror/heartbeat", json=report)
        except self._httpx.TransportError as exc:
            raise MirrorUnavailable(f"cannot reach {self.server}", hint="try again") from exc
        if not response.is_success:
            raise self._error(response, "heartbeat")


class GpgvVerifier:
    """The ``SignatureVerifier`` port with gpgv against the given keys only."""

    def verify_detached(
        self, data: bytes | Path, signature: bytes, *, public_keys: bytes
    ) -> list[str]:
        from packyard.integrations.gpg import verify_with_keyring

        return verify_with_keyring(data, signature, public_keys=public_keys)

    def verify_clearsigned(self, document: bytes, *, public_keys: bytes) -> list[str]:
        from packyard.integrations.gpg import verify_clearsigned_with_keyring

        return verify_clearsigned_with_keyring(document, public_keys=public_keys).fingerprints


class RichProgress:
    """A download progress bar on stderr (the ``SyncProgress`` port)."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def begin(self, *, files: int, total_bytes: int) -> None:
        if not files:
            return

        self._progress = transfer_progress(f"mirror: {files} files")
        self._progress.start()
        self._task = self._progress.add_task("download", total=total_bytes)

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def end(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _print_report(report: Any, dest: Path) -> None:
    channels = ", ".join(f"{name}@{snap or '-'}" for name, snap in sorted(report.synced.items()))
    console.print(
        f"[green]✓[/] {escape(str(dest))}: {report.files} files, {report.downloaded} downloaded "
        f"({human_size(report.downloaded_bytes)}), {report.deleted} deleted — {escape(channels)}"
    )
    if report.pinned:
        console.print(
            "Pinned the server's signing keys; signatures checked by "
            + ", ".join(report.signers)
            + ". Compare with `packyard keys show` on the server."
        )


# --------------------------------------------------------------------------- commands


def register(app: typer.Typer) -> None:
    mirrors = typer.Typer(
        help="Mirrors: downstream copies of publications, each with its own token.",
        no_args_is_help=True,
    )
    app.add_typer(mirrors, name="mirrors")

    @mirrors.command("create")
    def create(
        ctx: typer.Context,
        name: str = typer.Argument(..., help="e.g. eu-1"),
        channels: list[str] = typer.Option(
            None, "--channels", "-c", help="Channels to follow, e.g. apt/prod,dnf/prod [all]"
        ),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Create a mirror and print its token (shown once)."""
        with api(ctx) as client:
            created = client.post(
                "/api/v1/mirrors", json={"name": name, "channels": _split(channels) or None}
            )
            server = client.settings.server
        if as_json:
            print_json(created)
            return
        followed = ", ".join(created["channels"] or ["every channel"])
        console.print(f"Created mirror {created['name']} (user {created['user']}) for {followed}.")
        console.print("Token (shown once, store it on the mirror host):")
        console.print(f"  {created['token']}", markup=False)
        console.print(
            f"On the mirror host: packyard mirror sync {server} /srv/packyard-mirror "
            "--token-file TOKENFILE --daemon",
            markup=False,
        )

    @mirrors.command("list")
    def list_(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
        """Mirrors with their last heartbeat, lag and status."""
        with api(ctx) as client:
            data = client.get("/api/v1/mirrors")
        if as_json:
            print_json(data)
            return
        colour = {"ok": "green", "stale": "yellow", "error": "red", "never": "dim"}
        print_table(
            [
                "mirror",
                "status",
                "last good sync",
                "last heartbeat",
                "lag",
                "behind",
                "synced snapshots",
                "version",
            ],
            [
                (
                    m["name"],
                    Text(m["status"], style=colour.get(m["status"], "white")),
                    _when(m.get("last_sync_at")),
                    _when(m["last_heartbeat_at"]),
                    _ago(m["lag_seconds"]) if m["behind"] else "-",
                    ", ".join(m["behind"]) or "-",
                    "\n".join(
                        f"{name} {snapshot or '-'}"
                        for name, snapshot in sorted((m["synced"] or {}).items())
                    )
                    or "-",
                    m["version"] or "",
                )
                for m in data
            ],
        )
        # In full, below the table: an operator needs the whole message (file, hint) to act.
        for m in data:
            for error in m["errors"]:
                console.print(f"{m['name']}: error: {error}", markup=False)

    @mirrors.command("token")
    def token(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
        """Issue a new token for a mirror (its earlier tokens stop working)."""
        with api(ctx) as client:
            data = client.post(f"/api/v1/mirrors/{name}/token")
        console.print(f"New token for mirror {name} (shown once):")
        console.print(f"  {data['token']}", markup=False)

    @mirrors.command("revoke")
    def revoke(ctx: typer.Context, name: str = typer.Argument(...)) -> None:
        """Revoke every token of a mirror; it can no longer sync."""
        with api(ctx) as client:
            data = client.post(f"/api/v1/mirrors/{name}/revoke")
        console.print(f"Revoked {data['revoked_tokens']} token(s) of mirror {name}.")

    mirror = typer.Typer(help="Run a mirror (on the mirror host).", no_args_is_help=True)
    app.add_typer(mirror, name="mirror")

    @mirror.command("sync")
    def sync(
        ctx: typer.Context,
        url: str = typer.Argument(..., help="The Packyard server, e.g. https://packages.example"),
        dest: Path = typer.Argument(..., help="Mirror directory (serve it; clients use /repos)"),
        token: str = typer.Option(
            None, "--token", envvar="PACKYARD_MIRROR_TOKEN", help="The mirror's token"
        ),
        token_file: Path = typer.Option(
            None, "--token-file", exists=True, dir_okay=False, help="Read the token from a file"
        ),
        channels: list[str] = typer.Option(
            None, "--channels", "-c", help="Only these of the mirror's channels"
        ),
        keyring: Path = typer.Option(
            None,
            "--keyring",
            exists=True,
            dir_okay=False,
            help="Trust these public keys (pinned from now on) instead of the pinned ones",
        ),
        daemon: bool = typer.Option(
            False, "--daemon", help="Keep syncing: long-poll for changes, back off when down"
        ),
        wait: float = typer.Option(30, "--wait", help="Seconds per long poll (--daemon)"),
    ) -> None:
        """Make DIR a verified copy of the mirror's channels (once, or as a daemon)."""
        from packyard.domain.errors import PackyardError
        from packyard.services import mirror_sync as service

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise typer.BadParameter(
                f"{url!r} is not a server URL: give the Packyard server's base URL, "
                "e.g. https://packages.example",
                param_hint="'URL'",
            )
        try:
            secret = (
                token_file.read_text().strip()
                if token_file is not None
                else token or (ctx.find_root().obj or {}).get("token")
            )
            keys = keyring.read_bytes() if keyring is not None else None
        except OSError as exc:
            fail(
                CliError(
                    "invalid_request",
                    f"cannot read {exc.filename}: {exc.strerror}",
                    hint="check the path and its permissions",
                )
            )
        if not secret:
            fail(
                CliError(
                    "not_authenticated",
                    "no mirror token given",
                    hint="pass --token-file, --token or PACKYARD_MIRROR_TOKEN",
                )
            )
        try:
            # Fail now on a DIR that cannot work (a daemon would only retry it); a missing
            # DIR is created by the first sync (and removed again if that sync fails).
            service.check_mirror_dir(dest)
        except PackyardError as exc:
            fail(CliError(exc.code, exc.message, hint=exc.hint))
        source = HttpMirrorSource(url, str(secret))
        kwargs: dict[str, Any] = {
            "server": source.server,
            "keyring": keys,
            "only": _split(channels) or None,
            "progress": RichProgress(),
            "log": lambda line: err_console.print(line, markup=False),
        }
        try:
            if daemon:
                err_console.print(f"Mirroring {source.server} into {dest} (Ctrl-C stops).")

                def on_report(report: Any) -> None:
                    if report.changed or report.pinned:
                        _print_report(report, dest)

                service.run_daemon(
                    source, GpgvVerifier(), dest, wait=wait, on_report=on_report, **kwargs
                )
            else:
                report = service.sync_and_report(source, GpgvVerifier(), dest, **kwargs)
                _print_report(report, dest)
        except PackyardError as exc:
            fail(CliError(exc.code, exc.message, hint=exc.hint))
        except KeyboardInterrupt:
            err_console.print("Stopped.")
        finally:
            source.close()
