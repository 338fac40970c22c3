"""Repository index writers against the ecosystems' own tools, on real packages.

- apt: our ``Packages`` stanzas against ``apt-ftparchive packages`` (text equality, so field
  order and spelling too), our ``Release`` against ``apt-ftparchive release``, and a whole
  repository (by-hash only) through ``apt-get update`` / ``apt-get download``.
- pacman: our ``desc`` and ``files`` entries against ``repo-add``'s, the db tar member names
  against repo-add's (read with bsdtar), and ``pacman -Sy/-Sl/-Si/-Fl/-Sw`` on our databases.

Packages come from tests/pkgbuild.py (dpkg-deb, makepkg) plus two built here with the same
tools for fields those builders do not offer. A missing tool fails the module, never skips.
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import shutil
import subprocess
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.pkgbuild import build_deb, build_pacman

from packyard.domain.artifacts import ArtifactMetadata
from packyard.formats import inspect_artifact
from packyard.formats.apt_repo import (
    IndexFile,
    by_hash_path,
    compress_variants,
    deb_filename,
    deb_stanza,
    index_files,
    packages_by_architecture,
    packages_index,
    pool_path,
    release_date,
    release_file,
    source_name,
)
from packyard.formats.index_common import Digests
from packyard.formats.pacman import list_pacman_files
from packyard.formats.pacman_repo import (
    desc_entry,
    entries_by_architecture,
    entry_dirname,
    files_entry,
    repo_db,
)

TOOLS = {
    "apt-ftparchive": "apt-utils",
    "apt-get": "apt",
    "apt-cache": "apt",
    "dpkg-deb": "dpkg",
    "repo-add": "pacman-package-manager",
    "pacman": "pacman-package-manager",
    "bsdtar": "libarchive-tools",
}
ARCHITECTURES = ["amd64", "arm64"]
DATE = datetime(2026, 11, 21, 6, 30, tzinfo=UTC)


def require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"{', '.join(missing)} not installed; these tests compare against the real tools. "
            f"Install with: apt-get install {' '.join(sorted({TOOLS[t] for t in missing}))}"
        )


def run(args: Sequence[str], *, cwd: Path | None = None) -> str:
    result = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def inspect(path: Path) -> ArtifactMetadata:
    with path.open("rb") as stream:
        return inspect_artifact(stream, filename=path.name)


# --- apt ------------------------------------------------------------------------------------

RICH_CONTROL = """\
Package: rich-tool
Description: rich package with the fields archives carry
 The long description has paragraphs.
 .
 And a second one, with   inner spaces kept.
Version: 1:2.0-1
X-Packyard-Channel: dev
Source: rich-src (2.0-1)
Architecture: amd64
Homepage: https://example.com/rich
Maintainer: Packyard Tests <tests@example.com>
Original-Maintainer: Upstream <up@example.com>
Enhances: bash
Installed-Size: 120
Essential: yes
Protected: yes
Section: utils
Priority: important
Multi-Arch: allowed
Depends: libc6 (>= 2.34), bash | dash,
 coreutils
