"""The hashing thread's digest of a document given in parts (services/assembly._sha256_of):
copied into one reused buffer and hashed in few calls, it must equal the digest of the joined
text whatever the sizes of the parts and of the buffer."""

from __future__ import annotations

import hashlib
import threading

import pytest

from packyard.services import assembly

CASES = [
    [],
    [b""],
    [b"abc"],
    [b"abc", b"x" * 25, b"defgh", b"", b"12345678"],  # a part larger than the buffer
    [b"0123456789"],  # exactly the buffer
    [b"01234", b"56789", b"a"],  # the buffer filled exactly, then one more byte
    [bytes(range(256)) * 3, b"tail"],
]


@pytest.mark.parametrize("parts", CASES)
def test_the_digest_is_that_of_the_joined_text(
    monkeypatch: pytest.MonkeyPatch, parts: list[bytes]
) -> None:
    monkeypatch.setattr(assembly, "_HASH_BUFFER", 10)
    monkeypatch.setattr(assembly, "_hash_buffer", threading.local())
    assert assembly._sha256_of(parts) == hashlib.sha256(b"".join(parts)).hexdigest()
    # The buffer is reused: a second document does not see the first one's bytes.
    assert assembly._sha256_of([b"z"]) == hashlib.sha256(b"z").hexdigest()


def test_another_thread_hashes_with_a_buffer_of_its_own() -> None:
    parts = [b"a" * 1000, b"b" * 3000]
    digests: list[str] = []
    thread = threading.Thread(
        target=lambda: digests.extend(assembly._sha256_of(parts) for _ in range(2))
    )
    thread.start()
    thread.join()
    assert digests == [hashlib.sha256(b"".join(parts)).hexdigest()] * 2
