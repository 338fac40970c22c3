"""Debian binary packages (``.deb``): an ar archive of debian-binary, control.tar.*, data.tar.*.

The ar container is parsed here (it is 60-byte headers and even padding); only the control
member is decompressed, and only its ``control`` file is read. ``data.tar.*`` must be present
but is never read, so a multi-GiB package costs a few KiB of I/O.

Deliberately not handled: udebs' and ddebs' special meaning (they parse like debs), source
packages (``.dsc`` + tarballs are several files), signature members (``_gpg*``) beyond skipping
them, maintainer scripts and md5sums (not metadata Packyard indexes), and verifying that the
data member decompresses (installation does that).
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Final

from debian.deb822 import Deb822

from packyard.domain.artifacts import ArtifactFormat, ArtifactMetadata
from packyard.domain.errors import InvalidArtifact

from ._io import (
    CORRUPT_DATA_ERRORS,
    SubStream,
    compression_from_suffix,
    open_tar,
    read_bounded,
    read_exact,
    stream_size,
)
from .safetar import normalise_name

__all__ = ["AR_MAGIC", "RELATION_FIELDS", "inspect_deb", "parse_control"]

AR_MAGIC: Final = b"!<arch>\n"
_AR_HEADER_SIZE: Final = 60
#: Relationship fields as Debian policy 7.1 lists them, keyed by our lower-case relation name.
RELATION_FIELDS: Final = (
    "Depends",
    "Pre-Depends",
    "Recommends",
    "Suggests",
    "Enhances",
    "Breaks",
    "Conflicts",
    "Provides",
    "Replaces",
)
_CONTROL_MEMBER_LIMIT: Final = 256 * 1024 * 1024
_CONTROL_FILE_LIMIT: Final = 4 * 1024 * 1024
_MEMBER_RE: Final = re.compile(r"^(control|data)\.tar(\.[a-z0-9]+)?$")
_HINT_REBUILD: Final = (
    "the file is truncated or damaged; upload it again or rebuild it with dpkg-deb"
)


@dataclass(frozen=True, kw_only=True)
class _ArMember:
    name: str
    offset: int
    size: int


def _invalid(message: str, hint: str = _HINT_REBUILD) -> InvalidArtifact:
    return InvalidArtifact(message, hint=hint, details={"format": "deb"})


def _iter_ar(stream: BinaryIO) -> Iterator[_ArMember]:
    """Yield ar members by header, checking each fits in the file; never reads member data."""
    total = stream_size(stream)
    offset = len(AR_MAGIC)
    while offset < total:
        stream.seek(offset)
        header = read_exact(stream, _AR_HEADER_SIZE)
        if len(header) < _AR_HEADER_SIZE:
            # A lone padding newline at the very end is tolerated by ar and dpkg.
            if header.strip(b"\n") == b"":
                return
            raise _invalid(f"ar member header at offset {offset} is truncated")
        if header[58:60] != b"`\n":
            raise _invalid(f"ar member header at offset {offset} is corrupt (bad terminator)")
        name = header[0:16].decode("ascii", "replace").rstrip(" ").rstrip("/")
        try:
            size = int(header[48:58].decode("ascii").strip())
        except ValueError:
            raise _invalid(f"ar member {name!r} has a corrupt size field") from None
        start = offset + _AR_HEADER_SIZE
        if size < 0 or start + size > total:
            raise _invalid(
                f"ar member {name!r} is truncated: its header says {size} bytes but only "
                f"{max(total - start, 0)} remain"
            )
        yield _ArMember(name=name, offset=start, size=size)
        offset = start + size + (size % 2)


def _read_control_file(stream: BinaryIO, member: _ArMember) -> bytes:
    suffix = member.name[len("control.tar") :]
    try:
        compression = compression_from_suffix(suffix)
    except KeyError:
        raise _invalid(
            f"{member.name} uses a compression Packyard cannot read",
            hint="rebuild with dpkg-deb -Zxz, -Zgzip or -Zzstd",
        ) from None
    if member.size > _CONTROL_MEMBER_LIMIT:
        raise _invalid(f"{member.name} is implausibly large ({member.size} bytes)")
    window = io.BufferedReader(SubStream(stream, start=member.offset, length=member.size))
    try:
        with open_tar(window, compression) as tar:
            for info in tar:
                if normalise_name(info.name) != "control":
                    continue
                if not info.isreg():
                    raise _invalid(f"'control' in {member.name} is not a regular file")
                fileobj = tar.extractfile(info)
                if fileobj is None:
                    break
                return read_bounded(
                    fileobj, limit=_CONTROL_FILE_LIMIT, what=f"'control' in {member.name}"
                )
    except InvalidArtifact:
        raise
    except CORRUPT_DATA_ERRORS as exc:
        raise _invalid(f"{member.name} is corrupt: {exc}") from exc
    raise _invalid(
        f"{member.name} has no 'control' file",
        hint="the package was not built by dpkg-deb; rebuild it with dpkg-deb --build",
    )


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # Policy requires UTF-8, but pre-2008 packages used Latin-1 in Maintainer/Description.
        return raw.decode("latin-1")


def parse_control(text: str) -> ArtifactMetadata:
    """Turn the text of a binary package's ``control`` file into metadata.

    Raises:
        InvalidArtifact: the paragraph is empty or lacks Package or Version.
    """
    paragraph = Deb822(text)
    missing = [key for key in ("Package", "Version") if not paragraph.get(key, "").strip()]
    if missing:
        raise _invalid(
            f"the control file has no {' or '.join(missing)} field",
            hint="a binary package's control file needs Package, Version and Architecture",
        )
    fields: dict[str, str] = {key: paragraph[key] for key in paragraph}
    relations: dict[str, tuple[str, ...]] = {}
    for key in RELATION_FIELDS:
        value = paragraph.get(key)
        if value is None:
            continue
        # Continuation lines may split a relation; collapse whitespace like dpkg does.
        parts = (" ".join(part.split()) for part in value.split(","))
        relations[key.lower()] = tuple(part for part in parts if part)
    fields["control"] = text
    return ArtifactMetadata(
        format=ArtifactFormat.DEB,
        name=paragraph["Package"].strip(),
        version=paragraph["Version"].strip(),
        arch=(paragraph.get("Architecture") or "").strip() or None,
        relations=relations,
        fields=fields,
    )


def inspect_deb(stream: BinaryIO) -> ArtifactMetadata | None:
    """Read a .deb's control data, or return None for an ar archive that is not a deb.

    Raises:
        InvalidArtifact: the file starts like a deb but is truncated or misses members.
    """
    stream.seek(0)
    if read_exact(stream, len(AR_MAGIC)) != AR_MAGIC:
        return None
    members = _iter_ar(stream)
    first = next(members, None)
    if first is None or first.name != "debian-binary":
        # An ar archive that is not a deb (a static library, say): not ours to judge.
        return None
    stream.seek(first.offset)
    version = read_exact(stream, min(first.size, 16)).strip()
    if not version.startswith(b"2."):
        raise _invalid(
            f"debian-binary says format {version.decode('ascii', 'replace')!r}, "
            "Packyard reads format 2.x",
        )
    control: _ArMember | None = None
    data: _ArMember | None = None
    for member in members:
        match = _MEMBER_RE.match(member.name)
        if match is None:
            continue  # _gpgbuilder and other signature members
        if match.group(1) == "control" and control is None:
            control = member
        elif match.group(1) == "data" and data is None:
            data = member
    if control is None:
        raise _invalid("the deb has no control.tar member")
    if data is None:
        raise _invalid("the deb has no data.tar member")
    return parse_control(_decode(_read_control_file(stream, control)))
