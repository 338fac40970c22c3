"""The channels without a native client here: Munki catalogs, packet and file indexes —
served, signed (where the format allows) and pointing at the right bytes."""

from __future__ import annotations

import hashlib
import json
import plistlib
import re
import subprocess
from pathlib import Path
from urllib.parse import quote

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


def _defaults(shown: str) -> dict[str, str]:
    """The ManagedInstalls preferences `packyard keys show` tells a Mac admin to write."""
    lines = re.findall(
        r'^sudo defaults write /Library/Preferences/ManagedInstalls (\w+) "([^"]*)"$',
        shown,
        re.M,
    )
    return dict(lines)


def test_builds_per_architecture_and_a_munki_client_set_up_as_keys_show_says(
    make_server, tmp_path: Path
) -> None:
    """Two builds of one name and version for two architectures are two downloads; a Mac set
    up with the lines `keys show` prints finds its manifest, catalog and its own build; a file
    whose name needs escaping is fetched by its index URL."""
    server: Server = make_server()
    mac_pkgs = {
        arch: build_macos_pkg(
            tmp_path / f"pkg-{arch}",
            identifier="com.example.tool",
            version="1.0",
            product=True,
            host_architectures=arch,
        )
        for arch in ("x86_64", "arm64")
    }
    packets = {
        arch: build_packet(
            tmp_path / f"packet-{arch}",
            name="edge-agent",
            version="1.0.0",
            arch=arch,
            files={"usr/bin/edge": f"#!/bin/sh\necho {arch}\n".encode()},
        )
        for arch in ("armv7l", "aarch64")
    }
    blob = tmp_path / "fw blob#1?.bin"
    blob.write_bytes(b"\x7fFIRMWARE" * 50)
    ids = [upload(server, p) for p in (*mac_pkgs.values(), *packets.values())]
    uploaded = server.upload(blob, package="fw", version="1.0")
    assert uploaded.status_code == 201, uploaded.text
    ids.append(str(uploaded.json()["sha256"]))
    advance(server, ids, to="dev")
    wait_for_publishing(server)

    shown = server.cli("keys", "show", "--stage", "dev", env={"COLUMNS": "250"})
    assert shown.returncode == 0, shown.stderr
    prefs = _defaults(shown.stdout)
    assert prefs == {"SoftwareRepoURL": f"{server.url}/repos/munki", "ClientIdentifier": "dev"}
    assert "Catalogs =" not in shown.stdout  # no such Munki preference

    with httpx.Client(timeout=30) as http:
        # What managedsoftwareupdate fetches: manifests/<ClientIdentifier>, its catalogs, then
        # for each Mac the build whose supported_architectures names it (by a quoted URL).
        repo = prefs["SoftwareRepoURL"]
        manifest = http.get(f"{repo}/manifests/{prefs['ClientIdentifier']}")
        assert manifest.status_code == 200, manifest.text
        assert manifest.headers["content-type"].startswith("application/xml")
        wanted = plistlib.loads(manifest.content)
        assert wanted == {"catalogs": ["dev"], "optional_installs": ["com.example.tool"]}
        assert http.get(f"{repo}/manifests/testing").content == manifest.content  # the alias
        items = [
            item
            for name in wanted["catalogs"]
            for item in plistlib.loads(http.get(f"{repo}/catalogs/{name}").content)
            if item["name"] in wanted["optional_installs"]
        ]
        assert len(items) == 2
        for arch, pkg in mac_pkgs.items():
            [mine] = [i for i in items if arch in i.get("supported_architectures", [])]
            assert mine["receipts"] == [
                {"packageid": "com.example.tool", "version": "1.0", "installed_size": 12}
            ]
            got = http.get(f"{repo}/pkgs/{quote(mine['installer_item_location'])}")
            assert got.status_code == 200
            assert hashlib.sha256(got.content).hexdigest() == mine["installer_item_hash"]
            assert got.content == pkg.read_bytes()

        # Packets: one item per architecture, each URL serving its own build.
        index = json.loads(http.get(f"{server.url}/repos/packet/dev/index.json").content)
        by_arch = {i["arch"]: i for i in index["items"]}
        assert sorted(by_arch) == ["aarch64", "armv7l"]
        assert by_arch["armv7l"]["url"] != by_arch["aarch64"]["url"]
        for arch, packet in packets.items():
            got = http.get(f"{server.url}/repos/packet/dev/{by_arch[arch]['url']}")
            assert got.status_code == 200
            assert got.content == packet.read_bytes()

        # A file name with a space, "#" and "?": its url is encoded and served.
        files = json.loads(http.get(f"{server.url}/repos/files/dev/index.json").content)
        [entry] = files["items"]
        assert entry["filename"] == "fw blob#1?.bin"
        got = http.get(f"{server.url}/repos/files/dev/{entry['url']}")
        assert got.status_code == 200
        assert got.content == blob.read_bytes()
