"""Publishing at the service level: full versus incremental publishes, pruning of old
snapshots and rollback — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

from tests.integration.conftest import events, upload_bytes

from packyard.bootstrap import Runtime
from packyard.demo.builders import deb_bytes
from packyard.domain.auth import SYSTEM
from packyard.services import promotions, publish
from packyard.services.keys import ensure_signing_key


def _ready(make_runtime: Callable[..., Runtime], **settings: object) -> Runtime:
    runtime = make_runtime(**settings)
    with runtime.context(write=True) as ctx:
        ensure_signing_key(ctx)
    return runtime


def _deb(runtime: Runtime, version: str) -> str:
    data = deb_bytes(
        name="pub-test",
        version=version,
        description="publish test\n more",
        maintainer="Tests <t@example.com>",
        files={"usr/share/pub-test": b"x"},
    )
    sha = upload_bytes(
        runtime, principal=SYSTEM, data=data, filename=f"pub-test_{version}_all.deb"
    ).artifact.sha256
    with runtime.context(write=True) as ctx:
        promotions.promote(ctx, principal=SYSTEM, ref=sha, stage="ci")
    return sha


def _packages(runtime: Runtime) -> bytes:
    assert runtime.publications is not None
    path = runtime.publications.file("apt", "ci", "dists/ci/main/binary-amd64/Packages")
    assert path is not None
    return path.read_bytes()


def test_full_and_incremental_publishes_agree(make_runtime: Callable[..., Runtime]) -> None:
    runtime = _ready(make_runtime)
    _deb(runtime, "1.0-1")
    [first] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    assert (first.artifact_count, first.new_entries) == (1, 1)
    _deb(runtime, "1.1-1")
    [incremental] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    assert (incremental.artifact_count, incremental.new_entries) == (2, 1)  # only the new one
    packages = _packages(runtime)
    [full] = publish.publish(runtime.context, stages=["ci"], formats=["apt"], full=True)
    assert (full.artifact_count, full.new_entries) == (2, 2)  # everything recomputed
    assert _packages(runtime) == packages  # ... to the same index
    assert packages.count(b"Package: pub-test") == 2

    with runtime.context() as ctx:
        [status] = publish.channel_status(ctx, channel="apt/ci")
        assert status.current is not None and status.current.snapshot == full.snapshot
        assert [p.status for p in status.history] == ["current", "superseded", "superseded"]
    assert len(events(runtime, action="publication.create")) == 3


def test_old_snapshots_are_pruned_and_rollback_switches_back(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = _ready(make_runtime, publish={"keep_snapshots": 2})
    snapshots = []
    for version in ("1.0-1", "1.1-1", "1.2-1"):
        _deb(runtime, version)
        [result] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
        snapshots.append(result.snapshot)
    assert runtime.publications is not None
    assert runtime.publications.snapshots("apt", "ci") == sorted(snapshots[1:])  # oldest pruned
    with runtime.context() as ctx:
        statuses = {
            p.snapshot: p.status for p in ctx.repos.publishing.publications(channel="apt/ci")
        }
    assert statuses[snapshots[0]] == "pruned"

    with runtime.context(write=True) as ctx:
        back = publish.rollback(ctx, principal=SYSTEM, channel="apt/ci")
    assert back.snapshot == snapshots[1]
    assert runtime.publications.current("apt", "ci") == snapshots[1]
    assert _packages(runtime).count(b"Package: pub-test") == 2
    assert [e.after for e in events(runtime, action="publication.rollback")] == [
        {"snapshot": snapshots[1]}
    ]
