"""Index files joined from separately compressed blocks must be ordinary gzip/xz files that
gzip, xz and apt read whole (apt reads only the first stream of a multi-stream .xz)."""

from __future__ import annotations

import gzip
import lzma
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest

from packyard.formats.blockpack import (
    CompressedBlock,
    boundaries,
    combined_crc32,
    compress_block,
    gzip_join,
    xz_join,
)

APT_HELPER = "/usr/lib/apt/apt-helper"


def _stanzas(n: int) -> list[bytes]:
    return [f"Package: p{i}\nVersion: 1.{i}\nDescription: d {i}\n\n".encode() for i in range(n)]


def _joined(parts: list[bytes], *, target: int) -> tuple[bytes, bytes, bytes]:
    blocks = [
        compress_block(b"".join(parts[s:e]))
        for s, e in boundaries(range(len(parts)), target=target)
    ]
    head, tail = compress_block(b""), compress_block(b"")
    text = b"".join(parts)
    ends = [head, *blocks, tail]
    # The trailer's CRC-32 combined from the blocks', as publishing does (gzip checks it).
    return text, gzip_join(ends, crc32=combined_crc32(ends), size=len(text)), xz_join(ends)


@pytest.mark.parametrize("count", [0, 1, 7, 300])
def test_joined_files_decompress_to_the_whole_text(count: int, tmp_path: Path) -> None:
    text, gz, xz = _joined(_stanzas(count), target=8)
    assert gzip.decompress(gz) == text
    assert lzma.decompress(xz) == text
    (tmp_path / "P.gz").write_bytes(gz)
    (tmp_path / "P.xz").write_bytes(xz)
    assert subprocess.run(["gzip", "-t", str(tmp_path / "P.gz")]).returncode == 0
    assert subprocess.run(["xz", "-t", str(tmp_path / "P.xz")]).returncode == 0


def test_apt_reads_every_block_of_a_joined_index(tmp_path: Path) -> None:
    assert shutil.which(APT_HELPER) or Path(APT_HELPER).exists(), "apt is not installed"
    text, gz, xz = _joined(_stanzas(200), target=4)
    for name, data in (("Packages.gz", gz), ("Packages.xz", xz)):
        (tmp_path / name).write_bytes(data)
        out = subprocess.run(
            [APT_HELPER, "cat-file", str(tmp_path / name)], capture_output=True, check=True
        ).stdout
        assert out == text, name


def test_concatenated_xz_streams_are_what_apt_would_truncate(tmp_path: Path) -> None:
    # Why xz_join builds one stream: two concatenated streams lose the second for apt.
    a, b = b"Package: a\n\n", b"Package: b\n\n"
    (tmp_path / "P.xz").write_bytes(lzma.compress(a) + lzma.compress(b))
    out = subprocess.run(
        [APT_HELPER, "cat-file", str(tmp_path / "P.xz")], capture_output=True
    ).stdout
    assert out == a


def test_gzip_without_xz_and_the_xz_flag() -> None:
    block = compress_block(b"abc" * 100, xz=False)
    assert not block.has_xz and block.xz == b""
    assert compress_block(b"").has_xz  # an empty block needs no xz bytes


def test_boundaries_depend_on_the_entries_not_their_positions() -> None:
    keys = list(range(1, 2001))
    before = boundaries(keys, target=16)
    assert sum(e - s for s, e in before) == len(keys)
    assert 50 < len(before) < 250  # about 2000/16 blocks
    inserted = [*keys[:1000], 10_000_001, *keys[1000:]]
    after = boundaries(inserted, target=16)
    old = {tuple(keys[s:e]) for s, e in before}
    new = {tuple(inserted[s:e]) for s, e in after}
    assert len(new - old) <= 2  # only the block that took the new key changed


def test_remembered_cut_verdicts_give_the_same_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    import packyard.formats.blockpack as blockpack

    def fresh(keys: list[int], target: int) -> list[tuple[int, int]]:
        """The cut computed from the hash alone, without the memo."""
        cuts = [i + 1 for i, key in enumerate(keys) if blockpack._is_cut(key, target)]
        if not cuts or cuts[-1] != len(keys):
            cuts.append(len(keys))
        return [(s, e) for s, e in zip([0, *cuts[:-1]], cuts, strict=True) if e > s]

    monkeypatch.setattr(blockpack, "_cut_memo", {})
    monkeypatch.setattr(blockpack, "_CUT_MEMO_LIMIT", 3000)
    keys = list(range(5000, 7000))
    assert boundaries(keys, target=16) == fresh(keys, 16)  # memo empty
    assert boundaries(keys, target=16) == fresh(keys, 16)  # every verdict remembered
    more = [*keys, *range(9000, 9500)]  # new keys, still under the limit
    assert boundaries(more, target=16) == fresh(more, 16)
    assert len(blockpack._cut_memo[16]) == 2500
    other = list(range(20_000, 21_500))  # past the limit: the memo starts again
    assert boundaries(other, target=16) == fresh(other, 16)
    assert set(blockpack._cut_memo[16]) == set(other)
    assert boundaries(keys, target=8) == fresh(keys, 8)  # one memo per target


def test_one_entry_per_block_when_the_target_is_one() -> None:
    assert boundaries([5, 6, 7], target=1) == [(0, 1), (1, 2), (2, 3)]
    assert boundaries([], target=64) == []


def test_packed_blocks_round_trip_and_refuse_truncation() -> None:
    block = compress_block(b"hello " * 50)
    assert CompressedBlock.unpack(block.pack()) == block
    with pytest.raises(ValueError, match="truncated"):
        CompressedBlock.unpack(block.pack()[:-3])


def test_the_crc_of_joined_blocks_is_combined_from_theirs() -> None:
    parts = [b"", b"a", b"hello " * 5000, bytes(range(256)) * 40, b"z"]
    blocks = [compress_block(p, xz=False) for p in parts]
    assert [b.crc32 for b in blocks] == [zlib.crc32(p) for p in parts]
    assert combined_crc32(blocks) == zlib.crc32(b"".join(parts))
    assert combined_crc32([]) == 0
