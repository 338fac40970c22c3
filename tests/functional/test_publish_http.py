"""/repos over HTTP as package managers and caches use it: HEAD, Range, ETag revalidation, which
channel serves which package file, and paths that try to leave the published tree.

One server per module with a package of each format in prod and an rpm and a pacman package
that only reached dev.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path

import httpx
import pytest
from tests.clients import (
    advance,
    apt_client,
    public_key,
    running_server,
    upload,
    wait_for_publishing,
)
from tests.conftest import Server
from tests.pkgbuild import build_deb, build_pacman, build_rpm

PACKAGES = "/repos/apt/dists/prod/main/binary-amd64/Packages"
IN_RELEASE = "/repos/apt/dists/prod/InRelease"


@pytest.fixture(scope="module")
def repo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("publish-http")
    with running_server(tmp) as server:
        prod = [
            upload(server, build_deb(tmp / "pkgs", name="web-apt", version="1.0-1")),
            upload(server, build_rpm(tmp / "pkgs", name="web-dnf", version="1.0")),
        ]
        dev = [
            upload(server, build_rpm(tmp / "pkgs", name="devonly-dnf", version="1.0")),
            upload(server, build_pacman(tmp / "pkgs", name="devonly-pacman", version="1.0")),
        ]
        advance(server, prod, to="prod")
        advance(server, dev, to="dev")
        wait_for_publishing(server)
        yield server


@pytest.fixture
def anon(repo_server: Server) -> Iterator[httpx.Client]:
    # Anonymous, as apt, dnf and pacman are.
    with httpx.Client(base_url=repo_server.url, timeout=30) as client:
        yield client


def pool_path(anon: httpx.Client, name: str) -> str:
    """Where apt would download ``name`` from: its Packages stanza's Filename."""
    packages = anon.get(PACKAGES)
    assert packages.status_code == 200, packages.text
    for stanza in packages.text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line)
        if fields.get("Package") == name:
            return "/repos/apt/" + fields["Filename"]
    raise AssertionError(f"{name} is not in {PACKAGES}:\n{packages.text}")


def test_head_answers_like_get_without_a_body(anon: httpx.Client) -> None:
    for path in (IN_RELEASE, pool_path(anon, "web-apt")):
        got = anon.get(path)
        head = anon.head(path)
        assert got.status_code == head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) == len(got.content) > 0
        assert head.headers["etag"] == got.headers["etag"]
        assert head.headers["content-type"] == got.headers["content-type"]
    assert anon.head(IN_RELEASE).headers["content-type"].startswith("text/plain")
    assert anon.head(pool_path(anon, "web-apt")).headers["content-type"] == (
        "application/vnd.debian.binary-package"
    )
    for key in ("/repos/keys/packyard.asc", "/repos/keys/packyard.gpg"):
        got, head = anon.get(key), anon.head(key)
        assert got.status_code == head.status_code == 200
        assert head.content == b""
        assert int(head.headers["content-length"]) == len(got.content) > 1000, key


