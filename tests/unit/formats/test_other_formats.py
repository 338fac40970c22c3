"""Containers, Python distributions, disk images, AppImages and the generic fallback."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile

import pytest
from tests.unit.formats.format_fakes import member, tar_bytes, wheel_bytes

from packyard.domain.artifacts import ArtifactFormat
from packyard.formats import inspect_artifact
from packyard.formats.other import name_version_from_filename


def inspect(data: bytes, filename: str = "upload.bin"):
    return inspect_artifact(io.BytesIO(data), filename=filename)


def test_docker_save_legacy() -> None:
    config = {"architecture": "arm64", "os": "linux", "variant": "v8"}
    manifest = [
        {
            "Config": "abc123.json",
            "RepoTags": ["registry.example.com:5000/team/app:1.4.2", "app:latest"],
            "Layers": ["l1/layer.tar", "l2/layer.tar"],
        }
    ]
    data = tar_bytes(
        [
            member("l1/", kind=tarfile.DIRTYPE),
            member("l1/layer.tar", b"\x00" * 1024),
            member("l2/layer.tar", b"\x00" * 1024),
            member("abc123.json", json.dumps(config).encode()),
            member("repositories", b"{}"),
            member("manifest.json", json.dumps(manifest).encode()),
        ]
    )
    meta = inspect(data)
    assert meta.format is ArtifactFormat.CONTAINER_IMAGE
    assert (meta.name, meta.version, meta.arch, meta.kind) == (
        "registry.example.com:5000/team/app",
        "1.4.2",
        "arm64",
        "docker-save",
    )
    assert meta.fields == {
        "repo_tags": ["registry.example.com:5000/team/app:1.4.2", "app:latest"],
        "images": 1,
        "layers": 2,
        "architecture": "arm64",
        "os": "linux",
        "variant": "v8",
    }


def test_docker_save_untagged() -> None:
    manifest = [{"Config": "blobs/sha256/aa", "RepoTags": None, "Layers": []}]
    data = tar_bytes(
        [
            member("blobs/sha256/aa", b'{"architecture": "amd64", "os": "linux"}'),
            member("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            member("index.json", b'{"manifests": []}'),
            member("manifest.json", json.dumps(manifest).encode()),
        ]
    )
    meta = inspect(data)
    assert (meta.name, meta.version, meta.arch, meta.kind) == (None, None, "amd64", "docker-save")


def test_oci_layout() -> None:
    image_manifest = {
        "config": {"digest": "sha256:cfg"},
        "layers": [{"digest": "sha256:l1"}],
    }
    index = {
        "manifests": [
            {
                "digest": "sha256:man",
                "annotations": {"org.opencontainers.image.ref.name": "3.19"},
            }
        ]
    }
    data = tar_bytes(
        [
            member("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            member("index.json", json.dumps(index).encode()),
            member("blobs/sha256/man", json.dumps(image_manifest).encode()),
            member("blobs/sha256/cfg", b'{"architecture": "amd64", "os": "linux"}'),
            member("blobs/sha256/l1", b"\x1f\x8b" + b"\x00" * 100),
        ],
        compression="gz",
    )
    meta = inspect(data, filename="alpine.tar.gz")
    assert (meta.format, meta.kind, meta.name, meta.version, meta.arch) == (
        ArtifactFormat.CONTAINER_IMAGE,
        "oci",
        None,
        "3.19",
        "amd64",
    )
    assert meta.fields["layers"] == 1


def test_wheel() -> None:
    data = wheel_bytes(requires=["requests>=2", 'tomli; python_version < "3.11"'])
    meta = inspect(data, filename="renamed.zip")
    assert meta.format is ArtifactFormat.PYTHON_WHEEL
    assert (meta.name, meta.version, meta.arch) == ("demo", "1.0", "any")
    assert meta.relations == {"requires": ("requests>=2", 'tomli; python_version < "3.11"')}
    assert meta.fields["Summary"] == "demo"
    assert meta.fields["Description"] == "Long description.\n"
    assert meta.fields["wheel_tags"] == ["py3-none-any"]
    assert meta.fields["root_is_purelib"] is True


def test_platform_wheel_arch() -> None:
    tags = ["cp311-cp311-manylinux_2_17_x86_64", "cp311-cp311-manylinux2014_x86_64"]
    meta = inspect(wheel_bytes(tags=tags))
    assert meta.arch == "manylinux_2_17_x86_64.manylinux2014_x86_64"


def test_plain_zip_is_generic() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hi")
    assert inspect(buffer.getvalue()).format is ArtifactFormat.GENERIC


def test_damaged_zip_is_generic() -> None:
    assert inspect(b"PK\x03\x04" + b"\x00" * 100).format is ArtifactFormat.GENERIC


def test_sdist() -> None:
    pkg_info = b"Metadata-Version: 2.1\nName: demo\nVersion: 0.3.1\nRequires-Dist: attrs\n"
    data = tar_bytes(
        [
            member("demo-0.3.1/", kind=tarfile.DIRTYPE),
            member("demo-0.3.1/PKG-INFO", pkg_info),
            member("demo-0.3.1/setup.py", b""),
        ],
        compression="gz",
    )
    meta = inspect(data, filename="whatever.tar.gz")
    assert (meta.format, meta.name, meta.version) == (ArtifactFormat.PYTHON_SDIST, "demo", "0.3.1")
    assert meta.relations == {"requires": ("attrs",)}


def test_ova() -> None:
    data = tar_bytes([member("appliance.ovf", b"<Envelope/>"), member("disk1.vmdk", b"x")])
    meta = inspect(data, filename="appliance-2.1.0.ova")
    assert (meta.format, meta.kind, meta.name, meta.version) == (
        ArtifactFormat.DISK_IMAGE,
        "ova",
        "appliance",
        "2.1.0",
    )
    assert meta.fields == {"ovf": ["appliance.ovf"]}


def test_qcow2() -> None:
    head = b"QFI\xfb" + (3).to_bytes(4, "big") + bytes(16) + (10 * 2**30).to_bytes(8, "big")
    meta = inspect(head + bytes(1000), filename="debian-12.5.qcow2")
    assert (meta.format, meta.kind, meta.name, meta.version) == (
        ArtifactFormat.DISK_IMAGE,
        "qcow2",
        "debian",
        "12.5",
    )
    assert meta.fields == {"qcow2_version": 3, "virtual_size": 10 * 2**30}


def test_iso_even_when_hybrid() -> None:
    image = bytearray(0x9000)
    image[510:512] = b"\x55\xaa"
    image[0x8001:0x8006] = b"CD001"
    image[0x8028:0x8048] = b"INSTALLER".ljust(32)
    meta = inspect(bytes(image), filename="installer.iso")
    assert (meta.kind, meta.name, meta.version) == ("iso", None, None)
    assert meta.fields == {"volume_id": "INSTALLER"}


@pytest.mark.parametrize(
    ("offset", "magic", "table"), [(510, b"\x55\xaa", "mbr"), (512, b"EFI PART", "gpt")]
)
def test_raw_disk_image(offset: int, magic: bytes, table: str) -> None:
    image = bytearray(4096)
    image[offset : offset + len(magic)] = magic
    meta = inspect(bytes(image), filename="rootfs-1.0.img")
    assert (meta.format, meta.kind, meta.name, meta.version) == (
        ArtifactFormat.DISK_IMAGE,
        "img",
        "rootfs",
        "1.0",
    )
    assert meta.fields == {"partition_table": table}


def test_appimage() -> None:
    elf = bytearray(64)
    elf[0:4] = b"\x7fELF"
    elf[4], elf[5] = 2, 1  # 64-bit, little endian
    elf[8:11] = b"AI\x02"
    elf[18:20] = (62).to_bytes(2, "little")
    meta = inspect(bytes(elf) + bytes(1000), filename="Tool-1.2.3-x86_64.AppImage")
    assert (meta.format, meta.name, meta.version, meta.arch, meta.kind) == (
        ArtifactFormat.APPIMAGE,
        "Tool",
        "1.2.3",
        "x86_64",
        "type2",
    )


def test_plain_elf_is_generic() -> None:
    assert inspect(b"\x7fELF\x02\x01\x01" + bytes(100)).format is ArtifactFormat.GENERIC


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world",
        bytes(range(256)) * 300,
        b"\x1f\x8b\x08\x00" + bytes(50),  # truncated gzip
        b"\x28\xb5\x2f\xfd" + bytes(50),  # garbage zstd
        tar_bytes([member("notes.txt", b"x"), member("more/notes.txt", b"y")], compression="xz"),
    ],
    ids=["empty", "text", "binary", "bad-gzip", "bad-zstd", "plain-tar-xz"],
)
def test_generic(data: bytes) -> None:
    meta = inspect(data, filename="tool-1.2.3.tar.xz")
    assert (meta.format, meta.name, meta.version, meta.kind) == (
        ArtifactFormat.GENERIC,
        None,
        None,
        None,
    )


def test_gzip_that_is_not_a_tar_is_generic() -> None:
    assert inspect(gzip.compress(b"just text" * 100)).format is ArtifactFormat.GENERIC


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("appliance-2.1.0.ova", ("appliance", "2.1.0")),
        ("my_tool-1.2.3-rc1.img", ("my_tool", "1.2.3-rc1")),
        ("Tool-1.2.3-aarch64.AppImage", ("Tool", "1.2.3")),
        ("/some/dir/rootfs_v4.0.qcow2", ("rootfs", "4.0")),
        ("ubuntu-22.04.3-live-server-amd64.iso", (None, None)),
        ("image.iso", (None, None)),
        ("1.2.3.img", (None, None)),
    ],
)
def test_name_version_from_filename(filename: str, expected: tuple[str | None, str | None]) -> None:
    assert name_version_from_filename(filename) == expected


def test_filename_never_decides_the_format() -> None:
    meta = inspect(b"Package: x\nVersion: 1\n", filename="x_1_all.deb")
    assert meta.format is ArtifactFormat.GENERIC
