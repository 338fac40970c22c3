"""Byte-level builders for package files, written in Python (no tools, no subprocesses).

Each builder makes the smallest file the real format allows, following the format's spec, so
unit tests can also damage them in precise ways. Keyword-only factories, no shared state.
"""

from __future__ import annotations

import gzip
import io
import json
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import zstandard

__all__ = [
    "ar_archive",
    "compress",
    "deb_bytes",
    "member",
    "packet_bytes",
    "rpm_bytes",
    "tar_bytes",
    "wheel_bytes",
    "xar_bytes",
]


def compress(data: bytes, compression: str | None) -> bytes:
    """Compress with gz, xz, zst or nothing (None)."""
    if compression is None:
        return data
    if compression == "gz":
        return gzip.compress(data, mtime=0)
    if compression == "xz":
        return lzma.compress(data)
    if compression == "zst":
        return zstandard.ZstdCompressor().compress(data)
    raise ValueError(compression)


def member(
    name: str,
    data: bytes = b"",
    *,
    kind: bytes = tarfile.REGTYPE,
    linkname: str = "",
    mode: int = 0o644,
) -> tuple[tarfile.TarInfo, bytes]:
    """A tar member description for ``tar_bytes``."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    return info, data


def tar_bytes(
    members: Iterable[tuple[tarfile.TarInfo, bytes]], *, compression: str | None = None
) -> bytes:
    """A tar of the given members, optionally compressed."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.size else None)
    return compress(buffer.getvalue(), compression)


