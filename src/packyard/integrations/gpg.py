"""OpenPGP signing of repository metadata and packages with keys kept by the real GnuPG
(``gpg``, ``gpgv``, ``rpmsign``).

``GpgSigner`` owns one GnuPG home (``<data_dir>/gnupg``, mode 0700) and never reads or writes
the user's ``~/.gnupg``. gpg generates, imports, lists and exports the keys, gpgv checks
signatures and rpmsign signs rpm headers when a key cannot sign in process (below); gpg starts
one gpg-agent for the home, which stays up while the signer lives; ``close()`` stops it with
``gpgconf --kill all``.

``clearsign``, ``detach_sign`` and ``sign_rpm`` sign in process (``integrations/openpgp``,
``cryptography``): about 1.5 ms per RSA 4096 signature, where one gpg process per signature
cost about 25 ms. Each key's secret part is exported from the home once (``gpg
--export-secret-keys``) and kept in memory by fingerprint; the cache is dropped when keys
change, by this signer or by another process sharing the home (each call compares the keyring
files' stat). Holding the key in memory adds no exposure: it already lies unprotected in the
home (no passphrase, see below), readable by this process. The signatures are the standard v4
packets gpg makes (SHA-512, or SHA-256 for rpm headers; creation time, issuer fingerprint and
key id), byte for byte the same cleartext framing, so gpgv, gpgme, apt, dnf, rpm and pacman
read them as they read gpg's. Unknown, expired and revoked keys are refused as gpg refuses them
(NotFound). A key the fast path cannot use (protected, neither RSA nor Ed25519, a stub, or one
with a signing subkey gpg would pick instead) still signs through gpg (rpms through rpmsign),
as before; that is logged once per key at INFO.

``sign_rpm`` in process writes what ``rpmsign --addsign`` (rpm 4.18) writes, through
``formats/rpm_sign``: one header signature (tag 268, SHA-256) instead of any old ones, the
signature header kept at its size by shrinking its reserved space, the main header and payload
byte for byte; the new file is synced and renamed over the old one. About 2.3 ms per rpm where
rpmsign took about 34 ms (a 10,000-rpm dnf channel spent 240 s in it).

Key choices, so a newcomer need not rediscover them:

- **RSA 4096, primary key only, signing usage.** Every client we publish for verifies it:
  apt's gpgv (also the gpgv 1.4 on Ubuntu 16.04-era devices, which cannot check Ed25519),
  dnf's librepo/gpgme, rpm's own OpenPGP parser (rpm 4.11 on EL7 cannot check EdDSA either)
  and pacman's gpgme. Ed25519 signs faster (0.05 ms against 1.5 ms in process) and works on
  current Debian, Fedora and Arch, but that does not pay for locking out old devices. No
  subkeys: older rpm parsers mishandle signatures made by subkeys.
- **Digests:** SHA-512 for repository metadata (what Debian's archive uses), SHA-256 for rpm
  headers (what Fedora and RHEL sign with; rpm's own default).
- **Expiry: two years by default** (``expires_days``). An expired key makes every client refuse
  the repository, so an operator must act before then: ``extend_expiry`` (clients re-import the
  public key) or rotate (``generate_key``, sign with old and new keys together until clients
  have the new keyring, then drop the old one). ``keys()`` reports ``expires`` for a health
  check to warn about. Expiry bounds how long a key we lost track of stays trusted on devices
  that never update their keyring.
- **No passphrase.** A server that signs unattended has nowhere safe to keep a passphrase that
  the key file does not already have; the key's protection is the data directory's permissions
  (the home is 0700, the secret key files 0600). Where that is not enough, generate the key
  elsewhere (offline, or on a machine with a stricter policy) and ``import_key`` it; the key
  must be importable without a passphrase for unattended signing.
- Several fingerprints in one ``clearsign``/``detach_sign`` call give one signature packet per
  key in the same output: apt (gpgv), gpgme and ``verify_with_keyring`` accept a file as long as
  one signature is good and none is bad, which is what key rotation needs.

Not handled here: choosing which keys sign which channel (services decide), hardware tokens and
KMS backends, revocation certificates (gpg writes one to ``openpgp-revocs.d/`` in the home; keep
a copy offline), TUF metadata for the agent (``integrations/tuf``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import logging
import os
import re
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from packyard.domain.errors import (
    ConfigError,
    InvalidArtifact,
    InvalidRequest,
    NotFound,
    PackyardError,
)
from packyard.formats import rpm_sign
from packyard.integrations import openpgp
from packyard.services.ports import SigningKey

__all__ = [
    "DEFAULT_EXPIRY_DAYS",
    "KEY_ALGORITHM",
    "GpgSigner",
    "VerifiedText",
    "verify_clearsigned_with_keyring",
    "verify_with_keyring",
]

KEY_ALGORITHM = "rsa4096"
DEFAULT_EXPIRY_DAYS = 730
METADATA_DIGEST = "SHA512"
RPM_DIGEST = "sha256"

_TIMEOUT = 120.0
_KEYGEN_TIMEOUT = 600.0
# sun_path holds 108 bytes; gpg-agent's longest socket name adds ".browser" to agent-socket.
_MAX_SOCKET_PATH = 107 - len(".browser")
_FINGERPRINT = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")
_ARMOR_BLOCK = re.compile(
    rb"-----BEGIN PGP PUBLIC KEY BLOCK-----\r?\n(.*?)-----END PGP PUBLIC KEY BLOCK-----",
    re.DOTALL,
)
# gpg's public-key algorithm ids (RFC 4880 section 9.1, RFC 9580 for EdDSA).
_ALGORITHMS = {
    1: "rsa",
    2: "rsa",
    3: "rsa",
    16: "elg",
    17: "dsa",
    18: "ecdh",
    19: "ecdsa",
    22: "eddsa",
}
# Files whose change means the keys changed (gpg replaces pubring.kbx by renaming a new copy).
_KEYRING_FILES = ("pubring.kbx", "pubring.gpg", "private-keys-v1.d")
_INSTALL_HINT = {
    "gpg": "apt-get install gnupg",
    "gpgconf": "apt-get install gnupg",
    "gpg-agent": "apt-get install gnupg",
    "gpgv": "apt-get install gpgv",
    "rpmsign": "apt-get install rpm",
}


log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class VerifiedText:
    """A clearsigned document whose signature checked out: the signers and the signed text."""

    fingerprints: list[str]
    text: bytes


class GpgSigner:
    """Signs with the keys in one GnuPG home; see the module docstring for the choices made."""

    def __init__(self, home: Path) -> None:
        self.home = home.absolute()
        self._gpg = _tool("gpg")
        self._gpgconf = _tool("gpgconf")
        _tool("gpg-agent")
        self._env = _gpg_env(self.home)
        self._prepare_home()
        # In-process signing: the key listing and the loaded secret keys (None: gpg signs with
        # that key), valid while the keyring files keep the stat in _keyring_state.
        self._cache_lock = threading.Lock()
        self._keyring_state: object = None
        self._listing: dict[str, _ListedKey] | None = None
        self._secrets: dict[str, openpgp.SecretKey | None] = {}
        self._logged_fallbacks: set[str] = set()
        # Exported public keys (every publication of a dnf channel ships repomd.xml.key),
        # valid while the keyring files keep the stat in _export_state.
        self._exports: dict[tuple[tuple[str, ...] | None, bool], bytes] = {}
        self._export_state: object = None

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop the gpg-agent of this home (gpg starts a new one if the signer is used again).

        ``gpgconf --kill`` only asks the agent to exit; wait (bounded) until its socket is
        gone so a caller that removes the home next does not race a dying agent.
        """
        self._forget_keys()
        socket = Path(self._agent_socket())
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [self._gpgconf, "--homedir", str(self.home), "--kill", "all"],
                env=self._env,
                capture_output=True,
                timeout=30,
                check=False,
            )
        deadline = time.monotonic() + 5
        while socket.exists() and time.monotonic() < deadline:
            time.sleep(0.02)

    def __enter__(self) -> GpgSigner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ keys

    def keys(self) -> list[SigningKey]:
        """The secret keys in the home, oldest first (revoked and expired ones included)."""
        # A stable sort keeps the keyring's order (oldest first) for keys made in one second.
        return sorted(_parse_key_listing(self._list_secret_keys()), key=lambda k: k.created)

    def ensure_key(
        self,
        *,
        name: str = "Packyard repository signing key",
        email: str = "packyard@localhost",
        expires_days: int | None = DEFAULT_EXPIRY_DAYS,
    ) -> SigningKey:
        """Return the active key (the newest usable one), generating it if there is none.

        Safe to call from several threads and processes sharing the home: one key is made.
        """
        with self._keygen_lock():
            active = self._active_key()
            if active is not None:
                return active
            return self._generate(name=name, email=email, expires_days=expires_days)

    def generate_key(
        self,
        *,
        name: str = "Packyard repository signing key",
        email: str = "packyard@localhost",
        expires_days: int | None = DEFAULT_EXPIRY_DAYS,
    ) -> SigningKey:
        """Generate one more key (for rotation); it becomes the active key."""
        with self._keygen_lock():
            return self._generate(name=name, email=email, expires_days=expires_days)

    def extend_expiry(self, fingerprint: str, *, expires_days: int | None) -> SigningKey:
        """Move a key's expiry to ``expires_days`` from now (None: never); clients must
        re-import the public key to see it."""
        fpr = self._own_fingerprint(fingerprint)
        try:
            self._gpg_run(
                ["--quick-set-expire", fpr, _expiry_arg(expires_days)],
                what="set the key's expiry",
            )
        finally:
            self._forget_keys()
        return self._key(fpr)

    def import_key(self, armored_secret: bytes) -> SigningKey:
        """Import one secret key (armored or binary) without a passphrase; return it."""
        listing = self._gpg_run(
            ["--with-colons", "--import-options", "show-only", "--import"],
            stdin=armored_secret,
            what="read the key",
            error=InvalidRequest,
        ).decode("utf-8", "replace")
        secret = [line for line in listing.splitlines() if line.startswith("sec:")]
        if len(secret) != 1:
            raise InvalidRequest(
                f"expected exactly one secret key, found {len(secret)}",
                hint="export a single key with `gpg --armor --export-secret-keys <fingerprint>`",
            )
        before = {key.fingerprint for key in self.keys()}
        try:
            status = self._gpg_run(
                ["--status-fd", "1", "--import"],
                stdin=armored_secret,
                what="import the key",
                error=InvalidRequest,
            )
        finally:
            self._forget_keys()
        imported = {
            fields[3]
            for fields in (line.split() for line in status.decode("ascii", "replace").splitlines())
            if len(fields) >= 4 and fields[:2] == ["[GNUPG:]", "IMPORT_OK"] and int(fields[2]) & 16
        }
        if len(imported) != 1:
            raise InvalidRequest(
                "the input holds no usable secret key",
                hint="a public key cannot sign; export the secret key",
            )
        fpr = imported.pop()
        try:
            self.detach_sign(b"packyard import check", keys=[fpr], armor=False)
        except PackyardError as exc:
            if fpr not in before:
                self._delete(fpr)
            raise InvalidRequest(
                f"the imported key {fpr} cannot sign unattended: {exc.message}",
                hint="remove its passphrase first (`gpg --edit-key <fingerprint>` then `passwd`)"
                " and check it has not expired and can sign",
            ) from exc
        return self._key(fpr)

    def public_key(self, fingerprints: Sequence[str] | None = None) -> bytes:
        """ASCII-armored public keys (the given ones, or every key in the home)."""
        return self._export(fingerprints, armor=True)

    def public_keyring_binary(self, fingerprints: Sequence[str] | None = None) -> bytes:
        """The same keys unarmored: a keyring for ``/usr/share/keyrings/*.gpg`` and gpgv."""
        return self._export(fingerprints, armor=False)

    # ------------------------------------------------------------------ signing

    def clearsign(self, data: bytes, *, keys: Sequence[str]) -> bytes:
        """A clearsigned copy of ``data`` (apt's InRelease), one signature per key."""
        fingerprints = _signer_fingerprints(keys)
        secrets = self._in_process_keys(fingerprints)
        if secrets is not None:
            return openpgp.clearsign(data, secrets)
        return self._gpg_run(
            [
                "--digest-algo",
                METADATA_DIGEST,
                *_local_users(fingerprints),
                "--clearsign",
                "--output",
                "-",
            ],
            stdin=data,
            what="clearsign",
        )

    def detach_sign(self, data: bytes | Path, *, keys: Sequence[str], armor: bool) -> bytes:
        """A detached signature of ``data`` (Release.gpg, repomd.xml.asc, pacman .sig); a path
        signs that file's bytes, read in chunks, never whole into memory."""
        fingerprints = _signer_fingerprints(keys)
        secrets = self._in_process_keys(fingerprints)
        if secrets is not None:
            return openpgp.detached_signature(data, secrets, armored=armor)
        return self._gpg_run(
            [
                "--digest-algo",
                METADATA_DIGEST,
                *_local_users(fingerprints),
                *(["--armor"] if armor else []),
                "--detach-sign",
                "--output",
                "-",
                *([str(data)] if isinstance(data, Path) else []),
            ],
            stdin=b"" if isinstance(data, Path) else data,
            what="sign",
        )

    def sign_rpm(self, path: Path, *, key: str) -> None:
        """Add (or replace) the header signature of the rpm at ``path`` in place.

        In process when the key allows it (``formats/rpm_sign``: a new file renamed over
        ``path``, which never holds a partial rpm); otherwise ``rpmsign --addsign``.
        """
        fpr = _normalise_fingerprint(key)
        if not path.is_file():
            raise NotFound(f"no rpm at {path}")
        secrets = self._in_process_keys([fpr])
        if secrets is not None:
            _sign_rpm_in_process(path, secrets)
            return
        rpmsign = _tool("rpmsign")
        args = [
            rpmsign,
            "--addsign",
            "--define",
            f"_gpg_name {fpr}",
            "--define",
            f"_gpg_path {_rpm_escape(str(self.home))}",
            # Debian's rpm defines __gpg as /usr/bin/gpg2, which Debian 12 does not ship.
            "--define",
            f"__gpg {_rpm_escape(self._gpg)}",
            "--define",
            f"_gpg_digest_algo {RPM_DIGEST}",
            "--define",
            "_gpg_sign_cmd_extra_args --batch --no-tty --pinentry-mode loopback",
            str(path),
        ]
        done = _run(args, env=self._env, stdin=b"", timeout=_TIMEOUT)
        if done.returncode == 0:
            return
        summary = _summarise(done.stderr)
        if "No secret key" in summary or "INV_SGNR" in summary:
            raise NotFound(
                f"no secret key {fpr} in {self.home}",
                hint="list the signing keys or import the key first",
            )
        if any(word in summary.lower() for word in ("not an rpm", "corrupt", "read failed")):
            raise InvalidArtifact(f"{path.name} is not a signable rpm: {summary}")
        raise ConfigError(
            f"rpmsign failed for {path.name}: {summary}",
            hint=f"check the signing home {self.home} and that gpg-agent can start",
        )

    # ------------------------------------------------------------------ verifying

    def verify_detached(self, data: bytes, signature: bytes) -> list[str]:
        """Fingerprints of our keys with a good signature over ``data``; raises
        InvalidArtifact when none is good or any is bad."""
        return verify_with_keyring(data, signature, public_keys=self.public_keyring_binary())

    # ------------------------------------------------------------------ internals

    def _prepare_home(self) -> None:
        if self.home.exists() and not self.home.is_dir():
            raise ConfigError(
                f"the GnuPG home {self.home} is not a directory",
                hint="point the data dir somewhere else or remove that file",
            )
        try:
            self.home.mkdir(mode=0o700, parents=True, exist_ok=True)
            # mkdir's mode is filtered by the umask and says nothing about an existing dir.
            self.home.chmod(0o700)
        except OSError as exc:
            raise ConfigError(
                f"cannot use {self.home} as the GnuPG home: {exc.strerror}",
                hint="the data dir must be writable by the Packyard user",
            ) from exc
        socket = self._agent_socket()
        if len(socket) > _MAX_SOCKET_PATH:
            # gpgconf can move the sockets to /run/user/<uid>/gnupg/d.<hash> when that exists.
            _run(
                [self._gpgconf, "--homedir", str(self.home), "--create-socketdir"],
                env=self._env,
                timeout=30,
            )
            socket = self._agent_socket()
            if len(socket) > _MAX_SOCKET_PATH:
                raise ConfigError(
                    f"the GnuPG home {self.home} is too long a path for gpg-agent's socket "
                    f"({socket})",
                    hint="use a shorter data dir path, or run with /run/user/<uid> present",
                )

    def _agent_socket(self) -> str:
        done = _run(
            [self._gpgconf, "--homedir", str(self.home), "--list-dirs", "agent-socket"],
            env=self._env,
            timeout=30,
        )
        if done.returncode != 0:
            raise ConfigError(
                f"gpgconf failed: {_summarise(done.stderr)}",
                hint="reinstall GnuPG: apt-get install gnupg",
            )
        return done.stdout.decode("utf-8", "replace").strip()

    @contextlib.contextmanager
    def _keygen_lock(self) -> Iterator[None]:
        # A file lock, not a threading.Lock: the API process and workers share the home.
        with (self.home / "packyard-keygen.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _active_key(self) -> SigningKey | None:
        now = datetime.now(UTC)
        usable = [key for key in self.keys() if key.usable_at(now)]
        return usable[-1] if usable else None

    def _generate(self, *, name: str, email: str, expires_days: int | None) -> SigningKey:
        uid = _user_id(name=name, email=email)
        out = self._gpg_run(
            [
                "--passphrase",
                "",
                "--status-fd",
                "1",
                # A rotation may reuse the user id of the key it replaces.
                "--yes",
                "--quick-gen-key",
                uid,
                KEY_ALGORITHM,
                "sign",
                _expiry_arg(expires_days),
            ],
            what="generate a key",
            timeout=_KEYGEN_TIMEOUT,
        )
        self._forget_keys()
        created = [
            line.split()[-1]
            for line in out.decode("ascii", "replace").splitlines()
            if line.startswith("[GNUPG:] KEY_CREATED")
        ]
        if not created:
            raise ConfigError(
                "gpg did not report the key it generated",
                hint=f"check the signing home {self.home}",
            )
        return self._key(created[-1])

    def _key(self, fingerprint: str) -> SigningKey:
        for key in self.keys():
            if key.fingerprint == fingerprint:
                return key
        raise NotFound(
            f"no secret key {fingerprint} in {self.home}",
            hint="list the signing keys or import the key first",
        )

    def _own_fingerprint(self, fingerprint: str) -> str:
        return self._key(_normalise_fingerprint(fingerprint)).fingerprint

    def _delete(self, fingerprint: str) -> None:
        with contextlib.suppress(ConfigError):
            self._gpg_run(
                ["--yes", "--delete-secret-and-public-key", fingerprint], what="remove the key"
            )
        self._forget_keys()

    def _export(self, fingerprints: Sequence[str] | None, *, armor: bool) -> bytes:
        cache_key = (tuple(fingerprints) if fingerprints is not None else None, armor)
        with self._cache_lock:
            state = self._keyring_stat()
            if state != self._export_state:
                self._exports, self._export_state = {}, state
            cached = self._exports.get(cache_key)
        if cached is not None:
            return cached
        exported = self._export_uncached(fingerprints, armor=armor)
        with self._cache_lock:
            if self._export_state == state:
                self._exports[cache_key] = exported
        return exported

    def _export_uncached(self, fingerprints: Sequence[str] | None, *, armor: bool) -> bytes:
        own = [key.fingerprint for key in self.keys()]
        if fingerprints is None:
            wanted = own
        else:
            wanted = [_normalise_fingerprint(f) for f in fingerprints]
            missing = [f for f in wanted if f not in own]
            if missing:
                raise NotFound(
                    f"no signing key {', '.join(missing)} in {self.home}",
                    hint="list the signing keys or import the key first",
                )
        if not wanted:
            raise NotFound(
                f"no signing keys in {self.home}",
                hint="generate one first (ensure_key) or import one",
            )
        return self._gpg_run(
            [
                "--export-options",
                "export-minimal",
                *(["--armor"] if armor else []),
                "--export",
                *wanted,
            ],
            what="export the public keys",
        )

    def _list_secret_keys(self) -> str:
        out = self._gpg_run(
            ["--with-colons", "--fixed-list-mode", "--list-secret-keys"], what="list keys"
        )
        return out.decode("utf-8", "replace")

    # ------------------------------------------------------------------ in-process signing

    def _in_process_keys(self, fingerprints: Sequence[str]) -> list[openpgp.SecretKey] | None:
        """The loaded secret keys for ``fingerprints``, or None when gpg must sign (one of them
        cannot be used in process). Refuses unknown, expired and revoked keys like gpg does."""
        with self._cache_lock:
            state = self._keyring_stat()
            if state != self._keyring_state or self._listing is None:
                self._drop_cache()
                self._keyring_state = state
                text = self._list_secret_keys()
                refusals = _in_process_refusals(text)
                self._listing = {
                    key.fingerprint: _ListedKey(key=key, refusal=refusals.get(key.fingerprint))
                    for key in _parse_key_listing(text)
                }
            listing = self._listing
            now = datetime.now(UTC)
            unusable = [
                fpr
                for fpr in fingerprints
                if fpr not in listing or not listing[fpr].key.usable_at(now)
            ]
            if unusable:
                raise NotFound(
                    f"no usable secret key {', '.join(unusable)} in {self.home}",
                    hint="list the signing keys: the key may be missing or expired",
                )
            loaded: list[openpgp.SecretKey] = []
            for fpr in fingerprints:
                if fpr not in self._secrets:
                    self._secrets[fpr] = self._load_secret(fpr, listing[fpr].refusal)
                secret = self._secrets[fpr]
                if secret is None:
                    return None
                loaded.append(secret)
            return loaded

    def _load_secret(self, fingerprint: str, refusal: str | None) -> openpgp.SecretKey | None:
        reason = refusal
        if reason is None:
            try:
                exported = self._gpg_run(
                    ["--passphrase", "", "--export-secret-keys", fingerprint],
                    what="export the secret key",
                )
                return openpgp.parse_secret_key(exported, fingerprint=fingerprint)
            except PackyardError as exc:
                reason = exc.message
            except openpgp.UnsupportedKey as exc:
                reason = str(exc)
        if fingerprint not in self._logged_fallbacks:
            self._logged_fallbacks.add(fingerprint)
            log.info("key %s signs through gpg, not in process: %s", fingerprint, reason)
        return None

    def _keyring_stat(self) -> tuple[tuple[int, int, int] | None, ...]:
        state: list[tuple[int, int, int] | None] = []
        for name in _KEYRING_FILES:
            try:
                st = os.stat(self.home / name)
            except OSError:
                state.append(None)
            else:
                state.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(state)

    def _drop_cache(self) -> None:
        self._keyring_state = None
        self._listing = None
        self._secrets = {}
        self._exports, self._export_state = {}, None

    def _forget_keys(self) -> None:
        with self._cache_lock:
            self._drop_cache()

    def _gpg_run(
        self,
        args: Sequence[str],
        *,
        what: str,
        stdin: bytes = b"",
        timeout: float = _TIMEOUT,
        error: type[ConfigError] | type[InvalidRequest] = ConfigError,
    ) -> bytes:
        argv = [
            self._gpg,
            "--homedir",
            str(self.home),
            "--batch",
            "--no-tty",
            "--pinentry-mode",
            "loopback",
            "--trust-model",
            "always",
            "--no-auto-check-trustdb",
            "--no-greeting",
            "--status-fd",
            "2",
            *args,
        ]
        # A later --status-fd wins: commands that read status from stdout pass their own.
        done = _run(argv, env=self._env, stdin=stdin, timeout=timeout)
        if done.returncode == 0:
            return done.stdout
        status = done.stderr.decode("utf-8", "replace")
        invalid = re.findall(r"^\[GNUPG:\] INV_SGNR \d+ (\S+)", status, re.MULTILINE)
        if invalid:
            raise NotFound(
                f"no usable secret key {', '.join(invalid)} in {self.home}",
                hint="list the signing keys: the key may be missing or expired",
            )
        hint = (
            (
                f"check the signing home {self.home} (permissions, disk space) and that "
                "gpg-agent can start"
            )
            if error is ConfigError
            else "check the key you gave"
        )
        raise error(f"gpg could not {what}: {_summarise(done.stderr)}", hint=hint)


def _sign_rpm_in_process(path: Path, secrets: Sequence[openpgp.SecretKey]) -> None:
    """What ``rpmsign --addsign`` with ``_gpg_digest_algo sha256`` does, without a process:
    the signed copy is written next to ``path``, synced, then renamed over it."""
    temporary: Path | None = None
    try:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".signing", dir=path.parent)
        temporary = Path(name)
        with os.fdopen(fd, "wb") as out, path.open("rb") as source:
            headers = rpm_sign.read_headers(source)
            signature = openpgp.signature_packets(
                headers.main_header,
                secrets,
                sig_type=openpgp.SIG_BINARY,
                hash_algorithm=openpgp.HASH_SHA256,
            )
            # rpmsign keeps the file's permissions too (mkstemp makes it 0600).
            os.fchmod(out.fileno(), stat.S_IMODE(os.fstat(source.fileno()).st_mode))
            rpm_sign.write_signed(source, headers, signature=signature, out=out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
        temporary = None
    except InvalidArtifact as exc:
        raise InvalidArtifact(
            f"{path.name} is not a signable rpm: {exc.message}", hint=exc.hint, details=exc.details
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot write the signed {path.name}: {exc.strerror}",
            hint=f"check free space and permissions in {path.parent}",
        ) from exc
    finally:
        if temporary is not None:
            temporary.unlink(missing_ok=True)


# ---------------------------------------------------------------------- verification


def verify_with_keyring(data: bytes | Path, signature: bytes, *, public_keys: bytes) -> list[str]:
    """Check a detached ``signature`` over ``data`` with gpgv against ``public_keys`` (armored
    or binary) only, as apt does: returns the primary fingerprints with a good signature.

    Raises InvalidArtifact when no signature is good or any signature is bad; signatures by
    keys not in ``public_keys`` are ignored (rotation), and so are expired or revoked keys'.
    Uses a temporary directory, never a GnuPG home. A path is checked where it lies (a
    package of gigabytes is neither read into memory nor copied).
    """
    with tempfile.TemporaryDirectory(prefix="packyard-gpgv-") as tmp:
        work = Path(tmp)
        if isinstance(data, Path):
            signed = data
        else:
            signed = work / "data"
            signed.write_bytes(data)
        (work / "data.sig").write_bytes(signature)
        status = _gpgv(work, public_keys, [str(work / "data.sig"), str(signed)])
    return _good_signers(status)


def verify_clearsigned_with_keyring(document: bytes, *, public_keys: bytes) -> VerifiedText:
    """Check a clearsigned ``document`` (InRelease) like ``verify_with_keyring`` and return the
    signed text as gpgv extracted it (never parse text outside the signed part)."""
    with tempfile.TemporaryDirectory(prefix="packyard-gpgv-") as tmp:
        work = Path(tmp)
        (work / "document").write_bytes(document)
        status = _gpgv(work, public_keys, ["--output", str(work / "text"), str(work / "document")])
        signers = _good_signers(status)
        return VerifiedText(fingerprints=signers, text=(work / "text").read_bytes())


def _gpgv(work: Path, public_keys: bytes, args: Sequence[str]) -> str:
    gpgv = _tool("gpgv")
    keyring = work / "keyring.gpg"
    keyring.write_bytes(_dearmor(public_keys))
    home = work / "home"
    home.mkdir(mode=0o700)
    done = _run(
        [gpgv, "--homedir", str(home), "--status-fd", "1", "--keyring", str(keyring), *args],
        env=_gpg_env(home),
        stdin=b"",
        timeout=_TIMEOUT,
    )
    status = done.stdout.decode("utf-8", "replace")
    if "[GNUPG:] NEWSIG" not in status and done.returncode != 0:
        raise InvalidArtifact(f"no OpenPGP signature could be read: {_summarise(done.stderr)}")
    return status


def _good_signers(status: str) -> list[str]:
    """Primary fingerprints of good signatures in gpgv's status output (one block per NEWSIG)."""
    good: list[str] = []
    problems: list[str] = []
    verdict = ""
    for line in status.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0] != "[GNUPG:]":
            continue
        keyword = fields[1]
        if keyword == "NEWSIG":
            verdict = ""
        elif keyword in {"GOODSIG", "BADSIG", "EXPSIG", "EXPKEYSIG", "REVKEYSIG", "ERRSIG"}:
            verdict = keyword
            if keyword == "BADSIG":
                problems.append(f"bad signature by key {fields[2]}")
            elif keyword in {"EXPSIG", "EXPKEYSIG", "REVKEYSIG"}:
                problems.append(f"{keyword} from key {fields[2]}")
        elif keyword == "VALIDSIG" and verdict == "GOODSIG" and len(fields) >= 12:
            fpr = fields[11]
            if fpr not in good:
                good.append(fpr)
    if any(p.startswith("bad signature") for p in problems):
        raise InvalidArtifact(
            f"the signature does not match the data ({'; '.join(problems)})",
            hint="the file was changed after signing or is damaged: fetch it again",
        )
    if not good:
        detail = "; ".join(problems) or "no signature by a trusted key"
        raise InvalidArtifact(
            f"no good signature by a trusted key ({detail})",
            hint="check the keyring holds the repository's current signing key",
        )
    return good


