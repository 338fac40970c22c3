"""HTTP client for the CLI: where the server is, which token to send, and turning error
bodies into ``CliError``s that print what happened, a hint, and what to do.

Settings precedence: flags > ``PACKYARD_SERVER``/``PACKYARD_TOKEN`` > the file written by
``packyard login`` (``$PACKYARD_CLIENT_CONFIG`` or ``~/.config/packyard/client.toml``).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["CliError", "Client", "ClientSettings", "client_config_path", "save_client_config"]

DEFAULT_SERVER = "http://127.0.0.1:8000"


class CliError(Exception):
    def __init__(
        self,
        code: str,
        message: str,
        *,
        hint: str | None = None,
        status: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.status = status
        self.details = details or {}


def client_config_path() -> Path:
    explicit = os.environ.get("PACKYARD_CLIENT_CONFIG")
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "packyard" / "client.toml"


def save_client_config(*, server: str, token: str) -> Path:
    path = client_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600 before the secret is written into it.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(f'server = "{server}"\ntoken = "{token}"\n')
    os.chmod(path, 0o600)
    return path


@dataclass(frozen=True, kw_only=True)
class ClientSettings:
    server: str
    token: str | None

    @classmethod
    def resolve(cls, *, server: str | None, token: str | None) -> ClientSettings:
        stored: dict[str, Any] = {}
        path = client_config_path()
        if path.is_file():
            try:
                stored = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise CliError(
                    "config_error",
                    f"{path} is not valid TOML: {exc}",
                    hint="run `packyard login` again",
                ) from exc
        return cls(
            server=(
                server
                or os.environ.get("PACKYARD_SERVER")
                or stored.get("server")
                or DEFAULT_SERVER
            ).rstrip("/"),
            token=token or os.environ.get("PACKYARD_TOKEN") or stored.get("token"),
        )


class Client:
    def __init__(self, settings: ClientSettings, *, timeout: float = 60.0) -> None:
        self.settings = settings
        headers = {"User-Agent": "packyard-cli"}
        if settings.token:
            headers["Authorization"] = f"Bearer {settings.token}"
        self.http = httpx.Client(
            base_url=settings.server,
            headers=headers,
            timeout=httpx.Timeout(timeout, read=None if timeout is None else 600.0),
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if not self.settings.token:
            raise CliError(
                "not_authenticated",
                "no API token configured",
                hint="run `packyard login`, or set PACKYARD_TOKEN",
            )
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise CliError(
                "unreachable",
                f"cannot reach the Packyard server at {self.settings.server} "
                f"({type(exc).__name__})",
                hint="is `packyard serve` running? check --server / PACKYARD_SERVER",
            ) from exc
        return self.check(response)

    def check(self, response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        try:
            error = response.json()["error"]
            raise CliError(
                error["code"],
                error["message"],
                hint=error.get("hint"),
                status=response.status_code,
                details=error.get("details"),
            )
        except (ValueError, KeyError, TypeError):
            raise CliError(
                "error",
                f"the server answered HTTP {response.status_code}: {response.text[:200]}",
                status=response.status_code,
            ) from None

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs).json()

    def close(self) -> None:
        self.http.close()
