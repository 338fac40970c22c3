"""Packets built with tarfile: valid ones, invalid control.json and every unsafe member."""

from __future__ import annotations

import io
import re
import tarfile

import pytest
from tests.unit.formats.format_fakes import member, packet_bytes, tar_bytes

from packyard.domain.artifacts import ArtifactFormat
from packyard.domain.errors import InvalidArtifact, UnsafeArchive
from packyard.formats import inspect_artifact

SAFE_DATA = [
    member("./", kind=tarfile.DIRTYPE, mode=0o755),
    member("./etc", kind=tarfile.DIRTYPE, mode=0o755),
    member("./etc/x", b"x"),
]


def inspect(data: bytes):
    return inspect_artifact(io.BytesIO(data), filename="hello-1.0.packet")


@pytest.mark.parametrize("data_name", ["data.tar.xz", "data.tar.zst", "data.tar.gz", "data.tar"])
@pytest.mark.parametrize("compression", [None, "zst", "gz"])
def test_valid_packet(data_name: str, compression: str | None) -> None:
    meta = inspect(
        packet_bytes(
            control={
                "name": "hello",
                "version": "1.0-2",
                "tags": ["arch=armv7l", "glibc-2.23"],
                "description": "greets",
                "arch": "armv7l",
            },
            scripts={"postinst": b"#!/bin/sh\n", "preinst": b"#!/bin/sh\n"},
            data_name=data_name,
            compression=compression,
        )
    )
    assert meta.format is ArtifactFormat.PACKET
    assert (meta.name, meta.version, meta.arch) == ("hello", "1.0-2", "armv7l")
    assert meta.relations == {}
    assert meta.fields == {
        "name": "hello",
        "version": "1.0-2",
        "tags": ["arch=armv7l", "glibc-2.23"],
        "description": "greets",
        "arch": "armv7l",
        "scripts": ["postinst", "preinst"],
        "files": 2,
    }


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{not json", "control.json is not valid JSON"),
        (b"[1, 2]", "control.json is not a JSON object"),
        (b'{"version": "1"}', "control.json has no string 'name'"),
        (b'{"name": "a", "version": ""}', "control.json has no string 'version'"),
        (b'{"name": "a", "version": 1}', "control.json has no string 'version'"),
        (b'{"name": "a", "version": "1", "tags": "x"}', "'tags' is not a list of strings"),
        (b'{"name": "a", "version": "1", "tags": [1]}', "'tags' is not a list of strings"),
        (b'{"name": "../a", "version": "1"}', "name '../a' has characters"),
        (b'{"name": "a", "version": "1 2"}', "version '1 2' has characters"),
        (b'{"name": "a", "version": "1", "description": 3}', "'description' is not a string"),
    ],
)
def test_invalid_control_json(raw: bytes, problem: str) -> None:
    with pytest.raises(InvalidArtifact, match=problem) as info:
        inspect(packet_bytes(control_raw=raw))
    assert not isinstance(info.value, UnsafeArchive)
    assert info.value.hint


def test_missing_data_tar() -> None:
    data = tar_bytes([member("control.json", b'{"name": "a", "version": "1"}')])
    with pytest.raises(InvalidArtifact, match=re.escape("the packet has no data.tar")):
        inspect(data)


def test_two_data_tars() -> None:
    extra = [member("data.tar.gz", tar_bytes(SAFE_DATA, compression="gz"))]
    with pytest.raises(InvalidArtifact, match="more than one data tar"):
        inspect(packet_bytes(extra_outer=extra))


def test_corrupt_data_tar() -> None:
    data = tar_bytes(
        [
            member("control.json", b'{"name": "a", "version": "1"}'),
            member("data.tar.xz", b"\xfd7zXZ\x00garbage"),
        ]
    )
    with pytest.raises(InvalidArtifact, match=r"data\.tar\.xz is corrupt or truncated"):
        inspect(data)


UNSAFE = [
    pytest.param(member("../x", b"x"), "'..' path component", id="dotdot"),
    pytest.param(member("/etc/x", b"x"), "absolute path", id="absolute"),
    pytest.param(
        member("passwd", kind=tarfile.SYMTYPE, linkname="../../etc/passwd"),
        "escapes the archive root",
        id="symlink-escape",
    ),
    pytest.param(
        member("shadow", kind=tarfile.SYMTYPE, linkname="/etc/shadow"),
        "symlink to absolute target",
        id="symlink-absolute",
    ),
    pytest.param(
        member("hard", kind=tarfile.LNKTYPE, linkname="../../etc/passwd"),
        "hardlink to '../../etc/passwd'",
        id="hardlink-escape",
    ),
    pytest.param(member("sda", kind=tarfile.BLKTYPE), "is a block device", id="blockdev"),
    pytest.param(member("tty", kind=tarfile.CHRTYPE), "is a character device", id="chardev"),
    pytest.param(member("pipe", kind=tarfile.FIFOTYPE), "is a fifo", id="fifo"),
]


@pytest.mark.parametrize(("bad", "problem"), UNSAFE)
def test_unsafe_member_in_outer_tar(bad: tuple[tarfile.TarInfo, bytes], problem: str) -> None:
    with pytest.raises(UnsafeArchive, match=problem) as info:
        inspect(packet_bytes(extra_outer=[bad]))
    assert str(info.value).startswith("packet member ")
    assert info.value.details["archive"] == "packet"


@pytest.mark.parametrize(("bad", "problem"), UNSAFE)
def test_unsafe_member_in_data_tar(bad: tuple[tarfile.TarInfo, bytes], problem: str) -> None:
    info_, data = bad
    info_.name = "./" + info_.name.lstrip("/") if info_.name != "/etc/x" else info_.name
    with pytest.raises(UnsafeArchive, match=problem) as info:
        inspect(packet_bytes(data_members=[*SAFE_DATA, (info_, data)]))
    assert info.value.details["archive"] == "data.tar.xz"


def test_unsafe_member_after_many_safe_ones_is_found() -> None:
    many = [member(f"./f{i}", b"") for i in range(500)]
    with pytest.raises(UnsafeArchive, match=re.escape("'..' path component")):
        inspect(packet_bytes(data_members=[*many, member("./a/../../x", b"")]))


def test_write_through_symlink_in_data_tar() -> None:
    members = [
        member("./etc", kind=tarfile.SYMTYPE, linkname="usr/etc"),
        member("./etc/passwd", b"x"),
    ]
    with pytest.raises(UnsafeArchive, match="lies below the symlink 'etc'"):
        inspect(packet_bytes(data_members=members))


def test_safe_relative_symlink_is_accepted() -> None:
    members = [
        *SAFE_DATA,
        member("./usr/bin/x", kind=tarfile.SYMTYPE, linkname="../../etc/x"),
        member("./etc/y", kind=tarfile.LNKTYPE, linkname="./etc/x"),
    ]
    assert inspect(packet_bytes(data_members=members)).fields["files"] == 4
