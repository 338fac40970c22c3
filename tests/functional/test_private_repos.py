"""Private repositories (``publish.public = false``) as their users set them up: the lines
``packyard keys show`` prints, with a viewer's token put in for ``<TOKEN>``, make real apt-get,
dnf and pacman install; anonymous clients get a 401 with a Basic challenge (pacman's curl
sends its user:token only after one).
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from tests.clients import (
    advance,
    apt_client,
    apt_keyring_path,
    dnf_client,
    pacman_client,
    pacman_keyring,
    public_key,
    upload,
    wait_for_publishing,
)
from tests.conftest import Server
from tests.pkgbuild import build_deb, build_pacman, build_rpm


def test_private_repositories_install_with_the_lines_keys_show_prints(
    make_server, tmp_path: Path
) -> None:
    server: Server = make_server(config={"publish": {"public": False}})
    pkgs = tmp_path / "pkgs"
    ids = [
        upload(server, build_deb(pkgs, name="priv-apt", version="1.0-1")),
        upload(server, build_rpm(pkgs, name="priv-dnf", version="1.0")),
        upload(server, build_pacman(pkgs, name="priv-pacman", version="1.0")),
    ]
    advance(server, ids, to="prod")
    wait_for_publishing(server)
    with server.client() as client:
        assert client.post("/api/v1/users", json={"name": "reader", "role": "viewer"}).is_success
        made = client.post("/api/v1/tokens", json={"name": "repos", "user": "reader"})
        assert made.status_code == 201, made.text
        token = made.json()["token"]

    anonymous = httpx.get(f"{server.url}/repos/pacman/prod/x86_64/packyard-prod.db", timeout=30)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Basic realm=")

    shown = server.cli("keys", "show", "--stage", "prod", "--json")
    assert shown.returncode == 0, shown.stderr
    config = json.loads(shown.stdout)["client_config"]
    assert config["private"] is True
    assert config["apt_auth_file"] == "/etc/apt/auth.conf.d/packyard.conf"
    text = server.cli("keys", "show", "--stage", "prod", env={"COLUMNS": "250"}).stdout
    assert "replace <TOKEN> below with a reader's API token" in text
    assert "# apt: /etc/apt/auth.conf.d/packyard.conf" in text

    def filled(lines: str) -> str:
        assert "<TOKEN>" in lines
        return lines.replace("<TOKEN>", token)

    key = public_key(server)  # the key files stay public: clients fetch them before any token
    # apt: sources line as printed (keyring path aside) and the auth.conf.d file.
    root = tmp_path / "apt"
    line = config["apt_sources"].replace(
        "/etc/apt/keyrings/packyard.asc", str(apt_keyring_path(root))
    )
    apt = apt_client(root=root, key=key, sources_line=line)
    auth = root / "etc/apt/auth.conf.d/packyard.conf"
    auth.parent.mkdir(parents=True, exist_ok=True)
    auth.write_text(filled(config["apt_auth"]))
    auth.chmod(0o600)
    updated = apt.update()
    assert updated.ok, updated
    installed = apt.install("priv-apt")
    assert installed.ok, installed
    # dnf: the .repo file as printed.
    dnf = dnf_client(root=tmp_path / "dnf", url=server.url, key=key)
    (tmp_path / "dnf/repos/packyard.repo").write_text(filled(config["dnf_repo"]))
    done = dnf.install("priv-dnf")
    assert done.ok, done
    # pacman: the Server line as printed (credentials in the URL).
    [server_line] = [
        line for line in config["pacman_conf"].splitlines() if line.startswith("Server = ")
    ]
    base = filled(server_line.removeprefix("Server = ")).split("/repos/pacman/")[0]
    with pacman_keyring(gpgdir=tmp_path / "pacman-keyring" / "gnupg", key=key) as keyring:
        pacman = pacman_client(root=tmp_path / "pacman", url=base, keyring=keyring)
        installed_pacman = pacman.install("priv-pacman")
        assert installed_pacman.ok, installed_pacman
        wrong = pacman_client(
            root=tmp_path / "pacman-wrong", url=base.replace(token, "wrong-token"), keyring=keyring
        ).install("priv-pacman")
    assert not wrong.ok
    assert "401" in wrong.output, wrong.output
