"""Resolving repository URLs (``/repos/<format>/...``) to what serves them.

Index files come from the channel's live snapshot; package files ("pool") are looked up in the
live snapshots' manifests and served from the blob store, so an artifact is downloadable
exactly while a live publication lists it. apt ``by-hash`` files are also found in the
channel's older kept snapshots, so a client mid-update never gets a 404 for an index its
Release named.

URL layout (the ``packyard keys show`` lines point here):

- ``apt/dists/<suite>/...``, ``apt/pool/...`` — one apt repository, a suite per stage (and
  per pipeline with its own [pipelines.<name>.apt] suite)
- ``dnf/<stage>/repodata/...``, ``dnf/<stage>/Packages/...``
- ``pacman/<stage>/<arch>/<repo>.db`` (+ ``.files``, ``.sig``, packages and their ``.sig``)
- ``packet/<stage>/index.json`` (+ ``.asc``), ``packet/<stage>/files/...``
- ``munki/catalogs/<stage or alias>``, ``munki/manifests/<stage or alias>``,
  ``munki/pkgs/...``
- ``files/<stage>/index.json`` (+ ``.asc``), ``files/<stage>/<id>/<filename>``
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from packyard.config import Settings
from packyard.domain.errors import NotFound
from packyard.services.ports import PublicationStore

__all__ = ["RepoFile", "RepoResolver", "content_type_for"]

_TYPES = {
    ".gz": "application/gzip",
    ".xz": "application/x-xz",
    ".zst": "application/zstd",
    ".json": "application/json",
    ".xml": "application/xml",
    ".asc": "application/pgp-signature",
    ".sig": "application/pgp-signature",
    ".gpg": "application/pgp-signature",
    ".deb": "application/vnd.debian.binary-package",
    ".rpm": "application/x-rpm",
    ".pkg": "application/octet-stream",
    ".key": "application/pgp-keys",
}


def content_type_for(path: str) -> str:
    name = PurePosixPath(path).name
    if name in {"Release", "InRelease", "Packages"}:
        return "text/plain; charset=utf-8"
    # Munki's plists: a snapshot's "manifests/<stage>" or, pushed to S3, "munki/manifests/...".
    if "/catalogs/" in f"/{path}" or path.startswith(("manifests/", "munki/manifests/")):
        return "application/xml"
    return _TYPES.get(PurePosixPath(name).suffix, "application/octet-stream")


@dataclass(frozen=True, kw_only=True)
class RepoFile:
    """One resolved file: exactly one of ``path`` (snapshot file), ``blob`` (sha256 in the blob
    store) or ``inline`` (small bytes kept in the manifest) is set."""

    content_type: str
    immutable: bool
    etag: str
    path: Path | None = None
    blob: str | None = None
    inline: bytes | None = None
    #: When the snapshot serving it was made (Last-Modified): unlike the file's mtime (a
    #: content-addressed object shared by snapshots), it never goes back when content does.
    modified: datetime | None = None


class RepoResolver:
    def __init__(self, *, settings: Settings, store: PublicationStore) -> None:
        self.settings = settings
        self.store = store
        self._manifests: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._suites = settings.apt_suites()

    def _stages(self, fmt: str, channels: Collection[str] | None) -> list[str]:
        """The stages of ``fmt`` a caller may read: all, or those of its ``channels``."""
        stages = self.settings.stage_names()
        if channels is None:
            return stages
        return [s for s in stages if f"{fmt}/{s}" in channels]

    def _manifest(self, fmt: str, stage: str) -> dict[str, Any] | None:
        snapshot = self.store.current(fmt, stage)
        if snapshot is None:
            return None
        key = (fmt, stage, snapshot)
        with self._lock:
            cached = self._manifests.get(key)
        if cached is None:
            cached = self.store.manifest(fmt, stage, snapshot) or {}
            with self._lock:
                # Keep only live manifests: drop those of snapshots no longer current.
                self._manifests = {
                    k: v for k, v in self._manifests.items() if k[:2] != (fmt, stage)
                }
                self._manifests[key] = cached
        return cached

    def resolve(self, fmt: str, path: str, *, channels: Collection[str] | None = None) -> RepoFile:
        """The file at ``/repos/<fmt>/<path>``; with ``channels`` (a mirror's scope, e.g.
        ``{"apt/prod"}``), only files of those channels are found."""
        parts = [p for p in path.split("/") if p]
        if not parts or any(p in {".", ".."} for p in parts):
            raise self._missing(fmt, path)
        stages = self._stages(fmt, channels)
        if fmt == "apt":
            return self._apt(parts, path, stages)
        if fmt == "munki":
            return self._munki(parts, path, stages)
        if fmt in {"dnf", "pacman", "packet", "files"} and len(parts) >= 2 and parts[0] in stages:
            stage, rel = parts[0], "/".join(parts[1:])
            found = self._snapshot_or_pool(fmt, [stage], rel, rel)
            if found is None and _immutable(rel):
                found = self._older_snapshot_file(fmt, stage, rel)
            return found or self._raise(fmt, path)
        raise self._missing(fmt, path)

    def _older_snapshot_file(self, fmt: str, stage: str, rel: str) -> RepoFile | None:
        """A file whose name never changes content (apt by-hash, dnf's checksum-named
        repodata) from the channel's older kept snapshots, newest first: a client that read
        the previous InRelease or repomd.xml just before a publish still gets what it names."""
        for snapshot in reversed(self.store.snapshots(fmt, stage)):
            found = self._snapshot_file(fmt, stage, rel, snapshot=snapshot)
            if found:
                return found
        return None

    def _apt(self, parts: list[str], path: str, stages: list[str]) -> RepoFile:
        if parts[0] == "dists" and len(parts) >= 3:
            stage = self._suites.get(parts[1])
            if stage is not None and stage in stages:
                found = self._snapshot_file("apt", stage, path)
                if found is None and _immutable(path):
                    found = self._older_snapshot_file("apt", stage, path)
                if found:
                    return found
        if parts[0] == "pool":
            pooled = self._pool("apt", stages, path)
            if pooled:
                return pooled
        raise self._missing("apt", path)

    def _munki(self, parts: list[str], path: str, stages: list[str]) -> RepoFile:
        # catalogs/<name> and manifests/<name>: a stage's own, or that of the stage an alias
        # (publish.munki.catalogs) names.
        if parts[0] in ("catalogs", "manifests") and len(parts) == 2:
            name = parts[1]
            all_stages = self.settings.stage_names()
            stage = name if name in all_stages else self.settings.publish.munki.catalogs.get(name)
            if stage and stage in stages:
                found = self._snapshot_file("munki", stage, f"{parts[0]}/{stage}")
                if found:
                    return found
        if parts[0] == "pkgs" and len(parts) >= 2:
            pooled = self._pool("munki", stages, "/".join(parts[1:]))
            if pooled:
                return pooled
        raise self._missing("munki", path)

    def _snapshot_or_pool(
        self, fmt: str, stages: list[str], rel: str, pool_key: str
    ) -> RepoFile | None:
        return self._snapshot_file(fmt, stages[0], rel) or self._pool(fmt, stages, pool_key)

    def _snapshot_file(
        self, fmt: str, stage: str, rel: str, *, snapshot: str | None = None
    ) -> RepoFile | None:
        if rel == "manifest.json":
            return None
        snapshot = snapshot or self.store.current(fmt, stage)
        if snapshot is None:
            return None
        found = self.store.file(fmt, stage, rel, snapshot=snapshot)
        if found is None:
            return None
        return RepoFile(
            path=found,
            content_type=content_type_for(rel),
            immutable=_immutable(rel),
            etag=f'"{snapshot}:{found.stat().st_size}"',
            modified=_snapshot_time(snapshot),
        )

    def _pool(self, fmt: str, stages: list[str], key: str) -> RepoFile | None:
        for stage in stages:
            manifest = self._manifest(fmt, stage)
            entry = (manifest or {}).get("pool", {}).get(key)
            if entry is None:
                continue
            if "inline" in entry:
                data = base64.b64decode(entry["inline"])
                return RepoFile(
                    inline=data,
                    content_type=content_type_for(key),
                    immutable=False,
                    etag=f'"{hashlib.sha256(data).hexdigest()}"',
                )
            return RepoFile(
                blob=entry["sha256"],
                content_type=content_type_for(key),
                immutable=True,
                etag=f'"{entry["sha256"]}"',
            )
        return None

    @staticmethod
    def _missing(fmt: str, path: str) -> NotFound:
        return NotFound(
            f"/repos/{fmt}/{path} is not published",
            hint="a package appears once promoted into a published stage; "
            "see `packyard publications list`",
        )

    def _raise(self, fmt: str, path: str) -> RepoFile:
        raise self._missing(fmt, path)


def _immutable(rel: str) -> bool:
    """by-hash files and checksum-named repodata never change under their name."""
    return "/by-hash/" in rel or (
        rel.startswith("repodata/") and rel.endswith((".xml.gz", ".xml.xz", ".xml.zst"))
    )


def _snapshot_time(snapshot: str) -> datetime | None:
    """The time in a snapshot id (``20261121T160740291224-05029b``), UTC."""
    try:
        return datetime.strptime(snapshot[:21], "%Y%m%dT%H%M%S%f").replace(tzinfo=UTC)
    except ValueError:
        return None
