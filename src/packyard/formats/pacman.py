"""Arch Linux pacman packages: a tar (zstd, xz, gzip, bzip2 or none) with ``.PKGINFO``.

``.PKGINFO`` is ``key = value`` lines (makepkg's ``write_pkginfo``); repeated keys are lists.
Only the leading dotfiles are read: makepkg stores them before the payload.

Deliberately not handled: ``.BUILDINFO`` (reproducibility data), ``.INSTALL`` scripts, the
file list, package signatures (``.sig`` files travel separately) and split-package PKGBUILDs.
"""

from __future__ import annotations

from typing import Any, Final

from packyard.domain.artifacts import ArtifactFormat, ArtifactMetadata
from packyard.domain.errors import InvalidArtifact

from ._tarscan import TarScan

__all__ = ["RELATION_KEYS", "metadata_from_scan", "parse_pkginfo"]

#: .PKGINFO key -> relation name.
RELATION_KEYS: Final = {
    "depend": "depends",
    "optdepend": "optdepends",
    "provides": "provides",
    "conflict": "conflicts",
    "replaces": "replaces",
    "makedepend": "makedepends",
    "checkdepend": "checkdepends",
}
#: Keys that may repeat; they are always lists in ``fields`` even with one value.
_LIST_KEYS: Final = frozenset({"license", "group", "backup", "xdata"})
_HINT: Final = "rebuild the package with makepkg; .PKGINFO needs pkgname, pkgver and arch"


def _invalid(message: str) -> InvalidArtifact:
    return InvalidArtifact(message, hint=_HINT, details={"format": "pacman"})


def parse_pkginfo(text: str, *, has_mtree: bool = False) -> ArtifactMetadata:
    """Turn ``.PKGINFO`` text into metadata.

    Raises:
        InvalidArtifact: pkgname or pkgver is missing.
    """
    relations: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if key in RELATION_KEYS:
            relations.setdefault(RELATION_KEYS[key], []).append(value)
        elif key in _LIST_KEYS:
            fields.setdefault(key, []).append(value)
        elif key in fields:
            previous = fields[key]
            fields[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            fields[key] = value
    for required in ("pkgname", "pkgver"):
        if not isinstance(fields.get(required), str) or not fields[required]:
            raise _invalid(f"'.PKGINFO' has no {required}")
    fields["has_mtree"] = has_mtree
    arch = fields.get("arch")
    return ArtifactMetadata(
        format=ArtifactFormat.PACMAN,
        name=fields["pkgname"],
        version=fields["pkgver"],
        arch=arch if isinstance(arch, str) else None,
        relations={key: tuple(values) for key, values in relations.items()},
        fields=fields,
    )


def metadata_from_scan(scan: TarScan) -> ArtifactMetadata | None:
    """Return metadata when the scanned tar is a pacman package, else None."""
    raw = scan.kept.get(".PKGINFO")
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("'.PKGINFO' is not UTF-8 text") from None
    return parse_pkginfo(text, has_mtree=".MTREE" in scan.top_names)
