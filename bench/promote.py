"""Promotion benchmark: latency of the promote API call with 10 vs 10,000 artifacts in the
target channel.

Set-up (not timed), once per channel size: a fresh data dir, migrated, with generic artifacts
inserted in bulk straight into the database (their blobs written into the blob store as
files): ``size`` artifacts in stages ``new`` and ``ci`` (the channel ``files/ci`` and every
other ``*/ci`` channel holds them) plus ``2 x --promotions`` candidates in ``new`` only. Then
a real server (``python -m packyard serve``, SQLite, its embedded job queue with the default
2 worker threads) starts on that data dir; its first-start publication of every channel is
waited for.

What is timed: ``POST /api/v1/artifacts/{sha256}/promote {"stage": "ci"}`` from the client's
request to the 200 answer, over one keep-alive connection. Every promotion changes the
channel, so the server queues a background publish of the ``ci`` channels (coalesced while
one is queued); the call itself must not wait for it. Two series per size:

- quiet: before each call the benchmark waits until no job is queued or running, so the call
  does not share the machine with a publish: the cost of the request itself.
- busy: one call every ``--interval`` seconds without waiting for jobs, so background
  publishes of the ``ci`` channels run meanwhile and compete for the two cores and SQLite's
  write lock: what a user sees while the channel is being republished.

Reported: p50 and p95 per size and series, and the ratio large / small (goal <= 2).
``--worker-process`` runs the jobs in a separate ``packyard worker`` process instead (the
server with ``jobs.workers = 0``), to tell the cost of the request from that of sharing one
Python process (and its GIL) with the publisher.
Not handled: PostgreSQL, Redis-backed workers, concurrent clients.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.support import BenchServer, cache_dir, print_table

__all__ = ["build_parser", "run"]

STAGE = "ci"
GOAL_RATIO = 2.0
JOB_TIMEOUT_S = 900
BATCH = 1000

EXIT_OK = 0
EXIT_FAILED = 1


class PromoteFailed(Exception):
    pass


@dataclass
class SizeResult:
    size: int
    quiet: list[float] = field(default_factory=list)
    busy: list[float] = field(default_factory=list)
    setup_s: float = 0.0
    initial_publish_s: float = 0.0

    def p(self, series: str, q: int) -> float:
        values: list[float] = sorted(getattr(self, series))
        if len(values) < 2:
            return values[0] if values else float("nan")
        return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes",
        default="10,10000",
        help="artifacts in the channel, comma-separated; the first is the baseline "
        "(default: 10,10000)",
    )
    parser.add_argument(
        "--promotions", type=int, default=40, help="timed promote calls per size and series"
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=0.1,
        help="seconds between the starts of two busy-series calls (default 0.1)",
    )
    parser.add_argument(
        "--worker-process",
        action="store_true",
        help="run background jobs in a separate `packyard worker` process (server: 0 workers)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the promotion benchmark and print a report; non-zero only if a call failed."""
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if len(sizes) < 2:
        print("error: --sizes needs at least two sizes (baseline first)")
        return EXIT_FAILED
    work = Path(tempfile.mkdtemp(prefix="promote-", dir=cache_dir()))
    results = []
    try:
        for size in sizes:
            print(f"-- {size} artifacts in the channel, {args.promotions} calls per series")
            results.append(
                _measure(
                    size,
                    promotions=args.promotions,
                    interval=args.interval,
                    work=work,
                    worker_process=args.worker_process,
                )
            )
    except PromoteFailed as exc:
        print(f"error: {exc}")
        return EXIT_FAILED
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report(results, promotions=args.promotions, worker_process=args.worker_process)
    return EXIT_OK


# --------------------------------------------------------------------------- set-up


