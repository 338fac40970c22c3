"""GpgSigner against the real tools: gpg, gpgv, apt-get (signed-by), rpmsign and rpmkeys.

Keys are generated once for the module (RSA 4096 takes about a second each): ``old`` and
``new`` in one home, as during a key rotation. No database is involved. A missing tool fails
the test with the package to install; nothing here skips.
"""

from __future__ import annotations

import email.utils
import hashlib
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.pkgbuild import build_rpm

from packyard.domain.errors import ConfigError, InvalidArtifact, InvalidRequest, NotFound
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
    assert agents_for(home) == []


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
    assert agents_for(tmp_path) == []


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
