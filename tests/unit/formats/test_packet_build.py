"""services.packets: building packets from directories (files only, no subprocesses)."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path

import pytest

from packyard.domain.artifacts import ArtifactFormat
from packyard.domain.errors import InvalidArtifact
from packyard.formats._io import decompressed
from packyard.services.packets import build_packet, init_packet, packet_info


def make_dir(root: Path, *, control: object | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if control is None:
        control = {"name": "hello", "version": "1.0", "tags": ["a"], "description": "d"}
    (root / "control.json").write_text(json.dumps(control))
    (root / "data/opt/hello").mkdir(parents=True)
    (root / "data/opt/hello/bin").write_bytes(b"#!/bin/sh\necho hi\n")
    (root / "data/opt/hello/bin").chmod(0o755)
    (root / "data/opt/hello/conf").write_text("x=1\n")
    (root / "data/usr/bin").mkdir(parents=True)
    (root / "data/usr/bin/hello").symlink_to("../../opt/hello/bin")
    (root / "postinst").write_text("#!/bin/sh\nexit 0\n")
    (root / "postinst").chmod(0o600)
    return root


def outer_members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def data_members(path: Path, name: str) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        raw = handle.read()
    compression = name.removeprefix("data.tar").lstrip(".") or None
    stream = decompressed(io.BytesIO(raw), compression)
    with tarfile.open(fileobj=stream, mode="r|") as data:
        return list(data)


@pytest.mark.parametrize(
    ("compression", "suffix"), [("xz", ".xz"), ("zst", ".zst"), ("gz", ".gz"), ("none", "")]
)
def test_build_packet(tmp_path: Path, compression: str, suffix: str) -> None:
    src = make_dir(tmp_path / "src")
    out = tmp_path / "out/hello-1.0.packet"
    meta = build_packet(src, out, compression=compression)
    assert meta.format is ArtifactFormat.PACKET
    assert (meta.name, meta.version) == ("hello", "1.0")
    assert meta.fields["scripts"] == ["postinst"]
    assert meta.fields["files"] == 7  # opt, opt/hello, bin, conf, usr, usr/bin, usr/bin/hello
    outer = outer_members(out)
    assert list(outer) == ["control.json", "postinst", f"data.tar{suffix}"]
    assert outer["postinst"].mode == 0o755
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "root" for m in outer.values())
    members = data_members(out, f"data.tar{suffix}")
    assert [m.name for m in members] == [
        ".",
        "./opt",
        "./opt/hello",
        "./opt/hello/bin",
        "./opt/hello/conf",
        "./usr",
        "./usr/bin",
        "./usr/bin/hello",
    ]
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members)
    assert members[3].mode & 0o777 == 0o755
    assert members[-1].linkname == "../../opt/hello/bin"
    assert packet_info(out) == meta


def test_build_is_reproducible(tmp_path: Path) -> None:
    first = build_packet(make_dir(tmp_path / "a"), tmp_path / "a.packet", compression="gz")
    second = build_packet(make_dir(tmp_path / "b"), tmp_path / "b.packet", compression="gz")
    assert first == second
    assert (tmp_path / "a.packet").read_bytes() == (tmp_path / "b.packet").read_bytes()


def test_missing_control_json(tmp_path: Path) -> None:
    (tmp_path / "src/data").mkdir(parents=True)
    with pytest.raises(InvalidArtifact, match=re.escape("control.json is missing")) as info:
        build_packet(tmp_path / "src", tmp_path / "x.packet")
    assert "packet init" in (info.value.hint or "")
    assert not (tmp_path / "x.packet").exists()


def test_missing_version(tmp_path: Path) -> None:
    src = make_dir(tmp_path / "src", control={"name": "hello"})
    with pytest.raises(InvalidArtifact, match=re.escape("control.json has no string 'version'")):
        build_packet(src, tmp_path / "x.packet")


def test_missing_data_dir(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src/control.json").write_text('{"name": "a", "version": "1"}')
    with pytest.raises(InvalidArtifact, match="data is missing"):
        build_packet(tmp_path / "src", tmp_path / "x.packet")


@pytest.mark.parametrize("target", ["../../../etc/passwd", "/etc/passwd"])
def test_escaping_symlink_refused(tmp_path: Path, target: str) -> None:
    src = make_dir(tmp_path / "src")
    (src / "data/etc").mkdir()
    (src / "data/etc/passwd").symlink_to(target)
    with pytest.raises(InvalidArtifact, match="escapes data/"):
        build_packet(src, tmp_path / "x.packet")
    assert list(tmp_path.glob("*.packet*")) == []


def test_fifo_refused(tmp_path: Path) -> None:
    src = make_dir(tmp_path / "src")
    os.mkfifo(src / "data/pipe")
    with pytest.raises(InvalidArtifact, match="not a regular file, directory or symlink"):
        build_packet(src, tmp_path / "x.packet")


def test_unknown_compression(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="unknown compression 'lz4'"):
        build_packet(make_dir(tmp_path / "src"), tmp_path / "x.packet", compression="lz4")


def test_init_then_build(tmp_path: Path) -> None:
    directory = init_packet(tmp_path / "pkt", name="agent-config", version="0.1", tags=["fleet"])
    assert json.loads((directory / "control.json").read_text()) == {
        "name": "agent-config",
        "version": "0.1",
        "tags": ["fleet"],
        "description": "",
    }
    assert (directory / "data").is_dir()
    assert sorted(p.name for p in directory.glob("*.example")) == [
        "postinst.example",
        "postrm.example",
        "preinst.example",
        "prerm.example",
    ]
    meta = build_packet(directory, tmp_path / "agent-config-0.1.packet")
    assert (meta.name, meta.fields["scripts"], meta.fields["files"]) == ("agent-config", [], 0)


def test_init_refuses_existing(tmp_path: Path) -> None:
    init_packet(tmp_path, name="a", version="1", tags=[])
    with pytest.raises(InvalidArtifact, match="already exists"):
        init_packet(tmp_path, name="a", version="1", tags=[])


def test_init_refuses_bad_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidArtifact, match="has characters"):
        init_packet(tmp_path, name="a b", version="1", tags=[])