Pre-Depends: dpkg (>= 1.19.0)
Recommends: less
Suggests: vim
Breaks: old-rich (<< 2.0)
Replaces: old-rich (<< 2.0)
Provides: rich-virtual (= 2.0)
Conflicts: rich-legacy
Built-Using: gcc-12 (= 12.2.0-14)
"""


def build_rich_deb(tmp: Path) -> Path:
    """A deb whose control has fields build_deb does not offer, in a scrambled order."""
    root = tmp / "rich-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(RICH_CONTROL, encoding="utf-8")
    (root / "usr" / "share" / "rich").mkdir(parents=True)
    (root / "usr" / "share" / "rich" / "README").write_text("rich\n")
    out = tmp / "rich-tool_2.0-1_amd64.deb"
    run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", str(root), str(out)])
    return out


@dataclass(frozen=True)
class Deb:
    path: Path
    meta: ArtifactMetadata
    pool: str
    digests: Digests

    def stanza(self, *, sha512: bool = True, long_description: bool = True) -> str:
        return deb_stanza(
            control=self.meta.fields["control"],
            filename=self.pool,
            size=self.digests.size,
            md5=self.digests.md5,
            sha1=self.digests.sha1,
            sha256=self.digests.sha256,
            sha512=self.digests.sha512 if sha512 else None,
            long_description=long_description,
        )


@pytest.fixture(scope="module")
def debs(tmp_path_factory: pytest.TempPathFactory) -> list[Deb]:
    require_tools()
    tmp = tmp_path_factory.mktemp("apt-debs")
    paths = [
        build_deb(
            tmp / "hello",
            name="hello-tool",
            version="1:2.4-1",
            arch="all",
            depends=["libc6 (>= 2.34)", "bash | dash"],
            pre_depends=["dpkg (>= 1.19.0)"],
            provides=["hello-virtual"],
            conflicts=["old-hello"],
            installed_size=42,
        ),
        build_deb(
            tmp / "libfoo",
            name="libfoo1",
            version="0.9-2",
            arch="amd64",
            multi_arch="same",
            description="short description only",
            compression="gzip",
        ),
        build_deb(
            tmp / "arm",
            name="arm-only",
            version="3.0",
            arch="arm64",
            multi_arch=None,
            compression="zstd",
        ),
        build_rich_deb(tmp),
    ]
    result = []
    for path in paths:
        meta = inspect(path)
        assert meta.name and meta.version and meta.arch
        control = meta.fields["control"]
        filename = deb_filename(package=meta.name, version=meta.version, architecture=meta.arch)
        pool = pool_path(
            component="main",
            source_or_package_name=source_name(control=control),
            filename=filename,
        )
        result.append(Deb(path, meta, pool, Digests.of(path.read_bytes())))
    return result


def lay_out_pool(root: Path, debs: Sequence[Deb]) -> None:
    for deb in debs:
        target = root / deb.pool
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(deb.path, target)


def split_stanzas(text: str) -> dict[str, str]:
    stanzas = [part + "\n" for part in text.split("\n\n") if part.strip()]
    return {stanza.split("\n", 1)[0].removeprefix("Package: "): stanza for stanza in stanzas}


@pytest.mark.parametrize(
    ("options", "sha512", "long_description"),
    [
        ([], True, True),
        (
            ["-o", "APT::FTPArchive::SHA512=false", "-o", "APT::FTPArchive::LongDescription=false"],
            False,
            False,
        ),
    ],
    ids=["default", "no-sha512-short-descriptions"],
)
def test_stanzas_match_apt_ftparchive(
    debs: list[Deb],
    tmp_path: Path,
    options: list[str],
    sha512: bool,
    long_description: bool,
) -> None:
    lay_out_pool(tmp_path, debs)
    output = run(["apt-ftparchive", *options, "packages", "pool"], cwd=tmp_path)
    theirs = split_stanzas(output)
    ours = {
        deb.meta.name: deb.stanza(sha512=sha512, long_description=long_description) for deb in debs
    }
    assert sorted(ours) == sorted(theirs)
    for name, stanza in ours.items():
        # Line lists first: a failure then shows which field differs.
        assert stanza.splitlines() == theirs[name].splitlines(), name
        assert stanza == theirs[name], name
    # The index itself: each stanza then a blank line, exactly as apt-ftparchive joins them.
    order = [stanza.split("\n", 1)[0].removeprefix("Package: ") for stanza in theirs.values()]
    assert packages_index(ours[name] for name in order).decode() == output


def test_rich_stanza_reorders_fields_like_apt(debs: list[Deb]) -> None:
    rich = next(deb for deb in debs if deb.meta.name == "rich-tool")
    names = [line.split(":", 1)[0] for line in rich.stanza().splitlines() if line[:1] != " "]
    assert names == [
        "Package",
        "Architecture",
        "Version",
        "Built-Using",
        "Multi-Arch",
        "Priority",
        "Protected",
        "Essential",
        "Section",
        "Source",
        "Maintainer",
        "Original-Maintainer",
        "Installed-Size",
        "Provides",
        "Pre-Depends",
        "Depends",
        "Recommends",
        "Suggests",
        "Conflicts",
        "Breaks",
        "Replaces",
        "Enhances",
        "Filename",
        "Size",
        "MD5sum",
        "SHA1",
        "SHA256",
        "SHA512",
        "Homepage",
        "Description",
        "X-Packyard-Channel",
    ]
    assert rich.pool == "pool/main/r/rich-src/rich-tool_2.0-1_amd64.deb"


def publish_apt(root: Path, debs: Sequence[Deb]) -> str:
    """Write a whole apt repository with our writers; return the Release text."""
    lay_out_pool(root, debs)
    dists = root / "dists" / "stable"
    listed: list[IndexFile] = []
    grouped = packages_by_architecture(
        [(deb.meta.arch or "", deb.stanza()) for deb in debs], architectures=ARCHITECTURES
    )
    for arch, stanzas in grouped.items():
        path = f"main/binary-{arch}/Packages"
        variants = compress_variants(packages_index(stanzas))
        for item in index_files(path, variants):
            data = variants[item.path.removeprefix(path)]
            for target in (item.path, by_hash_path(item.path, item.sha256)):
                (dists / target).parent.mkdir(parents=True, exist_ok=True)
                (dists / target).write_bytes(data)
            listed.append(item)
    text = release_file(
        origin="Packyard",
        label="Packyard dev",
        suite="dev",
        codename="stable",
        architectures=ARCHITECTURES,
        components=["main"],
        description="Packyard dev stage",
        date=DATE,
        valid_until=DATE + timedelta(days=7),
        files=listed,
    )
    (dists / "Release").write_text(text, encoding="utf-8")
    return text


def test_release_matches_apt_ftparchive(debs: list[Deb], tmp_path: Path) -> None:
    ours = publish_apt(tmp_path, debs)
    dists = tmp_path / "dists" / "stable"
    shutil.rmtree(dists / "main" / "binary-amd64" / "by-hash")
    shutil.rmtree(dists / "main" / "binary-arm64" / "by-hash")
    (dists / "Release").unlink()
    settings = {
        "Origin": "Packyard",
        "Label": "Packyard dev",
        "Suite": "dev",
        "Codename": "stable",
        "Architectures": " ".join(ARCHITECTURES),
        "Components": "main",
        "Description": "Packyard dev stage",
        "Acquire-By-Hash": "yes",
        "Date": release_date(DATE),
        # Valid-Until is written only with a ValidTime; the value given here then wins.
        "ValidTime": "604800",
        "Valid-Until": release_date(DATE + timedelta(days=7)),
        "SHA512": "false",
    }
    options = [f"-oAPT::FTPArchive::Release::{key}={value}" for key, value in settings.items()]
    theirs = run(["apt-ftparchive", *options, "release", "."], cwd=dists)
    # apt-ftparchive cannot write No-Support-for-Architecture-all; everything else is equal.
    extra = "No-Support-for-Architecture-all: Packages"
    assert [line for line in ours.splitlines() if line != extra] == theirs.splitlines()
    assert extra in ours.splitlines()


def apt_options(root: Path) -> list[str]:
    return [
        f"-oDir={root}/",
        f"-oDir::State::status={root}/var/lib/dpkg/status",
        f"-oAPT::Sandbox::User={getpass.getuser()}",
        "-oAcquire::By-Hash=force",
        "-oAcquire::Languages=none",
        "-oDebug::NoLocking=1",
        "-oAPT::Architecture=amd64",
        "-oAPT::Architectures::=amd64",
        "-oAPT::Architectures::=arm64",
    ]


def test_apt_get_reads_the_repository_by_hash(debs: list[Deb], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    publish_apt(repo, debs)
    # Only by-hash copies remain, so a successful update proves the by-hash layout.
    for index in (repo / "dists" / "stable" / "main").glob("binary-*/Packages*"):
        index.unlink()
    client = tmp_path / "client"
    for sub in ("etc/apt/apt.conf.d", "etc/apt/preferences.d", "etc/apt/sources.list.d"):
        (client / sub).mkdir(parents=True)
    for sub in ("var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"):
        (client / sub).mkdir(parents=True)
    (client / "var/lib/dpkg/status").touch()
    (client / "etc/apt/sources.list").write_text(
        f"deb [trusted=yes arch=amd64,arm64] file://{repo} stable main\n"
    )
    options = apt_options(client)
    update = subprocess.run(
        ["apt-get", *options, "update"], capture_output=True, text=True, check=False
    )
    assert update.returncode == 0, update.stdout + update.stderr
    assert not [line for line in update.stderr.splitlines() if line[:2] in ("W:", "E:")], (
        update.stderr
    )
    policy = run(
        ["apt-cache", *options, "policy", "hello-tool", "hello-tool:arm64", "libfoo1", "rich-tool"]
    )
    assert "Candidate: 1:2.4-1" in policy
    assert "Candidate: 0.9-2" in policy
    assert "Candidate: 1:2.0-1" in policy
    shown = run(["apt-cache", *options, "show", "arm-only:arm64"])
    assert "Filename: pool/main/a/arm-only/arm-only_3.0_arm64.deb" in shown
    # apt-get download checks size and hashes from our stanza against the pool file.
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    run(["apt-get", *options, "download", "rich-tool", "hello-tool"], cwd=downloads)
    assert sorted(path.name for path in downloads.iterdir()) == [
        "hello-tool_1%3a2.4-1_all.deb",
        "rich-tool_1%3a2.0-1_amd64.deb",
    ]


# --- pacman -----------------------------------------------------------------------------------

RICH_PKGINFO = """\
# Generated by makepkg 6.0.2
pkgname = rich-tool
pkgbase = rich
xdata = pkgtype=pkg
pkgver = 2:3.1-4
pkgdesc = A rich   package =   with\tspacing
url = https://example.com/rich
builddate = 1700000000
packager = Jane <jane@example.com>
size = 4096
arch = x86_64
license = GPL-3.0-or-later
license = custom
group = demo
group = tools
replaces = rich-old
conflict = rich-git
provides = rich-bin=3.1
backup = etc/rich.conf
depend = glibc>=2.34
depend = sh
optdepend = bash: for the shell
makedepend = gcc
checkdepend = dejagnu
"""


def build_rich_pacman(tmp: Path) -> Path:
    """A pacman package with the .PKGINFO keys makepkg's builder here does not set.

    Packed with bsdtar the way makepkg packs (dotfiles first), plus an .INSTALL script, a
    symlink and a detached signature file beside it, which repo-add picks up.
    """
    root = tmp / "rich-pkg"
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / ".PKGINFO").write_text(RICH_PKGINFO, encoding="utf-8")
    (root / ".INSTALL").write_text("post_install() { :; }\n", encoding="utf-8")
    (root / "usr" / "bin" / "rich").write_bytes(b"#!/bin/sh\n")
    (root / "usr" / "bin" / "rich-alias").symlink_to("rich")
    (root / "etc" / "rich.conf").write_text("x=1\n")
    out = tmp / "rich-tool-2:3.1-4-x86_64.pkg.tar.zst"
    run(
        ["bsdtar", "--zstd", "-cf", str(out), "-C", str(root), ".PKGINFO", ".INSTALL", "etc", "usr"]
    )
    out.with_name(out.name + ".sig").write_bytes(b"\x89\x01\x33binary-signature")
    return out


@dataclass(frozen=True)
class PacmanPackage:
    path: Path
    meta: ArtifactMetadata
    files: list[str]
    signature: str | None

    @property
    def dirname(self) -> str:
        assert self.meta.name and self.meta.version
        return entry_dirname(name=self.meta.name, version=self.meta.version)

    def desc(self) -> str:
        data = self.path.read_bytes()
        return desc_entry(
            fields=self.meta.fields,
            relations=self.meta.relations,
            filename=self.path.name,
            csize=len(data),
            md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
            sha256=hashlib.sha256(data).hexdigest(),
            pgpsig_b64=self.signature,
        )


@pytest.fixture(scope="module")
def pacman_repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[PacmanPackage]]:
    """Packages in a directory that repo-add has indexed as ``theirs.db``/``theirs.files``."""
    require_tools()
    repo = tmp_path_factory.mktemp("pacman-repo")
    paths = [
        build_pacman(
            repo,
            name="hello-tool",
            version="2.4",
            pkgrel="3",
            epoch=1,
            depends=["glibc>=2.34", "bash"],
            provides=["hello-virtual=2.4"],
            conflicts=["old-hello"],
            optdepends=["zsh: for completion"],
        ),
        build_pacman(repo, name="libfoo", version="0.9", arch="x86_64", compression="xz"),
        build_rich_pacman(repo),
    ]
    packages = []
    for path in paths:
        with path.open("rb") as stream:
            meta = inspect_artifact(stream, filename=path.name)
            files = list_pacman_files(stream)
        sig = path.with_name(path.name + ".sig")
        signature = base64.b64encode(sig.read_bytes()).decode() if sig.exists() else None
        packages.append(PacmanPackage(path, meta, files, signature))
    run(["repo-add", "--quiet", str(repo / "theirs.db.tar.gz"), *map(str, paths)])
    return repo, packages


def member_names(db: Path) -> list[str]:
    return sorted(run(["bsdtar", "-tf", str(db)]).splitlines())


def test_desc_and_files_match_repo_add(pacman_repo: tuple[Path, list[PacmanPackage]]) -> None:
    repo, packages = pacman_repo
    theirs = repo / "theirs.files.tar.gz"
    for package in packages:
        desc = run(["bsdtar", "-xOf", str(theirs), f"{package.dirname}/desc"])
        assert package.desc().splitlines() == desc.splitlines(), package.dirname
        assert package.desc() == desc, package.dirname
        files = run(["bsdtar", "-xOf", str(theirs), f"{package.dirname}/files"])
        assert files_entry(package.files).splitlines() == files.splitlines(), package.dirname
        assert files_entry(package.files) == files, package.dirname
    rich = packages[-1]
    assert rich.signature is not None and f"%PGPSIG%\n{rich.signature}\n" in rich.desc()
    assert "%DESC%\nA rich package = with spacing\n" in rich.desc()


def write_our_dbs(repo: Path, packages: Sequence[PacmanPackage], *, name: str) -> None:
    entries = [(package.dirname, package.desc()) for package in packages]
    files = {package.dirname: files_entry(package.files) for package in packages}
    for kind, data in (("db", repo_db(entries)), ("files", repo_db(entries, files=files))):
        (repo / f"{name}.{kind}.tar.gz").write_bytes(data)
        # What repo-add does too: pacman downloads <repo>.db and <repo>.files.
        (repo / f"{name}.{kind}").write_bytes(data)


def test_db_members_match_repo_add(pacman_repo: tuple[Path, list[PacmanPackage]]) -> None:
    repo, packages = pacman_repo
    write_our_dbs(repo, packages, name="ours")
    for kind in ("db", "files"):
        assert member_names(repo / f"ours.{kind}.tar.gz") == member_names(
            repo / f"theirs.{kind}.tar.gz"
        )
    # bsdtar -tv reads our headers as repo-add's: directories, modes, owners.
    listing = run(["bsdtar", "-tvf", str(repo / "ours.files.tar.gz")])
    assert "drwxr-xr-x  0 root   root        0 Jan  1  1970 libfoo-0.9-1/" in listing
    assert "-rw-r--r--  0 root   root" in listing


def pacman(config: Path, *args: str) -> str:
    return run(["pacman", "--config", str(config), "--noconfirm", *args])


def test_pacman_reads_our_databases(
    pacman_repo: tuple[Path, list[PacmanPackage]], tmp_path: Path
) -> None:
    _, packages = pacman_repo
    for arch, members in entries_by_architecture(
        [(package.meta.arch or "", package) for package in packages],
        architectures=["x86_64", "aarch64"],
    ).items():
        arch_repo = tmp_path / "repo" / arch
        arch_repo.mkdir(parents=True)
        for package in members:
            shutil.copyfile(package.path, arch_repo / package.path.name)
        write_our_dbs(arch_repo, members, name="packyard")
    config = tmp_path / "pacman.conf"
    config.write_text(
        textwrap.dedent(
            f"""\
            [options]
            RootDir = {tmp_path}/root
            DBPath = {tmp_path}/db/
            CacheDir = {tmp_path}/cache/
            LogFile = {tmp_path}/pacman.log
            GPGDir = {tmp_path}/gnupg/
            HookDir = {tmp_path}/hooks/
            Architecture = x86_64
            SigLevel = Never

            [packyard]
            Server = file://{tmp_path}/repo/$arch
            """
        )
    )
    for sub in ("root", "db", "cache"):
        (tmp_path / sub).mkdir()
    pacman(config, "-Sy")
    assert pacman(config, "-Sl", "packyard").splitlines() == [
        "packyard hello-tool 1:2.4-3",
        "packyard libfoo 0.9-1",
        "packyard rich-tool 2:3.1-4",
    ]
    info = pacman(config, "-Si", "rich-tool")
    assert "Groups          : demo  tools" in info
    assert "Replaces        : rich-old" in info
    assert "Depends On      : glibc>=2.34  sh" in info
    pacman(config, "-Fy")
    assert pacman(config, "-Fl", "rich-tool").splitlines() == [
        "rich-tool etc/",
        "rich-tool etc/rich.conf",
        "rich-tool usr/",
        "rich-tool usr/bin/",
        "rich-tool usr/bin/rich",
        "rich-tool usr/bin/rich-alias",
    ]
    # -Sw checks each downloaded file against %CSIZE% and %SHA256SUM% from our desc.
    pacman(config, "-Sw", "-dd", "hello-tool", "libfoo")
    assert sorted(os.listdir(tmp_path / "cache")) == sorted(
        package.path.name for package in packages[:2]
    )
