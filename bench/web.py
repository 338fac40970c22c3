"""Server-side render time of every web UI page with 100,000 artifacts.

Seeds a database directly through the repositories' session (bulk inserts: packages,
artifacts, stage entries, a valid audit hash chain), cached between runs in the benchmark
cache dir, then renders each page in-process through the whole ASGI stack (session cookie,
CSRF, authentication, queries, templates) with Starlette's TestClient, and compares every page
with a bare FastAPI endpoint returning a constant string, measured in the same run on the same
app. The target is 300 ms server-side per page.

Not measured: the browser (network, CSS, scripts) and PostgreSQL.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update

from bench.support import cache_dir, print_table
from packyard.domain.audit import GENESIS_HASH, event_hash
from packyard.storage.db.models import Artifact, AuditHead, Event, Package, StageEntry

__all__ = ["build_parser", "run"]

TARGET_MS = 300.0
PASSWORD = "benchmark password"
STAGES = ("new", "ci", "dev", "stage", "prod")
# Share of artifacts that reach each stage (every one is in "new").
REACH = (1.0, 0.6, 0.4, 0.25, 0.15)
FORMATS = (
    ("deb", "amd64"),
    ("deb", "all"),
    ("rpm", "x86_64"),
    ("pacman", "x86_64"),
    ("packet", "armv7l"),
    ("generic", None),
)
UPLOADERS = ("ci-bot", "ci-bot", "ci-bot", "dana", "lee")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifacts", type=int, default=100_000, help="how many (default 100000)")
    parser.add_argument("--packages", type=int, default=2_000, help="spread over (default 2000)")
    parser.add_argument("--repeat", type=int, default=30, help="renders per page (default 30)")
    parser.add_argument("--fresh", action="store_true", help="re-seed even if a cached set exists")
    return parser


def _seed(runtime: Any, *, artifacts: int, packages: int) -> None:
    """Bulk-insert the data set (one transaction; minutes at most, then cached)."""
    rng = random.Random(4711)
    now = datetime.now(UTC).replace(tzinfo=None)
    start = now - timedelta(days=365)
    with runtime.context(write=True) as ctx:
        session = ctx.repos.session
        session.execute(
            insert(Package),
            [{"name": f"pkg-{i:05d}", "created_at": start} for i in range(packages)],
        )
        ids = dict(session.execute(select(Package.name, Package.id)).tuples().all())
        names = sorted(ids)
        rows: list[dict[str, Any]] = []
        entries: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for n in range(artifacts):
            name = names[n % packages]
            fmt, arch = FORMATS[n % len(FORMATS)]
            uploaded = start + timedelta(seconds=n * (365 * 86400 / artifacts))
            version = f"{n // packages + 1}.{n % 7}.{n % 3}-1"
            sha = f"{rng.getrandbits(256):064x}"
            reached = [s for s, share in zip(STAGES, REACH, strict=True) if rng.random() < share]
            reached = list(STAGES[: max(1, len(reached))])
            roll = rng.random()
            status = "failed" if roll < 0.03 else "deprecated" if roll < 0.06 else "active"
            uploader = UPLOADERS[n % len(UPLOADERS)]
            rows.append(
                {
                    "id": n + 1,
                    "sha256": sha,
                    "identity": f"{fmt}|{name}|{version}|{arch or ''}|",
                    "package_id": ids[name],
                    "format": fmt,
                    "name": name,
                    "version": version,
                    "arch": arch,
                    "size": 1024 + rng.randrange(50_000_000),
                    "filename": f"{name}_{version}.{fmt}",
                    "relations": {"depends": ["libc6 (>= 2.31)"]},
                    "fields": {},
                    "provenance": f"CI job {n}, commit {sha[:7]}",
                    "justification": f"release {version} of {name}",
                    "uploaded_by": uploader,
                    "uploaded_at": uploaded,
                    "status": status,
                    "status_changed_at": uploaded + timedelta(days=2)
                    if status != "active"
                    else None,
                    "held": rng.random() < 0.01,
                    "current_stage": reached[-1],
                }
            )
            at = uploaded
            for stage in reached:
                entries.append(
                    {
                        "artifact_id": n + 1,
                        "stage": stage,
                        "entered_at": at,
                        "entered_by": uploader if stage == "new" else "dana",
                    }
                )
                events.append(
                    {
                        "at": at,
                        "actor": uploader if stage == "new" else "dana",
                        "action": "artifact.upload" if stage == "new" else "artifact.promote",
                        "object_type": "artifact",
                        "object_id": sha,
                        "before": None,
                        "after": {"stage": stage},
                        "reason": None,
                    }
                )
                at += timedelta(hours=rng.uniform(1, 72))
        for chunk in range(0, len(rows), 5000):
            session.execute(insert(Artifact), rows[chunk : chunk + 5000])
        for chunk in range(0, len(entries), 10000):
            session.execute(insert(StageEntry), entries[chunk : chunk + 10000])
        # A valid hash chain, so the audit pages show what a real log would.
        events.sort(key=lambda e: e["at"])
        head = session.scalar(select(AuditHead).where(AuditHead.id == 1))
        seq, prev = (head.seq, head.hash) if head else (0, GENESIS_HASH)
        for event in events:
            seq += 1
            event["seq"] = seq
            event["prev_hash"] = prev
            event["hash"] = prev = event_hash(
                seq=seq,
                prev_hash=prev,
                **{
                    k: event[k]
                    for k in (
                        "at",
                        "actor",
                        "action",
                        "object_type",
                        "object_id",
                        "before",
                        "after",
                        "reason",
                    )
                },
            )
        for chunk in range(0, len(events), 10000):
            session.execute(insert(Event), events[chunk : chunk + 10000])
        if head is None:
            session.execute(insert(AuditHead).values(id=1, seq=seq, hash=prev))
        else:
            session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=seq, hash=prev))


def _prepare(args: argparse.Namespace) -> Path:
    from packyard.bootstrap import Runtime
    from packyard.config import load_settings
    from packyard.services.users import bootstrap_admin, set_first_password

    data_dir = cache_dir() / f"web-{args.artifacts}"
    marker = data_dir / "seeded"
    if marker.exists() and not args.fresh:
        return data_dir
    if data_dir.exists():
        import shutil

        shutil.rmtree(data_dir)
    print(
        f"seeding {args.artifacts:,} artifacts into {data_dir} (cached for later runs)…", flush=True
    )
    started = time.perf_counter()
    runtime = Runtime.from_settings(load_settings(data_dir=data_dir))
    try:
        with runtime.context(write=True) as ctx:
            token = bootstrap_admin(ctx)
        assert token is not None
        with runtime.context(write=True) as ctx:
            set_first_password(ctx, token=token, password=PASSWORD)
        _seed(runtime, artifacts=args.artifacts, packages=args.packages)
        from packyard.asgi import prepare_publishing

        prepare_publishing(runtime)  # a signing key, so the channels page has one to show
    finally:
        runtime.close()
    marker.write_text("ok\n")
    print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
    return data_dir


def _measure(client: Any, path: str, repeat: int) -> list[float]:
    for _ in range(3):  # warm caches (SQLite pages, templates)
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[:500])
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return times


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, round(0.95 * len(values)) - 1)]


def run(args: argparse.Namespace) -> int:
    """Print p50/p95 per page and the ratio to the constant endpoint; 1 if a page misses 300 ms."""
    import warnings

    from fastapi.responses import PlainTextResponse

    with warnings.catch_warnings():
        # Starlette suggests another HTTP client package for its TestClient; httpx is fine here.
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    from packyard.asgi import create_app
    from packyard.bootstrap import Runtime
    from packyard.config import load_settings

    data_dir = _prepare(args)
    runtime = Runtime.from_settings(load_settings(data_dir=data_dir, log_level="warning"))
    app = create_app(runtime, run_jobs=False)

    @app.get("/bench/constant")
    def constant() -> PlainTextResponse:
        return PlainTextResponse("ok")

    status = 0
    try:
        client = TestClient(app, base_url="http://127.0.0.1")
        login = client.get("/login")
        csrf = login.text.split('"X-CSRF-Token": "', 1)[1].split('"', 1)[0]
        signed_in = client.post(
            "/login",
            data={"username": "admin", "password": PASSWORD, "csrf_token": csrf, "next": "/"},
            follow_redirects=False,
        )
        assert signed_in.status_code == 303, signed_in.text[:500]
        with runtime.context() as ctx:
            total = ctx.repos.artifacts.count()
            sha = ctx.repos.session.scalar(select(Artifact.sha256).where(Artifact.id == total // 2))
            package = ctx.repos.session.scalar(select(Package.name).order_by(Package.id).limit(1))
        pages = [
            ("constant (baseline)", "/bench/constant"),
            ("dashboard", "/"),
            ("artifacts", "/artifacts"),
            ("artifacts sorted by name", "/artifacts?sort=name&order=asc"),
            ("artifacts sorted by size", "/artifacts?sort=size&order=desc"),
            ("artifacts in prod, deb", "/artifacts?stage=prod&format=deb"),
            ("artifacts, free text", "/artifacts?q=pkg-01234"),
            ("artifacts, page 1000", "/artifacts?page=1000"),
            ("artifacts, 200 per page", "/artifacts?per_page=200"),
            ("artifact", f"/artifacts/{sha}"),
            ("packages", "/packages"),
            ("package", f"/packages/{package}"),
            ("channels", "/channels"),
            ("audit log", "/audit"),
            ("audit log, filtered", "/audit?action=artifact.promote&actor=dana"),
            ("users", "/admin/users"),
            ("tokens", "/tokens"),
            ("upload", "/upload"),
        ]
        print(f"{total:,} artifacts; {args.repeat} renders per page after 3 warm-ups", flush=True)
        results = []
        baseline = 0.0
        for label, path in pages:
            times = _measure(client, path, args.repeat)
            p50, p95 = statistics.median(times), _p95(times)
            if path == "/bench/constant":
                baseline = p50
            over = p95 > TARGET_MS
            status = max(status, int(over))
            results.append(
                (
                    label,
                    f"{p50:.1f}",
                    f"{p95:.1f}",
                    f"{p50 / baseline:.1f}x" if baseline else "1.0x",
                    "OVER" if over else "ok",
                )
            )
        print_table(
            ("page", "p50 ms", "p95 ms", "p50 / constant", f"p95 < {TARGET_MS:.0f} ms"), results
        )
        client.close()
    finally:
        runtime.close()
    return status
