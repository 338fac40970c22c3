"""services/mirror_sync against an in-memory server (the ``MirrorSource`` port) that publishes
while a sync downloads, and a verifier that accepts what the fake server signed: how a sync
follows new listings, when it gives up, what it still calls tampering, and how the daemon
reports a local failure. The real server, gpgv and HTTP are in
tests/functional/test_mirror_sync.py.
"""

from __future__ import annotations

import errno
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from packyard.domain.errors import InvalidArtifact
from packyard.services import mirror_sync
from packyard.services.mirror_sync import LISTING_ATTEMPTS, MirrorDirError
from packyard.services.published_tree import (
    LISTING_VERSION,
    MirrorIntegrityError,
    MirrorUnavailable,
)

CHANNEL = "dnf/prod"
PACKAGE = "dnf/prod/Packages/a/a-1.0-1.noarch.rpm"
INDEX = "dnf/prod/repodata/repomd.xml"
KEYS = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\nfake\n-----END PGP PUBLIC KEY BLOCK-----\n"


def _signature(data: bytes) -> bytes:
    return b"signed:" + hashlib.sha256(data).hexdigest().encode()


class FakeVerifier:
    """Accepts a signature the fake server made (a hash of the data), nothing else."""

    def verify_detached(
        self, data: bytes | Path, signature: bytes, *, public_keys: bytes
    ) -> list[str]:
        raw = data.read_bytes() if isinstance(data, Path) else data
        if signature != _signature(raw):
            raise InvalidArtifact("bad signature")
        return ["FPR"]

    def verify_clearsigned(self, document: bytes, *, public_keys: bytes) -> list[str]:
        return ["FPR"]


class FakeServer:
    """One channel whose snapshot ``n`` has a fixed package and an index naming ``n``;
    ``on_download`` runs before each download (to publish meanwhile or alter a file)."""

    def __init__(self) -> None:
        self.snapshot = 1
        self.downloads: list[str] = []
        self.listings = 0
        self.heartbeats: list[dict[str, Any]] = []
        self.on_download: Callable[[str], bytes | None] = lambda _path: None

    def files(self, snapshot: int) -> dict[str, bytes]:
        return {PACKAGE: b"package bytes" * 100, INDEX: f"index {snapshot}".encode()}

    def publish(self) -> None:
        self.snapshot += 1

    # The MirrorSource port.
    def changes(self, *, since: str | None, wait: float) -> dict[str, Any]:
        return {"cursor": f"c{self.snapshot}", "channels": {CHANNEL: f"s{self.snapshot}"}}

    def listing(self, *, channel: str, snapshot: str) -> tuple[bytes, bytes]:
        self.listings += 1
        files = self.files(int(snapshot.removeprefix("s")))
        listing = json.dumps(
            {
                "version": LISTING_VERSION,
                "channel": channel,
                "snapshot": snapshot,
                "files": {
                    path: {
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "size": len(data),
                        "kind": "pool" if path == PACKAGE else "index",
                    }
                    for path, data in files.items()
                },
            }
        ).encode()
        return listing, _signature(listing)

    def public_keys(self) -> bytes:
        return KEYS

    def download(self, path: str, write: Callable[[bytes], object]) -> None:
        self.downloads.append(path)
        altered = self.on_download(path)
        write(altered if altered is not None else self.files(self.snapshot)[path])

    def heartbeat(self, report: dict[str, Any]) -> None:
        self.heartbeats.append(report)


def run(server: FakeServer, dest: Path, **kwargs: Any) -> mirror_sync.SyncReport:
    return mirror_sync.sync(server, FakeVerifier(), dest, server="http://fake", **kwargs)


def test_a_publication_during_the_downloads_is_followed_keeping_staged_packages(
    tmp_path: Path,
) -> None:
    server = FakeServer()
    server.on_download = lambda path: server.publish() if path == PACKAGE else None
    lines: list[str] = []

    report = run(server, tmp_path / "mirror", log=lines.append)

    assert report.synced == {CHANNEL: "s2"}
    assert server.downloads == [PACKAGE, INDEX, INDEX]  # the package once, packages first
    assert server.listings == 2
    assert (tmp_path / "mirror/repos" / INDEX).read_bytes() == b"index 2"
    assert any("changed on the server while syncing" in line for line in lines)


def test_a_server_that_keeps_publishing_is_given_up_on_as_unreachable(tmp_path: Path) -> None:
    server = FakeServer()
    server.on_download = lambda path: server.publish() if path == INDEX else None
    dest = tmp_path / "mirror"

    with pytest.raises(MirrorUnavailable, match=f"{LISTING_ATTEMPTS} times"):
        run(server, dest)

    assert server.listings == LISTING_ATTEMPTS
    assert server.downloads.count(PACKAGE) == 1
    assert not dest.exists()  # a failed first sync leaves nothing


def test_a_file_that_differs_from_a_listing_that_did_not_move_is_tampering(
    tmp_path: Path,
) -> None:
    server = FakeServer()
    dest = tmp_path / "mirror"
    run(server, dest)
    server.publish()
    server.on_download = lambda path: b"altered" if path == INDEX else None
    before = (dest / "repos" / INDEX).read_bytes()

    with pytest.raises(MirrorIntegrityError, match="does not match the signed listing"):
        run(server, dest)

    assert server.listings == 2  # the first sync's, and this one's: no new listing followed
    assert (dest / "repos" / INDEX).read_bytes() == before
    assert not list((dest / ".packyard-mirror").glob("staging-*"))


def test_the_daemon_reports_a_full_disk_and_backs_off(tmp_path: Path) -> None:
    server = FakeServer()

    def disk_full(path: str) -> bytes | None:
        raise OSError(errno.ENOSPC, "No space left on device")

    server.on_download = disk_full
    delays: list[float] = []
    lines: list[str] = []

    mirror_sync.run_daemon(
        server,
        FakeVerifier(),
        tmp_path / "mirror",
        server="http://fake",
        should_stop=lambda: len(delays) >= 2,
        sleep=delays.append,
        log=lines.append,
    )

    assert len(delays) == 2 and all(d > 0 for d in delays)
    assert [h["errors"] for h in server.heartbeats] == [
        [f"cannot use {tmp_path / 'mirror'}: No space left on device"]
    ] * 2
    assert all("retrying in" in line for line in lines)
    with pytest.raises(MirrorDirError, match="No space left on device") as raised:
        run(server, tmp_path / "mirror")
    assert "free space on the file system" in str(raised.value.hint)
