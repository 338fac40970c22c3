"""Index documents of a channel built from cached, compressed blocks of entries.

A document (apt ``Packages``, rpm ``primary.xml``, a manifest's pool map) is a head, the
per-artifact parts of its entries in channel order, and a tail. ``BlockAssembler`` cuts the
entries into content-defined blocks (formats/blockpack.py) and keeps two kinds of records in
the publication store's block cache:

- **membership** ``m<sha256(kind, document, artifact ids and file digests)>`` -> the content
  key of the block:
  an incremental publish finds an unchanged block from its artifacts alone, without reading or
  rendering its entries;
- **content**, keyed by ``sha256(codec, document, text)``: ``z<key>`` holds the block's
  deflate and xz encodings (the same text is never compressed twice), ``t<key>`` its text
  (read by incremental publishes, which do not render unchanged blocks; a full rebuild has
  the text already and reads only ``z``).

Entries are immutable for a given entry kind (artifacts never change, and entry kinds carry a
version, bumped when the code that computes them changes), so a membership record stays true.
``rebuild=True`` (a full publish) ignores membership records: every entry is read from the
database and rendered again, and only the compression of identical text is reused. A
recompute of the entries themselves clears the cache first (``PublicationStore.cache_clear``).

The work of a publish is therefore: one query for the channel's members, the ids hashed into
block keys, the changed blocks rendered and compressed, and the whole document joined and
hashed (that last part is O(channel) but runs at memory speed).

Not handled here: what an entry's parts are (the builders in services/publish.py).
"""

from __future__ import annotations

import functools
import hashlib
import os
import struct
import threading
import zlib
from array import array
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from packyard.formats.blockpack import (
    CODEC_VERSION,
    CompressedBlock,
    boundaries,
    combined_crc32,
    compress_block,
    gzip_join,
    xz_join,
)
from packyard.services.ports import PublicationStore

__all__ = ["BlockAssembler", "Document", "Variant"]

_hashers: dict[int, ThreadPoolExecutor] = {}


def _hasher() -> ThreadPoolExecutor:
    """One hashing thread per process (a forked child must not inherit a pool whose thread
    did not survive the fork). One, not one per core: measured on two cores, a second
    hashing thread slowed the publishing thread more than it gained."""
    pid = os.getpid()
    pool = _hashers.get(pid)
    if pool is None:
        pool = _hashers[pid] = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pky-hash")
    return pool


#: Rendered parts of entries: artifact id -> a sequence of parts; ``BlockAssembler.layout``
#: names the index of each document's part (a tuple per entry, not a dict: 10,000 per publish).
Loader = Callable[[Sequence[int]], dict[int, Sequence[bytes]]]


@dataclass(frozen=True, kw_only=True)
class Variant:
    """One published file of a document (plain, .gz or .xz) with its sha256 (which may still
    be computed on the hashing thread: ``sha256`` waits for it)."""

    data: bytes
    digest: str | Future[str]

    @property
    def sha256(self) -> str:
        return self.digest if isinstance(self.digest, str) else self.digest.result()

    @classmethod
    def of(cls, data: bytes) -> Variant:
        return cls(data=data, digest=hashlib.sha256(data).hexdigest())


@dataclass(frozen=True, kw_only=True)
class Document:
    #: The plain text; ``data`` is empty when the document was made with ``join=False``.
    raw: Variant
    #: Length of the plain text.
    size: int
    gz: Variant | None = None
    xz: Variant | None = None
    blocks: int = 0
    rebuilt_blocks: int = 0
    #: The plain text in parts, for a document made with ``compress=False, join=False``.
    parts: Sequence[bytes] = ()

    def variants(self) -> dict[str, Variant]:
        """By file suffix: ``""``, ``.gz``, ``.xz`` (those that were made)."""
        out = {"": self.raw}
        if self.gz is not None:
            out[".gz"] = self.gz
        if self.xz is not None:
            out[".xz"] = self.xz
        return out


@dataclass
class _Block:
    ids: list[int]
    membership: str
    content: str | None = None
    text: bytes | None = None
    packed: CompressedBlock | None = None
    #: The content record exists already (only the membership pointer may be new).
    known: bool = False


