"""Downloading an artifact's file through the REST API (in process, on the real application):
the same name, digest headers and bytes whether the blob is a local file or comes from a store
that can only stream it."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from packyard.asgi import create_app
from packyard.bootstrap import Runtime
from packyard.config import load_settings
from packyard.services.users import bootstrap_admin

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette suggests another HTTP client for TestClient
    from starlette.testclient import TestClient

DATA = b"packyard download test\n" * 1000


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime.from_settings(load_settings(data_dir=tmp_path / "data"), signer=False)
    yield rt
    rt.close()


def _client(runtime: Runtime) -> TestClient:
    app = create_app(runtime, run_jobs=False)
    with runtime.context(write=True) as ctx:
        token = bootstrap_admin(ctx)
    assert token is not None
    return TestClient(app, headers={"Authorization": f"Bearer {token}"})


def _upload(client: TestClient, filename: str) -> str:
    response = client.post(
        "/api/v1/artifacts",
        params={
            "filename": filename,
            "package": "tool",
            "version": "1.0",
            "justification": "tests",
            "provenance": "pytest",
        },
        content=DATA,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    sha: str = response.json()["sha256"]
    return sha


@pytest.mark.parametrize("local", [True, False], ids=["local-file", "streamed"])
def test_the_file_comes_with_its_name_and_digest(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, local: bool
) -> None:
    with _client(runtime) as client:
        sha = _upload(client, "tool-1.0.bin")
        if not local:  # a blob store without local files (an object store) streams the blob
            monkeypatch.setattr(runtime.blobs, "local_path", lambda _sha: None)
        response = client.get(f"/api/v1/artifacts/{sha}/file")
    assert response.status_code == 200
    assert response.content == DATA
    assert hashlib.sha256(response.content).hexdigest() == sha
    assert response.headers["etag"] == f'"{sha}"'
    assert response.headers["x-checksum-sha256"] == sha
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == 'attachment; filename="tool-1.0.bin"'


def test_a_name_that_is_not_plain_ascii_is_percent_encoded(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = "outil-été-1.0.bin"
    with _client(runtime) as client:
        sha = _upload(client, name)
        monkeypatch.setattr(runtime.blobs, "local_path", lambda _sha: None)
        response = client.get(f"/api/v1/artifacts/{sha}/file")
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f"attachment; filename*=utf-8''{quote(name)}"


def test_an_unknown_artifact_is_a_404(runtime: Runtime) -> None:
    with _client(runtime) as client:
        response = client.get(f"/api/v1/artifacts/{'0' * 64}/file")
    assert response.status_code == 404
    assert "error" in response.json()
