"""RPM headers built byte by byte: golden metadata, relation rendering, damaged files."""

from __future__ import annotations

import io

import pytest
from tests.unit.formats.format_fakes import rpm_bytes

from packyard.domain.artifacts import ArtifactFormat
from packyard.domain.errors import InvalidArtifact
from packyard.formats import inspect_artifact
from packyard.formats.rpm import dist_tag

LESS, GREATER, EQUAL = 0x02, 0x04, 0x08


def inspect(data: bytes):
    return inspect_artifact(io.BytesIO(data), filename="x.rpm")


def test_binary_rpm_golden_values() -> None:
    meta = inspect(
        rpm_bytes(
            epoch=2,
            requires=[
                ("bash", GREATER | EQUAL, "4.0"),
                ("coreutils", 0, ""),
                ("rpmlib(CompressedFileNames)", LESS | EQUAL | 0x1000000, "3.0.4-1"),
            ],
            provides=[("hello", EQUAL, "2:1.0-1.el9"), ("webserver", 0, "")],
        )
    )
    assert meta.format is ArtifactFormat.RPM
    assert (meta.name, meta.version, meta.arch, meta.distro) == (
        "hello",
        "2:1.0-1.el9",
        "x86_64",
        "el9",
    )
    assert meta.relations == {
        "requires": ("bash >= 4.0", "coreutils", "rpmlib(CompressedFileNames) <= 3.0.4-1"),
        "provides": ("hello = 2:1.0-1.el9", "webserver"),
    }
    assert meta.fields == {
        "epoch": 2,
        "version": "1.0",
        "release": "1.el9",
        "summary": "a summary",
        "description": "a description",
        "buildtime": 1700000000,
        "buildhost": "builder.example.com",
        "license": "MIT",
        "group": "Applications/System",
        "url": "https://example.com",
        "sourcerpm": "hello-1.0-1.el9.src.rpm",
        "size": 4096,
    }


def test_no_epoch_means_plain_version_release() -> None:
    meta = inspect(rpm_bytes(release="3"))
    assert (meta.version, meta.distro, meta.fields["epoch"]) == ("1.0-3", None, 0)


def test_source_rpm_arch_is_src() -> None:
    meta = inspect(rpm_bytes(source=True))
    assert (meta.arch, meta.kind) == ("src", "source")


def test_longsize_wins_over_size() -> None:
    meta = inspect(rpm_bytes(extra={5009: (5, 2**40)}))
    assert meta.fields["size"] == 2**40


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("1.el9", "el9"),
        ("1.el9_3", "el9"),
        ("3.fc40", "fc40"),
        ("1.amzn2023.0.1", "amzn2023"),
        ("2.mga9", "mga9"),
        ("1", None),
        ("0.1.rc1", None),
        ("1.module+el8.5.0+12345+abcdef", "el8"),
    ],
)
def test_dist_tag(release: str, expected: str | None) -> None:
    assert dist_tag(release) == expected


def test_lead_only_is_truncated() -> None:
    with pytest.raises(InvalidArtifact, match="rpm signature header is truncated"):
        inspect(rpm_bytes()[:96])


def test_truncated_main_header() -> None:
    data = rpm_bytes()
    with pytest.raises(InvalidArtifact, match="rpm main header is truncated") as info:
        inspect(data[:200])
    assert "rpmbuild" in (info.value.hint or "")


def test_short_lead() -> None:
    with pytest.raises(InvalidArtifact, match="rpm lead is truncated"):
        inspect(b"\xed\xab\xee\xdb\x03\x00")


def test_missing_header_magic() -> None:
    data = rpm_bytes()
    with pytest.raises(InvalidArtifact, match="signature header magic is missing"):
        inspect(data[:96] + b"\x00" * 64 + data[160:])


def test_index_entry_pointing_outside_store() -> None:
    data = bytearray(rpm_bytes())
    # First index entry of the signature header: tag, type, offset(!), count.
    data[96 + 16 + 8 : 96 + 16 + 12] = (10_000).to_bytes(4, "big")
    with pytest.raises(InvalidArtifact, match="points outside its data store"):
        inspect(bytes(data))


def test_payload_is_never_read() -> None:
    class Recording(io.BytesIO):
        furthest = 0

        def read(self, size: int | None = -1) -> bytes:
            start = self.tell()
            chunk = super().read(size)
            if start:  # the detection peek at offset 0 is bounded and allowed
                self.furthest = max(self.furthest, start + len(chunk))
            return chunk

    payload = b"P" * 1_000_000
    data = rpm_bytes(payload=payload)
    stream = Recording(data)
    assert inspect_artifact(stream, filename="x.rpm").name == "hello"
    assert stream.furthest <= len(data) - len(payload)
