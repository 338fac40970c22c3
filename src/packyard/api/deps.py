"""Request dependencies: the runtime and the authenticated principal."""

from __future__ import annotations

from fastapi import Request
from fastapi.security import HTTPBearer

from packyard.bootstrap import Runtime
from packyard.domain.auth import Principal, Role
from packyard.domain.errors import NotAuthenticated, NotAuthorized
from packyard.services.users import authenticate_token, token_needs_touch, touch_token

__all__ = ["authenticate_request", "bearer", "get_principal", "get_runtime"]

bearer = HTTPBearer(auto_error=False, description="An API token: `Authorization: Bearer pky_…`")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_principal(request: Request) -> Principal:
    """The user behind the bearer token (sync: FastAPI runs it in the thread pool).

    Mirror credentials are refused here: they may only read /repos and use the mirror API,
    whose routes authenticate with ``authenticate_request`` and check the mirror themselves.
    """
    principal = authenticate_request(request)
    if principal.role is Role.MIRROR:
        raise NotAuthorized(
            "a mirror's token may only read /repos and use the mirror API",
            hint="use a user's token for anything else",
        )
    return principal


def authenticate_request(request: Request) -> Principal:
    """Authenticate the bearer token, whoever it belongs to."""
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
        principal = authenticate_token(ctx, token.strip())
        stale = principal.token_id is not None and token_needs_touch(
            ctx, token_id=principal.token_id
        )
    if stale and principal.token_id is not None:
        with runtime.context(write=True) as ctx:
            touch_token(ctx, token_id=principal.token_id)
    return principal
