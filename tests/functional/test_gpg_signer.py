"""GpgSigner against the real tools: gpg, gpgv, apt-get (signed-by), rpmsign and rpmkeys.

Keys are generated once for the module (RSA 4096 takes about a second each): ``old`` and
``new`` in one home, as during a key rotation; a second home holds an imported Ed25519 key.
``clearsign``, ``detach_sign`` and ``sign_rpm`` sign in process after one export per key: the
tests check that gpgv, gpg, apt and rpmkeys accept those signatures, that the cleartext framing
is gpg's byte for byte, that an rpm is laid out as rpmsign lays it out, that no gpg or rpmsign
process runs per signature, and that keys the fast path cannot use still sign through gpg and
rpmsign. No database is involved. A missing tool fails the test with the package to
install; nothing here skips.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.pkgbuild import build_rpm

from packyard.domain.errors import ConfigError, InvalidArtifact, InvalidRequest, NotFound
from packyard.formats import rpm_sign
from packyard.integrations import gpg as gpg_module
from packyard.integrations.gpg import (
    GpgSigner,
    verify_clearsigned_with_keyring,
    verify_with_keyring,
)
from packyard.services.ports import Signer, SigningKey

TOOLS = {
    "gpg": "gnupg",
    "gpgv": "gpgv",
    "gpgconf": "gnupg",
    "apt-get": "apt",
    "rpmsign": "rpm",
    "rpmkeys": "rpm",
    "rpmbuild": "rpm",
    "pgrep": "procps",
}

RELEASE = (
    "Origin: Packyard\nLabel: Packyard\nSuite: stable\nCodename: stable\n"
    "Architectures: amd64\nComponents: main\nDescription: a Release-like text\n"
    + "".join(f" {i:064x} {i * 37} main/binary-amd64/Packages{i}\n" for i in range(120))
).encode()


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install {TOOLS[name]}", pytrace=False)
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool(args[0]), *args[1:]], capture_output=True, text=True, timeout=120)


@dataclass(frozen=True)
class Keys:
    signer: GpgSigner
    old: SigningKey
    new: SigningKey
    home: Path
    fake_home: Path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keys]:
    for name in TOOLS:
        tool(name)
    root = tmp_path_factory.mktemp("gpg")
    fake_home = root / "user-home"
    fake_home.mkdir()
    # gpg falls back to $HOME/.gnupg: point HOME somewhere we can check stays untouched.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(fake_home))
        mp.delenv("GNUPGHOME", raising=False)
        signer = GpgSigner(root / "data" / "gnupg")
        try:
            old = signer.ensure_key()
            new = signer.generate_key(name="Packyard rotation key", email="next@packyard.test")
            yield Keys(signer=signer, old=old, new=new, home=signer.home, fake_home=fake_home)
        finally:
            signer.close()
    assert not (fake_home / ".gnupg").exists()


def keyring_file(tmp: Path, data: bytes, name: str = "keyring.gpg") -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def gpgv(tmp: Path, keyring: Path, *files: Path) -> subprocess.CompletedProcess[str]:
    home = tmp / "gpgv-home"
    home.mkdir(mode=0o700, exist_ok=True)
    return run(
        "gpgv",
        "--homedir",
        str(home),
        "--status-fd",
        "1",
        "--keyring",
        str(keyring),
        *map(str, files),
    )


def agents_for(home: Path) -> list[str]:
    done = run("pgrep", "-af", "--", str(home))
    return [line for line in done.stdout.splitlines() if "gpg-agent" in line]


def agents_gone(home: Path, *, timeout: float = 10.0) -> list[str]:
    """The gpg-agents still running below ``home`` once they had ``timeout`` seconds to exit
    (``gpgconf --kill`` only asks an agent to stop; it exits a moment later)."""
    deadline = time.monotonic() + timeout
    while (left := agents_for(home)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


# --------------------------------------------------------------------------- keys and home


def test_generates_rsa_keys_in_a_private_home(keys: Keys) -> None:
    port: Signer = keys.signer  # mypy checks GpgSigner against the port
    assert port is keys.signer
    assert keys.home.stat().st_mode & 0o777 == 0o700
    secret_files = list((keys.home / "private-keys-v1.d").iterdir())
    assert len(secret_files) == 2
    assert {f.stat().st_mode & 0o777 for f in secret_files} == {0o600}
    listed = keys.signer.keys()
    assert [k.fingerprint for k in listed] == [keys.old.fingerprint, keys.new.fingerprint]
    assert keys.old.algorithm == "rsa4096"
    assert keys.old.uid == "Packyard repository signing key <packyard@localhost>"
    assert keys.new.uid == "Packyard rotation key <next@packyard.test>"
    assert keys.old.expires is not None
    assert keys.old.expires - keys.old.created == timedelta(days=730)
    # The newest usable key is the active one; ensure_key does not make a third.
    assert keys.signer.ensure_key() == keys.new
    assert len(keys.signer.keys()) == 2


def test_public_key_exports(keys: Keys, tmp_path: Path) -> None:
    armored = keys.signer.public_key([keys.old.fingerprint])
    assert armored.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert b"PRIVATE" not in armored
    binary = keys.signer.public_keyring_binary()
    assert binary[0] & 0x80  # an OpenPGP packet, not armor
    shown = run(
        "gpg",
        "--homedir",
        str(tmp_path),
        "--batch",
        "--with-colons",
        "--show-keys",
        str(keyring_file(tmp_path, binary)),
    )
    fprs = [line.split(":")[9] for line in shown.stdout.splitlines() if line.startswith("fpr:")]
    assert fprs == [keys.old.fingerprint, keys.new.fingerprint]
    assert not [line for line in shown.stdout.splitlines() if line.startswith("sec")]


# --------------------------------------------------------------------------- signatures


def test_clearsign_verifies_with_gpgv_and_binary_keyring(keys: Keys, tmp_path: Path) -> None:
    signed = keys.signer.clearsign(RELEASE, keys=[keys.old.fingerprint])
    assert signed.startswith(b"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n")
    inrelease = tmp_path / "InRelease"
    inrelease.write_bytes(signed)
    keyring = keyring_file(tmp_path, keys.signer.public_keyring_binary([keys.old.fingerprint]))
    done = gpgv(tmp_path, keyring, inrelease)
    assert done.returncode == 0, done.stderr
    assert f"VALIDSIG {keys.old.fingerprint}" in done.stdout
    verified = verify_clearsigned_with_keyring(
        signed, public_keys=keys.signer.public_key([keys.old.fingerprint])
    )
    assert verified.fingerprints == [keys.old.fingerprint]
    assert verified.text == RELEASE


@pytest.mark.parametrize("armor", [False, True])
def test_detached_signatures_verify(keys: Keys, tmp_path: Path, armor: bool) -> None:
    signature = keys.signer.detach_sign(RELEASE, keys=[keys.new.fingerprint], armor=armor)
    assert signature.startswith(b"-----BEGIN PGP SIGNATURE-----") is armor
    data, sig = tmp_path / "Release", tmp_path / "Release.gpg"
    data.write_bytes(RELEASE)
    sig.write_bytes(signature)
    keyring = keyring_file(tmp_path, keys.signer.public_keyring_binary([keys.new.fingerprint]))
    done = gpgv(tmp_path, keyring, sig, data)
    assert done.returncode == 0, done.stderr
    assert keys.signer.verify_detached(RELEASE, signature) == [keys.new.fingerprint]
    public = keys.signer.public_key([keys.new.fingerprint])
    assert verify_with_keyring(RELEASE, signature, public_keys=public) == [keys.new.fingerprint]


def test_tampered_message_fails(keys: Keys, tmp_path: Path) -> None:
    signature = keys.signer.detach_sign(RELEASE, keys=[keys.old.fingerprint], armor=False)
    tampered = RELEASE.replace(b"Suite: stable", b"Suite: stabl3")
    data, sig = tmp_path / "Release", tmp_path / "Release.gpg"
    data.write_bytes(tampered)
    sig.write_bytes(signature)
    keyring = keyring_file(tmp_path, keys.signer.public_keyring_binary())
    done = gpgv(tmp_path, keyring, sig, data)
    assert done.returncode != 0
    assert "BADSIG" in done.stdout
    with pytest.raises(InvalidArtifact, match="does not match"):
        keys.signer.verify_detached(tampered, signature)
    # A clearsigned text edited inside the signed part fails the same way.
    signed = keys.signer.clearsign(RELEASE, keys=[keys.old.fingerprint])
    with pytest.raises(InvalidArtifact, match="does not match"):
        verify_clearsigned_with_keyring(
            signed.replace(b"Suite: stable", b"Suite: stabl3"),
            public_keys=keys.signer.public_key(),
        )


def test_signature_by_unknown_key_fails(keys: Keys) -> None:
    signature = keys.signer.detach_sign(RELEASE, keys=[keys.new.fingerprint], armor=True)
    only_old = keys.signer.public_key([keys.old.fingerprint])
    with pytest.raises(InvalidArtifact, match="no good signature"):
        verify_with_keyring(RELEASE, signature, public_keys=only_old)
    with pytest.raises(InvalidArtifact, match="no OpenPGP signature"):
        verify_with_keyring(RELEASE, b"not a signature", public_keys=only_old)


# --------------------------------------------------------------------------- rotation


def apt_update(tmp: Path, *, inrelease: bytes, keyring: bytes) -> subprocess.CompletedProcess[str]:
    """``apt-get update`` of a file:// repository whose only trusted key is ``keyring``."""
    root = tmp / f"apt-{hashlib.sha256(keyring).hexdigest()[:8]}"
    dist = root / "repo" / "dists" / "stable"
    (dist / "main" / "binary-amd64").mkdir(parents=True)
    (dist / "main" / "binary-amd64" / "Packages").write_bytes(b"")
    (dist / "InRelease").write_bytes(inrelease)
    for sub in ("state/lists/partial", "cache/archives/partial", "etc/parts", "etc/trusted.d"):
        (root / sub).mkdir(parents=True)
    (root / "state" / "status").write_bytes(b"")
    (root / "key.gpg").write_bytes(keyring)
    (root / "sources.list").write_text(
        f"deb [signed-by={root / 'key.gpg'}] file://{root / 'repo'} stable main\n"
    )
    options = {
        "Dir::Etc::SourceList": root / "sources.list",
        "Dir::Etc::SourceParts": root / "etc/parts",
        "Dir::Etc::Trusted": root / "etc/trusted.gpg",
        "Dir::Etc::TrustedParts": root / "etc/trusted.d",
        "Dir::State": root / "state",
        "Dir::State::status": root / "state/status",
        "Dir::Cache": root / "cache",
        "APT::Sandbox::User": "root",
        "Debug::NoLocking": "1",
        "Acquire::Languages": "none",
        "APT::Update::Error-Mode": "any",
    }
    args = [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]
    return run("apt-get", "update", *args)


