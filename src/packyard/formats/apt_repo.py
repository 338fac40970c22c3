"""apt repository indexes: ``Packages`` stanzas, the pool layout and the ``Release`` file.

A stanza is computed once per artifact (``deb_stanza``) from the deb's verbatim control
paragraph plus the pool path, size and hashes of the file; a publication joins the cached
stanzas of a channel per architecture (``packages_by_architecture``, ``packages_index``),
compresses them (``compress_variants``), lists the results in ``release_file`` and stores
each under ``by_hash_path`` too. The package file itself is never needed here.

``deb_stanza`` reproduces ``apt-ftparchive packages`` (apt 2.6) byte for byte: apt rewrites the
control paragraph through ``pkgTagSection::Write`` with its ``TFRewritePackageOrder``: known
fields in a canonical order under their canonical spelling, then unknown fields in file
order under their own spelling, with Filename, Size and the hashes inserted and Status
dropped. Values are kept raw (leading whitespace, continuation lines, tabs) except that
trailing whitespace is trimmed; Section and Priority are re-written trimmed, as apt's
(empty) override does.

Architecture ``all``: a deb for ``all`` is listed in every ``binary-<arch>/Packages`` of the
channel and ``all`` is not named in ``Architectures:``, so apt never looks for a
``binary-all`` index (the layout Debian's own archive has used since 2017; the Release file
says so with ``No-Support-for-Architecture-all: Packages``).

Deliberately not handled: source packages (``Sources``), ``Contents-*``, ``Translation-*``
(stanzas keep the long description unless asked otherwise), ``InRelease``/``Release.gpg``
(signing is the signer's job), udeb installer indexes and override files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from packyard.domain.errors import InvalidArtifact

from .index_common import (
    Digests,
    check_hex,
    check_relative_path,
    check_single_line,
    compress_variants,
    split_by_architecture,
)

__all__ = [
    "PACKAGES_FIELD_ORDER",
    "IndexFile",
    "by_hash_path",
    "compress_variants",
    "deb_filename",
    "deb_stanza",
    "index_files",
    "packages_by_architecture",
    "packages_index",
    "pool_path",
    "release_date",
    "release_file",
    "source_name",
]

#: apt 2.6's ``TFRewritePackageOrder`` (apt-pkg/tagfile-order.c): the order, and spelling,
#: ``apt-ftparchive packages`` writes known fields in. Fields not listed follow in file order.
PACKAGES_FIELD_ORDER: Final = (
    "Package",
    "Package-Type",
    "Architecture",
    "Subarchitecture",
    "Version",
    "Kernel-Version",
    "Built-Using",
    "Static-Built-Using",
    "Built-For-Profiles",
    "Auto-Built-Package",
    "Multi-Arch",
    "Status",
    "Priority",
    "Build-Essential",
    "Protected",
    "Important",
    "Essential",
    "Installer-Menu-Item",
    "Section",
    "Source",
    "Origin",
    "Phased-Update-Percentage",
    "Maintainer",
    "Original-Maintainer",
    "Bugs",
    "Config-Version",
    "Conffiles",
    "Triggers-Awaited",
    "Triggers-Pending",
    "Installed-Size",
    "Provides",
    "Pre-Depends",
    "Depends",
    "Recommends",
    "Suggests",
    "Conflicts",
    "Breaks",
    "Replaces",
    "Enhances",
    "Filename",
    "MSDOS-Filename",
    "Size",
    "MD5sum",
    "SHA1",
    "SHA256",
    "SHA512",
    "Homepage",
    "Description",
    "Description-md5",
    "Tag",
    "Task",
)
_ORDER_KEYS: Final = frozenset(name.lower() for name in PACKAGES_FIELD_ORDER)
#: C's isspace() in the "C" locale, which apt's isspace_ascii() mirrors.
_SPACE: Final = " \t\n\v\f\r"
_PACKAGE_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_COMPONENT: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_DEB_FILENAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+~%-]*\.(deb|udeb|ddeb)$")
#: English names whatever the locale (strftime's %a and %b follow it).
_DAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
_HINT: Final = "rebuild the package with dpkg-deb; its control file is not a deb822 paragraph"


def _invalid(message: str) -> InvalidArtifact:
    return InvalidArtifact(message, hint=_HINT, details={"format": "deb"})


def _parse_paragraph(control: str) -> list[tuple[str, str]]:
    """Split the first paragraph into ``(name, raw value)`` as apt's tag scanner sees it.

    The raw value is everything after the colon (leading whitespace and continuation lines
    included) with trailing whitespace removed: ``pkgTagSection::FindRaw``.
    """
    fields: list[tuple[str, list[str]]] = []
    for line in control.lstrip("\n").split("\n"):
        if line == "":
            break  # a blank line ends the paragraph
        if line[0] in _SPACE:
            if not fields:
                raise _invalid("the control file starts with a continuation line")
            fields[-1][1].append(line)
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(_SPACE)
        if not colon or not name:
            raise _invalid(f"control file line {line!r} is not 'Field: value'")
        fields.append((name, [value]))
    return [(name, "\n".join(lines).rstrip(_SPACE)) for name, lines in fields]


def _trimmed(raw: str) -> str:
    """``pkgTagSection::FindS``: the raw value without its leading whitespace.

    apt's scanner skips whitespace after the colon, crossing a line break only when the next
    line starts with a space.
    """
    index = 0
    while index < len(raw) and raw[index] in _SPACE:
        if raw[index] == "\n" and raw[index + 1 : index + 2] != " ":
            break
        index += 1
    return raw[index:]


def _field_line(name: str, value: str) -> str:
    # apt's WriteTag: no space after the colon when the value already starts with one.
    separator = ":" if value == "" or value[0] in _SPACE else ": "
    return f"{name}{separator}{value}\n"


def deb_stanza(
    *,
    control: str,
    filename: str,
    size: int,
    md5: str,
    sha1: str,
    sha256: str,
    sha512: str | None = None,
    long_description: bool = True,
) -> str:
    """Return the ``Packages`` stanza ``apt-ftparchive packages`` writes for one deb.

    The result ends with a newline and has no blank line; ``packages_index`` separates them.

    Args:
        control: The deb's control paragraph, verbatim (``ArtifactMetadata.fields["control"]``).
        filename: Path of the file below the repository root (``pool_path``).
        size: Size of the file in bytes.
        md5: Hex MD5 of the file (apt still writes it; clients ignore it).
        sha1: Hex SHA-1 of the file.
        sha256: Hex SHA-256 of the file.
        sha512: Hex SHA-512 of the file, or None to omit the field
            (``apt-ftparchive -o APT::FTPArchive::SHA512=false``).
        long_description: False keeps only the synopsis and adds ``Description-md5``, as
            ``APT::FTPArchive::LongDescription=false`` does for repositories that ship the
            long descriptions in ``Translation-en``.

    Raises:
        InvalidArtifact: the control text is not a deb822 paragraph or has no Package field.
        ValueError: a hash is malformed, the size is negative or the file name spans lines.
    """
    check_hex(md5, length=32, what="md5")
    check_hex(sha1, length=40, what="sha1")
    check_hex(sha256, length=64, what="sha256")
    if sha512 is not None:
        check_hex(sha512, length=128, what="sha512")
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    check_relative_path(filename, what="filename")

    fields = _parse_paragraph(control)
    # apt looks fields up case-insensitively; with a repeated field, the last one wins.
    values = {name.lower(): raw for name, raw in fields}
    if not _trimmed(values.get("package", "")):
        raise _invalid("the control file has no Package field")

    def found(name: str) -> str:
        return _trimmed(values.get(name.lower(), ""))

    # apt-ftparchive's list of changes, in its order; None removes the field. apt turns a
    # rewrite to an empty value into a removal, hence ``or None``.
    changes: list[tuple[str, str | None]] = [("Size", str(size)), ("MD5sum", md5)]
    changes += [("SHA1", sha1), ("SHA256", sha256)]
    if sha512 is not None:
        changes.append(("SHA512", sha512))
    changes += [("Filename", filename), ("Priority", found("Priority") or None), ("Status", None)]
    overrides = {"Section": found("Section")}
    if not long_description:
        description = found("Description") + "\n"
        digest = hashlib.md5(description.encode("utf-8"), usedforsecurity=False).hexdigest()
        changes.append(("Description-md5", digest))
        overrides["Description"] = description[: description.index("\n")]
    changes += [(key, overrides[key] or None) for key in sorted(overrides)]

    # First listed change wins, as in apt-ftparchive's scan; a dict keeps it O(1) per field.
    by_name: dict[str, str | None] = {}
    for changed_name, data in changes:
        by_name.setdefault(changed_name.lower(), data)

    def change_for(name: str) -> tuple[bool, str | None]:
        key = name.lower()
        return key in by_name, by_name.get(key)

    lines: list[str] = []
    for name in PACKAGES_FIELD_ORDER:
        changed, data = change_for(name)
        if changed:
            if data is not None:
                lines.append(_field_line(name, data))
        elif name.lower() in values:
            lines.append(_field_line(name, values[name.lower()]))
    for name, _raw in fields:
        if name.lower() in _ORDER_KEYS:
            continue
        changed, data = change_for(name)
        if changed:
            if data is not None:
                lines.append(_field_line(name, data))
        else:
            lines.append(_field_line(name, values[name.lower()]))
    # Every field apt-ftparchive rewrites is in the canonical order, so its third pass (new
    # fields outside the order) never writes anything and is not repeated here.
    return "".join(lines)


def packages_index(stanzas: Iterable[str]) -> bytes:
    """Join stanzas into a ``Packages`` file: each stanza followed by a blank line.

    No stanzas give an empty file, which apt accepts. Stanzas keep the given order.
    """
    parts: list[str] = []
    for stanza in stanzas:
        if not stanza.strip():
            raise ValueError("an empty stanza would end the index early")
        parts.append(stanza if stanza.endswith("\n") else stanza + "\n")
        parts.append("\n")
    return "".join(parts).encode("utf-8")


def packages_by_architecture(
    entries: Iterable[tuple[str, str]], *, architectures: Sequence[str]
) -> dict[str, list[str]]:
    """Group ``(Architecture, stanza)`` pairs into one stanza list per channel architecture.

    ``all`` stanzas go into every list (see the module docstring); stanzas for
    architectures the channel does not publish are dropped.

    Raises:
        ValueError: ``architectures`` is empty, repeats a name or names ``all``.
    """
    return split_by_architecture(entries, architectures=architectures, wildcard="all")


def source_name(*, control: str) -> str:
    """Return the source package name a deb belongs to: ``Source`` without its version.

    ``Source: hello (2.10-1)`` gives ``hello``; without a Source field, the Package name.

    Raises:
        InvalidArtifact: the control text is not a paragraph or names no package.
    """
    values = {name.lower(): _trimmed(raw) for name, raw in _parse_paragraph(control)}
    source = values.get("source", "").split("(", 1)[0].strip()
    name = source or values.get("package", "").strip()
    if not name:
        raise _invalid("the control file has no Package field")
    return name


def deb_filename(*, package: str, version: str, architecture: str) -> str:
    """Canonical pool file name ``<package>_<version without epoch>_<arch>.deb``."""
    without_epoch = version.split(":", 1)[1] if ":" in version else version
    name = f"{package}_{without_epoch}_{architecture}.deb"
    if not _DEB_FILENAME.match(name):
        raise ValueError(f"{name!r} is not a valid deb file name")
    return name


def pool_path(*, component: str, source_or_package_name: str, filename: str) -> str:
    """Return ``pool/<component>/<prefix>/<source>/<filename>`` as Debian's archive lays it out.

    The prefix is the first four letters for names starting with ``lib`` (``libc6`` ->
    ``libc``), else the first letter, like dak's ``poolify``.

    Raises:
        ValueError: a part is not a valid Debian name, or would escape its directory.
    """
    if not _COMPONENT.match(component):
        raise ValueError(f"component {component!r} is not a valid apt component name")
    name = source_or_package_name
    if not _PACKAGE_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid Debian package name")
    if not _DEB_FILENAME.match(filename):
        raise ValueError(f"{filename!r} is not a deb file name")
    prefix = name[:4] if name.startswith("lib") else name[0]
    return f"pool/{component}/{prefix}/{name}/{filename}"


def by_hash_path(index_path: str, sha256: str) -> str:
    """Where ``Acquire-By-Hash`` clients fetch an index: ``<dir>/by-hash/SHA256/<hash>``.

    ``index_path`` is relative to ``dists/<codename>/`` (``main/binary-amd64/Packages.xz``).
    """
    check_relative_path(index_path, what="index path")
    check_hex(sha256, length=64, what="sha256")
    directory, _, _ = index_path.rpartition("/")
    prefix = f"{directory}/" if directory else ""
    return f"{prefix}by-hash/SHA256/{sha256}"


@dataclass(frozen=True, kw_only=True)
class IndexFile:
    """One file listed in a Release file, by path relative to ``dists/<codename>/``."""

    path: str
    size: int
    sha256: str
    #: Only needed when the Release lists MD5Sum/SHA1 sections (see ``release_file``).
    md5: str | None = None
    sha1: str | None = None

    def __post_init__(self) -> None:
        check_relative_path(self.path, what="index path")
        if any(char in self.path for char in _SPACE):
            raise ValueError(f"index path {self.path!r} contains whitespace")
        if self.size < 0:
            raise ValueError(f"size must not be negative, got {self.size}")
        if self.md5 is not None:
            check_hex(self.md5, length=32, what="md5")
        if self.sha1 is not None:
            check_hex(self.sha1, length=40, what="sha1")
        check_hex(self.sha256, length=64, what="sha256")

    @classmethod
    def of(cls, path: str, data: bytes) -> IndexFile:
        """Describe ``data`` published at ``path``."""
        digests = Digests.of(data)
        return cls(
            path=path, size=digests.size, md5=digests.md5, sha1=digests.sha1, sha256=digests.sha256
        )


def index_files(path: str, variants: dict[str, bytes]) -> list[IndexFile]:
    """Describe every compressed variant of one index (``compress_variants`` output).

    ``index_files("main/binary-amd64/Packages", compress_variants(data))`` lists
    ``Packages``, ``Packages.gz`` and ``Packages.xz``.
    """
    return [IndexFile.of(path + suffix, data) for suffix, data in variants.items()]


def release_date(moment: datetime) -> str:
    """Format a time as Release files do: ``Sat, 21 Nov 2026 06:30:00 UTC``.

    Raises:
        ValueError: ``moment`` is naive.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("Release dates must be timezone-aware")
    utc = moment.astimezone(UTC)
    return (
        f"{_DAYS[utc.weekday()]}, {utc.day:02d} {_MONTHS[utc.month - 1]} {utc.year:04d} "
        f"{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d} UTC"
    )


