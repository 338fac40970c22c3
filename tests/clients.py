"""Real apt-get, dnf and pacman clients in private roots, for tests of published repositories.

Every client is set up the way a user would (the repository's public key, a sources.list /
.repo / pacman.conf entry with signature checks required) but inside a temporary directory,
so nothing on the host is read or changed. Helpers are keyword-only; a missing tool is an
error, never a skip: a suite that silently stops running real clients is worse than a red one.

Also here: a module-scoped Packyard server (tests/conftest.py's ``Server``), waiting for the
background publish jobs, promoting through the default pipeline, throwaway GnuPG keys, and a
tampering HTTP proxy that alters chosen responses on their way to a client.

Not handled: installing the tools (``apt-get install apt dnf pacman-package-manager
archlinux-keyring gnupg``), nor any client option beyond what the tests need.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import Server, base_env, free_port, write_config

__all__ = [
    "AptClient",
    "DnfClient",
    "Outcome",
    "PacmanClient",
    "PacmanKeyring",
    "TamperingProxy",
    "advance",
    "apt_client",
    "apt_keyring_path",
    "dnf_client",
    "export_keys",
    "fingerprints",
    "flip_byte",
    "make_gpg_key",
    "pacman_client",
    "pacman_keyring",
    "promote",
    "public_key",
    "running_server",
    "upload",
    "wait_for_publishing",
]

TOOL_PACKAGES = {
    "apt-get": "apt",
    "apt-cache": "apt",
    "dnf": "dnf",
    "pacman": "pacman-package-manager",
    "pacman-key": "pacman-package-manager",
    "gpg": "gnupg",
    "gpgconf": "gnupg",
}

DEFAULT_PIPELINE = ("ci", "dev", "stage", "prod")


def _require(*tools: str) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        packages = sorted({TOOL_PACKAGES.get(t, t) for t in missing})
        raise RuntimeError(
            f"required client tool(s) not installed: {', '.join(missing)} "
            f"(apt-get install {' '.join(packages)})"
        )


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What a client run printed (stdout and stderr together) and its exit code."""

    args: list[str]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def __str__(self) -> str:
        return f"$ {' '.join(self.args)}\nexit {self.returncode}\n{self.output}"