def test_a_range_request_gets_206_with_exactly_those_bytes(anon: httpx.Client) -> None:
    for path in (IN_RELEASE, pool_path(anon, "web-apt")):
        whole = anon.get(path).content
        part = anon.get(path, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206
        assert part.content == whole[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{len(whole)}"
        tail = anon.get(path, headers={"Range": "bytes=-5"})
        assert tail.status_code == 206
        assert tail.content == whole[-5:]


def test_a_client_revalidating_with_the_etag_gets_304(anon: httpx.Client) -> None:
    for path in (IN_RELEASE, pool_path(anon, "web-apt")):
        first = anon.get(path)
        etag = first.headers["etag"]
        again = anon.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        assert again.headers["etag"] == etag
        stale = anon.get(path, headers={"If-None-Match": '"something-else"'})
        assert stale.status_code == 200
        assert stale.content == first.content
        # As caches send it: one of a list, weakened by a proxy, or any version at all.
        for header in (f'"other", {etag}', f"W/{etag}", "*"):
            assert anon.get(path, headers={"If-None-Match": header}).status_code == 304, header
    # Package files never change under their name; indexes must be revalidated.
    assert "immutable" in anon.head(pool_path(anon, "web-apt")).headers["cache-control"]
    assert anon.head(IN_RELEASE).headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    ("fmt", "dev_path", "prod_path"),
    [
        (
            "dnf",
            "/repos/dnf/dev/Packages/d/devonly-dnf-1.0-1.noarch.rpm",
            "/repos/dnf/prod/Packages/d/devonly-dnf-1.0-1.noarch.rpm",
        ),
        (
            "pacman",
            "/repos/pacman/dev/x86_64/devonly-pacman-1.0-1-any.pkg.tar.zst",
            "/repos/pacman/prod/x86_64/devonly-pacman-1.0-1-any.pkg.tar.zst",
        ),
    ],
)
def test_a_package_only_in_dev_is_not_served_by_the_prod_channel(
    anon: httpx.Client, fmt: str, dev_path: str, prod_path: str
) -> None:
    in_dev = anon.get(dev_path)
    assert in_dev.status_code == 200, f"{fmt}: the dev channel should serve {dev_path}"
    assert len(in_dev.content) > 0
    for path in (prod_path, f"{prod_path}.sig"):
        refused = anon.get(path)
        assert refused.status_code == 404, path
        assert refused.json()["error"]["code"] == "not_found"
    # ... and the package the prod channel does hold is served there.
    assert anon.head("/repos/dnf/prod/Packages/w/web-dnf-1.0-1.noarch.rpm").status_code == 200


def raw_get(server: Server, target: str) -> tuple[int, bytes]:
    """GET exactly ``target`` (httpx would normalise ``..`` segments before sending)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", target)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize(
    "target",
    [
        "/repos/apt/dists/prod/../../x",
        "/repos/apt/dists/prod/../prod/InRelease",
        "/repos/apt/dists/prod/../../../../../../../admin-token",
        "/repos/dnf/prod/../../../../../admin-token",
        "/repos/dnf/prod/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/admin-token",
        "/repos/dnf/prod/..%2f..%2f..%2f..%2f..%2fadmin-token",
        "/repos/pacman/prod/x86_64/../../../../../../admin-token",
        "/repos/dnf/prod/./repodata/repomd.xml",
        "/repos/dnf/prod//etc/passwd",
    ],
)
def test_paths_that_leave_the_published_tree_are_404(repo_server: Server, target: str) -> None:
    token = (repo_server.data_dir / "admin-token").read_bytes().strip()
    status, body = raw_get(repo_server, target)
    assert status == 404, (target, body[:200])
    assert token not in body
    assert b"BEGIN PGP" not in body


def test_if_modified_since_revalidates_indexes(anon: httpx.Client) -> None:
    # apt and pacman revalidate with If-Modified-Since; Last-Modified is the snapshot's time.
    first = anon.get(IN_RELEASE)
    stamp = first.headers["last-modified"]
    assert parsedate_to_datetime(stamp) <= datetime.now(UTC)
    assert anon.get(IN_RELEASE, headers={"If-Modified-Since": stamp}).status_code == 304
    earlier = format_datetime(parsedate_to_datetime(stamp) - timedelta(days=1), usegmt=True)
    again = anon.get(IN_RELEASE, headers={"If-Modified-Since": earlier})
    assert again.status_code == 200
    assert again.content == first.content
    assert anon.get(IN_RELEASE, headers={"If-Modified-Since": "yesterday"}).status_code == 200


def test_a_second_apt_update_is_a_hit(
    repo_server: Server, anon: httpx.Client, tmp_path: Path
) -> None:
    client = apt_client(root=tmp_path / "apt", url=repo_server.url, key=public_key(repo_server))
    assert client.update().ok
    second = client.update()
    assert second.ok, second
    assert f"Hit:1 {repo_server.url}/repos/apt prod InRelease" in second.output, second.output


def test_dnf_metadata_named_by_the_previous_repomd_is_served_after_a_publish(
    repo_server: Server, anon: httpx.Client, tmp_path: Path
) -> None:
    # A dnf client reads repomd.xml, then the files it names; a publish in between must not
    # turn those into 404s (the previous snapshot is kept), as apt's by-hash files are not.
    repomd = anon.get("/repos/dnf/prod/repodata/repomd.xml")
    assert repomd.status_code == 200
    named = re.findall(r'<location href="(repodata/[^"]+)"', repomd.text)
    assert any("primary" in href for href in named), repomd.text
    late = upload(repo_server, build_rpm(tmp_path / "pkgs", name="late-dnf", version="1.0"))
    advance(repo_server, [late], to="prod")
    wait_for_publishing(repo_server)
    newer = anon.get("/repos/dnf/prod/repodata/repomd.xml")
    assert newer.text != repomd.text
    for href in named:
        old = anon.get(f"/repos/dnf/prod/{href}")
        assert old.status_code == 200, href
        assert "immutable" in old.headers["cache-control"]
    # A name no snapshot has stays a 404.
    assert anon.get("/repos/dnf/prod/repodata/0000-primary.xml.gz").status_code == 404
