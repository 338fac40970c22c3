"""Request dependencies: the runtime and the authenticated principal."""

from __future__ import annotations

from fastapi import Request
from fastapi.security import HTTPBearer

from packyard.bootstrap import Runtime
from packyard.domain.auth import Principal
from packyard.domain.errors import NotAuthenticated
from packyard.services.users import authenticate_token

__all__ = ["bearer", "get_principal", "get_runtime"]

bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer pky_…`")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_principal(request: Request) -> Principal:
    """Authenticate the bearer token (sync: FastAPI runs it in the thread pool)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        raise NotAuthenticated(
            "no API token was sent",
            hint="send 'Authorization: Bearer <token>' (PACKYARD_TOKEN for the CLI)",
        )
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated(
            "the Authorization header is not 'Bearer <token>'",
            hint="send 'Authorization: Bearer <token>'",
        )
    runtime = get_runtime(request)
    with runtime.context() as ctx:
        return authenticate_token(ctx, token.strip())
