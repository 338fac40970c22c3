"""Retention (gc) and integrity (scrub) of the artifact store."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from tests.integration.conftest import events, make_user, upload_generic

from packyard.bootstrap import Runtime
from packyard.domain.artifacts import ArtifactStatus
from packyard.domain.auth import Principal, Role
from packyard.domain.errors import NotFound
from packyard.services import artifacts, maintenance, promotions
from packyard.storage.blobs.local import LocalBlobStore

T0 = datetime(2024, 5, 1, 12, 0, 0)


def _retire(
    runtime: Runtime, *, principal: Principal, ref: str, status: ArtifactStatus, at: datetime
) -> None:
    with runtime.context(write=True) as ctx:
        ctx.now = lambda: at
        promotions.set_status(ctx, principal=principal, ref=ref, status=status, reason="broken")


def _store(runtime: Runtime) -> LocalBlobStore:
    store = runtime.blobs
    assert isinstance(store, LocalBlobStore)
    return store


def _age(path: Path, *, seconds: float) -> None:
    old = time.time() - seconds
    os.utime(path, (old, old))


def _exists(runtime: Runtime, sha: str) -> bool:
    with runtime.context() as ctx:
        try:
            artifacts.resolve(ctx, sha)
        except NotFound:
            return False
        return True


@pytest.fixture
def gc_runtime(make_runtime: Callable[..., Runtime]) -> Runtime:
    return make_runtime(retention={"keep_failed": 1, "keep_deprecated": 2})


@pytest.fixture
def gc_maintainer(gc_runtime: Runtime) -> Principal:
    principal, _ = make_user(gc_runtime, name="maint", role=Role.MAINTAINER)
    return principal


def test_gc_keeps_the_newest_retired_artifacts_of_each_package(
    gc_runtime: Runtime, gc_maintainer: Principal
) -> None:
    runtime, who = gc_runtime, gc_maintainer
    failed = [upload_generic(runtime, principal=who, version=f"1.{i}").sha256 for i in range(3)]
    deprecated = [upload_generic(runtime, principal=who, version=f"0.{i}").sha256 for i in range(3)]
    other = upload_generic(runtime, principal=who, name="other", version="1.0").sha256
    active = upload_generic(runtime, principal=who, version="2.0").sha256
    # Retire out of upload order: what counts is when the status changed.
    for minutes, sha in zip((30, 10, 20), failed, strict=True):
        _retire(
            runtime,
            principal=who,
            ref=sha,
            status=ArtifactStatus.FAILED,
            at=T0 + timedelta(minutes=minutes),
        )
    for minutes, sha in enumerate(deprecated):
        _retire(
            runtime,
            principal=who,
            ref=sha,
            status=ArtifactStatus.DEPRECATED,
            at=T0 + timedelta(minutes=minutes),
        )
    _retire(runtime, principal=who, ref=other, status=ArtifactStatus.FAILED, at=T0)

    with runtime.context() as ctx:
        plan = maintenance.plan_gc(ctx)

    doomed = [failed[2], failed[1], deprecated[0]]
    assert sorted(v.sha256 for v in plan.artifacts) == sorted(doomed)
    assert plan.bytes == sum(v.size for v in plan.artifacts) > 0
    assert {(v.package, v.status) for v in plan.artifacts} == {
        ("tool", "failed"),
        ("tool", "deprecated"),
    }

    with runtime.context(write=True) as ctx:
        assert maintenance.apply_gc(ctx, plan) == 3

    for sha in doomed:
        assert not _exists(runtime, sha)
    for sha in (failed[0], deprecated[1], deprecated[2], other, active):
        assert _exists(runtime, sha)
    deletions = events(runtime, action="artifact.delete")
    assert sorted(e.object_id for e in deletions) == sorted(doomed)
    assert {e.actor for e in deletions} == {"system:gc"}
    assert {e.reason for e in deletions} == {
        "retention: beyond the newest 1 failed artifacts of the package",
        "retention: beyond the newest 2 deprecated artifacts of the package",
    }
    with runtime.context() as ctx:
        assert maintenance.plan_gc(ctx).artifacts == []


def test_gc_plan_made_stale_by_a_status_change_is_not_applied(
    gc_runtime: Runtime, gc_maintainer: Principal
) -> None:
    runtime, who = gc_runtime, gc_maintainer
    shas = [upload_generic(runtime, principal=who, version=f"1.{i}").sha256 for i in range(2)]
    for i, sha in enumerate(shas):
        _retire(
            runtime,
            principal=who,
            ref=sha,
            status=ArtifactStatus.FAILED,
            at=T0 + timedelta(minutes=i),
        )
    with runtime.context() as ctx:
        plan = maintenance.plan_gc(ctx)
    [victim] = plan.artifacts
    _retire(runtime, principal=who, ref=victim.sha256, status=ArtifactStatus.DEPRECATED, at=T0)

    with runtime.context(write=True) as ctx:
        assert maintenance.apply_gc(ctx, plan) == 0

    assert _exists(runtime, victim.sha256)


def test_sweep_removes_unreferenced_blobs_only_after_the_grace_period(
    gc_runtime: Runtime, gc_maintainer: Principal
) -> None:
    runtime, who = gc_runtime, gc_maintainer
    store = _store(runtime)
    kept = upload_generic(runtime, principal=who, version="1.0").sha256
    gone = upload_generic(runtime, principal=who, version="1.1").sha256
    _retire(runtime, principal=who, ref=gone, status=ArtifactStatus.FAILED, at=T0)
    _retire(
        runtime, principal=who, ref=kept, status=ArtifactStatus.FAILED, at=T0 + timedelta(minutes=1)
    )
    with runtime.context(write=True) as ctx:
        assert maintenance.apply_gc(ctx, maintenance.plan_gc(ctx)) == 1
    _age(store.path_for(kept), seconds=2 * 3600)

    with runtime.context() as ctx:
        young = maintenance.sweep_blobs(ctx, dry_run=False)
    assert young.blobs == []
    assert store.exists(gone)

    _age(store.path_for(gone), seconds=maintenance.BLOB_GRACE_SECONDS + 60)
    with runtime.context() as ctx:
        dry = maintenance.sweep_blobs(ctx, dry_run=True)
    assert dry.blobs == [gone]
    assert store.exists(gone)

    with runtime.context() as ctx:
        swept = maintenance.sweep_blobs(ctx, dry_run=False)
    assert swept.blobs == [gone]
    assert swept.bytes > 0
    assert not store.exists(gone)
    assert store.exists(kept)
    assert set(store.iter_hashes()) == {kept}


def test_sweep_removes_only_stale_temporary_files(runtime: Runtime) -> None:
    store = _store(runtime)
    stale = store.tmp_dir / "upload-crashed"
    fresh = store.tmp_dir / "upload-in-flight"
    stale.write_bytes(b"half an upload")
    fresh.write_bytes(b"still arriving")
    _age(stale, seconds=25 * 3600)

    with runtime.context() as ctx:
        report = maintenance.sweep_blobs(ctx, dry_run=False)

    assert report.temp_files == 1
    assert not stale.exists()
    assert fresh.exists()


def test_sweep_keeps_blobs_derived_for_publishing(runtime: Runtime, uploader: Principal) -> None:
    from packyard.storage.db.models import DerivedBlob

    artifact = upload_generic(runtime, principal=uploader)
    writer = runtime.blobs.writer()
    writer.write(b"a re-signed copy of the artifact")
    derived = writer.commit()
    orphan = runtime.blobs.writer()
    orphan.write(b"nobody refers to me")
    orphan_blob = orphan.commit()
    with runtime.context(write=True) as ctx:
        ctx.repos.publishing.add_derived(
            DerivedBlob(
                artifact_id=ctx.repos.artifacts.by_sha256(artifact.sha256).id,
                kind="rpm-signed:X",
                sha256=derived.sha256,
                size=derived.size,
                created_at=ctx.now(),
            )
        )
    with runtime.context() as ctx:
        report = maintenance.sweep_blobs(ctx, dry_run=False, grace_seconds=0)
    assert report.blobs == [orphan_blob.sha256]
    assert runtime.blobs.exists(derived.sha256)
    assert runtime.blobs.exists(artifact.sha256)
