"""The signed session cookie and its persistent secret.

The cookie holds a small JSON object (the CSRF token, the server-side session's secret, flash
messages), signed with HMAC using ``<data_dir>/session-secret``. The secret is created once
(mode 0600) and reused, so a restart signs nobody out. Who is signed in is decided by the
``web_sessions`` row the cookie names (``services.users.authenticate_session``), so signing
out, disabling a user or changing a password takes effect at once, whatever cookie a browser
still holds.

The cookie is HttpOnly and SameSite=Lax, and Secure whenever the request arrived over https
(directly or through a proxy that uvicorn trusts with X-Forwarded-Proto).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, TimestampSigner
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from packyard.services.users import SESSION_LIFETIME

__all__ = ["COOKIE_NAME", "SignedSessionMiddleware", "load_or_create_secret"]

COOKIE_NAME = "packyard_session"
SECRET_FILE = "session-secret"  # noqa: S105 - the file name, not the secret


def load_or_create_secret(data_dir: Path) -> str:
    """The session secret from the data dir, created (0600) on first start."""
    path = data_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text().strip()
        if len(secret) >= 32:
            return secret
        raise RuntimeError(
            f"{path} is too short to be a session secret; delete it to create a new one "
            "(everyone will have to sign in again)"
        ) from None
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return secret


class SignedSessionMiddleware:
    """Like Starlette's SessionMiddleware, with Secure decided per request and some paths
    (the API, static files, icons) left alone."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str,
        skip_prefixes: tuple[str, ...] = ("/api/", "/static/"),
        max_age: int = int(SESSION_LIFETIME.total_seconds()),
    ) -> None:
        self.app = app
        self.signer = TimestampSigner(secret, salt="packyard.web.session")
        self.skip_prefixes = skip_prefixes
        self.max_age = max_age

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.skip_prefixes):
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        data: dict[str, Any] = {}
        raw = connection.cookies.get(COOKIE_NAME)
        if raw:
            try:
                payload = self.signer.unsign(raw.encode(), max_age=self.max_age)
                loaded = json.loads(base64.urlsafe_b64decode(payload))
                data = loaded if isinstance(loaded, dict) else {}
            except (BadSignature, ValueError):
                data = {}
        scope["session"] = data
        before = json.dumps(data, sort_keys=True)
        secure = scope.get("scheme") == "https"

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                after = json.dumps(scope["session"], sort_keys=True)
                if after != before:
                    headers = MutableHeaders(scope=message)
                    flags = "; Path=/; HttpOnly; SameSite=Lax" + ("; Secure" if secure else "")
                    if scope["session"]:
                        value = self.signer.sign(base64.urlsafe_b64encode(after.encode())).decode()
                        headers.append(
                            "Set-Cookie", f"{COOKIE_NAME}={value}; Max-Age={self.max_age}{flags}"
                        )
                    else:
                        headers.append("Set-Cookie", f"{COOKIE_NAME}=; Max-Age=0{flags}")
            await send(message)

        await self.app(scope, receive, send_wrapper)