def _dearmor(blob: bytes) -> bytes:
    """Binary OpenPGP packets from one or more armored key blocks (gpgv reads only binary)."""
    stripped = blob.lstrip()
    if not stripped.startswith(b"-----BEGIN PGP"):
        return blob
    blocks = _ARMOR_BLOCK.findall(stripped)
    if not blocks:
        raise InvalidRequest(
            "the public keys are armored but hold no PUBLIC KEY BLOCK",
            hint="pass the output of `gpg --armor --export`",
        )
    out = bytearray()
    for block in blocks:
        # Armor headers (Version:, Comment:) end at the first blank line.
        headers, blank, body = block.replace(b"\r\n", b"\n").partition(b"\n\n")
        if not blank:
            body = headers
        lines = [line.strip() for line in body.splitlines() if line.strip()]
        checksum = lines.pop()[1:] if lines and lines[-1].startswith(b"=") else None
        try:
            packets = base64.b64decode(b"".join(lines), validate=True)
            if checksum is not None and base64.b64decode(checksum) != openpgp.crc24(packets):
                raise InvalidRequest(
                    "an armored public key block has a wrong checksum",
                    hint="the key was damaged in transit: export it again",
                )
        except binascii.Error as exc:
            raise InvalidRequest(
                "an armored public key block is not valid base64",
                hint="pass the output of `gpg --armor --export`",
            ) from exc
        out += packets
    return bytes(out)


