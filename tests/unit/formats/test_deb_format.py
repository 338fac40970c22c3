"""Debian packages built byte by byte: golden metadata and every way a deb can be broken."""

from __future__ import annotations

import io
import re

import pytest
from tests.unit.formats.format_fakes import ar_archive, deb_bytes, member, tar_bytes

from packyard.domain.artifacts import ArtifactFormat
from packyard.domain.errors import InvalidArtifact
from packyard.formats import inspect_artifact
from packyard.formats.deb import parse_control

CONTROL = """\
Package: hello
Source: hello-src (1.0-1)
Version: 1:2.10-3
Architecture: amd64
Maintainer: Jane Doe <jane@example.com>
Installed-Size: 280
Pre-Depends: dpkg (>= 1.19.0)
Depends: libc6 (>= 2.34), libfoo1 | libfoo2,
 libbar (<< 3)
Recommends: hello-doc
Suggests: hello-extra
Breaks: hello-old (<< 1.0)
Replaces: hello-old (<< 1.0)
Conflicts: goodbye
Provides: hello-virtual (= 2.10)
Multi-Arch: foreign
Section: devel
Priority: optional
Homepage: https://example.com/hello
Description: the classic greeting
 Long description line one.
 .
 Line two.
"""


def inspect(data: bytes, filename: str = "hello.deb"):
    return inspect_artifact(io.BytesIO(data), filename=filename)


def test_control_golden_values() -> None:
    meta = parse_control(CONTROL)
    assert meta.format is ArtifactFormat.DEB
    assert (meta.name, meta.version, meta.arch) == ("hello", "1:2.10-3", "amd64")
    assert meta.relations == {
        "pre-depends": ("dpkg (>= 1.19.0)",),
        "depends": ("libc6 (>= 2.34)", "libfoo1 | libfoo2", "libbar (<< 3)"),
        "recommends": ("hello-doc",),
        "suggests": ("hello-extra",),
        "breaks": ("hello-old (<< 1.0)",),
        "conflicts": ("goodbye",),
        "provides": ("hello-virtual (= 2.10)",),
        "replaces": ("hello-old (<< 1.0)",),
    }
    assert meta.fields["Multi-Arch"] == "foreign"
    assert meta.fields["Installed-Size"] == "280"
    assert meta.fields["Source"] == "hello-src (1.0-1)"
    assert meta.fields["Description"].startswith("the classic greeting\n Long description")
    assert meta.fields["control"] == CONTROL
    assert list(meta.fields)[:3] == ["Package", "Source", "Version"]


@pytest.mark.parametrize("compression", ["gz", "xz", "zst", None])
def test_control_tar_compressions(compression: str | None) -> None:
    meta = inspect(deb_bytes(CONTROL, compression=compression, data_compression=compression))
    assert (meta.format, meta.name, meta.version) == (ArtifactFormat.DEB, "hello", "1:2.10-3")
    assert meta.fields["control"] == CONTROL


def test_control_without_trailing_newline_is_kept_verbatim() -> None:
    text = "Package: a\nVersion: 1\nArchitecture: all\nDescription: x"
    assert inspect(deb_bytes(text)).fields["control"] == text


def test_latin1_control_is_decoded() -> None:
    raw = "Package: a\nVersion: 1\nArchitecture: all\nMaintainer: Jos\xe9 <j@x>\n".encode("latin-1")
    data = ar_archive(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.gz", tar_bytes([member("./control", raw)], compression="gz")),
            ("data.tar.gz", tar_bytes([], compression="gz")),
        ]
    )
    assert inspect(data).fields["Maintainer"] == "Jos\xe9 <j@x>"


def test_gnu_ar_slash_names_and_signature_members_are_accepted() -> None:
    control = tar_bytes([member("control", CONTROL.encode())], compression="gz")
    data = ar_archive(
        [
            ("debian-binary/", b"2.0\n"),
            ("control.tar.gz/", control),
            ("data.tar.gz/", tar_bytes([], compression="gz")),
            ("_gpgbuilder", b"signature"),
        ]
    )
    assert inspect(data).name == "hello"


def test_static_library_ar_is_generic() -> None:
    meta = inspect(ar_archive([("foo.o", b"\x7fELF....")]), filename="libfoo-1.0.a")
    assert (meta.format, meta.name, meta.version) == (ArtifactFormat.GENERIC, None, None)


def test_truncated_deb_names_the_member() -> None:
    data = deb_bytes(CONTROL)[:200]
    with pytest.raises(InvalidArtifact, match=r"control\.tar\.xz.* is truncated") as info:
        inspect(data)
    assert info.value.hint


def test_garbage_after_ar_magic() -> None:
    with pytest.raises(InvalidArtifact, match="ar member header at offset 8"):
        inspect(b"!<arch>\n" + bytes(range(256)) * 4)


def test_missing_control_member() -> None:
    data = ar_archive([("debian-binary", b"2.0\n"), ("data.tar.xz", b"")])
    with pytest.raises(InvalidArtifact, match=re.escape("no control.tar member")):
        inspect(data)


def test_missing_data_member() -> None:
    control = tar_bytes([member("./control", CONTROL.encode())], compression="gz")
    data = ar_archive([("debian-binary", b"2.0\n"), ("control.tar.gz", control)])
    with pytest.raises(InvalidArtifact, match=re.escape("no data.tar member")):
        inspect(data)


def test_corrupt_control_tar() -> None:
    data = ar_archive(
        [
            ("debian-binary", b"2.0\n"),
            ("control.tar.xz", b"\xfd7zXZ\x00 this is not xz"),
            ("data.tar.xz", b""),
        ]
    )
    with pytest.raises(InvalidArtifact, match=r"control\.tar\.xz is corrupt"):
        inspect(data)


def test_control_tar_without_control_file() -> None:
    control = tar_bytes([member("./md5sums", b"")], compression="gz")
    data = ar_archive(
        [("debian-binary", b"2.0\n"), ("control.tar.gz", control), ("data.tar.gz", b"")]
    )
    with pytest.raises(InvalidArtifact, match="has no 'control' file"):
        inspect(data)


def test_control_without_version() -> None:
    with pytest.raises(InvalidArtifact, match="no Version field"):
        inspect(deb_bytes("Package: a\nArchitecture: all\n"))


def test_unknown_deb_format_version() -> None:
    data = ar_archive([("debian-binary", b"3.0\n"), ("control.tar.gz", b"")])
    with pytest.raises(InvalidArtifact, match=re.escape("format '3.0'")):
        inspect(data)


def test_unsupported_control_compression() -> None:
    data = ar_archive(
        [("debian-binary", b"2.0\n"), ("control.tar.lz4", b"x"), ("data.tar.xz", b"")]
    )
    with pytest.raises(InvalidArtifact, match=r"control\.tar\.lz4 uses a compression"):
        inspect(data)
