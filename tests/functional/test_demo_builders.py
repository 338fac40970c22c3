"""The demo builders' files, checked by the ecosystems' real tools.

dpkg-deb and dpkg read the debs, pacman reads (and installs into a scratch root, then verifies
against .MTREE) the pacman package, bsdtar reads the xar and the pacman tar, GNU tar reads
packets. A missing tool fails the test with the package to install: a skipped check here would
let an invalid demo file reach a user's first impression of Packyard.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from packyard.demo import DemoItem, demo_catalog
from packyard.demo.builders import (
    deb_bytes,
    macos_pkg_bytes,
    package_info_bytes,
    packet_bytes,
    pacman_bytes,
)
from packyard.domain.artifacts import ArtifactFormat

# Which Debian package provides each tool, for the failure message.
TOOL_PACKAGES = {
    "dpkg": "dpkg",
    "dpkg-deb": "dpkg",
    "md5sum": "coreutils",
    "pacman": "pacman-package-manager",
    "bsdtar": "libarchive-tools",
    "tar": "tar",
}

FILES = {
    "usr/bin/demo-tool": b"#!/bin/sh\necho demo\n",
    "usr/share/doc/demo-tool/README": b"A file with a space in its directory.\n",
    "etc/demo tool/config.ini": b"[main]\nlevel = 3\n",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed; this test checks the file with the real tool. "
            f"Install it with: apt-get install {TOOL_PACKAGES[name]}"
        )
    return path


def run(*args: str, stdin: bytes | None = None) -> str:
    result = subprocess.run(args, input=stdin, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, (args, result.stderr.decode(errors="replace"))
    return result.stdout.decode()


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- checks per format ---------------------------------------------------------------------------


def check_deb(path: Path, tmp_path: Path) -> dict[str, str]:
    """dpkg-deb --info/--contents, dpkg -I, and the md5sums against the extracted tree."""
    info = run(tool("dpkg-deb"), "--info", str(path))
    assert "new Debian package, version 2.0." in info
    run(tool("dpkg"), "-I", str(path))
    contents = run(tool("dpkg-deb"), "--contents", str(path))
    assert contents.splitlines()[0].endswith(" ./")
    fields = {
        key: run(tool("dpkg-deb"), "--field", str(path), key).strip()
        for key in ("Package", "Version", "Architecture", "Installed-Size")
    }
    root, control = tmp_path / "root", tmp_path / "control"
    run(tool("dpkg-deb"), "--extract", str(path), str(root))
    run(tool("dpkg-deb"), "--control", str(path), str(control))
    result = subprocess.run(
        [tool("md5sum"), "--check", "--strict", str(control / "md5sums")],
        cwd=root,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    return fields


def check_pacman(path: Path, tmp_path: Path) -> dict[str, str]:
    """pacman -Qip, bsdtar -tf, the .MTREE parsed by bsdtar, and an install + -Qkk."""
    db = tmp_path / "db"
    db.mkdir()
    info = run(tool("pacman"), "-Qip", "--dbpath", str(db), "--config", "/dev/null", str(path))
    fields = {}
    for line in info.splitlines():
        key, sep, value = line.partition(" : ")
        if sep:
            fields[key.strip()] = value.strip()
    listing = run(tool("bsdtar"), "-tf", str(path)).splitlines()
    assert listing[:3] == [".PKGINFO", ".BUILDINFO", ".MTREE"]
    mtree = subprocess.run(
        [tool("bsdtar"), "-xOf", str(path), ".MTREE"], capture_output=True, check=True, timeout=60
    ).stdout
    mtree_listing = run(tool("bsdtar"), "-tf", "-", stdin=mtree).splitlines()
    assert {f"./{name.rstrip('/')}" for name in listing} - {"./.MTREE"} == set(mtree_listing)
    # Installing into a scratch root lets pacman itself check every file against .MTREE.
    root = tmp_path / "root"
    (root / "db").mkdir(parents=True)
    pacman_root = ["--root", str(root), "--dbpath", str(root / "db"), "--config", "/dev/null"]
    run(
        tool("pacman"),
        "-U",
        "--noconfirm",
        "--nodeps",
        "--nodeps",
        "--noscriptlet",
        "--cachedir",
        str(tmp_path / "cache"),
        *pacman_root,
        str(path),
    )
    verified = run(tool("pacman"), "-Qkk", *pacman_root, fields["Name"])
    assert " 0 altered files" in verified, verified
    return fields


def check_packet(path: Path, tmp_path: Path) -> tuple[dict[str, str], list[str]]:
    """GNU tar lists the outer tar and the xz data tar inside it; returns modes and data."""
    listing = run(tool("tar"), "-tvf", str(path)).splitlines()
    modes = {line.split()[-1]: line.split()[0] for line in listing}
    data = subprocess.run(
        [tool("tar"), "-xOf", str(path), "data.tar.xz"], capture_output=True, check=True, timeout=60
    ).stdout
    data_path = write(tmp_path, "data.tar.xz", data)
    data_listing = run(tool("tar"), "-tJf", str(data_path)).splitlines()
    assert data_listing[0] == "./"
    assert all(name.startswith("./") for name in data_listing)
    return modes, data_listing


def check_macos_pkg(path: Path) -> bytes:
    """bsdtar lists the xar (verifying its TOC checksum) and extracts PackageInfo."""
    assert run(tool("bsdtar"), "-tf", str(path)).splitlines() == ["PackageInfo"]
    return subprocess.run(
        [tool("bsdtar"), "-xOf", str(path), "PackageInfo"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


# --- builders ------------------------------------------------------------------------------------


def test_deb_passes_dpkg(tmp_path: Path) -> None:
    deb = deb_bytes(
        name="demo-tool",
        version="2:1.4~rc2-0.1",
        arch="amd64",
        depends=("libc6 (>= 2.36)", "adduser | passwd"),
        description="demo tool\nIt does demo things.\n\nTruly.",
        maintainer="Jane Doe <jane@example.com>",
        section="admin",
        files=FILES,
    )
    fields = check_deb(write(tmp_path, "demo.deb", deb), tmp_path)
    assert fields == {
        "Package": "demo-tool",
        "Version": "2:1.4~rc2-0.1",
        "Architecture": "amd64",
        "Installed-Size": "10",  # 3 small files + 7 directories, 1 KiB each
    }


def test_pacman_package_passes_pacman_and_bsdtar(tmp_path: Path) -> None:
    package = pacman_bytes(
        name="demo-tool",
        version="1:1.4-2",
        arch="x86_64",
        depends=("glibc", "bash>=5"),
        description="demo tool",
        files=FILES,
    )
    fields = check_pacman(
        write(tmp_path, "demo-tool-1:1.4-2-x86_64.pkg.tar.zst", package), tmp_path
    )
    assert fields["Name"] == "demo-tool"
    assert fields["Version"] == "1:1.4-2"
    assert fields["Architecture"] == "x86_64"
    assert fields["Depends On"].split() == ["glibc", "bash>=5"]


def test_packet_reads_with_tar(tmp_path: Path) -> None:
    packet = packet_bytes(
        name="demo-tool",
        version="1.4.0",
        tags=("arch=armv7l", "systemd"),
        description="demo",
        files=FILES,
        scripts={"preinst": "#!/bin/sh\ntrue\n", "postinst": "#!/bin/sh\ntrue\n"},
    )
    modes, data = check_packet(write(tmp_path, "demo.packet", packet), tmp_path)
    assert modes == {
        "control.json": "-rw-r--r--",
        "data.tar.xz": "-rw-r--r--",
        "preinst": "-rwxr-xr-x",
        "postinst": "-rwxr-xr-x",
    }
    assert "./etc/demo tool/config.ini" in data
    assert "./usr/bin/demo-tool" in data


def test_macos_pkg_reads_with_bsdtar(tmp_path: Path) -> None:
    arguments = {
        "identifier": "com.example.notes",
        "version": "2.3.1",
        "title": "Notes <Beta> & Co",
        "install_kbytes": 18432,
        "number_of_files": 214,
    }
    pkg = write(tmp_path, "Notes.pkg", macos_pkg_bytes(**arguments))
    assert check_macos_pkg(pkg) == package_info_bytes(**arguments)


# --- the demo catalog ----------------------------------------------------------------------------


@pytest.mark.parametrize("item", demo_catalog(), ids=lambda item: item.filename)
def test_every_demo_artifact_passes_its_tool(item: DemoItem, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    path = write(tmp_path, item.filename, item.content)
    if item.format == ArtifactFormat.DEB:
        fields = check_deb(path, work)
        assert (fields["Package"], fields["Version"]) == (item.name, item.version)
    elif item.format == ArtifactFormat.PACMAN:
        fields = check_pacman(path, work)
        assert (fields["Name"], fields["Version"]) == (item.name, item.version)
    elif item.format == ArtifactFormat.PACKET:
        modes, _ = check_packet(path, work)
        assert list(modes)[:2] == ["control.json", "data.tar.xz"]
    elif item.format == ArtifactFormat.MACOS_PKG:
        info = check_macos_pkg(path).decode()
        assert f'identifier="{item.name}"' in info
        assert f'version="{item.version}"' in info
    else:
        # A generic blob is opaque: no archive tool may mistake it for an archive.
        result = subprocess.run(
            [tool("bsdtar"), "-tf", str(path)], capture_output=True, timeout=60, check=False
        )
        assert result.returncode != 0
