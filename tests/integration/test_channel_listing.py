"""Cached channel listings (services/publish.ChannelListings) stay equal to a fresh query
whatever changes the channel: the database triggers of migration 0004 feed every change."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import delete, select, text, update
from tests.integration.conftest import upload_bytes

from packyard.bootstrap import Runtime
from packyard.demo.builders import deb_bytes
from packyard.domain.artifacts import ArtifactStatus
from packyard.domain.auth import SYSTEM
from packyard.services import promotions, publish
from packyard.services.keys import ensure_signing_key
from packyard.storage.db.models import Artifact, MembershipChange, Package, StageEntry

APT_CI = publish.ChannelQuery(stage="ci", formats=("deb",), kind="apt:main:v3", with_pipeline=True)


def _deb(runtime: Runtime, name: str, version: str = "1.0-1") -> str:
    data = deb_bytes(
        name=name,
        version=version,
        description=f"{name}\n listing test",
        maintainer="Tests <t@example.com>",
        files={f"usr/share/{name}": version.encode()},
    )
    return upload_bytes(
        runtime, principal=SYSTEM, data=data, filename=f"{name}_{version}_all.deb"
    ).artifact.sha256


def _promote(runtime: Runtime, sha: str, stage: str = "ci") -> None:
    with runtime.context(write=True) as ctx:
        promotions.promote(ctx, principal=SYSTEM, ref=sha, stage=stage)


def _cached_equals_fresh(runtime: Runtime, query: publish.ChannelQuery = APT_CI) -> list[str]:
    """The cached listing after its update, checked against a fresh query; returns names."""
    with runtime.context() as ctx:
        rows, items, identity = publish._listings.get(ctx, query)
        fresh = query.rows(ctx)
        assert rows == fresh
        assert items == query.items(ctx, fresh)
        assert identity == {i.id: i.sha256 for i in items}
    return [r[3] for r in rows]


def test_the_cached_listing_follows_every_kind_of_change(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime()
    with runtime.context(write=True) as ctx:
        ensure_signing_key(ctx)
    shas = {name: _deb(runtime, name) for name in ("delta", "alpha", "charlie", "bravo")}
    for name in ("delta", "alpha", "charlie"):
        _promote(runtime, shas[name])
    assert _cached_equals_fresh(runtime) == ["alpha", "charlie", "delta"]  # listed afresh

    _promote(runtime, shas["bravo"])  # a stage entry added: lands in name order
    assert _cached_equals_fresh(runtime) == ["alpha", "bravo", "charlie", "delta"]

    with runtime.context(write=True) as ctx:  # a stage entry removed
        promotions.demote(ctx, principal=SYSTEM, ref=shas["charlie"], stage="ci")
    assert _cached_equals_fresh(runtime) == ["alpha", "bravo", "delta"]

    with runtime.context(write=True) as ctx:  # an artifact's status changed
        promotions.set_status(
            ctx, principal=SYSTEM, ref=shas["delta"], status=ArtifactStatus.FAILED, reason="t"
        )
    assert _cached_equals_fresh(runtime) == ["alpha", "bravo"]

    # Index entries written by a publish: the rows' "has an entry" column follows.
    with runtime.context() as ctx:
        rows, _items, _identity = publish._listings.get(ctx, APT_CI)
        assert [r[7] for r in rows] == [None, None]
    publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    _cached_equals_fresh(runtime)
    with runtime.context() as ctx:
        rows, _items, _identity = publish._listings.get(ctx, APT_CI)
        assert all(r[7] is not None for r in rows)

    with runtime.context(write=True) as ctx:  # a package moved to another pipeline
        ctx.repos.session.execute(
            update(Package).where(Package.name == "alpha").values(pipeline="elsewhere")
        )
    _cached_equals_fresh(runtime)
    with runtime.context() as ctx:
        _rows, items, _identity = publish._listings.get(ctx, APT_CI)
        assert [i.pipeline for i in items] == ["elsewhere", "default"]

    with runtime.context(write=True) as ctx:  # an artifact deleted outright (by an operator)
        artifact_id = ctx.repos.session.execute(
            select(Artifact.id).where(Artifact.sha256 == shas["bravo"])
        ).scalar_one()
        ctx.repos.session.execute(delete(StageEntry).where(StageEntry.artifact_id == artifact_id))
        ctx.repos.session.execute(
            text("DELETE FROM index_entries WHERE artifact_id = :i"), {"i": artifact_id}
        )
        ctx.repos.session.execute(delete(Artifact).where(Artifact.id == artifact_id))
    assert _cached_equals_fresh(runtime) == ["alpha"]


def test_a_listing_too_old_or_too_changed_is_made_afresh(
    make_runtime: Callable[..., Runtime], monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = make_runtime()
    for name in ("one", "two", "three"):
        _promote(runtime, _deb(runtime, name))
    _cached_equals_fresh(runtime)
    monkeypatch.setattr(publish.ChannelListings, "MAX_CHANGES", 1)
    for name in ("four", "five"):
        _promote(runtime, _deb(runtime, name))
    assert _cached_equals_fresh(runtime) == ["five", "four", "one", "three", "two"]
    # The feed is pruned after an hour; a listing older than MAX_AGE never relies on it.
    monkeypatch.setattr(publish.ChannelListings, "MAX_AGE", 0.0)
    with runtime.context(write=True) as ctx:
        ctx.repos.session.execute(delete(MembershipChange))
    _promote(runtime, _deb(runtime, "six"))
    with runtime.context(write=True) as ctx:
        ctx.repos.session.execute(delete(MembershipChange))
    assert "six" in _cached_equals_fresh(runtime)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_change_committed_after_a_later_one_is_not_missed(
    make_runtime: Callable[..., Runtime],
) -> None:
    """PostgreSQL: a writer that started first may commit last, with the smaller id."""
    runtime = make_runtime()
    slow, fast = _deb(runtime, "slow"), _deb(runtime, "fast")
    _cached_equals_fresh(runtime)  # listed (empty): the marker is taken
    promoted = threading.Event()
    release = threading.Event()

    def slow_writer() -> None:
        # A bare stage entry, not promotions.promote: audited writes queue on the audit
        # chain's head row, so they commit in order anyway.
        with runtime.context(write=True) as ctx:
            artifact = ctx.repos.session.execute(
                select(Artifact).where(Artifact.sha256 == slow)
            ).scalar_one()
            ctx.repos.session.add(
                StageEntry(
                    artifact_id=artifact.id, stage="ci", entered_at=ctx.now(), entered_by="t"
                )
            )
            ctx.repos.session.flush()  # its feed rows exist, uncommitted
            promoted.set()
            assert release.wait(30)

    thread = threading.Thread(target=slow_writer)
    thread.start()
    assert promoted.wait(30)
    _promote(runtime, fast)  # starts later, commits first
    assert _cached_equals_fresh(runtime) == ["fast"]  # "slow" is not committed yet
    release.set()
    thread.join(30)
    assert _cached_equals_fresh(runtime) == ["fast", "slow"]


def test_a_listing_found_out_of_order_is_made_afresh(make_runtime: Callable[..., Runtime]) -> None:
    runtime = make_runtime()
    shas = [_deb(runtime, name) for name in ("one", "two", "three")]
    for sha in shas:
        _promote(runtime, sha)
    _cached_equals_fresh(runtime)
    with runtime.context() as ctx:  # damage the cached copy: "two" where "one" belongs
        rows, _items, _identity = publish._listings.get(ctx, APT_CI)
        rows[0], rows[2] = rows[2], rows[0]
    with runtime.context(write=True) as ctx:
        promotions.demote(ctx, principal=SYSTEM, ref=shas[0], stage="ci")
    assert _cached_equals_fresh(runtime) == ["three", "two"]
