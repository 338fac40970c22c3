"""One pass over a (possibly compressed) tar to learn what kind of package it is.

Pacman packages, packets, ``docker save`` and OCI image tars, Python sdists and OVAs are all
tars; which one is decided by member names, and the small metadata members that decide it
are kept in memory (bounded) so each codec can parse them afterwards without a second pass.

Deliberately not handled: safety of members (packets re-read their archive through
``safetar``; the other kinds are stored, never unpacked, by the server) and tars without the
POSIX ``ustar`` magic (pre-1988 v7 tars), which end up generic.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, field
from typing import BinaryIO, Final

from ._io import CORRUPT_DATA_ERRORS, decompressed, open_tar, read_exact
from .safetar import normalise_name

__all__ = ["TarScan", "is_tar_header", "scan_tar"]

#: Top-level members whose content decides or describes the kind of tar.
_KEEP_TOP: Final = frozenset(
    {".PKGINFO", "control.json", "manifest.json", "index.json", "oci-layout", "repositories"}
)
_KEEP_LIMIT: Final = 4 * 1024 * 1024
#: Image configs and manifests are small blobs; layers are large. Keep the small ones.
_BLOB_LIMIT: Final = 256 * 1024
_KEEP_BUDGET: Final = 32 * 1024 * 1024
#: Classification gives up (the file is generic) after this many members.
_MAX_SCAN_MEMBERS: Final = 200_000


@dataclass(kw_only=True)
class TarScan:
    """What one pass over a tar saw.

    Attributes:
        compression: Compression of the outer stream (``None`` for a plain tar).
        top_names: First components of member names; those with members below them end
            in ``/`` (``pkg-1.0/``), so a lone top-level directory is easy to spot.
        kept: Content of the small metadata members, by normalised name.
        complete: False when the scan stopped early (pacman metadata found, or the member cap).
    """

    compression: str | None
    top_names: set[str] = field(default_factory=set)
    kept: dict[str, bytes] = field(default_factory=dict)
    complete: bool = True


def is_tar_header(block: bytes) -> bool:
    """True when a 512-byte block carries the POSIX/GNU ``ustar`` magic."""
    return len(block) >= 263 and block[257:262] == b"ustar"


def _want(name: str, info: tarfile.TarInfo, *, used: int) -> bool:
    if not info.isreg() or used + info.size > _KEEP_BUDGET:
        return False
    parts = name.split("/")
    if len(parts) == 1:
        return (name in _KEEP_TOP or name.endswith((".json", ".ovf"))) and (
            info.size <= _KEEP_LIMIT
        )
    if len(parts) == 2 and parts[1] == "PKG-INFO":
        return info.size <= _KEEP_LIMIT
    return len(parts) == 3 and parts[0] == "blobs" and info.size <= _BLOB_LIMIT


def scan_tar(stream: BinaryIO, compression: str | None) -> TarScan | None:
    """Scan a tar's members; return None when the (decompressed) stream is not a tar.

    Corrupt data after a valid start ends the scan early instead of raising: deciding the
    kind never fails, and the codec that claims the file reports what it misses.
    """
    stream.seek(0)
    try:
        head = read_exact(decompressed(stream, compression), 512)
    except CORRUPT_DATA_ERRORS:
        return None
    if not is_tar_header(head):
        return None
    stream.seek(0)
    scan = TarScan(compression=compression)
    used = 0
    try:
        with open_tar(stream, compression) as tar:
            for count, info in enumerate(tar):
                if count >= _MAX_SCAN_MEMBERS:
                    scan.complete = False
                    break
                name = normalise_name(info.name)
                top = name.split("/", 1)[0]
                if name:
                    scan.top_names.add(top + "/" if "/" in name or info.isdir() else top)
                if _want(name, info, used=used):
                    fileobj = tar.extractfile(info)
                    if fileobj is not None:
                        scan.kept[name] = read_exact(fileobj, info.size)
                        used += info.size
                # makepkg stores .PKGINFO among the leading dotfiles; once the payload starts,
                # nothing else can change the verdict, so skip decompressing the rest.
                if ".PKGINFO" in scan.kept and not top.startswith("."):
                    scan.complete = False
                    break
    except CORRUPT_DATA_ERRORS:
        scan.complete = False
    return scan
