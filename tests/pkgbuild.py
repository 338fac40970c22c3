"""Build real package files with the real tools, for tests that need genuine artifacts.

Every builder is keyword-only and returns the Path of the file it wrote into ``tmp``. A
missing tool is an error, never a skip: a suite that silently stops testing real packages is
worse than a red one. Tools: dpkg-deb, rpmbuild, makepkg (+ fakeroot), bsdtar.

makepkg refuses to run as root, so as root it runs as the ``pkgbuilder`` user (created on
first use) in a directory that user owns; the result is copied into ``tmp``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["build_deb", "build_macos_pkg", "build_packet", "build_pacman", "build_rpm"]

PKG_USER = "pkgbuilder"


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(
            f"required packaging tool(s) not installed: {', '.join(missing)} "
            "(apt-get install dpkg-dev rpm pacman-package-manager makepkg fakeroot "
            "libarchive-tools zstd xz-utils)"
        )


def _run(
    args: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> None:
    result = subprocess.run(
        list(args),
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args)} failed with exit code {result.returncode}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )


def _fresh_dir(tmp: Path, label: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{label}-", dir=tmp))


def build_deb(
    tmp: Path,
    *,
    name: str,
    version: str,
    arch: str = "all",
    depends: Sequence[str] = (),
    pre_depends: Sequence[str] = (),
    provides: Sequence[str] = (),
    conflicts: Sequence[str] = (),
    multi_arch: str | None = "foreign",
    installed_size: int = 12,
    description: str = "test package built by Packyard's test suite\n Second line.",
    compression: str = "xz",
    files: Mapping[str, bytes] | None = None,
) -> Path:
    """Build a .deb with dpkg-deb; return its path.

    ``compression`` is dpkg-deb's ``-Z`` value (xz, gzip, zstd, none) for both members.
    """
    _require("dpkg-deb")
    root = _fresh_dir(tmp, f"deb-{name}")
    (root / "DEBIAN").mkdir()
    lines = [
        f"Package: {name}",
        f"Version: {version}",
        f"Architecture: {arch}",
        "Maintainer: Packyard Tests <tests@example.com>",
        f"Installed-Size: {installed_size}",
        "Section: misc",
        "Priority: optional",
    ]
    if multi_arch:
        lines.append(f"Multi-Arch: {multi_arch}")
    for field, values in (
        ("Pre-Depends", pre_depends),
        ("Depends", depends),
        ("Conflicts", conflicts),
        ("Provides", provides),
    ):
        if values:
            lines.append(f"{field}: {', '.join(values)}")
    lines.append("Homepage: https://example.com/" + name)
    lines.append(f"Description: {description}")
    (root / "DEBIAN" / "control").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for rel, content in (files or {f"usr/share/doc/{name}/README": b"hello\n"}).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    out = tmp / f"{name}_{version.replace(':', '%3a')}_{arch}.deb"
    _run(["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(root), str(out)])
    return out


def build_rpm(
    tmp: Path,
    *,
    name: str,
    version: str,
    release: str = "1",
    epoch: int | None = None,
    arch: str = "noarch",
    requires: Sequence[str] = (),
    provides: Sequence[str] = (),
    conflicts: Sequence[str] = (),
    obsoletes: Sequence[str] = (),
    dist: str | None = None,
    summary: str = "test package built by Packyard's test suite",
) -> Path:
    """Build a binary rpm with ``rpmbuild -bb``; return its path.

    ``dist`` (e.g. ``.el9``) is appended to the release through the ``%{dist}`` macro.
    ``arch`` other than noarch is passed as ``--target``.
    """
    _require("rpmbuild")
    top = _fresh_dir(tmp, f"rpm-{name}")
    for sub in ("BUILD", "RPMS", "SOURCES", "SPECS", "SRPMS", "BUILDROOT"):
        (top / sub).mkdir()
    header = [
        f"Name: {name}",
        f"Version: {version}",
        f"Release: {release}%{{?dist}}",
        f"Summary: {summary}",
        "License: MIT",
        "URL: https://example.com/" + name,
        "Group: Applications/System",
        "Vendor: Packyard Tests",
        "Packager: Packyard Tests <tests@example.com>",
    ]
    if epoch is not None:
        header.append(f"Epoch: {epoch}")
    if arch == "noarch":
        header.append("BuildArch: noarch")
    header += [f"Requires: {item}" for item in requires]
    header += [f"Provides: {item}" for item in provides]
    header += [f"Conflicts: {item}" for item in conflicts]
    header += [f"Obsoletes: {item}" for item in obsoletes]
    spec = "\n".join(header) + textwrap.dedent(
        f"""

        %description
        A package built by Packyard's test suite.

        %install
        mkdir -p %{{buildroot}}/usr/share/{name}
        echo hello > %{{buildroot}}/usr/share/{name}/README

        %files
        /usr/share/{name}/README
        """
    )
    spec_path = top / "SPECS" / f"{name}.spec"
    spec_path.write_text(spec, encoding="utf-8")
    args = [
        "rpmbuild",
        "-bb",
        "--define",
        f"_topdir {top}",
        "--define",
        "_build_id_links none",
        "--define",
        "__os_install_post %{nil}",
        "--nodeps",
    ]
    if dist is not None:
        args += ["--define", f"dist {dist}"]
    if arch != "noarch":
        args += ["--target", arch]
    _run([*args, str(spec_path)])
    built = sorted((top / "RPMS").rglob("*.rpm"))
    if len(built) != 1:
        raise RuntimeError(f"rpmbuild produced {built}, expected one rpm")
    out = tmp / built[0].name
    shutil.copy2(built[0], out)
    return out


def _pacman_user() -> str | None:
    """The user to run makepkg as: None when not root, else pkgbuilder (created if absent)."""
    if os.geteuid() != 0:
        return None
    if subprocess.run(["id", PKG_USER], capture_output=True, check=False).returncode != 0:
        _require("useradd")
        _run(["useradd", "--create-home", PKG_USER])
    return PKG_USER


def build_pacman(
    tmp: Path,
    *,
    name: str,
    version: str,
    pkgrel: str = "1",
    epoch: int | None = None,
    arch: str = "any",
    depends: Sequence[str] = (),
    provides: Sequence[str] = (),
    conflicts: Sequence[str] = (),
    optdepends: Sequence[str] = (),
    compression: str = "zst",
) -> Path:
    """Build a pacman package with makepkg (as a non-root user); return its path.

    ``compression`` picks PKGEXT: ``zst``, ``xz``, ``gz`` or ``""`` for a plain tar.
    """
    _require("makepkg", "fakeroot", "bsdtar")
    user = _pacman_user()
    if user is None:
        work = _fresh_dir(tmp, f"pacman-{name}")
    else:
        # pytest's tmp dirs are private to root; makepkg's user needs a directory it owns.
        work = Path(tempfile.mkdtemp(prefix=f"packyard-pacman-{name}-"))
        _run(["chown", f"{user}:", str(work)])

    def quoted(values: Sequence[str]) -> str:
        return " ".join("'" + value.replace("'", "") + "'" for value in values)

    pkgbuild = textwrap.dedent(
        f"""\
        pkgname={name}
        pkgver={version}
        pkgrel={pkgrel}
        {f"epoch={epoch}" if epoch is not None else ""}
        pkgdesc="test package built by Packyard's test suite"
        arch=({arch})
        url="https://example.com/{name}"
        license=('MIT')
        depends=({quoted(depends)})
        provides=({quoted(provides)})
        conflicts=({quoted(conflicts)})
        optdepends=({quoted(optdepends)})
        package() {{
          mkdir -p "$pkgdir/usr/share/{name}"
          echo hello > "$pkgdir/usr/share/{name}/README"
        }}
        """
    )
    try:
        (work / "PKGBUILD").write_text(pkgbuild, encoding="utf-8")
        command = ["makepkg", "--nodeps", "--noconfirm", "--force", "--nocheck"]
        env = {
            "PKGEXT": f".pkg.tar{'.' + compression if compression else ''}",
            "PKGDEST": str(work),
        }
        if user is not None:
            _run(["chown", f"{user}:", str(work / "PKGBUILD")])
            env_args = [f"{key}={value}" for key, value in env.items()]
            _run(["runuser", "-u", user, "--", "env", *env_args, *command], cwd=work)
        else:
            _run(command, cwd=work, env=env)
        built = sorted(work.glob("*.pkg.tar*"))
        if len(built) != 1:
            raise RuntimeError(f"makepkg produced {built}, expected one package")
        out = tmp / built[0].name
        tmp.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(built[0], out)
        return out
    finally:
        if user is not None:
            shutil.rmtree(work, ignore_errors=True)


def build_packet(
    tmp: Path,
    *,
    name: str,
    version: str,
    tags: Sequence[str] = (),
    description: str = "test packet built by Packyard's test suite",
    arch: str | None = None,
    files: Mapping[str, bytes] | None = None,
    symlinks: Mapping[str, str] | None = None,
    scripts: Mapping[str, str] | None = None,
    compression: str = "xz",
) -> Path:
    """Build a packet with ``packyard.services.packets.build_packet``; return its path.

    ``files`` maps paths below the target root to content; ``symlinks`` maps link paths to
    targets; ``scripts`` maps preinst/postinst/prerm/postrm to their text.
    """
    from packyard.services.packets import build_packet as build

    src = _fresh_dir(tmp, f"packet-{name}")
    control: dict[str, object] = {
        "name": name,
        "version": version,
        "tags": list(tags),
        "description": description,
    }
    if arch is not None:
        control["arch"] = arch
    (src / "control.json").write_text(json.dumps(control, indent=2), encoding="utf-8")
    data = src / "data"
    data.mkdir()
    for rel, content in (files or {f"opt/{name}/README": b"hello\n"}).items():
        path = data / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    for rel, target in (symlinks or {}).items():
        path = data / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target)
    for script, text in (scripts or {}).items():
        (src / script).write_text(text, encoding="utf-8")
    out = tmp / f"{name}-{version}.packet"
    build(src, out, compression=compression)
    return out


def build_macos_pkg(
    tmp: Path,
    *,
    identifier: str,
    version: str,
    product: bool = False,
    title: str = "Packyard Test",
    host_architectures: str | None = None,
    bundle_id: str | None = None,
    install_kbytes: int = 12,
) -> Path:
    """Build a macOS flat package with ``bsdtar --format xar``; return its path.

    A component package holds PackageInfo, Bom and Payload; with ``product=True`` the archive
    is a product archive: a Distribution plus the component under ``<name>.pkg/``.
    """
    _require("bsdtar")
    root = _fresh_dir(tmp, f"pkg-{identifier}")
    short = identifier.rsplit(".", 1)[-1]
    bundle = (
        f'    <bundle id="{bundle_id}" CFBundleShortVersionString="{version}" '
        f'path="./Applications/{short}.app"/>\n'
        if bundle_id
        else ""
    )
    package_info = (
        f'<?xml version="1.0" encoding="utf-8"?>\n'
        f'<pkg-info format-version="2" identifier="{identifier}" version="{version}" '
        f'install-location="/" auth="root">\n'
        f'    <payload numberOfFiles="2" installKBytes="{install_kbytes}"/>\n'
        f"{bundle}"
        f"</pkg-info>\n"
    )
    component = root / f"{short}.pkg" if product else root
    component.mkdir(exist_ok=True)
    (component / "PackageInfo").write_text(package_info, encoding="utf-8")
    (component / "Bom").write_bytes(b"BOMStore" + bytes(24))
    (component / "Payload").write_bytes(b"not a real payload\n")
    members = ["PackageInfo", "Bom", "Payload"]
    if product:
        options = (
            f'    <options customize="never" hostArchitectures="{host_architectures}"/>\n'
            if host_architectures
            else ""
        )
        distribution = (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            '<installer-gui-script minSpecVersion="1">\n'
            f"    <title>{title}</title>\n"
            f"{options}"
            f'    <pkg-ref id="{identifier}"/>\n'
            "    <choices-outline>\n"
            f'        <line choice="{identifier}"/>\n'
            "    </choices-outline>\n"
            f'    <choice id="{identifier}" visible="false">\n'
            f'        <pkg-ref id="{identifier}"/>\n'
            "    </choice>\n"
            f'    <pkg-ref id="{identifier}" version="{version}" '
            f'installKBytes="{install_kbytes}">#{short}.pkg</pkg-ref>\n'
            "</installer-gui-script>\n"
        )
        (root / "Distribution").write_text(distribution, encoding="utf-8")
        members = ["Distribution", f"{short}.pkg"]
    out = tmp / f"{short}-{version}{'-product' if product else ''}.pkg"
    _run(["bsdtar", "--format", "xar", "-cf", str(out), "-C", str(root), *members])
    return out
