"""macOS flat packages as hand-written xar archives."""

from __future__ import annotations

import io
import re

import pytest
from tests.unit.formats.format_fakes import xar_bytes

from packyard.domain.artifacts import ArtifactFormat
from packyard.domain.errors import InvalidArtifact
from packyard.formats import inspect_artifact

PACKAGE_INFO = b"""<?xml version="1.0" encoding="utf-8"?>
<pkg-info format-version="2" identifier="com.example.tool" version="2.3.1"
          install-location="/" auth="root">
    <payload numberOfFiles="12" installKBytes="3456"/>
    <bundle id="com.example.Tool" CFBundleShortVersionString="2.3.1" path="./Tool.app"/>
    <bundle id="com.example.Tool.helper" path="./Tool.app/Contents/Helper.app"/>
</pkg-info>
"""

DISTRIBUTION = b"""<?xml version="1.0" encoding="utf-8"?>
<installer-gui-script minSpecVersion="2">
    <title>Example Tool</title>
    <options customize="never" hostArchitectures="arm64,x86_64"/>
    <pkg-ref id="com.example.tool"/>
    <choices-outline><line choice="default"/></choices-outline>
    <pkg-ref id="com.example.tool" version="2.3.1" installKBytes="3456">#tool.pkg</pkg-ref>
    <pkg-ref id="com.example.extra" version="1.0" installKBytes="10">#extra.pkg</pkg-ref>
</installer-gui-script>
"""


def inspect(data: bytes):
    return inspect_artifact(io.BytesIO(data), filename="tool.pkg")


@pytest.mark.parametrize("encoding", ["application/x-gzip", "application/octet-stream"])
def test_component_package(encoding: str) -> None:
    data = xar_bytes(
        {"PackageInfo": PACKAGE_INFO, "Bom": b"BOM", "Payload": b"x"}, encoding=encoding
    )
    meta = inspect(data)
    assert meta.format is ArtifactFormat.MACOS_PKG
    assert (meta.name, meta.version, meta.arch, meta.kind) == (
        "com.example.tool",
        "2.3.1",
        None,
        "component",
    )
    assert meta.fields == {
        "identifier": "com.example.tool",
        "version": "2.3.1",
        "install-location": "/",
        "auth": "root",
        "format-version": "2",
        "install-kbytes": 3456,
        "number-of-files": 12,
        "bundle-ids": ["com.example.Tool", "com.example.Tool.helper"],
    }


def test_product_archive() -> None:
    data = xar_bytes(
        {
            "Distribution": DISTRIBUTION,
            "tool.pkg/PackageInfo": PACKAGE_INFO,
            "tool.pkg/Payload": b"",
        }
    )
    meta = inspect(data)
    assert (meta.name, meta.version, meta.arch, meta.kind) == (
        "com.example.tool",
        "2.3.1",
        "arm64,x86_64",
        "product",
    )
    assert meta.fields["title"] == "Example Tool"
    assert meta.fields["install-kbytes"] == 3466
    # One per component package (Munki's receipts), with its own installed size.
    assert meta.fields["packages"] == [
        {"id": "com.example.tool", "version": "2.3.1", "install-kbytes": 3456},
        {"id": "com.example.extra", "version": "1.0", "install-kbytes": 10},
    ]
    assert meta.fields["bundle-ids"] == ["com.example.Tool", "com.example.Tool.helper"]
    assert "allowed-os-versions" not in meta.fields


def test_product_archive_allowed_os_versions() -> None:
    """Installer's OS ranges, at the top level or in <volume-check>, each <os-version> once."""
    dist = DISTRIBUTION.replace(
        b"<title>",
        b'<allowed-os-versions><os-version min="12.0"/></allowed-os-versions>'
        b"<volume-check><allowed-os-versions>"
        b'<os-version min="10.15" before="11"/><os-version before="10.9"/>'
        b"</allowed-os-versions></volume-check><title>",
    ).replace(b' installKBytes="10"', b"")
    meta = inspect(xar_bytes({"Distribution": dist}))
    assert meta.fields["allowed-os-versions"] == [
        {"min": "12.0"},
        {"min": "10.15", "before": "11"},
        {"before": "10.9"},
    ]
    assert meta.fields["packages"][1] == {"id": "com.example.extra", "version": "1.0"}


def test_product_element_wins() -> None:
    dist = DISTRIBUTION.replace(
        b"<title>", b'<product id="com.example.suite" version="5.0"/><title>'
    )
    meta = inspect(xar_bytes({"Distribution": dist}))
    assert (meta.name, meta.version) == ("com.example.suite", "5.0")


def test_xar_without_installer_metadata_is_generic() -> None:
    meta = inspect(xar_bytes({"something.txt": b"hello"}))
    assert (meta.format, meta.name) == (ArtifactFormat.GENERIC, None)


def test_truncated_toc() -> None:
    with pytest.raises(InvalidArtifact, match="xar table of contents is truncated"):
        inspect(xar_bytes({"PackageInfo": PACKAGE_INFO})[:40])


def test_truncated_header() -> None:
    with pytest.raises(InvalidArtifact, match="xar header is truncated"):
        inspect(b"xar!\x00\x1c")


def test_truncated_heap() -> None:
    data = xar_bytes({"PackageInfo": PACKAGE_INFO}, encoding="application/octet-stream")
    with pytest.raises(InvalidArtifact, match="lies past the end of the file"):
        inspect(data[:-10])


def test_garbage_toc() -> None:
    data = bytearray(xar_bytes({"PackageInfo": PACKAGE_INFO}))
    data[28:40] = b"\x00" * 12
    with pytest.raises(InvalidArtifact, match="does not decompress"):
        inspect(bytes(data))


def test_dtd_refused() -> None:
    data = xar_bytes(
        {"PackageInfo": PACKAGE_INFO},
        toc_prefix='<!DOCTYPE x [<!ENTITY a "aaaa">]>',
    )
    with pytest.raises(InvalidArtifact, match="declares a DTD or entities"):
        inspect(data)


def test_package_info_without_identifier() -> None:
    data = xar_bytes({"PackageInfo": b'<pkg-info version="1"/>'})
    with pytest.raises(InvalidArtifact, match=re.escape("PackageInfo has no <pkg-info")):
        inspect(data)


def test_distribution_without_versions() -> None:
    data = xar_bytes(
        {"Distribution": b'<installer-gui-script><pkg-ref id="a"/></installer-gui-script>'}
    )
    with pytest.raises(InvalidArtifact, match="names no product or pkg-ref"):
        inspect(data)
