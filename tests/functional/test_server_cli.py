"""The core as a user drives it: a real `packyard serve` process, the CLI as a subprocess, real
packages built with dpkg-deb, rpmbuild, makepkg and bsdtar."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
from tests.conftest import REPO, Server, base_env, run_cli
from tests.pkgbuild import build_deb, build_macos_pkg, build_packet, build_pacman, build_rpm


def _artifacts(server: Server, **params: str) -> dict:
    with server.client() as client:
        response = client.get("/api/v1/artifacts", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _stored_blobs(server: Server) -> list[Path]:
    return [p for p in (server.data_dir / "blobs" / "sha256").rglob("*") if p.is_file()]


def _temp_files(server: Server) -> list[Path]:
    return list((server.data_dir / "blobs" / "tmp").iterdir())


def test_first_start_creates_one_admin_with_a_private_one_time_token(make_server) -> None:
    server = make_server()
    token_file = server.data_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with server.client() as client:
        assert client.get("/api/v1/whoami").json()["role"] == "admin"
    # No password or token works without being issued.
    with server.client(token="pky_" + "A" * 43) as client:
        response = client.get("/api/v1/whoami")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.get("/api/v1/artifacts").status_code == 401
    # A restart does not create another admin or token.
    first_token = token_file.read_text()
    server.stop()
    server.start()
    assert token_file.read_text() == first_token
    with server.client() as client:
        users = client.get("/api/v1/users").json()
    assert [u["name"] for u in users] == ["admin"]


def test_upload_real_packages_of_every_format_and_walk_the_gates(
    server: Server, tmp_path: Path
) -> None:
    deb = build_deb(
        tmp_path,
        name="hello-tool",
        version="1.2-1",
        depends=["libc6 (>= 2.31)"],
        provides=["hello"],
    )
    rpm = build_rpm(
        tmp_path,
        name="hello-rpm",
        version="2.0",
        release="3",
        epoch=1,
        requires=["bash"],
        dist=".el9",
    )
    pac = build_pacman(tmp_path, name="hello-arch", version="3.1", depends=["glibc"])
    packet = build_packet(
        tmp_path,
        name="edge-agent",
        version="0.9.0",
        tags=["arch=armv7l", "systemd"],
        files={"usr/bin/edge-agent": b"#!/bin/sh\necho hi\n"},
        scripts={"postinst": "#!/bin/sh\nexit 0\n"},
    )
    pkg = build_macos_pkg(tmp_path, identifier="com.example.notes", version="4.5.6")
    result = server.cli(
        "upload",
        str(deb),
        str(rpm),
        str(pac),
        str(packet),
        str(pkg),
        "--justification",
        "security fix CVE-2026-0001",
        "--provenance",
        "CI job 42, commit abc123",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("uploaded as") == 5

    listing = json.loads(server.cli("artifacts", "list", "--json").stdout)
    found = {(a["format"], a["name"], a["version"]) for a in listing["items"]}
    assert found == {
        ("deb", "hello-tool", "1.2-1"),
        ("rpm", "hello-rpm", "1:2.0-3.el9"),
        ("pacman", "hello-arch", "3.1-1"),
        ("packet", "edge-agent", "0.9.0"),
        ("macos-pkg", "com.example.notes", "4.5.6"),
    }
    by_format = {a["format"]: a for a in listing["items"]}
    assert by_format["deb"]["relations"]["depends"] == ["libc6 (>= 2.31)"]
    assert by_format["rpm"]["distro"] == "el9"
    assert by_format["deb"]["provenance"] == "CI job 42, commit abc123"
    assert by_format["deb"]["uploaded_by"] == "admin"
    assert all(a["stages"][0]["stage"] == "new" for a in listing["items"])

    deb_id = by_format["deb"]["sha256"][:12]
    skip = server.cli("promote", deb_id, "--to", "dev")
    assert skip.returncode == 6
    assert "requires the artifact to have reached 'ci' first" in skip.stderr
    assert "stage_required" in skip.stderr
    for stage in ("ci", "dev", "stage"):
        step = server.cli("promote", deb_id, "--to", stage, "--note", f"tested in {stage}")
        assert step.returncode == 0, step.stderr
    no_ticket = server.cli("promote", deb_id, "--to", "prod")
    assert no_ticket.returncode == 6
    assert "requires a change-control id" in no_ticket.stderr
    unknown = server.cli("promote", deb_id, "--to", "production")
    assert unknown.returncode == 7
    assert "use one of: new, ci, dev, stage, prod" in unknown.stderr
    done = server.cli("promote", deb_id, "--to", "prod", "--change-control", "CHG-1001")
    assert done.returncode == 0, done.stderr
    assert "new → ci → dev → stage → prod" in done.stdout

    in_prod = _artifacts(server, stage="prod")
    assert [a["name"] for a in in_prod["items"]] == ["hello-tool"]
    in_ci = _artifacts(server, stage="ci")  # listed in every stage it has reached
    assert [a["name"] for a in in_ci["items"]] == ["hello-tool"]

    shown = server.cli("artifacts", "show", deb_id)
    assert "CHG-1001" not in shown.stderr and shown.returncode == 0
    assert "last stage" in shown.stdout

    audit = json.loads(server.cli("audit", "--artifact", deb_id, "--json").stdout)
    actions = [ev["action"] for ev in reversed(audit)]
    assert actions == [
        "artifact.upload",
        "artifact.promote.refused",
        "artifact.promote",
        "artifact.promote",
        "artifact.promote",
        "artifact.promote.refused",
        "artifact.promote.refused",
        "artifact.promote",
    ]
    verify = server.cli("audit", "verify")
    assert verify.returncode == 0 and "audit log intact" in verify.stdout


def test_identical_reupload_is_idempotent_and_a_clash_is_refused(
    server: Server, tmp_path: Path
) -> None:
    first = build_deb(tmp_path, name="clash", version="1.0-1")
    created = server.upload(first)
    assert created.status_code == 201
    again = server.upload(first)
    assert again.status_code == 200
    assert again.json()["sha256"] == created.json()["sha256"] and again.json()["created"] is False

    other = build_deb(
        tmp_path, name="clash", version="1.0-1", description="different bytes\n Same version."
    )
    blobs_before = _stored_blobs(server)
    clash = server.upload(other)
    assert clash.status_code == 409
    error = clash.json()["error"]
    assert error["code"] == "artifact_conflict"
    assert created.json()["sha256"][:12] in error["message"]
    assert _stored_blobs(server) == blobs_before
    assert _temp_files(server) == []
    assert _artifacts(server)["total"] == 1


def _evil_packet(path: Path) -> Path:
    """A packet whose data tar holds a symlink escaping the install root (jamesd allowed it)."""
    import io
    import tarfile

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        link = tarfile.TarInfo("./etc/passwd-link")
        link.type, link.linkname = tarfile.SYMTYPE, "../../../etc/passwd"
        tar.addfile(link)
    with tarfile.open(path, "w") as outer:
        for name, payload in (
            ("control.json", b'{"name": "evil", "version": "1.0", "tags": []}'),
            ("data.tar.gz", data.getvalue()),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            outer.addfile(info, io.BytesIO(payload))
    return path


def test_bad_input_is_refused_with_a_clear_error_and_nothing_is_stored(
    server: Server, tmp_path: Path
) -> None:
    real = build_deb(tmp_path, name="victim", version="1.0-1")
    truncated = tmp_path / "truncated_1.0_all.deb"
    truncated.write_bytes(real.read_bytes()[:200])
    garbage_rpm = tmp_path / "garbage-1.0-1.noarch.rpm"
    garbage_rpm.write_bytes(b"\xed\xab\xee\xdb" + os.urandom(300))
    escaping = _evil_packet(tmp_path / "evil-1.0.packet")
    cases = {truncated: "deb", garbage_rpm: "rpm", escaping: "unsafe"}
    for path, word in cases.items():
        response = server.upload(path)
        assert response.status_code == 422, (path, response.text)
        error = response.json()["error"]
        assert error["code"] in {"invalid_artifact", "unsafe_archive"}
        assert word in json.dumps(error).lower(), error
        assert error["hint"]
    cli = server.cli("upload", str(truncated), "-j", "x", "-p", "y")
    assert cli.returncode == 7
    assert "truncated_1.0_all.deb" in cli.stderr

    missing = server.cli("upload", str(real), "--provenance", "ci")
    assert missing.returncode == 7
    assert "justification is required" in missing.stderr

    assert _artifacts(server)["total"] == 0
    assert _stored_blobs(server) == []
    assert _temp_files(server) == []
    with server.client() as client:
        events = client.get("/api/v1/events").json()
    assert all(ev["action"] != "artifact.upload" for ev in events["items"])


def test_oversize_upload_is_refused_early_and_leaves_nothing(make_server, tmp_path: Path) -> None:
    server = make_server(config={"upload": {"max_size": "64K"}})
    big = tmp_path / "big-1.0.bin"
    big.write_bytes(os.urandom(256 * 1024))
    result = server.cli("upload", str(big), "-j", "x", "-p", "y")
    assert result.returncode == 7, result.stderr
    assert "size limit" in result.stderr

    # A client that lies about Content-Length (chunked) is cut off while streaming.
    def chunks():
        for _ in range(8):
            yield os.urandom(32 * 1024)

    with server.client() as client:
        response = client.post(
            "/api/v1/artifacts",
            params={"filename": "big-1.0.bin", "justification": "x", "provenance": "y"},
            content=chunks(),
        )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "upload_too_large"
    assert _artifacts(server)["total"] == 0
    assert _stored_blobs(server) == [] and _temp_files(server) == []


def test_kill_9_during_an_upload_leaves_no_half_artifact(server: Server, tmp_path: Path) -> None:
    import socket

    sock = socket.create_connection(("127.0.0.1", server.port))
    size = 50 * 1024 * 1024
    sock.sendall(
        (
            f"POST /api/v1/artifacts?filename=half-1.0.bin&justification=x&provenance=y HTTP/1.1\r\n"
            f"Host: 127.0.0.1\r\nAuthorization: Bearer {server.token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
        ).encode()
    )
    sock.sendall(os.urandom(4 * 1024 * 1024))
    deadline = __import__("time").monotonic() + 10
    while not _temp_files(server) and __import__("time").monotonic() < deadline:
        __import__("time").sleep(0.05)
    assert _temp_files(server), "the upload never started streaming"
    server.kill9()
    sock.close()
    server.start()
    assert _artifacts(server)["total"] == 0
    assert _stored_blobs(server) == []
    scrub = run_cli("scrub", "--data-dir", str(server.data_dir), env=server.env)
    assert scrub.returncode == 0, scrub.stderr
    # The next upload of the same name works normally.
    again = tmp_path / "half-1.0.bin"
    again.write_bytes(b"complete now")
    assert server.upload(again).status_code == 201


def test_concurrent_promotions_give_one_transition_and_one_event(
    server: Server, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "race-1.0.bin"
    path.write_bytes(b"race")
    sha = server.upload(path).json()["sha256"]

    def promote(_: int) -> httpx.Response:
        with server.client() as client:
            return client.post(f"/api/v1/artifacts/{sha}/promote", json={"stage": "ci"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(promote, range(16)))
    assert {r.status_code for r in responses} == {200}
    assert sum(r.json()["changed"] for r in responses) == 1
    with server.client() as client:
        events = client.get(
            "/api/v1/events", params={"artifact": sha, "action": "artifact.promote"}
        ).json()
    assert events["total"] == 1


def test_roles_and_per_stage_permissions(make_server, tmp_path: Path) -> None:
    server = make_server(
        config={
            "pipelines": {
                "default": {
                    "stages": [
                        {"name": "new"},
                        {"name": "ci"},
                        {"name": "dev"},
                        {"name": "stage"},
                        {"name": "prod", "change_control": True, "promote_roles": ["admin"]},
                    ]
                }
            }
        }
    )

    def user(name: str, role: str, *extra: str) -> str:
        created = server.cli("users", "create", name, "--role", role, *extra)
        assert created.returncode == 0, created.stderr
        return created.stdout.split("shown only now):")[1].split()[0]

    uploader, viewer = user("ci-bot", "uploader"), user("auditor", "viewer")
    dev_maint = user("dana", "maintainer", "--stages", "ci,dev")
    maint = user("max", "maintainer")
    path = tmp_path / "perm-1.0.bin"
    path.write_bytes(b"perm")

    refused = server.upload(path, token=viewer)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_authorized"
    sha = server.upload(path, token=uploader).json()["sha256"]

    no_promote = server.cli("promote", sha, "--to", "ci", token=uploader)
    assert no_promote.returncode == 4 and "may not promote" in no_promote.stderr
    assert server.cli("promote", sha, "--to", "ci", token=dev_maint).returncode == 0
    assert server.cli("promote", sha, "--to", "dev", token=dev_maint).returncode == 0
    beyond = server.cli("promote", sha, "--to", "stage", token=dev_maint)
    assert beyond.returncode == 4 and "no permission for stage 'stage'" in beyond.stderr
    assert server.cli("promote", sha, "--to", "stage", token=maint).returncode == 0
    prod = server.cli("promote", sha, "--to", "prod", "-c", "CHG-9", token=maint)
    assert prod.returncode == 4 and "may not promote into stage 'prod'" in prod.stderr
    assert server.cli("promote", sha, "--to", "prod", "-c", "CHG-9").returncode == 0

    # viewers read but cannot see the audit log or manage users
    assert server.cli("artifacts", "list", token=viewer).returncode == 0
    assert server.cli("audit", token=viewer).returncode == 4
    assert server.cli("users", "list", token=viewer).returncode == 4


def test_fail_deprecate_hold_and_demote(server: Server, tmp_path: Path) -> None:
    ids = []
    for n in range(3):
        path = tmp_path / f"life-1.{n}.bin"
        path.write_bytes(f"life {n}".encode())
        ids.append(server.upload(path).json()["sha256"][:12])
    failed, deprecated, held = ids
    assert server.cli("fail", failed, "--reason", "segfaults on start").returncode == 0
    refused = server.cli("promote", failed, "--to", "ci")
    assert refused.returncode == 6 and "marked failed" in refused.stderr
    assert server.cli("deprecate", deprecated, "--reason", "superseded").returncode == 0
    assert "deprecated" in server.cli("promote", deprecated, "--to", "ci").stderr

    assert server.cli("hold", held, "--reason", "waiting for QA").returncode == 0
    on_hold = server.cli("promote", held, "--to", "ci")
    assert on_hold.returncode == 6 and "on hold" in on_hold.stderr
    assert server.cli("release", held).returncode == 0
    for stage in ("ci", "dev", "stage"):
        assert server.cli("promote", held, "--to", stage).returncode == 0
    demoted = server.cli("demote", held, "--from", "dev")
    assert demoted.returncode == 0, demoted.stderr
    assert "Stages: new → ci" in demoted.stdout
    first = server.cli("demote", held, "--from", "new")
    assert first.returncode == 7 and "first stage" in first.stderr

    statuses = {a["sha256"][:12]: a["status"] for a in _artifacts(server)["items"]}
    assert statuses == {failed: "failed", deprecated: "deprecated", held: "active"}
    assert [a["sha256"][:12] for a in _artifacts(server, status="failed")["items"]] == [failed]


def test_text_with_brackets_prints_as_it_is(server: Server, tmp_path: Path) -> None:
    # Justifications, reasons and server errors are data: Rich must not read "[...]" in them
    # as markup (it dropped "[CI]" and crashed on "[/x]").
    path = tmp_path / "brackets-1.0.bin"
    path.write_bytes(b"brackets")
    justification = "fixes [bold]CVE-1[/bold] and [/x]"
    uploaded = server.cli(
        "upload", str(path), "--justification", justification, "--provenance", "[CI] job [/1]"
    )
    assert uploaded.returncode == 0, uploaded.stderr
    sha = _artifacts(server)["items"][0]["sha256"]
    assert server.cli("hold", sha[:12], "--reason", "wait for [QA]").returncode == 0
    shown = server.cli("artifacts", "show", sha[:12], env={"COLUMNS": "250"})
    assert shown.returncode == 0, shown.stderr
    assert justification in shown.stdout
    assert "[CI] job [/1]" in shown.stdout
    assert "[HELD: wait for [QA]]" in shown.stdout
    listed = server.cli("artifacts", "list", env={"COLUMNS": "250"})
    assert listed.returncode == 0, listed.stderr


def test_change_control_ids_are_checked_with_the_ticket_system(make_server, tmp_path: Path) -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Tickets(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path + " " + self.headers.get("Authorization", ""))
            ticket = self.path.split("?")[0].rsplit("/", 1)[-1]
            answers = {
                "CHG-OK": {"approved": True},
                "CHG-PENDING": {"approved": False, "status": "pending CAB"},
            }
            body = answers.get(ticket)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body or {"error": "no such ticket"}).encode())

        def log_message(self, *args: object) -> None:
            pass

    tickets = ThreadingHTTPServer(("127.0.0.1", 0), Tickets)
    threading.Thread(target=tickets.serve_forever, daemon=True).start()
    try:
        server = make_server(
            config={
                "change_control": {
                    "url": f"http://127.0.0.1:{tickets.server_port}/api/changes/{{id}}",
                    "token": "ticket-secret",
                }
            }
        )
        path = tmp_path / "cc-1.0.bin"
        path.write_bytes(b"cc")
        sha = server.upload(path).json()["sha256"]
        for stage in ("ci", "dev", "stage"):
            assert server.cli("promote", sha, "--to", stage).returncode == 0
        pending = server.cli("promote", sha, "--to", "prod", "-c", "CHG-PENDING")
        assert pending.returncode == 6
        assert "not approved by the ticket system: pending CAB" in pending.stderr
        unknown = server.cli("promote", sha, "--to", "prod", "-c", "CHG-404")
        assert unknown.returncode == 6 and "no such ticket" in unknown.stderr
        ok = server.cli("promote", sha, "--to", "prod", "-c", "CHG-OK")
        assert ok.returncode == 0, ok.stderr
        assert all(line.endswith("Bearer ticket-secret") for line in seen) and len(seen) == 3
        with server.client() as client:
            refused = client.get(
                "/api/v1/events", params={"action": "artifact.promote.refused"}
            ).json()
        assert refused["total"] == 2
        assert "ticket-secret" not in server.log()
    finally:
        tickets.shutdown()
        tickets.server_close()


def test_tokens_login_and_revocation(server: Server, tmp_path: Path) -> None:
    created = server.cli("tokens", "create", "--name", "laptop", "--quiet")
    assert created.returncode == 0
    token = created.stdout.strip()
    env = {"PACKYARD_TOKEN": ""}
    login = server.cli("login", "--server", server.url, "--token", token, env=env)
    assert login.returncode == 0, login.stderr
    config_path = Path(server.env["PACKYARD_CLIENT_CONFIG"])
    assert stat.S_IMODE(config_path.stat().st_mode) == 0o600
    assert tomllib.loads(config_path.read_text())["token"] == token
    # The saved login works without env vars.
    plain_env = {
        k: v for k, v in server.env.items() if k not in ("PACKYARD_TOKEN", "PACKYARD_SERVER")
    }
    assert run_cli("artifacts", "list", env=plain_env).returncode == 0

    tokens = json.loads(server.cli("tokens", "list", "--json").stdout)
    laptop = next(t for t in tokens if t["name"] == "laptop")
    assert laptop["last_used_at"] is not None  # the login and the listing used it
    assert token not in json.dumps(tokens)
    assert server.cli("tokens", "revoke", str(laptop["id"])).returncode == 0
    after = run_cli("artifacts", "list", env=plain_env)
    assert after.returncode == 3
    assert "revoked" in after.stderr


def test_packet_init_build_info_and_upload(server: Server, tmp_path: Path) -> None:
    folder = tmp_path / "openvpn"
    env = base_env(tmp_path)
    assert (
        run_cli(
            "packet",
            "init",
            str(folder),
            "--name",
            "openvpn",
            "--version",
            "1.0.0",
            "--tags",
            "arch=armv7l,systemd",
            env=env,
        ).returncode
        == 0
    )
    (folder / "data" / "etc" / "openvpn").mkdir(parents=True)
    (folder / "data" / "etc" / "openvpn" / "openvpn.conf").write_text("dev tun\n")
    built = run_cli("packet", "build", str(folder), env=env, cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    packet_file = tmp_path / "openvpn-1.0.0.packet"
    info = json.loads(run_cli("packet", "info", str(packet_file), "--json", env=env).stdout)
    assert (info["format"], info["name"], info["version"]) == ("packet", "openvpn", "1.0.0")
    assert "arch=armv7l" in json.dumps(info)
    response = server.upload(packet_file)
    assert response.status_code == 201 and response.json()["format"] == "packet"


def test_download_verifies_and_matches(server: Server, tmp_path: Path) -> None:
    deb = build_deb(tmp_path, name="fetch-me", version="2.0-1")
    sha = server.upload(deb).json()["sha256"]
    out = tmp_path / "copy.deb"
    result = server.cli("download", sha[:10], "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == deb.read_bytes()
    with server.client() as client:
        whole = client.get(f"/api/v1/artifacts/{sha}/file")
        assert whole.headers["etag"] == f'"{sha}"'
        part = client.get(f"/api/v1/artifacts/{sha}/file", headers={"Range": "bytes=0-7"})
    assert part.status_code == 206 and part.content == deb.read_bytes()[:8] == b"!<arch>\n"
    missing = server.cli("download", "deadbeefdeadbeef", "-o", str(out))
    assert missing.returncode == 5 and "no artifact id starts with" in missing.stderr


def test_gc_keeps_newest_retired_and_scrub_finds_damage(make_server, tmp_path: Path) -> None:
    server = make_server(config={"retention": {"keep_failed": 1, "keep_deprecated": 1}})
    ids = []
    for n in range(4):
        path = tmp_path / f"old-1.{n}.bin"
        path.write_bytes(f"old {n}".encode())
        ids.append(server.upload(path, package="old").json()["sha256"])
    for sha in ids[:3]:
        assert server.cli("fail", sha[:12]).returncode == 0
    dry = run_cli("gc", "--dry-run", "--data-dir", str(server.data_dir), env=server.env)
    assert dry.returncode == 0, dry.stderr
    assert "would delete 2 artifacts" in dry.stdout
    assert _artifacts(server)["total"] == 4
    real = run_cli("gc", "--data-dir", str(server.data_dir), env=server.env)
    assert "deleted 2 artifacts" in real.stdout
    remaining = {a["sha256"] for a in _artifacts(server)["items"]}
    assert remaining == {ids[2], ids[3]}  # newest failed one kept, active one untouched
    with server.client() as client:
        deletions = client.get("/api/v1/events", params={"action": "artifact.delete"}).json()
    assert deletions["total"] == 2

    # Damage one blob and lose another: scrub names both and exits 9.
    blob_dir = server.data_dir / "blobs" / "sha256"
    victim = blob_dir / ids[3][:2] / ids[3][2:4] / ids[3]
    victim.write_bytes(b"bit rot")
    (blob_dir / ids[2][:2] / ids[2][2:4] / ids[2]).unlink()
    scrub = run_cli("scrub", "--data-dir", str(server.data_dir), env=server.env)
    assert scrub.returncode == 9
    assert "missing" in scrub.stdout and "size" in scrub.stdout


def test_init_writes_a_commented_config_the_server_accepts(tmp_path: Path, make_server) -> None:
    env = base_env(tmp_path)
    data = tmp_path / "data"
    result = run_cli("init", "--data-dir", str(data), env=env)
    assert result.returncode == 0, result.stderr
    text = (data / "packyard.toml").read_text()
    assert "# Largest accepted upload" in text and 'max_size = "10G"' in text
    again = run_cli("init", "--data-dir", str(data), env=env)
    assert again.returncode == 7 and "--force" in again.stderr
    server = make_server()  # uses tmp_path/"data" with the written file
    with server.client() as client:
        assert client.get("/api/v1/pipelines").json()[0]["stages"][-1]["change_control"] is True


def test_openapi_document_describes_the_api(server: Server) -> None:
    spec = httpx.get(f"{server.url}/api/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/api/v1/artifacts",
        "/api/v1/artifacts/{ref}/promote",
        "/api/v1/events/verify",
        "/api/v1/tokens",
        "/api/v1/users",
        "/api/v1/packages/{name}/pipeline",
    ):
        assert path in paths, path
    upload = paths["/api/v1/artifacts"]["post"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert {"201", "409", "413", "422"} <= set(upload["responses"])
    listing = {p["name"] for p in paths["/api/v1/artifacts"]["get"]["parameters"]}
    assert {"package", "stage", "format", "sort", "order", "page", "per_page", "q"} <= listing
    bad_sort = httpx.get(
        f"{server.url}/api/v1/artifacts",
        params={"sort": "nope"},
        headers={"Authorization": f"Bearer {server.token}"},
    )
    assert bad_sort.status_code == 422 and bad_sort.json()["error"]["code"] == "invalid_request"


def test_cli_help_is_fast_to_import_and_lists_commands(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "packyard", "--help"],
        capture_output=True,
        text=True,
        env=base_env(tmp_path),
        cwd=REPO,
    )
    assert result.returncode == 0
    for command in ("serve", "upload", "promote", "audit", "tokens", "packet", "gc", "scrub"):
        assert command in result.stdout
    # --help must not drag in the server stack.
    assert "sqlalchemy" not in result.stderr and "fastapi" not in result.stderr


def test_demo_data_set_shows_every_format_and_lifecycle(make_server) -> None:
    server = make_server(extra=("--demo",))
    listing = _artifacts(server, per_page="100")
    formats = {a["format"] for a in listing["items"]}
    assert {"deb", "pacman", "packet", "macos-pkg", "generic"} <= formats
    statuses = {a["status"] for a in listing["items"]}
    assert statuses == {"active", "failed", "deprecated"}
    assert _artifacts(server, stage="prod")["total"] >= 1
    verify = server.cli("audit", "verify")
    assert verify.returncode == 0
    # A restart with --demo does not load it twice.
    server.stop()
    server.start("--demo")
    assert _artifacts(server, per_page="100")["total"] == listing["total"]