def release_with_index() -> bytes:
    empty = hashlib.sha256(b"").hexdigest()
    return (
        "Origin: Packyard\nSuite: stable\nCodename: stable\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\n"
        "Architectures: amd64\nComponents: main\nSHA256:\n"
        f" {empty} 0 main/binary-amd64/Packages\n"
    ).encode()


def test_rotation_both_keyrings_verify(keys: Keys, tmp_path: Path) -> None:
    both = [keys.old.fingerprint, keys.new.fingerprint]
    text = release_with_index()
    signed = keys.signer.clearsign(text, keys=both)
    assert signed.count(b"-----BEGIN PGP SIGNATURE-----") == 1
    (tmp_path / "InRelease").write_bytes(signed)
    for key in (keys.old, keys.new):
        public = keys.signer.public_keyring_binary([key.fingerprint])
        done = gpgv(tmp_path, keyring_file(tmp_path, public), tmp_path / "InRelease")
        # gpgv exits 2 for the signature it has no key for, but reports the good one;
        # apt (below) reads the status lines exactly like this and accepts.
        assert f"VALIDSIG {key.fingerprint}" in done.stdout, done.stderr
        assert "BADSIG" not in done.stdout
        assert verify_clearsigned_with_keyring(signed, public_keys=public).fingerprints == [
            key.fingerprint
        ]
        updated = apt_update(tmp_path, inrelease=signed, keyring=public)
        assert updated.returncode == 0, updated.stdout + updated.stderr
        assert "W:" not in updated.stderr and "E:" not in updated.stderr, updated.stderr
    detached = keys.signer.detach_sign(text, keys=both, armor=False)
    assert keys.signer.verify_detached(text, detached) == both


