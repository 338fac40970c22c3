"""inspect_artifact on packages built by the ecosystems' own tools.

dpkg-deb, rpmbuild, makepkg (as a non-root user) and bsdtar build the files once per session
(tests/pkgbuild.py); a missing tool fails the suite rather than skipping it.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.pkgbuild import build_deb, build_macos_pkg, build_packet, build_pacman, build_rpm

from packyard.domain.artifacts import ArtifactFormat, ArtifactMetadata
from packyard.domain.errors import InvalidArtifact, UnsafeArchive
from packyard.formats import inspect_artifact


@dataclass(frozen=True)
class Built:
    deb: Path
    deb_gzip: Path
    deb_zstd: Path
    rpm: Path
    rpm_arch: Path
    pacman: Path
    pacman_xz: Path
    packet: Path
    component_pkg: Path
    product_pkg: Path


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("real-packages")
    deb_args = {
        "name": "hello-tool",
        "version": "1:2.4-1",
        "arch": "all",
        "depends": ["libc6 (>= 2.34)", "bash | dash"],
        "pre_depends": ["dpkg (>= 1.19.0)"],
        "provides": ["hello-virtual"],
        "multi_arch": "foreign",
        "installed_size": 42,
    }
    return Built(
        deb=build_deb(tmp / "deb-xz", **deb_args),
        deb_gzip=build_deb(tmp / "deb-gz", **deb_args, compression="gzip"),
        deb_zstd=build_deb(tmp / "deb-zst", **deb_args, compression="zstd"),
        rpm=build_rpm(
            tmp,
            name="hello-tool",
            version="2.4",
            release="3",
            epoch=1,
            requires=["bash >= 4.0", "coreutils"],
            provides=["hello-virtual = 2.4"],
            obsoletes=["hello-old < 2"],
            dist=".el9",
        ),
        rpm_arch=build_rpm(tmp / "arch", name="hello-bin", version="0.9", arch="x86_64"),
        pacman=build_pacman(
            tmp,
            name="hello-tool",
            version="2.4",
            pkgrel="2",
            epoch=1,
            depends=["glibc>=2.34", "bash"],
            provides=["hello-virtual=2.4"],
            conflicts=["hello-git"],
            optdepends=["zsh: for completion"],
        ),
        pacman_xz=build_pacman(tmp / "xz", name="hello-xz", version="1.0", compression="xz"),
        packet=build_packet(
            tmp,
            name="hello-tool",
            version="2.4",
            tags=["arch=armv7l", "glibc-2.23"],
            files={"opt/hello/bin/hello": b"#!/bin/sh\necho hi\n", "etc/hello.conf": b"x=1\n"},
            symlinks={"usr/bin/hello": "../../opt/hello/bin/hello"},
            scripts={"postinst": "#!/bin/sh\nexit 0\n", "prerm": "#!/bin/sh\nexit 0\n"},
        ),
        component_pkg=build_macos_pkg(
            tmp, identifier="com.example.hello", version="2.4", bundle_id="com.example.Hello"
        ),
        product_pkg=build_macos_pkg(
            tmp / "product",
            identifier="com.example.hello",
            version="2.4",
            product=True,
            title="Hello Tool",
            host_architectures="arm64,x86_64",
        ),
    )


def inspect(path: Path) -> ArtifactMetadata:
    with path.open("rb") as stream:
        return inspect_artifact(stream, filename=path.name)


@pytest.mark.parametrize("which", ["deb", "deb_gzip", "deb_zstd"])
def test_deb(built: Built, which: str) -> None:
    path: Path = getattr(built, which)
    meta = inspect(path)
    assert meta.format is ArtifactFormat.DEB
    assert (meta.name, meta.version, meta.arch) == ("hello-tool", "1:2.4-1", "all")
    assert meta.relations == {
        "pre-depends": ("dpkg (>= 1.19.0)",),
        "depends": ("libc6 (>= 2.34)", "bash | dash"),
        "provides": ("hello-virtual",),
    }
    assert meta.fields["Multi-Arch"] == "foreign"
    assert meta.fields["Installed-Size"] == "42"
    assert meta.fields["Maintainer"] == "Packyard Tests <tests@example.com>"
    # The stanza is byte-for-byte what dpkg-deb stored, which is what apt indexes copy.
    shown = subprocess.run(
        ["dpkg-deb", "--field", str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert meta.fields["control"] == shown


def test_rpm(built: Built) -> None:
    meta = inspect(built.rpm)
    assert meta.format is ArtifactFormat.RPM
    assert (meta.name, meta.version, meta.arch, meta.distro) == (
        "hello-tool",
        "1:2.4-3.el9",
        "noarch",
        "el9",
    )
    assert meta.relations["requires"][:2] == ("bash >= 4.0", "coreutils")
    assert all(
        re.fullmatch(r"rpmlib\(\w+\) <= [\d.-]+", item) for item in meta.relations["requires"][2:]
    )
    assert meta.relations["provides"] == ("hello-tool = 1:2.4-3.el9", "hello-virtual = 2.4")
    assert meta.relations["obsoletes"] == ("hello-old < 2",)
    assert meta.fields["epoch"] == 1
    assert meta.fields["release"] == "3.el9"
    assert meta.fields["license"] == "MIT"
    assert meta.fields["sourcerpm"] == "hello-tool-2.4-3.el9.src.rpm"
    assert meta.fields["vendor"] == "Packyard Tests"
    assert isinstance(meta.fields["buildtime"], int)


def test_rpm_with_arch(built: Built) -> None:
    meta = inspect(built.rpm_arch)
    assert (meta.name, meta.version, meta.arch, meta.distro) == (
        "hello-bin",
        "0.9-1",
        "x86_64",
        None,
    )


def test_pacman(built: Built) -> None:
    meta = inspect(built.pacman)
    assert meta.format is ArtifactFormat.PACMAN
    assert (meta.name, meta.version, meta.arch) == ("hello-tool", "1:2.4-2", "any")
    assert meta.relations == {
        "depends": ("glibc>=2.34", "bash"),
        "provides": ("hello-virtual=2.4",),
        "conflicts": ("hello-git",),
        "optdepends": ("zsh: for completion",),
    }
    assert meta.fields["has_mtree"] is True
    assert meta.fields["license"] == ["MIT"]
    assert meta.fields["url"] == "https://example.com/hello-tool"


def test_pacman_xz(built: Built) -> None:
    assert built.pacman_xz.name.endswith(".pkg.tar.xz")
    meta = inspect(built.pacman_xz)
    assert (meta.format, meta.name, meta.version) == (ArtifactFormat.PACMAN, "hello-xz", "1.0-1")


def test_packet(built: Built) -> None:
    meta = inspect(built.packet)
    assert meta.format is ArtifactFormat.PACKET
    assert (meta.name, meta.version) == ("hello-tool", "2.4")
    assert meta.fields["tags"] == ["arch=armv7l", "glibc-2.23"]
    assert meta.fields["scripts"] == ["postinst", "prerm"]
    # etc, etc/hello.conf, opt, opt/hello, opt/hello/bin, .../hello, usr, usr/bin, usr/bin/hello
    assert meta.fields["files"] == 9


def test_component_pkg(built: Built) -> None:
    meta = inspect(built.component_pkg)
    assert meta.format is ArtifactFormat.MACOS_PKG
    assert (meta.name, meta.version, meta.arch, meta.kind) == (
        "com.example.hello",
        "2.4",
        None,
        "component",
    )
    assert meta.fields["bundle-ids"] == ["com.example.Hello"]
    assert meta.fields["install-kbytes"] == 12


def test_product_pkg(built: Built) -> None:
    meta = inspect(built.product_pkg)
    assert (meta.name, meta.version, meta.arch, meta.kind) == (
        "com.example.hello",
        "2.4",
        "arm64,x86_64",
        "product",
    )
    assert meta.fields["title"] == "Hello Tool"


# --- damaged real files ------------------------------------------------------------------


def test_truncated_real_deb(built: Built, tmp_path: Path) -> None:
    short = tmp_path / "short.deb"
    short.write_bytes(built.deb.read_bytes()[:200])
    with pytest.raises(InvalidArtifact, match=r"control\.tar\.xz.* is truncated") as info:
        inspect(short)
    assert "dpkg-deb" in (info.value.hint or "")


def test_real_deb_with_garbage_after_magic(built: Built, tmp_path: Path) -> None:
    bad = tmp_path / "bad.deb"
    bad.write_bytes(b"!<arch>\n" + b"\xde\xad\xbe\xef" * 100)
    with pytest.raises(InvalidArtifact, match="ar member header at offset 8"):
        inspect(bad)


def test_truncated_real_rpm(built: Built, tmp_path: Path) -> None:
    data = built.rpm.read_bytes()
    for size, problem in ((96, "signature header is truncated"), (600, "header is truncated")):
        short = tmp_path / f"short-{size}.rpm"
        short.write_bytes(data[:size])
        with pytest.raises(InvalidArtifact, match=problem):
            inspect(short)


def test_truncated_real_pacman_is_not_silently_pacman(built: Built, tmp_path: Path) -> None:
    short = tmp_path / "short.pkg.tar.zst"
    short.write_bytes(built.pacman.read_bytes()[:40])
    # Too little left to reach .PKGINFO: nothing claims the file, so it is generic.
    assert inspect(short).format is ArtifactFormat.GENERIC


def test_packet_with_escaping_symlink_cannot_be_built(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="escapes data/"):
        build_packet(
            tmp_path, name="evil", version="1", symlinks={"etc/passwd": "../../../etc/passwd"}
        )


def test_unsafe_is_a_kind_of_invalid() -> None:
    assert issubclass(UnsafeArchive, InvalidArtifact)
