"""Mirrors as an operator runs them: `packyard mirrors create` on the server, `packyard mirror
sync` (a subprocess) on the mirror host, a plain static web server in front of the mirror's
directory, and real apt-get, dnf and pacman installing from it.

- The copy is complete and verified: clients that trust only the key the mirror pinned
  install from it; a demotion removes the file from the mirror on the next sync.
- Nothing unverified lands: a file or a listing altered by a proxy on the way, or keys that
  did not sign, make the sync exit non-zero and leave the previous tree as it was.
- A publication while a sync downloads is followed (the new listing, staged packages kept),
  not taken for tampering; `--channels` leaves the other channels as they are.
- The mirror's token is checked (wrong or revoked: exit 3) and is good for nothing but
  /repos and the mirror API; heartbeats show in `GET /api/v1/mirrors` and `mirrors list`
  (with the synced snapshots, the last good sync and the whole error).
- `--daemon` follows promotions through the long poll and backs off while the server is down
  or the mirror's disk is full (reported in its heartbeat); local mistakes (DIR a file, a URL
  that is not one) get a clear error, and a failed first sync leaves nothing behind.

One server per module; each test has its own mirror, directory and package names.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.clients import (
    TamperingProxy,
    advance,
    apt_client,
    dnf_client,
    flip_byte,
    make_gpg_key,
    pacman_client,
    pacman_keyring,
    running_server,
    upload,
    wait_for_publishing,
)
from tests.conftest import Server, free_port, run_cli
from tests.pkgbuild import build_deb, build_pacman, build_rpm

CONFIG = {"publish": {"apt": {"architectures": ["amd64"]}, "pacman": {"architectures": ["x86_64"]}}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("mirror-server"), config=CONFIG) as started:
        yield started


def create_mirror(server: Server, name: str, *channels: str) -> str:
    """`packyard mirrors create` as an admin; returns the token it shows once."""
    args = ["mirrors", "create", name, "--json"]
    if channels:
        args += ["--channels", ",".join(channels)]
    result = server.cli(*args)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["user"] == f"mirror-{name}" and created["token"].startswith("pky_")
    return str(created["token"])


def mirror_sync(
    server: Server, dest: Path, token: str, *extra: str, url: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`packyard mirror sync URL DIR --token T` as a subprocess on the "mirror host" (the
    server's URL unless ``url`` names a proxy in front of it)."""
    return run_cli(
        "mirror", "sync", url or server.url, str(dest), "--token", token, *extra, env=server.env
    )


def tree_digest(dest: Path) -> dict[str, str]:
    """Every served file of a mirror directory with its sha256."""
    root = dest / "repos"
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def mirrors(server: Server) -> dict[str, dict[str, object]]:
    with server.client() as client:
        response = client.get("/api/v1/mirrors")
    assert response.status_code == 200, response.text
    return {m["name"]: m for m in response.json()}


