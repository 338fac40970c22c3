"""formats.rpm_sign on rpms built by the real rpmbuild: re-signing keeps the main header and the
payload byte for byte, keeps the signature header's size while the reserved space allows,
replaces old signatures, and refuses damaged input with InvalidArtifact. The signature bytes
are opaque to this module, so fixed bytes stand in for OpenPGP packets here (signatures that
rpm checks are in tests/functional/test_gpg_signer.py)."""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.pkgbuild import build_rpm

from packyard.domain.errors import InvalidArtifact
from packyard.formats import rpm_sign
from packyard.formats.rpm_sign import RpmHeaders, SignatureEntry

LEAD = 96
SIGNATURE = b"\x89\x02\x33" + bytes(range(256)) * 2 + bytes(51)  # 566 bytes, like RSA 4096
HEADER_MAGIC = b"\x8e\xad\xe8\x01\x00\x00\x00\x00"
# What rpmsign 4.18 wrote into this rpmbuild's signature header with a 566-byte signature.
RPMSIGN_INDEX = [
    (62, 7, 4244, 16),
    (268, 7, 0, 566),
    (269, 6, 566, 1),
    (273, 6, 607, 1),
    (1000, 4, 672, 1),
    (1004, 7, 676, 16),
    (1007, 4, 692, 1),
    (1008, 7, 696, 3548),
]


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = build_rpm(tmp_path_factory.mktemp("rpm"), name="resign-me", version="1.0")
    return path.read_bytes()


def read(data: bytes) -> RpmHeaders:
    return rpm_sign.read_headers(io.BytesIO(data))


def resign(data: bytes, signature: bytes = SIGNATURE, headers: RpmHeaders | None = None) -> bytes:
    out = io.BytesIO()
    source = io.BytesIO(data)
    rpm_sign.write_signed(
        source, headers or rpm_sign.read_headers(source), signature=signature, out=out
    )
    return out.getvalue()


def with_signature_entries(data: bytes, entries: list[SignatureEntry]) -> bytes:
    """``data`` with another signature header holding ``entries``, laid out as rpm does."""
    store, rows = bytearray(), bytearray()
    for entry in sorted(entries, key=lambda e: e.tag):
        store += bytes(-len(store) % {3: 2, 4: 4, 5: 8}.get(entry.kind, 1))
        rows += struct.pack(">iIiI", entry.tag, entry.kind, len(store), entry.count)
        store += entry.data
    count = len(entries) + 1
    region = struct.pack(">iIiI", 62, 7, len(store), 16)
    store += struct.pack(">iIiI", 62, 7, -count * 16, 16)
    header = HEADER_MAGIC + struct.pack(">II", count, len(store)) + region + rows + store
    return data[:LEAD] + header + bytes(-len(header) % 8) + data[main_start(read(data)) :]


def main_start(headers: RpmHeaders) -> int:
    return LEAD + headers.signature_size + -headers.signature_size % 8


def tags(headers: RpmHeaders) -> list[int]:
    return [entry.tag for entry in headers.entries]


def index(data: bytes) -> list[tuple[int, int, int, int]]:
    """The signature header's raw index entries (tag, type, offset, count)."""
    count = struct.unpack(">I", data[LEAD + 8 : LEAD + 12])[0]
    return list(struct.iter_unpack(">iIiI", data[LEAD + 16 : LEAD + 16 + count * 16]))


def test_rpmbuild_output_is_read_as_rpm_lays_it_out(unsigned: bytes) -> None:
    headers = read(unsigned)
    assert headers.lead == unsigned[:LEAD]
    assert tags(headers) == [269, 273, 1000, 1004, 1007, 1008]
    start = main_start(headers)
    assert headers.main_header == unsigned[start : start + len(headers.main_header)]
    assert headers.payload_offset == start + len(headers.main_header)
    # Tag 273 (SHA256HEADER) is the digest of exactly the bytes the signature covers.
    digest = next(e.data for e in headers.entries if e.tag == 273)
    assert digest == hashlib.sha256(headers.main_header).hexdigest().encode() + b"\x00"


