"""Pieces shared by the repository index writers, and the JSON index for packets and files.

Index writers are pure: values in, ``bytes``/``str`` out. Publishing computes one entry per
artifact once (the caller caches it), then assembles a channel's entries into an index,
compresses and hashes it here, and has it signed elsewhere.

Deliberately not handled: signing (GnuPG and TUF live in ``integrations``), writing files or
choosing where a publication lives on disk, and deciding which artifacts a channel holds.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar
from urllib.parse import quote

__all__ = [
    "JSON_INDEX_SCHEMA",
    "Digests",
    "arch_file_suffix",
    "check_hex",
    "check_relative_path",
    "check_single_line",
    "compress_variants",
    "file_item",
    "gzip_bytes",
    "json_index",
    "json_index_head",
    "json_index_item",
    "json_index_tail",
    "packet_item",
    "split_by_architecture",
    "url_path",
    "xz_bytes",
]

T = TypeVar("T")

#: Version of the JSON index layout; bump when a key changes meaning or disappears.
JSON_INDEX_SCHEMA: Final = 1

#: xz preset for published indexes. Measured on Debian's bookworm-security Packages
#: (2.5 MB, CPython 3.11 lzma): preset 1 -> 458 KB in 88 ms, preset 6 (xz's default) ->
#: 384 KB in 544 ms, preset 9 -> same size as 6. Every promotion republishes a channel, so 6x
#: the CPU for 16 % smaller files is a bad trade; clients fetch .xz once per change anyway.
XZ_PRESET: Final = 1
#: gzip level 9 costs 50 ms on the same file against 36 ms for 6 and is 1 % smaller.
GZIP_LEVEL: Final = 9

_HEX: Final = re.compile(r"^[0-9a-f]+$")
_CONTROL_CHARS: Final = re.compile(r"[\x00-\x1f\x7f]")
#: Runs of characters an architecture cannot keep in a published file name.
_NOT_IN_FILE_NAMES: Final = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, kw_only=True)
class Digests:
    """Size and the hashes repository indexes quote for one file."""

    size: int
    md5: str
    sha1: str
    sha256: str
    sha512: str

    @classmethod
    def of(cls, data: bytes) -> Digests:
        """Hash ``data`` once with every algorithm."""
        return cls(
            size=len(data),
            md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
            sha1=hashlib.sha1(data, usedforsecurity=False).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest(),
            sha512=hashlib.sha512(data).hexdigest(),
        )


def check_hex(value: str, *, length: int, what: str) -> str:
    """Return ``value`` when it is ``length`` lower-case hex digits.

    Raises:
        ValueError: it is not.
    """
    if len(value) != length or not _HEX.match(value):
        raise ValueError(f"{what} must be {length} lower-case hex digits, got {value!r}")
    return value


def check_single_line(value: str, *, what: str) -> str:
    """Return ``value`` when it holds no control characters (newlines would break indexes).

    Raises:
        ValueError: it holds one.
    """
    if _CONTROL_CHARS.search(value):
        raise ValueError(f"{what} must be a single line without control characters: {value!r}")
    return value


def check_relative_path(value: str, *, what: str) -> str:
    """Return ``value`` when it is a clean relative path (no ``..``, ``.``, empty parts).

    Raises:
        ValueError: it is absolute, has empty, ``.`` or ``..`` parts, or control characters.
    """
    check_single_line(value, what=what)
    parts = value.split("/")
    if not value or value.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"{what} must be a relative path without '.', '..' or '//': {value!r}")
    return value


def arch_file_suffix(arch: str | None) -> str:
    """``-<arch>`` for the file name an artifact is published under, or ``""`` without an
    architecture (so such a file keeps the name it always had).

    Builds of one name and version for different architectures are different artifacts and
    must not share a URL. Runs of characters other than letters, digits, ``.``, ``_`` and
    ``-`` become ``+``: ``x86_64,arm64`` (a pkg's hostArchitectures) gives ``-x86_64+arm64``,
    and nothing an upload declares can add a ``/`` or a control character to a path.
    """
    if not arch:
        return ""
    return "-" + _NOT_IN_FILE_NAMES.sub("+", arch)


def url_path(path: str) -> str:
    """``path`` (relative, ``/``-separated) percent-encoded for an index's ``url``: a file
    named ``fw blob#1?.bin`` is fetched as ``fw%20blob%231%3F.bin``, not cut at ``#``."""
    return "/".join(quote(part, safe="") for part in path.split("/"))


def gzip_bytes(data: bytes) -> bytes:
    """gzip ``data`` deterministically: no file name, mtime 0."""
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def xz_bytes(data: bytes) -> bytes:
    """xz ``data`` (CRC64 check, like xz(1)) with the preset chosen above."""
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=XZ_PRESET)


def compress_variants(data: bytes) -> dict[str, bytes]:
    """Return the published variants of an index keyed by file suffix: ``""``, ``.gz``, ``.xz``.

    Output is deterministic for a given zlib/liblzma build; a different build may compress
    differently, which is harmless because each publication hashes what it wrote.
    """
    return {"": data, ".gz": gzip_bytes(data), ".xz": xz_bytes(data)}


