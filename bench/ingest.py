"""Ingest benchmark: a large generic upload through the HTTP API, against a fair peer.

What is timed:
- server: ``POST /api/v1/artifacts`` of the file, streamed by httpx in 1 MiB chunks with a
  Content-Length, from the start of the request until the 201 answer. The server receives,
  hashes (sha256), writes, fsyncs, inspects and renames the file and records it in SQLite.
- peer: ``cp --reflink=never FILE DEST``, then ``sync DEST`` (an fsync of the copy), then
  ``sha256sum FILE``, one after the other: the same copy + hash work done with standard
  tools. DEST is on the filesystem that holds the server's data dir.
- peer': the same with ``openssl dgst -sha256 FILE`` in place of ``sha256sum``:
  coreutils' sha256sum does not use the CPU's SHA instructions while the server's hashlib
  (OpenSSL) does, so this stricter peer compares like with like; both ratios are reported.

Both read the same input, warmed into the page cache once before timing; ``sync`` runs before
every timed step so no dirty pages carry over. Runs alternate server/peer and the median of
``--repeat`` runs is reported. Each upload changes the first 8 bytes so nothing is
deduplicated. Peak RSS is the server's VmHWM, from a fresh server per file size, so running a
small and a large size shows whether memory grows with the file.

Not handled: network latency (loopback only), concurrent uploads, client and server sharing
the machine's cores (the httpx client's CPU time counts against the server here).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.support import (
    MIB,
    BenchServer,
    cache_dir,
    format_size,
    median,
    parse_size,
    print_table,
)

__all__ = ["build_parser", "run"]

CHUNK_SIZE = MIB
# A fixed text header keeps random bytes from looking like a known format (gzip magic, an MBR
# signature at 510) and so makes every input a plain "generic" artifact.
HEADER = (b"packyard bench input, random bytes follow\n" * 100)[:4096]
NONCE_SIZE = 8
GOAL_RATIO = 0.5
GOAL_PEAK_RSS = 200 * MIB
# Allocator noise between two fresh servers; growth beyond this means memory follows file size.
FLAT_RSS_TOLERANCE = 16 * MIB
UPLOAD_TIMEOUT_S = 600

EXIT_OK = 0
EXIT_UPLOAD_FAILED = 1
EXIT_NO_SPACE = 3
EXIT_MISSING_TOOL = 4


class UploadFailed(Exception):
    pass


@dataclass
class PeerRun:
    cp: float
    sync: float
    sha256sum: float
    openssl: float

    @property
    def total(self) -> float:
        return self.cp + self.sync + self.sha256sum

    @property
    def total_openssl(self) -> float:
        return self.cp + self.sync + self.openssl


@dataclass
class SizeResult:
    size: int
    server: list[float] = field(default_factory=list)
    peer: list[PeerRun] = field(default_factory=list)
    rss_idle: int = 0
    rss_peak: int = 0

    def mib_s(self, seconds: float) -> float:
        return self.size / MIB / seconds

    @property
    def server_s(self) -> float:
        return median(self.server)

    @property
    def peer_s(self) -> float:
        return median([p.total for p in self.peer])

    @property
    def peer_openssl_s(self) -> float:
        return median([p.total_openssl for p in self.peer])

    @property
    def ratio(self) -> float:
        return self.peer_s / self.server_s

    @property
    def ratio_openssl(self) -> float:
        return self.peer_openssl_s / self.server_s

    def step(self, name: str) -> float:
        return median([getattr(p, name) for p in self.peer])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1G", help="file size to upload (default: 1G)")
    parser.add_argument(
        "--small-size",
        default="64M",
        help="second, smaller upload to show peak RSS is flat in file size (default: 64M)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the ingest benchmark and print a report; non-zero only if an upload failed."""
    size, small = parse_size(args.size), parse_size(args.small_size)
    sizes = sorted({small, size})
    missing = [tool for tool in ("cp", "sync", "sha256sum", "openssl") if not shutil.which(tool)]
    if missing:
        print(f"error: the peer needs {', '.join(missing)} on PATH")
        print("hint: apt-get install coreutils openssl")
        return EXIT_MISSING_TOOL
    cache = cache_dir()
    need = sum(s * (args.repeat + 2) for s in sizes)  # inputs, server blobs, one peer copy
    free = shutil.disk_usage(cache).free
    if free < need:
        print(f"error: {cache} has {free // MIB} MiB free, the benchmark needs {need // MIB} MiB")
        print("hint: set XDG_CACHE_HOME to a roomier disk, or pass a smaller --size")
        return EXIT_NO_SPACE

    work = Path(tempfile.mkdtemp(prefix="ingest-", dir=cache))
    try:
        results = []
        for s in sizes:
            print(f"-- {format_size(s)}: {args.repeat} runs each of server and peer", flush=True)
            results.append(_measure(size=s, repeat=args.repeat, work=work))
    except UploadFailed as exc:
        print(f"error: upload failed: {exc}")
        return EXIT_UPLOAD_FAILED
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(results, main_size=size, small_size=small, repeat=args.repeat, work=work)
    return EXIT_OK