def test_a_mirror_serves_apt_dnf_and_pacman_clients_and_follows_demotions(
    server: Server, static_server: Callable[[Path], str], tmp_path: Path
) -> None:
    packages = {
        "deb": build_deb(tmp_path / "pkgs", name="mirrored-deb", version="1.0-1"),
        "rpm": build_rpm(tmp_path / "pkgs", name="mirrored-rpm", version="1.0"),
        "pacman": build_pacman(tmp_path / "pkgs", name="mirrored-pac", version="1.0"),
    }
    ids = {kind: upload(server, path) for kind, path in packages.items()}
    advance(server, list(ids.values()), to="prod")
    wait_for_publishing(server)
    token = create_mirror(server, "full", "apt/prod", "dnf/prod", "pacman/prod")
    dest = tmp_path / "mirror"

    first = mirror_sync(server, dest, token)

    assert first.returncode == 0, first.stderr
    assert "Pinned the server's signing keys" in first.stdout
    deb_path = dest / "repos/apt/pool/main/m/mirrored-deb/mirrored-deb_1.0-1_all.deb"
    assert deb_path.read_bytes() == packages["deb"].read_bytes()
    assert (dest / "repos/dnf/prod/repodata/repomd.xml.asc").is_file()
    assert (dest / "repos/pacman/prod/x86_64/packyard-prod.db.sig").is_file()
    assert not (dest / "repos/packet").exists()  # not a channel this mirror follows

    # The mirror's own key file, as a client of the mirror fetches it.
    base = static_server(dest)
    key = httpx.get(f"{base}/repos/keys/packyard.asc").content
    apt = apt_client(root=tmp_path / "apt", url=base, key=key)
    assert apt.update().ok
    installed = apt.install("mirrored-deb")
    assert installed.ok, installed
    assert (tmp_path / "apt/usr/share/doc/mirrored-deb/README").is_file()
    dnf = dnf_client(root=tmp_path / "dnf", url=base, key=key).install("mirrored-rpm")
    assert dnf.ok, dnf
    assert (tmp_path / "dnf/root/usr/share/mirrored-rpm/README").is_file()
    with pacman_keyring(gpgdir=tmp_path / "pacman-gnupg", key=key) as keyring:
        pac = pacman_client(root=tmp_path / "pacman", url=base, keyring=keyring)
        installed = pac.install("mirrored-pac")
    assert installed.ok, installed
    assert (tmp_path / "pacman/root/usr/share/mirrored-pac/README").is_file()

    shown = mirrors(server)["full"]
    assert shown["status"] == "ok" and shown["behind"] == [] and shown["errors"] == []
    assert shown["synced"] == shown["current"] and shown["last_heartbeat_at"]
    listed = server.cli("mirrors", "list")
    assert listed.returncode == 0 and "full" in listed.stdout and "ok" in listed.stdout

    demoted = server.cli("demote", ids["deb"][:16], "--from", "prod")
    assert demoted.returncode == 0, demoted.stderr
    wait_for_publishing(server)
    # Every format of the stage is published again; the apt channel changed.
    assert "apt/prod" in mirrors(server)["full"]["behind"]
    again = mirror_sync(server, dest, token)

    assert again.returncode == 0, again.stderr
    assert not deb_path.exists() and not deb_path.parent.exists()
    packages_index = dest / "repos/apt/dists/prod/main/binary-amd64/Packages"
    assert "mirrored-deb" not in packages_index.read_text()
    assert (dest / "repos/dnf/prod/repodata/repomd.xml").is_file()
    assert mirrors(server)["full"]["behind"] == []


