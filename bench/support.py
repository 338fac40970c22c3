"""Pieces every benchmark needs: a cache outside the repository, a real server, a table.

The server is the real thing (``python -m packyard serve`` on a free loopback port with its own
data dir), started the way the functional tests start it. Not handled: remote servers and
PostgreSQL; benchmarks measure SQLite and the local blob store on this machine's disk.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from packyard.config import parse_size

__all__ = [
    "MIB",
    "BenchServer",
    "cache_dir",
    "format_size",
    "median",
    "parse_size",
    "print_table",
]

MIB = 1024**2
REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT_S = 30


def cache_dir() -> Path:
    """Where generated inputs are kept between runs: never inside the repository.

    ``$XDG_CACHE_HOME/packyard-bench`` when that is set, else ``/var/tmp/packyard-bench``
    (/var/tmp, not /tmp: it survives reboots and is usually on disk, not tmpfs).
    """
    xdg = os.environ.get("XDG_CACHE_HOME")
    path = Path(xdg) / "packyard-bench" if xdg else Path("/var/tmp/packyard-bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def format_size(n: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor} {unit}"
    return f"{n} B"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    line = "  ".join("{:>%d}" % w for w in widths)  # noqa: UP031 - building a format string
    print(line.format(*headers))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line.format(*row))


@dataclass
class BenchServer:
    """A ``packyard serve`` process with a fresh data dir; use as a context manager."""

    data_dir: Path
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    log_path: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> BenchServer:
        self.port = self.port or _free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
        env |= {"PACKYARD_LOG_LEVEL": "warning", "PACKYARD_LOG_FORMAT": "text"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "packyard", "serve"),
                    *("--data-dir", str(self.data_dir), "--port", str(self.port)),
                ],
                env=env,
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"server did not answer /api/v1/health:\n{self.log()}")
        self.token = (self.data_dir / "admin-token").read_text().strip()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak RSS) of the server process, in bytes."""
        out: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
        return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
