"""Pushing publications to an S3-compatible store: a real S3 protocol endpoint (`moto_server`
on loopback), `packyard publish --to s3://bucket/prefix` run on the server host, a push target
in the configuration that the publish job updates by itself, and real apt-get installing
from the bucket as from a static web site.

What a user would notice:
- the bucket holds the /repos layout: apt-get installs from http://<endpoint>/<bucket>/<prefix>;
- a second push after one promotion uploads only what changed;
- package files are uploaded before the indexes, InRelease last, and objects no longer
  published are deleted only after the new indexes are up (by-hash files of the previous
  push stay one more round);
- a push (or worker, gc, scrub) from a directory that is not an installation refuses before
  writing anything, and a push with no published channel deletes nothing (keys included);
- after a failed configured push, the next publication catches up every channel it left
  behind;
- errors are printed as they are (no Rich markup), and the push shows its progress.
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
from tests.conftest import Server, base_env, free_port, run_cli
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
        create_public_bucket(endpoint, BUCKET)
        yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def create_public_bucket(s3: S3Endpoint, bucket: str) -> None:
    """A bucket anyone may read, as a bucket serving packages is."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3.url, **_boto_credentials())
    client.create_bucket(Bucket=bucket)
    client.put_bucket_policy(
        Bucket=bucket,
        Policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                    }
                ],
            }
        ),
    )
    client.close()


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
        "region_name": AWS_ENV["AWS_DEFAULT_REGION"],
    }


def _server_with_a_deb_in_prod(make_server, s3: S3Endpoint, tmp_path: Path, name: str) -> Server:
    """A server pushing to the local S3 endpoint, with one deb ``name`` 1.0-1 published in prod."""
    server: Server = make_server(
        config={"publish": {"apt": {"architectures": ["amd64"]}, "s3": {"endpoint_url": s3.url}}},
        env=AWS_ENV,
    )
    hello = build_deb(tmp_path / "pkgs", name=name, version="1.0-1")
    advance(server, [upload(server, hello)], to="prod")
    wait_for_publishing(server)
    return server


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


def _settle(server: Server, *, timeout: float = 90) -> list[dict[str, object]]:
    """Wait until no publish job is queued or running; the publish jobs, newest first (failed
    ones included: a missing bucket fails them on purpose)."""
    deadline = time.monotonic() + timeout
    with server.client() as client:
        while True:
            jobs: list[dict[str, object]] = client.get(
                "/api/v1/jobs", params={"kind": "publish", "limit": 50}
            ).json()
            if not any(j["status"] in ("queued", "running") for j in jobs):
                return jobs
            assert time.monotonic() < deadline, jobs
            time.sleep(0.1)


def _empty_dir_env(server: Server, s3: S3Endpoint) -> dict[str, str]:
    """The server host's environment without a data dir or config: what an operator has in a
    fresh shell. The endpoint is set so that nothing ever goes beyond loopback."""
    env = {k: v for k, v in server.env.items() if not k.startswith("PACKYARD_")}
    return {**env, "PACKYARD_PUBLISH__S3__ENDPOINT_URL": s3.url}


def test_push_or_worker_outside_an_installation_refuses_and_writes_nothing(
    make_server, s3: S3Endpoint, tmp_path: Path
) -> None:
    server = _server_with_a_deb_in_prod(make_server, s3, tmp_path, "s3-kept")
    push(server, f"s3://{BUCKET}/site")
    keys = ["site/repos/keys/packyard.asc", "site/repos/keys/packyard.gpg"]
    assert all(s3.get(k).status_code == 200 for k in keys)

    # From a directory that holds no installation (the default ./packyard-data), or with a
    # --data-dir that is not one: a clear refusal, and nothing written here or in the bucket.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    wrong = tmp_path / "wrong-data"
    wrong.mkdir()
    env = _empty_dir_env(server, s3)
    mark = len(s3.requests())
    for extra in ([], ["--data-dir", str(wrong)]):
        refused = run_cli("publish", "--to", f"s3://{BUCKET}/site", *extra, env=env, cwd=elsewhere)
        looked_in = wrong if extra else elsewhere / "packyard-data"
        assert refused.returncode == 10, refused.stdout + refused.stderr
        assert str(looked_in) in refused.stderr, refused.stderr
        assert "no Packyard database" in refused.stderr, refused.stderr
        assert "--data-dir" in refused.stderr and "PACKYARD_DATA_DIR" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert s3.requests()[mark:] == []
    assert all(s3.get(k).status_code == 200 for k in keys)
    assert list(elsewhere.iterdir()) == [] and list(wrong.iterdir()) == []

    # The other commands that act on an existing installation refuse the same way (a worker
    # would otherwise run jobs against a new, empty database until stopped).
    for command in (["worker"], ["gc", "--dry-run"], ["scrub"]):
        result = run_cli(*command, env=env, cwd=elsewhere, timeout=60)
        assert result.returncode == 10, (command, result.stdout + result.stderr)
        assert "no Packyard database" in result.stderr, result.stderr
    assert list(elsewhere.iterdir()) == []


