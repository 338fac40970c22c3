"""Ports: what the services need from the outside world, implemented in storage/ and
integrations/ and chosen by configuration in ``packyard.bootstrap``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

__all__ = [
    "BlobStore",
    "BlobWriter",
    "ChangeControl",
    "ChangeControlDecision",
    "JobQueue",
    "MirrorSource",
    "ObjectStore",
    "PublicationStore",
    "SignatureVerifier",
    "Signer",
    "SigningKey",
    "SnapshotWriterPort",
    "StoredBlob",
]


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


@dataclass(frozen=True, kw_only=True)
class SigningKey:
    """An OpenPGP key the signer holds the secret part of."""

    fingerprint: str
    uid: str
    created: datetime
    expires: datetime | None
    algorithm: str
    revoked: bool = False

    def usable_at(self, when: datetime) -> bool:
        return not self.revoked and (self.expires is None or self.expires > when)


class Signer(Protocol):
    """OpenPGP signatures for apt, dnf and pacman repositories and rpm packages.

    Keys are named by full fingerprint. Several keys given to one call produce one signature
    per key in the same output (key rotation). Failures raise domain errors.
    """

    def ensure_key(
        self, *, name: str = ..., email: str = ..., expires_days: int | None = ...
    ) -> SigningKey:
        """The active key (the newest usable one), generated on first use."""
        ...

    def generate_key(
        self, *, name: str = ..., email: str = ..., expires_days: int | None = ...
    ) -> SigningKey:
        """A new key, which becomes the active one (rotation)."""
        ...

    def extend_expiry(self, fingerprint: str, *, expires_days: int | None) -> SigningKey:
        """Move a key's expiry (None: never); clients must re-import the public key."""
        ...

    def import_key(self, armored_secret: bytes) -> SigningKey: ...

    def keys(self) -> list[SigningKey]: ...

    def public_key(self, fingerprints: Sequence[str] | None = None) -> bytes:
        """ASCII-armored public keys (the given ones or all), for ``signed-by=`` and rpm."""
        ...

    def public_keyring_binary(self, fingerprints: Sequence[str] | None = None) -> bytes:
        """The same keys unarmored, for ``/usr/share/keyrings/*.gpg``."""
        ...

    def clearsign(self, data: bytes, *, keys: Sequence[str]) -> bytes: ...

    def detach_sign(self, data: bytes | Path, *, keys: Sequence[str], armor: bool) -> bytes:
        """A detached signature of ``data``, or of the file at a path (read in chunks)."""
        ...

    def sign_rpm(self, path: Path, *, key: str) -> None: ...

    def verify_detached(self, data: bytes, signature: bytes) -> list[str]:
        """Fingerprints of our keys with a good signature; raises when none or a bad one."""
        ...

    def close(self) -> None: ...


class SnapshotWriterPort(Protocol):
    #: relpath -> sha256 of each file ``write`` wrote.
    digests: dict[str, str]

    def write(self, relpath: str, data: bytes, *, sha256: str | None = None) -> None: ...

    def link(self, relpath: str, source: Path) -> None:
        """Add another snapshot's file unchanged (a hard link)."""
        ...

    def write_manifest(self, manifest: dict[str, Any]) -> bytes: ...


class PublicationStore(Protocol):
    """Immutable publication snapshots, switched atomically (storage/publications.py)."""

    def build(
        self, fmt: str, stage: str, snapshot: str
    ) -> AbstractContextManager[SnapshotWriterPort]: ...

    def activate(self, fmt: str, stage: str, snapshot: str) -> None: ...

    def current(self, fmt: str, stage: str) -> str | None: ...

    def file(
        self, fmt: str, stage: str, relpath: str, *, snapshot: str | None = None
    ) -> Path | None: ...

    def manifest(self, fmt: str, stage: str, snapshot: str) -> dict[str, Any] | None: ...

    def snapshots(self, fmt: str, stage: str) -> list[str]: ...

    def delete(self, fmt: str, stage: str, snapshot: str) -> None: ...

    def files(self, fmt: str, stage: str, snapshot: str) -> list[str]:
        """Relative paths of a snapshot's index files (not its manifest), sorted."""
        ...

    def marker(self, name: str) -> str | None:
        """A small value kept with the publications (e.g. the layout they were built with)."""
        ...

    def set_marker(self, name: str, value: str) -> None: ...

    def cache_get(self, key: str) -> bytes | None:
        """A block cached by ``cache_put`` (compressed index blocks), or None."""
        ...

    def cache_get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """``cache_get`` of each key, in order (one lock and check for all)."""
        ...

    def cache_put(self, key: str, data: bytes) -> None: ...

    def cache_prune(self, *, older_than_seconds: float, dry_run: bool = False) -> tuple[int, int]:
        """Delete blocks unused for that long; (files, bytes)."""
        ...

    def cache_clear(self) -> None: ...


class JobQueue(Protocol):
    """Runs jobs (rows in the jobs table) in the background."""

    def enqueue(self, job_id: int) -> None: ...


class ObjectStore(Protocol):
    """An S3-compatible bucket below a key prefix (integrations/s3.py). Keys are relative to
    the prefix; failures raise domain errors."""

    @property
    def url(self) -> str:
        """``s3://bucket/prefix``, for messages and per-target locks."""
        ...

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        ...

    def put(
        self, key: str, body: BinaryIO, *, size: int, content_type: str, cache_control: str
    ) -> None: ...

    def delete(self, keys: Sequence[str]) -> None: ...

    def close(self) -> None: ...


class MirrorSource(Protocol):
    """The upstream Packyard server as a mirror sees it (the CLI implements it over HTTP).

    Raises NotAuthenticated/NotAuthorized for a refused credential and the mirror service's
    ``MirrorUnavailable`` when the server cannot be reached or answers with a server error.
    """

    def changes(self, *, since: str | None, wait: float) -> dict[str, Any]:
        """``{"cursor": str, "channels": {channel: snapshot or None}}`` (long poll)."""
        ...

    def listing(self, *, channel: str, snapshot: str) -> tuple[bytes, bytes]:
        """A snapshot's file listing and its detached OpenPGP signature."""
        ...

    def public_keys(self) -> bytes:
        """The server's armored public signing keys (``/repos/keys/packyard.asc``)."""
        ...

    def download(self, path: str, write: Callable[[bytes], object]) -> None:
        """Stream ``/repos/<path>``, calling ``write`` with each chunk."""
        ...

    def heartbeat(self, report: dict[str, Any]) -> None: ...


class SignatureVerifier(Protocol):
    """OpenPGP verification against given public keys only (gpgv, as apt does).

    Both raise a domain error when no signature by those keys is good or one is bad.
    """

    def verify_detached(
        self, data: bytes | Path, signature: bytes, *, public_keys: bytes
    ) -> list[str]:
        """Fingerprints of the good signatures (``data``: the bytes, or the file at a path)."""
        ...

    def verify_clearsigned(self, document: bytes, *, public_keys: bytes) -> list[str]:
        """Fingerprints of the good signatures."""
        ...
