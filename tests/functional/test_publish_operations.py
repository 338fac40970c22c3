"""Running published channels as an operator does, checked with a real apt-get: rolling a channel
back, the client configuration ``packyard keys show`` prints, and keeping only the newest
versions in a channel.

Rolling back changes what apt/prod serves, so that test has its own server; the others share
one whose apt/prod channel keeps only the newest version of each package (keys show needs no
particular content).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.clients import (
    advance,
    apt_client,
    apt_keyring_path,
    fingerprints,
    public_key,
    running_server,
    upload,
    wait_for_publishing,
)
from tests.conftest import Server
from tests.pkgbuild import build_deb

WIDE = {"COLUMNS": "250"}  # tables and lines printed whole


@pytest.fixture(scope="module")
def keep_one_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = {"publish": {"channels": {"apt/prod": {"keep_latest": 1}}}}
    with running_server(tmp_path_factory.mktemp("keep-one"), config=config) as server:
        yield server


def current_snapshot(server: Server, channel: str) -> dict[str, Any]:
    with server.client() as client:
        response = client.get("/api/v1/channels", params={"channel": channel})
    assert response.status_code == 200, response.text
    current = response.json()[0]["current"]
    assert current is not None, f"{channel} was never published"
    return dict(current)


def test_rollback_serves_the_previous_publication_again(make_server, tmp_path: Path) -> None:
    server: Server = make_server()
    key = public_key(server)
    first, second = (
        upload(server, build_deb(tmp_path / "pkgs", name=name, version="1.0-1"))
        for name in ("roll-a", "roll-b")
    )
    advance(server, [first, second], to="stage")
    advance(server, [first], to="prod", stages=("prod",))
    wait_for_publishing(server)
    publication_1 = current_snapshot(server, "apt/prod")
    advance(server, [second], to="prod", stages=("prod",))
    wait_for_publishing(server)
    publication_2 = current_snapshot(server, "apt/prod")
    assert publication_2["artifact_count"] == 2

    both = apt_client(root=tmp_path / "both", url=server.url, key=key)
    assert both.update().ok
    assert both.versions("roll-a") == ["1.0-1"]
    assert both.versions("roll-b") == ["1.0-1"]

    rolled = server.cli("publications", "rollback", "apt/prod", env=WIDE)
    assert rolled.returncode == 0, rolled.stderr
    assert f"apt/prod now serves the content of snapshot {publication_1['snapshot']}" in (
        rolled.stdout
    )
    assert "(1 artifacts" in rolled.stdout
    publication_3 = current_snapshot(server, "apt/prod")
    assert publication_3["trigger"] == "rollback"
    assert publication_3["snapshot"] not in (publication_1["snapshot"], publication_2["snapshot"])

    # The client that already has the newer Release takes the rollback: its Release is
    # re-dated (apt ignores a Release older than the one it has) and signed again.
    assert both.update().ok
    assert both.versions("roll-a") == ["1.0-1"]
    assert both.versions("roll-b") == []

    after = apt_client(root=tmp_path / "after", url=server.url, key=key)
    assert after.update().ok
    assert after.versions("roll-a") == ["1.0-1"]
    assert after.versions("roll-b") == []
    installed = after.install("roll-a")
    assert installed.ok, installed
    refused = after.install("roll-b")
    assert not refused.ok
    assert "Unable to locate package roll-b" in refused.output

    listing = server.cli(
        "publications", "list", "--channel", "apt/prod", "--history", "5", env=WIDE
    )
    assert listing.returncode == 0, listing.stderr
    snapshots = (publication_1["snapshot"], publication_2["snapshot"], publication_3["snapshot"])
    status_of = {
        snapshot: line.split("│")[5].strip()
        for line in listing.stdout.splitlines()
        for snapshot in snapshots
        if snapshot in line
    }
    assert status_of == {
        publication_1["snapshot"]: "superseded",
        publication_2["snapshot"]: "rolled_back",
        publication_3["snapshot"]: "current",
    }, listing.stdout

    audit = server.cli("audit", "--action", "publication.rollback", "--json")
    assert audit.returncode == 0, audit.stderr
    events = json.loads(audit.stdout)
    assert len(events) == 1, events
    assert events[0]["actor"] == "admin"
    assert events[0]["object_id"] == "apt/prod"
    assert events[0]["before"] == {"snapshot": publication_2["snapshot"]}
    assert events[0]["after"] == {
        "snapshot": publication_3["snapshot"],
        "content_of": publication_1["snapshot"],
        "signed_by": publication_3["signed_by"],
    }
    verified = server.cli("audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def block(text: str, title: str) -> str:
    """The lines printed under ``# <title>`` by ``packyard keys show``."""
    # Blocks end at the next heading; "# pipeline ..." lines are comments inside a block.
    heading = r"^# (?:apt|dnf|pacman|Munki|public key)\b"
    match = re.search(rf"^# {re.escape(title)}\n(.*?)(?={heading}|\Z)", text, re.S | re.M)
    assert match, f"no '# {title}' block in:\n{text}"
    return match.group(1).strip()