@dataclass(kw_only=True)
class BlockAssembler:
    """Builds the documents of one publication; see the module docstring."""

    store: PublicationStore
    kind: str
    load: Loader
    #: document name -> index of its part in what ``load`` returns per entry.
    layout: Mapping[str, int]
    target: int = 64
    rebuild: bool = False
    #: artifact id -> the sha256 of its file: part of every membership key, so that an id
    #: given to another artifact never finds the old artifact's block.
    identity: Mapping[int, str] = field(default_factory=dict)
    _parts: dict[int, Sequence[bytes]] = field(default_factory=dict)
    #: Blocks whose entries had to be rendered, over every document (for the log).
    rendered_blocks: int = 0
    _cuts: list[tuple[list[int], list[tuple[list[int], bytes]]]] = field(default_factory=list)

    def document(
        self,
        name: str,
        ids: Sequence[int],
        *,
        head: bytes = b"",
        tail: bytes = b"",
        compress: bool = True,
        xz: bool = True,
        join: bool = True,
    ) -> Document:
        """The document ``name`` of the entries ``ids`` (in this order) between head and tail,
        plain, gzip'd and (with ``xz``) xz'd; ``compress=False`` makes the plain text only,
        without a digest (it is part of another file). ``join=False``: the plain text is not
        joined: either it is not published, only its digest and size are needed (rpm's
        open-checksum, hashed on the hashing thread), or (with ``compress=False``) the caller
        joins ``parts`` into its own file."""
        blocks = [
            _Block(ids=block_ids, membership=self._membership_key(name, digest))
            for block_ids, digest in self._cut(ids)
        ]
        if not self.rebuild:
            self._restore(blocks, compress=compress, xz=xz)
        todo = [b for b in blocks if b.text is None]
        self._render(name, todo, compress=compress)
        self.rendered_blocks += len(todo)
        texts = [head, *(b.text or b"" for b in blocks), tail]
        # The whole text's sha256 on another core (hashlib releases the GIL), left running
        # while this thread compresses and stores the new blocks, joins the compressed files
        # and the caller goes on.
        raw_digest = _hasher().submit(_sha256_of, texts) if compress else None
        missing = [
            b for b in blocks if compress and (b.packed is None or (xz and not b.packed.has_xz))
        ]
        self._compress(missing, xz=xz)
        for block in missing:
            block.known = False
        for block in {id(b): b for b in [*todo, *missing]}.values():
            self._remember(block, pointer=not self.rebuild)
        if raw_digest is None:
            # Parts of other files (a manifest's pool map, a JSON index's items): no digest;
            # with ``join=False`` the caller joins the parts into its file.
            raw = b"".join(texts) if join else b""
            return Document(
                raw=Variant(data=raw, digest=""),
                size=sum(map(len, texts)),
                blocks=len(blocks),
                rebuilt_blocks=len(todo),
                parts=() if join else texts,
            )
        ends = [
            _small_block(head, xz=xz),
            *(b.packed for b in blocks if b.packed),
            _small_block(tail, xz=xz),
        ]
        size = sum(e.size for e in ends)
        gz = Variant.of(gzip_join(ends, crc32=_crc32_of(ends, texts), size=size))
        return Document(
            raw=Variant(data=b"".join(texts) if join else b"", digest=raw_digest),
            size=size,
            gz=gz,
            xz=Variant.of(xz_join(ends)) if xz else None,
            blocks=len(blocks),
            rebuilt_blocks=len(todo),
        )

    # ------------------------------------------------------------------ internals

    def _cut(self, ids: Sequence[int]) -> list[tuple[list[int], bytes]]:
        """The blocks of ``ids`` with a digest of each block's ids (none for a rebuild, which
        neither reads nor writes membership records). Builders pass the same ids for several
        documents (rpm's three, apt's pool): cut once."""
        for cut_ids, cut in self._cuts:
            if cut_ids == ids:
                return cut
        blocks = [
            (list(ids[start:end]), b"" if self.rebuild else self._ids_digest(ids[start:end]))
            for start, end in boundaries(ids, target=self.target)
        ]
        # A few: apt cuts each architecture's ids, then the whole channel's for the pool.
        self._cuts = [(list(ids), blocks), *self._cuts[:3]]
        return blocks

    def _ids_digest(self, ids: Sequence[int]) -> bytes:
        digest = hashlib.sha256(array("q", ids).tobytes())
        identity = self.identity
        try:
            digest.update("".join(map(identity.__getitem__, ids)).encode())
        except KeyError:  # an id without a known file digest (only in unit tests)
            digest.update("".join([identity.get(i, "") for i in ids]).encode())
        return digest.digest()

    def _membership_key(self, name: str, ids_digest: bytes) -> str:
        if self.rebuild:
            return ""
        h = hashlib.sha256(f"{self.kind}\0{name}\0{CODEC_VERSION}\0".encode())
        h.update(ids_digest)
        return "m" + h.hexdigest()

    def _content_key(self, name: str, text: bytes) -> str:
        h = hashlib.sha256(f"{name}\0{CODEC_VERSION}\0".encode())
        h.update(text)
        return h.hexdigest()

    def _restore(self, blocks: list[_Block], *, compress: bool, xz: bool) -> None:
        """Fill in the blocks whose membership, text (and compressed record) are cached."""
        get = self.store.cache_get_many
        pointers = get([b.membership for b in blocks])
        found = [
            (block, pointer.decode("ascii", "replace"))
            for block, pointer in zip(blocks, pointers, strict=True)
            if pointer is not None
        ]
        texts = get(["t" + content for _b, content in found])
        records = get(["z" + content for _b, content in found]) if compress else []
        for i, ((block, content), text) in enumerate(zip(found, texts, strict=True)):
            if text is None:
                continue
            packed = None
            if compress:
                packed = _unpacked(records[i])
                if packed is None or (xz and not packed.has_xz):
                    continue
            block.content, block.text, block.packed, block.known = content, text, packed, True

    def _packed(self, content: str) -> CompressedBlock | None:
        return _unpacked(self.store.cache_get("z" + content))

    def _render(self, name: str, blocks: list[_Block], *, compress: bool) -> None:
        if not blocks:
            return
        need = [i for b in blocks for i in b.ids if i not in self._parts]
        if need:
            self._parts.update(self.load(need))
        index = self.layout[name]
        for block in blocks:
            block.text = b"".join([self._parts[i][index] for i in block.ids])
            block.content = self._content_key(name, block.text)
            if compress:
                block.packed = self._packed(block.content)
                block.known = block.packed is not None

    def _compress(self, blocks: list[_Block], *, xz: bool) -> None:
        if len(blocks) > 1 and (os.cpu_count() or 1) > 1:
            # zlib and liblzma release the GIL: blocks compress on every core.
            with ThreadPoolExecutor(max_workers=os.cpu_count()) as pool:
                packed = list(pool.map(lambda b: compress_block(b.text or b"", xz=xz), blocks))
        else:
            packed = [compress_block(b.text or b"", xz=xz) for b in blocks]
        for block, result in zip(blocks, packed, strict=True):
            block.packed = result

    def _remember(self, block: _Block, *, pointer: bool) -> None:
        """Store what the cache lacks of a block: its compressed record (``z``, unless known)
        and, with ``pointer``, its text (``t``) and membership pointer (``m``).

        A rebuild leaves membership records alone: entries are immutable, so an existing
        pointer is still right, and a missing one is made by the next incremental publish.
        """
        assert block.text is not None and block.content is not None
        if block.packed is not None and not block.known:
            self.store.cache_put("z" + block.content, block.packed.pack())
        if not pointer:
            return
        self.store.cache_put("t" + block.content, block.text)
        self.store.cache_put(block.membership, block.content.encode("ascii"))


