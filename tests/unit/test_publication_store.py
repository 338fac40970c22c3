"""The local publication store: snapshots as hard links to content objects, written whole
or not at all, and a self-checking block cache."""

from __future__ import annotations

import shutil
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
    store = LocalPublicationStore(tmp_path, memory_bytes=0)  # what a new process reads
    store.cache_put("z" + "ab" * 32, b"compressed bytes")
    assert store.cache_get("z" + "ab" * 32) == b"compressed bytes"
    [record] = [p for p in (tmp_path / ".cache").rglob("*") if p.is_file()]
    record.write_bytes(record.read_bytes()[:-1] + b"X")
    assert store.cache_get("z" + "ab" * 32) is None
    assert store.cache_get("z" + "cd" * 32) is None  # never written
    store.cache_clear()
    assert [p.name for p in (tmp_path / ".cache").rglob("*")] == [".generation"]


def test_recent_block_records_are_kept_in_memory_within_a_limit(tmp_path: Path) -> None:
    store = LocalPublicationStore(tmp_path, memory_bytes=4000)
    for n in range(5):
        store.cache_put(f"z{n:064d}", bytes([n]) * 900)
    shutil.rmtree(tmp_path / ".cache" / "z0")  # every record gone from disk
    # The four newest records (3,600 bytes) are still in memory; the oldest fell out of the
    # 4,000-byte budget when the fifth came.
    assert [store.cache_get(f"z{n:064d}") is not None for n in range(5)] == [
        False,
        True,
        True,
        True,
        True,
    ]
    assert store.cache_get(f"z{3:064d}") == b"\x03" * 900


def test_clearing_the_block_cache_reaches_other_processes_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from packyard.storage.publications import _MemoryCache

    monkeypatch.setattr(_MemoryCache, "CHECK_INTERVAL", 0.0)
    worker, other = LocalPublicationStore(tmp_path), LocalPublicationStore(tmp_path)
    worker.cache_put("t" + "ab" * 32, b"old text")
    assert worker.cache_get("t" + "ab" * 32) == b"old text"
    other.cache_clear()  # `packyard publish --recompute` run by another process
    assert worker.cache_get("t" + "ab" * 32) is None
    worker.cache_put("t" + "ab" * 32, b"new text")
    assert other.cache_get("t" + "ab" * 32) == b"new text"


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
