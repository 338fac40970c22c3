"""Shared test helpers: a real Packyard server process and the CLI as a subprocess."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A `packyard serve` process on a random loopback port with its own data dir."""

    data_dir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    log_path: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *extra: str) -> Server:
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "packyard",
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--port",
                    str(self.port),
                    *extra,
                ],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"server did not start:\n{self.log()}")
        token_file = self.data_dir / "admin-token"
        if not self.token and token_file.exists():
            self.token = token_file.read_text().strip()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=60,
            headers={"Authorization": f"Bearer {token or self.token}"},
        )

    def cli(
        self,
        *args: str,
        token: str | None = None,
        input: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(
            *args,
            env={
                **self.env,
                "PACKYARD_SERVER": self.url,
                "PACKYARD_TOKEN": token if token is not None else self.token,
                **(env or {}),
            },
            input=input,
            cwd=cwd,
        )

    def upload(self, path: Path, *, token: str | None = None, **params: str) -> httpx.Response:
        query = {"filename": path.name, "justification": "tests", "provenance": "pytest", **params}
        with self.client(token) as client:
            return client.post(
                "/api/v1/artifacts",
                params=query,
                content=path.read_bytes(),
                headers={"Content-Type": "application/octet-stream"},
            )


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    env["PACKYARD_CLIENT_CONFIG"] = str(tmp / "client.toml")
    env["PACKYARD_LOG_FORMAT"] = "text"
    env["PACKYARD_LOG_LEVEL"] = "warning"
    return env


def run_cli(
    *args: str,
    env: Mapping[str, str],
    input: str | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "packyard", *args],
        env=dict(env),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def write_config(data_dir: Path, config: Mapping[str, Any]) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "packyard.toml").write_text(tomli_w.dumps(dict(config)))


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: make_server(config={...}, env={...}) -> started Server (stopped after the test)."""
    servers: list[Server] = []

    def factory(
        *,
        config: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        extra: Sequence[str] = (),
        name: str = "data",
    ) -> Server:
        data_dir = tmp_path / name
        if config:
            write_config(data_dir, config)
        server = Server(
            data_dir=data_dir, port=free_port(), env={**base_env(tmp_path), **(env or {})}
        )
        servers.append(server)
        return server.start(*extra)

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Any) -> Server:
    started: Server = make_server()
    return started


@pytest.fixture
def static_server() -> Iterator[Callable[[Path], str]]:
    """serve(dir) -> base URL of a plain static web server (http.server) for that directory:
    how a mirror's tree is served to clients."""
    servers: list[http.server.ThreadingHTTPServer] = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    def serve(directory: Path) -> str:
        handler = functools.partial(Quiet, directory=str(directory))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return f"http://127.0.0.1:{httpd.server_address[1]}"

    yield serve
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()
