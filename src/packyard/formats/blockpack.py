"""Compressed index files assembled from independently compressed blocks.

A channel's index (apt ``Packages``, rpm ``primary.xml``, a pacman database tar) is the
concatenation of per-artifact entries. Compressing the whole file again for every publication
costs O(channel) (xz alone ≈ 70 ms per MB), so indexes are cut into blocks of entries, each
block is compressed once and cached (by the sha256 of its uncompressed bytes), and a
publication only joins compressed blocks. The results are ordinary single-stream files that
every reader accepts:

- **gzip**: each block is a raw deflate stream ended with a full flush (no final bit), joined
  behind one gzip header and closed with an empty final block and the CRC-32 and size of the
  whole text — what ``pigz`` writes. One gzip member, not several concatenated members.
- **xz**: each block is one xz *block*; the blocks are joined into one xz stream with an index
  listing them — what ``xz -T`` writes. apt reads only the first stream of a multi-stream
  ``.xz`` file, so concatenating whole ``.xz`` files would silently truncate the index.

Block boundaries are content-defined (``boundaries``): a block ends after an entry whose key
hashes to 0 modulo the target size, so adding or removing one entry changes only the block
it lands in, and the blocks around it keep their bytes (and their cache hits).

Not handled here: caching the blocks (storage/blockcache.py), deciding what an entry is
(services/publish.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import lzma
import struct
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import compress, count

__all__ = [
    "CODEC_VERSION",
    "CompressedBlock",
    "boundaries",
    "combined_crc32",
    "compress_block",
    "digest_key",
    "gzip_join",
    "xz_join",
]

#: Part of every cache key: change it when the compression settings below change.
CODEC_VERSION = "gz9-xz6-v2"

_GZIP_LEVEL = 9
_XZ_PRESET = 6
_XZ_MAX_DICT = 8 << 20  # preset 6's dictionary
_XZ_HEADER = 12
_XZ_FOOTER = 12
_XZ_MAGIC = b"\xfd7zXZ\x00"
# Stream flags: no flags byte, check type CRC64 (0x04) - what lzma.compress writes by default.
_XZ_CHECK = lzma.CHECK_CRC64
_EMPTY_FINAL_DEFLATE = b"\x03\x00"


@dataclass(frozen=True, kw_only=True)
class CompressedBlock:
    """One block of an index: its deflate and xz encodings and the sizes xz's index needs."""

    size: int
    #: Views into the cached record when unpacked (no copy: a publish unpacks hundreds).
    deflate: bytes | memoryview
    xz: bytes | memoryview
    xz_unpadded: int
    #: CRC-32 of the uncompressed text (gzip's trailer is combined from these).
    crc32: int = 0

    @property
    def has_xz(self) -> bool:
        return bool(self.xz) or not self.size

    def pack(self) -> bytes:
        head = _PACKED.pack(
            self.size, len(self.deflate), len(self.xz), self.xz_unpadded, self.crc32
        )
        return b"".join([head, self.deflate, self.xz])

    @classmethod
    def unpack(cls, data: bytes) -> CompressedBlock:
        size, n_deflate, n_xz, unpadded, crc = _PACKED.unpack_from(data)
        if len(data) - _PACKED.size != n_deflate + n_xz:
            raise ValueError("truncated compressed block")
        view = memoryview(data)
        start = _PACKED.size
        return cls(
            size=size,
            deflate=view[start : start + n_deflate],
            xz=view[start + n_deflate :],
            xz_unpadded=unpadded,
            crc32=crc,
        )


_PACKED = struct.Struct(">QQQQI")


def compress_block(data: bytes, *, xz: bool = True) -> CompressedBlock:
    """Compress one block of an index for ``gzip_join`` (and ``xz_join`` unless ``xz`` is
    false: xz costs ten times what deflate does). zlib and liblzma release the GIL, so blocks
    can be compressed on several threads."""
    deflater = zlib.compressobj(_GZIP_LEVEL, zlib.DEFLATED, -15)
    deflate = deflater.compress(data) + deflater.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(data)
    if not xz:
        return CompressedBlock(size=len(data), deflate=deflate, xz=b"", xz_unpadded=0, crc32=crc)
    # Preset 6 with a dictionary no larger than the block (a power of two, 4 KiB at least):
    # the same output size, but the encoder (and every reader's decoder) sets up kilobytes
    # instead of preset 6's 8 MiB window - most of the time xz took for a 50 KB block.
    dict_size = min(_XZ_MAX_DICT, max(4096, 1 << (len(data) - 1).bit_length()))
    filters = [{"id": lzma.FILTER_LZMA2, "preset": _XZ_PRESET, "dict_size": dict_size}]
    stream = lzma.compress(data, format=lzma.FORMAT_XZ, check=_XZ_CHECK, filters=filters)
    block, unpadded = _single_xz_block(stream, size=len(data))
    return CompressedBlock(
        size=len(data), deflate=deflate, xz=block, xz_unpadded=unpadded, crc32=crc
    )


