"""The channels without a native client here: Munki catalogs, packet and file indexes —
served, signed (where the format allows) and pointing at the right bytes."""

from __future__ import annotations

import hashlib
import json
import plistlib
import subprocess
from pathlib import Path

import httpx
from tests.clients import advance, public_key, upload, wait_for_publishing
from tests.conftest import Server
from tests.pkgbuild import build_macos_pkg, build_packet


def _gpgv(
    data: bytes, signature: bytes, key: bytes, tmp: Path
) -> subprocess.CompletedProcess[bytes]:
    keyring = tmp / "keyring.gpg"
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--no-default-keyring",
            "--homedir",
            str(tmp / "home"),
            "--keyring",
            str(keyring),
            "--import",
        ],
        input=key,
        capture_output=True,
        check=True,
    )
    # The import started an agent for this home: it would outlive the test run.
    subprocess.run(["gpgconf", "--homedir", str(tmp / "home"), "--kill", "all"], check=False)
    (tmp / "data").write_bytes(data)
    (tmp / "data.asc").write_bytes(signature)
    return subprocess.run(
        ["gpgv", "--keyring", str(keyring), str(tmp / "data.asc"), str(tmp / "data")],
        capture_output=True,
    )


def test_munki_packet_and_file_channels(make_server, tmp_path: Path) -> None:
    server: Server = make_server()
    pkg = build_macos_pkg(tmp_path / "pkgs", identifier="com.example.notes", version="2.3.1")
    packet = build_packet(
        tmp_path / "pkgs",
        name="edge-agent",
        version="1.0.0",
        tags=["arch=armv7l"],
        files={"usr/bin/edge": b"#!/bin/sh\n"},
        scripts={"postinst": "#!/bin/sh\nexit 0\n"},
    )
    blob = tmp_path / "pkgs" / "firmware-2024.03.bin"
    blob.write_bytes(b"\x7fFIRMWARE" * 100)
    ids = [upload(server, p) for p in (pkg, packet, blob)]
    advance(server, ids, to="dev")
    wait_for_publishing(server)
    verify_dir = tmp_path / "verify"
    (verify_dir / "home").mkdir(parents=True, mode=0o700)
    key = public_key(server)

    with httpx.Client(base_url=f"{server.url}/repos") as repos:
        # Munki: the stage's own catalog and the "testing" alias are the same catalog.
        own = repos.get("/munki/catalogs/dev")
        alias = repos.get("/munki/catalogs/testing")
        assert own.status_code == alias.status_code == 200
        assert own.content == alias.content
        [item] = plistlib.loads(own.content)
        assert (item["name"], item["version"]) == ("com.example.notes", "2.3.1")
        assert set(item["catalogs"]) == {"dev", "testing"}
        installer = repos.get(f"/munki/pkgs/{item['installer_item_location']}")
        assert installer.status_code == 200
        assert installer.content == pkg.read_bytes()
        assert hashlib.sha256(installer.content).hexdigest() == item["installer_item_hash"]
        assert repos.get("/munki/catalogs/production").status_code == 200  # empty prod catalog
        assert plistlib.loads(repos.get("/munki/catalogs/production").content) == []

        # Packet index for the device agent: signed, and every URL serves the hashed bytes.
        index = repos.get("/packet/dev/index.json")
        signature = repos.get("/packet/dev/index.json.asc")
        assert index.status_code == signature.status_code == 200
        assert _gpgv(index.content, signature.content, key, verify_dir).returncode == 0
        items = json.loads(index.content)["items"]
        assert [(i["name"], i["version"], i["tags"]) for i in items] == [
            ("edge-agent", "1.0.0", ["arch=armv7l"])
        ]
        fetched = repos.get(f"/packet/dev/{items[0]['url']}")
        assert hashlib.sha256(fetched.content).hexdigest() == items[0]["sha256"]

        # Generic files.
        files_index = repos.get("/files/dev/index.json")
        assert (
            _gpgv(
                files_index.content, repos.get("/files/dev/index.json.asc").content, key, verify_dir
            ).returncode
            == 0
        )
        [entry] = json.loads(files_index.content)["items"]
        assert entry["filename"] == "firmware-2024.03.bin"
        assert repos.get(f"/files/dev/{entry['url']}").content == blob.read_bytes()

        # A tampered index no longer verifies.
        tampered = index.content.replace(b"edge-agent", b"edge-agenT")
        assert _gpgv(tampered, signature.content, key, verify_dir).returncode != 0
