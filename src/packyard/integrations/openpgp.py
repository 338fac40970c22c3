"""OpenPGP v4 signatures made in process from an unprotected GnuPG secret key (RFC 4880, with
RFC 9580 for legacy EdDSA): the fast path of ``GpgSigner`` (``integrations/gpg``).

Pure: no subprocess, no files. ``parse_secret_key`` reads the primary key of what
``gpg --export-secret-keys <fingerprint>`` writes (binary) and ``detached_signature`` and
``clearsign`` make the same packets gpg makes: version 4, SHA-512 (SHA-256 on request, as rpm
headers are signed), hashed creation time and issuer fingerprint, unhashed issuer key id, so
gpgv (1.4 and 2.x), gpgme, apt, dnf, rpm and pacman read them as they read gpg's.

Only what Packyard's keys use is supported: an RSA (also "sign only") or Ed25519 (legacy EdDSA)
primary key without a passphrase (s2k usage 0). Anything else, including malformed input,
raises ``UnsupportedKey`` so the caller can let gpg sign instead. Messages never include key
material.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

__all__ = [
    "HASH_SHA256",
    "HASH_SHA512",
    "SIG_BINARY",
    "SIG_TEXT",
    "SecretKey",
    "UnsupportedKey",
    "armor",
    "clearsign",
    "crc24",
    "detached_signature",
    "parse_secret_key",
    "signature_packets",
]

SIG_BINARY = 0x00
SIG_TEXT = 0x01
# OpenPGP hash algorithm ids (RFC 4880 section 9.4).
HASH_SHA256 = 8
HASH_SHA512 = 10

_TAG_SECRET_KEY = 5
_TAG_SIGNATURE = 2
_ALGO_RSA = 1
_ALGO_RSA_SIGN_ONLY = 3
_ALGO_EDDSA = 22
# hashlib's name and cryptography's class for each supported hash id.
_FILE_CHUNK = 1024 * 1024
_HASHES: dict[int, tuple[str, type[hashes.SHA256 | hashes.SHA512]]] = {
    HASH_SHA256: ("sha256", hashes.SHA256),
    HASH_SHA512: ("sha512", hashes.SHA512),
}
_ED25519_OID = bytes.fromhex("2b06010401da470f01")  # 1.3.6.1.4.1.11591.15.1
_SUBPACKET_CREATION_TIME = 2
_SUBPACKET_ISSUER = 16
_SUBPACKET_ISSUER_FINGERPRINT = 33
_CHECK_DIGEST = hashlib.sha512(b"packyard key check").digest()

# Trailing blanks are not part of a signed text line (gpg also drops a stray CR there).
_TRAILING_BLANKS = re.compile(rb"[ \t\r]+$", re.MULTILINE)
# gpg dash-escapes "From " lines too (mail transports mangle them); readers accept any "- ".
_NEEDS_ESCAPE = re.compile(rb"^(?=-|From )", re.MULTILINE)


class UnsupportedKey(Exception):
    """The secret key cannot be used in process (protected, another algorithm, malformed)."""


@dataclass(frozen=True)
class SecretKey:
    """An unprotected v4 primary key ready to sign."""

    fingerprint: str  # 40 upper-case hex digits
    algorithm: int  # OpenPGP public-key algorithm id: 1, 3 or 22
    created: int
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = field(repr=False)

    @property
    def key_id(self) -> bytes:
        return bytes.fromhex(self.fingerprint)[-8:]


# ---------------------------------------------------------------------- secret keys


def parse_secret_key(data: bytes, *, fingerprint: str) -> SecretKey:
    """The primary key of a binary transferable secret key, checked against ``fingerprint``
    (its v4 fingerprint must match and its secret part must match its public part)."""
    expected = fingerprint.replace(" ", "").upper()
    tag, body, _ = _read_packet(memoryview(data), 0)
    if tag != _TAG_SECRET_KEY:
        raise UnsupportedKey(f"the input starts with packet tag {tag}, not a secret key")
    reader = _Reader(body)
    version = reader.byte()
    if version != 4:
        raise UnsupportedKey(f"version {version} secret keys are not supported")
    created = int.from_bytes(reader.take(4), "big")
    algorithm = reader.byte()
    if algorithm in (_ALGO_RSA, _ALGO_RSA_SIGN_ONLY):
        n, e = reader.mpi(), reader.mpi()
    elif algorithm == _ALGO_EDDSA:
        oid = reader.take(reader.byte())
        if oid != _ED25519_OID:
            raise UnsupportedKey("EdDSA keys on curves other than Ed25519 are not supported")
        q = reader.mpi_bytes()
        if len(q) != 33 or q[0] != 0x40:
            raise UnsupportedKey("the Ed25519 public key is not in native (0x40) form")
    else:
        raise UnsupportedKey(f"public-key algorithm {algorithm} is not supported")
    public_body = bytes(body[: reader.offset])
    actual = hashlib.sha1(  # noqa: S324 - the v4 fingerprint is defined as SHA-1
        b"\x99" + len(public_body).to_bytes(2, "big") + public_body
    ).hexdigest()
    if actual.upper() != expected:
        raise UnsupportedKey(f"the key's fingerprint is {actual.upper()}, expected {expected}")
    usage = reader.byte()
    if usage != 0:
        raise UnsupportedKey("the secret key is protected (or a stub), not plain")
    secret_start = reader.offset
    if algorithm == _ALGO_EDDSA:
        scalar = reader.mpi_bytes()
        checked = reader.offset
        private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = _ed25519_key(scalar, q[1:])
    else:
        d, p, q_, u = reader.mpi(), reader.mpi(), reader.mpi(), reader.mpi()
        checked = reader.offset
        private = _rsa_key(n=n, e=e, d=d, p=p, q=q_, u=u)
    checksum = int.from_bytes(reader.take(2), "big")
    if sum(body[secret_start:checked]) & 0xFFFF != checksum:
        raise UnsupportedKey("the secret key's checksum does not match")
    if reader.offset != len(body):
        raise UnsupportedKey("the secret key packet has trailing data")
    return SecretKey(fingerprint=expected, algorithm=algorithm, created=created, private=private)


def _rsa_key(*, n: int, e: int, d: int, p: int, q: int, u: int) -> rsa.RSAPrivateKey:
    if (
        min(p, q) < 3
        or p * q != n
        or (p * u) % q != 1
        or (e * d) % (p - 1) != 1
        or (e * d) % (q - 1) != 1
    ):
        raise UnsupportedKey("the RSA secret key does not match its public key")
    # OpenPGP's u is p^-1 mod q; cryptography's iqmp is q^-1 mod p.
    numbers = rsa.RSAPrivateNumbers(
        p=p,
        q=q,
        d=d,
        dmp1=rsa.rsa_crt_dmp1(d, p),
        dmq1=rsa.rsa_crt_dmq1(d, q),
        iqmp=rsa.rsa_crt_iqmp(p, q),
        public_numbers=rsa.RSAPublicNumbers(e=e, n=n),
    )
    # OpenSSL's own check tests p and q for primality (about 250 ms for RSA 4096); the checks
    # above and the test signature below are what matters for a key gpg already holds.
    try:
        key = numbers.private_key(unsafe_skip_rsa_key_validation=True)
    except ValueError as exc:
        raise UnsupportedKey("the RSA secret key is inconsistent") from exc
    check = key.sign(_CHECK_DIGEST, padding.PKCS1v15(), utils.Prehashed(hashes.SHA512()))
    try:
        rsa.RSAPublicNumbers(e=e, n=n).public_key().verify(
            check, _CHECK_DIGEST, padding.PKCS1v15(), utils.Prehashed(hashes.SHA512())
        )
    except InvalidSignature as exc:
        raise UnsupportedKey("the RSA secret key does not match its public key") from exc
    return key


def _ed25519_key(scalar: bytes, public: bytes) -> ed25519.Ed25519PrivateKey:
    if len(scalar) > 32:
        raise UnsupportedKey("the Ed25519 secret key is longer than 32 bytes")
    key = ed25519.Ed25519PrivateKey.from_private_bytes(scalar.rjust(32, b"\x00"))
    derived = key.public_key().public_bytes_raw()
    if derived != public:
        raise UnsupportedKey("the Ed25519 secret key does not match its public key")
    return key


def _read_packet(data: memoryview, offset: int) -> tuple[int, memoryview, int]:
    """(tag, body, next offset) of the packet at ``offset``; old and new header formats."""
    reader = _Reader(data, offset)
    ctb = reader.byte()
    if not ctb & 0x80:
        raise UnsupportedKey("the input is not OpenPGP binary data")
    if ctb & 0x40:
        tag = ctb & 0x3F
        first = reader.byte()
        if first < 192:
            length = first
        elif first < 224:
            length = ((first - 192) << 8) + reader.byte() + 192
        elif first == 255:
            length = int.from_bytes(reader.take(4), "big")
        else:
            raise UnsupportedKey("partial body lengths are not supported in key packets")
    else:
        tag = (ctb >> 2) & 0x0F
        length_type = ctb & 0x03  # 3: indeterminate, up to the end of the input
        size = 1 << length_type
        length = (
            len(data) - reader.offset
            if length_type == 3
            else int.from_bytes(reader.take(size), "big")
        )
    body = reader.take(length)
    return tag, body, reader.offset


class _Reader:
    def __init__(self, data: memoryview, offset: int = 0) -> None:
        self.data = data
        self.offset = offset

    def take(self, count: int) -> memoryview:
        end = self.offset + count
        if end > len(self.data):
            raise UnsupportedKey("the key data is truncated")
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def mpi_bytes(self) -> bytes:
        bits = int.from_bytes(self.take(2), "big")
        return bytes(self.take((bits + 7) // 8))

    def mpi(self) -> int:
        return int.from_bytes(self.mpi_bytes(), "big")


# ---------------------------------------------------------------------- signatures


def signature_packets(
    data: bytes | Path,
    keys: Sequence[SecretKey],
    *,
    sig_type: int,
    created: int | None = None,
    hash_algorithm: int = HASH_SHA512,
) -> bytes:
    """One v4 signature packet per key over ``data``, which is hashed once as given (the
    caller canonicalises text for ``SIG_TEXT``) with ``hash_algorithm`` (``HASH_SHA256`` or
    ``HASH_SHA512``). A path is hashed as the file's bytes, read in chunks (a package of
    gigabytes is never held in memory)."""
    if not keys:
        raise ValueError("no signing key given")
    if hash_algorithm not in _HASHES:
        raise ValueError(f"hash algorithm {hash_algorithm} is not supported")
    hash_name, prehashed = _HASHES[hash_algorithm]
    when = int(time.time()) if created is None else created
    content = hashlib.new(hash_name)
    if isinstance(data, Path):
        with data.open("rb") as stream:
            while chunk := stream.read(_FILE_CHUNK):
                content.update(chunk)
    else:
        content.update(data)
    out = bytearray()
    for key in keys:
        hashed = _subpacket(_SUBPACKET_CREATION_TIME, when.to_bytes(4, "big")) + _subpacket(
            _SUBPACKET_ISSUER_FINGERPRINT, b"\x04" + bytes.fromhex(key.fingerprint)
        )
        head = (
            bytes([4, sig_type, key.algorithm, hash_algorithm])
            + len(hashed).to_bytes(2, "big")
            + hashed
        )
        digest_state = content.copy()
        digest_state.update(head)
        digest_state.update(b"\x04\xff" + len(head).to_bytes(4, "big"))
        digest = digest_state.digest()
        unhashed = _subpacket(_SUBPACKET_ISSUER, key.key_id)
        value = _sign(key, digest, algorithm=prehashed())
        body = head + len(unhashed).to_bytes(2, "big") + unhashed + digest[:2] + value
        out += _packet_header(_TAG_SIGNATURE, len(body)) + body
    return bytes(out)


def detached_signature(
    data: bytes | Path,
    keys: Sequence[SecretKey],
    *,
    armored: bool,
    created: int | None = None,
    hash_algorithm: int = HASH_SHA512,
) -> bytes:
    """A detached binary-document signature (type 0x00), one packet per key."""
    packets = signature_packets(
        data, keys, sig_type=SIG_BINARY, created=created, hash_algorithm=hash_algorithm
    )
    return armor(packets) if armored else packets


def clearsign(text: bytes, keys: Sequence[SecretKey], *, created: int | None = None) -> bytes:
    """A cleartext-signed copy of ``text`` (RFC 4880 section 7), as ``gpg --clearsign`` writes
    it: the text as given, dash-escaped, ended by a line break if it lacked one, then one
    armored block with a canonical-text signature (type 0x01) per key."""
    shown = text if text.endswith(b"\n") else text + b"\n"
    # The line break before the armor header is not part of the signed text.
    signed = _TRAILING_BLANKS.sub(b"", shown[:-1]).replace(b"\n", b"\r\n")
    packets = signature_packets(signed, keys, sig_type=SIG_TEXT, created=created)
    return (
        b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n"
        + _NEEDS_ESCAPE.sub(b"- ", shown)
        + armor(packets)
    )


def armor(packets: bytes, kind: str = "SIGNATURE") -> bytes:
    """ASCII armor (RFC 4880 section 6.2) as gpg writes it: no headers, 64-column lines."""
    encoded = base64.b64encode(packets)
    lines = [encoded[i : i + 64] for i in range(0, len(encoded), 64)]
    return b"".join(
        [
            f"-----BEGIN PGP {kind}-----\n\n".encode(),
            *(line + b"\n" for line in lines),
            b"=" + base64.b64encode(crc24(packets)) + b"\n",
            f"-----END PGP {kind}-----\n".encode(),
        ]
    )


def crc24(data: bytes) -> bytes:
    """The armor checksum (RFC 4880 section 6.1), big-endian, 3 bytes."""
    crc = 0xB704CE
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFF) ^ _CRC24_TABLE[(crc >> 16) ^ byte]
    return crc.to_bytes(3, "big")


def _crc24_table() -> tuple[int, ...]:
    table = []
    for index in range(256):
        crc = index << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
        table.append(crc & 0xFFFFFF)
    return tuple(table)


_CRC24_TABLE = _crc24_table()


def _sign(key: SecretKey, digest: bytes, *, algorithm: hashes.HashAlgorithm) -> bytes:
    if isinstance(key.private, rsa.RSAPrivateKey):
        value = key.private.sign(digest, padding.PKCS1v15(), utils.Prehashed(algorithm))
        return _mpi(value)
    # Legacy EdDSA signs the digest itself; R and S are MPIs, so leading zeros are dropped.
    value = key.private.sign(digest)
    return _mpi(value[:32]) + _mpi(value[32:])


def _mpi(value: bytes) -> bytes:
    stripped = value.lstrip(b"\x00")
    bits = int.from_bytes(stripped, "big").bit_length()
    return bits.to_bytes(2, "big") + stripped


def _subpacket(kind: int, payload: bytes) -> bytes:
    # Every subpacket here is shorter than 191 bytes: a one-octet length.
    return bytes([len(payload) + 1, kind]) + payload


def _packet_header(tag: int, length: int) -> bytes:
    # Old format, as gpg writes signatures: every OpenPGP reader understands it.
    if length < 0x100:
        return bytes([0x80 | tag << 2, length])
    if length < 0x10000:
        return bytes([0x80 | tag << 2 | 1]) + length.to_bytes(2, "big")
    return bytes([0x80 | tag << 2 | 2]) + length.to_bytes(4, "big")