def test_a_tampered_file_or_listing_is_refused_and_the_tree_stays(
    server: Server, tmp_path: Path
) -> None:
    token = create_mirror(server, "guarded", "apt/prod")
    dest = tmp_path / "mirror"
    assert mirror_sync(server, dest, token).returncode == 0
    before = tree_digest(dest)
    deb = build_deb(tmp_path / "pkgs", name="tamper-me", version="2.0-1")
    advance(server, [upload(server, deb)], to="prod")
    wait_for_publishing(server)
    pool = "/repos/apt/pool/main/t/tamper-me/tamper-me_2.0-1_all.deb"
    altered = flip_byte(deb.read_bytes(), deb.stat().st_size // 2)

    def alter_file(path: str, body: bytes) -> bytes | None:
        return altered if path == pool else None

    with TamperingProxy(upstream=server.url, tamper=alter_file) as proxy:
        refused = mirror_sync(server, dest, token, url=proxy.url)

    assert refused.returncode == 9, refused.stdout + refused.stderr
    assert "does not match the signed listing" in refused.stderr
    assert proxy.tampered == [pool]
    assert tree_digest(dest) == before

    def alter_listing(path: str, body: bytes) -> bytes | None:
        # Make the listing agree with the altered file: now its signature cannot.
        if path != "/api/v1/mirror/listing":
            return alter_file(path, body)
        doc = json.loads(body)
        listing = json.loads(doc["listing"])
        listing["files"][pool.removeprefix("/repos/")]["sha256"] = hashlib.sha256(
            altered
        ).hexdigest()
        doc["listing"] = json.dumps(listing, sort_keys=True, separators=(",", ":"))
        return json.dumps(doc).encode()

    with TamperingProxy(upstream=server.url, tamper=alter_listing) as proxy:
        refused = mirror_sync(server, dest, token, url=proxy.url)

    assert refused.returncode == 9, refused.stdout + refused.stderr
    assert "signature of apt/prod does not verify" in refused.stderr
    assert tree_digest(dest) == before

    direct = mirror_sync(server, dest, token)
    assert direct.returncode == 0, direct.stderr
    assert (dest / pool.removeprefix("/")).read_bytes() == deb.read_bytes()


def test_an_index_damaged_on_the_servers_disk_is_refused(server: Server, tmp_path: Path) -> None:
    # The listing carries what publishing wrote, not what the disk holds now: a Packages file
    # altered in place on the server (bit rot, a stray editor) fails the mirror's check.
    deb = build_deb(tmp_path / "pkgs", name="rot-stage-only", version="1.0-1")
    advance(server, [upload(server, deb)], to="stage")
    wait_for_publishing(server)
    token = create_mirror(server, "rot", "apt/stage")
    packages = server.data_dir / "publish/apt/stage/current/dists/stage/main/binary-amd64/Packages"
    original = packages.read_bytes()
    packages.write_bytes(flip_byte(original, len(original) // 2))  # in place, same size
    try:
        refused = mirror_sync(server, tmp_path / "mirror", token)
    finally:
        packages.write_bytes(original)
    assert refused.returncode == 9, refused.stdout + refused.stderr
    assert "apt/dists/stage/main/binary-amd64/" in refused.stderr
    assert "does not match the signed listing" in refused.stderr
    again = mirror_sync(server, tmp_path / "mirror", token)
    assert again.returncode == 0, again.stderr


def test_keys_that_did_not_sign_are_refused_and_reported(server: Server, tmp_path: Path) -> None:
    token = create_mirror(server, "keys", "dnf/prod")
    dest = tmp_path / "mirror"
    assert mirror_sync(server, dest, token).returncode == 0
    good = mirrors(server)["keys"]
    assert good["last_sync_at"] and good["last_heartbeat_at"]
    before = tree_digest(dest)
    other = tmp_path / "other.asc"
    other.write_bytes(make_gpg_key(tmp_path, uid="Not Packyard <x@example.org>"))

    refused = mirror_sync(server, dest, token, "--keyring", str(other))

    assert refused.returncode == 9, refused.stdout + refused.stderr
    assert "does not verify with the pinned keys" in refused.stderr
    assert tree_digest(dest) == before
    shown = mirrors(server)["keys"]
    assert shown["status"] == "error" and "does not verify" in shown["errors"][0]
    # The heartbeat moved on; the last good sync did not.
    assert shown["last_heartbeat_at"] != good["last_heartbeat_at"]
    assert shown["last_sync_at"] == good["last_sync_at"]
    listed = server.cli("mirrors", "list")
    assert "error" in listed.stdout
    assert f"keys: error: {shown['errors'][0]}" in listed.stdout  # in full, not cut
    assert good["last_sync_at"][:19].replace("T", " ") in listed.stdout
    assert f"dnf/prod {shown['synced']['dnf/prod']}" in listed.stdout

    assert mirror_sync(server, dest, token).returncode == 0
    assert mirrors(server)["keys"]["status"] == "ok"


def test_the_mirror_token_is_checked_and_good_only_for_mirroring(
    server: Server, tmp_path: Path
) -> None:
    token = create_mirror(server, "locked", "apt/prod")
    dest = tmp_path / "mirror"

    wrong = mirror_sync(server, dest, "pky_" + "x" * 43)
    assert wrong.returncode == 3, wrong.stderr
    assert "refused the mirror's token" in wrong.stderr
    admin = mirror_sync(server, dest, server.token)
    assert admin.returncode == 4 and "only a mirror's own token" in admin.stderr
    assert not (dest / "repos").exists()

    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as c:
        for path in ("/api/v1/jobs", "/api/v1/artifacts", "/api/v1/whoami", "/api/v1/mirrors"):
            assert c.get(path).status_code == 403, path
        assert c.post("/api/v1/mirrors", json={"name": "sneaky"}).status_code == 403
        assert c.get("/repos/apt/dists/prod/InRelease").status_code == 200
        assert c.get("/api/v1/mirror/changes", params={"wait": 0}).status_code == 200
    with server.client() as admin_client:
        assert admin_client.get("/api/v1/mirror/changes").status_code == 403

    assert mirror_sync(server, dest, token).returncode == 0
    revoked = server.cli("mirrors", "revoke", "locked")
    assert revoked.returncode == 0 and "Revoked 1 token" in revoked.stdout
    refused = mirror_sync(server, dest, token)
    assert refused.returncode == 3 and "revoked" in refused.stderr

    issued = server.cli("mirrors", "token", "locked")
    assert issued.returncode == 0, issued.stderr
    new_token = next(w for w in issued.stdout.split() if w.startswith("pky_"))
    assert mirror_sync(server, dest, new_token).returncode == 0


def _ctrl_c_works() -> None:
    """In the daemon's process: SIGINT as at a terminal. A test run started in the background
    (`cmd &`, nohup) ignores SIGINT, children inherit that, and Python then never raises
    KeyboardInterrupt: the daemon would not stop."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_daemon_follows_promotions_and_backs_off_while_the_server_is_down(
    server: Server, tmp_path: Path
) -> None:
    token = create_mirror(server, "daemon", "apt/prod")
    dead = f"http://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "packyard", "mirror", "sync"]
    env = {**server.env, "PACKYARD_MIRROR_TOKEN": token}
    err_path = tmp_path / "down.err"
    with err_path.open("w") as err_file:
        down = subprocess.Popen(
            [*cmd, dead, str(tmp_path / "down"), "--daemon"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            text=True,
            preexec_fn=_ctrl_c_works,
        )
    try:
        # Interrupted once it is retrying (its backoff loop is what is tested).
        deadline = time.monotonic() + 60
        while "retrying in" not in err_path.read_text():
            assert down.poll() is None and time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.2)
    finally:
        down.send_signal(signal.SIGINT)
        down.wait(timeout=30)
    assert "Stopped." in err_path.read_text()

    dest = tmp_path / "mirror"
    daemon = subprocess.Popen(
        [*cmd, server.url, str(dest), "--daemon", "--wait", "20"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ctrl_c_works,
    )
    try:
        deadline = time.monotonic() + 30
        while not (dest / "repos/apt/dists/prod/InRelease").is_file():
            assert daemon.poll() is None and time.monotonic() < deadline, daemon.communicate()
            time.sleep(0.2)
        deb = build_deb(tmp_path / "pkgs", name="followed", version="1.0-1")
        advance(server, [upload(server, deb)], to="prod")
        target = dest / "repos/apt/pool/main/f/followed/followed_1.0-1_all.deb"
        deadline = time.monotonic() + 30
        while not target.is_file():
            assert daemon.poll() is None, daemon.communicate()
            assert time.monotonic() < deadline, "the daemon did not pick up the promotion"
            time.sleep(0.2)
        assert target.read_bytes() == deb.read_bytes()
    finally:
        daemon.send_signal(signal.SIGINT)
        out, err = daemon.communicate(timeout=30)
    assert "Traceback" not in err, err
    assert "1 files downloaded" in err or "downloaded" in out, out + err


def test_on_a_private_server_a_mirror_token_reads_only_its_channels(
    make_server, tmp_path: Path
) -> None:
    # publish.public = false: /repos needs a token, and a mirror's token is limited to the
    # channels the mirror was created for (least privilege), while a reader sees everything.
    server: Server = make_server(config={"publish": {"public": False, **CONFIG["publish"]}})
    in_prod = upload(server, build_deb(tmp_path / "pkgs", name="scope-prod", version="1.0-1"))
    in_stage = upload(server, build_deb(tmp_path / "pkgs", name="scope-stage", version="1.0-1"))
    advance(server, [in_prod, in_stage], to="stage")
    advance(server, [in_prod], to="prod", stages=("prod",))
    wait_for_publishing(server)
    token = create_mirror(server, "scoped", "apt/prod")

    def pool_path(name: str) -> str:
        with server.client() as client:
            packages = client.get(
                f"/repos/apt/dists/{'prod' if name == 'scope-prod' else 'stage'}"
                "/main/binary-amd64/Packages"
            )
        assert packages.status_code == 200, packages.text
        stanza = packages.text.split(f"Package: {name}\n", 1)[1]
        return "/repos/apt/" + stanza.split("Filename: ", 1)[1].split("\n", 1)[0]

    prod_deb, stage_deb = pool_path("scope-prod"), pool_path("scope-stage")
    anonymous = httpx.get(f"{server.url}/repos/apt/dists/prod/InRelease", timeout=30)
    assert anonymous.status_code == 401
    with httpx.Client(base_url=server.url, auth=("mirror", token), timeout=30) as mirror:
        assert mirror.get("/repos/apt/dists/prod/InRelease").status_code == 200
        assert mirror.get(prod_deb).status_code == 200
        for outside in (
            "/repos/apt/dists/stage/InRelease",
            stage_deb,  # in apt/stage only
            "/repos/dnf/prod/repodata/repomd.xml",
            "/repos/pacman/prod/x86_64/packyard-prod.db",
        ):
            assert mirror.get(outside).status_code == 404, outside
    with httpx.Client(base_url=server.url, auth=("me", server.token), timeout=30) as reader:
        assert reader.get("/repos/apt/dists/stage/InRelease").status_code == 200
        assert reader.get(stage_deb).status_code == 200

    synced = mirror_sync(server, tmp_path / "mirror", token)
    assert synced.returncode == 0, synced.stderr
    served = tree_digest(tmp_path / "mirror")
    assert any(p.startswith("apt/dists/prod/") for p in served)
    assert not any(p.startswith(("apt/dists/stage/", "dnf/")) for p in served)


def test_a_publication_during_a_sync_is_followed_not_refused(
    server: Server, tmp_path: Path
) -> None:
    # /repos serves the live snapshot: a promotion between the listing and the downloads
    # changes the indexes under the sync. It must follow the new listing, not cry tampering,
    # and keep the package files it already staged.
    token = create_mirror(server, "busy", "apt/prod")
    kept = build_deb(tmp_path / "pkgs", name="busy-kept", version="1.0-1")
    advance(server, [upload(server, kept)], to="prod")
    late = build_deb(tmp_path / "pkgs", name="busy-late", version="1.0-1")
    late_id = upload(server, late)
    advance(server, [late_id], to="stage")
    wait_for_publishing(server)
    fetched: list[str] = []

    def publish_meanwhile(path: str, body: bytes) -> bytes | None:
        fetched.append(path)
        if path == "/api/v1/mirror/listing" and fetched.count(path) == 1:
            # The mirror holds this listing; the server publishes before it downloads.
            advance(server, [late_id], to="prod", stages=("prod",))
            wait_for_publishing(server)
        return None

    dest = tmp_path / "mirror"
    with TamperingProxy(upstream=server.url, tamper=publish_meanwhile) as proxy:
        synced = mirror_sync(server, dest, token, url=proxy.url)

    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "changed on the server while syncing" in synced.stderr
    assert fetched.count("/api/v1/mirror/listing") == 2
    late_path = "repos/apt/pool/main/b/busy-late/busy-late_1.0-1_all.deb"
    assert (dest / late_path).read_bytes() == late.read_bytes()
    kept_path = "repos/apt/pool/main/b/busy-kept/busy-kept_1.0-1_all.deb"
    assert (dest / kept_path).read_bytes() == kept.read_bytes()
    assert fetched.count("/" + kept_path) == 1  # staged once, kept across the new listing
    assert "busy-late" in (dest / "repos/apt/dists/prod/main/binary-amd64/Packages").read_text()
    # The proxy forwards no POST (the heartbeat): the mirror's own state says what it has.
    state = json.loads((dest / ".packyard-mirror/state.json").read_bytes())
    live = mirrors(server)["busy"]["current"]["apt/prod"]
    assert state["channels"]["apt/prod"]["snapshot"] == live
    assert not list((dest / ".packyard-mirror").glob("staging-*"))


def test_a_sync_of_some_channels_leaves_the_others_alone(server: Server, tmp_path: Path) -> None:
    token = create_mirror(server, "partial", "apt/prod", "dnf/prod")
    rpm = build_rpm(tmp_path / "pkgs", name="partial-rpm", version="1.0")
    advance(server, [upload(server, rpm)], to="prod")
    wait_for_publishing(server)
    dest = tmp_path / "mirror"
    assert mirror_sync(server, dest, token).returncode == 0
    dnf_before = {p: h for p, h in tree_digest(dest).items() if p.startswith("dnf/")}
    assert any(p.endswith("/partial-rpm-1.0-1.noarch.rpm") for p in dnf_before), dnf_before
    synced_before = mirrors(server)["partial"]["synced"]
    deb = build_deb(tmp_path / "pkgs", name="partial-deb", version="1.0-1")
    advance(server, [upload(server, deb)], to="prod")
    wait_for_publishing(server)

    only_apt = mirror_sync(server, dest, token, "--channels", "apt/prod")

    assert only_apt.returncode == 0, only_apt.stderr
    after = tree_digest(dest)
    assert {p: h for p, h in after.items() if p.startswith("dnf/")} == dnf_before
    assert "apt/pool/main/p/partial-deb/partial-deb_1.0-1_all.deb" in after
    shown = mirrors(server)["partial"]
    assert set(shown["synced"]) == {"apt/prod", "dnf/prod"}
    assert shown["synced"]["dnf/prod"] == synced_before["dnf/prod"]
    assert shown["synced"]["apt/prod"] == shown["current"]["apt/prod"]

    # A full sync afterwards brings dnf/prod up to date again.
    assert mirror_sync(server, dest, token).returncode == 0
    assert mirrors(server)["partial"]["behind"] == []


def test_local_mistakes_get_a_clear_error_and_leave_nothing_behind(
    server: Server, tmp_path: Path
) -> None:
    token = create_mirror(server, "careful", "apt/prod")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")

    not_a_dir = mirror_sync(server, a_file, token)

    assert not_a_dir.returncode == 7, not_a_dir.stdout + not_a_dir.stderr
    assert f"{a_file} is not a directory" in not_a_dir.stderr
    assert "Traceback" not in not_a_dir.stderr
    assert a_file.read_text() == "not a directory\n"

    dest = tmp_path / "mirror"
    not_a_url = run_cli("mirror", "sync", "notaurl", str(dest), "--token", token, env=server.env)
    assert not_a_url.returncode == 2, not_a_url.stdout + not_a_url.stderr
    assert "is not a server URL" in " ".join(not_a_url.stderr.split())
    assert not dest.exists()

    # A first sync that fails leaves neither DIR nor an empty .packyard-mirror behind.
    unknown = mirror_sync(server, dest, token, "--channels", "dnf/prod")
    assert unknown.returncode == 5, unknown.stderr
    unreachable = mirror_sync(server, dest, token, url=f"http://127.0.0.1:{free_port()}")
    assert unreachable.returncode == 8, unreachable.stderr
    assert not dest.exists()
    dest.mkdir()
    assert mirror_sync(server, dest, token, url=f"http://127.0.0.1:{free_port()}").returncode == 8
    assert list(dest.iterdir()) == []  # DIR was there before: kept, and left empty


def test_daemon_reports_a_full_disk_in_its_heartbeat_and_retries(
    server: Server, tmp_path: Path
) -> None:
    # The mirror's directory is a 1 MiB tmpfs (in a private mount namespace) and the channel
    # holds a 3 MiB package: every sync fails with ENOSPC until the package is demoted.
    if shutil.which("unshare") is None:
        raise RuntimeError("required tool not installed: unshare (apt-get install util-linux)")
    big = build_deb(
        tmp_path / "pkgs",
        name="too-big",
        version="1.0-1",
        compression="none",
        files={"usr/share/too-big/blob": os.urandom(3 * 1024 * 1024)},
    )
    big_id = upload(server, big)
    advance(server, [big_id], to="dev")
    wait_for_publishing(server)
    token = create_mirror(server, "full-disk", "apt/dev")
    dest = tmp_path / "small-disk"
    dest.mkdir()
    mount_and_run = 'mount -t tmpfs -o size=1m tmpfs "$1" && shift && exec "$@"'
    in_small_disk = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount_and_run]
    mirror = [sys.executable, "-m", "packyard", "mirror", "sync", server.url, str(dest)]
    err_path = tmp_path / "daemon.err"
    with err_path.open("w") as err_file:
        daemon = subprocess.Popen(
            [*in_small_disk, "sh", str(dest), *mirror, "--daemon", "--wait", "5"],
            env={**server.env, "PACKYARD_MIRROR_TOKEN": token},
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            text=True,
            preexec_fn=_ctrl_c_works,
        )
    try:
        deadline = time.monotonic() + 60
        while not (
            mirrors(server)["full-disk"]["errors"] and "retrying in" in err_path.read_text()
        ):
            assert daemon.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, err_path.read_text()
            time.sleep(0.2)
        shown = mirrors(server)["full-disk"]
        assert shown["status"] == "error" and shown["last_sync_at"] is None
        assert "No space left on device" in shown["errors"][0], shown
        assert str(dest) in shown["errors"][0]
        assert "No space left on device" in err_path.read_text()

        demoted = server.cli("demote", big_id[:16], "--from", "dev")
        assert demoted.returncode == 0, demoted.stderr
        wait_for_publishing(server)
        deadline = time.monotonic() + 60
        while (shown := mirrors(server)["full-disk"])["status"] != "ok" or shown["behind"]:
            assert daemon.poll() is None, err_path.read_text()
            assert time.monotonic() < deadline, (shown, err_path.read_text())
            time.sleep(0.2)
        assert shown["errors"] == [] and shown["last_sync_at"]
    finally:
        daemon.send_signal(signal.SIGINT)
        daemon.wait(timeout=30)
    assert "Traceback" not in err_path.read_text(), err_path.read_text()