def test_apt_refuses_a_repository_signed_by_another_key(keys: Keys, tmp_path: Path) -> None:
    signed = keys.signer.clearsign(release_with_index(), keys=[keys.new.fingerprint])
    only_old = keys.signer.public_keyring_binary([keys.old.fingerprint])
    updated = apt_update(tmp_path, inrelease=signed, keyring=only_old)
    assert updated.returncode != 0
    assert "NO_PUBKEY" in updated.stderr


# --------------------------------------------------------------------------- rpm


def test_sign_rpm_checks_with_our_key_only(keys: Keys, tmp_path: Path) -> None:
    rpm = build_rpm(tmp_path, name="signed-hello", version="1.0")
    keys.signer.sign_rpm(rpm, key=keys.old.fingerprint)

    without = tmp_path / "db-empty"
    without.mkdir()
    unchecked = run("rpmkeys", "--dbpath", str(without), "--checksig", "-v", str(rpm))
    assert unchecked.returncode != 0
    assert "NOKEY" in unchecked.stdout, unchecked.stdout

    with_key = tmp_path / "db-with-key"
    with_key.mkdir()
    pubkey = tmp_path / "RPM-GPG-KEY-packyard"
    pubkey.write_bytes(keys.signer.public_key([keys.old.fingerprint]))
    imported = run("rpmkeys", "--dbpath", str(with_key), "--import", str(pubkey))
    assert imported.returncode == 0, imported.stderr
    checked = run("rpmkeys", "--dbpath", str(with_key), "--checksig", "-v", str(rpm))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    short_id = keys.old.fingerprint[-8:].lower()
    assert f"Header V4 RSA/SHA256 Signature, key ID {short_id}: OK" in checked.stdout

    # A key we do not hold is refused before rpmsign runs gpg on it.
    with pytest.raises(NotFound):
        keys.signer.sign_rpm(rpm, key="0" * 40)
    with pytest.raises(InvalidArtifact):
        keys.signer.sign_rpm(
            keyring_file(tmp_path, b"not an rpm", "bogus.rpm"), key=keys.old.fingerprint
        )


# --------------------------------------------------------------------------- concurrency


def test_concurrent_signing_all_succeeds(keys: Keys) -> None:
    def sign(i: int) -> tuple[bytes, bytes]:
        data = RELEASE + f"Job: {i}\n".encode()
        if i % 2:
            return data, keys.signer.detach_sign(data, keys=[keys.old.fingerprint], armor=True)
        return data, keys.signer.detach_sign(
            data, keys=[keys.old.fingerprint, keys.new.fingerprint], armor=False
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(sign, range(24)))
    public = keys.signer.public_key()
    for data, signature in results:
        assert keys.old.fingerprint in verify_with_keyring(data, signature, public_keys=public)


# --------------------------------------------------------------------------- import


