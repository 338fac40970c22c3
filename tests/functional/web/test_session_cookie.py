"""The session cookie's flags and secret, checked in-process on the real application."""

from __future__ import annotations

import stat
import warnings
from pathlib import Path

import pytest

from packyard.asgi import create_app
from packyard.bootstrap import Runtime
from packyard.config import load_settings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # Starlette suggests another HTTP client for TestClient
    from starlette.testclient import TestClient


@pytest.fixture
def runtime(tmp_path: Path):
    rt = Runtime.from_settings(load_settings(data_dir=tmp_path / "data"), signer=False)
    yield rt
    rt.close()


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("http", False)])
def test_cookie_is_httponly_lax_and_secure_over_https(runtime, scheme: str, secure: bool) -> None:
    app = create_app(runtime, run_jobs=False)
    with TestClient(app, base_url=f"{scheme}://packyard.example") as client:
        cookie = client.get("/login").headers["set-cookie"]
    assert cookie.startswith("packyard_session=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= flags
    assert ("secure" in flags) is secure


def test_secret_is_created_once_private_and_reused(runtime) -> None:
    create_app(runtime, run_jobs=False)
    secret = runtime.settings.data_dir / "session-secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    first = secret.read_text()
    create_app(runtime, run_jobs=False)  # a restart
    assert secret.read_text() == first and len(first.strip()) >= 43


def test_a_forged_or_foreign_cookie_is_ignored(runtime) -> None:
    app = create_app(runtime, run_jobs=False)
    with TestClient(app, base_url="http://packyard.example") as client:
        client.cookies.set("packyard_session", "eyJzaWQiOiAieCJ9.forged.signature")
        response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")
