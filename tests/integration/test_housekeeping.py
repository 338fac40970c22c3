"""Republishing that no stage change asks for (services/housekeeping.py): channels signed by
keys that no longer sign, and apt channels whose Valid-Until is half gone, are queued for a
publish and, once that job ran, are no longer due — on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import io
import tarfile
from collections.abc import Callable
from datetime import timedelta

import pytest
from tests.integration.conftest import upload_bytes

from packyard.bootstrap import Runtime
from packyard.demo.builders import deb_bytes, pacman_bytes
from packyard.domain.auth import SYSTEM
from packyard.domain.errors import InvalidArtifact
from packyard.integrations.gpg import verify_clearsigned_with_keyring, verify_with_keyring
from packyard.jobs.runner import run_job
from packyard.services import housekeeping, promotions, publish
from packyard.services.context import utcnow
from packyard.services.keys import ensure_signing_key, key_rows, rotate_signing_key


class Queue:
    """The JobQueue port, run by hand: the test runs what was queued, when it chooses."""

    def __init__(self) -> None:
        self.queued: list[int] = []

    def enqueue(self, job_id: int) -> None:
        self.queued.append(job_id)

    def run_all(self, runtime: Runtime) -> None:
        while self.queued:
            run_job(runtime, self.queued.pop(0))


def _runtime(
    make_runtime: Callable[..., Runtime], **settings: object
) -> tuple[Runtime, Queue, list[str]]:
    """A deb and a pacman package in ci, apt/ci and pacman/ci published; returns their shas."""
    runtime = make_runtime(**settings)
    shas = []
    queue = Queue()
    runtime.jobs = queue
    with runtime.context(write=True) as ctx:
        ensure_signing_key(ctx)
    for data, filename in (
        (
            deb_bytes(
                name="hk",
                version="1.0-1",
                description="x",
                maintainer="T <t@example.com>",
                files={"usr/hk": b"x"},
            ),
            "hk_1.0-1_all.deb",
        ),
        (
            pacman_bytes(name="hk", version="1.0-1", description="x", files={"usr/hk": b"x"}),
            "hk-1.0-1-any.pkg.tar.zst",
        ),
    ):
        sha = upload_bytes(runtime, principal=SYSTEM, data=data, filename=filename).artifact.sha256
        shas.append(sha)
        with runtime.context(write=True) as ctx:
            promotions.promote(ctx, principal=SYSTEM, ref=sha, stage="ci")
    queue.run_all(runtime)  # the uploads' and promotions' own publishes
    with runtime.context() as ctx:  # as a first start's initial publish records it
        layout = publish.layout_signature(ctx)
    assert runtime.publications is not None
    runtime.publications.set_marker(publish.LAYOUT_MARKER, layout)
    return runtime, queue, shas


def _published(runtime: Runtime) -> set[str]:
    with runtime.context() as ctx:
        return {p.channel for p in ctx.repos.publishing.publications(status="current", limit=500)}


def sorted_channels(runtime: Runtime, names: set[str]) -> list[str]:
    """``names`` in the order channels are listed (stage by stage, formats in order)."""
    with runtime.context() as ctx:
        return [c.name for c in publish.channels(ctx) if c.name in names]


def _due(runtime: Runtime) -> list[tuple[str, str]]:
    with runtime.context() as ctx:
        return [(d.channel.name, d.trigger) for d in housekeeping.due(ctx)]


def _schedule(runtime: Runtime) -> int:
    with runtime.context(write=True) as ctx:
        return len(housekeeping.schedule_due(ctx))


def _signed_by(runtime: Runtime, channel: str) -> list[str]:
    with runtime.context() as ctx:
        [current] = ctx.repos.publishing.publications(channel=channel, status="current")
        return list(current.signed_by)


def test_a_key_transition_that_ends_is_published_without_the_old_key(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime, queue, [_deb, pacman_sha] = _runtime(make_runtime)
    assert runtime.publications is not None and runtime.signer is not None
    assert _due(runtime) == []
    [old] = _signed_by(runtime, "apt/ci")
    with runtime.context(write=True) as ctx:
        new = rotate_signing_key(ctx, principal=SYSTEM, transition_days=30).fingerprint
    # (The API queues a publish of every stage after a rotation; left to housekeeping here.)
    keys_changed = housekeeping.TRIGGER_KEYS
    published = _published(runtime)
    assert {"apt/ci", "pacman/ci", "apt/new"} <= published
    assert _due(runtime) == [(name, keys_changed) for name in sorted_channels(runtime, published)]
    scheduled = _schedule(runtime)
    queued = list(queue.queued)
    assert scheduled == len(queued) >= 1
    _schedule(runtime)  # a second check (or server) before the jobs ran: coalesced
    assert queue.queued == queued
    queue.run_all(runtime)
    assert _signed_by(runtime, "apt/ci") == [new, old]
    assert _due(runtime) == []

    # The transition ends (its time passes): the next check drops the old key everywhere.
    with runtime.context(write=True) as ctx:
        for row in key_rows(ctx):
            if row.fingerprint == old:
                row.retire_after = utcnow() - timedelta(seconds=1)
    assert _due(runtime) == [(name, keys_changed) for name in sorted_channels(runtime, published)]
    _schedule(runtime)
    queue.run_all(runtime)
    assert _signed_by(runtime, "apt/ci") == [new]
    assert _signed_by(runtime, "pacman/ci") == [new]
    assert _due(runtime) == []
    only_new = runtime.signer.public_key([new])
    only_old = runtime.signer.public_key([old])
    inrelease = runtime.publications.file("apt", "ci", "dists/ci/InRelease")
    assert inrelease is not None
    assert verify_clearsigned_with_keyring(inrelease.read_bytes(), public_keys=only_new)
    with pytest.raises(InvalidArtifact):
        verify_clearsigned_with_keyring(inrelease.read_bytes(), public_keys=only_old)
    # pacman's database and its package signatures are the new key's (signed again).
    db = runtime.publications.file("pacman", "ci", "x86_64/packyard-ci.db")
    sig = runtime.publications.file("pacman", "ci", "x86_64/packyard-ci.db.sig")
    assert db is not None and sig is not None
    assert verify_with_keyring(db.read_bytes(), sig.read_bytes(), public_keys=only_new) == [new]
    package = runtime.blobs.local_path(pacman_sha)
    assert package is not None
    package_sig = base64.b64decode(_pacman_field(db.read_bytes(), "PGPSIG"))
    assert verify_with_keyring(package, package_sig, public_keys=only_new) == [new]


def _pacman_field(db: bytes, name: str) -> str:
    with tarfile.open(fileobj=io.BytesIO(db), mode="r:gz") as tar:
        [member] = [m for m in tar.getmembers() if m.name.endswith("/desc")]
        handle = tar.extractfile(member)
        assert handle is not None
        desc = handle.read().decode()
    return desc.split(f"%{name}%\n", 1)[1].split("\n", 1)[0]


def test_apt_channels_are_signed_again_before_valid_until(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime, queue, _shas = _runtime(make_runtime, publish={"apt": {"valid_days": 2}})
    assert _due(runtime) == []
    first = _signed_by(runtime, "apt/ci")
    with runtime.context() as ctx:
        [before] = ctx.repos.publishing.publications(channel="apt/ci", status="current")
        snapshot = before.snapshot
    # A day (half of the two) passes without a promotion: apt/ci is due, pacman/ci is not.
    with runtime.context(write=True) as ctx:
        [current] = ctx.repos.publishing.publications(channel="apt/ci", status="current")
        current.created_at -= timedelta(days=1, seconds=1)
    assert _due(runtime) == [("apt/ci", housekeeping.TRIGGER_VALID_UNTIL)]
    assert _schedule(runtime) == 1
    queue.run_all(runtime)
    with runtime.context() as ctx:
        [after] = ctx.repos.publishing.publications(channel="apt/ci", status="current")
        assert after.snapshot != snapshot
        assert after.trigger == housekeeping.TRIGGER_VALID_UNTIL
    assert _signed_by(runtime, "apt/ci") == first
    assert _due(runtime) == []


def test_channels_published_by_an_older_version_are_published_again(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime, queue, _shas = _runtime(make_runtime)
    assert runtime.publications is not None
    assert _due(runtime) == []
    # An upgrade: the channels on disk were written by a version with other entry kinds.
    runtime.publications.set_marker(publish.LAYOUT_MARKER, "1;packet=packet,files=files")
    published = _published(runtime)
    upgrade = housekeeping.TRIGGER_UPGRADE
    assert _due(runtime) == [(name, upgrade) for name in sorted_channels(runtime, published)]
    assert _schedule(runtime) >= 1
    with runtime.context() as ctx:
        assert runtime.publications.marker(publish.LAYOUT_MARKER) == publish.layout_signature(ctx)
    assert _due(runtime) == []  # once: the jobs are queued
    queue.run_all(runtime)
    with runtime.context() as ctx:
        [current] = ctx.repos.publishing.publications(channel="apt/ci", status="current")
        assert current.trigger == upgrade
    # With publish.auto off, nothing is queued behind the operator's back.
    manual, manual_queue, _ = _runtime(make_runtime, publish={"auto": False})
    assert manual.publications is not None
    manual.publications.set_marker(publish.LAYOUT_MARKER, "older")
    assert _schedule(manual) == 0 and manual_queue.queued == []