# ---------------------------------------------------------------------- helpers


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(
            f"{name} is not installed but signing needs it",
            hint=_INSTALL_HINT.get(name, f"install {name}"),
        )
    return path


def _gpg_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPG_", "GNUPG"))}
    env.update(GNUPGHOME=str(home), LC_ALL="C", LANGUAGE="")
    return env


def _run(
    argv: Sequence[str], *, env: dict[str, str], stdin: bytes = b"", timeout: float
) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            list(argv), input=stdin, capture_output=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise ConfigError(
            f"{Path(argv[0]).name} did not finish within {timeout:.0f} s",
            hint="check that gpg-agent is not stuck (gpgconf --kill all)",
        ) from exc
    except OSError as exc:
        raise ConfigError(
            f"cannot run {argv[0]}: {exc.strerror}",
            hint=_INSTALL_HINT.get(Path(argv[0]).name, "check the tools"),
        ) from exc


def _summarise(stderr: bytes, *, limit: int = 500) -> str:
    """The last few human lines of a tool's stderr: gpg never prints key material there, but
    status lines and rpm's tty chatter are noise."""
    lines = [
        line.strip()
        for line in stderr.decode("utf-8", "replace").splitlines()
        if line.strip() and not line.startswith("[GNUPG:]") and "GPG_TTY" not in line
    ]
    text = "; ".join(lines[-5:]) or "no error message"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _normalise_fingerprint(value: str) -> str:
    fpr = value.replace(" ", "").upper()
    if not _FINGERPRINT.match(fpr):
        raise InvalidRequest(
            f"{value!r} is not a full key fingerprint",
            hint="use the 40-hex-digit fingerprint, never a short key id",
        )
    return fpr


