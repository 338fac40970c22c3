"""Mirrors across a key rotation and a server shutdown, each with a server of its own.

- After `packyard keys rotate` a mirror serves the key files the server publishes
  (`keys/packyard.asc` and `.gpg`, both keys during the transition), taken from the signed
  listing, while it keeps verifying with the keys it pinned.
- A mirror waiting in the change feed's long poll when the server stops gets a prompt 503
  with Retry-After; the server does not hold its shutdown for the poll nor log a traceback.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
from tests.clients import (
    advance,
    apt_client,
    fingerprints,
    public_key,
    upload,
    wait_for_publishing,
)
from tests.conftest import Server, run_cli
from tests.pkgbuild import build_deb

CONFIG = {"publish": {"apt": {"architectures": ["amd64"]}}}


def create_mirror(server: Server, name: str, *channels: str) -> str:
    result = server.cli("mirrors", "create", name, "--json", "--channels", ",".join(channels))
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["token"])


def mirror_sync(server: Server, dest: Path, token: str) -> None:
    result = run_cli("mirror", "sync", server.url, str(dest), "--token", token, env=server.env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_after_a_key_rotation_the_mirror_serves_the_servers_key_files(
    make_server, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    server: Server = make_server(config=CONFIG)
    advance(server, [upload(server, build_deb(tmp_path, name="keyed", version="1.0-1"))])
    wait_for_publishing(server)
    token = create_mirror(server, "rotating", "apt/prod")
    dest = tmp_path / "mirror"
    mirror_sync(server, dest, token)
    [old] = fingerprints(public_key(server))
    assert fingerprints((dest / "repos/keys/packyard.asc").read_bytes()) == [old]
    binary = httpx.get(f"{server.url}/repos/keys/packyard.gpg", timeout=30).content
    assert (dest / "repos/keys/packyard.gpg").read_bytes() == binary
    pinned = (dest / ".packyard-mirror/keyring.asc").read_bytes()

    rotated = server.cli("keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    wait_for_publishing(server)  # the rotation republishes every stage, signed by both keys
    mirror_sync(server, dest, token)

    both = public_key(server)
    assert len(fingerprints(both)) == 2
    served = (dest / "repos/keys/packyard.asc").read_bytes()
    assert served == both
    binary = httpx.get(f"{server.url}/repos/keys/packyard.gpg", timeout=30).content
    assert (dest / "repos/keys/packyard.gpg").read_bytes() == binary
    # Verification still rests on the pinned key; re-pinning stays the operator's decision.
    assert (dest / ".packyard-mirror/keyring.asc").read_bytes() == pinned
    # A client that re-imported the keys through the mirror (as the rotation advice says).
    client = apt_client(root=tmp_path / "apt", url=static_server(dest), key=served)
    assert client.update().ok
    assert client.install("keyed").ok


def test_a_long_poll_ends_promptly_when_the_server_stops(make_server, tmp_path: Path) -> None:
    server: Server = make_server(config=CONFIG)
    token = create_mirror(server, "waiting", "apt/prod")
    answers: list[httpx.Response] = []
    waiting = threading.Event()

    def poll() -> None:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as client:
            cursor = client.get("/api/v1/mirror/changes", params={"wait": 0}).json()["cursor"]
            waiting.set()
            answers.append(
                client.get("/api/v1/mirror/changes", params={"since": cursor, "wait": 120})
            )

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    assert waiting.wait(timeout=30)
    # The second request is on its way; give it a moment to be waiting in the server.
    poller.join(timeout=1)
    server.stop()
    poller.join(timeout=30)

    [answer] = answers
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "5"
    assert answer.json()["error"]["message"] == "the server is shutting down"
    log = server.log()
    assert "Traceback" not in log and "CancelledError" not in log, log
    assert "timeout graceful shutdown exceeded" not in log, log