def test_resigning_keeps_main_header_payload_and_size(unsigned: bytes) -> None:
    before = read(unsigned)
    signed = resign(unsigned)
    after = read(signed)
    assert len(signed) == len(unsigned)
    assert signed[:LEAD] == unsigned[:LEAD]
    assert after.signature_size == before.signature_size
    assert signed[main_start(after) :] == unsigned[main_start(before) :]
    assert after.main_header == before.main_header
    assert tags(after) == [268, 269, 273, 1000, 1004, 1007, 1008]
    assert after.entries[0] == SignatureEntry(268, 7, len(SIGNATURE), SIGNATURE)
    # Everything else is kept; the reserved space gave up what the signature took.
    kept = {e.tag: e for e in before.entries}
    for entry in after.entries[1:-1]:
        assert entry == kept[entry.tag]
    reserved = after.entries[-1]
    assert reserved.data == bytes(reserved.count)
    # rpm's layout, as rpmsign wrote it: region tag first, then tag order, INT32s aligned...
    assert struct.unpack(">II", signed[LEAD + 8 : LEAD + 16]) == (8, 4260)
    assert index(signed) == RPMSIGN_INDEX
    # ...and the region trailer last.
    trailer_at = LEAD + 16 + 8 * 16 + 4244
    assert struct.unpack(">iIiI", signed[trailer_at : trailer_at + 16]) == (62, 7, -128, 16)


def test_resigning_replaces_every_old_signature(unsigned: bytes) -> None:
    headers = read(unsigned)
    # Signed before, also with the legacy DSA header and PGP/GPG header+payload signatures
    # (rpm 4.18 writes none of those), the reserved space shrunk to make room.
    old = [SignatureEntry(tag, 7, 3, b"old") for tag in (267, 268, 1002, 1005)]
    entries = [e for e in headers.entries if e.tag != 1008]
    shrunk = SignatureEntry(1008, 7, 4000, bytes(4000))
    crowded = with_signature_entries(unsigned, [*entries, *old, shrunk])
    assert tags(read(crowded)) == [267, 268, 269, 273, 1000, 1002, 1004, 1005, 1007, 1008]
    assert read(crowded).main_header == headers.main_header
    signed = resign(crowded)
    after = read(signed)
    assert [e for e in after.entries if e.tag in (267, 268, 1002, 1005)] == [
        SignatureEntry(268, 7, len(SIGNATURE), SIGNATURE)
    ]
    assert len(signed) == len(crowded)
    assert signed[main_start(after) :] == unsigned[main_start(headers) :]
    # Signing again replaces the signature again.
    again = read(resign(signed, b"another signature"))
    assert [e for e in again.entries if e.tag == 268] == [
        SignatureEntry(268, 7, 17, b"another signature")
    ]


@pytest.mark.parametrize("reserved", [None, 10])
def test_without_room_the_file_grows(unsigned: bytes, reserved: int | None) -> None:
    headers = read(unsigned)
    entries = [e for e in headers.entries if e.tag != 1008]
    if reserved is not None:
        entries.append(SignatureEntry(1008, 7, reserved, bytes(reserved)))
    tight = with_signature_entries(unsigned, entries)
    before = read(tight)
    signed = resign(tight)
    after = read(signed)
    assert 1008 not in tags(after)
    assert after.signature_size > before.signature_size
    assert len(signed) > len(tight)
    assert signed[main_start(after) :] == unsigned[main_start(headers) :]
    # A signature no larger than the dropped reserved space fits without growing.
    if reserved is not None:
        same = resign(tight, b"x" * 8)
        assert len(same) == len(tight)


def test_a_large_signature_outgrows_the_reserved_space(unsigned: bytes) -> None:
    big = b"\x89" * 6000
    signed = resign(unsigned, big)
    after = read(signed)
    assert 1008 not in tags(after)
    assert after.entries[0].data == big
    assert main_start(after) % 8 == 0
    assert signed[main_start(after) :] == unsigned[main_start(read(unsigned)) :]


def patched(data: bytes, offset: int, value: bytes) -> bytes:
    return data[:offset] + value + data[offset + len(value) :]