def _signer_fingerprints(keys: Sequence[str]) -> list[str]:
    if not keys:
        raise InvalidRequest("no signing key given", hint="pass at least one fingerprint")
    return list(dict.fromkeys(_normalise_fingerprint(key) for key in keys))


def _local_users(fingerprints: Sequence[str]) -> list[str]:
    return [arg for fpr in fingerprints for arg in ("--local-user", fpr)]


def _user_id(*, name: str, email: str) -> str:
    if not name.strip() or any(c in name for c in "<>\n\r\x00") or name.startswith("-"):
        raise InvalidRequest(
            f"{name!r} cannot be a key's name", hint="use plain text without <, > or line breaks"
        )
    if not re.fullmatch(r"[^\s<>@]+@[^\s<>@]+", email):
        raise InvalidRequest(f"{email!r} is not an email address for a key's user id")
    return f"{name.strip()} <{email}>"


def _expiry_arg(days: int | None) -> str:
    if days is None:
        return "never"
    if days <= 0:
        raise InvalidRequest("a key's expiry must be a positive number of days (or never)")
    return f"{days}d"


def _rpm_escape(value: str) -> str:
    # rpm expands macros in --define values; a literal % is written %%.
    return value.replace("%", "%%")


def _parse_key_listing(text: str) -> list[SigningKey]:
    keys: list[SigningKey] = []
    current: list[str] | None = None
    fingerprint = ""
    uid = ""

    def flush() -> None:
        if current is not None and fingerprint:
            keys.append(_signing_key(current, fingerprint=fingerprint, uid=uid))

    for line in text.splitlines():
        fields = line.split(":")
        record = fields[0]
        if record == "sec":
            flush()
            current, fingerprint, uid = fields, "", ""
        elif record in {"ssb", "pub", "sub"}:
            flush()
            current, fingerprint, uid = None, "", ""
        elif current is not None and record == "fpr" and not fingerprint:
            fingerprint = fields[9]
        elif current is not None and record == "uid" and not uid:
            uid = _unescape(fields[9])
    flush()
    return keys


