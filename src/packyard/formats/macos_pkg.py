"""macOS flat installer packages: xar archives holding ``PackageInfo`` or ``Distribution``.

xar layout (xar's ``include/xar.h``): a big-endian header (magic ``xar!``, header size u16,
version u16, compressed TOC length u64, uncompressed TOC length u64, checksum algorithm u32),
then the zlib-compressed XML table of contents, then the heap. Each TOC ``<file>`` has a
``<name>`` and, for files, ``<data>`` with heap ``<offset>``, stored ``<length>`` and an
``<encoding style=...>``. Nested ``<file>`` elements are directory contents.

A component package has a top-level ``PackageInfo``; a product archive (productbuild) has a
top-level ``Distribution`` and component packages as ``<name>.pkg/PackageInfo``.

Deliberately not handled: the checksum and signature in the TOC (installer and Gatekeeper
verify them on the Mac), Bom and Payload contents, and XML with DTDs or entities (refused:
Apple's tools never write them and they enable entity-expansion attacks).
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO, Final
from xml.etree import ElementTree

from packyard.domain.artifacts import ArtifactFormat, ArtifactMetadata
from packyard.domain.errors import InvalidArtifact

from ._io import read_exact, stream_size

__all__ = ["XAR_MAGIC", "inspect_macos_pkg", "parse_distribution", "parse_package_info"]

XAR_MAGIC: Final = b"xar!"
_HEADER: Final = struct.Struct(">4sHHQQI")
_TOC_LIMIT: Final = 64 * 1024 * 1024
_MEMBER_LIMIT: Final = 16 * 1024 * 1024
_HINT: Final = "the file is truncated or damaged; upload it again or rebuild it with pkgbuild"


def _invalid(message: str, hint: str = _HINT) -> InvalidArtifact:
    return InvalidArtifact(message, hint=hint, details={"format": "macos-pkg"})


@dataclass(frozen=True, kw_only=True)
class _XarFile:
    offset: int
    length: int
    size: int
    encoding: str


def _parse_xml(raw: bytes, *, what: str) -> ElementTree.Element:
    if b"<!ENTITY" in raw or b"<!DOCTYPE" in raw:
        raise _invalid(f"{what} declares a DTD or entities, which Packyard refuses")
    try:
        return ElementTree.fromstring(raw)  # noqa: S314 -- DTDs refused above
    except ElementTree.ParseError as exc:
        raise _invalid(f"{what} is not well-formed XML: {exc}") from None


def _int(text: str | None, *, what: str) -> int:
    try:
        value = int((text or "").strip())
    except ValueError:
        raise _invalid(f"xar table of contents has a bad {what}") from None
    if value < 0:
        raise _invalid(f"xar table of contents has a negative {what}")
    return value


def _walk(element: ElementTree.Element, prefix: str, out: dict[str, _XarFile]) -> None:
    for node in element.findall("file"):
        name = (node.findtext("name") or "").strip()
        path = f"{prefix}{name}"
        data = node.find("data")
        if data is not None:
            encoding = data.find("encoding")
            out[path] = _XarFile(
                offset=_int(data.findtext("offset"), what="data offset"),
                length=_int(data.findtext("length"), what="data length"),
                size=_int(data.findtext("size"), what="data size"),
                encoding=(encoding.get("style", "") if encoding is not None else ""),
            )
        _walk(node, f"{path}/", out)


def _decode(raw: bytes, encoding: str, *, what: str) -> bytes:
    try:
        if encoding in ("", "application/octet-stream"):
            return raw
        if encoding == "application/x-gzip":
            # xar's "gzip" is a bare zlib stream.
            inflater = zlib.decompressobj()
            out = inflater.decompress(raw, _MEMBER_LIMIT + 1)
        elif encoding == "application/x-bzip2":
            out = bz2.BZ2Decompressor().decompress(raw, _MEMBER_LIMIT + 1)
        elif encoding in ("application/x-xz", "application/x-lzma"):
            out = lzma.LZMADecompressor().decompress(raw, _MEMBER_LIMIT + 1)
        else:
            raise _invalid(f"{what} uses unsupported xar encoding {encoding!r}")
    except (zlib.error, OSError, lzma.LZMAError, EOFError) as exc:
        raise _invalid(f"{what} in the xar heap is corrupt: {exc}") from None
    if len(out) > _MEMBER_LIMIT:
        raise _invalid(f"{what} is larger than {_MEMBER_LIMIT} bytes")
    return out


def _read_toc(stream: BinaryIO) -> tuple[dict[str, _XarFile], int]:
    total = stream_size(stream)
    stream.seek(0)
    raw = read_exact(stream, _HEADER.size)
    if len(raw) < _HEADER.size:
        raise _invalid("xar header is truncated")
    magic, header_size, _version, toc_len, toc_size, _cksum = _HEADER.unpack(raw)
    if magic != XAR_MAGIC or header_size < _HEADER.size:
        raise _invalid("xar header is corrupt")
    if toc_size > _TOC_LIMIT or header_size + toc_len > total:
        raise _invalid(
            f"xar table of contents is truncated: it needs {toc_len} bytes but only "
            f"{max(total - header_size, 0)} remain"
        )
    stream.seek(header_size)
    compressed = read_exact(stream, toc_len)
    try:
        toc = zlib.decompressobj().decompress(compressed, _TOC_LIMIT + 1)
    except zlib.error as exc:
        raise _invalid(f"xar table of contents does not decompress: {exc}") from None
    root = _parse_xml(toc, what="xar table of contents")
    toc_element = root.find("toc")
    if root.tag != "xar" or toc_element is None:
        raise _invalid("xar table of contents has no <xar><toc>")
    files: dict[str, _XarFile] = {}
    _walk(toc_element, "", files)
    return files, header_size + toc_len


def _read_member(stream: BinaryIO, entry: _XarFile, *, heap: int, what: str) -> bytes:
    if entry.length > _MEMBER_LIMIT * 4:
        raise _invalid(f"{what} is implausibly large ({entry.length} bytes)")
    start = heap + entry.offset
    if start + entry.length > stream_size(stream):
        raise _invalid(f"{what} lies past the end of the file: the pkg is truncated")
    stream.seek(start)
    return _decode(read_exact(stream, entry.length), entry.encoding, what=what)


def parse_package_info(raw: bytes) -> dict[str, Any]:
    """Return the fields of a component ``PackageInfo`` (identifier, version, ...).

    Raises:
        InvalidArtifact: not XML, not ``<pkg-info>`` or no identifier/version.
    """
    root = _parse_xml(raw, what="PackageInfo")
    if root.tag != "pkg-info" or not root.get("identifier") or not root.get("version"):
        raise _invalid(
            "PackageInfo has no <pkg-info identifier=... version=...>",
            hint="build component packages with pkgbuild --identifier --version",
        )
    fields: dict[str, Any] = {"identifier": root.get("identifier"), "version": root.get("version")}
    for attribute in ("install-location", "auth", "format-version", "generator-version"):
        if root.get(attribute) is not None:
            fields[attribute] = root.get(attribute)
    payload = root.find("payload")
    if payload is not None:
        if payload.get("installKBytes") is not None:
            fields["install-kbytes"] = _int(payload.get("installKBytes"), what="installKBytes")
        if payload.get("numberOfFiles") is not None:
            fields["number-of-files"] = _int(payload.get("numberOfFiles"), what="numberOfFiles")
    bundles = [node.get("id") for node in root.iter("bundle") if node.get("id")]
    if bundles:
        fields["bundle-ids"] = bundles
    return fields


def parse_distribution(raw: bytes) -> dict[str, Any]:
    """Return the fields of a product archive's ``Distribution``.

    The identity is the ``<product id version>`` element when present (productbuild
    --identifier/--version), else the first ``<pkg-ref>`` carrying a version.

    Raises:
        InvalidArtifact: not XML, not ``<installer-gui-script>`` or no identity found.
    """
    root = _parse_xml(raw, what="Distribution")
    if root.tag not in ("installer-gui-script", "installer-script"):
        raise _invalid("Distribution is not an <installer-gui-script>")
    refs: list[dict[str, Any]] = []
    kbytes = 0
    for ref in root.iter("pkg-ref"):
        if ref.get("id") and ref.get("version"):
            entry: dict[str, Any] = {"id": ref.get("id"), "version": ref.get("version")}
            ref_kbytes = _int(ref.get("installKBytes") or "0", what="installKBytes")
            if ref.get("installKBytes") is not None:
                entry["install-kbytes"] = ref_kbytes
            refs.append(entry)
            kbytes += ref_kbytes
    product = root.find("product")
    identifier = product.get("id") if product is not None else None
    version = product.get("version") if product is not None else None
    if not (identifier and version) and refs:
        identifier, version = refs[0]["id"], refs[0]["version"]
    if not identifier or not version:
        raise _invalid(
            "Distribution names no product or pkg-ref with an id and a version",
            hint="build product archives with productbuild --identifier --version",
        )
    fields: dict[str, Any] = {"identifier": identifier, "version": version, "packages": refs}
    title = root.findtext("title")
    if title:
        fields["title"] = title.strip()
    if kbytes:
        fields["install-kbytes"] = kbytes
    options = root.find("options")
    if options is not None and options.get("hostArchitectures"):
        fields["host-architectures"] = options.get("hostArchitectures")
    # <allowed-os-versions> (top level or in <volume-check>): each <os-version> is one allowed
    # range; Installer refuses a Mac outside all of them.
    allowed = [
        {key: node.get(key, "") for key in ("min", "before") if node.get(key)}
        for parent in root.iter("allowed-os-versions")
        for node in parent.iter("os-version")
    ]
    if allowed:
        fields["allowed-os-versions"] = allowed
    return fields


def inspect_macos_pkg(stream: BinaryIO) -> ArtifactMetadata | None:
    """Read a flat pkg's identity, or return None for a xar that is no installer package.

    Raises:
        InvalidArtifact: the xar header, table of contents or metadata member is damaged.
    """
    files, heap = _read_toc(stream)
    if "Distribution" in files:
        fields = parse_distribution(
            _read_member(stream, files["Distribution"], heap=heap, what="Distribution")
        )
        kind = "product"
        bundles: list[str] = []
        for path, entry in sorted(files.items()):
            parts = path.split("/")
            if len(parts) == 2 and parts[1] == "PackageInfo":
                info = parse_package_info(_read_member(stream, entry, heap=heap, what=path))
                bundles.extend(info.get("bundle-ids", []))
        if bundles:
            fields["bundle-ids"] = bundles
    elif "PackageInfo" in files:
        fields = parse_package_info(
            _read_member(stream, files["PackageInfo"], heap=heap, what="PackageInfo")
        )
        kind = "component"
    else:
        return None
    return ArtifactMetadata(
        format=ArtifactFormat.MACOS_PKG,
        name=fields["identifier"],
        version=fields["version"],
        arch=fields.get("host-architectures"),
        kind=kind,
        fields=fields,
    )
