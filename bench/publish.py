"""Publishing benchmark: apt, dnf and pacman channels of thousands of packages, against the
ecosystems' own index tools run on the same files.

Set-up (not timed): a Runtime on a fresh data dir (SQLite, local blobs, GnuPG signer, no job
queue), a signing key, and ``count + repeat`` synthetic packages (bench/pkgset.py) ingested
through ``services.artifacts.ingest``. The first ``count`` are put into the channel's stage
(``ci``) with StageEntry rows in bulk; each of the ``repeat`` others is promoted there through
``services.promotions.promote`` right before one incremental publish. Before those, the
uploads' own channel (``new``) is published, as the publish job that every upload queues does
in the product: that computes the entries of the uploaded packages (dnf: signs the rpms).
``repeat`` more packages are then ingested without that publish, for the second incremental
series below.

What is timed, each a call of ``services.publish.publish(runtime.context, stages=["ci"],
formats=[FMT], ...)`` from call to return (entries, indexes, compression, signatures, the
snapshot on disk with fsync, the publication row, the switch and the prune):

- first: the channel's first publication, no entry cached (dnf: every rpm is re-signed with
  our key and stored as a derived blob here).
- recompute: ``recompute=True``, every entry computed again from the package files and the
  block cache cleared (dnf: the signed copies from ``first`` are reused, as a real repair
  would). What ``packyard publish --recompute`` does; no goal.
- full: ``full=True``, what ``packyard publish --full`` does: every index rebuilt from the
  entries stored in the database (every entry read, split and joined again, hashed, signed,
  written), reusing only the compression of identical blocks. The figure the full goals are
  judged on: the metadata of a package is extracted once, when it is first published, as
  apt-ftparchive's ``--db`` cache or Pulp's database keep it.
- cached: ``full=False`` with nothing changed: the blocks found by their membership alone.
  Not a goal; the floor of every incremental publish.
- incremental: one promotion into the channel, then ``full=False``: the promoted package's
  entry was computed when its upload was published (above), so its block is rendered from
  stored entries and compressed, the other blocks come from the cache. What a promotion
  costs in the product; the figure the incremental goals are judged on.
- incremental + entry: the same for a package whose upload was never published, so the
  publish also computes its entry from the package file (dnf: signs the rpm and stores the
  signed copy). For the record: the worst case of an incremental publish.

Peers, on hard links to the same package files, page cache warm:

- apt: ``apt-ftparchive packages DIR`` without a cache database (--db), output to a file.
- dnf: ``createrepo_c DIR`` from scratch (repodata removed first); incremental:
  ``createrepo_c --update DIR`` after linking in the one new rpm.
- pacman: ``repo-add DB.db.tar.gz FILES...`` into a new database; incremental (for the
  record): ``repo-add DB.db.tar.gz NEW`` into the existing one.

The peers write less than we do: apt-ftparchive writes one uncompressed Packages file, not
gz/xz variants, a Release, InRelease and Release.gpg; createrepo_c and repo-add sign nothing
(we also sign each rpm and each pacman package). Every timed run, ours or a peer's, starts
after a ``sync`` (not timed), so none pays for writing back what the step before it left in
the page cache. Medians of ``--repeat`` runs; the first publication runs once. Ratios are
ours / peer (lower is better).

Not handled: PostgreSQL, remote blob stores, several channels or formats at once, concurrent
promotions while publishing (bench/promote.py measures the promote call itself).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import pkgset
from bench.support import cache_dir, median, print_table

__all__ = ["build_parser", "run"]

STAGE = "ci"
#: The stage uploads land in; its channel is published after every upload (set-up here).
UPLOAD_STAGE = "new"
#: repository format -> (package kind, the issue's channel size)
FORMATS: dict[str, tuple[str, int]] = {
    "apt": ("deb", 10_000),
    "dnf": ("rpm", 10_000),
    "pacman": ("pacman", 5_000),
}
PEER_TOOLS = {"apt": ("apt-ftparchive",), "dnf": ("createrepo_c",), "pacman": ("repo-add",)}
HINTS = {
    "apt": "apt-get install apt-utils",
    "dnf": "apt-get install createrepo-c rpm",
    "pacman": "apt-get install pacman-package-manager libarchive-tools",
}
GOAL_APT_FULL = 0.1  # our full / apt-ftparchive
GOAL_APT_INCREMENTAL = 0.01  # our incremental / our full
GOAL_DNF_FULL = 0.5  # our full / createrepo_c
GOAL_DNF_INCREMENTAL = 0.05  # our incremental / createrepo_c --update
GOAL_PACMAN_FULL = 0.05  # our full / repo-add
INGEST_BATCH = 500

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_MISSING_TOOL = 4


class PublishFailed(Exception):
    pass


@dataclass
class FormatResult:
    fmt: str
    count: int
    setup_s: float = 0.0
    first: float = 0.0
    recompute: list[float] = field(default_factory=list)
    full: list[float] = field(default_factory=list)
    cached: list[float] = field(default_factory=list)
    incremental: list[float] = field(default_factory=list)
    incremental_entry: list[float] = field(default_factory=list)
    peer_full: list[float] = field(default_factory=list)
    peer_alt: list[float] = field(default_factory=list)
    peer_incremental: list[float] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)
    #: apt: the least any publish of the channel must do (seconds): hash, sign (see _apt_floor).
    floor_hash: list[float] = field(default_factory=list)
    floor_sign: list[float] = field(default_factory=list)
    floor_bytes: int = 0

    def m(self, name: str) -> float:
        values: list[float] = getattr(self, name)
        return median(values) if values else float("nan")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--formats",
        default=",".join(FORMATS),
        help=f"comma-separated repository formats (default: {','.join(FORMATS)})",
    )
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="packages per channel (default: the issue's sizes, "
        + ", ".join(f"{f} {n}" for f, (_k, n) in FORMATS.items())
        + ")",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs of the quick measurements: cached, incremental, peer incremental (default 3)",
    )
    parser.add_argument(
        "--full-repeat",
        type=int,
        default=1,
        help="runs of the slow ones: our full publish and the peer's (default 1)",
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="also write a cProfile of each of our timed publishes to DIR (slows them down)",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the publishing benchmark for each selected format and print a report."""
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        print(f"error: unknown format {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
        return EXIT_FAILED
    missing = [t for f in formats for t in PEER_TOOLS[f] if not shutil.which(t)]
    if missing:
        print(f"error: the peers need {', '.join(missing)} on PATH")
        print(f"hint: {'; '.join(HINTS[f] for f in formats)}")
        return EXIT_MISSING_TOOL
    for key in [k for k in os.environ if k.startswith("PACKYARD_")]:
        del os.environ[key]  # settings come from this benchmark only
    results = []
    for fmt in formats:
        kind, default_count = FORMATS[fmt]
        count = args.count or default_count
        print(f"-- {fmt}: {count} {kind} packages, {args.repeat} runs each", flush=True)
        try:
            results.append(
                _measure(
                    fmt,
                    kind=kind,
                    count=count,
                    repeat=args.repeat,
                    full_repeat=args.full_repeat,
                    profile=args.profile,
                )
            )
        except (PublishFailed, subprocess.CalledProcessError) as exc:
            print(f"error: {fmt}: {exc}")
            return EXIT_FAILED
    _report(results, repeat=args.repeat, full_repeat=args.full_repeat)
    return EXIT_OK


# --------------------------------------------------------------------------- set-up


@dataclass
class Channel:
    runtime: Any
    base_ids: list[int]
    extra_shas: list[str]


def _runtime(data_dir: Path) -> Any:
    from packyard.bootstrap import Runtime
    from packyard.config import load_settings
    from packyard.services.keys import ensure_signing_key

    runtime = Runtime.from_settings(load_settings(data_dir=data_dir))
    with runtime.context(write=True) as ctx:
        ensure_signing_key(ctx)
    return runtime


def _ingest(runtime: Any, paths: list[Path]) -> list[tuple[int, str]]:
    from packyard.domain.auth import SYSTEM
    from packyard.services.artifacts import UploadRequest, ingest

    out: list[tuple[int, str]] = []
    for start in range(0, len(paths), INGEST_BATCH):
        with runtime.context(write=True) as ctx:
            for path in paths[start : start + INGEST_BATCH]:
                writer = runtime.blobs.writer()
                try:
                    writer.write(path.read_bytes())
                    result = ingest(
                        ctx,
                        principal=SYSTEM,
                        writer=writer,
                        request=UploadRequest(
                            filename=path.name,
                            justification="publishing benchmark",
                            provenance="bench/publish.py",
                        ),
                    )
                finally:
                    writer.abort()
                out.append((result.artifact.id, result.artifact.sha256))
    return out


def _stage_in_bulk(runtime: Any, artifact_ids: list[int]) -> None:
    """Put artifacts into STAGE with plain INSERTs (set-up speed; no audit events)."""
    from sqlalchemy import insert, update

    from packyard.storage.db.models import Artifact, StageEntry

    now = datetime.now(UTC).replace(tzinfo=None)
    with runtime.context(write=True) as ctx:
        session = ctx.repos.session
        for start in range(0, len(artifact_ids), INGEST_BATCH):
            chunk = artifact_ids[start : start + INGEST_BATCH]
            session.execute(
                insert(StageEntry),
                [
                    {"artifact_id": i, "stage": STAGE, "entered_at": now, "entered_by": "bench"}
                    for i in chunk
                ],
            )
            session.execute(
                update(Artifact).where(Artifact.id.in_(chunk)).values(current_stage=STAGE)
            )


def _setup(work: Path, kind: str, paths: list[Path], count: int) -> Channel:
    runtime = _runtime(work / "data")
    ingested = _ingest(runtime, paths)
    _stage_in_bulk(runtime, [i for i, _sha in ingested[:count]])
    return Channel(
        runtime=runtime,
        base_ids=[i for i, _sha in ingested[:count]],
        extra_shas=[sha for _i, sha in ingested[count:]],
    )


def _promote(runtime: Any, sha256: str) -> None:
    from packyard.domain.auth import SYSTEM
    from packyard.services.promotions import promote

    with runtime.context(write=True) as ctx:
        result = promote(ctx, principal=SYSTEM, ref=sha256, stage=STAGE)
    if not result.changed:
        raise PublishFailed(f"promoting {sha256[:12]} into {STAGE} changed nothing")


# --------------------------------------------------------------------------- timing


def _publish(
    runtime: Any,
    fmt: str,
    *,
    full: bool,
    expect_new: int | None,
    profile: Path | None,
    tag: str,
    recompute: bool = False,
    stage: str = STAGE,
) -> float:
    from packyard.services.publish import publish

    def call() -> list[Any]:
        done: list[Any] = publish(
            runtime.context,
            stages=[stage],
            formats=[fmt],
            full=full,
            recompute=recompute,
            trigger="bench",
        )
        return done

    # Not timed: the dirty pages of the previous step (a recompute writes thousands of cache
    # files) reach the disk now, not in this publish's first fsync (ext4's ordered mode
    # flushes them with the journal commit). The peers get the same before their runs.
    os.sync()
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        start = time.perf_counter()
        results = profiler.runcall(call)
        elapsed = time.perf_counter() - start
        profile.mkdir(parents=True, exist_ok=True)
        profiler.dump_stats(profile / f"{fmt}-{tag}.prof")
    else:
        start = time.perf_counter()
        results = call()
        elapsed = time.perf_counter() - start
    if len(results) != 1:
        raise PublishFailed(f"expected one channel published, got {len(results)}")
    if expect_new is not None and results[0].new_entries != expect_new:
        raise PublishFailed(
            f"{tag}: expected {expect_new} new index entries, got {results[0].new_entries}"
        )
    return elapsed


def _timed(cmd: list[str], *, cwd: Path | None = None, stdout: Path | None = None) -> float:
    os.sync()  # as before our publishes (see _publish)
    start = time.perf_counter()
    if stdout is not None:
        with stdout.open("wb") as out:
            subprocess.run(cmd, check=True, cwd=cwd, stdout=out, stderr=subprocess.PIPE)
    else:
        subprocess.run(cmd, check=True, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def _warm(paths: list[Path]) -> None:
    for path in paths:
        path.read_bytes()


def _measure(
    fmt: str, *, kind: str, count: int, repeat: int, full_repeat: int, profile: str | None
) -> FormatResult:
    result = FormatResult(fmt=fmt, count=count)
    paths = pkgset.ensure(kind, count + 2 * repeat)
    base, extras = paths[:count], paths[count : count + repeat]
    unpublished = paths[count + repeat :]
    work = Path(tempfile.mkdtemp(prefix=f"publish-{fmt}-", dir=cache_dir()))
    prof = Path(profile) / f"{fmt}-{count}" if profile else None
    try:
        started = time.perf_counter()
        print(f"   set-up: ingesting {len(paths)} packages into {work}", flush=True)
        channel = _setup(work, kind, paths[: count + repeat], count)
        peer_dir = work / "peer"
        pkgset.link_set(base, peer_dir)
        _warm(base)
        result.setup_s = time.perf_counter() - started
        print(f"   set-up done in {result.setup_s:.0f} s", flush=True)
        runtime = channel.runtime

        def ours(tag: str, *, full: bool, expect_new: int | None, recompute: bool = False) -> float:
            seconds = _publish(
                runtime,
                fmt,
                full=full,
                recompute=recompute,
                expect_new=expect_new,
                profile=prof,
                tag=tag,
            )
            print(f"   ours {tag}: {seconds:.3f} s", flush=True)
            return seconds

        result.first = ours("first", full=False, expect_new=count)
        for i in range(full_repeat):
            result.recompute.append(
                ours(f"recompute{i + 1}", full=True, recompute=True, expect_new=count)
            )
        for i in range(repeat):
            result.full.append(ours(f"full{i + 1}", full=True, expect_new=0))
        for i in range(repeat):
            result.cached.append(ours(f"cached{i + 1}", full=False, expect_new=0))
        peer_full, peer_incremental, check = PEERS[fmt]
        alt = PEER_ALT.get(fmt)
        for i in range(full_repeat if alt else 0):
            assert alt is not None
            seconds = alt(peer_dir, base, work)
            result.peer_alt.append(seconds)
            print(f"   peer' full {i + 1}: {seconds:.2f} s", flush=True)
        for i in range(full_repeat):
            seconds = peer_full(peer_dir, base, work)
            result.peer_full.append(seconds)
            print(f"   peer full {i + 1}: {seconds:.2f} s", flush=True)
        # What every upload's own publish job does in the product: the uploads' channel is
        # published, which computes the entries of the new packages (not timed).
        started = time.perf_counter()
        _publish(
            runtime, fmt, full=False, expect_new=repeat, profile=None, tag="new", stage=UPLOAD_STAGE
        )
        unpublished_shas = [sha for _id, sha in _ingest(runtime, unpublished)]
        print(
            f"   set-up: {UPLOAD_STAGE} published, {len(unpublished)} more packages ingested "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        series = [
            (result.incremental, "incremental", 0, zip(channel.extra_shas, extras, strict=True)),
            (
                result.incremental_entry,
                "incremental+entry",
                1,
                zip(unpublished_shas, unpublished, strict=True),
            ),
        ]
        for into, tag, new_entries, packages in series:
            for i, (sha, extra) in enumerate(packages):
                _promote(runtime, sha)
                into.append(ours(f"{tag}{i + 1}", full=False, expect_new=new_entries))
                seconds = peer_incremental(peer_dir, extra, work)
                result.peer_incremental.append(seconds)
                print(f"   peer incremental: {seconds:.2f} s", flush=True)
        result.checks.append(check(runtime, work, count + 2 * repeat))
        if fmt == "apt":
            _apt_floor(runtime, result, repeat)
        runtime.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def _apt_floor(runtime: Any, result: FormatResult, repeat: int) -> None:
    """Time the two steps no publish of an apt channel can skip, however little changed.

    Release lists the sha256 of every index (``Packages``, ``.gz``, ``.xz``), and a client
    checks them: each publish hashes the whole new files. InRelease and Release.gpg carry
    the signatures apt checks (RSA-4096 here, the key `packyard keys` generates). Measured on
    the channel's current snapshot with the product's own signer, after a ``sync``; the bytes
    are read before timing. Writing the new files and their fsync come on top.
    """
    import hashlib

    from packyard.services.publish import _signing

    dists = _snapshot(runtime, "apt") / "dists" / STAGE
    indexes = [p.read_bytes() for p in sorted(dists.glob("*/binary-*/Packages*"))]
    release = (dists / "Release").read_bytes()
    result.floor_bytes = sum(len(data) for data in indexes)
    with runtime.context() as ctx:
        signing = _signing(ctx)
    for _ in range(repeat):
        os.sync()
        start = time.perf_counter()
        for data in indexes:
            hashlib.sha256(data).digest()
        result.floor_hash.append(time.perf_counter() - start)
        start = time.perf_counter()
        signing.clearsign(release)
        signing.detach(release, armor=True)
        result.floor_sign.append(time.perf_counter() - start)
    print(
        f"   floor: sha256 of {result.floor_bytes / 1e6:.1f} MB of indexes "
        f"{result.m('floor_hash') * 1000:.1f} ms, InRelease + Release.gpg signatures "
        f"{result.m('floor_sign') * 1000:.1f} ms",
        flush=True,
    )


# --------------------------------------------------------------------------- peers


def _snapshot(runtime: Any, fmt: str) -> Path:
    store = runtime.publications
    snapshot = store.current(fmt, STAGE)
    if snapshot is None:
        raise PublishFailed(f"{fmt}/{STAGE} has no current snapshot")
    return Path(store.snapshot_dir(fmt, STAGE, snapshot))


def _apt_full(peer_dir: Path, _base: list[Path], work: Path) -> float:
    return _timed(
        ["apt-ftparchive", "packages", peer_dir.name],
        cwd=peer_dir.parent,
        stdout=work / "Packages.peer",
    )


def _apt_incremental(peer_dir: Path, extra: Path, work: Path) -> float:
    # apt-ftparchive has no incremental mode without its cache: it is not a goal's peer.
    pkgset.link_set([extra], peer_dir)
    return float("nan")


def _apt_check(runtime: Any, work: Path, expected: int) -> str:
    ours = sum(
        (b"\n" + path.read_bytes()).count(b"\nPackage: ")
        for path in _snapshot(runtime, "apt").glob("dists/*/*/binary-*/Packages")
    )
    theirs = (b"\n" + (work / "Packages.peer").read_bytes()).count(b"\nPackage: ")
    return (
        f"apt: our last Packages list {ours} stanzas (expected {expected}); "
        f"apt-ftparchive's (full run, before the promotions) {theirs}"
    )


def _dnf_full(peer_dir: Path, _base: list[Path], work: Path) -> float:
    # --no-database: dnf reads the XML metadata only and we publish no sqlite files, so this
    # is the like-for-like peer; createrepo_c 0.x's default (+ sqlite) is reported besides.
    shutil.rmtree(peer_dir / "repodata", ignore_errors=True)
    return _timed(["createrepo_c", "--quiet", "--no-database", str(peer_dir)])


def _dnf_full_default(peer_dir: Path, _base: list[Path], work: Path) -> float:
    shutil.rmtree(peer_dir / "repodata", ignore_errors=True)
    seconds = _timed(["createrepo_c", "--quiet", str(peer_dir)])
    shutil.rmtree(peer_dir / "repodata", ignore_errors=True)
    return seconds


def _dnf_incremental(peer_dir: Path, extra: Path, work: Path) -> float:
    pkgset.link_set([extra], peer_dir)
    return _timed(["createrepo_c", "--quiet", "--no-database", "--update", str(peer_dir)])


def _dnf_check(runtime: Any, work: Path, expected: int) -> str:
    import gzip
    import re

    snapshot = _snapshot(runtime, "dnf")
    ours = [p for p in snapshot.glob("repodata/*-primary.xml.gz")]
    theirs = list((work / "peer" / "repodata").glob("*-primary.xml.gz"))

    def packages(path: Path) -> str:
        found = re.search(rb'packages="(\d+)"', gzip.decompress(path.read_bytes())[:4096])
        return found.group(1).decode() if found else "?"

    return (
        f"dnf: our last primary.xml lists {packages(ours[0]) if ours else '?'} packages "
        f"(expected {expected}); createrepo_c's last {packages(theirs[0]) if theirs else '?'}"
    )


def _pacman_full(peer_dir: Path, base: list[Path], work: Path) -> float:
    db_dir = work / "pacman-db"
    shutil.rmtree(db_dir, ignore_errors=True)
    db_dir.mkdir()
    files = [str(peer_dir / p.name) for p in base]
    return _timed(["repo-add", "--quiet", str(db_dir / "bench.db.tar.gz"), *files])


def _pacman_incremental(peer_dir: Path, extra: Path, work: Path) -> float:
    [linked] = pkgset.link_set([extra], peer_dir)
    return _timed(["repo-add", "--quiet", str(work / "pacman-db" / "bench.db.tar.gz"), str(linked)])


def _pacman_check(runtime: Any, work: Path, expected: int) -> str:
    import tarfile

    snapshot = _snapshot(runtime, "pacman")
    dbs = sorted(snapshot.glob("x86_64/*.db.tar.gz"))

    def entries(path: Path) -> int:
        with tarfile.open(path) as tar:
            return sum(1 for m in tar.getmembers() if m.name.endswith("/desc"))

    ours = entries(dbs[0]) if dbs else -1
    theirs = entries(work / "pacman-db" / "bench.db.tar.gz")
    return (
        f"pacman: our last x86_64 db has {ours} entries (expected {expected}); "
        f"repo-add's last {theirs}"
    )


PeerFn = Callable[[Path, list[Path], Path], float]
PeerIncFn = Callable[[Path, Path, Path], float]
CheckFn = Callable[[Any, Path, int], str]
PEERS: dict[str, tuple[PeerFn, PeerIncFn, CheckFn]] = {
    "apt": (_apt_full, _apt_incremental, _apt_check),
    "dnf": (_dnf_full, _dnf_incremental, _dnf_check),
    "pacman": (_pacman_full, _pacman_incremental, _pacman_check),
}

#: A second peer reported for the record: createrepo_c's own default also writes sqlite dbs.
PEER_ALT: dict[str, PeerFn] = {"dnf": _dnf_full_default}

PEER_NAMES = {
    "apt": ("apt-ftparchive packages", "-"),
    "dnf": ("createrepo_c --no-database", "the same --update"),
    "pacman": ("repo-add (new db)", "repo-add (1 pkg)"),
}


# --------------------------------------------------------------------------- report


def _fmt(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds:.3f}"  # NaN: not measured


def _report(results: list[FormatResult], *, repeat: int, full_repeat: int) -> None:
    print()
    print(
        f"Publishing one channel ({STAGE}), seconds; median of {full_repeat} run(s) for "
        f"recompute and peer full, of {repeat} for full, cached, incremental and peer "
        "incremental; first: 1 run"
    )
    print("  first: no entry cached; recompute: every entry from the package files; full:")
    print("  every index rebuilt from the stored entries; cached: nothing changed;")
    print("  incr.: 1 promotion of an uploaded package (its entry computed when the upload was")
    print("  published), then a publish; +entry: the same, the entry computed in that publish")
    print()
    print_table(
        [
            "format",
            "packages",
            "first",
            "recompute",
            "full",
            "cached",
            "incr.",
            "+entry",
            "peer",
            "peer full",
            "peer incr.",
        ],
        [
            [
                r.fmt,
                str(r.count),
                _fmt(r.first),
                _fmt(r.m("recompute")),
                _fmt(r.m("full")),
                _fmt(r.m("cached")),
                _fmt(r.m("incremental")),
                _fmt(r.m("incremental_entry")),
                PEER_NAMES[r.fmt][0],
                _fmt(r.m("peer_full")),
                _fmt(r.m("peer_incremental")),
            ]
            for r in results
        ],
    )
    print()
    for r in results:
        print(f"  {r.checks[0] if r.checks else r.fmt}; set-up {r.setup_s:.0f} s")
    # (format, label, ours, peer, goal): the goals, for the formats that ran.
    spec = [
        ("apt", "apt full / apt-ftparchive packages", "full", "peer_full", GOAL_APT_FULL),
        ("apt", "apt incremental / our apt full", "incremental", "full", GOAL_APT_INCREMENTAL),
        ("dnf", "dnf full / createrepo_c --no-database", "full", "peer_full", GOAL_DNF_FULL),
        (
            "dnf",
            "dnf incremental / createrepo_c --no-database --update",
            "incremental",
            "peer_incremental",
            GOAL_DNF_INCREMENTAL,
        ),
        ("pacman", "pacman full / repo-add", "full", "peer_full", GOAL_PACMAN_FULL),
    ]
    by = {r.fmt: r for r in results}
    goals = [
        (f"{label} ({by[fmt].count})", by[fmt].m(ours) / by[fmt].m(peer), goal)
        for fmt, label, ours, peer, goal in spec
        if fmt in by
    ]
    print()
    print("Goals (ratio = ours / peer, lower is better):")
    for text, ratio, goal in goals:
        met = ratio <= goal
        print(f"  {'met    ' if met else 'NOT MET'}  {text} <= {goal}: {ratio:.3f}")
    for r in results:
        if r.floor_hash:
            floor = r.m("floor_hash") + r.m("floor_sign")
            print(
                f"  apt floor: hashing the indexes Release lists ({r.floor_bytes / 1e6:.1f} MB) "
                f"and signing Release twice take {floor * 1000:.1f} ms, "
                f"{floor / r.m('full'):.3f}x our full publish, before a byte is written"
            )
    print()
    print("For the record (no goal): cached full / peer full, incremental / peer incremental:")
    for r in results:
        inc = r.m("peer_incremental")
        extra = (
            ""
            if inc != inc
            else f", incremental {r.m('incremental') / inc:.3f}"
            f", incremental + entry {r.m('incremental_entry') / inc:.3f}"
        )
        print(f"  {r.fmt}: cached {r.m('cached') / r.m('peer_full'):.3f}{extra}")
        print(
            f"  {r.fmt}: incremental + entry / our full "
            f"{r.m('incremental_entry') / r.m('full'):.3f}"
        )
        print(
            f"  {r.fmt}: recompute / peer full {r.m('recompute') / r.m('peer_full'):.3f}, "
            f"incremental / recompute {r.m('incremental') / r.m('recompute'):.4f}"
        )
        print(f"  {r.fmt}: first (no entry cached) / peer full {r.first / r.m('peer_full'):.3f}")
        if r.peer_alt:
            print(
                f"  {r.fmt}: peer' (createrepo_c default, + sqlite dbs) full {r.m('peer_alt'):.2f} s;"
                f" our full / peer' {r.m('full') / r.m('peer_alt'):.3f}"
            )
