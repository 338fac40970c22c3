"""Pushing publications to an S3-compatible store: a real S3 protocol endpoint (`moto_server`
on loopback), `packyard publish --to s3://bucket/prefix` run on the server host, a push target
in the configuration that the publish job updates by itself, and real apt-get installing
from the bucket as from a static web site.

What a user would notice:
- the bucket holds the /repos layout: apt-get installs from http://<endpoint>/<bucket>/<prefix>;
- a second push after one promotion uploads only what changed;
- package files are uploaded before the indexes, InRelease last, and objects no longer
  published are deleted only after the new indexes are up (by-hash files of the previous
  push stay one more round).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.clients import advance, apt_client, upload, wait_for_publishing
from tests.conftest import Server, free_port, run_cli
from tests.pkgbuild import build_deb

BUCKET = "packyard-test"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
_REQUEST = re.compile(r'"(GET|PUT|POST|DELETE|HEAD) (\S+) HTTP/1\.[01]"')


@dataclass(frozen=True, kw_only=True)
class S3Endpoint:
    url: str
    log: Path

    def requests(self) -> list[tuple[str, str]]:
        """(method, path) of every request moto_server has logged so far, in order."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [(m[1], m[2]) for m in _REQUEST.finditer(text)]

    def get(self, key: str) -> httpx.Response:
        """An anonymous GET, as a client using the bucket as a web site does."""
        return httpx.get(f"{self.url}/{BUCKET}/{key}", timeout=30)


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Endpoint]:
    """moto_server on a free loopback port with a bucket anyone may read; stopped after."""
    port = free_port()
    log = tmp_path / "moto.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    endpoint = S3Endpoint(url=f"http://127.0.0.1:{port}", log=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                if httpx.get(endpoint.url, timeout=1).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
        import boto3

        client = boto3.client("s3", endpoint_url=endpoint.url, **_boto_credentials())
        client.create_bucket(Bucket=BUCKET)
        client.put_bucket_policy(
            Bucket=BUCKET,
            Policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": "*",
                            "Action": "s3:GetObject",
                            "Resource": f"arn:aws:s3:::{BUCKET}/*",
                        }
                    ],
                }
            ),
        )
        client.close()
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }


