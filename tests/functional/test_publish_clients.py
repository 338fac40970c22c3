"""The published prod channel as apt-get, dnf and pacman see it: real clients, each in a private
root, against a real ``packyard serve``.

- A package is installable from prod exactly while it is in prod: not before its promotion,
  yes after it, and no longer after a demotion (each time with a fresh client).
- Signatures are really checked: a client trusting another key refuses the repository, and
  an index altered by one byte on the way (a tampering proxy) is refused.

One server per module; every test uses its own package names, so the tests do not depend on
each other's promotions. Packages are built once per module with the real tools.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.clients import (
    Outcome,
    PacmanKeyring,
    TamperingProxy,
    advance,
    apt_client,
    dnf_client,
    flip_byte,
    make_gpg_key,
    pacman_client,
    pacman_keyring,
    promote,
    public_key,
    running_server,
    upload,
    wait_for_publishing,
)
from tests.conftest import Server
from tests.pkgbuild import build_deb, build_pacman, build_rpm

FORMATS = ("apt", "dnf", "pacman")


@dataclass(frozen=True, kw_only=True)
class Kind:
    """How one repository format looks to a user: its package file and client messages."""

    build: Callable[..., Path]
    installed: str  # a file the package puts below the root, "{name}" replaced
    not_found: str  # what the client says when the repository has no such package


KINDS = {
    "apt": Kind(
        build=lambda tmp, name, version: build_deb(tmp, name=name, version=f"{version}-1"),
        installed="usr/share/doc/{name}/README",
        not_found="Unable to locate package {name}",
    ),
    "dnf": Kind(
        build=lambda tmp, name, version: build_rpm(tmp, name=name, version=version),
        installed="usr/share/{name}/README",
        not_found="No match for argument: {name}",
    ),
    "pacman": Kind(
        build=lambda tmp, name, version: build_pacman(tmp, name=name, version=version),
        installed="usr/share/{name}/README",
        not_found="target not found: {name}",
    ),
}


#: key -> a pacman keyring trusting it (see the ``keyrings`` fixture)
Keyrings = Callable[[bytes], PacmanKeyring]


def install(
    fmt: str, *, root: Path, url: str, key: bytes, name: str, keyrings: Keyrings
) -> Outcome:
    """Set up a fresh client of ``fmt`` in ``root`` for the prod channel and install ``name``.

    apt runs ``update`` then ``install``: the outcome fails if either did, with both outputs.
    """
    if fmt == "apt":
        client = apt_client(root=root, url=url, key=key)
        update = client.update()
        installed = client.install(name)
        return Outcome(
            args=installed.args,
            returncode=update.returncode or installed.returncode,
            output=f"{update.output}\n{installed.output}",
        )
    if fmt == "dnf":
        return dnf_client(root=root, url=url, key=key).install(name)
    return pacman_client(root=root, url=url, keyring=keyrings(key)).install(name)


def installed_file(fmt: str, root: Path, name: str) -> Path:
    # dnf installs into its own installroot; apt and pacman into root/ and root/root/.
    base = {"apt": root, "dnf": root / "root", "pacman": root / "root"}[fmt]
    return base / KINDS[fmt].installed.format(name=name)


@pytest.fixture(scope="module")
def repo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # One entry per index block: every Packages.gz/.xz, primary.xml.gz and pacman database
    # the clients read is joined from several compressed blocks (formats/blockpack.py).
    config = {"publish": {"block_entries": 1}}
    with running_server(tmp_path_factory.mktemp("publish-clients"), config=config) as server:
        yield server


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """(format, role) -> package file named "<role>-<format>"."""
    tmp = tmp_path_factory.mktemp("publish-client-packages")
    return {
        (fmt, role): KINDS[fmt].build(tmp / fmt / role, f"{role}-{fmt}", "1.0")
        for fmt in FORMATS
        for role in ("life", "base")
    }


@pytest.fixture(scope="module")
def uploaded(repo_server: Server, built: dict[tuple[str, str], Path]) -> dict[str, str]:
    """Set-up for every test at once: "base-<format>" packages in prod, "life-<format>" ones
    in stage (just short of prod). name -> artifact id."""
    ids = {f"{role}-{fmt}": upload(repo_server, path) for (fmt, role), path in built.items()}
    advance(repo_server, [ids[f"base-{fmt}"] for fmt in FORMATS], to="prod")
    advance(repo_server, [ids[f"life-{fmt}"] for fmt in FORMATS], to="stage")
    wait_for_publishing(repo_server)
    return ids


@pytest.fixture(scope="module")
def keyrings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyrings]:
    """key -> a pacman keyring trusting it, made once per key (pacman-key --init is slow)."""
    made: dict[bytes, PacmanKeyring] = {}

    def keyring(key: bytes) -> PacmanKeyring:
        if key not in made:
            made[key] = pacman_keyring(
                gpgdir=tmp_path_factory.mktemp("pacman-keyring") / "gnupg", key=key
            )
        return made[key]

    yield keyring
    for ring in made.values():
        ring.close()


@pytest.fixture(scope="module")
def wrong_key(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_gpg_key(tmp_path_factory.mktemp("wrong-key"), uid="Not Packyard <x@example.org>")


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_package_is_installable_from_prod_exactly_while_it_is_in_prod(
    repo_server: Server, uploaded: dict[str, str], keyrings: Keyrings, tmp_path: Path, fmt: str
) -> None:
    name = f"life-{fmt}"  # in stage, every gate before prod passed
    key = public_key(repo_server)

    def fresh_install(root: Path) -> Outcome:
        return install(fmt, root=root, url=repo_server.url, key=key, name=name, keyrings=keyrings)

    before = fresh_install(tmp_path / "before")
    assert not before.ok, before
    assert KINDS[fmt].not_found.format(name=name) in before.output, before
    assert not installed_file(fmt, tmp_path / "before", name).exists()

    promote(repo_server, uploaded[name], to="prod", stages=("prod",))
    wait_for_publishing(repo_server)
    after = fresh_install(tmp_path / "after")
    assert after.ok, after
    assert installed_file(fmt, tmp_path / "after", name).read_text() == "hello\n"

    demoted = repo_server.cli("demote", uploaded[name][:16], "--from", "prod")
    assert demoted.returncode == 0, demoted.stderr
    wait_for_publishing(repo_server)
    gone = fresh_install(tmp_path / "gone")
    assert not gone.ok, gone
    assert KINDS[fmt].not_found.format(name=name) in gone.output, gone
    assert not installed_file(fmt, tmp_path / "gone", name).exists()


#: What each client says when the repository is signed by a key it does not trust.
UNTRUSTED = {
    "apt": ("NO_PUBKEY", "is not signed"),
    "dnf": (
        "Failed to download metadata for repo 'packyard-prod'",
        "repomd.xml GPG signature verification error",
    ),
    "pacman": ("is unknown", "invalid or corrupted database (PGP signature)"),
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_client_trusting_another_key_refuses_the_repository(
    repo_server: Server,
    uploaded: dict[str, str],
    keyrings: Keyrings,
    wrong_key: bytes,
    tmp_path: Path,
    fmt: str,
) -> None:
    name = f"base-{fmt}"  # in prod: a client trusting the server's key installs it
    refused = install(
        fmt,
        root=tmp_path / "wrong",
        url=repo_server.url,
        key=wrong_key,
        name=name,
        keyrings=keyrings,
    )
    assert not refused.ok, refused
    for message in UNTRUSTED[fmt]:
        assert message in refused.output, refused
    assert not installed_file(fmt, tmp_path / "wrong", name).exists()


def _alter_signed_text(body: bytes, marker: bytes) -> bytes:
    # A byte of text that only a signature protects (not a checksum, not the syntax).
    return flip_byte(body, body.index(marker))


#: path suffix or part -> how one byte of the response is altered, and what the client says.
TAMPERING: dict[str, tuple[str, Callable[[str, bytes], bytes | None], tuple[str, ...]]] = {
    "apt-InRelease": (
        "apt",
        lambda path, body: (
            _alter_signed_text(body, b"Packyard prod channel")
            if path.endswith("/dists/prod/InRelease")
            else None
        ),
        ("BADSIG", "is not signed"),
    ),
    "apt-Packages": (
        "apt",
        lambda path, body: (
            flip_byte(body, len(body) // 2)
            # Packages, Packages.gz/.xz and their by-hash names
            if "/dists/prod/main/binary-amd64/" in path
            else None
        ),
        ("Hash Sum mismatch",),
    ),
    "dnf-repomd.xml": (
        "dnf",
        lambda path, body: (
            _alter_signed_text(body, b"<revision>")
            if path.endswith("/repodata/repomd.xml")
            else None
        ),
        ("repomd.xml GPG signature verification error", "Failed to download metadata"),
    ),
    # Byte 4 of a gzip stream is its MTIME, which no decompressor checks: only the signature.
    "pacman-db": (
        "pacman",
        lambda path, body: flip_byte(body, 4) if path.endswith("/packyard-prod.db") else None,
        ("is invalid", "invalid or corrupted database (PGP signature)"),
    ),
}


@pytest.mark.parametrize("case", TAMPERING)
def test_an_index_altered_on_the_way_is_refused(
    repo_server: Server, uploaded: dict[str, str], keyrings: Keyrings, tmp_path: Path, case: str
) -> None:
    fmt, alter, messages = TAMPERING[case]
    name = f"base-{fmt}"  # in prod
    key = public_key(repo_server)
    active = False

    def tamper(path: str, body: bytes) -> bytes | None:
        return alter(path, body) if active else None

    with TamperingProxy(upstream=repo_server.url, tamper=tamper) as proxy:
        # Through the proxy, untouched: the client installs (the proxy itself is faithful).
        control = install(
            fmt, root=tmp_path / "control", url=proxy.url, key=key, name=name, keyrings=keyrings
        )
        assert control.ok, control
        active = True
        refused = install(
            fmt, root=tmp_path / "tampered", url=proxy.url, key=key, name=name, keyrings=keyrings
        )
    assert proxy.tampered, "the client never fetched the index the test alters"
    assert not refused.ok, refused
    for message in messages:
        assert message in refused.output, refused
    assert not installed_file(fmt, tmp_path / "tampered", name).exists()