def _unpacked(record: bytes | None) -> CompressedBlock | None:
    if record is None:
        return None
    try:
        return CompressedBlock.unpack(record)
    except (ValueError, struct.error):
        return None


def _sha256_of(parts: Sequence[bytes]) -> str:
    """The sha256 of ``parts`` joined, on the hashing thread.

    The parts are copied into one buffer and hashed with one call: ``update`` releases the
    GIL while it hashes, but taking it back waits for the publishing thread (up to the
    interpreter's switch interval) once per call - measured, 160 updates of a 12 MB document
    took twice as long as the copy and one update while the other thread ran Python.
    """
    buffer = getattr(_hash_buffer, "data", None)
    if buffer is None:
        buffer = _hash_buffer.data = bytearray(_HASH_BUFFER)
    view = memoryview(buffer)
    digest = hashlib.sha256()
    filled = 0
    for part in parts:
        if filled + len(part) > _HASH_BUFFER:
            digest.update(view[:filled])
            filled = 0
            if len(part) > _HASH_BUFFER:
                digest.update(part)
                continue
        view[filled : filled + len(part)] = part
        filled += len(part)
    digest.update(view[:filled])
    return digest.hexdigest()


#: The hashing thread's buffer (allocated once: fresh pages fault in slowly on some VMs).
_hash_buffer = threading.local()
_HASH_BUFFER = 16 * 1024 * 1024


def _crc32_of(blocks: Sequence[CompressedBlock], parts: Sequence[bytes]) -> int:
    """The CRC-32 of the joined text: combined from the blocks' own, or over the text."""
    try:
        return combined_crc32(blocks)
    except LookupError:
        crc = 0
        for part in parts:
            crc = zlib.crc32(part, crc)
        return crc


@functools.lru_cache(maxsize=256)
def _small_block(text: bytes, *, xz: bool) -> CompressedBlock:
    """Heads and tails of documents: a few distinct short texts, compressed once per process
    (an xz encoder costs milliseconds to set up, whatever the input)."""
    return compress_block(text, xz=xz)
