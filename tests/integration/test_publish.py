"""Publishing at the service level: full versus incremental publishes, pruning of old
snapshots and rollback — on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import lzma
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from tests.integration.conftest import events, upload_bytes

from packyard.bootstrap import Runtime
from packyard.demo.builders import deb_bytes, pacman_bytes
from packyard.domain.auth import SYSTEM
from packyard.domain.errors import InvalidArtifact, InvalidRequest
from packyard.integrations.gpg import verify_clearsigned_with_keyring, verify_with_keyring
from packyard.services import promotions, publish, rollback
from packyard.services.keys import ensure_signing_key, rotate_signing_key, signing_keys


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
    # A full publish rebuilds every index from the stored entries, without computing them.
    assert (full.artifact_count, full.new_entries) == (2, 0)
    assert full.rebuilt_blocks >= 1
    assert _packages(runtime) == packages  # ... to the same index
    [again] = publish.publish(runtime.context, stages=["ci"], formats=["apt"], recompute=True)
    assert (again.artifact_count, again.new_entries) == (2, 2)  # re-read from the package files
    assert _packages(runtime) == packages
    assert packages.count(b"Package: pub-test") == 2

    with runtime.context() as ctx:
        [status] = publish.channel_status(ctx, channel="apt/ci")
        assert status.current is not None and status.current.snapshot == again.snapshot
        assert [p.status for p in status.history] == ["current", *["superseded"] * 3]
    assert len(events(runtime, action="publication.create")) == 4


def _release(runtime: Runtime, snapshot: str | None = None) -> bytes:
    assert runtime.publications is not None
    path = runtime.publications.file("apt", "ci", "dists/ci/Release", snapshot=snapshot)
    assert path is not None
    return path.read_bytes()


def _field(release: bytes, name: str) -> str:
    [value] = [
        line.split(b": ", 1)[1].decode()
        for line in release.splitlines()
        if line.startswith(name.encode() + b": ")
    ]
    return value


def test_old_snapshots_are_pruned(make_runtime: Callable[..., Runtime]) -> None:
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
    assert statuses == {snapshots[0]: "pruned", snapshots[1]: "superseded", snapshots[2]: "current"}


def test_rollback_serves_earlier_content_re_dated_and_re_signed(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = _ready(make_runtime, publish={"keep_snapshots": 10, "apt": {"valid_days": 7}})
    assert runtime.publications is not None and runtime.signer is not None
    snapshots, packages = [], []
    for version in ("1.0-1", "1.1-1", "1.2-1"):
        _deb(runtime, version)
        [result] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
        snapshots.append(result.snapshot)
        packages.append(_packages(runtime))
    before = datetime.now(UTC).replace(microsecond=0)
    with runtime.context(write=True) as ctx:
        back = rollback.rollback(ctx, principal=SYSTEM, channel="apt/ci")
        assert rollback.rollback_of(ctx, back) == snapshots[1]
    # A new snapshot with the content of the one before, its Release dated now.
    assert back.snapshot not in snapshots and back.trigger == "rollback"
    assert runtime.publications.current("apt", "ci") == back.snapshot
    assert _packages(runtime) == packages[1]
    release = _release(runtime)
    dated = parsedate_to_datetime(_field(release, "Date"))
    assert dated >= before
    assert parsedate_to_datetime(_field(release, "Valid-Until")) == dated + timedelta(days=7)
    old = _release(runtime, snapshots[1])
    assert release.split(b"SHA256:")[1] == old.split(b"SHA256:")[1]  # the same indexes
    # Signed anew: InRelease is this Release, and both signatures verify.
    inrelease = runtime.publications.file("apt", "ci", "dists/ci/InRelease")
    detached = runtime.publications.file("apt", "ci", "dists/ci/Release.gpg")
    assert inrelease is not None and detached is not None
    public = runtime.signer.public_key()
    verified = verify_clearsigned_with_keyring(inrelease.read_bytes(), public_keys=public)
    assert verified.text == release
    assert verify_with_keyring(release, detached.read_bytes(), public_keys=public)

    # Back again goes further back (from the content served), not to the copy's neighbour.
    with runtime.context(write=True) as ctx:
        again = rollback.rollback(ctx, principal=SYSTEM, channel="apt/ci")
        assert rollback.rollback_of(ctx, again) == snapshots[0]
    assert _packages(runtime) == packages[0]
    with runtime.context(write=True) as ctx:
        latest = rollback.rollback(ctx, principal=SYSTEM, channel="apt/ci", to=snapshots[2][:20])
        assert rollback.rollback_of(ctx, latest) == snapshots[2]
    assert _packages(runtime) == packages[2]
    with runtime.context() as ctx:
        statuses = {
            p.snapshot: p.status for p in ctx.repos.publishing.publications(channel="apt/ci")
        }
    assert [statuses[s] for s in snapshots] == ["superseded", "superseded", "rolled_back"]
    assert [statuses[p.snapshot] for p in (back, again, latest)] == [
        "rolled_back",
        "rolled_back",
        "current",
    ]
    assert [e.after["content_of"] for e in events(runtime, action="publication.rollback")] == [
        snapshots[1],
        snapshots[0],
        snapshots[2],
    ]
    # The next publish builds from the stages again.
    _deb(runtime, "1.3-1")
    publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    assert _packages(runtime).count(b"Package: pub-test") == 4


def test_rollback_re_signs_with_todays_keys_or_refuses(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = _ready(make_runtime, publish={"keep_snapshots": 10})
    assert runtime.publications is not None and runtime.signer is not None
    _deb(runtime, "1.0-1")
    [old_apt] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    data = pacman_bytes(name="roll-pac", version="1.0-1", description="x", files={"a": b"x"})
    sha = upload_bytes(runtime, principal=SYSTEM, data=data, filename="roll-pac.pkg.tar.zst")
    with runtime.context(write=True) as ctx:
        promotions.promote(ctx, principal=SYSTEM, ref=sha.artifact.sha256, stage="ci")
    [old_pacman] = publish.publish(runtime.context, stages=["ci"], formats=["pacman"])
    with runtime.context(write=True) as ctx:
        old_key = signing_keys(ctx)
        new_key = rotate_signing_key(ctx, principal=SYSTEM, transition_days=0).fingerprint
    _deb(runtime, "1.1-1")
    publish.publish(runtime.context, stages=["ci"], formats=["apt", "pacman"])

    # apt: the old content, signed by the new key only (the old one no longer signs).
    with runtime.context(write=True) as ctx:
        back = rollback.rollback(ctx, principal=SYSTEM, channel="apt/ci", to=old_apt.snapshot)
    assert back.signed_by == [new_key]
    inrelease = runtime.publications.file("apt", "ci", "dists/ci/InRelease")
    assert inrelease is not None
    only_new = runtime.signer.public_key([new_key])
    assert verify_clearsigned_with_keyring(inrelease.read_bytes(), public_keys=only_new)
    with pytest.raises(InvalidArtifact):
        verify_clearsigned_with_keyring(
            inrelease.read_bytes(), public_keys=runtime.signer.public_key(old_key)
        )
    # pacman: its packages carry the old key's signatures; refused, nothing changes.
    live = runtime.publications.current("pacman", "ci")
    with runtime.context(write=True) as ctx, pytest.raises(InvalidRequest) as refused:
        rollback.rollback(ctx, principal=SYSTEM, channel="pacman/ci", to=old_pacman.snapshot)
    assert "no longer signs" in refused.value.message
    assert "packyard publish" in (refused.value.hint or "")
    assert runtime.publications.current("pacman", "ci") == live
    assert len(runtime.publications.snapshots("pacman", "ci")) == 2


def _into_ci(runtime: Runtime, data: bytes, filename: str) -> None:
    """Upload a package and promote it into ci."""
    sha = upload_bytes(runtime, principal=SYSTEM, data=data, filename=filename).artifact.sha256
    with runtime.context(write=True) as ctx:
        promotions.promote(ctx, principal=SYSTEM, ref=sha, stage="ci")


def _many_debs(runtime: Runtime, count: int, *, start: int = 0) -> None:
    for i in range(start, start + count):
        data = deb_bytes(
            name=f"blk-{i:03d}",
            version="1.0-1",
            description=f"block test {i}\n more",
            maintainer="Tests <t@example.com>",
            files={f"usr/share/blk-{i:03d}": b"x"},
        )
        _into_ci(runtime, data, f"blk-{i:03d}_1.0-1_all.deb")


def _apt_files(runtime: Runtime) -> dict[str, bytes]:
    assert runtime.publications is not None
    base = "dists/ci/main/binary-amd64/Packages"
    out = {}
    for suffix in ("", ".gz", ".xz"):
        path = runtime.publications.file("apt", "ci", base + suffix)
        assert path is not None
        out[suffix] = path.read_bytes()
    return out


def _published_in_blocks(
    make_runtime: Callable[..., Runtime],
) -> tuple[Runtime, dict[str, bytes], Path]:
    """12 debs in ci published in blocks of 4: the runtime, the apt index files, the cache
    (on disk only, as a freshly started process finds it)."""
    runtime = _ready(make_runtime, publish={"block_entries": 4, "block_cache_memory_mb": 0})
    _many_debs(runtime, 12)
    publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    assert runtime.publications is not None
    cache: Path = runtime.publications.root / ".cache"  # type: ignore[attr-defined]
    return runtime, _apt_files(runtime), cache


def test_an_incremental_publish_rebuilds_only_the_blocks_that_changed(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = _ready(make_runtime, publish={"block_entries": 4})
    _many_debs(runtime, 40)
    [first] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    blocks = first.rebuilt_blocks  # everything is new: amd64, arm64 and the pool map
    assert blocks >= 3 * 5

    _many_debs(runtime, 1, start=40)
    [incremental] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    assert incremental.new_entries == 1
    assert 1 <= incremental.rebuilt_blocks <= 3 * 2  # one block per document (or a split)
    files = _apt_files(runtime)
    assert gzip.decompress(files[".gz"]) == files[""]
    assert lzma.decompress(files[".xz"]) == files[""]
    assert files[""].count(b"Package: blk-") == 41

    # A full rebuild reads every entry again and produces the same bytes.
    [full] = publish.publish(runtime.context, stages=["ci"], formats=["apt"], full=True)
    assert full.rebuilt_blocks > incremental.rebuilt_blocks
    assert _apt_files(runtime) == files


def test_a_damaged_block_cache_is_ignored_not_published(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime, files, cache = _published_in_blocks(make_runtime)
    damaged = 0
    for path in cache.rglob("*"):
        if path.is_file():
            data = bytearray(path.read_bytes())
            data[-1] ^= 0xFF
            path.write_bytes(bytes(data))
            damaged += 1
    assert damaged
    [again] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    assert again.rebuilt_blocks >= 3  # nothing usable in the cache: rendered again
    assert _apt_files(runtime) == files


def test_snapshots_share_unchanged_files_and_pruning_frees_the_rest(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = _ready(make_runtime, publish={"keep_snapshots": 2})
    _many_debs(runtime, 3)
    [one] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    [two] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    store = runtime.publications
    assert store is not None
    rel = "dists/ci/main/binary-amd64/Packages.xz"
    first = store.snapshot_dir("apt", "ci", one.snapshot) / rel  # type: ignore[attr-defined]
    second = store.snapshot_dir("apt", "ci", two.snapshot) / rel  # type: ignore[attr-defined]
    assert first.stat().st_ino == second.stat().st_ino  # one copy on disk

    objects = store.root / ".objects"  # type: ignore[attr-defined]
    for _ in range(3):  # new content each time; keep_snapshots=2 prunes the oldest
        _many_debs(runtime, 1, start=100 + _)
        publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    assert len(store.snapshots("apt", "ci")) == 2
    orphans = [p.name for p in objects.iterdir() if p.stat().st_nlink == 1]
    assert orphans == []
    assert not first.exists()


def test_gc_prunes_index_blocks_unused_for_a_month(make_runtime: Callable[..., Runtime]) -> None:
    import os
    import time

    from packyard.services.maintenance import prune_index_cache

    runtime, files, cache = _published_in_blocks(make_runtime)
    records = [p for p in cache.rglob("*") if p.is_file()]
    assert records
    with runtime.context() as ctx:
        assert prune_index_cache(ctx, dry_run=False) == (0, 0)  # all fresh
        old = time.time() - 40 * 86400
        for path in records[: len(records) // 2]:
            os.utime(path, (old, old))
        count, size = prune_index_cache(ctx, dry_run=True)
        assert count == len(records) // 2 and size > 0
        assert all(p.exists() for p in records)  # a dry run deletes nothing
        assert prune_index_cache(ctx, dry_run=False) == (count, size)
    assert sum(1 for p in cache.rglob("*") if p.is_file()) == len(records) - count
    [again] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    assert again.rebuilt_blocks >= 1  # what was pruned is rebuilt, the index is the same
    assert _apt_files(runtime) == files


def _dnf_primary(runtime: Runtime) -> bytes:
    assert runtime.publications is not None
    repomd = runtime.publications.file("dnf", "ci", "repodata/repomd.xml")
    assert repomd is not None
    href = repomd.read_text().split('<data type="primary">', 1)[1].split('href="', 1)[1]
    path = runtime.publications.file("dnf", "ci", href.split('"', 1)[0])
    assert path is not None
    return gzip.decompress(path.read_bytes())


def test_an_rpm_entry_does_not_depend_on_the_files_mtime(tmp_path: Path) -> None:
    # The same signed rpm is read from a temporary file when signed and from the blob store
    # later: its primary entry must not change with the file's mtime (<time file=...>).
    import os
    import shutil

    from tests.pkgbuild import build_rpm

    from packyard.integrations.createrepo import rpm_chunks

    rpm = build_rpm(tmp_path / "rpms", name="mtime-free", version="1.0")
    copy = tmp_path / "copy.rpm"
    shutil.copyfile(rpm, copy)
    os.utime(copy, (1_000_000_000, 1_000_000_000))
    assert rpm_chunks(copy, location_href="x.rpm") == rpm_chunks(rpm, location_href="x.rpm")


def test_dnf_full_and_recompute_reuse_the_signed_rpms_and_resign_a_lost_one(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    from tests.pkgbuild import build_rpm

    runtime = _ready(make_runtime)
    shas = []
    for name in ("dnf-a", "dnf-b"):
        rpm = build_rpm(tmp_path / "rpms", name=name, version="1.0")
        result = upload_bytes(runtime, principal=SYSTEM, data=rpm.read_bytes(), filename=rpm.name)
        shas.append(result.artifact.sha256)
        with runtime.context(write=True) as ctx:
            promotions.promote(ctx, principal=SYSTEM, ref=result.artifact.sha256, stage="ci")
    [first] = publish.publish(runtime.context, stages=["ci"], formats=["dnf"])
    assert first.new_entries == 2
    primary = _dnf_primary(runtime)
    with runtime.context() as ctx:
        signed = {
            d.artifact_id: d.sha256
            for d in ctx.repos.publishing.derived_many(
                f"rpm-signed:{first.signed_by[0]}",
                [
                    a.id
                    for a in ctx.repos.artifacts.by_ids(
                        [ctx.repos.artifacts.by_sha256(s).id for s in shas]  # type: ignore[union-attr]
                    )
                ],
            ).values()
        }
    assert len(signed) == 2

    [full] = publish.publish(runtime.context, stages=["ci"], formats=["dnf"], full=True)
    assert full.new_entries == 0 and _dnf_primary(runtime) == primary
    [again] = publish.publish(runtime.context, stages=["ci"], formats=["dnf"], recompute=True)
    assert again.new_entries == 2 and _dnf_primary(runtime) == primary  # same signed copies

    # A signed copy that went missing is made again, and its row follows the new file.
    lost_id, lost_sha = next(iter(signed.items()))
    runtime.blobs.delete(lost_sha)
    publish.publish(runtime.context, stages=["ci"], formats=["dnf"], recompute=True)
    with runtime.context() as ctx:
        row = ctx.repos.publishing.derived(lost_id, f"rpm-signed:{first.signed_by[0]}")
        assert row is not None and runtime.blobs.exists(row.sha256)
        assert row.sha256 in ctx.repos.publishing.derived_hashes()


def test_pacman_databases_are_joined_from_blocks_and_follow_promotions(
    make_runtime: Callable[..., Runtime],
) -> None:
    import io
    import tarfile

    from packyard.demo.builders import pacman_bytes

    runtime = _ready(make_runtime, publish={"block_entries": 4})

    def add(i: int) -> None:
        data = pacman_bytes(
            name=f"blk-{i:03d}",
            version="1.0-1",
            description=f"block test {i}",
            files={f"usr/share/blk-{i:03d}": b"x"},
        )
        _into_ci(runtime, data, f"blk-{i:03d}-1.0-1-any.pkg.tar.zst")

    def database(kind: str) -> dict[str, bytes]:
        assert runtime.publications is not None
        path = runtime.publications.file("pacman", "ci", f"x86_64/packyard-ci.{kind}")
        assert path is not None
        with tarfile.open(fileobj=io.BytesIO(path.read_bytes()), mode="r:gz") as tar:
            return {
                m.name: (tar.extractfile(m).read() if m.isfile() else b"")  # type: ignore[union-attr]
                for m in tar.getmembers()
            }

    for i in range(20):
        add(i)
    [first] = publish.publish(runtime.context, stages=["ci"], formats=["pacman"])
    assert first.rebuilt_blocks >= 3 * 5  # db, files and the pool map, every block new
    add(20)
    [incremental] = publish.publish(runtime.context, stages=["ci"], formats=["pacman"])
    assert incremental.new_entries == 1
    assert 1 <= incremental.rebuilt_blocks <= 3 * 2  # one block per document (or a split)
    db, files = database("db"), database("files")
    assert sorted(n for n in db if n.endswith("/desc")) == [
        f"blk-{i:03d}-1.0-1/desc" for i in range(21)
    ]
    assert b"%NAME%\nblk-020\n" in db["blk-020-1.0-1/desc"]
    assert b"usr/share/blk-020" in files["blk-020-1.0-1/files"]
    assert runtime.publications is not None
    manifest = runtime.publications.manifest("pacman", "ci", incremental.snapshot)
    assert manifest is not None
    assert "x86_64/blk-020-1.0-1-any.pkg.tar.zst" in manifest["pool"]
    assert "inline" in manifest["pool"]["x86_64/blk-020-1.0-1-any.pkg.tar.zst.sig"]
    # A full rebuild gives the same databases.
    publish.publish(runtime.context, stages=["ci"], formats=["pacman"], full=True)
    assert database("db") == db and database("files") == files


def test_munki_catalogs_are_joined_from_blocks_and_name_the_channels_catalogs(
    make_runtime: Callable[..., Runtime],
) -> None:
    import plistlib

    from packyard.demo.builders import macos_pkg_bytes

    runtime = _ready(
        make_runtime, publish={"block_entries": 2, "munki": {"catalogs": {"testing": "ci"}}}
    )

    def add(i: int) -> None:
        data = macos_pkg_bytes(
            identifier=f"com.example.app{i:02d}", version="1.0", title=f"App{i}", install_kbytes=4
        )
        _into_ci(runtime, data, f"app{i:02d}-1.0.pkg")

    def catalog() -> list[dict[str, object]]:
        assert runtime.publications is not None
        path = runtime.publications.file("munki", "ci", "catalogs/ci")
        assert path is not None
        loaded: list[dict[str, object]] = plistlib.loads(path.read_bytes())
        return loaded

    for i in range(8):
        add(i)
    [first] = publish.publish(runtime.context, stages=["ci"], formats=["munki"])
    assert first.rebuilt_blocks >= 2 * 2
    add(8)
    [incremental] = publish.publish(runtime.context, stages=["ci"], formats=["munki"])
    assert incremental.new_entries == 1
    assert 1 <= incremental.rebuilt_blocks <= 2 * 2  # one block per document (or a split)
    items = catalog()
    assert len(items) == 9
    assert all(item["catalogs"] == ["ci", "testing"] for item in items)
    assert runtime.publications is not None
    manifest = runtime.publications.manifest("munki", "ci", incremental.snapshot)
    assert manifest is not None
    assert {str(item["installer_item_location"]) for item in items} == set(manifest["pool"])
    publish.publish(runtime.context, stages=["ci"], formats=["munki"], full=True)
    assert catalog() == items


def test_an_artifact_id_given_again_does_not_bring_back_a_cached_block(
    make_runtime: Callable[..., Runtime],
) -> None:
    """SQLite hands the id of a deleted newest row out again (and a restore from an older
    backup does on any database): a cached block of the same ids must not be reused."""
    from sqlalchemy import delete, func, select, text

    from packyard.storage.db.models import Artifact, StageEntry

    runtime = _ready(make_runtime, publish={"block_entries": 4})
    _many_debs(runtime, 6)
    publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    with runtime.context(write=True) as ctx:  # the newest artifact deleted, as gc may
        session = ctx.repos.session
        newest = session.execute(select(func.max(Artifact.id))).scalar_one()
        session.execute(delete(StageEntry).where(StageEntry.artifact_id == newest))
        session.execute(text("DELETE FROM index_entries WHERE artifact_id = :i"), {"i": newest})
        session.execute(delete(Artifact).where(Artifact.id == newest))
    data = deb_bytes(
        name="blk-005",
        version="2.0-1",
        description="block test 5, again\n more",
        maintainer="Tests <t@example.com>",
        files={"usr/share/blk-005": b"y"},
    )
    _into_ci(runtime, data, "blk-005_2.0-1_all.deb")
    [again] = publish.publish(runtime.context, stages=["ci"], formats=["apt"])
    stanzas = [s for s in _apt_files(runtime)[""].split(b"\n\n") if b"Package: blk-005\n" in s]
    assert len(stanzas) == 1 and b"\nVersion: 2.0-1\n" in stanzas[0]
    assert runtime.publications is not None
    manifest = runtime.publications.manifest("apt", "ci", again.snapshot)
    assert manifest is not None
    assert any("blk-005_2.0-1" in path for path in manifest["pool"])


def test_an_upload_is_signed_once_and_promoted_as_the_same_file(
    make_runtime: Callable[..., Runtime], tmp_path: Path
) -> None:
    """The publish every upload queues (its first stage, ``new``) computes the entry and signs
    the rpm; a promotion's publish reuses both, so every stage serves the same signed file."""
    from tests.pkgbuild import build_rpm

    runtime = _ready(make_runtime)
    rpm = build_rpm(tmp_path / "rpms", name="dnf-once", version="1.0")
    upload = upload_bytes(runtime, principal=SYSTEM, data=rpm.read_bytes(), filename=rpm.name)
    sha = upload.artifact.sha256
    [uploaded] = publish.publish(runtime.context, stages=["new"], formats=["dnf"])
    assert (uploaded.artifact_count, uploaded.new_entries) == (1, 1)

    with runtime.context(write=True) as ctx:
        promotions.promote(ctx, principal=SYSTEM, ref=sha, stage="ci")
    [promoted] = publish.publish(runtime.context, stages=["ci"], formats=["dnf"])
    assert (promoted.artifact_count, promoted.new_entries) == (1, 0)

    def pool(stage: str) -> dict[str, dict[str, object]]:
        snapshot = runtime.publications.current("dnf", stage)
        assert snapshot is not None
        manifest = runtime.publications.manifest("dnf", stage, snapshot)
        assert manifest is not None
        return dict(manifest["pool"])

    assert pool("ci") == pool("new")  # the same path, signed copy and size
    [spec] = pool("ci").values()
    assert spec["sha256"] != sha  # our signed copy, not the upload's bytes
