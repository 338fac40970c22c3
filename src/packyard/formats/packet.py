"""Packets: Packyard's own package format for the device agent (the successor of jamesd's).

A packet is a tar (plain or gzip/xz/zstd/bzip2 compressed) holding:

- ``control.json``: ``{"name", "version", "tags": [str], "description", "arch"?}``;
- ``data.tar`` or ``data.tar.{xz,zst,gz,bz2}``: the file tree as laid out on the target,
  rooted at ``.``;
- optional ``preinst``, ``postinst``, ``prerm``, ``postrm`` scripts.

Every member of both the outer tar and the data tar is checked with ``safetar`` on upload,
so a packet that is accepted can be extracted by the agent with the same rules.

Deliberately not handled: building packets (``services.packets``), running scripts (the
agent), signatures (publication metadata is signed, not each packet) and dependencies between
packets (assignments say what goes where; tags describe, they do not require).
"""

from __future__ import annotations

import json
import re
from typing import IO, Any, BinaryIO, Final

from packyard.domain.artifacts import ArtifactFormat, ArtifactMetadata
from packyard.domain.errors import InvalidArtifact

from ._io import CORRUPT_DATA_ERRORS, compression_from_suffix, open_tar
from ._tarscan import TarScan
from .safetar import DEFAULT_LIMITS, TarLimits, iter_safe_members, normalise_name

__all__ = [
    "CONTROL_NAME",
    "DATA_NAMES",
    "SCRIPT_NAMES",
    "inspect_packet",
    "is_packet",
    "parse_control_json",
]

CONTROL_NAME: Final = "control.json"
SCRIPT_NAMES: Final = ("preinst", "postinst", "prerm", "postrm")
DATA_NAMES: Final = ("data.tar", "data.tar.xz", "data.tar.zst", "data.tar.gz", "data.tar.bz2")
#: Names and versions end up in paths and URLs on devices: keep them to a safe alphabet.
_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_VERSION_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~:-]*$")
_HINT: Final = (
    "control.json must be a JSON object with string 'name' and 'version', a list of "
    "string 'tags' and a string 'description'; `packyard packet init` writes a valid one"
)


def _invalid(message: str, hint: str = _HINT) -> InvalidArtifact:
    return InvalidArtifact(message, hint=hint, details={"format": "packet"})


def is_packet(scan: TarScan) -> bool:
    """True when a scanned tar claims to be a packet (it has a top-level control.json)."""
    return CONTROL_NAME in scan.top_names


def parse_control_json(raw: bytes) -> dict[str, Any]:
    """Parse and validate control.json; return it as a dict (tags defaulted to []).

    Raises:
        InvalidArtifact: not JSON, not an object, or a required key is missing or mistyped.
    """
    try:
        control = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _invalid(f"control.json is not valid JSON: {exc}") from None
    if not isinstance(control, dict):
        raise _invalid("control.json is not a JSON object")
    for key in ("name", "version"):
        if not isinstance(control.get(key), str) or not control[key]:
            raise _invalid(f"control.json has no string {key!r}")
    if not _NAME_RE.match(control["name"]):
        raise _invalid(
            f"control.json name {control['name']!r} has characters other than letters, "
            "digits and . _ + -"
        )
    if not _VERSION_RE.match(control["version"]):
        raise _invalid(
            f"control.json version {control['version']!r} has characters other than "
            "letters, digits and . _ + ~ : -"
        )
    tags = control.setdefault("tags", [])
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise _invalid("control.json 'tags' is not a list of strings")
    for key in ("description", "arch"):
        if key in control and not isinstance(control[key], str | None):
            raise _invalid(f"control.json {key!r} is not a string")
    return control


def _count_data(tar_member: IO[bytes], *, name: str, limits: TarLimits, seekable: bool) -> int:
    compression = compression_from_suffix(name[len("data.tar") :])
    count = 0
    try:
        with open_tar(tar_member, compression, seekable=seekable) as data:
            for member in iter_safe_members(data, limits=limits, archive=name):
                if normalise_name(member.name):
                    count += 1
    except InvalidArtifact:
        raise
    except CORRUPT_DATA_ERRORS as exc:
        raise _invalid(
            f"{name} is corrupt or truncated: {exc}",
            hint="rebuild the packet with `packyard packet build`",
        ) from exc
    return count


def inspect_packet(
    stream: BinaryIO, scan: TarScan, *, limits: TarLimits = DEFAULT_LIMITS
) -> ArtifactMetadata:
    """Validate a packet fully (every member of both tars) and return its metadata.

    Args:
        stream: The packet file, seekable.
        scan: The classification pass over the same stream.
        limits: Member-count and size limits, applied to each tar separately.

    Raises:
        InvalidArtifact: control.json is invalid or the data tar is missing or corrupt.
        UnsafeArchive: a member of either tar would escape the root or is special.
    """
    raw = scan.kept.get(CONTROL_NAME)
    if raw is None:
        raise _invalid("control.json is not a regular file of sensible size")
    control = parse_control_json(raw)
    scripts: list[str] = []
    data_names: list[str] = []
    files = 0
    stream.seek(0)
    try:
        with open_tar(stream, scan.compression) as outer:
            for member in iter_safe_members(outer, limits=limits, archive="packet"):
                name = normalise_name(member.name)
                if name in SCRIPT_NAMES and member.isreg():
                    scripts.append(name)
                elif name in DATA_NAMES and member.isreg():
                    data_names.append(name)
                    if len(data_names) > 1:
                        raise _invalid(
                            f"the packet holds more than one data tar: {', '.join(data_names)}",
                            hint="a packet carries exactly one data.tar.*",
                        )
                    fileobj = outer.extractfile(member)
                    if fileobj is not None:
                        # Members of a compressed outer tar are only readable forward.
                        files = _count_data(
                            fileobj,
                            name=name,
                            limits=limits,
                            seekable=scan.compression is None,
                        )
    except InvalidArtifact:
        raise
    except CORRUPT_DATA_ERRORS as exc:
        raise _invalid(
            f"the packet tar is corrupt or truncated: {exc}",
            hint="upload it again or rebuild it with `packyard packet build`",
        ) from exc
    if not data_names:
        raise _invalid(
            "the packet has no data.tar.xz (or data.tar.zst, data.tar.gz, data.tar)",
            hint="build packets with `packyard packet build`, which always writes a data tar",
        )
    fields: dict[str, Any] = dict(control)
    fields["scripts"] = sorted(scripts)
    fields["files"] = files
    arch = control.get("arch")
    return ArtifactMetadata(
        format=ArtifactFormat.PACKET,
        name=control["name"],
        version=control["version"],
        arch=arch or None,
        relations={},
        fields=fields,
    )
