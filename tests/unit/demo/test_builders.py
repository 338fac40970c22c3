"""Structure of the demo builders' output, read back in pure Python (no tools, no subprocess).

The real tools (dpkg-deb, pacman, bsdtar) check the same files in
tests/functional/test_demo_builders.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
import json
import lzma
import struct
import tarfile
import zlib
from collections.abc import Callable
from xml.etree import ElementTree

import pytest
import zstandard

from packyard.demo import DemoItem, demo_catalog
from packyard.demo.builders import (
    DEMO_MTIME,
    deb_bytes,
    file_mode,
    firmware_blob_bytes,
    macos_pkg_bytes,
    package_info_bytes,
    packet_bytes,
    pacman_bytes,
)
from packyard.domain.artifacts import ArtifactFormat, ArtifactStatus
from packyard.domain.versions import compare_versions
from packyard.formats.detect import inspect_artifact

FILES = {
    "/usr/bin/tool": b"#!/bin/sh\necho tool\n",
    "./usr/share/doc/tool/README": b"odd length!",
    "etc/tool.conf": b"",
}


def make_deb(**overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "name": "tool",
        "version": "1:2.0-3",
        "depends": ("libc6 (>= 2.34)", "dash"),
        "description": "a tool\nLonger text.\n\nSecond paragraph.",
        "maintainer": "Jane Doe <jane@example.com>",
        "files": FILES,
    }
    arguments.update(overrides)
    return deb_bytes(**arguments)


def read_ar(data: bytes) -> list[tuple[str, bytes]]:
    assert data.startswith(b"!<arch>\n")
    members = []
    offset = 8
    while offset < len(data):
        header = data[offset : offset + 60]
        assert header[58:60] == b"`\n"
        name = header[:16].decode().rstrip()
        size = int(header[48:58].decode())
        members.append((name, data[offset + 60 : offset + 60 + size]))
        offset += 60 + size + (size % 2)
    assert offset == len(data)
    return members


def tar_members(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes | None]]:
    out: dict[str, tuple[tarfile.TarInfo, bytes | None]] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for member in archive.getmembers():
            handle = archive.extractfile(member) if member.isfile() else None
            out[member.name] = (member, handle.read() if handle else None)
    return out


def parse_control(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith(" "):
            fields[key] += "\n" + line
        else:
            key, _, value = line.partition(": ")
            fields[key] = value
    return fields


# --- deb ---------------------------------------------------------------------------------------


def test_deb_is_an_ar_archive_in_dpkg_order() -> None:
    members = read_ar(make_deb())
    assert [name for name, _ in members] == ["debian-binary", "control.tar.gz", "data.tar.xz"]
    assert members[0][1] == b"2.0\n"


def test_deb_control_fields() -> None:
    control_tar = dict(read_ar(make_deb()))["control.tar.gz"]
    members = tar_members(gzip.decompress(control_tar))
    # tarfile drops the trailing "/" of directory names when reading: "./" reads back as ".".
    assert list(members) == [".", "./control", "./md5sums"]
    control = members["./control"][1]
    assert control is not None
    fields = parse_control(control.decode())
    assert list(fields) == [
        "Package",
        "Version",
        "Architecture",
        "Maintainer",
        "Installed-Size",
        "Depends",
        "Section",
        "Priority",
        "Description",
    ]
    assert fields["Package"] == "tool"
    assert fields["Version"] == "1:2.0-3"
    assert fields["Architecture"] == "all"
    assert fields["Depends"] == "libc6 (>= 2.34), dash"
    assert fields["Section"] == "misc"
    # 3 files of under 1 KiB each, 5 directories: dpkg-gencontrol counts 1 KiB for each.
    assert fields["Installed-Size"] == "8"
    assert fields["Description"] == "a tool\n Longer text.\n .\n Second paragraph."


def test_deb_without_depends_has_no_depends_field() -> None:
    control_tar = dict(read_ar(make_deb(depends=())))["control.tar.gz"]
    control = tar_members(gzip.decompress(control_tar))["./control"][1]
    assert control is not None
    assert b"Depends:" not in control


def test_deb_md5sums_match_the_data() -> None:
    members = dict(read_ar(make_deb()))
    md5sums = tar_members(gzip.decompress(members["control.tar.gz"]))["./md5sums"][1]
    data = tar_members(lzma.decompress(members["data.tar.xz"]))
    assert md5sums is not None
    listed = dict(line.split("  ", 1)[::-1] for line in md5sums.decode().splitlines())
    assert sorted(listed) == ["etc/tool.conf", "usr/bin/tool", "usr/share/doc/tool/README"]
    for path, digest in listed.items():
        content = data[f"./{path}"][1]
        assert content is not None
        assert hashlib.md5(content).hexdigest() == digest


def test_deb_data_is_rooted_at_dot_with_parent_directories() -> None:
    data = tar_members(lzma.decompress(dict(read_ar(make_deb()))["data.tar.xz"]))
    assert list(data) == [
        ".",
        "./etc",
        "./etc/tool.conf",
        "./usr",
        "./usr/bin",
        "./usr/bin/tool",
        "./usr/share",
        "./usr/share/doc",
        "./usr/share/doc/tool",
        "./usr/share/doc/tool/README",
    ]
    info, content = data["./usr/bin/tool"]
    assert content == FILES["/usr/bin/tool"]
    assert (info.mode, info.uid, info.uname, info.mtime) == (0o755, 0, "root", DEMO_MTIME)
    assert data["./etc/tool.conf"][0].mode == 0o644
    assert data["./usr"][0].isdir()


# --- pacman ------------------------------------------------------------------------------------


def make_pacman(**overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "name": "tool",
        "version": "1:2.0-3",
        "arch": "x86_64",
        "depends": ("glibc", "rsync>=3.2"),
        "description": "a tool",
        "files": FILES,
    }
    arguments.update(overrides)
    return pacman_bytes(**arguments)


def test_pacman_package_is_zstd_tar_with_dotfiles_first() -> None:
    tar = zstandard.ZstdDecompressor().decompress(make_pacman())
    names = list(tar_members(tar))
    assert names[:3] == [".PKGINFO", ".BUILDINFO", ".MTREE"]
    assert "usr/bin/tool" in names
    assert not any(name.startswith(("/", "./")) for name in names)


def test_pacman_pkginfo_fields() -> None:
    members = tar_members(zstandard.ZstdDecompressor().decompress(make_pacman()))
    raw = members[".PKGINFO"][1]
    assert raw is not None
    pairs = [
        tuple(line.split(" = ", 1))
        for line in raw.decode().splitlines()
        if line and not line.startswith("#")
    ]
    info = dict(pairs)
    assert info["pkgname"] == info["pkgbase"] == "tool"
    assert info["pkgver"] == "1:2.0-3"
    assert info["arch"] == "x86_64"
    assert info["builddate"] == str(DEMO_MTIME)
    assert int(info["size"]) == sum(len(content) for content in FILES.values())
    assert [value for key, value in pairs if key == "depend"] == ["glibc", "rsync>=3.2"]
    for key in ("pkgdesc", "url", "packager", "license"):
        assert info[key]


def test_pacman_mtree_describes_every_member() -> None:
    members = tar_members(zstandard.ZstdDecompressor().decompress(make_pacman()))
    raw = members[".MTREE"][1]
    assert raw is not None
    lines = gzip.decompress(raw).decode().splitlines()
    assert lines[0] == "#mtree"
    assert lines[1] == "/set type=file uid=0 gid=0 mode=644"
    described = {}
    for line in lines[2:]:
        path, *keywords = line.split(" ")
        described[path] = dict(keyword.split("=", 1) for keyword in keywords)
    expected = {f"./{name.rstrip('/')}" for name in members} - {"./.MTREE"}
    assert set(described) == expected
    for name, (info, content) in members.items():
        entry = described.get(f"./{name.rstrip('/')}")
        if entry is None:
            continue
        if content is None:
            assert entry["type"] == "dir"
        else:
            assert int(entry["size"]) == len(content)
            assert entry["sha256digest"] == hashlib.sha256(content).hexdigest()
            assert entry["md5digest"] == hashlib.md5(content).hexdigest()
            assert int(entry.get("mode", "644"), 8) == info.mode


def test_pacman_version_needs_pkgrel() -> None:
    with pytest.raises(ValueError, match="pkgrel"):
        make_pacman(version="2.0")


# --- packet ------------------------------------------------------------------------------------


def make_packet(**overrides: object) -> bytes:
    arguments: dict[str, object] = {
        "name": "agent-probe",
        "version": "0.3.1",
        "tags": ["arch=armv7l", "systemd"],
        "description": "probe",
        "files": FILES,
        "scripts": {"postrm": "#!/bin/sh\necho bye\n", "preinst": "#!/bin/sh\necho hi\n"},
    }
    arguments.update(overrides)
    return packet_bytes(**arguments)


def test_packet_layout() -> None:
    outer = tar_members(make_packet())
    assert list(outer) == ["control.json", "data.tar.xz", "preinst", "postrm"]
    control = outer["control.json"][1]
    assert control is not None
    assert json.loads(control) == {
        "name": "agent-probe",
        "version": "0.3.1",
        "tags": ["arch=armv7l", "systemd"],
        "description": "probe",
    }
    assert outer["preinst"][0].mode == 0o755
    assert outer["postrm"][1] == b"#!/bin/sh\necho bye\n"
    assert outer["control.json"][0].mode == 0o644


def test_packet_data_is_rooted_at_dot() -> None:
    data_xz = tar_members(make_packet())["data.tar.xz"][1]
    assert data_xz is not None
    data = tar_members(lzma.decompress(data_xz))
    assert all(name == "." or name.startswith("./") for name in data)
    assert data["./usr/bin/tool"][1] == FILES["/usr/bin/tool"]


def test_packet_without_scripts_and_with_arch() -> None:
    outer = tar_members(make_packet(scripts={}, arch="armv7l"))
    assert list(outer) == ["control.json", "data.tar.xz"]
    control = outer["control.json"][1]
    assert control is not None
    assert json.loads(control)["arch"] == "armv7l"


def test_packet_refuses_unknown_scripts() -> None:
    with pytest.raises(ValueError, match="unknown packet scripts"):
        make_packet(scripts={"config": "#!/bin/sh\n"})


# --- macOS pkg (xar) ---------------------------------------------------------------------------

PKG_ARGS = {
    "identifier": "com.example.notes",
    "version": "2.3.1",
    "title": 'Notes & "Co"',
    "install_kbytes": 18432,
}


def read_xar(data: bytes) -> tuple[ElementTree.Element, dict[str, bytes]]:
    magic, header_size, version, toc_len, toc_size, algorithm = struct.unpack(">4sHHQQI", data[:28])
    assert (magic, header_size, version, algorithm) == (b"xar!", 28, 1, 1)
    toc_compressed = data[header_size : header_size + toc_len]
    toc = zlib.decompress(toc_compressed)
    assert len(toc) == toc_size
    heap = data[header_size + toc_len :]
    root = ElementTree.fromstring(toc)
    checksum = root.find("toc/checksum")
    assert checksum is not None
    assert checksum.get("style") == "sha1"
    start, size = int(checksum.findtext("offset", "")), int(checksum.findtext("size", ""))
    assert heap[start : start + size] == hashlib.sha1(toc_compressed).digest()
    files = {}
    for node in root.findall("toc/file"):
        length = int(node.findtext("data/length", ""))
        offset = int(node.findtext("data/offset", ""))
        stored = heap[offset : offset + length]
        assert node.findtext("data/archived-checksum") == hashlib.sha1(stored).hexdigest()
        content = zlib.decompress(stored)
        assert len(content) == int(node.findtext("data/size", ""))
        assert node.findtext("data/extracted-checksum") == hashlib.sha1(content).hexdigest()
        files[node.findtext("name", "")] = content
    return root, files


def test_macos_pkg_is_a_xar_with_package_info() -> None:
    _, files = read_xar(macos_pkg_bytes(**PKG_ARGS))
    assert list(files) == ["PackageInfo"]
    assert files["PackageInfo"] == package_info_bytes(**PKG_ARGS)


def test_package_info_is_a_component_pkg_info() -> None:
    info = ElementTree.fromstring(package_info_bytes(**PKG_ARGS, number_of_files=7))
    assert info.tag == "pkg-info"
    assert info.get("format-version") == "2"
    assert info.get("identifier") == "com.example.notes"
    assert info.get("version") == "2.3.1"
    assert info.get("install-location") == "/"
    assert info.get("auth") == "root"
    payload = info.find("payload")
    assert payload is not None
    assert payload.get("numberOfFiles") == "7"
    assert payload.get("installKBytes") == "18432"
    bundle = info.find("bundle")
    assert bundle is not None
    assert bundle.get("path") == './Applications/Notes & "Co".app'


# --- generic and helpers -----------------------------------------------------------------------


def test_firmware_blob_is_deterministic_and_sized() -> None:
    blob = firmware_blob_bytes(name="fw", version="1.0", size=4096)
    assert len(blob) == 4096
    assert blob.startswith(b"FWBLOB01fw\x001.0\x00")
    assert blob == firmware_blob_bytes(name="fw", version="1.0", size=4096)
    assert blob != firmware_blob_bytes(name="fw", version="1.1", size=4096)


@pytest.mark.parametrize(
    ("path", "mode"),
    [
        ("usr/bin/x", 0o755),
        ("/opt/app/sbin/y", 0o755),
        ("usr/libexec/z", 0o755),
        ("opt/app/run.sh", 0o755),
        ("etc/bin.conf", 0o644),
        ("usr/share/doc/x/README", 0o644),
    ],
)
def test_file_mode(path: str, mode: int) -> None:
    assert file_mode(path) == mode


@pytest.mark.parametrize(
    "files",
    [
        {"../etc/passwd": b""},
        {"/": b""},
        {"usr/bin": b"", "usr/bin/x": b""},
        {"/usr/x": b"", "usr/x": b""},
    ],
)
def test_bad_file_trees_are_refused(files: dict[str, bytes]) -> None:
    with pytest.raises(ValueError):
        make_deb(files=files)


@pytest.mark.parametrize(
    "build", [make_deb, make_pacman, make_packet, lambda: macos_pkg_bytes(**PKG_ARGS)]
)
def test_builders_are_deterministic(build: Callable[[], bytes]) -> None:
    assert build() == build()


# --- catalog -----------------------------------------------------------------------------------

DEFAULT_PIPELINE = ("ci", "dev", "stage", "prod")


def by_key() -> dict[tuple[str, str], DemoItem]:
    return {(item.name, item.version): item for item in demo_catalog()}


def test_catalog_covers_the_formats_and_lifecycles() -> None:
    catalog = demo_catalog()
    assert len(catalog) == 8
    assert len({item.filename for item in catalog}) == len(catalog)
    assert {item.format for item in catalog} == {
        ArtifactFormat.DEB,
        ArtifactFormat.PACMAN,
        ArtifactFormat.PACKET,
        ArtifactFormat.MACOS_PKG,
        ArtifactFormat.GENERIC,
    }
    statuses = [item.status for item in catalog]
    assert statuses.count(ArtifactStatus.DEPRECATED) == 1
    assert statuses.count(ArtifactStatus.FAILED) == 1
    for item in catalog:
        assert (item.status_reason is None) == (item.status == ArtifactStatus.ACTIVE)
        assert item.justification and item.provenance


def test_catalog_stages_follow_the_default_pipeline() -> None:
    for item in demo_catalog():
        assert item.stages == DEFAULT_PIPELINE[: len(item.stages)], item.filename


def test_catalog_named_artifacts() -> None:
    items = by_key()
    assert items["hello-packyard", "1.0-1"].stages[-1] == "prod"
    assert items["hello-packyard", "1.1-1"].stages == ("ci", "dev")
    assert items["com.example.notes", "2.3.1"].format == ArtifactFormat.MACOS_PKG
    assert items["firmware-blob", "2024.03.1"].format == ArtifactFormat.GENERIC
    packets = [item for item in demo_catalog() if item.format == ArtifactFormat.PACKET]
    for packet in packets:
        control = tar_members(packet.content)["control.json"][1]
        assert control is not None
        assert {"arch=armv7l", "systemd"} <= set(json.loads(control)["tags"])


def test_catalog_uploads_each_package_oldest_first() -> None:
    catalog = demo_catalog()
    for name in {item.name for item in catalog}:
        versions = [item for item in catalog if item.name == name]
        for older, newer in itertools.pairwise(versions):
            assert compare_versions(older.format, older.version, newer.version) < 0


def test_catalog_content_is_built_once_and_reproducible() -> None:
    first, second = demo_catalog(), demo_catalog()
    for a, b in zip(first, second, strict=True):
        assert a.content is a.content
        assert hashlib.sha256(a.content).digest() == hashlib.sha256(b.content).digest()


def test_catalog_files_carry_their_names_and_versions() -> None:
    """Name and version inside each file agree with the catalog entry (what ingest reads)."""
    for item in demo_catalog():
        if item.format == ArtifactFormat.DEB:
            control_tar = dict(read_ar(item.content))["control.tar.gz"]
            control = tar_members(gzip.decompress(control_tar))["./control"][1]
            assert control is not None
            fields = parse_control(control.decode())
            found = (fields["Package"], fields["Version"])
        elif item.format == ArtifactFormat.PACMAN:
            tar = zstandard.ZstdDecompressor().decompress(item.content)
            raw = tar_members(tar)[".PKGINFO"][1]
            assert raw is not None
            info = dict(line.split(" = ", 1) for line in raw.decode().splitlines() if " = " in line)
            found = (info["pkgname"], info["pkgver"])
        elif item.format == ArtifactFormat.PACKET:
            control = tar_members(item.content)["control.json"][1]
            assert control is not None
            found = (json.loads(control)["name"], json.loads(control)["version"])
        elif item.format == ArtifactFormat.MACOS_PKG:
            info_xml = ElementTree.fromstring(read_xar(item.content)[1]["PackageInfo"])
            found = (info_xml.get("identifier", ""), info_xml.get("version", ""))
        else:
            found = (item.name, item.version)
        assert found == (item.name, item.version), item.filename


@pytest.mark.parametrize("item", demo_catalog(), ids=lambda item: item.filename)
def test_ingest_detection_reads_each_demo_file_as_declared(item: DemoItem) -> None:
    """The demo loader uploads through ingest: detection must agree with the catalog."""
    metadata = inspect_artifact(io.BytesIO(item.content), filename=item.filename)
    assert metadata.format == item.format
    if item.format != ArtifactFormat.GENERIC:
        assert (metadata.name, metadata.version) == (item.name, item.version)
