"""Arch Linux pacman packages: a tar (zstd, xz, gzip, bzip2 or none) with ``.PKGINFO``.

``.PKGINFO`` is ``key = value`` lines (makepkg's ``write_pkginfo``); repeated keys are lists.
Only the leading dotfiles are read: makepkg stores them before the payload.

``list_pacman_files`` reads the file list (for the ``.files`` sync database); it decompresses
the whole payload, so it is a separate pass that publishing runs once per package.

Deliberately not handled: ``.BUILDINFO`` (reproducibility data), ``.INSTALL`` scripts, package
signatures (``.sig`` files travel separately) and split-package PKGBUILDs.
"""

from __future__ import annotations

from typing import Any, BinaryIO, Final

from packyard.domain.artifacts import ArtifactFormat, ArtifactMetadata
from packyard.domain.errors import InvalidArtifact

from ._io import CORRUPT_DATA_ERRORS, open_tar, read_exact, sniff_compression
from ._tarscan import TarScan

__all__ = [
    "MAX_LISTED_FILES",
    "RELATION_KEYS",
    "list_pacman_files",
    "metadata_from_scan",
    "parse_pkginfo",
]

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


#: More members than any real package has (texlive-fontsextra: ~90,000); a bound on memory.
MAX_LISTED_FILES: Final = 1_000_000


def list_pacman_files(stream: BinaryIO) -> list[str]:
    """List a pacman package's paths the way repo-add writes them into the ``.files`` db.

    repo-add runs ``bsdtar --exclude='^.*' -tf pkg | LC_ALL=C sort -u``: every member whose
    name starts with a dot (``.PKGINFO``, ``.BUILDINFO``, ``.MTREE``, ``.INSTALL``,
    ``.CHANGELOG``) is left out, names stay as stored, and the list is sorted bytewise
    without duplicates. Directories end in ``/`` (makepkg stores them so; Python's tarfile
    strips the slash, which is put back here).

    Raises:
        InvalidArtifact: the stream is not a readable tar, is corrupt, has a member name
            with a newline (it could not be listed one per line), or has absurdly many
            members.
    """
    stream.seek(0)
    compression = sniff_compression(read_exact(stream, 8))
    stream.seek(0)
    names: set[str] = set()
    try:
        with open_tar(stream, compression, seekable=False) as tar:
            for count, info in enumerate(tar):
                if count >= MAX_LISTED_FILES:
                    raise _invalid(f"the package has more than {MAX_LISTED_FILES} members")
                name = info.name + "/" if info.isdir() else info.name
                if name.startswith("."):
                    continue
                if "\n" in name or "\r" in name:
                    raise _invalid(f"member name {name!r} contains a line break")
                names.add(name)
    except InvalidArtifact:
        raise
    except CORRUPT_DATA_ERRORS as exc:
        raise _invalid(f"the package's tar is corrupt: {exc}") from exc
    return sorted(names, key=lambda name: name.encode("utf-8", "surrogateescape"))
