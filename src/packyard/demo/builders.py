"""Small but valid package files, built in pure Python, for the demo data set and for tests.

Every builder returns the bytes of one file that the ecosystem's own tools accept:
``dpkg-deb --info``/``--contents`` for debs, ``pacman -Qip`` and ``bsdtar`` for pacman
packages, ``bsdtar`` for xar (macOS) packages, plain ``tar`` for packets. Output is
deterministic (fixed timestamps, root ownership, sorted members, no compressor timestamps), so
the same call always yields the same sha256 and the demo artifacts keep their ids.

Deliberately not handled:

- signatures of any kind (``.sig`` files, dpkg-sig, rpm headers, Developer ID);
- rpm packages: there is no pure-Python rpm writer in the project's dependencies;
- maintainer scripts for debs and ``.INSTALL`` for pacman packages (packets do carry scripts);
- symlinks, hard links, device files, and per-file modes beyond the rule in ``file_mode``;
- a ``Bom`` and ``Payload`` in macOS packages: the pkg carries metadata only and would not
  install on a Mac.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import lzma
import struct
import tarfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Final
from xml.sax.saxutils import escape

import zstandard

__all__ = [
    "DEMO_MTIME",
    "deb_bytes",
    "file_mode",
    "firmware_blob_bytes",
    "macos_pkg_bytes",
    "package_info_bytes",
    "packet_bytes",
    "pacman_bytes",
]

#: Every timestamp written into a demo file (2024-05-29T16:26:40Z): fixed so hashes are stable.
DEMO_MTIME: Final = 1_717_000_000
DEMO_PACKAGER: Final = "Packyard Demo <demo@packyard.invalid>"

_EXECUTABLE_DIRS: Final = frozenset({"bin", "sbin", "libexec"})
_PACKET_SCRIPTS: Final = ("preinst", "postinst", "prerm", "postrm")
_NO_SCRIPTS: Final[Mapping[str, str]] = MappingProxyType({})


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _clean_path(path: str) -> str:
    """``/usr/bin/x``, ``./usr/bin/x`` and ``usr/bin/x`` all become ``usr/bin/x``."""
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"package file path {path!r} is empty or climbs out with '..'")
    return "/".join(parts)


def file_mode(path: str) -> int:
    """The permission bits a demo file gets: 0755 in ``bin``/``sbin``/``libexec`` or ``*.sh``.

    Args:
        path: The file's path inside the package.

    Returns:
        0o755 for executables, 0o644 for everything else.
    """
    parts = _clean_path(path).split("/")
    if parts[-1].endswith(".sh") or any(part in _EXECUTABLE_DIRS for part in parts[:-1]):
        return 0o755
    return 0o644


@dataclass(frozen=True, kw_only=True)
class _Entry:
    """One tar member: a directory when ``data`` is None."""

    path: str
    data: bytes | None
    mode: int


def _tree(files: Mapping[str, bytes]) -> list[_Entry]:
    """Files plus every parent directory, parents first, in byte order like ``LC_ALL=C sort``."""
    cleaned = {_clean_path(path): data for path, data in files.items()}
    if len(cleaned) != len(files):
        raise ValueError("two package file paths name the same file")
    dirs = {
        "/".join(path.split("/")[:i]) for path in cleaned for i in range(1, path.count("/") + 1)
    }
    clash = dirs & cleaned.keys()
    if clash:
        raise ValueError(f"{sorted(clash)[0]!r} is both a file and a directory")
    entries = [_Entry(path=d, data=None, mode=0o755) for d in dirs]
    entries += [_Entry(path=p, data=data, mode=file_mode(p)) for p, data in cleaned.items()]
    return sorted(entries, key=lambda entry: entry.path.encode())


def _tar(
    entries: Iterable[_Entry], *, prefix: str = "", tar_format: int = tarfile.GNU_FORMAT
) -> bytes:
    """An uncompressed tar of ``entries``, names prefixed (``./`` for deb and packet data)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tar_format) as archive:
        for entry in entries:
            info = tarfile.TarInfo(f"{prefix}{entry.path}")
            info.mtime = DEMO_MTIME
            info.mode = entry.mode
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if entry.data is None:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = len(entry.data)
                archive.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()