def test_keys_show_prints_client_configuration_that_works(
    keep_one_server: Server, tmp_path: Path
) -> None:
    server = keep_one_server
    wait_for_publishing(server)  # the first start publishes every channel
    shown = server.cli("keys", "show", "--stage", "prod", env=WIDE)
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    [fpr] = fingerprints(public_key(server))
    assert f"key {fpr}" in out

    apt_line = block(out, "apt: /etc/apt/sources.list.d/packyard-prod.list")
    assert apt_line == (
        f"deb [signed-by=/etc/apt/keyrings/packyard.asc] {server.url}/repos/apt prod main"
    )
    dnf_repo = block(out, "dnf: /etc/yum.repos.d/packyard-prod.repo").splitlines()
    assert dnf_repo[0] == "[packyard-prod]"
    assert f"baseurl={server.url}/repos/dnf/prod/" in dnf_repo
    assert "gpgcheck=1" in dnf_repo
    assert "repo_gpgcheck=1" in dnf_repo
    assert f"gpgkey={server.url}/repos/keys/packyard.asc" in dnf_repo
    assert block(out, "pacman: /etc/pacman.conf").splitlines() == [
        "[packyard-prod]",
        "SigLevel = Required DatabaseRequired",
        f"Server = {server.url}/repos/pacman/prod/$arch",
    ]
    pacman_setup = block(out, "pacman: trust the key")
    assert "sudo pacman-key --add /tmp/packyard.asc" in pacman_setup
    assert f"sudo pacman-key --lsign-key {fpr}" in pacman_setup
    apt_setup = block(out, "apt: trust the key")
    assert f"{server.url}/repos/keys/packyard.asc" in apt_setup
    assert "-----BEGIN PGP PUBLIC KEY BLOCK-----" in block(out, "public key")

    # The printed apt line, verbatim but for where this private root keeps the keyring.
    root = tmp_path / "apt"
    line = apt_line.replace("/etc/apt/keyrings/packyard.asc", str(apt_keyring_path(root)))
    client = apt_client(root=root, key=public_key(server), sources_line=line)
    updated = client.update()
    assert updated.ok, updated
    assert f"Get:1 {server.url}/repos/apt prod InRelease" in updated.output
    assert "NO_PUBKEY" not in updated.output


def test_client_configuration_uses_the_url_clients_came_in_on(keep_one_server: Server) -> None:
    # Without publish.base_url, the lines name the host the request used (a proxy's, a DNS
    # name), never the bind address (0.0.0.0 under `PACKYARD_HOST=0.0.0.0 ./dev run`).
    with keep_one_server.client() as client:
        proxied = client.get(
            "/api/v1/keys",
            params={"stage": "prod"},
            headers={"Host": "packages.example.test:8443"},
        )
        assert proxied.status_code == 200, proxied.text
        config = proxied.json()["client_config"]
        assert "http://packages.example.test:8443/repos/apt prod main" in config["apt_sources"]
        channels = client.get("/api/v1/channels", headers={"Host": "pkgs.example.test"})
        assert {c["url"].split("/repos/")[0] for c in channels.json()} == {
            "http://pkgs.example.test"
        }
        unknown = client.get("/api/v1/keys", params={"stage": "nosuch"})
        assert unknown.status_code == 404, unknown.text
        assert "nosuch" in unknown.json()["error"]["message"]
        for bad in ("javascript:alert(1)", "packages.example.com", "https://x.test/?a=1"):
            refused = client.get("/api/v1/keys", params={"stage": "prod", "base_url": bad})
            assert refused.status_code == 400, (bad, refused.text)
        given = client.get(
            "/api/v1/keys", params={"stage": "prod", "base_url": "https://repo.example.test/"}
        )
        assert (
            "https://repo.example.test/repos/apt prod"
            in given.json()["client_config"]["apt_sources"]
        )


def test_keep_latest_publishes_only_the_newest_version(
    keep_one_server: Server, tmp_path: Path
) -> None:
    server = keep_one_server
    ids = [
        upload(server, build_deb(tmp_path / "pkgs", name="keep-one", version=version))
        for version in ("2.0-1", "1.0-1", "1.5-1")
    ]
    advance(server, ids, to="prod")
    wait_for_publishing(server)

    def versions_in(suite: str) -> list[str]:
        packages = httpx.get(
            f"{server.url}/repos/apt/dists/{suite}/main/binary-amd64/Packages", timeout=30
        )
        assert packages.status_code == 200, packages.text
        return [
            line.removeprefix("Version: ")
            for line in packages.text.splitlines()
            if line.startswith("Version: ")
        ]

    assert versions_in("prod") == ["2.0-1"]
    assert sorted(versions_in("stage")) == ["1.0-1", "1.5-1", "2.0-1"]  # no keep_latest there
    client = apt_client(root=tmp_path / "apt", url=server.url, key=public_key(server))
    assert client.update().ok
    assert client.versions("keep-one") == ["2.0-1"]


