"""Bounded reading helpers shared by the format codecs.

Package files can be many GiB, so nothing here reads a stream whole: callers get bounded
views (``SubStream``), streaming decompressors and reads that refuse to grow past a limit.

Deliberately not handled here: format knowledge (which member matters) and safety policy for
archive members (see ``safetar``). Decompression covers gzip, bzip2, xz/lzma and zstd; other
codecs (lz4, lzip, compress) are treated as "not compressed", so the file ends up generic.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import zlib
from typing import IO, Final, cast

import zstandard

from packyard.domain.errors import InvalidArtifact

__all__ = [
    "CORRUPT_DATA_ERRORS",
    "HEAD_SIZE",
    "SubStream",
    "compression_from_suffix",
    "decompressed",
    "open_tar",
    "read_bounded",
    "read_exact",
    "sniff_compression",
    "stream_size",
]

#: How many leading bytes detection looks at; ISO 9660 needs offset 0x8001 + 5.
HEAD_SIZE: Final = 64 * 1024

#: What corrupt or truncated compressed/tar data raises from the stdlib and zstandard.
#: OSError covers gzip.BadGzipFile; EOFError covers truncated xz/gzip/bzip2 streams.
CORRUPT_DATA_ERRORS: Final = (
    tarfile.TarError,
    EOFError,
    OSError,
    zlib.error,
    lzma.LZMAError,
    zstandard.ZstdError,
    ValueError,
)

_MAGICS: Final = (
    (b"\x1f\x8b", "gz"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zst"),
    (b"BZh", "bz2"),
)

_SUFFIXES: Final = {
    "": None,
    ".gz": "gz",
    ".xz": "xz",
    ".zst": "zst",
    ".bz2": "bz2",
    ".lzma": "lzma",
}


def sniff_compression(head: bytes) -> str | None:
    """Name the compression of a stream from its first bytes (``gz``, ``xz``, ``zst``, ``bz2``)."""
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return None


def compression_from_suffix(suffix: str) -> str | None:
    """Map a member-name suffix (``.xz``, ``.zst``, ``""``) to a compression name.

    Raises:
        KeyError: the suffix names a compression this module cannot read.
    """
    return _SUFFIXES[suffix]


def stream_size(stream: IO[bytes]) -> int:
    """Return the total size of a seekable stream, restoring its position."""
    pos = stream.tell()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(pos)
    return size


def read_exact(stream: IO[bytes], size: int) -> bytes:
    """Read up to ``size`` bytes, looping over short reads; fewer means end of stream."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_bounded(stream: IO[bytes], *, limit: int, what: str) -> bytes:
    """Read a whole (small) stream, refusing one larger than ``limit`` bytes.

    Raises:
        InvalidArtifact: the stream holds more than ``limit`` bytes.
    """
    data = read_exact(stream, limit + 1)
    if len(data) > limit:
        raise InvalidArtifact(
            f"{what} is larger than {limit} bytes",
            hint="metadata members this large are not produced by the format's own tools; "
            "rebuild the package",
        )
    return data


class SubStream(io.RawIOBase):
    """A read-only window ``[start, start + length)`` of a seekable stream.

    It seeks the underlying stream before every read, so several windows (and the caller)
    can share one file object as long as they are not read from different threads.
    """

    def __init__(self, base: IO[bytes], *, start: int, length: int) -> None:
        super().__init__()
        self._base = base
        self._start = start
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            new = offset
        elif whence == io.SEEK_CUR:
            new = self._pos + offset
        elif whence == io.SEEK_END:
            new = self._length + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if new < 0:
            raise ValueError("negative seek position")
        self._pos = new
        return new

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        want = min(len(buffer), self._length - self._pos)
        if want <= 0:
            return 0
        self._base.seek(self._start + self._pos)
        data = self._base.read(want)
        n = len(data)
        memoryview(buffer)[:n] = data
        self._pos += n
        return n


def decompressed(stream: IO[bytes], compression: str | None) -> IO[bytes]:
    """Wrap ``stream`` in a streaming decompressor (or return it unchanged for ``None``)."""
    if compression is None:
        return stream
    if compression == "gz":
        return cast(IO[bytes], gzip.GzipFile(fileobj=stream, mode="rb"))
    if compression in ("xz", "lzma"):
        return cast(IO[bytes], lzma.LZMAFile(stream, mode="rb"))
    if compression == "bz2":
        return cast(IO[bytes], bz2.BZ2File(stream, mode="rb"))
    if compression == "zst":
        # read_across_frames: zstd -T0 (pacman's default) writes several frames.
        reader = zstandard.ZstdDecompressor().stream_reader(
            stream, read_across_frames=True, closefd=False
        )
        return cast(IO[bytes], reader)
    raise ValueError(f"unsupported compression {compression!r}")


def open_tar(
    stream: IO[bytes], compression: str | None, *, seekable: bool = True
) -> tarfile.TarFile:
    """Open a tar for sequential reading without loading it.

    An uncompressed tar on a seekable stream is opened in random-access mode so member data
    is skipped by seeking (a multi-GiB ``docker save`` costs only its headers); anything else
    is read as a stream. Iterate it once, in order; ``extractfile`` works for the current
    member only.
    """
    if compression is None and seekable:
        return tarfile.open(fileobj=stream, mode="r:")
    return tarfile.open(fileobj=decompressed(stream, compression), mode="r|")