def flipped(data: bytes, offset: int) -> bytes:
    return patched(data, offset, bytes([data[offset] ^ 0x01]))


ENTRY = LEAD + 16  # the signature header's first index entry (the region tag)
Damage = Callable[[bytes, RpmHeaders], bytes]
# name: (how to damage an unsigned rpm, what the error says)
DAMAGE: dict[str, tuple[Damage, str]] = {
    "empty": (lambda d, h: b"", "lead is truncated"),
    "bad lead magic": (lambda d, h: flipped(d, 0), "lacks the rpm magic"),
    "lead only": (lambda d, h: d[:LEAD], "signature header is truncated"),
    "bad signature magic": (lambda d, h: flipped(d, LEAD), "header magic is missing"),
    "truncated signature": (lambda d, h: d[: LEAD + 200], "signature header is truncated"),
    "huge nindex": (lambda d, h: patched(d, LEAD + 8, b"\x10\x00\x00\x00"), "more than rpm"),
    "huge hsize": (lambda d, h: patched(d, LEAD + 12, b"\x7f\xff\xff\xff"), "more than rpm"),
    "offset out of range": (
        lambda d, h: patched(d, ENTRY + 16 + 8, b"\x00\x00\x40\x00"),
        "tag 269 points outside its data store",
    ),
    "negative offset": (
        lambda d, h: patched(d, ENTRY + 32 + 8, b"\xff\xff\xff\xf0"),
        "tag 273 points outside its data store",
    ),
    "count past the store": (
        lambda d, h: patched(d, ENTRY + 6 * 16 + 12, b"\x00\x01\x00\x00"),
        "tag 1008 runs past its data store",
    ),
    "unknown type": (
        lambda d, h: patched(d, ENTRY + 16 + 4, b"\x00\x00\x00\x0f"),
        "tag 269 has type 15",
    ),
    "no region tag": (lambda d, h: patched(d, ENTRY, b"\x00\x00\x01\x0d"), "region tag"),
    "damaged trailer": (
        lambda d, h: flipped(d, LEAD + h.signature_size - 16 + 11),
        "region trailer is damaged",
    ),
    "no main header": (lambda d, h: d[: main_start(h)], "main header is truncated"),
    "bad main magic": (lambda d, h: flipped(d, main_start(h)), "main header magic is missing"),
    "truncated main": (lambda d, h: d[: main_start(h) + 100], "main header is truncated"),
    "huge main nindex": (
        lambda d, h: patched(d, main_start(h) + 8, b"\xff\xff\xff\xff"),
        "more than rpm",
    ),
    "main offset out of range": (
        lambda d, h: patched(d, main_start(h) + 16 + 8, b"\x01\x00\x00\x00"),
        "main header tag 63 points outside its data store",
    ),
    "main header changed": (
        lambda d, h: flipped(d, h.payload_offset - 1),
        "does not match its SHA-256 digest",
    ),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_input_is_refused(unsigned: bytes, case: str) -> None:
    damage, message = DAMAGE[case]
    data = damage(unsigned, read(unsigned))
    assert data != unsigned
    with pytest.raises(InvalidArtifact, match=message) as info:
        read(data)
    assert info.value.hint and "rpmbuild" in info.value.hint
    assert info.value.details == {"format": "rpm"}


def test_every_truncation_of_the_headers_is_refused(unsigned: bytes) -> None:
    end = read(unsigned).payload_offset
    for size in range(0, end, 7):
        with pytest.raises(InvalidArtifact):
            read(unsigned[:size])


def test_payload_is_copied_in_chunks(unsigned: bytes, tmp_path: Path) -> None:
    # A payload larger than one copy chunk comes through unchanged.
    tail = bytes(range(256)) * (5 * 1024 * 1024 // 256 + 3)
    source = tmp_path / "big.rpm"
    source.write_bytes(unsigned + tail)
    with source.open("rb") as stream:
        headers = rpm_sign.read_headers(stream)
        out = io.BytesIO()
        rpm_sign.write_signed(stream, headers, signature=SIGNATURE, out=out)
    assert out.getvalue()[-len(tail) :] == tail
    assert len(out.getvalue()) == len(unsigned) + len(tail)