def _input_file(size: int) -> Path:
    """Random bytes of ``size`` in the cache, generated once and reused."""
    path = cache_dir() / f"random-{size}.bin"
    if path.is_file() and path.stat().st_size == size:
        return path
    print(f"   generating {path} ({format_size(size)} of random bytes)", flush=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as out:
        out.write(HEADER[:size])
        left = size - min(size, len(HEADER))
        while left:
            n = min(CHUNK_SIZE, left)
            out.write(os.urandom(n))
            left -= n
    tmp.replace(path)
    return path


def _warm(path: Path) -> None:
    with path.open("rb") as f:
        while f.read(CHUNK_SIZE):
            pass


def _measure(*, size: int, repeat: int, work: Path) -> SizeResult:
    path = _input_file(size)
    _warm(path)
    result = SizeResult(size=size)
    data_dir = work / f"data-{size}"
    peer_dest = work / "peer-copy"
    with BenchServer(data_dir) as server:
        if os.stat(data_dir).st_dev != os.stat(work).st_dev:
            raise RuntimeError(
                "the peer copy and the server's data dir are on different filesystems"
            )
        result.rss_idle = server.memory()["VmRSS"]
        for i in range(repeat):
            os.sync()
            result.server.append(_upload(server, path, size=size, run=i))
            os.sync()
            result.peer.append(_peer(path, peer_dest))
            peer_dest.unlink()
            print(
                f"   run {i + 1}: server {result.server[-1]:.2f} s, "
                f"peer {result.peer[-1].total:.2f} s",
                flush=True,
            )
        result.rss_peak = server.memory()["VmHWM"]
    return result


def _upload(server: BenchServer, path: Path, *, size: int, run: int) -> float:
    nonce = f"run{run:05d}".encode()[:NONCE_SIZE]

    def body() -> Iterator[bytes]:
        with path.open("rb") as f:
            first = True
            while chunk := f.read(CHUNK_SIZE):
                if first:
                    # New first bytes per run, so the server stores each upload anew.
                    chunk, first = nonce + chunk[NONCE_SIZE:], False
                yield chunk

    params = {
        "filename": f"bench-{size}.bin",
        "justification": "ingest benchmark",
        "provenance": "bench/ingest.py",
        "package": "bench-ingest",
        "version": f"{run + 1}",
    }
    headers = {
        "Authorization": f"Bearer {server.token}",
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size),
    }
    with httpx.Client(base_url=server.url, timeout=UPLOAD_TIMEOUT_S) as client:
        start = time.perf_counter()
        try:
            response = client.post(
                "/api/v1/artifacts", params=params, content=body(), headers=headers
            )
        except httpx.HTTPError as exc:
            raise UploadFailed(f"{exc!r}\nserver log:\n{server.log()[-4000:]}") from exc
        elapsed = time.perf_counter() - start
    if response.status_code != 201:
        raise UploadFailed(f"HTTP {response.status_code}: {response.text[:2000]}")
    stored = response.json().get("size")
    if stored != size:
        raise UploadFailed(f"server stored {stored} bytes, sent {size}")
    return elapsed