def push(server: Server, to: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """`packyard publish --to` on the server host; returns the result and how many objects
    it says it uploaded."""
    result = run_cli(
        "publish",
        "--to",
        to,
        "--stage",
        "prod",
        "--format",
        "apt",
        "--data-dir",
        str(server.data_dir),
        env=server.env,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.search(r"(\d+) objects uploaded", result.stdout)
    assert match, result.stdout
    return result, int(match[1])


def writes(s3: S3Endpoint, since: int, prefix: str) -> list[tuple[str, str]]:
    """(method, key below the prefix) of the writes after request number ``since``."""
    start = f"/{BUCKET}/{prefix}/"
    out = []
    for method, path in s3.requests()[since:]:
        if method == "PUT" and path.startswith(start):
            out.append(("PUT", path.removeprefix(start)))
        elif method == "POST" and path.startswith(f"/{BUCKET}") and "delete" in path:
            out.append(("DELETE", ""))
    return out


def test_push_to_s3_serves_apt_uploads_changes_only_in_order_and_deletes_last(
    make_server, s3: S3Endpoint, tmp_path: Path
) -> None:
    server = make_server(
        config={
            "publish": {
                "apt": {"architectures": ["amd64"]},
                "pacman": {"architectures": ["x86_64"]},
                "s3": {
                    "endpoint_url": s3.url,
                    "targets": [{"url": f"s3://{BUCKET}/auto", "channels": ["apt/prod"]}],
                },
            }
        },
        env=AWS_ENV,
    )
    hello = build_deb(tmp_path / "pkgs", name="s3-hello", version="1.0-1")
    hello_id = upload(server, hello)
    advance(server, [hello_id], to="prod")
    wait_for_publishing(server)

    # 1. A first push uploads the whole tree: package files first, InRelease last.
    mark = len(s3.requests())
    first, count = push(server, f"s3://{BUCKET}/manual")
    written = writes(s3, mark, "manual")
    keys = [key for method, key in written if method == "PUT"]
    repo_keys = [k for k in keys if k.startswith("repos/")]
    assert count == len(repo_keys) == 12, (first.stdout, keys)
    pool = "repos/apt/pool/main/s/s3-hello/s3-hello_1.0-1_all.deb"
    assert repo_keys[0] == pool
    assert repo_keys[-1] == "repos/apt/dists/prod/InRelease"
    by_hash = [k for k in repo_keys if "/by-hash/" in k]
    assert len(by_hash) == 3
    assert max(repo_keys.index(k) for k in by_hash) < repo_keys.index(
        "repos/apt/dists/prod/main/binary-amd64/Packages.xz"
    )
    assert max(repo_keys.index(k) for k in repo_keys if k.endswith("Packages.gz")) < min(
        repo_keys.index(f"repos/apt/dists/prod/{n}") for n in ("Release", "Release.gpg")
    )
    assert s3.get(f"manual/{pool}").content == hello.read_bytes()
    assert s3.get("manual/repos/keys/packyard.asc").text.startswith("-----BEGIN PGP")

    # Clients use the bucket as their base URL.
    key = s3.get("manual/repos/keys/packyard.asc").content
    apt = apt_client(root=tmp_path / "apt", url=f"{s3.url}/{BUCKET}/manual", key=key)
    assert apt.update().ok
    installed = apt.install("s3-hello")
    assert installed.ok, installed
    assert (tmp_path / "apt/usr/share/doc/s3-hello/README").is_file()
    # The configured target was pushed by the publish job itself.
    assert s3.get(f"auto/{pool}").content == hello.read_bytes()
    assert s3.get("auto/repos/apt/dists/prod/InRelease").status_code == 200

    # 2. After one promotion, only the new package and the changed indexes are uploaded.
    second = build_deb(tmp_path / "pkgs", name="s3-second", version="1.0-1")
    advance(server, [upload(server, second)], to="prod")
    wait_for_publishing(server)
    mark = len(s3.requests())
    _result, count = push(server, f"s3://{BUCKET}/manual")
    keys = [key for method, key in writes(s3, mark, "manual") if method == "PUT"]
    repo_keys = [k for k in keys if k.startswith("repos/")]
    assert count == len(repo_keys) == 10, keys
    assert repo_keys[0] == "repos/apt/pool/main/s/s3-second/s3-second_1.0-1_all.deb"
    assert pool not in repo_keys and "repos/keys/packyard.asc" not in repo_keys
    assert repo_keys[-1] == "repos/apt/dists/prod/InRelease"
    second_by_hash = [k for k in repo_keys if "/by-hash/" in k]
    unchanged, _ = push(server, f"s3://{BUCKET}/manual")
    assert "0 objects uploaded" in unchanged.stdout

    # 3. A demotion: the file goes, after the new indexes are up; by-hash of the previous
    # push stays one more round, older ones go.
    assert server.cli("demote", hello_id[:16], "--from", "prod").returncode == 0
    wait_for_publishing(server)
    mark = len(s3.requests())
    result, _count = push(server, f"s3://{BUCKET}/manual")
    assert re.search(r"[1-9]\d* deleted", result.stdout), result.stdout
    written = writes(s3, mark, "manual")
    in_release = written.index(("PUT", "repos/apt/dists/prod/InRelease"))
    assert ("DELETE", "") in written[in_release:]
    assert s3.get(f"manual/{pool}").status_code == 404
    assert all(s3.get(f"manual/{k}").status_code == 200 for k in second_by_hash)
    assert all(s3.get(f"manual/{k}").status_code == 404 for k in by_hash)
    assert s3.get(f"auto/{pool}").status_code == 404  # the publish job pushed the demotion

    # Mistakes get a clear message and an exit code of the CLI's table.
    missing = run_cli(
        "publish",
        "--to",
        "s3://no-such-bucket/x",
        "--data-dir",
        str(server.data_dir),
        env=server.env,
    )
    assert missing.returncode == 5, missing.stdout + missing.stderr
    assert "create the bucket 'no-such-bucket' first" in missing.stderr
    bad_url = run_cli(
        "publish",
        "--to",
        "https://example.invalid/x",
        "--data-dir",
        str(server.data_dir),
        env=server.env,
    )
    assert bad_url.returncode == 10 and "is not an S3 URL" in bad_url.stderr
