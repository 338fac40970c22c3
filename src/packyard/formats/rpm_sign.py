"""Re-signing an rpm's header in process: the file ``rpmsign --addsign`` (rpm 4.18) writes,
without running rpmsign.

An rpm is a 96-byte lead, the signature header, zero padding to an 8-byte boundary, the main
header and the payload (layout in ``formats/rpm``). The header signature (RPMSIGTAG_RSA, tag
268, which rpm also uses for EdDSA) is a binary OpenPGP signature over the main header, from its
magic to the end of its data store. ``read_headers`` reads the lead and both headers, never the
payload, and checks them strictly; ``write_signed`` writes the lead, a new signature header
holding the given signature instead of any old one (tags 267, 268, 1002, 1005), the padding, the
main header byte for byte, then copies the payload in chunks. Like rpmsign it keeps the
signature header's size by shrinking the reserved space (tag 1008), so the main header and the
payload stay where they were; when the reserved space is missing or too small the file grows.

Deliberately not handled: making the signature (``integrations/openpgp``), checking the payload
and its digests (rpm does when it installs), file signatures (IMA, fs-verity), signature headers
without a region tag (rpm 3 era; refused), and replacing the file (the caller writes a new file
and renames it over the old one).
"""

from __future__ import annotations

import hashlib
import shutil
import struct
from dataclasses import dataclass
from typing import BinaryIO, Final

from packyard.domain.errors import InvalidArtifact

from ._io import read_exact
from .rpm import RPM_MAGIC

__all__ = ["RpmHeaders", "SignatureEntry", "read_headers", "signature_header", "write_signed"]

_LEAD_SIZE: Final = 96
_HEADER_MAGIC: Final = b"\x8e\xad\xe8\x01\x00\x00\x00\x00"
_ENTRY: Final = struct.Struct(">iIiI")  # tag, type, offset, count
_REGION_TAG: Final = 62  # RPMTAG_HEADERSIGNATURES
_TAG_RSA: Final = 268
_TAG_SHA256: Final = 273
_TAG_RESERVED: Final = 1008
#: DSA and RSA header signatures, PGP and GPG header+payload signatures.
_OLD_SIGNATURES: Final = frozenset({267, _TAG_RSA, 1002, 1005})
_TYPE_STRING, _TYPE_BIN = 6, 7
#: Bytes per element of the fixed-size types: CHAR, INT8, INT16, INT32, INT64, BIN.
_ELEMENT_SIZE: Final = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, _TYPE_BIN: 1}
_STRING_TYPES: Final = frozenset({_TYPE_STRING, 8, 9})  # STRING, STRING_ARRAY, I18NSTRING
_ALIGNMENT: Final = {3: 2, 4: 4, 5: 8}
#: rpm's own limits: 64 MiB for a signature header, 256 MiB (headerMaxbytes) for the main one.
_MAX_SIGNATURE_HEADER: Final = 64 * 1024 * 1024
_MAX_MAIN_HEADER: Final = 256 * 1024 * 1024
_COPY_CHUNK: Final = 1024 * 1024
_HINT: Final = "the file is truncated or damaged; upload it again or rebuild it with rpmbuild"


@dataclass(frozen=True)
class SignatureEntry:
    """One tag of the signature header (not the region tag) with its data bytes."""

    tag: int
    kind: int  # rpm's tag type: 1 CHAR ... 9 I18NSTRING
    count: int
    data: bytes


@dataclass(frozen=True)
class RpmHeaders:
    """The parts of an rpm that re-signing reads: everything before the payload."""

    lead: bytes
    entries: tuple[SignatureEntry, ...]  # the signature header's tags, in file order
    signature_size: int  # the signature header's bytes, padding excluded
    main_header: bytes  # what the header signature covers
    payload_offset: int


def _invalid(message: str) -> InvalidArtifact:
    return InvalidArtifact(message, hint=_HINT, details={"format": "rpm"})


def _padding(size: int) -> int:
    # The lead is 96 bytes, so "8-byte boundary of the file" is one of the header's size.
    return -size % 8


def read_headers(stream: BinaryIO) -> RpmHeaders:
    """Read and check the lead and both headers of the rpm in ``stream`` (from its start).

    Raises:
        InvalidArtifact: a part is missing, truncated, implausibly large or inconsistent.
    """
    stream.seek(0)
    lead = read_exact(stream, _LEAD_SIZE)
    if len(lead) < _LEAD_SIZE or not lead.startswith(RPM_MAGIC):
        raise _invalid("the rpm lead is truncated or lacks the rpm magic")
    count, body = _read_header(stream, what="signature", limit=_MAX_SIGNATURE_HEADER)
    entries = _signature_entries(count, body)
    signature_size = 16 + len(body)
    if len(read_exact(stream, _padding(signature_size))) != _padding(signature_size):
        raise _invalid("the rpm ends after its signature header")
    main_count, main_body = _read_header(stream, what="main", limit=_MAX_MAIN_HEADER)
    store_size = len(main_body) - main_count * 16
    for tag, _, offset, _ in _ENTRY.iter_unpack(main_body[: main_count * 16]):
        if not 0 <= offset < store_size:
            raise _invalid(f"rpm main header tag {tag} points outside its data store")
    main_header = _HEADER_MAGIC + struct.pack(">II", main_count, store_size) + main_body
    digests = [e.data for e in entries if e.tag == _TAG_SHA256 and e.kind == _TYPE_STRING]
    if digests and digests[0].rstrip(b"\x00") != hashlib.sha256(main_header).hexdigest().encode():
        raise _invalid("the rpm main header does not match its SHA-256 digest (tag 273)")
    return RpmHeaders(
        lead=lead,
        entries=tuple(entries),
        signature_size=signature_size,
        main_header=main_header,
        payload_offset=stream.tell(),
    )