def ar_archive(members: Sequence[tuple[str, bytes]]) -> bytes:
    """A System V / GNU ar archive as dpkg-deb writes it."""
    out = [b"!<arch>\n"]
    for name, data in members:
        header = f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}".encode() + b"`\n"
        out.append(header)
        out.append(data)
        if len(data) % 2:
            out.append(b"\n")
    return b"".join(out)


def deb_bytes(
    control: str,
    *,
    compression: str | None = "xz",
    data_compression: str | None = "xz",
    extra_control_members: Mapping[str, bytes] | None = None,
) -> bytes:
    """A .deb whose control.tar holds ``./control`` with the given text."""
    control_members = [member("./", kind=tarfile.DIRTYPE, mode=0o755)]
    control_members.append(member("./control", control.encode("utf-8")))
    for name, data in (extra_control_members or {}).items():
        control_members.append(member(name, data))
    suffix = f".{compression}" if compression else ""
    data_suffix = f".{data_compression}" if data_compression else ""
    data_tar = tar_bytes(
        [member("./usr/share/doc/x/README", b"hi\n")], compression=data_compression
    )
    return ar_archive(
        [
            ("debian-binary", b"2.0\n"),
            (f"control.tar{suffix}", tar_bytes(control_members, compression=compression)),
            (f"data.tar{data_suffix}", data_tar),
        ]
    )


# --- rpm ----------------------------------------------------------------------------------

_STRING, _STRING_ARRAY, _I18N, _INT32, _INT64, _BIN = 6, 8, 9, 4, 5, 7


def _rpm_header(tags: Mapping[int, tuple[int, Any]], *, pad: bool) -> bytes:
    index = b""
    store = b""
    for tag, (kind, value) in sorted(tags.items()):
        if kind in (_INT32, _INT64):
            while len(store) % (4 if kind == _INT32 else 8):
                store += b"\x00"
            values = value if isinstance(value, list) else [value]
            data = struct.pack(f">{len(values)}{'I' if kind == _INT32 else 'Q'}", *values)
            count = len(values)
        elif kind == _BIN:
            data, count = value, len(value)
        elif kind == _STRING_ARRAY:
            data = b"".join(item.encode() + b"\x00" for item in value)
            count = len(value)
        else:
            data, count = value.encode() + b"\x00", 1
        index += struct.pack(">IIII", tag, kind, len(store), count)
        store += data
    header = b"\x8e\xad\xe8\x01\x00\x00\x00\x00" + struct.pack(">II", len(tags), len(store))
    header += index + store
    if pad:
        header += b"\x00" * (-len(header) % 8)
    return header


def rpm_bytes(
    *,
    name: str = "hello",
    version: str = "1.0",
    release: str = "1.el9",
    epoch: int | None = None,
    arch: str = "x86_64",
    source: bool = False,
    requires: Sequence[tuple[str, int, str]] = (),
    provides: Sequence[tuple[str, int, str]] = (),
    extra: Mapping[int, tuple[int, Any]] | None = None,
    payload: bytes = b"\x1f\x8b payload not read",
) -> bytes:
    """A minimal rpm: lead, signature header (size tag) and main header, then ``payload``.

    Relations are (name, flags, version) with rpm's RPMSENSE flags.
    """
    lead = struct.pack(
        ">4sBBhh66shh16s",
        b"\xed\xab\xee\xdb",
        3,
        0,
        1 if source else 0,
        1,
        f"{name}-{version}-{release}".encode(),
        1,
        5,
        b"",
    )
    signature = _rpm_header({1000: (_INT32, 1234)}, pad=True)
    tags: dict[int, tuple[int, Any]] = {
        1000: (_STRING, name),
        1001: (_STRING, version),
        1002: (_STRING, release),
        1004: (_I18N, "a summary"),
        1005: (_I18N, "a description"),
        1006: (_INT32, 1700000000),
        1007: (_STRING, "builder.example.com"),
        1009: (_INT32, 4096),
        1014: (_STRING, "MIT"),
        1016: (_I18N, "Applications/System"),
        1020: (_STRING, "https://example.com"),
        1022: (_STRING, arch),
    }
    if epoch is not None:
        tags[1003] = (_INT32, epoch)
    if source:
        tags[1106] = (_INT32, 1)
    else:
        tags[1044] = (_STRING, f"{name}-{version}-{release}.src.rpm")
    for (name_tag, flags_tag, version_tag), items in (
        ((1049, 1048, 1050), requires),
        ((1047, 1112, 1113), provides),
    ):
        if items:
            tags[name_tag] = (_STRING_ARRAY, [item[0] for item in items])
            tags[flags_tag] = (_INT32, [item[1] for item in items])
            tags[version_tag] = (_STRING_ARRAY, [item[2] for item in items])
    tags.update(extra or {})
    return lead + signature + _rpm_header(tags, pad=False) + payload


# --- xar ----------------------------------------------------------------------------------


def xar_bytes(
    files: Mapping[str, bytes],
    *,
    encoding: str = "application/x-gzip",
    toc_prefix: str = "",
) -> bytes:
    """A xar archive holding ``files`` (paths with one level of directories allowed)."""
    heap = b""
    next_id = 1

    def file_xml(name: str, data: bytes) -> str:
        nonlocal heap, next_id
        stored = zlib.compress(data) if encoding == "application/x-gzip" else data
        offset = len(heap)
        heap += stored
        next_id += 1
        return (
            f'<file id="{next_id}"><name>{name}</name><type>file</type>'
            f"<data><offset>{offset}</offset><length>{len(stored)}</length>"
            f'<size>{len(data)}</size><encoding style="{encoding}"/></data></file>'
        )

    top: list[str] = []
    dirs: dict[str, list[str]] = {}
    for path, data in files.items():
        if "/" in path:
            directory, name = path.split("/", 1)
            dirs.setdefault(directory, []).append(file_xml(name, data))
        else:
            top.append(file_xml(path, data))
    for directory, children in dirs.items():
        next_id += 1
        top.append(
            f'<file id="{next_id}"><name>{directory}</name><type>directory</type>'
            + "".join(children)
            + "</file>"
        )
    toc = (
        f'<?xml version="1.0" encoding="UTF-8"?>{toc_prefix}<xar><toc>'
        f"<creation-time>2024-01-01T00:00:00</creation-time>{''.join(top)}</toc></xar>"
    ).encode()
    compressed = zlib.compress(toc)
    header = struct.pack(">4sHHQQI", b"xar!", 28, 1, len(compressed), len(toc), 0)
    return header + compressed + heap


# --- packets and wheels -------------------------------------------------------------------


def packet_bytes(
    *,
    control: Any = None,
    control_raw: bytes | None = None,
    data_members: Iterable[tuple[tarfile.TarInfo, bytes]] | None = None,
    data_name: str = "data.tar.xz",
    scripts: Mapping[str, bytes] | None = None,
    extra_outer: Iterable[tuple[tarfile.TarInfo, bytes]] = (),
    compression: str | None = None,
) -> bytes:
    """A packet tar: control.json, optional scripts, a data tar and any extra outer members."""
    if control_raw is None:
        control = (
            control
            if control is not None
            else {"name": "hello", "version": "1.0", "tags": ["t"], "description": "d"}
        )
        control_raw = json.dumps(control).encode()
    if data_members is None:
        data_members = [
            member("./", kind=tarfile.DIRTYPE, mode=0o755),
            member("./opt", kind=tarfile.DIRTYPE, mode=0o755),
            member("./opt/hello", b"hi\n"),
        ]
    data_compression = data_name.rsplit(".", 1)[-1] if data_name != "data.tar" else None
    outer = [member("control.json", control_raw)]
    for name, text in (scripts or {}).items():
        outer.append(member(name, text, mode=0o755))
    outer.extend(extra_outer)
    outer.append(member(data_name, tar_bytes(data_members, compression=data_compression)))
    return tar_bytes(outer, compression=compression)


def wheel_bytes(
    *,
    name: str = "demo",
    version: str = "1.0",
    tags: Sequence[str] = ("py3-none-any",),
    requires: Sequence[str] = (),
) -> bytes:
    """A wheel with METADATA, WHEEL and RECORD."""
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: demo\n"
    metadata += "".join(f"Requires-Dist: {item}\n" for item in requires)
    metadata += "\nLong description.\n"
    wheel = "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
    wheel += "".join(f"Tag: {tag}\n" for tag in tags)
    buffer = io.BytesIO()
    dist_info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{name}/__init__.py", "")
        archive.writestr(f"{dist_info}/METADATA", metadata)
        archive.writestr(f"{dist_info}/WHEEL", wheel)
        archive.writestr(f"{dist_info}/RECORD", "")
    return buffer.getvalue()
