"""Immutable publication snapshots on a local directory, switched atomically.

Layout: ``<root>/<format>/<stage>/snapshots/<id>/`` holds one snapshot's index files and its
``manifest.json``; ``<root>/<format>/<stage>/current`` is a symlink to the live snapshot.
A snapshot is written into ``<id>.partial`` and renamed when complete; the live pointer is
replaced with ``rename(2)`` of a new symlink, so a client (or the HTTP server) sees the old or
the new snapshot, never a mix. Package files are not copied here: manifests map pool paths to
blobs, which are served from the blob store.

Index files are stored once per content: a snapshot's file is a hard link to
``<root>/.objects/<sha256>``, so a republication that produces the same ``Packages`` (and every
``by-hash`` copy) writes and fsyncs nothing new, and kept snapshots share their bytes. An object
whose only link is ``.objects`` itself belongs to no snapshot and is removed when snapshots are
deleted. ``<root>/.cache/`` holds compressed index blocks (formats/blockpack.py): derived data,
each record checked by a CRC-32 on read (a torn write or bit rot is a miss, never published),
safe to delete at any time. The cache is as trusted as the rest of the data dir (whoever can
write it can also replace the signing key), so the check is against damage, not forgery.
Recently used records are also kept in memory (``memory_bytes``, least recently used out):
records never change under their key, so a copy in memory cannot go stale, except that
``cache_clear`` (a recompute, possibly in another process) forgets them: it leaves a new
generation mark in the cache, which every process checks at most once a second.

Not handled: remote stores (S3 pushes copy finished snapshots elsewhere).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["LocalPublicationStore", "SnapshotWriter"]

MANIFEST = "manifest.json"
_OBJECTS = ".objects"
_CACHE = ".cache"
_MARKERS = ".markers"
_GENERATION = ".generation"  # rewritten by cache_clear: memory copies elsewhere are dropped
_CACHE_HEADER = 4  # CRC-32 of the payload: catches torn writes and bit rot, at memory speed


class SnapshotWriter:
    """Writes the files of one snapshot being built."""

    def __init__(self, root: Path, objects: Path | None = None) -> None:
        self.root = root
        self.objects = objects
        self.written: dict[str, int] = {}
        #: relpath -> sha256 of what ``write`` wrote (the manifest records them: what the
        #: snapshot should hold, checked against the disk by mirrors and pushes).
        self.digests: dict[str, str] = {}
        #: Files to fsync before the snapshot is complete: those written in place, and new
        #: objects (a temporary name in .objects, hard-linked into the snapshot already).
        self.fresh: list[Path] = []
        #: New objects: (temporary path, final object path), renamed by ``finish``.
        self._new_objects: list[tuple[Path, Path]] = []
        self._pending: dict[str, Path] = {}

    def write(self, relpath: str, data: bytes, *, sha256: str | None = None) -> None:
        """Write one file; with an object store, link the stored copy of the same bytes."""
        target = self.root / _safe_relpath(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = sha256 or hashlib.sha256(data).hexdigest()
        if self.objects is None:
            target.write_bytes(data)
            self.fresh.append(target)
        else:
            self._link(digest, data, target)
        self.written[relpath] = len(data)
        self.digests[relpath] = digest

    def link(self, relpath: str, source: Path) -> None:
        """Add the file at ``source`` (another snapshot's, the same store's) unchanged, as a
        hard link: no byte is copied or synced again."""
        target = self.root / _safe_relpath(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(source, target)
        self.written[relpath] = source.stat().st_size

    def write_manifest(self, manifest: dict[str, Any]) -> bytes:
        data = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        self.write(MANIFEST, data)
        return data

    def finish(self) -> None:
        """Make the snapshot durable: fsync what is new (one journal commit covers them all,
        so they are written first and synced together), name the new objects, fsync the
        directories."""
        for path in self.fresh:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        for tmp, obj in self._new_objects:
            os.replace(tmp, obj)
        if self._new_objects and self.objects is not None:
            _fsync_dir(self.objects)
        for dirpath, _dirs, _files in os.walk(self.root):
            _fsync_dir(Path(dirpath))

    def abandon(self) -> None:
        """Remove the temporary objects of a snapshot that failed."""
        for tmp, _obj in self._new_objects:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def _link(self, digest: str, data: bytes, target: Path) -> None:
        assert self.objects is not None
        obj = self.objects / _safe_name(digest)
        pending = self._pending.get(digest)
        if pending is not None:  # the same bytes twice in this snapshot (apt by-hash)
            os.link(pending, target)
            return
        try:
            os.link(obj, target)
            return
        except FileNotFoundError:
            pass
        # A new object: written under a temporary name (gc skips dot files), linked now,
        # synced and named in finish().
        self.objects.mkdir(parents=True, exist_ok=True)
        tmp = self.objects / f".{digest}.{os.getpid()}.{os.urandom(4).hex()}"
        tmp.write_bytes(data)
        os.link(tmp, target)
        self.fresh.append(tmp)
        self._new_objects.append((tmp, obj))
        self._pending[digest] = tmp


class _MemoryCache:
    """Block cache records in memory, least recently used dropped beyond ``limit`` bytes."""

    #: How often (seconds) to check that the cache directory was not cleared meanwhile.
    CHECK_INTERVAL = 1.0

    def __init__(self, limit: int, root: str) -> None:
        self.limit = limit
        self._root = root
        self._records: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self._generation: bytes | None = None
        self._checked = 0.0

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        with self._lock:
            self._check()
            records = self._records
            out = [records.get(key) for key in keys]
            for key, data in zip(keys, out, strict=True):
                if data is not None:
                    records.move_to_end(key)
            return out

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.limit // 4:
            return
        with self._lock:
            self._check()
            old = self._records.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._records[key] = data
            self._size += len(data)
            while self._size > self.limit:
                _key, dropped = self._records.popitem(last=False)
                self._size -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._size = 0
            self._generation, self._checked = None, 0.0

    def _check(self) -> None:
        """Forget everything when the cache's generation mark changed (``cache_clear`` in
        any process writes a new one)."""
        now = time.monotonic()
        if now - self._checked < self.CHECK_INTERVAL:
            return
        self._checked = now
        try:
            with open(os.path.join(self._root, _GENERATION), "rb") as handle:
                generation = handle.read()
        except (FileNotFoundError, NotADirectoryError):
            generation = b""
        if generation != self._generation:
            self._records.clear()
            self._size = 0
            self._generation = generation


class LocalPublicationStore:
    def __init__(self, root: Path, *, memory_bytes: int = 64 * 1024 * 1024) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._cache_root = str(root / _CACHE)
        self._memory = _MemoryCache(memory_bytes, self._cache_root)

    def _channel_dir(self, fmt: str, stage: str) -> Path:
        return self.root / _safe_name(fmt) / _safe_name(stage)

    def snapshot_dir(self, fmt: str, stage: str, snapshot: str) -> Path:
        return self._channel_dir(fmt, stage) / "snapshots" / _safe_name(snapshot)

    @contextmanager
    def build(self, fmt: str, stage: str, snapshot: str) -> Iterator[SnapshotWriter]:
        """Write a snapshot; it exists under its id only if the block completes."""
        final = self.snapshot_dir(fmt, stage, snapshot)
        partial = final.with_name(final.name + ".partial")
        partial.mkdir(parents=True, exist_ok=False)
        writer = SnapshotWriter(partial, self.root / _OBJECTS)
        try:
            yield writer
            writer.finish()
            os.rename(partial, final)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            writer.abandon()
            raise

    def activate(self, fmt: str, stage: str, snapshot: str) -> None:
        """Make ``snapshot`` the live one, atomically."""
        channel = self._channel_dir(fmt, stage)
        if not self.snapshot_dir(fmt, stage, snapshot).is_dir():
            raise FileNotFoundError(f"snapshot {snapshot} of {fmt}/{stage} does not exist")
        tmp = channel / f".current-{os.getpid()}-{snapshot}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(Path("snapshots") / snapshot)
        os.replace(tmp, channel / "current")
        _fsync_dir(channel)

    def current(self, fmt: str, stage: str) -> str | None:
        link = self._channel_dir(fmt, stage) / "current"
        try:
            return PurePosixPath(os.readlink(link)).name
        except (FileNotFoundError, OSError):
            return None

    def file(
        self, fmt: str, stage: str, relpath: str, *, snapshot: str | None = None
    ) -> Path | None:
        """The path of a file in the live (or given) snapshot, or None."""
        snapshot = snapshot or self.current(fmt, stage)
        if snapshot is None:
            return None
        try:
            path = self.snapshot_dir(fmt, stage, snapshot) / _safe_relpath(relpath)
        except ValueError:
            return None
        return path if path.is_file() else None

    def manifest(self, fmt: str, stage: str, snapshot: str) -> dict[str, Any] | None:
        path = self.snapshot_dir(fmt, stage, snapshot) / MANIFEST
        try:
            loaded: dict[str, Any] = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        return loaded

    def snapshots(self, fmt: str, stage: str) -> list[str]:
        base = self._channel_dir(fmt, stage) / "snapshots"
        if not base.is_dir():
            return []
        return sorted(
            p.name for p in base.iterdir() if p.is_dir() and not p.name.endswith(".partial")
        )

    def files(self, fmt: str, stage: str, snapshot: str) -> list[str]:
        """Relative paths of a snapshot's index files (not its manifest), sorted."""
        root = self.snapshot_dir(fmt, stage, snapshot)
        if not root.is_dir():
            return []
        return sorted(
            p.relative_to(root).as_posix()
            for p in root.rglob("*")
            if p.is_file() and p.relative_to(root).as_posix() != MANIFEST
        )

    def delete(self, fmt: str, stage: str, snapshot: str) -> None:
        if snapshot == self.current(fmt, stage):
            raise ValueError("the live snapshot cannot be deleted")
        shutil.rmtree(self.snapshot_dir(fmt, stage, snapshot), ignore_errors=True)
        self._drop_unlinked_objects()

    def _drop_unlinked_objects(self) -> None:
        objects = self.root / _OBJECTS
        if not objects.is_dir():
            return
        for entry in os.scandir(objects):
            try:
                if (
                    not entry.name.startswith(".")  # an object being written
                    and entry.is_file(follow_symlinks=False)
                    and entry.stat().st_nlink == 1
                ):
                    os.unlink(entry.path)
            except FileNotFoundError:
                continue

    # ------------------------------------------------------------------ block cache

    def cache_get(self, key: str) -> bytes | None:
        """A cached block written by ``cache_put``, or None (missing or damaged)."""
        return self.cache_get_many([key])[0]

    def cache_get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """``cache_get`` of each key: from memory, else from disk (then kept in memory)."""
        found = self._memory.get_many(keys)
        for i, data in enumerate(found):
            if data is None:
                found[i] = self._cache_read(keys[i])
        return found

    def _cache_read(self, key: str) -> bytes | None:
        # Plain os.path: hundreds of these run per publication.
        path = os.path.join(self._cache_root, _safe_name(key[:2]), _safe_name(key))
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except (FileNotFoundError, NotADirectoryError):
            return None
        payload = data[_CACHE_HEADER:]
        if len(data) < _CACHE_HEADER or _crc(payload) != data[:_CACHE_HEADER]:
            return None
        self._memory.put(key, payload)
        return payload

    def cache_put(self, key: str, data: bytes) -> None:
        """Store a derived block; it is checked on read, so it needs no fsync."""
        folder = self.root / _CACHE / _safe_name(key[:2])
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{_safe_name(key)}.{os.getpid()}.{os.urandom(4).hex()}"
        tmp.write_bytes(_crc(data) + data)
        os.replace(tmp, folder / key)
        self._memory.put(key, data)

    def cache_prune(self, *, older_than_seconds: float, dry_run: bool = False) -> tuple[int, int]:
        """Delete cached blocks not read or written for ``older_than_seconds`` (by the later
        of atime and mtime: with ``relatime`` mounts a read refreshes atime at most daily; with
        ``noatime`` a block still in use is rebuilt by the next publish that needs it).
        Returns (files, bytes)."""
        cutoff = time.time() - older_than_seconds
        files = size = 0
        root = Path(self._cache_root)
        if not root.is_dir():
            return 0, 0
        for folder in root.iterdir():
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                try:
                    st = entry.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if max(st.st_atime, st.st_mtime) >= cutoff:
                    continue
                files += 1
                size += st.st_size
                if not dry_run:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
        return files, size

    def cache_clear(self) -> None:
        """Forget every cached block (a recompute of every entry)."""
        root = self.root / _CACHE
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / f"{_GENERATION}.{os.getpid()}.{os.urandom(4).hex()}"
        tmp.write_bytes(os.urandom(16).hex().encode())
        os.replace(tmp, root / _GENERATION)
        self._memory.clear()

    def marker(self, name: str) -> str | None:
        """A small value kept with the publications (``set_marker``), or None."""
        try:
            return (self.root / _MARKERS / _safe_name(name)).read_text().strip()
        except FileNotFoundError:
            return None

    def set_marker(self, name: str, value: str) -> None:
        folder = self.root / _MARKERS
        folder.mkdir(exist_ok=True)
        tmp = folder / f".{_safe_name(name)}.{os.getpid()}.tmp"
        tmp.write_text(value + "\n")
        os.replace(tmp, folder / _safe_name(name))

    def clean_partial(self) -> int:
        """Remove snapshots left half-written by a crash."""
        removed = 0
        for partial in self.root.glob("*/*/snapshots/*.partial"):
            shutil.rmtree(partial, ignore_errors=True)
            removed += 1
        # Objects a crashed publisher wrote but never named (an hour old: not in progress).
        cutoff = time.time() - 3600
        objects = self.root / _OBJECTS
        for tmp in objects.glob(".*") if objects.is_dir() else ():
            with contextlib.suppress(FileNotFoundError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
        return removed


def _safe_name(name: str) -> str:
    if not name or "/" in name or name in {".", ".."} or "\x00" in name:
        raise ValueError(f"invalid path component: {name!r}")
    return name


def _safe_relpath(relpath: str) -> Path:
    parts = PurePosixPath(relpath).parts
    if not parts or relpath.startswith("/") or any(p in {"..", "."} or "\x00" in p for p in parts):
        raise ValueError(f"invalid relative path: {relpath!r}")
    return Path(*parts)


def _crc(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