def test_publish_full_and_recompute_rebuild_the_same_channel(
    keep_one_server: Server, tmp_path: Path
) -> None:
    server = keep_one_server
    ids = [
        upload(server, build_deb(tmp_path / "pkgs", name=f"rebuild-{n}", version="1.0-1"))
        for n in ("a", "b")
    ]
    advance(server, ids, to="stage", stages=("ci", "dev", "stage"))
    wait_for_publishing(server)
    url = f"{server.url}/repos/apt/dists/stage/main/binary-amd64/Packages.xz"
    before = httpx.get(url, timeout=30)
    assert before.status_code == 200

    lines = {}
    for flag in ("", "--incremental", "--recompute"):
        args = ["publish", "--stage", "stage", "--format", "apt", *([flag] if flag else [])]
        done = server.cli(*args, env=WIDE)
        assert done.returncode == 0, done.stdout + done.stderr
        [line] = [x for x in done.stdout.splitlines() if "apt/stage: snapshot" in x]
        lines[flag] = line
    count = int(re.search(r"(\d+) artifacts", lines[""]).group(1))  # type: ignore[union-attr]
    assert count >= 2
    blocks = {
        flag: int(re.search(r"(\d+) index blocks", line).group(1)) for flag, line in lines.items()
    }  # type: ignore[union-attr]
    # `packyard publish` rebuilds every index from the stored entries (every block rendered
    # again); --incremental renders only changed blocks (none here); --recompute also re-reads
    # every package file.
    assert "0 new index entries" in lines[""], lines
    assert blocks[""] > 0 and blocks["--incremental"] == 0, lines
    assert f"{count} new index entries" in lines["--recompute"], lines
    after = httpx.get(url, timeout=30)
    assert after.content == before.content  # the same index, byte for byte
    client = apt_client(
        root=tmp_path / "apt-stage", url=server.url, key=public_key(server), suite="stage"
    )
    assert client.update().ok
    assert client.versions("rebuild-a") == ["1.0-1"]


def test_a_pipeline_publishes_its_own_apt_distribution(make_server, tmp_path: Path) -> None:
    # The "bookworm" pipeline's debs go to dists/bookworm-<stage>/ (Codename bookworm,
    # component contrib, amd64 only); the default pipeline keeps dists/<stage>/ main.
    config = {
        "pipelines": {
            "default": {"stages": [{"name": "ci"}, {"name": "prod"}]},
            "bookworm": {
                "stages": [{"name": "ci"}, {"name": "prod"}],
                "apt": {
                    "suite_template": "bookworm-{stage}",
                    "codename_template": "bookworm",
                    "component": "contrib",
                    "architectures": ["amd64"],
                },
            },
        },
        "package_pipelines": {"bw-tool": "bookworm"},
    }
    server: Server = make_server(config=config)
    ids = {
        name: upload(server, build_deb(tmp_path / "pkgs", name=name, version="1.0-1"))
        for name in ("bw-tool", "plain-tool")
    }
    advance(server, list(ids.values()), to="prod", stages=("ci", "prod"))
    wait_for_publishing(server)
    key = public_key(server)

    release = httpx.get(f"{server.url}/repos/apt/dists/bookworm-prod/Release", timeout=30)
    assert release.status_code == 200, release.text
    fields = dict(line.split(": ", 1) for line in release.text.splitlines() if ": " in line[:40])
    assert (fields["Suite"], fields["Codename"], fields["Components"]) == (
        "bookworm-prod",
        "bookworm",
        "contrib",
    )
    assert fields["Architectures"] == "amd64"

    shown = server.cli("keys", "show", "--stage", "prod", env=WIDE)
    assert shown.returncode == 0, shown.stderr
    lines = block(shown.stdout, "apt: /etc/apt/sources.list.d/packyard-prod.list").splitlines()
    base = f"deb [signed-by=/etc/apt/keyrings/packyard.asc] {server.url}/repos/apt"
    assert lines == [
        "# pipeline default",
        f"{base} prod main",
        "# pipeline bookworm",
        f"{base} bookworm-prod contrib",
    ]

    # Each printed line, used verbatim by a real apt, sees exactly its pipeline's package.
    for line, mine, other in (
        (lines[3], "bw-tool", "plain-tool"),
        (lines[1], "plain-tool", "bw-tool"),
    ):
        root = tmp_path / f"apt-{mine}"
        client = apt_client(
            root=root,
            key=key,
            sources_line=line.replace(
                "/etc/apt/keyrings/packyard.asc", str(apt_keyring_path(root))
            ),
        )
        updated = client.update()
        assert updated.ok, updated
        assert client.versions(mine) == ["1.0-1"]
        assert client.versions(other) == []
        installed = client.install(mine)
        assert installed.ok, installed