def _read_header(stream: BinaryIO, *, what: str, limit: int) -> tuple[int, bytes]:
    """(entry count, index entries + data store) of the header at the stream's position."""
    start = stream.tell()
    intro = read_exact(stream, 16)
    if len(intro) < 16:
        raise _invalid(f"the rpm {what} header is truncated")
    if intro[:8] != _HEADER_MAGIC:
        raise _invalid(f"the rpm {what} header magic is missing at offset {start}")
    count, store_size = struct.unpack(">II", intro[8:])
    needed = count * 16 + store_size
    if needed > limit:
        raise _invalid(
            f"the rpm {what} header declares {count} entries and {store_size} bytes of data, "
            f"more than rpm accepts ({limit // (1024 * 1024)} MiB)"
        )
    body = read_exact(stream, needed)
    if len(body) < needed:
        raise _invalid(f"the rpm {what} header is truncated: {len(body)} of {needed} bytes")
    return count, body


def _signature_entries(count: int, body: bytes) -> list[SignatureEntry]:
    store = body[count * 16 :]
    rows = list(_ENTRY.iter_unpack(body[: count * 16]))
    if len(store) < 16 or not rows or rows[0] != (_REGION_TAG, _TYPE_BIN, len(store) - 16, 16):
        raise _invalid("the rpm signature header does not start with its region tag (62)")
    if _ENTRY.unpack(store[-16:]) != (_REGION_TAG, _TYPE_BIN, -count * 16, 16):
        raise _invalid("the rpm signature header's region trailer is damaged")
    end = len(store) - 16  # tag data lies before the trailer
    entries: list[SignatureEntry] = []
    for tag, kind, offset, n in rows[1:]:
        if not 0 <= offset < end:
            raise _invalid(f"rpm signature tag {tag} points outside its data store")
        if kind in _ELEMENT_SIZE:
            length = _ELEMENT_SIZE[kind] * n
        elif kind in _STRING_TYPES and (n == 1 or kind != _TYPE_STRING) and n <= end - offset:
            length = 0
            for _ in range(n):
                nul = store.find(b"\x00", offset + length, end)
                if nul < 0:
                    raise _invalid(f"rpm signature tag {tag} runs past its data store")
                length = nul + 1 - offset
        else:
            raise _invalid(f"rpm signature tag {tag} has type {kind} with count {n}")
        if n == 0 or offset + length > end:
            raise _invalid(f"rpm signature tag {tag} runs past its data store")
        entries.append(SignatureEntry(tag, kind, n, store[offset : offset + length]))
    return entries


def signature_header(headers: RpmHeaders, signature: bytes) -> bytes:
    """The signature header with ``signature`` (binary OpenPGP packets) as the only header
    signature, the same size as the old one (padding included) when the reserved space allows."""
    kept = [e for e in headers.entries if e.tag not in _OLD_SIGNATURES | {_TAG_RESERVED}]
    kept.append(SignatureEntry(_TAG_RSA, _TYPE_BIN, len(signature), signature))
    if any(e.tag == _TAG_RESERVED for e in headers.entries):
        target = headers.signature_size + _padding(headers.signature_size)
        room = headers.signature_size - len(_header(kept)) - 16  # 16: its index entry
        # Aligned tags after the reserved space may move by a few bytes: try a little less.
        for size in range(room, max(room - 16, 0), -1):
            header = _header([*kept, SignatureEntry(_TAG_RESERVED, _TYPE_BIN, size, bytes(size))])
            if len(header) + _padding(len(header)) == target:
                return header
    return _header(kept)


def _header(entries: list[SignatureEntry]) -> bytes:
    """A signature header as rpm writes one: the region tag first, then the tags in tag order
    with their data in that order (each aligned to its type), the region trailer last."""
    index, data = bytearray(), bytearray()
    for entry in sorted(entries, key=lambda e: e.tag):
        data += bytes(-len(data) % _ALIGNMENT.get(entry.kind, 1))
        index += _ENTRY.pack(entry.tag, entry.kind, len(data), entry.count)
        data += entry.data
    count = len(entries) + 1
    region = _ENTRY.pack(_REGION_TAG, _TYPE_BIN, len(data), 16)
    data += _ENTRY.pack(_REGION_TAG, _TYPE_BIN, -count * 16, 16)
    return _HEADER_MAGIC + struct.pack(">II", count, len(data)) + region + index + data


def write_signed(source: BinaryIO, headers: RpmHeaders, *, signature: bytes, out: BinaryIO) -> None:
    """Write the rpm read from ``source`` to ``out`` with ``signature`` as its header signature;
    the payload is copied from ``source`` in chunks."""
    header = signature_header(headers, signature)
    out.write(headers.lead)
    out.write(header)
    out.write(bytes(_padding(len(header))))
    out.write(headers.main_header)
    source.seek(headers.payload_offset)
    shutil.copyfileobj(source, out, _COPY_CHUNK)
