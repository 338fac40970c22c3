"""In-process OpenPGP signing (packyard.integrations.openpgp) without gpg.

Secret key packets are built here from ``cryptography`` keys, byte by byte after RFC 4880
section 5.5.3, and every signature is checked independently of the module: the test parses the
packet, recomputes the v4 hash and verifies with the public key. That real gpgv accepts the
signatures is tests/functional/test_gpg_signer.py's job.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from hypothesis import given, settings
from hypothesis import strategies as st

from packyard.integrations import openpgp
from packyard.integrations.openpgp import UnsupportedKey

CREATED = 1_700_000_000
SIGNED_AT = 1_750_000_000
ED25519_OID = bytes.fromhex("2b06010401da470f01")


# --------------------------------------------------------------------------- key packets


def mpi(value: int) -> bytes:
    return value.bit_length().to_bytes(2, "big") + value.to_bytes(
        (value.bit_length() + 7) // 8, "big"
    )


def header(tag: int, length: int, *, new_format: bool) -> bytes:
    if new_format:
        if length < 192:
            return bytes([0xC0 | tag, length])
        if length < 8384:
            length -= 192
            return bytes([0xC0 | tag, (length >> 8) + 192, length & 0xFF])
        return bytes([0xC0 | tag, 255]) + length.to_bytes(4, "big")
    if length < 0x100:
        return bytes([0x80 | tag << 2, length])
    if length < 0x10000:
        return bytes([0x80 | tag << 2 | 1]) + length.to_bytes(2, "big")
    return bytes([0x80 | tag << 2 | 2]) + length.to_bytes(4, "big")


@dataclass(frozen=True)
class KeyPacket:
    public: bytes  # the public key body (version ... public MPIs)
    secret: bytes  # the secret MPIs

    @property
    def fingerprint(self) -> str:
        prefix = b"\x99" + len(self.public).to_bytes(2, "big")
        return hashlib.sha1(prefix + self.public).hexdigest().upper()

    def body(self, *, usage: int = 0, checksum: int | None = None) -> bytes:
        check = sum(self.secret) & 0xFFFF if checksum is None else checksum
        return self.public + bytes([usage]) + self.secret + check.to_bytes(2, "big")

    def packet(self, *, new_format: bool = False, tag: int = 5, **kwargs: int) -> bytes:
        body = self.body(**kwargs)
        return header(tag, len(body), new_format=new_format) + body


def rsa_packet(key: rsa.RSAPrivateKey, *, algorithm: int = 1) -> KeyPacket:
    numbers = key.private_numbers()
    p, q = sorted((numbers.p, numbers.q))  # OpenPGP wants p < q, u = p^-1 mod q
    public = (
        bytes([4])
        + CREATED.to_bytes(4, "big")
        + bytes([algorithm])
        + mpi(numbers.public_numbers.n)
        + mpi(numbers.public_numbers.e)
    )
    return KeyPacket(public, mpi(numbers.d) + mpi(p) + mpi(q) + mpi(pow(p, -1, q)))


def ed25519_packet(key: ed25519.Ed25519PrivateKey, *, oid: bytes = ED25519_OID) -> KeyPacket:
    point = b"\x40" + key.public_key().public_bytes_raw()
    public = (
        bytes([4, *CREATED.to_bytes(4, "big"), 22, len(oid)])
        + oid
        + mpi(int.from_bytes(point, "big"))
    )
    seed = key.private_bytes_raw()
    return KeyPacket(public, mpi(int.from_bytes(seed, "big")))


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def loaded(
    rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> dict[str, openpgp.SecretKey]:
    out = {}
    for name, packet in (("rsa", rsa_packet(rsa_key)), ("ed25519", ed25519_packet(ed_key))):
        out[name] = openpgp.parse_secret_key(packet.packet(), fingerprint=packet.fingerprint)
    return out


# --------------------------------------------------------------------------- checking signatures


@dataclass(frozen=True)
class Signature:
    sig_type: int
    algorithm: int
    hash_algorithm: int
    hashed: bytes  # version ... hashed subpackets: what the trailer counts
    hashed_subpackets: dict[int, bytes]
    unhashed_subpackets: dict[int, bytes]
    left16: bytes
    values: list[bytes]  # the MPIs' bytes
    value_bits: list[int]


def subpackets(area: bytes) -> dict[int, bytes]:
    out, offset = {}, 0
    while offset < len(area):
        length = area[offset]
        assert length < 192
        out[area[offset + 1]] = area[offset + 2 : offset + 1 + length]
        offset += 1 + length
    return out


def parse_signatures(packets: bytes) -> list[Signature]:
    out, offset = [], 0
    while offset < len(packets):
        ctb = packets[offset]
        assert ctb & 0xC0 == 0x80 and (ctb >> 2) & 0x0F == 2, "an old-format signature packet"
        size = 1 << (ctb & 3)
        length = int.from_bytes(packets[offset + 1 : offset + 1 + size], "big")
        body = packets[offset + 1 + size : offset + 1 + size + length]
        offset += 1 + size + length
        assert len(body) == length
        assert body[0] == 4
        hashed_len = int.from_bytes(body[4:6], "big")
        hashed_end = 6 + hashed_len
        unhashed_len = int.from_bytes(body[hashed_end : hashed_end + 2], "big")
        unhashed_end = hashed_end + 2 + unhashed_len
        rest = body[unhashed_end + 2 :]
        values, bits = [], []
        while rest:
            count = int.from_bytes(rest[:2], "big")
            value = rest[2 : 2 + (count + 7) // 8]
            assert int.from_bytes(value, "big").bit_length() == count, "MPI bit count"
            values.append(value)
            bits.append(count)
            rest = rest[2 + (count + 7) // 8 :]
        out.append(
            Signature(
                sig_type=body[1],
                algorithm=body[2],
                hash_algorithm=body[3],
                hashed=body[:hashed_end],
                hashed_subpackets=subpackets(body[6:hashed_end]),
                unhashed_subpackets=subpackets(body[hashed_end + 2 : unhashed_end]),
                left16=body[unhashed_end : unhashed_end + 2],
                values=values,
                value_bits=bits,
            )
        )
    return out


def check(signature: Signature, signed: bytes, key: openpgp.SecretKey) -> None:
    """Verify like an OpenPGP reader would, with the public half of ``key``."""
    assert signature.hash_algorithm == 10
    trailer = b"\x04\xff" + len(signature.hashed).to_bytes(4, "big")
    digest = hashlib.sha512(signed + signature.hashed + trailer).digest()
    assert signature.left16 == digest[:2]
    fingerprint = bytes.fromhex(key.fingerprint)
    assert signature.hashed_subpackets[33] == b"\x04" + fingerprint
    assert signature.unhashed_subpackets[16] == fingerprint[-8:]
    public = key.private.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        assert signature.algorithm == 1
        (value,) = signature.values
        public.verify(
            value.rjust(public.key_size // 8, b"\x00"),
            digest,
            padding.PKCS1v15(),
            utils.Prehashed(hashes.SHA512()),
        )
    else:
        assert signature.algorithm == 22
        r, s = signature.values
        public.verify(r.rjust(32, b"\x00") + s.rjust(32, b"\x00"), digest)


def dearmor(block: bytes, kind: str = "SIGNATURE") -> bytes:
    match = re.search(
        rf"-----BEGIN PGP {kind}-----\n\n(.*?)\n=(.{{4}})\n-----END PGP {kind}-----\n\Z".encode(),
        block,
        re.DOTALL,
    )
    assert match, block
    lines = match.group(1).split(b"\n")
    assert all(len(line) == 64 for line in lines[:-1]) and 0 < len(lines[-1]) <= 64
    packets = base64.b64decode(b"".join(lines), validate=True)
    assert base64.b64decode(match.group(2)) == openpgp.crc24(packets)
    return packets


# --------------------------------------------------------------------------- parsing keys


@pytest.mark.parametrize("new_format", [False, True])
@pytest.mark.parametrize("algorithm", [1, 3])
def test_parses_rsa_keys(rsa_key: rsa.RSAPrivateKey, new_format: bool, algorithm: int) -> None:
    packet = rsa_packet(rsa_key, algorithm=algorithm)
    # A transferable key goes on with a user id and more: only the first packet is read.
    data = packet.packet(new_format=new_format) + header(13, 3, new_format=False) + b"a@b"
    key = openpgp.parse_secret_key(data, fingerprint=packet.fingerprint.lower())
    assert key.fingerprint == packet.fingerprint
    assert key.key_id == bytes.fromhex(packet.fingerprint)[-8:]
    assert key.algorithm == algorithm
    assert key.created == CREATED
    assert isinstance(key.private, rsa.RSAPrivateKey)
    parsed, original = key.private.private_numbers(), rsa_key.private_numbers()
    assert parsed.public_numbers == original.public_numbers
    assert (parsed.d, {parsed.p, parsed.q}) == (original.d, {original.p, original.q})
    assert "private" not in repr(key)


@pytest.mark.parametrize("new_format", [False, True])
def test_parses_ed25519_keys(ed_key: ed25519.Ed25519PrivateKey, new_format: bool) -> None:
    packet = ed25519_packet(ed_key)
    key = openpgp.parse_secret_key(
        packet.packet(new_format=new_format), fingerprint=packet.fingerprint
    )
    assert key.algorithm == 22
    assert isinstance(key.private, ed25519.Ed25519PrivateKey)
    assert key.private.private_bytes_raw() == ed_key.private_bytes_raw()


def test_ed25519_secret_with_leading_zeros_is_padded() -> None:
    # An MPI drops leading zero bytes: a seed starting with 0x00 is stored in 31 bytes or less.
    seed = b"\x00\x00" + bytes(range(1, 31))
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    packet = ed25519_packet(key)
    assert len(packet.secret) == 2 + 30
    loaded = openpgp.parse_secret_key(packet.packet(), fingerprint=packet.fingerprint)
    assert isinstance(loaded.private, ed25519.Ed25519PrivateKey)
    assert loaded.private.private_bytes_raw() == seed


def replace_secret(packet: KeyPacket, secret: bytes) -> KeyPacket:
    return KeyPacket(packet.public, secret)


REFUSALS = [
    "empty",
    "armored",
    "public key packet",
    "wrong fingerprint",
    "protected",
    "stub",
    "bad checksum",
    "secret of another key",
    "ed25519 secret of another key",
    "dsa",
    "ecdsa",
    "version 5",
    "trailing data",
    "partial length",
]


@pytest.fixture(scope="module")
def refusals(
    rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> dict[str, tuple[bytes, str, str]]:
    """name -> (data, fingerprint, expected message) of inputs the parser must refuse."""
    good = rsa_packet(rsa_key)
    ed = ed25519_packet(ed_key)
    other = rsa_packet(rsa.generate_private_key(public_exponent=65537, key_size=1024))
    fpr = good.fingerprint
    dsa_like = KeyPacket(bytes([4, *CREATED.to_bytes(4, "big"), 17]) + mpi(7) * 4, mpi(3))
    nistp256 = bytes.fromhex("2a8648ce3d030107")
    ecdsa = KeyPacket(
        bytes([4, *CREATED.to_bytes(4, "big"), 19, len(nistp256)]) + nistp256 + mpi(4 << 512),
        mpi(5),
    )
    v5 = KeyPacket(b"\x05" + good.public[1:], good.secret)
    return {
        "empty": (b"", fpr, "truncated"),
        "armored": (b"-----BEGIN PGP PRIVATE KEY BLOCK-----", fpr, "not OpenPGP binary"),
        "public key packet": (good.packet(tag=6), fpr, "packet tag 6"),
        "wrong fingerprint": (good.packet(), ed.fingerprint, "expected"),
        "protected": (good.packet(usage=254), fpr, "protected"),
        "stub": (good.packet(usage=255), fpr, "protected"),
        "bad checksum": (good.packet(checksum=(sum(good.secret) + 1) & 0xFFFF), fpr, "checksum"),
        "secret of another key": (
            replace_secret(good, other.secret).packet(),
            fpr,
            "does not match",
        ),
        "ed25519 secret of another key": (
            replace_secret(ed, mpi(12345)).packet(),
            ed.fingerprint,
            "does not match",
        ),
        "dsa": (dsa_like.packet(), dsa_like.fingerprint, "algorithm 17"),
        "ecdsa": (ecdsa.packet(), ecdsa.fingerprint, "algorithm 19"),
        "version 5": (v5.packet(), v5.fingerprint, "version 5"),
        "trailing data": (
            header(5, len(good.body()) + 1, new_format=True) + good.body() + b"\x00",
            fpr,
            "trailing",
        ),
        "partial length": (b"\xc5\xe1" + good.body()[:2], fpr, "partial"),
    }


@pytest.mark.parametrize("name", REFUSALS)
def test_refuses_what_it_cannot_use(refusals: dict[str, tuple[bytes, str, str]], name: str) -> None:
    assert sorted(refusals) == sorted(REFUSALS)
    data, fingerprint, message = refusals[name]
    with pytest.raises(UnsupportedKey, match=message):
        openpgp.parse_secret_key(data, fingerprint=fingerprint)


def test_refuses_other_curves(ed_key: ed25519.Ed25519PrivateKey) -> None:
    curve25519 = bytes.fromhex("2b060104019755010501")  # the ECDH curve, not EdDSA's
    packet = ed25519_packet(ed_key, oid=curve25519)
    with pytest.raises(UnsupportedKey, match="other than Ed25519"):
        openpgp.parse_secret_key(packet.packet(), fingerprint=packet.fingerprint)


@pytest.mark.parametrize("which", ["rsa", "ed25519"])
def test_every_truncation_is_refused(
    rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey, which: str
) -> None:
    packet = rsa_packet(rsa_key) if which == "rsa" else ed25519_packet(ed_key)
    for new_format in (False, True):
        data = packet.packet(new_format=new_format)
        for end in range(len(data)):
            with pytest.raises(UnsupportedKey):
                openpgp.parse_secret_key(data[:end], fingerprint=packet.fingerprint)


@settings(max_examples=300, deadline=None)
@given(
    garbage=st.binary(max_size=600),
    position=st.integers(min_value=0, max_value=400),
    flip=st.integers(min_value=1, max_value=255),
)
def test_damaged_input_is_refused_cleanly(
    ed_key: ed25519.Ed25519PrivateKey, garbage: bytes, position: int, flip: int
) -> None:
    packet = ed25519_packet(ed_key)
    with pytest.raises(UnsupportedKey):
        openpgp.parse_secret_key(garbage, fingerprint=packet.fingerprint)
    data = bytearray(packet.packet())
    data[position % len(data)] ^= flip
    try:
        parsed = openpgp.parse_secret_key(bytes(data), fingerprint=packet.fingerprint)
    except UnsupportedKey:
        return
    # The one change that keeps the meaning: the first byte turned an old-format packet
    # header into the new format with the same tag (both encode a short length alike).
    assert position % len(data) == 0 and data[0] & 0xC0 == 0xC0
    raw = serialization.Encoding.Raw, serialization.PrivateFormat.Raw
    assert parsed.private.private_bytes(*raw, serialization.NoEncryption()) == (  # type: ignore[union-attr]
        ed_key.private_bytes(*raw, serialization.NoEncryption())
    )


# --------------------------------------------------------------------------- signatures


@pytest.mark.parametrize("which", ["rsa", "ed25519"])
@pytest.mark.parametrize("armored", [False, True])
def test_detached_signatures(
    loaded: dict[str, openpgp.SecretKey], which: str, armored: bool
) -> None:
    key = loaded[which]
    data = b"\x00binary\r\n data \xff" * 100
    out = openpgp.detached_signature(data, [key], armored=armored, created=SIGNED_AT)
    packets = dearmor(out) if armored else out
    (signature,) = parse_signatures(packets)
    assert signature.sig_type == 0x00
    assert signature.hashed_subpackets[2] == SIGNED_AT.to_bytes(4, "big")
    assert list(signature.hashed_subpackets) == [2, 33]
    assert list(signature.unhashed_subpackets) == [16]
    check(signature, data, key)


def test_several_keys_give_one_packet_each(loaded: dict[str, openpgp.SecretKey]) -> None:
    keys = [loaded["rsa"], loaded["ed25519"]]
    data = b"Release\n"
    signatures = parse_signatures(openpgp.detached_signature(data, keys, armored=False))
    assert [s.algorithm for s in signatures] == [1, 22]
    for signature, key in zip(signatures, keys, strict=True):
        check(signature, data, key)
    signed = openpgp.clearsign(data, keys)
    assert signed.count(b"-----BEGIN PGP SIGNATURE-----") == 1
    block = signed[signed.index(b"-----BEGIN PGP SIGNATURE-----") :]
    for signature, key in zip(parse_signatures(dearmor(block)), keys, strict=True):
        assert signature.sig_type == 0x01
        check(signature, b"Release", key)
    with pytest.raises(ValueError, match="no signing key"):
        openpgp.detached_signature(data, [], armored=False)


@pytest.mark.parametrize("which", ["rsa", "ed25519"])
def test_sha256_signatures(loaded: dict[str, openpgp.SecretKey], which: str) -> None:
    """rpm header signatures use SHA-256 (hash id 8), as rpmsign does."""
    key = loaded[which]
    data = b"\x8e\xad\xe8\x01 an rpm header" * 50
    packets = openpgp.signature_packets(
        data,
        [key],
        sig_type=openpgp.SIG_BINARY,
        created=SIGNED_AT,
        hash_algorithm=openpgp.HASH_SHA256,
    )
    (signature,) = parse_signatures(packets)
    assert signature.hash_algorithm == 8
    trailer = b"\x04\xff" + len(signature.hashed).to_bytes(4, "big")
    digest = hashlib.sha256(data + signature.hashed + trailer).digest()
    assert signature.left16 == digest[:2]
    public = key.private.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        (value,) = signature.values
        public.verify(
            value.rjust(public.key_size // 8, b"\x00"),
            digest,
            padding.PKCS1v15(),
            utils.Prehashed(hashes.SHA256()),
        )
    else:
        r, s = signature.values
        public.verify(r.rjust(32, b"\x00") + s.rjust(32, b"\x00"), digest)
    # The default stays SHA-512; other hashes are refused.
    (default,) = parse_signatures(openpgp.detached_signature(data, [key], armored=False))
    assert default.hash_algorithm == 10
    with pytest.raises(ValueError, match="hash algorithm 2 is not supported"):
        openpgp.signature_packets(data, [key], sig_type=openpgp.SIG_BINARY, hash_algorithm=2)


# (text given, text shown between the headers and the signature, canonical signed text)
CLEARSIGN_CASES = {
    "plain": (b"a: 1\nb: 2\n", b"a: 1\nb: 2\n", b"a: 1\r\nb: 2"),
    "no final newline": (b"a: 1\nb: 2", b"a: 1\nb: 2\n", b"a: 1\r\nb: 2"),
    "empty last line": (b"a\n\n", b"a\n\n", b"a\r\n"),
    "empty": (b"", b"\n", b""),
    "dashes": (
        b"-----BEGIN PGP SIGNATURE-----\n- x\n--\nmid-line -\n",
        b"- -----BEGIN PGP SIGNATURE-----\n- - x\n- --\nmid-line -\n",
        b"-----BEGIN PGP SIGNATURE-----\r\n- x\r\n--\r\nmid-line -",
    ),
    "from lines": (b"From here\nFromage\n", b"- From here\nFromage\n", b"From here\r\nFromage"),
    "trailing blanks": (b"a \t \nb\t\n  \n", b"a \t \nb\t\n  \n", b"a\r\nb\r\n"),
    "crlf": (b"a\r\nb \r\n\r\n", b"a\r\nb \r\n\r\n", b"a\r\nb\r\n"),
    "leading blanks kept": (b"  a\n\tb\n", b"  a\n\tb\n", b"  a\r\n\tb"),
}


@pytest.mark.parametrize("case", list(CLEARSIGN_CASES))
def test_cleartext_signatures(loaded: dict[str, openpgp.SecretKey], case: str) -> None:
    text, shown, canonical = CLEARSIGN_CASES[case]
    key = loaded["ed25519"]
    signed = openpgp.clearsign(text, [key], created=SIGNED_AT)
    head = b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
    assert signed.startswith(head + shown + b"-----BEGIN PGP SIGNATURE-----\n\n")
    block = signed[len(head + shown) :]
    (signature,) = parse_signatures(dearmor(block))
    assert signature.sig_type == 0x01
    check(signature, canonical, key)
    # Ed25519 is deterministic: the same canonical text gives the same signature.
    assert block == openpgp.armor(
        openpgp.signature_packets(canonical, [key], sig_type=openpgp.SIG_TEXT, created=SIGNED_AT)
    )


@pytest.mark.parametrize("which", ["rsa", "ed25519"])
def test_values_with_leading_zero_bytes_are_minimal_mpis(
    loaded: dict[str, openpgp.SecretKey], which: str
) -> None:
    """About one signature in 128 (Ed25519: R or S) or 256 (RSA) starts with a zero byte: the
    MPI must drop it and count the bits of what is left."""
    key = loaded[which]
    full = 2048 if which == "rsa" else 256
    found = 0
    for attempt in range(6000):
        data = b"attempt %d" % attempt
        (signature,) = parse_signatures(openpgp.detached_signature(data, [key], armored=False))
        if min(signature.value_bits) <= full - 8 - 1:
            check(signature, data, key)
            found += 1
            if found == 3:
                break
    assert found == 3


def test_armor_and_crc24() -> None:
    assert openpgp.crc24(b"") == (0xB704CE).to_bytes(3, "big")
    assert openpgp.crc24(b"123456789") == (0x21CF02).to_bytes(3, "big")  # CRC-24/OPENPGP check
    for size in (0, 1, 47, 48, 49, 1000):
        payload = bytes(range(256)) * 4
        block = openpgp.armor(payload[:size])
        if size:
            assert dearmor(block) == payload[:size]
    public = openpgp.armor(b"\x99\x00", kind="PUBLIC KEY BLOCK")
    assert public.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n")
