"""Ports: what the services need from the outside world, implemented in storage/ and
integrations/ and chosen by configuration in ``packyard.bootstrap``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["BlobStore", "BlobWriter", "ChangeControl", "ChangeControlDecision", "StoredBlob"]


@dataclass(frozen=True, kw_only=True)
class StoredBlob:
    sha256: str
    size: int


class BlobWriter(Protocol):
    """A blob being written: bytes go to a temporary file and are hashed on the way."""

    @property
    def size(self) -> int: ...

    @property
    def temp_path(self) -> Path: ...

    def write(self, chunk: bytes) -> None: ...

    def finish(self) -> StoredBlob:
        """Flush and fsync the temporary file; returns its hash and size (not yet visible)."""
        ...

    def commit(self) -> StoredBlob:
        """Move the finished file into the store under its hash (idempotent, atomic)."""
        ...

    def abort(self) -> None:
        """Remove the temporary file; safe to call more than once or after commit."""
        ...


class BlobStore(Protocol):
    """Content-addressed storage of artifact files."""

    def writer(self) -> BlobWriter: ...

    def open(self, sha256: str) -> BinaryIO: ...

    def exists(self, sha256: str) -> bool: ...

    def size(self, sha256: str) -> int: ...

    def delete(self, sha256: str) -> None: ...

    def iter_hashes(self) -> Iterator[str]: ...

    def local_path(self, sha256: str) -> Path | None:
        """A filesystem path for zero-copy serving, when the store is local."""
        ...

    def clean_temp(self, *, older_than_seconds: float) -> int:
        """Remove abandoned temporary files (a crashed upload); returns how many."""
        ...


@dataclass(frozen=True, kw_only=True)
class ChangeControlDecision:
    approved: bool
    detail: str


class ChangeControl(Protocol):
    """A ticket system that approves (or not) a change-control id."""

    def check(self, change_id: str, *, artifact: str, stage: str) -> ChangeControlDecision: ...
