"""The *published tree*: the files a client fetches under ``/repos/`` — each channel's index
files from its live snapshot and the package files its manifest maps to blobs — with the same
relative paths, so a copy at ``<mirror>/repos/apt`` or ``http://bucket-host/<prefix>/repos/apt``
works as a client's base URL exactly like the server's. Shared by mirrors (services/mirrors.py
server side, services/mirror_sync.py client side) and S3 pushes (services/s3_push.py).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from packyard.domain.errors import (
    NotFound,
    PackyardError,
)

if TYPE_CHECKING:
    # The server side needs the database layer; the mirror client (``sync``) must not pay
    # for importing it on every run, so these are imported where used.
    from packyard.services.context import Context
    from packyard.services.publish import Channel

__all__ = [
    "KEY_FILES",
    "LISTING_VERSION",
    "MirrorIntegrityError",
    "MirrorUnavailable",
    "TreeFile",
    "channel_tree",
    "digest_file",
    "upload_order",
]

#: Version of the signed listing a mirror downloads (services/mirrors.signed_listing).
LISTING_VERSION = 1
#: The public keys every copy carries, below ``/repos/``.
KEY_FILES = ("keys/packyard.asc", "keys/packyard.gpg")


class MirrorIntegrityError(PackyardError):
    """A downloaded file or signature did not verify; nothing was changed."""

    code = "integrity"


class MirrorUnavailable(PackyardError):
    """The upstream server (or a push target) could not be reached or failed; try again."""

    code = "unreachable"


@dataclass(frozen=True, kw_only=True)
class TreeFile:
    """One file of a channel's published tree.

    ``path`` is relative to ``/repos/``; exactly one of ``file`` (a snapshot file), ``blob``
    (a blob-store hash) or ``inline`` (small bytes from the manifest) says where it comes from.
    """

    path: str
    sha256: str
    size: int
    kind: str  # "pool" (package files and their signatures) or "index"
    file: Path | None = None
    blob: str | None = None
    inline: bytes | None = None


#: A Munki snapshot's index folders, each holding one file named after the stage.
_MUNKI_FOLDERS = ("catalogs", "manifests")


def _index_urls(ctx: Context, channel: Channel, rel: str) -> list[str]:
    if channel.format == "apt":
        return [f"apt/{rel}"]
    if channel.format == "munki":
        # The resolver serves catalogs/<stage> and manifests/<stage> under the stage's name and
        # the configured aliases of the stage.
        names = [channel.stage] + [
            alias
            for alias, target in ctx.settings.publish.munki.catalogs.items()
            if target == channel.stage and alias not in ctx.settings.stage_names()
        ]
        folder = rel.partition("/")[0]
        return [f"munki/{folder}/{name}" for name in names] if folder in _MUNKI_FOLDERS else []
    return [f"{channel.format}/{channel.stage}/{rel}"]


def _pool_url(channel: Channel, key: str) -> str:
    if channel.format == "apt":
        return f"apt/{key}"
    if channel.format == "munki":
        return f"munki/pkgs/{key}"
    return f"{channel.format}/{channel.stage}/{key}"


def digest_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def channel_tree(
    ctx: Context, channel: Channel, *, snapshot: str | None = None
) -> dict[str, TreeFile]:
    """The files of ``channel``'s live (or given) snapshot by their path below ``/repos/``."""
    store = ctx.publications
    assert store is not None
    snapshot = snapshot or store.current(channel.format, channel.stage)
    if snapshot is None:
        return {}
    manifest = store.manifest(channel.format, channel.stage, snapshot)
    if manifest is None:
        raise NotFound(
            f"snapshot {snapshot} of {channel.name} is not kept",
            hint="list kept snapshots with `packyard publications list --history 10`",
        )
    out: dict[str, TreeFile] = {}
    # What publishing wrote (older snapshots: what the disk holds now). A file damaged on
    # disk since then no longer matches, so a mirror or a push refuses it (exit 9).
    listed = manifest.get("files")
    records: dict[str, Any] = listed if isinstance(listed, dict) else {}
    for rel in store.files(channel.format, channel.stage, snapshot):
        path = store.file(channel.format, channel.stage, rel, snapshot=snapshot)
        if path is None:
            continue
        record = records.get(rel)
        if isinstance(record, dict) and "sha256" in record and "size" in record:
            sha, size = str(record["sha256"]), int(record["size"])
        else:
            sha, size = digest_file(path)
        for url in _index_urls(ctx, channel, rel):
            out[url] = TreeFile(path=url, sha256=sha, size=size, kind="index", file=path)
    for key, entry in sorted((manifest.get("pool") or {}).items()):
        url = _pool_url(channel, key)
        if "inline" in entry:
            data = base64.b64decode(entry["inline"])
            out[url] = TreeFile(
                path=url,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                kind="pool",
                inline=data,
            )
        else:
            out[url] = TreeFile(
                path=url,
                sha256=str(entry["sha256"]),
                size=int(entry["size"]),
                kind="pool",
                blob=str(entry["sha256"]),
            )
    return out


def _is_entry_point(path: str) -> bool:
    """Indexes a client fetches first, naming the others: written last."""
    name = PurePosixPath(path).name
    return (
        name in {"InRelease", "Release", "Release.gpg"}
        or name.startswith("repomd.xml")
        or name.startswith("index.json")
        or "/catalogs/" in f"/{path}"
        or path.startswith("munki/manifests/")  # after the catalogs they name (sorted by path)
        or re.search(r"\.(db|files)(\.tar\.\w+)?(\.sig)?$", name) is not None
    )


def upload_order(path: str, kind: str) -> tuple[int, int, str]:
    """Sort key: package files, then by-hash indexes, then other indexes, then entry points
    (signatures before what they sign, InRelease very last) — so a client never sees an index
    naming a file that is not there yet."""
    if kind == "pool":
        rank = 0
    elif "/by-hash/" in path:
        rank = 1
    elif not _is_entry_point(path):
        rank = 2
    else:
        rank = 3
    name = PurePosixPath(path).name
    last = 2 if name == "InRelease" else 0 if name.endswith((".sig", ".asc", ".gpg", ".key")) else 1
    return (rank, last, path)
