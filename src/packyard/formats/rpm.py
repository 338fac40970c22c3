"""RPM packages: the lead, the signature header and the main header; never the payload.

The header format is parsed here rather than with rpmfile, whose header reader scans byte by
byte for the header magic (minutes on a large garbage file), asserts on bad input and merges
signature and main tags into one namespace. Layout (rpm's ``lib/header.c``): a 96-byte lead,
then each header is ``8e ad e8 01``, 4 reserved bytes, an entry count and a data-store size
(both big-endian uint32), 16-byte index entries (tag, type, offset, count) and the store. The
signature header's store is padded to 8 bytes.

Deliberately not handled: signature verification (done by rpm/dnf against imported keys),
the file list, changelog and scripts (not indexed by Packyard), and the payload.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

from packyard.domain.artifacts import ArtifactFormat, ArtifactMetadata
from packyard.domain.errors import InvalidArtifact

from ._io import read_exact, stream_size

__all__ = ["RPM_MAGIC", "RpmHeader", "dist_tag", "inspect_rpm", "metadata_from_header"]

RPM_MAGIC: Final = b"\xed\xab\xee\xdb"
_LEAD_SIZE: Final = 96
_HEADER_MAGIC: Final = b"\x8e\xad\xe8\x01"
_MAX_ENTRIES: Final = 1_000_000
#: rpm's own limit for one header (headerMaxbytes): anything larger is damage or an attack.
_MAX_STORE: Final = 256 * 1024 * 1024
_HINT: Final = "the file is truncated or damaged; upload it again or rebuild it with rpmbuild"

# Header tags (rpm's rpmtag.h).
_NAME, _VERSION, _RELEASE, _EPOCH = 1000, 1001, 1002, 1003
_ARCH, _SOURCERPM, _SOURCEPACKAGE = 1022, 1044, 1106
_SIZE, _LONGSIZE = 1009, 5009
#: Scalar tags copied into ``fields`` under rpm's lower-case tag names.
_FIELD_TAGS: Final = {
    1004: "summary",
    1005: "description",
    1006: "buildtime",
    1007: "buildhost",
    1010: "distribution",
    1011: "vendor",
    1014: "license",
    1015: "packager",
    1016: "group",
    1020: "url",
    1021: "os",
    1044: "sourcerpm",
    1124: "payloadformat",
    1125: "payloadcompressor",
    1155: "disttag",
    5012: "bugurl",
}
#: relation -> (name tag, flags tag, version tag)
_RELATION_TAGS: Final = {
    "requires": (1049, 1048, 1050),
    "provides": (1047, 1112, 1113),
    "conflicts": (1054, 1053, 1055),
    "obsoletes": (1090, 1114, 1115),
    "recommends": (5046, 5048, 5047),
    "suggests": (5049, 5051, 5050),
    "supplements": (5052, 5054, 5053),
    "enhances": (5055, 5057, 5056),
}
_SENSE_LESS, _SENSE_GREATER, _SENSE_EQUAL = 0x02, 0x04, 0x08
_OPERATORS: Final = {
    _SENSE_LESS: "<",
    _SENSE_GREATER: ">",
    _SENSE_EQUAL: "=",
    _SENSE_LESS | _SENSE_EQUAL: "<=",
    _SENSE_GREATER | _SENSE_EQUAL: ">=",
}
#: Dist tags of the distributions that use them: el9, el9_3, fc40, amzn2023, mga9, lp155...
_DIST_RE: Final = re.compile(
    r"(?:^|[.+])((?:el|fc|amzn|mga|ol|rhel|sle|lp|mdv|ph|oe|an|ky|vl|anolis)\d+)(?:_\d+)*(?=$|[.+])"
)

_TYPE_INT8, _TYPE_INT16, _TYPE_INT32, _TYPE_INT64 = 2, 3, 4, 5
_TYPE_STRING, _TYPE_BIN, _TYPE_STRING_ARRAY, _TYPE_I18N = 6, 7, 8, 9
_INT_FORMATS: Final = {_TYPE_INT8: "B", _TYPE_INT16: "H", _TYPE_INT32: "I", _TYPE_INT64: "Q"}


def _invalid(message: str) -> InvalidArtifact:
    return InvalidArtifact(message, hint=_HINT, details={"format": "rpm"})


@dataclass(frozen=True)
class RpmHeader:
    """One parsed header: its index entries and data store; values decoded on demand."""

    entries: Mapping[int, tuple[int, int, int]]
    store: bytes

    def _strings(self, offset: int, count: int) -> list[str]:
        values: list[str] = []
        pos = offset
        for _ in range(count):
            end = self.store.find(b"\x00", pos)
            if end < 0:
                raise _invalid("rpm header string runs past the end of its data store")
            values.append(self.store[pos:end].decode("utf-8", "replace"))
            pos = end + 1
        return values

    def get(self, tag: int) -> Any:
        """Return a tag's value: str, list[str], int, list[int], bytes or None if absent."""
        entry = self.entries.get(tag)
        if entry is None:
            return None
        kind, offset, count = entry
        if kind in (_TYPE_STRING, _TYPE_I18N):
            # I18N strings hold one translation per locale; the first is the C locale.
            return self._strings(offset, 1)[0]
        if kind == _TYPE_STRING_ARRAY:
            return self._strings(offset, count)
        if kind in _INT_FORMATS:
            fmt = f">{count}{_INT_FORMATS[kind]}"
            end = offset + struct.calcsize(fmt)
            if end > len(self.store):
                raise _invalid(f"rpm header tag {tag} runs past the end of its data store")
            return list(struct.unpack_from(fmt, self.store, offset))
        if kind == _TYPE_BIN:
            return self.store[offset : offset + count]
        return None

    def string(self, tag: int) -> str | None:
        """Return a tag as one string (first element of an array), or None."""
        value = self.get(tag)
        if isinstance(value, list):
            return str(value[0]) if value else None
        return value if isinstance(value, str) else None

    def integer(self, tag: int) -> int | None:
        """Return the first integer of a numeric tag, or None."""
        value = self.get(tag)
        if isinstance(value, list) and value and isinstance(value[0], int):
            return value[0]
        return None

    def strings(self, tag: int) -> list[str]:
        """Return a string-array tag (a lone string becomes a one-element list)."""
        value = self.get(tag)
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [str(item) for item in value]
        return []

    def integers(self, tag: int) -> list[int]:
        """Return a numeric array tag, or [] if absent."""
        value = self.get(tag)
        return [int(item) for item in value] if isinstance(value, list) else []


