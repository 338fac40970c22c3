"""Damaged input never crashes detection: it is generic, or a clear InvalidArtifact.

Hypothesis flips, truncates and splices bytes of every kind of file the codecs read; any
exception other than InvalidArtifact (struct.error, IndexError, KeyError...) is a bug.
"""

from __future__ import annotations

import io
import json
import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.formats.format_fakes import (
    deb_bytes,
    member,
    packet_bytes,
    rpm_bytes,
    tar_bytes,
    wheel_bytes,
    xar_bytes,
)

from packyard.domain.errors import InvalidArtifact
from packyard.formats import inspect_artifact

SEEDS = {
    "deb": deb_bytes("Package: a\nVersion: 1\nArchitecture: all\n", compression="gz"),
    "deb-xz": deb_bytes("Package: a\nVersion: 1\nArchitecture: all\n"),
    "rpm": rpm_bytes(requires=[("bash", 0x0C, "4")]),
    "xar": xar_bytes({"PackageInfo": b'<pkg-info identifier="a" version="1"/>'}),
    "packet": packet_bytes(),
    "pacman": tar_bytes(
        [member(".PKGINFO", b"pkgname = a\npkgver = 1-1\n"), member("usr/x", b"x")],
        compression="zst",
    ),
    "docker": tar_bytes([member("manifest.json", json.dumps([{"RepoTags": ["a:1"]}]).encode())]),
    "wheel": wheel_bytes(),
    "tar": tar_bytes([member("a", b"x"), member("b/", kind=tarfile.DIRTYPE)]),
}


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(SEEDS[draw(st.sampled_from(sorted(SEEDS)))])
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged())
def test_damaged_files_fail_cleanly(data: bytes) -> None:
    try:
        inspect_artifact(io.BytesIO(data), filename="x-1.0.bin")
    except InvalidArtifact as exc:
        assert exc.message
        assert exc.hint