def _words(values: Sequence[str], *, what: str) -> str:
    if not values:
        raise ValueError(f"a Release file needs at least one {what}")
    for value in values:
        if not _COMPONENT.match(value):
            raise ValueError(f"{what} {value!r} is not a valid name")
    if len(set(values)) != len(values):
        raise ValueError(f"{what}s repeat a name: {list(values)}")
    return " ".join(values)


def redate_release(text: bytes, *, date: datetime, valid_until: datetime | None) -> bytes:
    """``text`` (a Release file ``release_file`` wrote) with a new ``Date`` and ``Valid-Until``
    (dropped when None), everything else unchanged: the same indexes, re-dated so that apt,
    which refuses a Release older than the one it has, takes a rolled-back snapshot.

    Raises:
        ValueError: ``text`` has no Date field, a date is naive, or ``valid_until`` is not
            after ``date``.
    """
    if valid_until is not None and valid_until <= date:
        raise ValueError("valid_until must be after date")
    lines = text.decode("utf-8").splitlines(keepends=True)
    header_end = next(
        (i for i, line in enumerate(lines) if line.startswith(" ") or line.rstrip().endswith(":")),
        len(lines),
    )
    header = [line for line in lines[:header_end] if not line.startswith("Valid-Until:")]
    if not any(line.startswith("Date:") for line in header):
        raise ValueError("the Release file has no Date field")
    dated = [
        f"Date: {release_date(date)}\n" if line.startswith("Date:") else line for line in header
    ]
    if valid_until is not None:
        # Fields are sorted by name; Valid-Until sorts after every other one.
        dated.append(f"Valid-Until: {release_date(valid_until)}\n")
    return "".join(dated + lines[header_end:]).encode("utf-8")