def _read_header(stream: BinaryIO, *, total: int, what: str) -> RpmHeader:
    start = stream.tell()
    intro = read_exact(stream, 16)
    if len(intro) < 16:
        raise _invalid(f"rpm {what} header is truncated")
    if intro[:4] != _HEADER_MAGIC:
        raise _invalid(f"rpm {what} header magic is missing at offset {start}")
    count, store_size = struct.unpack(">II", intro[8:16])
    if count > _MAX_ENTRIES or store_size > _MAX_STORE:
        raise _invalid(f"rpm {what} header declares an implausible size")
    needed = count * 16 + store_size
    if stream.tell() + needed > total:
        raise _invalid(
            f"rpm {what} header is truncated: it needs {needed} bytes but only "
            f"{total - stream.tell()} remain"
        )
    index = read_exact(stream, count * 16)
    store = read_exact(stream, store_size)
    entries: dict[int, tuple[int, int, int]] = {}
    for tag, kind, offset, n in struct.iter_unpack(">IIII", index):
        if offset >= max(store_size, 1) and n:
            raise _invalid(f"rpm {what} header tag {tag} points outside its data store")
        entries.setdefault(tag, (kind, offset, n))
    return RpmHeader(entries=entries, store=store)


def dist_tag(release: str) -> str | None:
    """Return the distribution tag in an rpm release (``1.el9_3`` -> ``el9``), or None."""
    matches = _DIST_RE.findall(release)
    return matches[-1] if matches else None


def _relations(header: RpmHeader) -> dict[str, tuple[str, ...]]:
    relations: dict[str, tuple[str, ...]] = {}
    for key, (name_tag, flags_tag, version_tag) in _RELATION_TAGS.items():
        names = header.strings(name_tag)
        if not names:
            continue
        flags = header.integers(flags_tag)
        versions = header.strings(version_tag)
        rendered: list[str] = []
        for i, name in enumerate(names):
            version = versions[i] if i < len(versions) else ""
            op = _OPERATORS.get((flags[i] if i < len(flags) else 0) & 0x0E)
            rendered.append(f"{name} {op} {version}" if version and op else name)
        relations[key] = tuple(rendered)
    return relations


def metadata_from_header(header: RpmHeader, *, source: bool = False) -> ArtifactMetadata:
    """Build metadata from a parsed main header.

    Args:
        header: The main (not signature) header.
        source: The lead says this is a source package.

    Raises:
        InvalidArtifact: name, version or release is missing.
    """
    name = header.string(_NAME)
    version = header.string(_VERSION)
    release = header.string(_RELEASE)
    if not name or not version or release is None:
        raise _invalid("rpm header lacks name, version or release")
    epoch = header.integer(_EPOCH)
    evr = f"{version}-{release}" if epoch is None else f"{epoch}:{version}-{release}"
    source = source or _SOURCEPACKAGE in header.entries
    fields: dict[str, Any] = {"epoch": epoch or 0, "version": version, "release": release}
    for tag, key in _FIELD_TAGS.items():
        value = header.get(tag)
        if isinstance(value, list) and value and isinstance(value[0], int):
            value = value[0]
        elif isinstance(value, list):
            value = header.string(tag)
        if value is not None and not isinstance(value, bytes):
            fields[key] = value
    size = header.integer(_LONGSIZE)
    fields["size"] = size if size is not None else header.integer(_SIZE)
    return ArtifactMetadata(
        format=ArtifactFormat.RPM,
        name=name,
        version=evr,
        arch="src" if source else header.string(_ARCH),
        distro=dist_tag(release),
        kind="source" if source else None,
        relations=_relations(header),
        fields=fields,
    )


def inspect_rpm(stream: BinaryIO) -> ArtifactMetadata:
    """Read an rpm's headers (not its payload).

    Raises:
        InvalidArtifact: the lead or a header is missing, truncated or corrupt.
    """
    total = stream_size(stream)
    stream.seek(0)
    lead = read_exact(stream, _LEAD_SIZE)
    if len(lead) < _LEAD_SIZE or not lead.startswith(RPM_MAGIC):
        raise _invalid("rpm lead is truncated")
    lead_type = struct.unpack(">H", lead[6:8])[0]
    # Nothing in the signature header is metadata; read it only to find the main header,
    # which starts at the next 8-byte boundary.
    _read_header(stream, total=total, what="signature")
    stream.seek((stream.tell() + 7) // 8 * 8)
    header = _read_header(stream, total=total, what="main")
    return metadata_from_header(header, source=lead_type == 1)