def _root_dir() -> _Entry:
    return _Entry(path="", data=None, mode=0o755)


def _md5_hex(data: bytes) -> str:
    # md5sums and mtree carry MD5 for integrity checks the formats define, not for security.
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _sha1_hex(data: bytes) -> str:
    # xar's checksum algorithm is fixed by the header; SHA-1 is what pkgbuild writes.
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


def _gzip(data: bytes) -> bytes:
    # mtime=0 and no file name, like `gzip -n`: the output depends on the content only.
    return gzip.compress(data, compresslevel=9, mtime=0)


def _xz(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64)


# --------------------------------------------------------------------------------------------
# deb
# --------------------------------------------------------------------------------------------


def _ar_member(name: str, data: bytes) -> bytes:
    # dpkg-deb writes member names without GNU ar's trailing "/"; both forms are accepted.
    header = f"{name:<16}{DEMO_MTIME:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n"
    return header.encode("ascii") + data + (b"\n" if len(data) % 2 else b"")


def _deb_description(description: str) -> str:
    synopsis, *extended = description.strip("\n").split("\n")
    lines = [synopsis.strip()]
    # Extended lines start with a space; an empty line is written " ." (Debian policy 5.6.13).
    lines += [f" {line}" if line.strip() else " ." for line in extended]
    return "\n".join(lines)