def _run(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float = 120
) -> Outcome:
    result = subprocess.run(
        list(args),
        env={**os.environ, "LC_ALL": "C", **(env or {})},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Outcome(
        args=list(args), returncode=result.returncode, output=result.stdout + result.stderr
    )


def _check(outcome: Outcome) -> Outcome:
    if not outcome.ok:
        raise RuntimeError(f"command failed:\n{outcome}")
    return outcome


def _kill_gpg_agents(*homedirs: Path) -> None:
    # gpg starts a gpg-agent (and dirmngr) per home directory; they outlive the client.
    for home in homedirs:
        if home.is_dir():
            _run(["gpgconf", "--homedir", str(home), "--kill", "all"], timeout=30)


# --------------------------------------------------------------------------- keys


def public_key(server: Server) -> bytes:
    """The armored public key(s) the server publishes for clients."""
    response = httpx.get(f"{server.url}/repos/keys/packyard.asc", timeout=30)
    response.raise_for_status()
    return response.content


def fingerprints(key: bytes) -> list[str]:
    """Primary-key fingerprints in an armored key file, in file order."""
    _require("gpg")
    with tempfile.TemporaryDirectory(prefix="gpg-show-") as home:
        path = Path(home) / "key.asc"
        path.write_bytes(key)
        shown = _check(
            _run(["gpg", "--homedir", home, "--batch", "--with-colons", "--show-keys", str(path)])
        )
        _kill_gpg_agents(Path(home))
    found, after_pub = [], False
    for line in shown.output.splitlines():
        kind = line.split(":", 1)[0]
        if kind == "pub":
            after_pub = True
        elif kind == "fpr" and after_pub:
            found.append(line.split(":")[9])
            after_pub = False
    return found


def make_gpg_key(tmp: Path, *, uid: str = "Throwaway <throwaway@example.invalid>") -> bytes:
    """Generate a new signing key (no passphrase) in its own keyring; return its public key."""
    _require("gpg", "gpgconf")
    home = Path(tempfile.mkdtemp(prefix="gpg-", dir=tmp))
    home.chmod(0o700)
    try:
        _check(
            _run(
                [
                    "gpg",
                    "--homedir",
                    str(home),
                    "--batch",
                    "--passphrase",
                    "",
                    "--quick-gen-key",
                    uid,
                    "default",
                    "default",
                    "never",
                ]
            )
        )
        exported = subprocess.run(
            ["gpg", "--homedir", str(home), "--armor", "--export"],
            capture_output=True,
            check=True,
        )
    finally:
        _kill_gpg_agents(home)
    return exported.stdout


def export_keys(key: bytes, *, only: Sequence[str]) -> bytes:
    """The armored public keys of ``only`` (fingerprints), taken out of ``key``."""
    _require("gpg", "gpgconf")
    with tempfile.TemporaryDirectory(prefix="gpg-export-") as home:
        source = Path(home) / "in.asc"
        source.write_bytes(key)
        _check(_run(["gpg", "--homedir", home, "--batch", "--import", str(source)]))
        exported = subprocess.run(
            ["gpg", "--homedir", home, "--armor", "--export", *only],
            capture_output=True,
            check=True,
        )
        _kill_gpg_agents(Path(home))
    if not exported.stdout:
        raise RuntimeError(f"none of {only} is in the key file")
    return exported.stdout


# --------------------------------------------------------------------------- apt


@dataclass(frozen=True, kw_only=True)
class AptClient:
    """apt-get and apt-cache against a private root (APT_CONFIG points at its config)."""

    root: Path
    config: Path
    keyring: Path

    def run(self, tool: str, *args: str) -> Outcome:
        return _run(
            [tool, *args],
            env={"APT_CONFIG": str(self.config), "DEBIAN_FRONTEND": "noninteractive"},
        )

    def update(self) -> Outcome:
        return self.run("apt-get", "update")

    def install(self, name: str) -> Outcome:
        return self.run("apt-get", "install", "-y", "--no-install-recommends", name)

    def versions(self, name: str) -> list[str]:
        """The versions of ``name`` the repository offers (apt-cache madison)."""
        shown = _check(self.run("apt-cache", "madison", name))
        return [line.split("|")[1].strip() for line in shown.output.splitlines() if "|" in line]


def apt_keyring_path(root: Path) -> Path:
    return root / "etc/apt/keyrings/packyard.asc"


def apt_client(
    *,
    root: Path,
    key: bytes,
    url: str | None = None,
    suite: str = "prod",
    component: str = "main",
    sources_line: str | None = None,
) -> AptClient:
    """An apt client in ``root`` trusting only ``key`` for the Packyard repository.

    Give either ``url`` (the server; the line is built like ``packyard keys show`` prints it)
    or ``sources_line`` (used verbatim).
    """
    _require("apt-get", "apt-cache", "dpkg")
    for sub in (
        "etc/apt/keyrings",
        "etc/apt/apt.conf.d",
        "etc/apt/preferences.d",
        "etc/apt/sources.list.d",
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
        "var/lib/dpkg/updates",
        "var/lib/dpkg/info",
        "var/log/apt",
    ):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/dpkg/status").touch()
    keyring = apt_keyring_path(root)
    keyring.write_bytes(key)
    if sources_line is None:
        if url is None:
            raise ValueError("give url or sources_line")
        sources_line = f"deb [signed-by={keyring}] {url}/repos/apt {suite} {component}"
    (root / "etc/apt/sources.list").write_text(sources_line + "\n")
    config = root / "apt.conf"
    config.write_text(
        f'Dir "{root}/";\n'
        f'Dir::State::status "{root}/var/lib/dpkg/status";\n'
        # Only the keyring named by signed-by may be trusted, never the host's keys.
        'Dir::Etc::Trusted "/nonexistent";\n'
        'Dir::Etc::TrustedParts "/nonexistent";\n'
        'APT::Architecture "amd64";\n'
        'Debug::NoLocking "true";\n'
        # The files belong to whoever runs the test; apt's _apt sandbox user cannot write them.
        'APT::Sandbox::User "root";\n'
        'Acquire::Languages "none";\n'
        f'DPkg::Options {{ "--root={root}"; "--force-script-chrootless"; "--force-not-root"; }};\n'
        'DPkg::Chroot-Directory "/";\n'
    )
    return AptClient(root=root, config=config, keyring=keyring)


# --------------------------------------------------------------------------- dnf


@dataclass(frozen=True, kw_only=True)
class DnfClient:
    """dnf with its own config, repos, cache and install root (all below ``root``)."""

    root: Path
    stage: str

    def install(self, name: str) -> Outcome:
        try:
            return _run(
                [
                    "dnf",
                    "-y",
                    f"--config={self.root / 'dnf.conf'}",
                    f"--installroot={self.root / 'root'}",
                    f"--setopt=reposdir={self.root / 'repos'}",
                    f"--setopt=cachedir={self.root / 'cache'}",
                    "--releasever=1",
                    "--setopt=install_weak_deps=False",
                    "--noplugins",
                    "--nodocs",
                    "install",
                    name,
                ]
            )
        finally:
            # librepo checks repomd.xml with a keyring (and its gpg-agent) in the cache.
            _kill_gpg_agents(*(self.root / "cache").glob("*/pubring"))


def dnf_client(*, root: Path, url: str, key: bytes, stage: str = "prod") -> DnfClient:
    """A dnf client in ``root`` with gpgcheck and repo_gpgcheck against ``key`` only.

    ``skip_if_unavailable=False``: a repository whose metadata fails its signature check is an
    error, not silently skipped (the host's dnf.conf may say otherwise).
    """
    _require("dnf", "gpgconf")
    for sub in ("repos", "cache", "root"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    key_path = root / "packyard.asc"
    key_path.write_bytes(key)
    (root / "dnf.conf").write_text(
        "[main]\ngpgcheck=1\nrepo_gpgcheck=1\nskip_if_unavailable=False\nkeepcache=False\n"
    )
    (root / "repos/packyard.repo").write_text(
        f"[packyard-{stage}]\n"
        f"name=Packyard {stage}\n"
        f"baseurl={url}/repos/dnf/{stage}/\n"
        "enabled=1\n"
        "gpgcheck=1\n"
        "repo_gpgcheck=1\n"
        f"gpgkey=file://{key_path}\n"
    )
    return DnfClient(root=root, stage=stage)


# --------------------------------------------------------------------------- pacman


@dataclass(kw_only=True)
class PacmanKeyring:
    """A pacman keyring (``pacman-key --init``) that locally signed, i.e. trusts, some keys.

    A context manager: on exit the keyring's gpg-agent and dirmngr are stopped. Clients may
    share one keyring; it holds trust only, no repository state.
    """

    gpgdir: Path
    trusted: list[str] = field(default_factory=list)

    def close(self) -> None:
        _kill_gpg_agents(self.gpgdir)

    def __enter__(self) -> PacmanKeyring:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pacman_keyring(*, gpgdir: Path, key: bytes) -> PacmanKeyring:
    """Initialise a pacman keyring in ``gpgdir`` that trusts the keys in ``key`` only."""
    _require("pacman-key", "gpg", "gpgconf")
    gpgdir.mkdir(parents=True, exist_ok=True)
    keyring = PacmanKeyring(gpgdir=gpgdir)
    try:
        _check(_run(["pacman-key", "--gpgdir", str(gpgdir), "--init"]))
        # Never ask a public keyserver about an unknown key: the tests must not reach out.
        with (gpgdir / "gpg.conf").open("a") as conf:
            conf.write("keyserver hkp://127.0.0.1:9\n")
        key_path = gpgdir.parent / f"{gpgdir.name}.asc"
        key_path.write_bytes(key)
        _check(_run(["pacman-key", "--gpgdir", str(gpgdir), "--add", str(key_path)]))
        for fpr in fingerprints(key):
            _check(_run(["pacman-key", "--gpgdir", str(gpgdir), "--lsign-key", fpr]))
            keyring.trusted.append(fpr)
    except BaseException:
        keyring.close()
        raise
    return keyring


@dataclass(frozen=True, kw_only=True)
class PacmanClient:
    """pacman with its own config, database, cache and root, checking with ``keyring``."""

    root: Path
    keyring: PacmanKeyring

    def install(self, name: str) -> Outcome:
        return _run(
            [
                "pacman",
                "--root",
                str(self.root / "root"),
                "--dbpath",
                str(self.root / "db"),
                "--config",
                str(self.root / "pacman.conf"),
                "--gpgdir",
                str(self.keyring.gpgdir),
                "--cachedir",
                str(self.root / "cache"),
                "-Sy",
                "--noconfirm",
                name,
            ]
        )


def pacman_client(
    *, root: Path, url: str, keyring: PacmanKeyring, stage: str = "prod"
) -> PacmanClient:
    """A pacman client in ``root`` requiring signed databases and packages (``keyring``)."""
    _require("pacman")
    for sub in ("cache", "root", "db"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "pacman.conf").write_text(
        "[options]\n"
        "Architecture = x86_64\n"
        "SigLevel = Required DatabaseRequired\n"
        f"CacheDir = {root / 'cache'}\n"
        "\n"
        f"[packyard-{stage}]\n"
        "SigLevel = Required DatabaseRequired\n"
        f"Server = {url}/repos/pacman/{stage}/$arch\n"
    )
    return PacmanClient(root=root, keyring=keyring)


# --------------------------------------------------------------------------- tampering proxy


Tamper = Callable[[str, bytes], bytes | None]

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "proxy-connection",
    "te",
    "upgrade",
}


def flip_byte(data: bytes, index: int) -> bytes:
    """``data`` with the byte at ``index`` changed (its lowest bit flipped)."""
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


class TamperingProxy:
    """A loopback HTTP server that forwards GET/HEAD to ``upstream`` and passes each response
    body through ``tamper(path, body)``; a non-None result replaces the body (and is recorded
    in ``tampered``). Use as a context manager; ``url`` replaces the server's URL."""

    def __init__(self, *, upstream: str, tamper: Tamper) -> None:
        host_port = upstream.removeprefix("http://").rstrip("/")
        self.upstream_host, _, port = host_port.partition(":")
        self.upstream_port = int(port or 80)
        self.tamper = tamper
        self.tampered: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                proxy._forward(self)

            def do_HEAD(self) -> None:
                proxy._forward(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def _forward(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        headers = {
            k: v
            for k, v in handler.headers.items()
            if k.lower() not in _HOP_BY_HOP and k.lower() != "host"
        }
        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=60)
        try:
            conn.request(handler.command, handler.path, headers=headers)
            response = conn.getresponse()
            body = response.read()
            path = handler.path.split("?", 1)[0]
            altered = self.tamper(path, body) if handler.command == "GET" else None
            if altered is not None:
                with self._lock:
                    self.tampered.append(path)
                body = altered
            handler.send_response(response.status)
            for key, value in response.getheaders():
                if key.lower() not in _HOP_BY_HOP:
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Connection", "close")
            handler.end_headers()
            if handler.command == "GET":
                handler.wfile.write(body)
        finally:
            conn.close()
        handler.close_connection = True

    def __enter__(self) -> TamperingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)


# --------------------------------------------------------------------------- the server side


@contextlib.contextmanager
def running_server(tmp: Path, *, config: Mapping[str, Any] | None = None) -> Iterator[Server]:
    """A started ``packyard serve`` with its own data dir below ``tmp`` (for module fixtures;
    tests/conftest.py's ``make_server`` is per test). Stops it and its gpg-agent on exit."""
    data_dir = tmp / "data"
    if config:
        write_config(data_dir, config)
    server = Server(data_dir=data_dir, port=free_port(), env=base_env(tmp))
    try:
        server.start()
        yield server
    finally:
        server.stop()
        _kill_gpg_agents(data_dir / "gnupg")


def upload(server: Server, path: Path) -> str:
    """Upload ``path``; return the artifact id (its sha256)."""
    response = server.upload(path)
    assert response.status_code == 201, response.text
    return str(response.json()["sha256"])


def promote(
    server: Server,
    artifact: str,
    *,
    to: str = "prod",
    stages: Sequence[str] = DEFAULT_PIPELINE,
    change_control: str = "CHG-4711",
) -> None:
    """Promote ``artifact`` stage by stage (the default pipeline's gates) up to ``to`` with
    the CLI, as a user does; fail with the CLI's message if a step is refused."""
    for stage in stages[: list(stages).index(to) + 1]:
        args = ["promote", artifact[:16], "--to", stage]
        if stage == "prod":
            args += ["--change-control", change_control]
        result = server.cli(*args)
        assert result.returncode == 0, f"promote to {stage}: {result.stdout}{result.stderr}"


def advance(
    server: Server,
    artifacts: Sequence[str],
    *,
    to: str = "prod",
    stages: Sequence[str] = DEFAULT_PIPELINE,
    change_control: str = "CHG-4711",
) -> None:
    """Set-up: promote several artifacts stage by stage through the API, all of them into a
    stage before the next (so their publish jobs coalesce), up to ``to``."""
    with server.client() as client:
        for stage in stages[: list(stages).index(to) + 1]:
            for artifact in artifacts:
                response = client.post(
                    f"/api/v1/artifacts/{artifact}/promote",
                    json={
                        "stage": stage,
                        "change_control": change_control if stage == "prod" else None,
                    },
                )
                assert response.status_code == 200, response.text


def wait_for_publishing(server: Server, *, timeout: float = 90) -> None:
    """Wait until no publish job is queued or running; fail if a recent one failed.

    Promotions and demotions queue their publish job in the same transaction, so once the
    command returned, an idle queue means the change is live in every channel.
    """
    deadline = time.monotonic() + timeout
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    ) as client:
        while True:
            jobs = client.get("/api/v1/jobs", params={"kind": "publish", "limit": 50})
            jobs.raise_for_status()
            pending = [j for j in jobs.json() if j["status"] in ("queued", "running")]
            failed = [j for j in jobs.json() if j["status"] == "failed"]
            if failed:
                raise AssertionError(
                    "publish job failed: " + json.dumps(failed[0], indent=1) + "\n" + server.log()
                )
            if not pending:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"publishing did not finish within {timeout}s: {pending}")
            time.sleep(0.1)