def export_secret(home: Path, fingerprint: str) -> bytes:
    done = subprocess.run(
        [
            tool("gpg"),
            "--homedir",
            str(home),
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--armor",
            "--export-secret-keys",
            fingerprint,
        ],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_imported_key_signs_the_same_and_close_stops_the_agent(keys: Keys, tmp_path: Path) -> None:
    secret = export_secret(keys.home, keys.new.fingerprint)
    assert secret.startswith(b"-----BEGIN PGP PRIVATE KEY BLOCK-----")
    home = tmp_path / "imported" / "gnupg"
    signer = GpgSigner(home)
    try:
        assert home.stat().st_mode & 0o777 == 0o700
        imported = signer.import_key(secret)
        assert imported == keys.new
        assert signer.keys() == [keys.new]
        assert signer.ensure_key() == keys.new  # an imported key counts: nothing generated
        signed = signer.clearsign(RELEASE, keys=[imported.fingerprint])
        public = keys.signer.public_key([keys.new.fingerprint])
        assert verify_clearsigned_with_keyring(signed, public_keys=public).text == RELEASE
        assert signer.public_key() == public
        # Importing again is harmless.
        assert signer.import_key(secret) == keys.new

        extended = signer.extend_expiry(imported.fingerprint, expires_days=3650)
        assert extended.expires is not None and keys.new.expires is not None
        assert extended.expires > keys.new.expires
        assert agents_for(home), "the signer should keep its gpg-agent while it lives"
    finally:
        signer.close()
    assert agents_gone(home) == []


def test_import_refuses_public_and_protected_keys(keys: Keys, tmp_path: Path) -> None:
    signer = GpgSigner(tmp_path / "gnupg")
    other = tmp_path / "other"
    other.mkdir(mode=0o700)
    # The agent otherwise calibrates passphrase hashing to take seconds; this is a test key.
    (other / "gpg-agent.conf").write_text("s2k-count 65536\n")
    try:
        with pytest.raises(InvalidRequest, match="exactly one secret key"):
            signer.import_key(keys.signer.public_key([keys.old.fingerprint]))
        with pytest.raises(InvalidRequest):
            signer.import_key(b"garbage")
        # A passphrase-protected key cannot sign unattended: refused and not left behind.
        subprocess.run(
            [
                tool("gpg"),
                "--homedir",
                str(other),
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "secret",
                "--quick-gen-key",
                "Protected <p@packyard.test>",
                "ed25519",
                "sign",
                "1y",
            ],
            capture_output=True,
            timeout=60,
            check=True,
        )
        protected = subprocess.run(
            [
                tool("gpg"),
                "--homedir",
                str(other),
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "secret",
                "--armor",
                "--export-secret-keys",
            ],
            capture_output=True,
            timeout=60,
            check=True,
        ).stdout
        with pytest.raises(InvalidRequest, match="cannot sign unattended") as info:
            signer.import_key(protected)
        assert "secret" not in str(info.value).replace("secret key", "")
        assert signer.keys() == []
    finally:
        signer.close()
        subprocess.run([tool("gpgconf"), "--homedir", str(other), "--kill", "all"], check=False)
    assert agents_gone(tmp_path) == []


# --------------------------------------------------------------------------- errors


def test_errors_are_domain_errors(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(NotFound, match="no usable secret key"):
        keys.signer.clearsign(RELEASE, keys=["A" * 40])
    with pytest.raises(NotFound):
        keys.signer.public_key(["B" * 40])
    with pytest.raises(InvalidRequest, match="full key fingerprint"):
        keys.signer.detach_sign(RELEASE, keys=[keys.old.fingerprint[-16:]], armor=False)
    with pytest.raises(InvalidRequest):
        keys.signer.detach_sign(RELEASE, keys=[], armor=False)
    with pytest.raises(InvalidRequest):
        keys.signer.generate_key(name="evil <x@y>", email="a@b")

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    with pytest.raises(ConfigError, match="not a directory"):
        GpgSigner(not_a_dir)

    empty_path = tmp_path / "empty-bin"
    empty_path.mkdir()
    monkeypatch.setenv("PATH", str(empty_path))
    with pytest.raises(ConfigError) as info:
        GpgSigner(tmp_path / "never")
    assert info.value.hint == "apt-get install gnupg"
    with pytest.raises(ConfigError, match="gpgv is not installed"):
        verify_with_keyring(RELEASE, b"sig", public_keys=b"keys")


def test_expired_key_is_not_active(keys: Keys) -> None:
    now = datetime.now(UTC)
    assert keys.old.usable_at(now)
    assert keys.old.expires is not None
    assert not keys.old.usable_at(keys.old.expires + timedelta(seconds=1))


# --------------------------------------------------------------------------- in-process signing
#
# clearsign and detach_sign sign in process from the exported secret key; the signatures must
# be what gpgv, gpg and apt accept, for RSA 4096 and an imported Ed25519 key.


@dataclass(frozen=True)
class Imported:
    """A second home holding an imported Ed25519 key and the rotation fixture's old RSA key."""

    signer: GpgSigner
    ed: SigningKey
    rsa: SigningKey


def make_key(home: Path, uid: str, algorithm: str, expiry: str = "1y") -> str:
    """Generate a key without passphrase in a scratch GnuPG home; return its fingerprint."""
    gpg_base = [tool("gpg"), "--homedir", str(home), "--batch", "--pinentry-mode", "loopback"]
    subprocess.run(
        [*gpg_base, "--passphrase", "", "--quick-gen-key", uid, algorithm, "sign", expiry],
        capture_output=True,
        timeout=120,
        check=True,
    )
    listing = subprocess.run(
        [*gpg_base, "--with-colons", "--list-secret-keys", uid],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))


@pytest.fixture(scope="module")
def imported(keys: Keys, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    root = tmp_path_factory.mktemp("imported")
    maker = root / "maker"
    maker.mkdir(mode=0o700)
    signer = GpgSigner(root / "gnupg")
    try:
        fpr = make_key(maker, "Packyard Ed25519 key <ed@packyard.test>", "ed25519")
        ed = signer.import_key(export_secret(maker, fpr))
        rsa = signer.import_key(export_secret(keys.home, keys.old.fingerprint))
        yield Imported(signer=signer, ed=ed, rsa=rsa)
    finally:
        signer.close()
        subprocess.run([tool("gpgconf"), "--homedir", str(maker), "--kill", "all"], check=False)


@pytest.fixture
def gpg_runs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every tool the gpg module runs from now on (gpg, gpgv...), as argument lists."""
    calls: list[list[str]] = []
    real = gpg_module._run

    def counted(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        calls.append([Path(argv[0]).name, *argv[1:]])
        return real(argv, **kwargs)

    monkeypatch.setattr(gpg_module, "_run", counted)
    return calls


def gpg_calls(calls: list[list[str]]) -> list[list[str]]:
    return [call for call in calls if call[0] == "gpg"]


def pick(keys: Keys, imported: Imported, which: str) -> tuple[GpgSigner, SigningKey]:
    return (keys.signer, keys.old) if which == "rsa4096" else (imported.signer, imported.ed)


def signature_mpi_bits(packet: bytes) -> list[int]:
    """Bit counts of the MPIs of one binary v4 signature packet (old-format header)."""
    size = 1 << (packet[0] & 3)
    body = packet[1 + size :]
    hashed_end = 6 + int.from_bytes(body[4:6], "big")
    offset = hashed_end + 2 + int.from_bytes(body[hashed_end : hashed_end + 2], "big") + 2
    bits = []
    while offset < len(body):
        count = int.from_bytes(body[offset : offset + 2], "big")
        bits.append(count)
        offset += 2 + (count + 7) // 8
    return bits


@pytest.mark.parametrize("which", ["rsa4096", "ed25519"])
def test_in_process_signature_of_a_file_is_read_in_chunks(
    keys: Keys, imported: Imported, tmp_path: Path, gpg_runs: list[list[str]], which: str
) -> None:
    # A pacman package's .sig is made from its path: several chunks' worth (1 MiB each),
    # never read whole; gpgv checks it, and a changed byte anywhere in the file fails.
    signer, key = pick(keys, imported, which)
    package = tmp_path / "big-1.0-1-x86_64.pkg.tar.zst"
    package.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    signer.detach_sign(b"warm up", keys=[key.fingerprint], armor=False)
    gpg_runs.clear()
    signature = signer.detach_sign(package, keys=[key.fingerprint], armor=False)
    assert gpg_calls(gpg_runs) == [], "the signature should be made in process"
    sig = tmp_path / f"{package.name}.sig"
    sig.write_bytes(signature)
    keyring = keyring_file(tmp_path, signer.public_keyring_binary([key.fingerprint]))
    done = gpgv(tmp_path, keyring, sig, package)
    assert done.returncode == 0, done.stderr
    public = signer.public_key([key.fingerprint])
    assert verify_with_keyring(package, signature, public_keys=public) == [key.fingerprint]
    with package.open("r+b") as handle:  # the last chunk, past the first two
        handle.seek(-5, os.SEEK_END)
        handle.write(b"XXXXX")
    with pytest.raises(InvalidArtifact, match="does not match"):
        verify_with_keyring(package, signature, public_keys=public)


@pytest.mark.parametrize("which", ["rsa4096", "ed25519"])
@pytest.mark.parametrize("armor", [False, True])
def test_in_process_detached_signatures_verify_with_gpgv(
    keys: Keys,
    imported: Imported,
    tmp_path: Path,
    gpg_runs: list[list[str]],
    which: str,
    armor: bool,
) -> None:
    signer, key = pick(keys, imported, which)
    assert key.algorithm == which
    signer.detach_sign(b"warm up", keys=[key.fingerprint], armor=armor)
    gpg_runs.clear()
    signature = signer.detach_sign(RELEASE, keys=[key.fingerprint], armor=armor)
    assert gpg_calls(gpg_runs) == [], "the signature should be made in process"
    assert signature.startswith(b"-----BEGIN PGP SIGNATURE-----") is armor
    data, sig = tmp_path / "Release", tmp_path / "Release.gpg"
    data.write_bytes(RELEASE)
    sig.write_bytes(signature)
    keyring = keyring_file(tmp_path, signer.public_keyring_binary([key.fingerprint]))
    done = gpgv(tmp_path, keyring, sig, data)
    assert done.returncode == 0, done.stderr
    assert f"VALIDSIG {key.fingerprint}" in done.stdout
    public = signer.public_key([key.fingerprint])
    assert verify_with_keyring(RELEASE, signature, public_keys=public) == [key.fingerprint]
    packets = run("gpg", "--homedir", str(tmp_path), "--batch", "--list-packets", str(sig))
    assert "version 4, created" in packets.stdout, packets.stdout + packets.stderr
    assert "sigclass 0x00" in packets.stdout
    assert "digest algo 10" in packets.stdout
    assert f"issuer fpr v4 {key.fingerprint}" in packets.stdout


CLEARSIGN_TEXTS = {
    "release": RELEASE,
    "dash lines": b"-----BEGIN PGP SIGNATURE-----\n- item\n--\nFrom: x\nFrom here\na - b\n",
    "trailing blanks": b"Origin: Packyard  \nLabel:\tPackyard\t\n \nSuite: stable\n",
    "crlf": b"Origin: Packyard\r\nSuite: stable\r\n\r\nEnd: yes\r\n",
    "empty last line": b"Origin: Packyard\nSuite: stable\n\n",
    "no final newline": b"Origin: Packyard\nSuite: stable",
    "stray cr": b"a\r \nb \r\nc\rd\n",
    "empty": b"",
}
# gpg --verify gives back exactly the text signed (not true with trailing blanks, which are not
# part of a signed line, or without a final line break, which clearsigning adds).
EXACT = {"release", "dash lines", "crlf", "empty last line"}


def gpg_clearsign(home: Path, text: bytes, fingerprint: str) -> bytes:
    """What gpg itself writes for ``text`` (the reference for the in-process output)."""
    return subprocess.run(
        [
            tool("gpg"),
            "--homedir",
            str(home),
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--digest-algo",
            "SHA512",
            "--local-user",
            fingerprint,
            "--clearsign",
        ],
        input=text,
        capture_output=True,
        timeout=60,
        check=True,
    ).stdout


def gpg_decrypt(tmp: Path, document: bytes, public: bytes) -> tuple[bytes, str]:
    """The text and status lines of ``gpg --decrypt`` (how a reader takes the signed text)."""
    home = tmp / "reader"
    home.mkdir(mode=0o700, exist_ok=True)
    base = [tool("gpg"), "--homedir", str(home), "--batch", "--trust-model", "always"]
    try:
        subprocess.run([*base, "--import"], input=public, capture_output=True, check=True)
        done = subprocess.run(
            [*base, "--status-fd", "2", "--decrypt"],
            input=document,
            capture_output=True,
            timeout=60,
        )
    finally:  # gpg started an agent for this home: it would outlive the test run
        subprocess.run([tool("gpgconf"), "--homedir", str(home), "--kill", "all"], check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout, done.stderr.decode()


@pytest.mark.parametrize("which", ["rsa4096", "ed25519"])
@pytest.mark.parametrize("case", list(CLEARSIGN_TEXTS))
def test_in_process_clearsign_matches_gpg(
    keys: Keys,
    imported: Imported,
    tmp_path: Path,
    gpg_runs: list[list[str]],
    which: str,
    case: str,
) -> None:
    text = CLEARSIGN_TEXTS[case]
    signer, key = pick(keys, imported, which)
    signer.clearsign(b"warm up", keys=[key.fingerprint])
    gpg_runs.clear()
    ours = signer.clearsign(text, keys=[key.fingerprint])
    assert gpg_calls(gpg_runs) == [], "the signature should be made in process"
    theirs = gpg_clearsign(signer.home, text, key.fingerprint)
    marker = b"-----BEGIN PGP SIGNATURE-----\n"
    # Byte for byte the same message part (headers, dash-escaping, line ends) as gpg's.
    assert ours[: ours.index(marker)] == theirs[: theirs.index(marker)]
    public = signer.public_key([key.fingerprint])
    verified = verify_clearsigned_with_keyring(ours, public_keys=public)
    assert verified.fingerprints == [key.fingerprint]
    assert verified.text == verify_clearsigned_with_keyring(theirs, public_keys=public).text
    recovered, status = gpg_decrypt(tmp_path, ours, public)
    assert f"VALIDSIG {key.fingerprint}" in status
    assert recovered == verified.text
    if case in EXACT:
        assert recovered == text


def test_two_keys_of_different_algorithms_in_one_output(
    imported: Imported, tmp_path: Path, gpg_runs: list[list[str]]
) -> None:
    both = [imported.rsa.fingerprint, imported.ed.fingerprint]
    text = release_with_index()
    imported.signer.clearsign(text, keys=both)  # loads both keys
    gpg_runs.clear()
    signed = imported.signer.clearsign(text, keys=both)
    binary = imported.signer.detach_sign(text, keys=both, armor=False)
    armored = imported.signer.detach_sign(text, keys=both, armor=True)
    assert gpg_calls(gpg_runs) == []
    assert signed.count(b"-----BEGIN PGP SIGNATURE-----") == 1
    public = imported.signer.public_key()
    assert verify_clearsigned_with_keyring(signed, public_keys=public).fingerprints == both
    assert verify_with_keyring(text, binary, public_keys=public) == both
    assert verify_with_keyring(text, armored, public_keys=public) == both
    for key in (imported.rsa, imported.ed):
        only = imported.signer.public_keyring_binary([key.fingerprint])
        assert verify_with_keyring(text, binary, public_keys=only) == [key.fingerprint]
        updated = apt_update(tmp_path, inrelease=signed, keyring=only)
        assert updated.returncode == 0, updated.stdout + updated.stderr
        assert "W:" not in updated.stderr and "E:" not in updated.stderr, updated.stderr


@pytest.mark.parametrize("which", ["rsa4096", "ed25519"])
def test_in_process_tampering_is_detected(keys: Keys, imported: Imported, which: str) -> None:
    signer, key = pick(keys, imported, which)
    public = signer.public_key([key.fingerprint])
    signature = signer.detach_sign(RELEASE, keys=[key.fingerprint], armor=False)
    assert verify_with_keyring(RELEASE, signature, public_keys=public) == [key.fingerprint]
    with pytest.raises(InvalidArtifact, match="does not match"):
        verify_with_keyring(RELEASE + b"x", signature, public_keys=public)
    for position in (len(signature) - 1, len(signature) - 40):  # inside the signature value
        damaged = bytearray(signature)
        damaged[position] ^= 0x01
        with pytest.raises(InvalidArtifact):
            verify_with_keyring(RELEASE, bytes(damaged), public_keys=public)
    signed = signer.clearsign(RELEASE, keys=[key.fingerprint])
    with pytest.raises(InvalidArtifact, match="does not match"):
        verify_clearsigned_with_keyring(
            signed.replace(b"Suite: stable", b"Suite: stable2"), public_keys=public
        )


@pytest.mark.parametrize("which", ["rsa4096", "ed25519"])
def test_signature_values_with_leading_zero_bytes_verify(
    keys: Keys, imported: Imported, which: str
) -> None:
    """About one signature in 128 to 256 has a value whose first byte is zero, which an MPI
    drops: gpgv must accept those too."""
    signer, key = pick(keys, imported, which)
    full = 4096 if which == "rsa4096" else 256
    public = signer.public_key([key.fingerprint])
    found = 0
    for attempt in range(5000):
        data = b"Release %d\n" % attempt
        signature = signer.detach_sign(data, keys=[key.fingerprint], armor=False)
        if min(signature_mpi_bits(signature)) <= full - 9:
            assert verify_with_keyring(data, signature, public_keys=public) == [key.fingerprint]
            found += 1
            if found == 2:
                break
    assert found == 2


def test_keys_load_once_then_no_gpg_runs(keys: Keys, gpg_runs: list[list[str]]) -> None:
    # A second signer on the same home, as in a worker process: nothing loaded yet.
    signer = GpgSigner(keys.home)
    both = [keys.old.fingerprint, keys.new.fingerprint]
    gpg_runs.clear()

    def sign(i: int) -> bytes:
        if i % 2:
            return signer.clearsign(RELEASE + b"N: %d\n" % i, keys=both)
        return signer.detach_sign(RELEASE, keys=both, armor=bool(i % 4))

    with ThreadPoolExecutor(max_workers=8) as pool:
        outputs = list(pool.map(sign, range(40)))
    exports = [call for call in gpg_calls(gpg_runs) if "--export-secret-keys" in call]
    listings = [call for call in gpg_calls(gpg_runs) if "--list-secret-keys" in call]
    assert sorted(call[-1] for call in exports) == sorted(both)
    assert len(listings) == 1
    assert len(gpg_calls(gpg_runs)) == 3, gpg_runs
    public = keys.signer.public_key()
    assert verify_clearsigned_with_keyring(outputs[1], public_keys=public).fingerprints == both
    assert verify_with_keyring(RELEASE, outputs[0], public_keys=public) == both


def test_cache_follows_key_changes_made_elsewhere(
    keys: Keys, tmp_path: Path, gpg_runs: list[list[str]]
) -> None:
    signer = GpgSigner(tmp_path / "gnupg")
    other = GpgSigner(tmp_path / "gnupg")  # another process using the same home
    gpg_base = [tool("gpg"), "--homedir", str(signer.home), "--batch", "--pinentry-mode"]
    try:
        key = signer.import_key(export_secret(keys.home, keys.old.fingerprint))
        fpr = key.fingerprint
        signer.detach_sign(RELEASE, keys=[fpr], armor=False)
        gpg_runs.clear()
        signer.detach_sign(RELEASE, keys=[fpr], armor=False)
        assert gpg_calls(gpg_runs) == []

        subprocess.run(
            [*gpg_base, "loopback", "--passphrase", "", "--quick-set-expire", fpr, "seconds=1"],
            capture_output=True,
            timeout=60,
            check=True,
        )
        time.sleep(2.1)
        # An expired key is refused as gpg refuses it, although its secret was loaded.
        with pytest.raises(NotFound, match=f"no usable secret key {fpr}"):
            signer.detach_sign(RELEASE, keys=[fpr], armor=False)
        with pytest.raises(NotFound, match=f"no usable secret key {fpr}"):
            other.clearsign(RELEASE, keys=[fpr])

        renewed = other.extend_expiry(fpr, expires_days=30)
        assert renewed.usable_at(datetime.now(UTC))
        signature = signer.detach_sign(RELEASE, keys=[fpr], armor=True)
        public = signer.public_key([fpr])
        assert verify_with_keyring(RELEASE, signature, public_keys=public) == [fpr]

        subprocess.run(
            [*gpg_base, "loopback", "--yes", "--delete-secret-and-public-key", fpr],
            capture_output=True,
            timeout=60,
            check=True,
        )
        with pytest.raises(NotFound, match="no usable secret key"):
            signer.clearsign(RELEASE, keys=[fpr])
    finally:
        signer.close()


def test_unknown_keys_are_refused_by_name(keys: Keys, gpg_runs: list[list[str]]) -> None:
    missing = "C" * 40
    with pytest.raises(NotFound) as info:
        keys.signer.detach_sign(RELEASE, keys=[keys.old.fingerprint, missing], armor=False)
    assert info.value.message == f"no usable secret key {missing} in {keys.home}"
    assert not any("--detach-sign" in call for call in gpg_runs)


@pytest.mark.parametrize(
    ("algorithm", "reason"),
    [
        ("nistp256", "algorithm 19 is not supported"),
        ("dsa2048", "algorithm 17 is not supported"),
        # gpg would sign with the subkey: the fast path signs only with primary keys.
        ("ed25519+subkey", "signing subkey"),
    ],
)
def test_keys_the_fast_path_cannot_use_sign_through_gpg(
    keys: Keys,
    tmp_path: Path,
    gpg_runs: list[list[str]],
    caplog: pytest.LogCaptureFixture,
    algorithm: str,
    reason: str,
) -> None:
    maker = tmp_path / "maker"
    maker.mkdir(mode=0o700)
    signer = GpgSigner(tmp_path / "gnupg")
    try:
        primary, _, subkey = algorithm.partition("+")
        fpr = make_key(maker, f"Packyard {primary} <{primary}@packyard.test>", primary)
        if subkey:
            subprocess.run(
                [
                    *(tool("gpg"), "--homedir", str(maker), "--batch", "--pinentry-mode"),
                    *("loopback", "--passphrase", "", "--quick-add-key", fpr, "ed25519", "sign"),
                ],
                capture_output=True,
                timeout=60,
                check=True,
            )
        with caplog.at_level(logging.INFO, logger="packyard.integrations.gpg"):
            other = signer.import_key(export_secret(maker, fpr))
            rsa = signer.import_key(export_secret(keys.home, keys.old.fingerprint))
            gpg_runs.clear()
            text = release_with_index()
            signed = signer.clearsign(text, keys=[other.fingerprint])
            detached = signer.detach_sign(text, keys=[rsa.fingerprint, fpr], armor=True)
            # rpm 4.18 cannot use ECDSA at all (rpmsign: "Unsupported PGP signature").
            rpm = build_rpm(tmp_path / "rpm", name=f"slow-{primary}", version="1.0")
            if primary != "nistp256":
                signer.sign_rpm(rpm, key=fpr)
                assert [call[0] for call in gpg_runs].count("rpmsign") == 1
            assert any("--clearsign" in call for call in gpg_runs)
            assert any("--detach-sign" in call for call in gpg_runs)
            # A file is signed where it lies: gpg reads it, nothing goes through stdin.
            package = tmp_path / "big.pkg.tar.zst"
            package.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
            gpg_runs.clear()
            file_sig = signer.detach_sign(package, keys=[fpr], armor=False)
            assert [call[-1] for call in gpg_runs if "--detach-sign" in call] == [str(package)]
        fallbacks = [r for r in caplog.records if "signs through gpg" in r.getMessage()]
        assert len(fallbacks) == 1, caplog.text
        assert fallbacks[0].levelno == logging.INFO
        assert fpr in fallbacks[0].getMessage()
        assert reason in fallbacks[0].getMessage()
        public = signer.public_key()
        assert verify_clearsigned_with_keyring(signed, public_keys=public).fingerprints == [fpr]
        assert sorted(verify_with_keyring(text, detached, public_keys=public)) == sorted(
            [rsa.fingerprint, fpr]
        )
        assert verify_with_keyring(package, file_sig, public_keys=public) == [fpr]
        if primary != "nistp256":
            db = rpm_keydb(tmp_path, "db", signer.public_key([fpr]))
            checked = checksig(db, rpm, "-v")
            assert checked.returncode == 0, checked.stdout + checked.stderr
            assert "Signature, key ID" in checked.stdout, checked.stdout
        # The RSA key alone still signs in process.
        gpg_runs.clear()
        signer.detach_sign(text, keys=[rsa.fingerprint], armor=False)
        signer.sign_rpm(rpm, key=rsa.fingerprint)
        assert gpg_runs == []
    finally:
        signer.close()
        subprocess.run([tool("gpgconf"), "--homedir", str(maker), "--kill", "all"], check=False)


# --------------------------------------------------------------------------- rpm in process
#
# sign_rpm signs in process like clearsign and detach_sign; rpm's own tools must accept the
# result as they accept rpmsign's.


def rpm_keydb(tmp: Path, name: str, public: bytes) -> Path:
    """A throwaway rpm database trusting only ``public``."""
    db = tmp / name
    db.mkdir()
    key = tmp / f"{name}.asc"
    key.write_bytes(public)
    imported = run("rpmkeys", "--dbpath", str(db), "--import", str(key))
    assert imported.returncode == 0, imported.stderr
    return db


def checksig(db: Path, rpm: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return run("rpmkeys", "--dbpath", str(db), "--checksig", *options, str(rpm))


def rpm_headers(rpm: Path) -> rpm_sign.RpmHeaders:
    with rpm.open("rb") as stream:
        return rpm_sign.read_headers(stream)


def header_signature(rpm: Path) -> bytes:
    (signature,) = [e.data for e in rpm_headers(rpm).entries if e.tag == 268]
    return signature


def rpmsign(home: Path, fingerprint: str, rpm: Path) -> None:
    """Sign with the real rpmsign as GpgSigner's fallback does."""
    done = run(
        "rpmsign",
        "--addsign",
        "--define",
        f"_gpg_name {fingerprint}",
        "--define",
        f"_gpg_path {home}",
        "--define",
        f"__gpg {tool('gpg')}",
        "--define",
        "_gpg_digest_algo sha256",
        "--define",
        "_gpg_sign_cmd_extra_args --batch --no-tty --pinentry-mode loopback",
        str(rpm),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def signature_line(key: SigningKey) -> str:
    algorithm = "RSA" if key.algorithm.startswith("rsa") else "EdDSA"
    return f"Header V4 {algorithm}/SHA256 Signature, key ID {key.fingerprint[-8:].lower()}: OK"


@pytest.mark.parametrize("which", ["rsa4096", "ed25519"])
def test_in_process_rpm_signatures_verify_with_rpmkeys(
    keys: Keys, imported: Imported, tmp_path: Path, gpg_runs: list[list[str]], which: str
) -> None:
    signer, key = pick(keys, imported, which)
    unsigned = build_rpm(tmp_path / "build", name=f"fast-{which}", version="1.0")
    rpm = tmp_path / "repo" / unsigned.name
    rpm.parent.mkdir()
    shutil.copy(unsigned, rpm)
    rpm.chmod(0o640)
    signer.detach_sign(b"warm up", keys=[key.fingerprint], armor=False)
    gpg_runs.clear()
    signer.sign_rpm(rpm, key=key.fingerprint)
    assert gpg_runs == [], "the rpm should be signed in process, without rpmsign or gpg"
    assert rpm.stat().st_mode & 0o777 == 0o640
    assert list(rpm.parent.iterdir()) == [rpm], "no temporary file is left behind"

    # Only the signature header changed, and it kept its size.
    before, after = rpm_headers(unsigned), rpm_headers(rpm)
    assert after.signature_size == before.signature_size
    assert (
        rpm.read_bytes()[after.payload_offset - len(after.main_header) :]
        == (unsigned.read_bytes()[before.payload_offset - len(before.main_header) :])
    )
    # One v4 binary-document signature by this key, SHA-256 like rpmsign's.
    (tmp_path / "header.sig").write_bytes(header_signature(rpm))
    packets = run("gpg", "--homedir", str(tmp_path), "--list-packets", str(tmp_path / "header.sig"))
    assert packets.stdout.count(":signature packet:") == 1, packets.stdout + packets.stderr
    assert "version 4, created" in packets.stdout
    assert "sigclass 0x00" in packets.stdout
    assert "digest algo 8" in packets.stdout
    assert f"issuer fpr v4 {key.fingerprint}" in packets.stdout

    db = rpm_keydb(tmp_path, "db", signer.public_key([key.fingerprint]))
    checked = checksig(db, rpm, "-v")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert signature_line(key) in checked.stdout, checked.stdout
    assert "Header SHA256 digest: OK" in checked.stdout
    assert "Payload SHA256 digest: OK" in checked.stdout
    quiet = checksig(db, rpm)
    assert quiet.returncode == 0
    assert quiet.stdout.strip() == f"{rpm}: digests signatures OK"


@pytest.mark.parametrize("which", ["rsa4096", "ed25519"])
def test_in_process_rpm_signature_tampered_or_by_another_key_fails(
    keys: Keys, imported: Imported, tmp_path: Path, which: str
) -> None:
    signer, key = pick(keys, imported, which)
    rpm = build_rpm(tmp_path, name=f"tamper-{which}", version="1.0")
    signer.sign_rpm(rpm, key=key.fingerprint)
    db = rpm_keydb(tmp_path, "db", signer.public_key([key.fingerprint]))
    assert checksig(db, rpm).returncode == 0

    # Another key: rpm does not know who signed.
    other = rpm_keydb(tmp_path, "other", keys.signer.public_key([keys.new.fingerprint]))
    unknown = checksig(other, rpm, "-v")
    assert unknown.returncode != 0
    assert "NOKEY" in unknown.stdout, unknown.stdout

    # One bit of the signature value (the last MPI's last byte, tag 268's data comes first).
    headers = rpm_headers(rpm)
    count = len(headers.entries) + 1
    position = 96 + 16 + count * 16 + len(header_signature(rpm)) - 1
    data = bytearray(rpm.read_bytes())
    data[position] ^= 0x01
    rpm.write_bytes(bytes(data))
    bad = checksig(db, rpm, "-v")
    assert bad.returncode != 0
    assert "BAD" in bad.stdout, bad.stdout
    assert "Header SHA256 digest: OK" in bad.stdout


def test_in_process_rpm_signature_replaces_rpmsigns(
    keys: Keys, tmp_path: Path, gpg_runs: list[list[str]]
) -> None:
    unsigned = build_rpm(tmp_path / "build", name="resigned", version="2.0")
    by_rpmsign, by_us = tmp_path / "rpmsign.rpm", tmp_path / "packyard.rpm"
    shutil.copy(unsigned, by_rpmsign)
    rpmsign(keys.home, keys.new.fingerprint, by_rpmsign)
    shutil.copy(by_rpmsign, by_us)
    gpg_runs.clear()
    keys.signer.sign_rpm(by_us, key=keys.old.fingerprint)
    assert not [call for call in gpg_runs if call[0] == "rpmsign"]

    # The same layout as rpmsign's: the same tags and sizes, the same bytes after them.
    theirs, ours = rpm_headers(by_rpmsign), rpm_headers(by_us)
    assert [(e.tag, e.kind) for e in ours.entries] == [(e.tag, e.kind) for e in theirs.entries]
    assert ours.signature_size == theirs.signature_size
    assert [e for e in ours.entries if e.tag not in (268, 1008)] == [
        e for e in theirs.entries if e.tag not in (268, 1008)
    ]
    start = ours.payload_offset - len(ours.main_header)
    assert by_us.read_bytes()[start:] == by_rpmsign.read_bytes()[start:]
    assert by_us.stat().st_size == unsigned.stat().st_size

    both = rpm_keydb(
        tmp_path, "db", keys.signer.public_key([keys.old.fingerprint, keys.new.fingerprint])
    )
    checked = checksig(both, by_us, "-v")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("Signature, key ID") == 1, checked.stdout
    assert signature_line(keys.old) in checked.stdout
    only_new = rpm_keydb(tmp_path, "new", keys.signer.public_key([keys.new.fingerprint]))
    assert checksig(only_new, by_us).returncode != 0


def test_rpm_signing_errors_leave_the_file_alone(keys: Keys, tmp_path: Path) -> None:
    rpm = build_rpm(tmp_path, name="damaged", version="1.0")
    data = bytearray(rpm.read_bytes())
    data[96 + 16 + 16 + 8 : 96 + 16 + 16 + 12] = b"\x00\x10\x00\x00"  # tag 269 off the store
    rpm.write_bytes(bytes(data))
    with pytest.raises(InvalidArtifact, match=f"{rpm.name} is not a signable rpm: .*tag 269"):
        keys.signer.sign_rpm(rpm, key=keys.old.fingerprint)
    assert rpm.read_bytes() == bytes(data)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [rpm.name]
    with pytest.raises(NotFound, match="no rpm at"):
        keys.signer.sign_rpm(tmp_path / "missing.rpm", key=keys.old.fingerprint)