def deb_bytes(
    *,
    name: str,
    version: str,
    arch: str = "all",
    depends: Sequence[str] = (),
    description: str,
    maintainer: str,
    section: str = "misc",
    files: Mapping[str, bytes],
) -> bytes:
    """Build a binary Debian package (``.deb``, format 2.0).

    Args:
        name: Package name.
        version: Debian version, ``[epoch:]upstream[-revision]``.
        arch: Debian architecture (``all``, ``amd64``, ``armhf``...).
        depends: Relations for the ``Depends`` field, e.g. ``"libc6 (>= 2.34)"``.
        description: Synopsis on the first line, optional extended description after it.
        maintainer: ``Name <email>``.
        section: Archive section.
        files: Installed path -> content; parent directories are added.

    Returns:
        The ``.deb`` file: ar archive of ``debian-binary``, ``control.tar.gz``,
        ``data.tar.xz``.
    """
    tree = _tree(files)
    regular = [entry for entry in tree if entry.data is not None]
    # dpkg-gencontrol counts each file in whole KiB, rounded up, and 1 KiB per directory.
    installed_kib = sum(
        -(-len(entry.data) // 1024) if entry.data is not None else 1 for entry in tree
    )
    fields = [
        ("Package", name),
        ("Version", version),
        ("Architecture", arch),
        ("Maintainer", maintainer),
        ("Installed-Size", str(installed_kib)),
        ("Depends", ", ".join(depends)),
        ("Section", section),
        ("Priority", "optional"),
        ("Description", _deb_description(description)),
    ]
    control = "".join(f"{key}: {value}\n" for key, value in fields if value).encode()
    md5sums = "".join(
        f"{_md5_hex(entry.data)}  {entry.path}\n" for entry in regular if entry.data is not None
    ).encode()
    control_tar = _tar(
        [
            _root_dir(),
            _Entry(path="control", data=control, mode=0o644),
            _Entry(path="md5sums", data=md5sums, mode=0o644),
        ],
        prefix="./",
    )
    data_tar = _tar([_root_dir(), *tree], prefix="./")
    return b"!<arch>\n" + b"".join(
        [
            _ar_member("debian-binary", b"2.0\n"),
            _ar_member("control.tar.gz", _gzip(control_tar)),
            _ar_member("data.tar.xz", _xz(data_tar)),
        ]
    )


# --------------------------------------------------------------------------------------------
# pacman
# --------------------------------------------------------------------------------------------


def _mtree_escape(path: str) -> str:
    # libarchive's mtree writer: octal escapes for blanks, '#', '=', '\' and non-ASCII bytes.
    out = []
    for byte in path.encode():
        char = chr(byte)
        if byte <= 32 or byte >= 127 or char in "#=\\":
            out.append(f"\\{byte:03o}")
        else:
            out.append(char)
    return "".join(out)


def _mtree(entries: Sequence[_Entry]) -> bytes:
    """The gzip'd ``.MTREE`` makepkg writes with bsdtar's mtree format (``use-set``)."""
    lines = ["#mtree", "/set type=file uid=0 gid=0 mode=644"]
    for entry in entries:
        path = f"./{_mtree_escape(entry.path)}"
        time = f"time={DEMO_MTIME}.0"
        if entry.data is None:
            lines.append(f"{path} {time} mode={entry.mode:o} type=dir")
            continue
        mode = "" if entry.mode == 0o644 else f" mode={entry.mode:o}"
        lines.append(
            f"{path} {time}{mode} size={len(entry.data)}"
            f" md5digest={_md5_hex(entry.data)}"
            f" sha256digest={hashlib.sha256(entry.data).hexdigest()}"
        )
    return _gzip(("\n".join(lines) + "\n").encode())


def pacman_bytes(
    *,
    name: str,
    version: str,
    arch: str = "any",
    depends: Sequence[str] = (),
    description: str,
    files: Mapping[str, bytes],
    url: str = "https://example.com/",
    license: str = "MIT",
) -> bytes:
    """Build an Arch Linux package (``.pkg.tar.zst``) as makepkg lays it out.

    Args:
        name: pkgname (also used as pkgbase).
        version: ``[epoch:]pkgver-pkgrel``.
        arch: ``any``, ``x86_64``, ``aarch64``...
        depends: ``depend`` entries, e.g. ``"glibc"`` or ``"rsync>=3.2"``.
        description: One-line pkgdesc.
        files: Installed path -> content; parent directories are added.
        url: Upstream URL.
        license: SPDX-ish license name.

    Returns:
        A zstd-compressed tar with ``.PKGINFO``, ``.BUILDINFO`` and ``.MTREE`` first.

    Raises:
        ValueError: If ``version`` has no ``-pkgrel``.
    """
    if "-" not in version:
        raise ValueError(f"pacman version {version!r} needs a pkgrel: pkgver-pkgrel")
    tree = _tree(files)
    size = sum(len(entry.data) for entry in tree if entry.data is not None)
    pkginfo_lines = [
        "# Generated by Packyard's demo builder",
        f"pkgname = {name}",
        f"pkgbase = {name}",
        f"pkgver = {version}",
        f"pkgdesc = {description}",
        f"url = {url}",
        f"builddate = {DEMO_MTIME}",
        f"packager = {DEMO_PACKAGER}",
        f"size = {size}",
        f"arch = {arch}",
        f"license = {license}",
        *(f"depend = {depend}" for depend in depends),
    ]
    pkginfo = ("\n".join(pkginfo_lines) + "\n").encode()
    buildinfo = (
        "\n".join(
            [
                "format = 2",
                f"pkgname = {name}",
                f"pkgbase = {name}",
                f"pkgver = {version}",
                f"pkgarch = {arch}",
                f"packager = {DEMO_PACKAGER}",
                f"builddate = {DEMO_MTIME}",
                "builddir = /build",
                "startdir = /startdir",
                "buildtool = packyard-demo",
                "buildtoolver = 1",
                "buildenv = !distcc",
                "buildenv = !ccache",
                "options = strip",
            ]
        )
        + "\n"
    ).encode()
    dotfiles = [
        _Entry(path=".BUILDINFO", data=buildinfo, mode=0o644),
        _Entry(path=".PKGINFO", data=pkginfo, mode=0o644),
    ]
    mtree = _Entry(path=".MTREE", data=_mtree([*dotfiles, *tree]), mode=0o644)
    # .PKGINFO leads: pacman and our codec read only the leading dotfiles.
    members = [dotfiles[1], dotfiles[0], mtree, *tree]
    tar = _tar(members, tar_format=tarfile.PAX_FORMAT)
    return zstandard.ZstdCompressor(level=19).compress(tar)


# --------------------------------------------------------------------------------------------
# packet
# --------------------------------------------------------------------------------------------


def packet_bytes(
    *,
    name: str,
    version: str,
    tags: Sequence[str],
    description: str,
    files: Mapping[str, bytes],
    scripts: Mapping[str, str] = _NO_SCRIPTS,
    arch: str | None = None,
) -> bytes:
    """Build a packet: Packyard's own package format for the device agent.

    Args:
        name: Packet name.
        version: Version string.
        tags: Device tags the packet is meant for, e.g. ``["arch=armv7l", "systemd"]``.
        description: Human description.
        files: Installed path -> content; parent directories are added.
        scripts: ``preinst``/``postinst``/``prerm``/``postrm`` -> shell script text.
        arch: Optional architecture written to ``control.json``.

    Returns:
        An uncompressed tar of ``control.json``, ``data.tar.xz`` (rooted at ``./``) and the
        scripts (mode 0755).

    Raises:
        ValueError: If a script name is not one of the four the agent runs.
    """
    unknown = sorted(set(scripts) - set(_PACKET_SCRIPTS))
    if unknown:
        raise ValueError(f"unknown packet scripts {unknown}; expected {list(_PACKET_SCRIPTS)}")
    control: dict[str, object] = {
        "name": name,
        "version": version,
        "tags": list(tags),
        "description": description,
    }
    if arch is not None:
        control["arch"] = arch
    data_tar = _tar([_root_dir(), *_tree(files)], prefix="./", tar_format=tarfile.PAX_FORMAT)
    members = [
        _Entry(
            path="control.json", data=(json.dumps(control, indent=2) + "\n").encode(), mode=0o644
        ),
        _Entry(path="data.tar.xz", data=_xz(data_tar), mode=0o644),
    ]
    members += [
        _Entry(path=script, data=scripts[script].encode(), mode=0o755)
        for script in _PACKET_SCRIPTS
        if script in scripts
    ]
    return _tar(members, tar_format=tarfile.USTAR_FORMAT)


# --------------------------------------------------------------------------------------------
# macOS flat package (xar)
# --------------------------------------------------------------------------------------------

_XAR_HEADER: Final = struct.Struct(">4sHHQQI")
_XAR_CKSUM_SHA1: Final = 1


def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;"})


def package_info_bytes(
    *, identifier: str, version: str, title: str, install_kbytes: int, number_of_files: int = 1
) -> bytes:
    """The ``PackageInfo`` XML of a component package, as ``macos_pkg_bytes`` stores it.

    Args:
        identifier: Reverse-DNS package identifier.
        version: Package version.
        title: Application name; the bundle is recorded at ``./Applications/<title>.app``.
        install_kbytes: ``installKBytes`` of the payload.
        number_of_files: ``numberOfFiles`` of the payload.

    Returns:
        UTF-8 XML bytes.
    """
    bundle = f'<bundle id="{_attr(identifier)}"/>'
    return f"""<?xml version="1.0" encoding="utf-8"?>
<pkg-info overwrite-permissions="true" relocatable="false" identifier="{_attr(identifier)}" \
postinstall-action="none" version="{_attr(version)}" format-version="2" \
generator-version="packyard-demo" install-location="/" auth="root">
    <payload numberOfFiles="{number_of_files}" installKBytes="{install_kbytes}"/>
    <bundle path="./Applications/{_attr(title)}.app" id="{_attr(identifier)}" \
CFBundleShortVersionString="{_attr(version)}" CFBundleVersion="{_attr(version)}"/>
    <bundle-version>
        {bundle}
    </bundle-version>
    <upgrade-bundle>
        {bundle}
    </upgrade-bundle>
    <update-bundle/>
    <atomic-update-bundle/>
    <strict-identifier>
        {bundle}
    </strict-identifier>
    <relocate>
        {bundle}
    </relocate>
</pkg-info>
""".encode()


def _xar(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A xar archive of flat files, each zlib-compressed, with a SHA-1 TOC checksum."""
    stamp = datetime.fromtimestamp(DEMO_MTIME, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # The heap starts with the TOC checksum (20 bytes of SHA-1), then the file data.
    offset = hashlib.sha1(usedforsecurity=False).digest_size
    heap_files: list[bytes] = []
    toc_files: list[str] = []
    for file_id, (name, data) in enumerate(members, start=1):
        stored = zlib.compress(data, 9)
        toc_files.append(
            f"""  <file id="{file_id}">
   <data>
    <length>{len(stored)}</length>
    <encoding style="application/x-gzip"/>
    <offset>{offset}</offset>
    <size>{len(data)}</size>
    <extracted-checksum style="sha1">{_sha1_hex(data)}</extracted-checksum>
    <archived-checksum style="sha1">{_sha1_hex(stored)}</archived-checksum>
   </data>
   <ctime>{stamp}</ctime>
   <mtime>{stamp}</mtime>
   <atime>{stamp}</atime>
   <group>wheel</group>
   <gid>0</gid>
   <user>root</user>
   <uid>0</uid>
   <mode>0644</mode>
   <type>file</type>
   <name>{escape(name)}</name>
  </file>
"""
        )
        heap_files.append(stored)
        offset += len(stored)
    toc = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<xar>\n <toc>\n'
        '  <checksum style="sha1">\n   <offset>0</offset>\n   <size>20</size>\n  </checksum>\n'
        f"  <creation-time>{stamp.removesuffix('Z')}</creation-time>\n"
        + "".join(toc_files)
        + " </toc>\n</xar>\n"
    ).encode()
    toc_compressed = zlib.compress(toc, 9)
    header = _XAR_HEADER.pack(
        b"xar!", _XAR_HEADER.size, 1, len(toc_compressed), len(toc), _XAR_CKSUM_SHA1
    )
    checksum = hashlib.sha1(toc_compressed, usedforsecurity=False).digest()
    return header + toc_compressed + checksum + b"".join(heap_files)


def macos_pkg_bytes(
    *,
    identifier: str,
    version: str,
    title: str,
    install_kbytes: int,
    number_of_files: int = 1,
) -> bytes:
    """Build a macOS component package (flat pkg): a xar archive holding ``PackageInfo``.

    Args:
        identifier: Reverse-DNS package identifier, e.g. ``com.example.notes``.
        version: Package version.
        title: Application name; the bundle is recorded at ``./Applications/<title>.app``.
        install_kbytes: ``installKBytes`` of the payload.
        number_of_files: ``numberOfFiles`` of the payload.

    Returns:
        The ``.pkg`` file.
    """
    info = package_info_bytes(
        identifier=identifier,
        version=version,
        title=title,
        install_kbytes=install_kbytes,
        number_of_files=number_of_files,
    )
    return _xar([("PackageInfo", info)])


# --------------------------------------------------------------------------------------------
# generic
# --------------------------------------------------------------------------------------------

_FIRMWARE_MAGIC: Final = b"FWBLOB01"


def firmware_blob_bytes(*, name: str, version: str, size: int = 64 * 1024) -> bytes:
    """Build an opaque firmware image: a small header, then deterministic pseudo-random bytes.

    The magic matches no format Packyard detects, so the blob stays ``generic`` and its name
    and version must be given at upload.

    Args:
        name: Written into the header (informational only).
        version: Written into the header (informational only).
        size: Total size in bytes; at least 72.

    Returns:
        The blob.
    """
    header = _FIRMWARE_MAGIC + f"{name}\0{version}\0".encode().ljust(64, b"\0")[:64]
    if size < len(header):
        raise ValueError(f"firmware blob size must be at least {len(header)} bytes")
    body = hashlib.shake_256(f"{name}/{version}".encode()).digest(size - len(header))
    return header + body