def combined_crc32(blocks: Sequence[CompressedBlock]) -> int:
    """The CRC-32 of the blocks' texts joined, from their own CRCs (zlib's crc32_combine):
    no pass over the text. Without a loadable zlib, an error: callers fall back to
    ``zlib.crc32`` over the text."""
    combine = _crc32_combine()
    if combine is None:
        raise LookupError("zlib's crc32_combine is not available")
    crc = 0
    for block in blocks:
        crc = combine(crc, block.crc32, block.size)
    return crc & 0xFFFFFFFF


@functools.cache
def _crc32_combine() -> Callable[[int, int, int], int] | None:
    """zlib's ``crc32_combine`` through ctypes (Python's zlib module does not expose it)."""
    name = ctypes.util.find_library("z")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).crc32_combine
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_ulong
    function.argtypes = [ctypes.c_ulong, ctypes.c_ulong, ctypes.c_long]
    result: Callable[[int, int, int], int] = function
    return result


def gzip_join(blocks: Sequence[CompressedBlock], *, crc32: int, size: int) -> bytes:
    """One gzip member holding the blocks' text in order.

    ``crc32`` and ``size`` describe the whole uncompressed text (``combined_crc32``, or
    ``zlib.crc32`` of it): gzip's trailer needs them.
    """
    # ID1 ID2 CM=8 FLG=0 MTIME=0 XFL=2 (max compression) OS=255 (unknown): reproducible.
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    trailer = struct.pack("<II", crc32 & 0xFFFFFFFF, size & 0xFFFFFFFF)
    return b"".join([header, *(b.deflate for b in blocks), _EMPTY_FINAL_DEFLATE, trailer])


def xz_join(blocks: Sequence[CompressedBlock]) -> bytes:
    """One xz stream whose blocks are ``blocks`` in order, with the index and footer."""
    flags = b"\x00" + bytes([_XZ_CHECK])
    header = _XZ_MAGIC + flags + struct.pack("<I", zlib.crc32(flags))
    records = b"".join(_vli(b.xz_unpadded) + _vli(b.size) for b in blocks if b.size)
    index = b"\x00" + _vli(sum(1 for b in blocks if b.size)) + records
    index += b"\x00" * (-len(index) % 4)
    index += struct.pack("<I", zlib.crc32(index))
    backward = struct.pack("<I", len(index) // 4 - 1)
    footer = struct.pack("<I", zlib.crc32(backward + flags)) + backward + flags + b"YZ"
    return b"".join([header, *(b.xz for b in blocks if b.size), index, footer])


def boundaries(keys: Sequence[int], *, target: int) -> list[tuple[int, int]]:
    """Cut a sequence of entry keys into blocks of about ``target`` entries.

    Returns ``(start, end)`` slices. A block ends after an entry whose key hashes to 0 modulo
    ``target`` (or at the end), so the cut points depend on the entries, not on positions.
    The hash is Fibonacci hashing (one multiplication), and each key's verdict is remembered
    (``_cut_memo``): run for every entry of every index of every publication, it must cost
    next to nothing.
    """
    if target <= 1:
        return [(i, i + 1) for i in range(len(keys))]
    with _cut_lock:
        memo = _cut_memo.setdefault(target, {})
        try:
            flags = list(map(memo.__getitem__, keys))
        except KeyError:
            new = set(keys).difference(memo)
            if len(memo) + len(new) > _CUT_MEMO_LIMIT:
                memo.clear()
                new = set(keys)
            memo.update({key: _is_cut(key, target) for key in new})
            flags = list(map(memo.__getitem__, keys))
    cuts = list(compress(count(1), flags))
    if not cuts or cuts[-1] != len(keys):
        cuts.append(len(keys))
    starts = [0, *cuts[:-1]]
    return [(s, e) for s, e in zip(starts, cuts, strict=True) if e > s]


#: target -> key -> whether a block ends after it. Keys are artifact ids, which outlive many
#: publications; the memo is dropped whole when it would pass the limit (≈ 70 bytes a key:
#: 0.7 MB for a channel of 10,000, at most ≈ 9 MB).
_cut_memo: dict[int, dict[int, bool]] = {}
_cut_lock = threading.Lock()
_CUT_MEMO_LIMIT = 1 << 17


def _is_cut(key: int, target: int) -> bool:
    return (((key * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF) >> 32) % target == 0


def digest_key(parts: Iterable[bytes]) -> str:
    """A cache key for the text of a block (its sha256), namespaced by the codec settings."""
    h = hashlib.sha256(CODEC_VERSION.encode())
    for part in parts:
        h.update(part)
    return h.hexdigest()


def _vli(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_vli(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _single_xz_block(stream: bytes, *, size: int) -> tuple[bytes, int]:
    """The one block of a single-block xz stream and its unpadded size (from the index)."""
    if not size:
        return b"", 0
    backward = struct.unpack_from("<I", stream, len(stream) - 8)[0]
    index_size = (backward + 1) * 4
    index_start = len(stream) - _XZ_FOOTER - index_size
    pos = index_start + 1  # index indicator
    count, pos = _read_vli(stream, pos)
    if count != 1:
        raise ValueError(f"expected one xz block, liblzma wrote {count}")
    unpadded, pos = _read_vli(stream, pos)
    uncompressed, _pos = _read_vli(stream, pos)
    if uncompressed != size:
        raise ValueError("xz block size does not match its input")
    return stream[_XZ_HEADER:index_start], unpadded
