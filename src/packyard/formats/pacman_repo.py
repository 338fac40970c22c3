"""pacman sync databases: per-package ``desc`` and ``files`` entries and the db tarball.

``desc_entry`` reproduces what ``repo-add`` (pacman 6.0) writes to ``<name>-<version>/desc``
from the package's ``.PKGINFO`` (as the codec read it) plus the file's size and hashes;
``files_entry`` what it writes to ``<name>-<version>/files`` in the ``.files`` database.
Both are computed once per artifact; ``repo_db`` packs a channel's cached entries into the
gzip'd tar pacman downloads as ``<repo>.db`` (or ``<repo>.files`` with ``files``).

repo-add reads .PKGINFO with ``IFS=' =' read`` and collapses whitespace runs to one space, so
``desc_entry`` does too; a section is written only when it has a value, as repo-add's
``format_entry`` does, in repo-add's order.

Architectures: a pacman repository is one database per architecture (``$arch`` in the
mirror URL); ``any`` packages belong in every one (``entries_by_architecture``).

Deliberately not handled: signing the database (``<repo>.db.sig`` comes from the signer),
the ``<repo>.db`` -> ``<repo>.db.tar.gz`` symlinks (the publisher writes both names), and
deltas (removed from pacman). Choosing one version per package name is the caller's job
(``newest_per_name`` helps); ``repo_db`` refuses two entries for one name.
"""

from __future__ import annotations

import binascii
import gzip
import re
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from packyard.domain.versions import pacman_compare

from .index_common import GZIP_LEVEL, check_hex, check_single_line, split_by_architecture

__all__ = [
    "DB_MTIME",
    "TAR_END",
    "desc_entry",
    "entries_by_architecture",
    "entry_dirname",
    "entry_members",
    "files_entry",
    "newest_per_name",
    "repo_db",
    "tar_member",
]

T = TypeVar("T")

#: Fixed mtime for every member (and the gzip header is written with mtime 0) so the same
#: entries always give the same bytes. pacman never looks at member times.
DB_MTIME: Final = 0
_WHITESPACE: Final = re.compile(r"\s+")
_DIRNAME: Final = re.compile(r"^[^/\s.][^/\s]*-[^/\s-]+-[^/\s-]+$")


def _normalise(value: Any) -> str:
    # repo-add: `declare "$var=${val//+([[:space:]])/ }"` after `read` stripped the ends.
    return _WHITESPACE.sub(" ", str(value).strip())


def _scalar(fields: Mapping[str, Any], key: str) -> str:
    value = fields.get(key)
    if isinstance(value, list | tuple):
        # A repeated scalar key: repo-add's `declare` keeps the last one.
        value = value[-1] if value else None
    return "" if value is None else _normalise(value)


def _values(raw: Any) -> list[str]:
    if raw is None:
        return []
    items = [raw] if isinstance(raw, str) else list(raw)
    return [value for value in (_normalise(item) for item in items) if value]


def _section(name: str, values: Sequence[str]) -> str:
    if not values or not values[0]:
        return ""
    for value in values:
        check_single_line(value, what=f"%{name}% value")
    return f"%{name}%\n" + "".join(f"{value}\n" for value in values) + "\n"


def entry_dirname(*, name: str, version: str) -> str:
    """The database directory of one package: ``<pkgname>-<pkgver>`` (pkgver has pkgrel)."""
    dirname = f"{name}-{version}"
    if not _DIRNAME.match(dirname):
        raise ValueError(f"{dirname!r} is not a pacman database entry name")
    return dirname


