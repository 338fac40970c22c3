"""safetar: single-member checks, order-dependent checks, limits and safe extraction."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest
from tests.unit.formats.format_fakes import member, tar_bytes

from packyard.domain.errors import UnsafeArchive
from packyard.formats.safetar import (
    MemberChecker,
    TarLimits,
    check_member,
    iter_safe_members,
    normalise_name,
    safe_extract,
)


def info(name: str, *, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    return member(name, kind=kind, linkname=linkname)[0]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("./usr/bin/x", "usr/bin/x"), ("usr/", "usr"), (".", ""), ("./", ""), ("././a", "a")],
)
def test_normalise_name(raw: str, expected: str) -> None:
    assert normalise_name(raw) == expected


@pytest.mark.parametrize(
    "tarinfo",
    [
        info("./usr/bin/x"),
        info("./", kind=tarfile.DIRTYPE),
        info("usr/lib/libx.so", kind=tarfile.SYMTYPE, linkname="libx.so.1"),
        info("usr/bin/x", kind=tarfile.SYMTYPE, linkname="../../opt/x/bin/x"),
        info("a/b", kind=tarfile.SYMTYPE, linkname="."),
        info("a", kind=tarfile.SYMTYPE, linkname="."),
        info("a/b", kind=tarfile.LNKTYPE, linkname="./c/d"),
        info("a..b/c..d"),
    ],
    ids=lambda t: t.name,
)
def test_safe_members(tarinfo: tarfile.TarInfo) -> None:
    check_member(tarinfo)


@pytest.mark.parametrize(
    ("tarinfo", "problem"),
    [
        (info("/etc/passwd"), "has an absolute path"),
        (info("../x"), "has a '..' path component"),
        (info("a/../b"), "has a '..' path component"),
        (info("a/.."), "has a '..' path component"),
        (info(""), "has an empty name"),
        (info("."), "has an empty name"),
        (info("x", kind=tarfile.SYMTYPE, linkname=".."), "escapes the archive root"),
        (info("a/x", kind=tarfile.SYMTYPE, linkname="../../b"), "escapes the archive root"),
        (info("x", kind=tarfile.SYMTYPE, linkname="/etc"), "absolute target '/etc'"),
        (info("x", kind=tarfile.SYMTYPE, linkname=""), "absolute target ''"),
        (info("x", kind=tarfile.LNKTYPE, linkname="/etc/passwd"), "hardlink to '/etc/passwd'"),
        (info("x", kind=tarfile.LNKTYPE, linkname="a/../../b"), "hardlink to 'a/../../b'"),
        (info("x", kind=tarfile.CHRTYPE), "is a character device"),
        (info("x", kind=tarfile.BLKTYPE), "is a block device"),
        (info("x", kind=tarfile.FIFOTYPE), "is a fifo"),
        (info("x", kind=tarfile.CONTTYPE + b"Z"), "unsupported type"),
    ],
)
def test_unsafe_members(tarinfo: tarfile.TarInfo, problem: str) -> None:
    with pytest.raises(UnsafeArchive, match=re.escape(problem)) as raised:
        check_member(tarinfo, archive="data.tar.xz")
    assert str(raised.value).startswith("data.tar.xz member ")
    assert raised.value.hint


def test_member_limit() -> None:
    checker = MemberChecker(limits=TarLimits(max_members=2))
    checker.check(info("a"))
    checker.check(info("b"))
    with pytest.raises(UnsafeArchive, match="has more than 2 members"):
        checker.check(info("c"))


def test_size_limit() -> None:
    checker = MemberChecker(limits=TarLimits(max_total_bytes=10))
    big = info("a")
    big.size = 11
    with pytest.raises(UnsafeArchive, match="declares more than 10 bytes"):
        checker.check(big)


def test_hardlink_must_name_an_earlier_file() -> None:
    checker = MemberChecker()
    with pytest.raises(UnsafeArchive, match="not a file stored earlier"):
        checker.check(info("b", kind=tarfile.LNKTYPE, linkname="a"))
    checker.check(info("./a"))
    checker.check(info("b", kind=tarfile.LNKTYPE, linkname="./a"))


def test_nothing_below_or_over_a_symlink() -> None:
    checker = MemberChecker()
    checker.check(info("dir", kind=tarfile.SYMTYPE, linkname="real"))
    with pytest.raises(UnsafeArchive, match="lies below the symlink 'dir'"):
        checker.check(info("dir/x"))
    with pytest.raises(UnsafeArchive, match="replaces a symlink"):
        checker.check(info("dir"))


def test_hardlink_to_symlink_refused() -> None:
    checker = MemberChecker()
    checker.check(info("s", kind=tarfile.SYMTYPE, linkname="t"))
    with pytest.raises(UnsafeArchive, match="not a file stored earlier"):
        checker.check(info("h", kind=tarfile.LNKTYPE, linkname="s"))


def test_iter_safe_members_streams() -> None:
    data = tar_bytes([member("./a", b"1"), member("./b", b"2")], compression="gz")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r|gz") as tar:
        contents = []
        for item in iter_safe_members(tar):
            handle = tar.extractfile(item)
            assert handle is not None
            contents.append(handle.read())
    assert contents == [b"1", b"2"]


def test_safe_extract_writes_the_tree(tmp_path: Path) -> None:
    data = tar_bytes(
        [
            member("./", kind=tarfile.DIRTYPE, mode=0o755),
            member("./opt", kind=tarfile.DIRTYPE, mode=0o755),
            member("./opt/tool", b"#!/bin/sh\n", mode=0o4755),
            member("./opt/link", kind=tarfile.SYMTYPE, linkname="tool"),
            member("./opt/hard", kind=tarfile.LNKTYPE, linkname="./opt/tool", mode=0o4755),
        ]
    )
    dest = tmp_path / "stage"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert safe_extract(tar, dest) == 4
    assert (dest / "opt/tool").read_bytes() == b"#!/bin/sh\n"
    assert (dest / "opt/tool").stat().st_mode & 0o7777 == 0o4755  # setuid kept
    assert (dest / "opt/link").readlink() == Path("tool")
    assert (dest / "opt/hard").stat().st_ino == (dest / "opt/tool").stat().st_ino


def test_safe_extract_refuses_before_writing_outside(tmp_path: Path) -> None:
    data = tar_bytes(
        [member("./ok", b"1"), member("./x", kind=tarfile.SYMTYPE, linkname="../../outside")]
    )
    with tarfile.open(fileobj=io.BytesIO(data)) as tar, pytest.raises(UnsafeArchive):
        safe_extract(tar, tmp_path / "stage")
    assert (tmp_path / "stage/ok").exists()
    assert not (tmp_path / "outside").exists()


def test_safe_extract_does_not_follow_existing_symlinks(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "stage"
    dest.mkdir()
    (dest / "etc").symlink_to(outside)
    (dest / "file").symlink_to(outside / "victim")
    with tarfile.open(fileobj=io.BytesIO(tar_bytes([member("./file", b"new")]))) as tar:
        safe_extract(tar, dest)
    assert not (outside / "victim").exists()
    assert (dest / "file").read_bytes() == b"new"
    with (
        tarfile.open(fileobj=io.BytesIO(tar_bytes([member("./etc/passwd", b"x")]))) as tar,
        pytest.raises(UnsafeArchive, match="outside the destination"),
    ):
        safe_extract(tar, dest)
    assert not (outside / "passwd").exists()
