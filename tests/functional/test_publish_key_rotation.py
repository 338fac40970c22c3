"""Key rotation as clients see it.

`packyard keys rotate` then a republish: an apt client that trusts only the OLD key still
verifies the repository (both keys sign InRelease during the transition), and one that trusts
only the NEW key verifies too. dnf and pacman clients that trust only the OLD key keep
installing during the transition (single-signature formats are signed with the oldest key
still signing), and so do clients that re-imported the published keyring (both keys).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from tests.clients import (
    advance,
    apt_client,
    dnf_client,
    export_keys,
    fingerprints,
    pacman_client,
    pacman_keyring,
    public_key,
    upload,
    wait_for_publishing,
)
from tests.conftest import Server
from tests.pkgbuild import build_deb, build_pacman, build_rpm

WIDE = {"COLUMNS": "250"}


def current_snapshot(server: Server, channel: str) -> dict[str, Any]:
    with server.client() as client:
        response = client.get("/api/v1/channels", params={"channel": channel})
    assert response.status_code == 200, response.text
    current = response.json()[0]["current"]
    assert current is not None, f"{channel} was never published"
    return dict(current)


def test_after_a_key_rotation_clients_trusting_either_key_verify(
    make_server, tmp_path: Path
) -> None:
    server: Server = make_server()
    artifact = upload(server, build_deb(tmp_path / "pkgs", name="rotate-me", version="1.0-1"))
    advance(server, [artifact], to="prod")
    wait_for_publishing(server)
    old_key = public_key(server)
    [old] = fingerprints(old_key)

    rotated = server.cli("keys", "rotate", env=WIDE)
    assert rotated.returncode == 0, rotated.stderr
    found = re.search(r"New signing key ([0-9A-F]{40})", rotated.stdout)
    assert found, rotated.stdout
    new = found.group(1)
    assert new != old
    republished = server.cli("publish", "--stage", "prod", "--format", "apt", env=WIDE)
    assert republished.returncode == 0, republished.stdout + republished.stderr
    wait_for_publishing(server)  # the rotation's own publish of every stage as well
    assert current_snapshot(server, "apt/prod")["signed_by"] == [new, old]
    both_keys = public_key(server)
    assert sorted(fingerprints(both_keys)) == sorted([new, old])
    new_key = export_keys(both_keys, only=[new])
    assert fingerprints(new_key) == [new]

    for label, key in (("old", old_key), ("new", new_key)):
        client = apt_client(root=tmp_path / label, url=server.url, key=key)
        updated = client.update()
        assert updated.ok, f"a client trusting only the {label} key:\n{updated}"
        assert "is not signed" not in updated.output
        installed = client.install("rotate-me")
        assert installed.ok, f"a client trusting only the {label} key:\n{installed}"

    keys = server.cli("keys", "show", "--json")
    states = {k["fingerprint"]: k["status"] for k in json.loads(keys.stdout)["keys"]}
    assert states == {new: "active", old: "retiring"}


def test_during_a_rotation_dnf_and_pacman_clients_of_either_keyring_install(
    make_server, tmp_path: Path
) -> None:
    # Housekeeping every second: the end of the transition is published within seconds.
    server: Server = make_server(config={"publish": {"housekeeping_seconds": 1}})
    rpm = upload(server, build_rpm(tmp_path / "pkgs", name="rot-rpm", version="1.0"))
    pac = upload(server, build_pacman(tmp_path / "pkgs", name="rot-pac", version="1.0"))
    advance(server, [rpm, pac], to="prod")
    wait_for_publishing(server)
    old_key = public_key(server)
    rotated = server.cli("keys", "rotate", env=WIDE)
    assert rotated.returncode == 0, rotated.stderr
    wait_for_publishing(server)
    both_keys = public_key(server)
    assert len(fingerprints(both_keys)) == 2

    for label, key in (("old", old_key), ("both", both_keys)):
        dnf = dnf_client(root=tmp_path / f"dnf-{label}", url=server.url, key=key).install("rot-rpm")
        assert dnf.ok, f"dnf trusting the {label} keyring:\n{dnf}"
        keyring = pacman_keyring(gpgdir=tmp_path / f"pacman-{label}" / "gnupg", key=key)
        try:
            pacman = pacman_client(
                root=tmp_path / f"pacman-{label}", url=server.url, keyring=keyring
            ).install("rot-pac")
        finally:
            keyring.close()
        assert pacman.ok, f"pacman trusting the {label} keyring:\n{pacman}"

    # The transition ends (its days pass; here the date is moved): the server publishes every
    # channel again by itself, signed by the new key only, packages included.
    states = json.loads(server.cli("keys", "show", "--json").stdout)["keys"]
    [new] = [k["fingerprint"] for k in states if k["status"] == "active"]
    [old] = [k["fingerprint"] for k in states if k["status"] == "retiring"]
    with sqlite3.connect(server.data_dir / "packyard.db") as db:
        db.execute(
            "UPDATE signing_keys SET retire_after = '2000-01-01 00:00:00.000000' "
            "WHERE fingerprint = ?",
            (old,),
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        current_snapshot(server, channel)["signed_by"] != [new]
        for channel in ("dnf/prod", "pacman/prod", "apt/prod")
    ):
        time.sleep(0.5)
    for channel in ("dnf/prod", "pacman/prod", "apt/prod"):
        published = current_snapshot(server, channel)
        assert published["signed_by"] == [new], channel
        assert published["trigger"] == "signing keys changed", channel
    wait_for_publishing(server)
    shown = server.cli("keys", "show", "--stage", "prod", env=WIDE)
    assert re.search(rf"key {old} .*\(retired since 2000-01-01\)", shown.stdout), shown.stdout
    new_key = public_key(server)
    assert fingerprints(new_key) == [new]  # what clients are told to trust now
    dnf = dnf_client(root=tmp_path / "dnf-new", url=server.url, key=new_key).install("rot-rpm")
    assert dnf.ok, f"dnf trusting only the new key:\n{dnf}"
    keyring = pacman_keyring(gpgdir=tmp_path / "pacman-new" / "gnupg", key=new_key)
    try:
        pacman = pacman_client(
            root=tmp_path / "pacman-new", url=server.url, keyring=keyring
        ).install("rot-pac")
    finally:
        keyring.close()
    assert pacman.ok, f"pacman trusting only the new key:\n{pacman}"