@dataclass(frozen=True)
class _ListedKey:
    key: SigningKey
    refusal: str | None  # why the key cannot sign in process, if it cannot


def _in_process_refusals(text: str) -> dict[str, str]:
    """Primary fingerprints (from a --with-colons secret key listing) that gpg would not sign
    with as the primary key itself, with the reason: those keep signing through gpg."""
    refusals: dict[str, str] = {}
    primary = ""
    capabilities: str | None = None
    for line in text.splitlines():
        fields = [*line.split(":"), *[""] * 12]
        record = fields[0]
        if record == "sec":
            primary, capabilities = "", fields[11]
        elif record in {"pub", "sub", "ssb"}:
            capabilities = None
            # gpg signs with a valid signing subkey rather than the primary key.
            if (
                record == "ssb"
                and primary
                and "s" in fields[11]
                and fields[1] not in {"r", "e", "i"}
            ):
                refusals.setdefault(primary, "it has a signing subkey, which gpg would use")
        elif record == "fpr" and capabilities is not None and not primary:
            primary = fields[9]
            if "D" in capabilities:
                refusals[primary] = "the key is disabled"
            elif "s" not in capabilities:
                refusals[primary] = "its primary key is not for signing"
    return refusals


def _signing_key(fields: list[str], *, fingerprint: str, uid: str) -> SigningKey:
    algo_id = int(fields[3] or 0)
    family = _ALGORITHMS.get(algo_id, f"algo{algo_id}")
    curve = fields[16] if len(fields) > 16 else ""
    algorithm = curve if curve else f"{family}{fields[2]}"
    return SigningKey(
        fingerprint=fingerprint,
        uid=uid,
        created=datetime.fromtimestamp(int(fields[5]), UTC),
        expires=datetime.fromtimestamp(int(fields[6]), UTC) if fields[6] else None,
        algorithm=algorithm,
        revoked=fields[1] == "r",
    )


def _unescape(value: str) -> str:
    # --with-colons escapes ':' and control characters as \xHH.
    return re.sub(r"\\x([0-9a-fA-F]{2})", lambda m: chr(int(m.group(1), 16)), value)