def desc_entry(
    *,
    fields: Mapping[str, Any],
    relations: Mapping[str, Sequence[str]],
    filename: str,
    csize: int,
    md5: str,
    sha256: str,
    pgpsig_b64: str | None = None,
    isize: int | None = None,
) -> str:
    """Return the ``desc`` file repo-add writes for one package.

    Args:
        fields: ``ArtifactMetadata.fields`` of the package (.PKGINFO keys: pkgname,
            pkgbase, pkgver, pkgdesc, url, builddate, packager, size, arch, license, group).
        relations: ``ArtifactMetadata.relations`` (depends, optdepends, provides, conflicts,
            replaces, makedepends, checkdepends).
        filename: The package file's name in the repository directory (no slashes).
        csize: Size of the package file in bytes.
        md5: Hex MD5 of the package file.
        sha256: Hex SHA-256 of the package file.
        pgpsig_b64: The detached binary signature, base64 without newlines, or None.
        isize: Installed size; None takes ``size`` from .PKGINFO like repo-add.

    Raises:
        ValueError: pkgname or pkgver is missing, a value spans lines, a hash or the
            signature is malformed, or the file name has a slash.
    """
    name, version = _scalar(fields, "pkgname"), _scalar(fields, "pkgver")
    if not name or not version:
        raise ValueError("a desc entry needs pkgname and pkgver")
    check_single_line(filename, what="filename")
    if "/" in filename or not filename:
        raise ValueError(f"filename {filename!r} must be a bare file name")
    if csize < 0:
        raise ValueError(f"csize must not be negative, got {csize}")
    check_hex(md5, length=32, what="md5")
    check_hex(sha256, length=64, what="sha256")
    if pgpsig_b64 is not None:
        try:
            binascii.a2b_base64(pgpsig_b64.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError):
            raise ValueError("pgpsig_b64 is not base64 (without newlines)") from None
    installed = str(isize) if isize is not None else _scalar(fields, "size")

    sections = [
        ("FILENAME", [filename]),
        ("NAME", [name]),
        ("BASE", [_scalar(fields, "pkgbase")]),
        ("VERSION", [version]),
        ("DESC", [_scalar(fields, "pkgdesc")]),
        ("GROUPS", _values(fields.get("group"))),
        ("CSIZE", [str(csize)]),
        ("ISIZE", [installed]),
        ("MD5SUM", [md5]),
        ("SHA256SUM", [sha256]),
        ("PGPSIG", [pgpsig_b64 or ""]),
        ("URL", [_scalar(fields, "url")]),
        ("LICENSE", _values(fields.get("license"))),
        ("ARCH", [_scalar(fields, "arch")]),
        ("BUILDDATE", [_scalar(fields, "builddate")]),
        ("PACKAGER", [_scalar(fields, "packager")]),
        ("REPLACES", _values(relations.get("replaces"))),
        ("CONFLICTS", _values(relations.get("conflicts"))),
        ("PROVIDES", _values(relations.get("provides"))),
        ("DEPENDS", _values(relations.get("depends"))),
        ("OPTDEPENDS", _values(relations.get("optdepends"))),
        ("MAKEDEPENDS", _values(relations.get("makedepends"))),
        ("CHECKDEPENDS", _values(relations.get("checkdepends"))),
    ]
    return "".join(_section(section, values) for section, values in sections)


def files_entry(paths: Iterable[str]) -> str:
    """Return the ``files`` file of the .files database: ``%FILES%`` then one path a line.

    Paths are as ``list_pacman_files`` returns them (directories end in ``/``); they are
    de-duplicated and sorted bytewise like repo-add's ``LC_ALL=C sort -u``.

    Raises:
        ValueError: a path is empty or spans lines.
    """
    unique = set()
    for path in paths:
        if not path:
            raise ValueError("file paths must not be empty")
        unique.add(check_single_line(path, what="file path"))
    ordered = sorted(unique, key=lambda path: path.encode("utf-8", "surrogateescape"))
    return "%FILES%\n" + "".join(f"{path}\n" for path in ordered)


def _name_of(dirname: str) -> str:
    return dirname.rsplit("-", 2)[0]


#: The end of a tar archive: two zero records (what follows the last member).
TAR_END: Final = b"\0" * 1024


