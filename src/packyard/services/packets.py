"""Packets from directories: ``init_packet`` writes a skeleton, ``build_packet`` packs it.

A packet directory holds ``control.json``, ``data/`` (the file tree as on the target) and
optional ``preinst``, ``postinst``, ``prerm``, ``postrm`` scripts. The built packet is an
uncompressed outer tar (``control.json``, scripts, ``data.tar.<comp>``), so its metadata is
readable without decompressing the payload. Builds are reproducible: members are sorted,
owned by root, and carry one fixed mtime.

Deliberately not handled: storing or uploading the packet (ingest does that), signing, and
data trees with device nodes, fifos or sockets (refused, as upload would refuse them).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
import tempfile
from pathlib import Path
from typing import IO, Final, cast

import zstandard

from packyard.domain.artifacts import ArtifactMetadata
from packyard.domain.errors import InvalidArtifact
from packyard.formats import inspect_artifact
from packyard.formats.packet import CONTROL_NAME, SCRIPT_NAMES, parse_control_json

__all__ = ["COMPRESSIONS", "build_packet", "init_packet", "packet_info"]

#: Compression name -> data tar suffix.
COMPRESSIONS: Final = {"xz": ".xz", "zst": ".zst", "gz": ".gz", "none": ""}
_HINT: Final = "run `packyard packet init DIR --name NAME --version VERSION` to get a skeleton"
_SCRIPT_TEMPLATE: Final = """#!/bin/sh
# {script}: runs on the device {when}.
# Exit non-zero to make the agent roll the installation back.
# Delete this file if the packet needs no {script} step.
set -eu
exit 0
"""
_SCRIPT_WHEN: Final = {
    "preinst": "before the files are installed",
    "postinst": "after the files are installed",
    "prerm": "before the files are removed",
    "postrm": "after the files are removed",
}


def _invalid(message: str, hint: str = _HINT) -> InvalidArtifact:
    return InvalidArtifact(message, hint=hint, details={"format": "packet"})


def init_packet(directory: Path, *, name: str, version: str, tags: list[str]) -> Path:
    """Write a packet skeleton: control.json, an empty data/ and commented example scripts.

    Example scripts are written as ``<script>.example`` so that a fresh skeleton builds into
    a packet without scripts; rename one to enable it.

    Raises:
        InvalidArtifact: the name/version is invalid or ``directory`` already has control.json.
    """
    control = {"name": name, "version": version, "tags": list(tags), "description": ""}
    parse_control_json(json.dumps(control).encode())
    if (directory / CONTROL_NAME).exists():
        raise _invalid(
            f"{directory / CONTROL_NAME} already exists",
            hint="edit the existing packet directory or choose an empty one",
        )
    (directory / "data").mkdir(parents=True, exist_ok=True)
    (directory / CONTROL_NAME).write_text(json.dumps(control, indent=2) + "\n", encoding="utf-8")
    for script in SCRIPT_NAMES:
        path = directory / f"{script}.example"
        path.write_text(
            _SCRIPT_TEMPLATE.format(script=script, when=_SCRIPT_WHEN[script]), encoding="utf-8"
        )
        path.chmod(0o755)
    return directory


def _normalised(info: tarfile.TarInfo, *, mtime: int) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = mtime
    return info


def _escapes(link: Path, *, root: Path) -> bool:
    target = os.readlink(link)
    if os.path.isabs(target):
        return True
    resolved = os.path.normpath(os.path.join(os.path.dirname(link), target))
    return os.path.commonpath([resolved, os.fspath(root)]) != os.fspath(root)


def _data_members(data_dir: Path) -> list[Path]:
    """Every path below data_dir, sorted by archive name, checked as upload would check it."""
    paths: list[Path] = []
    for current, dirs, files in os.walk(data_dir):
        dirs.sort()
        for entry in [*dirs, *files]:
            path = Path(current) / entry
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                if _escapes(path, root=data_dir):
                    raise _invalid(
                        f"{path} is a symlink to {os.readlink(path)!r}, which escapes data/",
                        hint="use a relative symlink target that stays inside data/",
                    )
            elif not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise _invalid(
                    f"{path} is not a regular file, directory or symlink",
                    hint="create device nodes and fifos from a postinst script instead",
                )
            paths.append(path)
    return sorted(paths, key=lambda path: path.relative_to(data_dir).as_posix())


def _add_tree(tar: tarfile.TarFile, data_dir: Path, *, mtime: int) -> None:
    tar.addfile(_normalised(tar.gettarinfo(data_dir, arcname="."), mtime=mtime))
    for path in _data_members(data_dir):
        arcname = "./" + path.relative_to(data_dir).as_posix()
        info = _normalised(tar.gettarinfo(path, arcname=arcname), mtime=mtime)
        if info.isreg():
            with path.open("rb") as handle:
                tar.addfile(info, handle)
        else:
            tar.addfile(info)


def _write_data_tar(data_dir: Path, out: IO[bytes], *, compression: str, mtime: int) -> None:
    # GNU format: no pax headers carrying atime/ctime, so identical trees give identical bytes.
    fmt = tarfile.GNU_FORMAT
    if compression == "zst":
        compressor = zstandard.ZstdCompressor(level=10)
        with (
            compressor.stream_writer(out, closefd=False) as writer,
            tarfile.open(fileobj=cast(IO[bytes], writer), mode="w|", format=fmt) as tar,
        ):
            _add_tree(tar, data_dir, mtime=mtime)
    elif compression == "xz":
        with tarfile.open(fileobj=out, mode="w|xz", format=fmt) as tar:
            _add_tree(tar, data_dir, mtime=mtime)
    elif compression == "gz":
        # tarfile's own gzip writer stamps the current time into the gzip header.
        with (
            gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=mtime) as gz,
            tarfile.open(fileobj=cast(IO[bytes], gz), mode="w|", format=fmt) as tar,
        ):
            _add_tree(tar, data_dir, mtime=mtime)
    else:
        with tarfile.open(fileobj=out, mode="w|", format=fmt) as tar:
            _add_tree(tar, data_dir, mtime=mtime)


def _add_bytes(tar: tarfile.TarFile, *, name: str, data: bytes, mode: int, mtime: int) -> None:
    info = _normalised(tarfile.TarInfo(name), mtime=mtime)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def build_packet(
    src_dir: Path, out_path: Path, *, compression: str = "xz", mtime: int = 0
) -> ArtifactMetadata:
    """Build a packet from a packet directory, then inspect the result.

    Args:
        src_dir: Directory with control.json, data/ and optional scripts.
        out_path: Where to write the packet (replaced atomically).
        compression: Data tar compression: ``xz``, ``zst``, ``gz`` or ``none``.
        mtime: Timestamp given to every member, for reproducible output.

    Returns:
        The metadata of the written packet, exactly as an upload would read it.

    Raises:
        InvalidArtifact: control.json is missing or invalid, or data/ holds something a
            packet may not carry (escaping symlinks, devices).
    """
    if compression not in COMPRESSIONS:
        raise _invalid(
            f"unknown compression {compression!r}",
            hint=f"choose one of {', '.join(COMPRESSIONS)}",
        )
    control_path = src_dir / CONTROL_NAME
    if not control_path.is_file():
        raise _invalid(f"{control_path} is missing")
    control_raw = control_path.read_bytes()
    parse_control_json(control_raw)
    data_dir = src_dir / "data"
    if not data_dir.is_dir():
        raise _invalid(f"{data_dir} is missing", hint="put the files to install under data/")

    out_path.parent.mkdir(parents=True, exist_ok=True)
    data_name = f"data.tar{COMPRESSIONS[compression]}"
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.")
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "w+b") as out:
            with tempfile.TemporaryFile() as data_tar:
                _write_data_tar(data_dir, data_tar, compression=compression, mtime=mtime)
                data_size = data_tar.tell()
                data_tar.seek(0)
                with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as outer:
                    _add_bytes(outer, name=CONTROL_NAME, data=control_raw, mode=0o644, mtime=mtime)
                    for script in SCRIPT_NAMES:
                        script_path = src_dir / script
                        if script_path.is_file():
                            _add_bytes(
                                outer,
                                name=script,
                                data=script_path.read_bytes(),
                                mode=0o755,
                                mtime=mtime,
                            )
                    info = _normalised(tarfile.TarInfo(data_name), mtime=mtime)
                    info.size = data_size
                    info.mode = 0o644
                    outer.addfile(info, data_tar)
            out.flush()
            os.fsync(out.fileno())
            out.seek(0)
            metadata = inspect_artifact(out, filename=out_path.name)
        tmp_path.replace(out_path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return metadata


def packet_info(path: Path) -> ArtifactMetadata:
    """Inspect a packet (or any artifact) file; same as ``inspect_artifact``."""
    with path.open("rb") as stream:
        return inspect_artifact(stream, filename=path.name)
