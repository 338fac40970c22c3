"""/repos: the published repositories, as apt, dnf, pacman, Munki and the agent fetch them.

GET and HEAD, Range (206), ETag / If-None-Match (304), content types per file kind, and
cache headers: immutable for pool files and by-hash indexes, revalidate for the rest.
Anonymous unless ``publish.public = false``; then HTTP basic auth with any user name and an
API token as the password (apt's auth.conf, dnf's username/password), or a bearer token.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response

from packyard.api.deps import get_runtime
from packyard.bootstrap import Runtime
from packyard.domain.auth import Action, Role
from packyard.domain.errors import NotAuthenticated, NotAuthorized
from packyard.services.keys import signing_keys
from packyard.services.mirrors import mirror_for
from packyard.services.repos import RepoFile, RepoResolver
from packyard.services.users import authenticate_token

__all__ = ["router"]

router = APIRouter(tags=["repositories"], include_in_schema=True)


def _resolver(request: Request, runtime: Runtime) -> RepoResolver:
    resolver = getattr(request.app.state, "repo_resolver", None)
    if resolver is None:
        resolver = RepoResolver(settings=runtime.settings, store=runtime.publications)
        request.app.state.repo_resolver = resolver
    return resolver


def _check_access(request: Request, runtime: Runtime) -> frozenset[str] | None:
    """Authenticate a reader when ``publish.public`` is false; returns the channels a mirror's
    token is limited to (None: every channel)."""
    if runtime.settings.publish.public:
        return None
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    token = value.strip()
    if scheme.lower() == "basic":
        try:
            token = base64.b64decode(token).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            token = ""
    if not token:
        raise NotAuthenticated(
            "these repositories need credentials",
            hint="use an API token as the password (HTTP basic auth)",
        )
    with runtime.context() as ctx:
        principal = authenticate_token(ctx, token)
        if not (principal.can(Action.READ) or principal.can(Action.MIRROR_SYNC)):
            raise NotAuthorized("this credential may not read repositories", hint="ask an admin")
        if principal.role is Role.MIRROR:
            # Least privilege: a mirror reads the channels it was created for, nothing else.
            channels = mirror_for(ctx, principal).channels
            return frozenset(channels) if channels is not None else None
    return None


def _respond(request: Request, runtime: Runtime, found: RepoFile) -> Response:
    headers = {
        "ETag": found.etag,
        "Cache-Control": "public, max-age=31536000, immutable" if found.immutable else "no-cache",
    }
    if found.modified is not None:
        headers["Last-Modified"] = format_datetime(found.modified, usegmt=True)
    if _not_modified(request, found.etag, found.modified):
        return Response(status_code=304, headers=headers)
    if found.inline is not None:
        body = b"" if request.method == "HEAD" else found.inline
        return Response(
            content=body,
            media_type=found.content_type,
            headers={**headers, "Content-Length": str(len(found.inline))},
        )
    path = found.path
    if found.blob is not None:
        path = runtime.blobs.local_path(found.blob)
    assert path is not None
    return FileResponse(path, media_type=found.content_type, headers=headers)


def _not_modified(request: Request, etag: str, modified: datetime | None) -> bool:
    """If-None-Match names ``etag`` (one of a list, weak or strong: RFC 9110's weak comparison,
    which GET allows) or is ``*``; without If-None-Match, If-Modified-Since is not before
    ``modified`` (apt and pacman revalidate indexes that way)."""
    header = request.headers.get("if-none-match")
    if not header:
        since = request.headers.get("if-modified-since")
        if not since or modified is None:
            return False
        try:
            when = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False  # an unreadable date: answer in full, as RFC 9110 says
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return modified.replace(microsecond=0) <= when
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


def _key_response(request: Request, body: bytes) -> Response:
    # HEAD answers with the length GET would send (Response would say 0 for an empty body).
    return Response(
        content=b"" if request.method == "HEAD" else body,
        media_type="application/pgp-keys",
        headers={"Cache-Control": "no-cache", "Content-Length": str(len(body))},
    )


@router.api_route(
    "/repos/keys/packyard.asc", methods=["GET", "HEAD"], summary="Public signing keys (armored)"
)
def public_key(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    with runtime.context() as ctx:
        keys = signing_keys(ctx)
    assert runtime.signer is not None
    return _key_response(request, runtime.signer.public_key(keys))


@router.api_route(
    "/repos/keys/packyard.gpg",
    methods=["GET", "HEAD"],
    summary="Public signing keys (binary keyring)",
)
def public_keyring(request: Request, runtime: Runtime = Depends(get_runtime)) -> Response:
    with runtime.context() as ctx:
        keys = signing_keys(ctx)
    assert runtime.signer is not None
    return _key_response(request, runtime.signer.public_keyring_binary(keys))


@router.api_route(
    "/repos/{fmt}/{path:path}", methods=["GET", "HEAD"], summary="A published repository file"
)
def repo_file(
    fmt: str, path: str, request: Request, runtime: Runtime = Depends(get_runtime)
) -> Response:
    channels = _check_access(request, runtime)
    return _respond(
        request, runtime, _resolver(request, runtime).resolve(fmt, path, channels=channels)
    )