def test_push_with_no_published_channel_deletes_nothing(
    make_server, s3: S3Endpoint, tmp_path: Path
) -> None:
    server = _server_with_a_deb_in_prod(make_server, s3, tmp_path, "s3-kept")
    push(server, f"s3://{BUCKET}/site")
    kept = [
        "site/repos/keys/packyard.asc",
        "site/repos/keys/packyard.gpg",
        "site/repos/apt/dists/prod/InRelease",
        "site/repos/apt/pool/main/s/s3-kept/s3-kept_1.0-1_all.deb",
    ]
    assert all(s3.get(k).status_code == 200 for k in kept)

    # An installation whose database exists but that has published nothing and has no
    # signing key yet (its schema created before the first `packyard serve`).
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    migrate = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from packyard.storage.db.migrate import upgrade; upgrade(sys.argv[1])",
            f"sqlite:///{fresh / 'packyard.db'}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr
    mark = len(s3.requests())
    result = run_cli(
        "publish",
        "--to",
        f"s3://{BUCKET}/site",
        "--data-dir",
        str(fresh),
        env=_empty_dir_env(server, s3),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no published channel" in result.stdout, result.stdout
    assert [m for m, _path in s3.requests()[mark:] if m in ("PUT", "POST", "DELETE")] == []
    assert all(s3.get(k).status_code == 200 for k in kept)


def test_configured_push_catches_up_every_channel_a_failed_push_left_behind(
    make_server, s3: S3Endpoint, tmp_path: Path
) -> None:
    late = "late-bucket"
    server = make_server(
        config={
            "publish": {
                "apt": {"architectures": ["amd64"]},
                "s3": {
                    "endpoint_url": s3.url,
                    "targets": [{"url": f"s3://{late}/pfx", "channels": ["apt/dev", "apt/prod"]}],
                },
            }
        },
        env=AWS_ENV,
    )
    first = build_deb(tmp_path / "pkgs", name="s3-first", version="1.0-1")
    advance(server, [upload(server, first)], to="prod")
    jobs = _settle(server)
    # The bucket does not exist yet: every push failed, saying so once per target.
    failed = [j for j in jobs if j["status"] == "failed"]
    assert failed, jobs
    error = str(failed[0]["error"])
    assert error.count(f"s3://{late}/pfx") == 1, error
    assert f"create the bucket '{late}' first" in error, error
    assert "packyard publish" in error, error

    create_public_bucket(s3, late)

    # The next publication of one channel of the target (apt/dev) also pushes apt/prod,
    # which the failed pushes left behind — and nothing the target does not take.
    second = build_deb(tmp_path / "pkgs", name="s3-second", version="1.0-1")
    advance(server, [upload(server, second)], to="dev")
    jobs = _settle(server)
    assert jobs[0]["status"] == "succeeded", jobs[0]

    def get(key: str) -> int:
        return httpx.get(f"{s3.url}/{late}/pfx/repos/{key}", timeout=30).status_code

    assert get("apt/dists/dev/InRelease") == 200
    assert get("apt/pool/main/s/s3-second/s3-second_1.0-1_all.deb") == 200
    assert get("apt/dists/prod/InRelease") == 200
    assert get("apt/pool/main/s/s3-first/s3-first_1.0-1_all.deb") == 200
    assert get("apt/dists/stage/InRelease") == 404
    assert get("keys/packyard.asc") == 200


def test_push_cli_errors_are_printed_literally_and_options_it_ignores_are_refused(
    server: Server, s3: S3Endpoint, tmp_path: Path
) -> None:
    def publish_to(
        *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return run_cli(
            "publish",
            "--to",
            *args,
            "--data-dir",
            str(server.data_dir),
            env={**server.env, "PACKYARD_PUBLISH__S3__ENDPOINT_URL": s3.url, **(env or {})},
        )

    # A message with "[/x]" in it is not Rich markup (it crashed the CLI).
    odd = publish_to("s3://[/x]")
    assert odd.returncode == 10, odd.stdout + odd.stderr
    assert "'s3://[/x]'" in odd.stderr and "Traceback" not in odd.stderr, odd.stderr

    # Why a URL is not one: bucket names are lowercase.
    upper = publish_to("s3://PKY")
    assert upper.returncode == 10, upper.stderr
    assert "lowercase" in upper.stderr and "s3://pky" in upper.stderr, upper.stderr

    # A hint naming "[publish.s3]" keeps it (no credentials anywhere; no instance metadata).
    no_credentials = publish_to(
        f"s3://{BUCKET}/x",
        env={
            "AWS_ACCESS_KEY_ID": "",
            "AWS_SECRET_ACCESS_KEY": "",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_CONFIG_FILE": str(tmp_path / "none"),
        },
    )
    assert no_credentials.returncode == 10, no_credentials.stdout + no_credentials.stderr
    assert "[publish.s3] access_key_id/secret_access_key" in no_credentials.stderr, (
        no_credentials.stderr
    )

    assert not [p for _m, p in s3.requests() if p.startswith(f"/{BUCKET}/x/")]


def test_push_refuses_publish_options_it_would_ignore(tmp_path: Path) -> None:
    env = base_env(tmp_path)
    for extra in (["--recompute"], ["--no-wait"]):
        refused = run_cli(
            "publish", "--to", f"s3://{BUCKET}/x", *extra, env=env, cwd=tmp_path, timeout=60
        )
        assert refused.returncode == 2, (extra, refused.stdout + refused.stderr)
        assert extra[0] in refused.stderr, refused.stderr
    assert list(tmp_path.iterdir()) == []


def test_push_shows_its_progress(make_server, s3: S3Endpoint, tmp_path: Path) -> None:
    server = _server_with_a_deb_in_prod(make_server, s3, tmp_path, "s3-progress")
    result = run_cli(
        "publish",
        "--to",
        f"s3://{BUCKET}/progress",
        "--stage",
        "prod",
        "--data-dir",
        str(server.data_dir),
        # What Rich sees on a terminal.
        env={**server.env, "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1", "COLUMNS": "160"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # What is about to happen, before it happens; then a progress bar on stderr.
    assert re.search(
        rf"Pushing (\S+, )*apt/prod(, \S+)* to s3://{BUCKET}/progress: \d+ objects to upload",
        result.stderr,
    ), result.stderr
    assert re.search(r"\d+/\d+ objects", result.stderr), result.stderr
    assert "objects uploaded" in result.stdout