def _populate(data_dir: Path, *, size: int, candidates: int) -> list[str]:
    """Migrate a fresh database and insert artifacts in bulk; returns the candidates' hashes."""
    from sqlalchemy import insert, select

    from packyard.bootstrap import Runtime
    from packyard.config import load_settings
    from packyard.storage.blobs.local import LocalBlobStore
    from packyard.storage.db.models import Artifact, Package, StageEntry

    for key in [k for k in os.environ if k.startswith("PACKYARD_")]:
        del os.environ[key]
    runtime = Runtime.from_settings(load_settings(data_dir=data_dir), signer=False)
    blobs = runtime.blobs
    assert isinstance(blobs, LocalBlobStore)  # the blobs are written as files, in bulk
    now = datetime.now(UTC).replace(tzinfo=None)
    total = size + candidates
    shas: list[str] = []
    try:
        with runtime.context(write=True) as ctx:
            session = ctx.repos.session
            packages = max(1, total // 100)
            session.execute(
                insert(Package),
                [{"name": f"bench-tool-{p:04d}", "created_at": now} for p in range(packages)],
            )
            package_ids = dict(session.execute(select(Package.name, Package.id)).all())
            for start in range(0, total, BATCH):
                rows = []
                for i in range(start, min(total, start + BATCH)):
                    data = f"packyard promote benchmark artifact {i}\n".encode() * 4
                    sha = hashlib.sha256(data).hexdigest()
                    path = blobs.path_for(sha)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(data)
                    name, version = f"bench-tool-{i % packages:04d}", f"1.{i}"
                    rows.append(
                        {
                            "sha256": sha,
                            "identity": f"generic|{name}|{version}||",
                            "package_id": package_ids[name],
                            "format": "generic",
                            "name": name,
                            "version": version,
                            "size": len(data),
                            "filename": f"{name}-{version}.bin",
                            "relations": {},
                            "fields": {},
                            "provenance": "bench/promote.py",
                            "justification": "promotion benchmark",
                            "uploaded_by": "bench",
                            "uploaded_at": now,
                            "status": "active",
                            "held": False,
                            "current_stage": STAGE if i < size else "new",
                        }
                    )
                    shas.append(sha)
                session.execute(insert(Artifact), rows)
            ids = dict(session.execute(select(Artifact.sha256, Artifact.id)).all())
            entries = [
                {"artifact_id": ids[sha], "stage": stage, "entered_at": now, "entered_by": "bench"}
                for i, sha in enumerate(shas)
                for stage in (("new", STAGE) if i < size else ("new",))
            ]
            for start in range(0, len(entries), BATCH):
                session.execute(insert(StageEntry), entries[start : start + BATCH])
    finally:
        runtime.close()
    return shas[size:]


def _jobs_idle(client: httpx.Client) -> bool:
    response = client.get("/api/v1/jobs", params={"limit": 50})
    response.raise_for_status()
    return not any(j["status"] in ("queued", "running") for j in response.json())


def _wait_idle(client: httpx.Client, *, timeout: float = JOB_TIMEOUT_S) -> float:
    start = time.perf_counter()
    deadline = start + timeout
    while not _jobs_idle(client):
        if time.perf_counter() > deadline:
            raise PromoteFailed(f"background jobs still running after {timeout:.0f} s")
        time.sleep(0.05)
    return time.perf_counter() - start


def _promote(client: httpx.Client, sha: str) -> float:
    start = time.perf_counter()
    response = client.post(f"/api/v1/artifacts/{sha}/promote", json={"stage": STAGE})
    elapsed = time.perf_counter() - start
    if response.status_code != 200 or not response.json().get("changed"):
        raise PromoteFailed(f"promote {sha[:12]}: HTTP {response.status_code} {response.text}")
    return elapsed


def _failed_jobs(client: httpx.Client) -> list[dict[str, Any]]:
    response = client.get("/api/v1/jobs", params={"limit": 500})
    response.raise_for_status()
    return [j for j in response.json() if j["status"] == "failed"]


@contextlib.contextmanager
def _worker(data_dir: Path) -> Iterator[None]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PACKYARD_")}
    with (data_dir.parent / f"{data_dir.name}-worker.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "packyard", "worker", "--data-dir", str(data_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _measure(
    size: int, *, promotions: int, interval: float, work: Path, worker_process: bool
) -> SizeResult:
    result = SizeResult(size=size)
    data_dir = work / f"data-{size}"
    started = time.perf_counter()
    candidates = _populate(data_dir, size=size, candidates=2 * promotions)
    result.setup_s = time.perf_counter() - started
    with contextlib.ExitStack() as stack:
        if worker_process:
            (data_dir / "packyard.toml").write_text("[jobs]\nworkers = 0\n")
            stack.enter_context(_worker(data_dir))
        server = stack.enter_context(BenchServer(data_dir))
        headers = {"Authorization": f"Bearer {server.token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=120) as client:
            result.initial_publish_s = _wait_idle(client)
            print(
                f"   set-up {result.setup_s:.1f} s; first-start publication of every channel "
                f"{result.initial_publish_s:.1f} s",
                flush=True,
            )
            quiet, busy = candidates[:promotions], candidates[promotions:]
            for sha in quiet:
                _wait_idle(client)
                result.quiet.append(_promote(client, sha))
            _wait_idle(client)
            next_start = time.perf_counter()
            for sha in busy:
                time.sleep(max(0.0, next_start - time.perf_counter()))
                next_start += interval
                result.busy.append(_promote(client, sha))
            drained = _wait_idle(client)
            failed = _failed_jobs(client)
            if failed:
                raise PromoteFailed(f"background publish failed: {failed[0].get('error')}")
            print(
                f"   quiet p50 {result.p('quiet', 50) * 1000:.1f} ms, busy p50 "
                f"{result.p('busy', 50) * 1000:.1f} ms; publishing caught up {drained:.1f} s "
                "after the last busy call",
                flush=True,
            )
    return result


# --------------------------------------------------------------------------- report


def _report(results: list[SizeResult], *, promotions: int, worker_process: bool) -> None:
    print()
    print(f"POST /api/v1/artifacts/{{sha}}/promote into {STAGE}, ms, {promotions} calls per series")
    where = "a separate `packyard worker` process" if worker_process else "the server's threads"
    print(f"  jobs run in {where}")
    print("  quiet: no background job running at each call; busy: one call every --interval s")
    print("  while the background publishes of the channel run")
    print()
    print_table(
        ["artifacts", "quiet p50", "quiet p95", "busy p50", "busy p95", "max"],
        [
            [
                str(r.size),
                f"{r.p('quiet', 50) * 1000:.1f}",
                f"{r.p('quiet', 95) * 1000:.1f}",
                f"{r.p('busy', 50) * 1000:.1f}",
                f"{r.p('busy', 95) * 1000:.1f}",
                f"{max(r.quiet + r.busy) * 1000:.1f}",
            ]
            for r in results
        ],
    )
    base = results[0]
    print()
    print(f"Goals (latency with N artifacts / with {base.size}, <= {GOAL_RATIO}):")
    for r in results[1:]:
        for series in ("quiet", "busy"):
            for q in (50, 95):
                ratio = r.p(series, q) / base.p(series, q)
                met = "met    " if ratio <= GOAL_RATIO else "NOT MET"
                print(f"  {met}  {series} p{q}, {r.size} vs {base.size}: {ratio:.2f}")