def release_file(
    *,
    origin: str,
    label: str,
    suite: str,
    codename: str,
    architectures: Sequence[str],
    components: Sequence[str],
    description: str,
    date: datetime,
    valid_until: datetime | None,
    files: Sequence[IndexFile],
    acquire_by_hash: bool = True,
    sections: Sequence[str] = ("MD5Sum", "SHA1", "SHA256"),
) -> str:
    """Return the text of ``dists/<codename>/Release``.

    Fields are in the order ``apt-ftparchive release`` writes them (sorted by name), then the
    ``MD5Sum``, ``SHA1`` and ``SHA256`` sections, files sorted by path, each line
    `` <hash> <size right-aligned in 16> <path>``. There is deliberately no ``SHA512``
    section: apt fetches by-hash files under the strongest hash the Release lists, and
    publishing only ``by-hash/SHA256`` keeps one copy per index. ``sections`` picks fewer:
    ``("SHA256",)`` is enough for every apt since 1.1 (which ignores MD5 and SHA1 for
    verification) and spares hashing every index twice more.

    Raises:
        ValueError: a value spans lines, a name is invalid, a date is naive, ``valid_until``
            is not after ``date``, ``all`` is listed as an architecture, or paths repeat.
    """
    if "all" in architectures:
        raise ValueError("'all' packages are listed in every architecture; do not name it")
    dated = release_date(date)
    expires = release_date(valid_until) if valid_until is not None else ""
    if valid_until is not None and valid_until <= date:
        raise ValueError("valid_until must be after date")
    if not suite.strip() or not codename.strip():
        raise ValueError("a Release file needs a suite and a codename")
    paths = [item.path for item in files]
    if len(set(paths)) != len(paths):
        raise ValueError("a Release file lists each index once")
    values: dict[str, str] = {
        "Architectures": _words(architectures, what="architecture"),
        "Codename": check_single_line(codename, what="codename"),
        "Components": _words(components, what="component"),
        "Date": dated,
        "No-Support-for-Architecture-all": "Packages",
        "Origin": check_single_line(origin, what="origin"),
        "Label": check_single_line(label, what="label"),
        "Suite": check_single_line(suite, what="suite"),
        "Description": check_single_line(description, what="description"),
    }
    if acquire_by_hash:
        values["Acquire-By-Hash"] = "yes"
    if expires:
        values["Valid-Until"] = expires
    lines = [f"{key}: {value}\n" for key, value in sorted(values.items()) if value]
    ordered = sorted(files, key=lambda item: item.path)
    for section, attribute in (("MD5Sum", "md5"), ("SHA1", "sha1"), ("SHA256", "sha256")):
        if section not in sections:
            continue
        if any(getattr(item, attribute) is None for item in ordered):
            raise ValueError(f"the {section} section needs the {attribute} of every file")
        lines.append(f"{section}:\n")
        lines += [f" {getattr(item, attribute)} {item.size:>16} {item.path}\n" for item in ordered]
    return "".join(lines)