def _peer(path: Path, dest: Path) -> PeerRun:
    def timed(*cmd: str) -> float:
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - start

    return PeerRun(
        cp=timed("cp", "--reflink=never", str(path), str(dest)),
        sync=timed("sync", str(dest)),
        sha256sum=timed("sha256sum", str(path)),
        openssl=timed("openssl", "dgst", "-sha256", str(path)),
    )


def _report(
    results: list[SizeResult], *, main_size: int, small_size: int, repeat: int, work: Path
) -> None:
    print()
    print(f"Ingest, median of {repeat} runs; inputs in {cache_dir()} (page cache warm)")
    print("  server: POST /api/v1/artifacts, 1 MiB chunks + Content-Length, request start -> 201")
    print("  peer:   cp --reflink=never FILE DEST; sync DEST (fsync); sha256sum FILE (sequential)")
    print("  peer':  the same with `openssl dgst -sha256 FILE` in place of sha256sum")
    print(f"          DEST on the server's data-dir filesystem ({work.parent})")
    print("  ratio = server MiB/s / peer MiB/s (goal >= 0.5); RSS = server VmRSS at idle, VmHWM")
    print()
    print_table(
        [
            *("size", "server s", "server MiB/s", "peer MiB/s", "ratio", "peer' MiB/s", "ratio'"),
            *("idle RSS MiB", "peak RSS MiB"),
        ],
        [
            [
                format_size(r.size),
                f"{r.server_s:.2f}",
                f"{r.mib_s(r.server_s):.0f}",
                f"{r.mib_s(r.peer_s):.0f}",
                f"{r.ratio:.2f}",
                f"{r.mib_s(r.peer_openssl_s):.0f}",
                f"{r.ratio_openssl:.2f}",
                f"{r.rss_idle / MIB:.0f}",
                f"{r.rss_peak / MIB:.0f}",
            ]
            for r in results
        ],
    )
    print()
    print("Peer steps, median seconds:")
    print_table(
        ["size", "cp", "sync", "sha256sum", "openssl", "peer", "peer'"],
        [
            [
                format_size(r.size),
                *(f"{r.step(name):.2f}" for name in ("cp", "sync", "sha256sum", "openssl")),
                f"{r.peer_s:.2f}",
                f"{r.peer_openssl_s:.2f}",
            ]
            for r in results
        ],
    )
    by_size = {r.size: r for r in results}
    big, small = by_size[main_size], by_size[small_size]
    at = format_size(main_size)
    goals = [
        (
            f"throughput server/peer >= {GOAL_RATIO:.2f} at {at}",
            f"{big.ratio:.2f}",
            big.ratio >= GOAL_RATIO,
        ),
        (
            f"throughput server/peer' >= {GOAL_RATIO:.2f} at {at}",
            f"{big.ratio_openssl:.2f}",
            big.ratio_openssl >= GOAL_RATIO,
        ),
        (
            f"server peak RSS < {GOAL_PEAK_RSS // MIB} MiB at {at}",
            f"{big.rss_peak / MIB:.0f} MiB",
            big.rss_peak < GOAL_PEAK_RSS,
        ),
    ]
    if main_size != small_size:
        growth = big.rss_peak - small.rss_peak
        goals.append(
            (
                f"peak RSS flat in file size: {at} vs {format_size(small_size)} "
                f"within {FLAT_RSS_TOLERANCE // MIB} MiB",
                f"{growth / MIB:+.0f} MiB",
                growth < FLAT_RSS_TOLERANCE,
            )
        )
    print()
    print("Goals:")
    for text, value, met in goals:
        print(f"  {'met    ' if met else 'NOT MET'}  {text}: {value}")