def tar_member(name: str, data: bytes | None) -> bytes:
    """One member of a database tar as ``tarfile`` writes it (PAX format, fixed owner and
    time): a directory when ``data`` is None, else a file padded to 512 bytes. Members
    concatenated and followed by ``TAR_END`` are a whole archive, which lets a publication
    join cached blocks of members (services/assembly.py)."""
    info = tarfile.TarInfo(name)
    info.mtime = DB_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    if data is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    info.mode = 0o644
    info.size = len(data)
    header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    return header + data + b"\0" * (-len(data) % tarfile.BLOCKSIZE)


def entry_members(dirname: str, desc: str, files: str | None = None) -> bytes:
    """The tar members of one package in a database: ``<dirname>/``, its ``desc`` and, for
    the .files database, its ``files``."""
    out = tar_member(dirname, None) + tar_member(f"{dirname}/desc", desc.encode("utf-8"))
    if files is not None:
        out += tar_member(f"{dirname}/files", files.encode("utf-8"))
    return out


def repo_db(entries: Iterable[tuple[str, str]], *, files: Mapping[str, str] | None = None) -> bytes:
    """Pack entries into a gzip'd tar sync database, deterministically.

    Each entry becomes ``<dirname>/`` and ``<dirname>/desc`` (plus ``<dirname>/files`` when
    ``files`` is given: that is the ``.files`` database). Entries are sorted by dirname, so
    the bytes do not depend on the order entries come in. No entries give a valid, empty db.

    Args:
        entries: ``(entry_dirname, desc_entry)`` pairs.
        files: ``files_entry`` text by dirname, for the ``.files`` database; it must cover
            every entry and nothing else.

    Raises:
        ValueError: a dirname is malformed or repeated, two entries share a package name,
            or ``files`` does not match the entries.
    """
    by_dirname: dict[str, str] = {}
    names: dict[str, str] = {}
    for dirname, desc in entries:
        if not _DIRNAME.match(dirname):
            raise ValueError(f"{dirname!r} is not a pacman database entry name")
        if dirname in by_dirname:
            raise ValueError(f"{dirname!r} is listed twice")
        other = names.setdefault(_name_of(dirname), dirname)
        if other != dirname:
            raise ValueError(
                f"{other!r} and {dirname!r} are the same package; pacman reads only one "
                "version per name (keep the newest: newest_per_name)"
            )
        by_dirname[dirname] = desc
    if files is not None and set(files) != set(by_dirname):
        missing = sorted(set(by_dirname) - set(files))
        extra = sorted(set(files) - set(by_dirname))
        raise ValueError(f"files must match the entries (missing {missing}, extra {extra})")
    members = [
        entry_members(dirname, by_dirname[dirname], files[dirname] if files is not None else None)
        for dirname in sorted(by_dirname, key=lambda name: name.encode("utf-8"))
    ]
    return gzip.compress(b"".join([*members, TAR_END]), compresslevel=GZIP_LEVEL, mtime=0)


def newest_per_name(candidates: Iterable[tuple[str, str, T]]) -> list[T]:
    """Keep, for each package name, the value of its newest version by pacman's vercmp.

    Args:
        candidates: ``(name, version, value)`` triples, e.g. ``(name, version, artifact_id)``.

    Returns:
        The kept values, ordered by name.
    """
    best: dict[str, tuple[str, T]] = {}
    for name, version, value in candidates:
        current = best.get(name)
        if current is None or pacman_compare(version, current[0]) > 0:
            best[name] = (version, value)
    return [best[name][1] for name in sorted(best)]


def entries_by_architecture(
    entries: Iterable[tuple[str, T]], *, architectures: Sequence[str]
) -> dict[str, list[T]]:
    """Group ``(arch, entry)`` pairs per repository architecture; ``any`` goes into each.

    Raises:
        ValueError: ``architectures`` is empty, repeats a name or names ``any``.
    """
    return split_by_architecture(entries, architectures=architectures, wildcard="any")