def split_by_architecture(
    entries: Iterable[tuple[str, T]], *, architectures: Sequence[str], wildcard: str
) -> dict[str, list[T]]:
    """Group entries into one list per configured architecture.

    An entry whose architecture is ``wildcard`` (deb ``all``, pacman ``any``) goes into every
    list, so a client that fetches only its own architecture's index still sees it. Entries
    for architectures the channel does not publish are left out. Order within each list
    follows the input.

    Args:
        entries: ``(architecture, entry)`` pairs.
        architectures: The channel's architectures, in the order the result keeps.
        wildcard: The architecture name meaning "installs anywhere".

    Raises:
        ValueError: ``architectures`` is empty, repeats a name or lists the wildcard itself.
    """
    if not architectures:
        raise ValueError("a channel needs at least one architecture")
    if len(set(architectures)) != len(architectures):
        raise ValueError(f"architectures repeat a name: {list(architectures)}")
    if wildcard in architectures:
        raise ValueError(
            f"{wildcard!r} is not a channel architecture: {wildcard} packages are copied "
            "into every architecture's index"
        )
    result: dict[str, list[T]] = {arch: [] for arch in architectures}
    for arch, entry in entries:
        if arch == wildcard:
            for bucket in result.values():
                bucket.append(entry)
        elif arch in result:
            result[arch].append(entry)
    return result


def _timestamp(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def packet_item(
    *,
    name: str,
    version: str,
    tags: Sequence[str],
    sha256: str,
    size: int,
    url: str,
    scripts: Sequence[str] = (),
    arch: str | None = None,
) -> dict[str, Any]:
    """One packet in a packet index: identity, tags, the file's hash, size and URL.

    ``scripts`` names the maintainer scripts the packet carries (``preinst``...), so an agent
    can tell before downloading whether installing runs code. ``arch`` is the packet's
    ``control.json`` architecture, ``null`` in the index for a packet without one: packets of
    one name and version for several architectures are several items, told apart by it.
    """
    check_hex(sha256, length=64, what="sha256")
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    return {
        "name": check_single_line(name, what="name"),
        "version": check_single_line(version, what="version"),
        # Not checked like name and version: control.json leaves it free, and JSON escapes it.
        "arch": arch,
        "tags": sorted(set(tags)),
        "sha256": sha256,
        "size": size,
        "url": check_single_line(url, what="url"),
        "scripts": sorted(set(scripts)),
    }


def file_item(
    *,
    filename: str,
    sha256: str,
    size: int,
    url: str,
    name: str | None = None,
    version: str | None = None,
) -> dict[str, Any]:
    """One file in a generic file index (images, wheels, anything without its own index)."""
    check_hex(sha256, length=64, what="sha256")
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    item: dict[str, Any] = {
        "filename": check_single_line(filename, what="filename"),
        "sha256": sha256,
        "size": size,
        "url": check_single_line(url, what="url"),
    }
    if name is not None:
        item["name"] = name
    if version is not None:
        item["version"] = version
    return item


def json_index(
    *, channel: str, generated_at: datetime, items: Iterable[Mapping[str, Any]]
) -> bytes:
    """Canonical JSON index: sorted keys, 2-space indent, UTF-8, one trailing newline.

    The same values always give the same bytes, so the index can be hashed and signed. Items
    keep the caller's order (sort them before calling for reproducible publications). The
    bytes are exactly ``json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False)``
    plus a newline, built from ``json_index_item`` parts so that a publisher can cache the
    parts per item (``json_index_head`` + items joined by ``",\n"`` + ``json_index_tail``).

    Raises:
        ValueError: ``generated_at`` is naive, or an item is not JSON (NaN, non-str keys...).
    """
    parts = [json_index_item(item) for item in items]
    return (
        json_index_head(channel=channel, generated_at=generated_at, count=len(parts))
        + b",\n".join(parts)
        + json_index_tail(count=len(parts))
    )


def json_index_head(*, channel: str, generated_at: datetime, count: int) -> bytes:
    """The bytes of a JSON index before its first item."""
    name = json.dumps(check_single_line(channel, what="channel"), ensure_ascii=False)
    when = json.dumps(_timestamp(generated_at))
    opening = '"items": [\n' if count else '"items": ['
    return f'{{\n  "channel": {name},\n  "generated_at": {when},\n  {opening}'.encode()


def json_index_tail(*, count: int) -> bytes:
    """The bytes of a JSON index after its last item."""
    closing = "\n  ]," if count else "],"
    return f'{closing}\n  "schema": {JSON_INDEX_SCHEMA}\n}}\n'.encode()


def json_index_item(item: Mapping[str, Any]) -> bytes:
    """One item of a JSON index as it appears inside the ``items`` list (indented)."""
    try:
        text = json.dumps(dict(item), sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"an index item is not JSON-serialisable: {exc}") from None
    # json.dumps escapes newlines inside strings, so every newline here is structural.
    return ("    " + text.replace("\n", "\n    ")).encode("utf-8")
