"""Content-addressed blob store on a local directory.

Layout: ``<root>/sha256/ab/cd/<hash>`` for blobs and ``<root>/tmp/`` for uploads in flight.
A blob becomes visible only by ``rename`` after its bytes were fsynced, so a crash at any
point leaves either nothing or a whole blob; stray temp files are removed by ``clean_temp``.
Not handled: quotas and deduplicating across stores.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from packyard.services.ports import StoredBlob

__all__ = ["LocalBlobStore", "LocalBlobWriter"]

_HEX64 = re.compile(r"[0-9a-f]{64}")


class LocalBlobWriter:
    def __init__(self, store: LocalBlobStore) -> None:
        self._store = store
        fd, name = _mkstemp(store.tmp_dir)
        self._file = os.fdopen(fd, "wb", buffering=0)
        self._path = Path(name)
        self._hash = hashlib.sha256()
        self._size = 0
        self._result: StoredBlob | None = None
        self._committed = False

    @property
    def size(self) -> int:
        return self._size

    @property
    def temp_path(self) -> Path:
        return self._path

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self._file.write(chunk)
        self._size += len(chunk)

    def finish(self) -> StoredBlob:
        if self._result is None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._result = StoredBlob(sha256=self._hash.hexdigest(), size=self._size)
        return self._result

    def commit(self) -> StoredBlob:
        result = self.finish()
        target = self._store.path_for(result.sha256)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            # Same content already stored: keep the existing file, drop ours.
            self._path.unlink(missing_ok=True)
        else:
            os.replace(self._path, target)
            _fsync_dir(target.parent)
        self._committed = True
        return result

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        if not self._committed:
            self._path.unlink(missing_ok=True)


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp_dir = root / "tmp"
        self.blob_dir = root / "sha256"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.blob_dir.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str) -> Path:
        if not _HEX64.fullmatch(sha256):
            raise ValueError(f"not a sha256 hex digest: {sha256!r}")
        return self.blob_dir / sha256[:2] / sha256[2:4] / sha256

    def writer(self) -> LocalBlobWriter:
        return LocalBlobWriter(self)

    def open(self, sha256: str) -> BinaryIO:
        return self.path_for(sha256).open("rb")

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def size(self, sha256: str) -> int:
        return self.path_for(sha256).stat().st_size

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def iter_hashes(self) -> Iterator[str]:
        for path in self.blob_dir.glob("??/??/*"):
            if _HEX64.fullmatch(path.name):
                yield path.name

    def local_path(self, sha256: str) -> Path | None:
        return self.path_for(sha256)

    def clean_temp(self, *, older_than_seconds: float) -> int:
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in self.tmp_dir.iterdir():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _mkstemp(directory: Path) -> tuple[int, str]:
    return tempfile.mkstemp(prefix="upload-", dir=directory)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
