"""Retention (gc) and integrity (scrub) of the artifact store.

gc runs in two steps so that a blob is never deleted while a row still points at it: first
``plan_gc`` + ``apply_gc`` delete the retired artifacts' rows (the caller commits), then
``sweep_blobs`` removes blobs no row references, but only those older than a grace period,
because an upload in flight renames its blob into place shortly before its row commits.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby

from packyard.domain.artifacts import ArtifactStatus
from packyard.services.audit import record
from packyard.services.context import Context

__all__ = [
    "GcPlan",
    "ScrubProblem",
    "ScrubReport",
    "SweepReport",
    "apply_gc",
    "plan_gc",
    "prune_index_cache",
    "scrub",
    "sweep_blobs",
]

BLOB_GRACE_SECONDS = 3600.0


@dataclass(frozen=True, kw_only=True)
class GcVictim:
    sha256: str
    package: str
    name: str
    version: str
    status: str
    size: int


@dataclass(frozen=True, kw_only=True)
class GcPlan:
    artifacts: list[GcVictim]

    @property
    def bytes(self) -> int:
        return sum(v.size for v in self.artifacts)


def plan_gc(ctx: Context) -> GcPlan:
    """Failed and deprecated artifacts beyond the newest N of each per package."""
    keep = {
        ArtifactStatus.FAILED.value: ctx.settings.retention.keep_failed,
        ArtifactStatus.DEPRECATED.value: ctx.settings.retention.keep_deprecated,
    }
    victims: list[GcVictim] = []
    for status, n in keep.items():
        retired = ctx.repos.artifacts.retired(status=status)
        for _package_id, group in groupby(retired, key=lambda a: a.package_id):
            for artifact in list(group)[n:]:
                victims.append(
                    GcVictim(
                        sha256=artifact.sha256,
                        package=artifact.package.name,
                        name=artifact.name,
                        version=artifact.version,
                        status=artifact.status,
                        size=artifact.size,
                    )
                )
    return GcPlan(artifacts=victims)


def apply_gc(ctx: Context, plan: GcPlan) -> int:
    """Delete the planned artifacts' rows, recording each deletion."""
    deleted = 0
    kept = {
        "failed": ctx.settings.retention.keep_failed,
        "deprecated": ctx.settings.retention.keep_deprecated,
    }
    for victim in plan.artifacts:
        artifact = ctx.repos.artifacts.by_sha256(victim.sha256)
        if artifact is None or artifact.status != victim.status:
            continue
        ctx.repos.artifacts.delete(artifact)
        record(
            ctx,
            actor="system:gc",
            action="artifact.delete",
            object_type="artifact",
            object_id=victim.sha256,
            before={"package": victim.package, "version": victim.version, "status": victim.status},
            reason=f"retention: beyond the newest {kept[victim.status]} {victim.status} "
            "artifacts of the package",
        )
        deleted += 1
    return deleted


@dataclass(frozen=True, kw_only=True)
class SweepReport:
    blobs: list[str]
    bytes: int
    temp_files: int


def sweep_blobs(
    ctx: Context, *, dry_run: bool, grace_seconds: float = BLOB_GRACE_SECONDS
) -> SweepReport:
    """Remove blobs no artifact references (older than the grace period) and stale temp files."""
    # Package icons (web UI) live in the same content-addressed store.
    referenced = (
        ctx.repos.artifacts.all_sha256()
        | ctx.repos.packages.icon_sha256s()
        # Files derived for publishing (re-signed rpms) live as long as their artifact.
        | ctx.repos.publishing.derived_hashes()
    )
    cutoff = time.time() - grace_seconds
    orphans: list[str] = []
    total = 0
    for sha in ctx.blobs.iter_hashes():
        if sha in referenced:
            continue
        path = ctx.blobs.local_path(sha)
        if path is not None and path.stat().st_mtime > cutoff:
            continue
        size = ctx.blobs.size(sha)
        orphans.append(sha)
        total += size
        if not dry_run:
            ctx.blobs.delete(sha)
    temp = 0
    if not dry_run:
        temp = ctx.blobs.clean_temp(
            older_than_seconds=ctx.settings.retention.tmp_max_age_hours * 3600
        )
    return SweepReport(blobs=orphans, bytes=total, temp_files=temp)


#: Cached index blocks unused for this long are deleted by gc (publishing rebuilds them).
INDEX_CACHE_MAX_AGE_SECONDS = 30 * 86400.0


def prune_index_cache(
    ctx: Context, *, dry_run: bool, older_than_seconds: float = INDEX_CACHE_MAX_AGE_SECONDS
) -> tuple[int, int]:
    """Delete compressed index blocks (services/assembly.py) unused for a month: (files, bytes).
    Blocks are derived data; one still needed is rebuilt by the next publish."""
    if ctx.publications is None:
        return 0, 0
    return ctx.publications.cache_prune(older_than_seconds=older_than_seconds, dry_run=dry_run)


@dataclass(frozen=True, kw_only=True)
class ScrubProblem:
    sha256: str
    problem: str


@dataclass(kw_only=True)
class ScrubReport:
    checked: int = 0
    bytes: int = 0
    problems: list[ScrubProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def scrub(ctx: Context, *, progress: Callable[[int], None] | None = None) -> ScrubReport:
    """Re-hash every artifact's blob; report missing, truncated or corrupt ones."""
    report = ScrubReport()
    for sha, size in ctx.repos.artifacts.iter_for_scrub():
        report.checked += 1
        if not ctx.blobs.exists(sha):
            report.problems.append(ScrubProblem(sha256=sha, problem="missing"))
            if progress:
                progress(size)
            continue
        digest = hashlib.sha256()
        seen = 0
        with ctx.blobs.open(sha) as stream:
            while chunk := stream.read(1024 * 1024):
                digest.update(chunk)
                seen += len(chunk)
                if progress:
                    progress(len(chunk))
        report.bytes += seen
        if seen != size:
            report.problems.append(
                ScrubProblem(sha256=sha, problem=f"size {seen} != recorded {size}")
            )
        elif digest.hexdigest() != sha:
            report.problems.append(
                ScrubProblem(sha256=sha, problem=f"content hashes to {digest.hexdigest()[:12]}…")
            )
    return report
