"""The local publication store: snapshots as hard links to content objects, written whole
or not at all, and a self-checking block cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from packyard.storage.publications import LocalPublicationStore


def test_same_bytes_are_one_object_within_and_across_snapshots(tmp_path: Path) -> None:
    store = LocalPublicationStore(tmp_path)
    with store.build("apt", "prod", "s1") as writer:
        writer.write("dists/prod/Packages", b"same")
        writer.write("dists/prod/by-hash/SHA256/x", b"same")
        writer.write("dists/prod/Release", b"one")
    with store.build("apt", "prod", "s2") as writer:
        writer.write("dists/prod/Packages", b"same")
    first = store.snapshot_dir("apt", "prod", "s1")
    second = store.snapshot_dir("apt", "prod", "s2")
    inode = (first / "dists/prod/Packages").stat().st_ino
    assert (first / "dists/prod/by-hash/SHA256/x").stat().st_ino == inode
    assert (second / "dists/prod/Packages").stat().st_ino == inode
    objects = sorted(p.name for p in (tmp_path / ".objects").iterdir())
    assert len(objects) == 2 and not any(name.startswith(".") for name in objects)

    store.activate("apt", "prod", "s2")
    store.delete("apt", "prod", "s1")  # "one" is linked by no snapshot any more
    assert len(list((tmp_path / ".objects").iterdir())) == 1


def test_a_failed_snapshot_leaves_nothing_behind(tmp_path: Path) -> None:
    store = LocalPublicationStore(tmp_path)
    with pytest.raises(RuntimeError), store.build("apt", "prod", "s1") as writer:
        writer.write("dists/prod/Packages", b"half")
        raise RuntimeError("disk full")
    assert store.snapshots("apt", "prod") == []
    assert not list((tmp_path / "apt" / "prod" / "snapshots").iterdir())
    assert list((tmp_path / ".objects").iterdir()) == []


def test_the_block_cache_refuses_damaged_records(tmp_path: Path) -> None:
    store = LocalPublicationStore(tmp_path)
    store.cache_put("z" + "ab" * 32, b"compressed bytes")
    assert store.cache_get("z" + "ab" * 32) == b"compressed bytes"
    [record] = [p for p in (tmp_path / ".cache").rglob("*") if p.is_file()]
    record.write_bytes(record.read_bytes()[:-1] + b"X")
    assert store.cache_get("z" + "ab" * 32) is None
    assert store.cache_get("z" + "cd" * 32) is None  # never written
    store.cache_clear()
    assert not (tmp_path / ".cache").exists()


def test_objects_a_crash_left_unnamed_are_removed_at_start(tmp_path: Path) -> None:
    import os
    import time

    store = LocalPublicationStore(tmp_path)
    objects = tmp_path / ".objects"
    objects.mkdir()
    stale, fresh = objects / ".abc.1.dead", objects / ".def.2.beef"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")  # maybe another process writing right now: kept
    old = time.time() - 7200
    os.utime(stale, (old, old))
    store.clean_partial()
    assert not stale.exists() and fresh.exists()
