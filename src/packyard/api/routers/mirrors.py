"""/api/v1/mirrors (admins and maintainers) and /api/v1/mirror/* (a mirror's own token).

The change feed is a long poll: ``GET /api/v1/mirror/changes?since=<cursor>&wait=30`` answers
at once when the live snapshots of the mirror's channels differ from ``since``, else when one
changes, else after ``wait`` seconds. It waits in the event loop (no thread per waiting
mirror) and reads only the publication store's ``current`` links while waiting. When the
server is stopping it answers 503 with ``Retry-After`` at once, rather than holding shutdown
for the grace period and being cancelled (a 500 and an ERROR traceback).
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from packyard.api.deps import authenticate_request, get_principal, get_runtime
from packyard.api.errors import error_body
from packyard.api.routers.artifacts import ERRORS
from packyard.bootstrap import Runtime
from packyard.domain.auth import Principal
from packyard.services import mirrors as mirror_service
from packyard.services.publish import Channel

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["mirrors"])

#: How often a waiting change feed looks at the live snapshots.
POLL_INTERVAL = 0.25
#: Seconds a mirror is asked to wait when the server is stopping (a restart, usually).
RETRY_AFTER_SHUTDOWN = 5


class MirrorOut(BaseModel):
    name: str
    user: str
    channels: list[str] | None = Field(description="None: every channel")
    created_at: datetime
    last_heartbeat_at: datetime | None = Field(description="Sent after every sync, failed too")
    last_sync_at: datetime | None = Field(description="The last sync without errors")
    status: str = Field(description="ok, stale, error or never")
    behind: list[str]
    lag_seconds: float
    synced: dict[str, str | None]
    current: dict[str, str | None]
    errors: list[str]
    version: str | None
    stats: dict[str, int]


class MirrorIn(BaseModel):
    name: str
    channels: list[str] | None = Field(
        default=None, description="Channels to follow, e.g. apt/prod; default every channel"
    )


class MirrorCreated(BaseModel):
    name: str
    user: str
    channels: list[str] | None
    token: str = Field(description="Shown once; stored only as a hash")


class MirrorToken(BaseModel):
    name: str
    token: str


class Revoked(BaseModel):
    name: str
    revoked_tokens: int


class ChangesOut(BaseModel):
    cursor: str
    changed: bool
    channels: dict[str, str | None]


class ListingOut(BaseModel):
    channel: str
    snapshot: str
    listing: str = Field(description="The canonical JSON listing the signature covers")
    signature: str = Field(description="Detached, ASCII-armored OpenPGP signature")


class HeartbeatIn(BaseModel):
    synced: dict[str, str | None] = Field(default_factory=dict)
    errors: list[str] = Field(default_factory=list, max_length=100)
    version: str = Field(default="", max_length=64)
    stats: dict[str, int] = Field(default_factory=dict)


class HeartbeatOut(BaseModel):
    name: str
    received_at: datetime


def _out(s: mirror_service.MirrorStatus) -> MirrorOut:
    return MirrorOut(
        name=s.name,
        user=s.user,
        channels=s.channels,
        created_at=s.created_at,
        last_heartbeat_at=s.last_heartbeat_at,
        last_sync_at=s.last_sync_at,
        status=s.status,
        behind=s.behind,
        lag_seconds=round(s.lag_seconds, 1),
        synced=s.synced,
        current=s.current,
        errors=s.errors,
        version=s.version,
        stats=s.stats,
    )


@router.get(
    "/mirrors",
    response_model=list[MirrorOut],
    responses=ERRORS,
    summary="Mirrors with their last heartbeat, lag and status",
)
def list_mirrors(
    principal: Principal = Depends(get_principal), runtime: Runtime = Depends(get_runtime)
) -> list[MirrorOut]:
    with runtime.context() as ctx:
        return [_out(s) for s in mirror_service.list_mirrors(ctx, principal=principal)]


@router.post(
    "/mirrors",
    response_model=MirrorCreated,
    status_code=201,
    responses=ERRORS,
    summary="Create a mirror: a `mirror` user and its token (shown once)",
)
def create_mirror(
    body: MirrorIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> MirrorCreated:
    with runtime.context(write=True) as ctx:
        created = mirror_service.create_mirror(
            ctx, principal=principal, name=body.name, channels=body.channels
        )
        return MirrorCreated(
            name=created.mirror.name,
            user=created.user,
            channels=created.mirror.channels,
            token=created.token,
        )


@router.post(
    "/mirrors/{name}/token",
    response_model=MirrorToken,
    responses=ERRORS,
    summary="A new token for a mirror (its earlier tokens are revoked)",
)
def new_token(
    name: str,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> MirrorToken:
    with runtime.context(write=True) as ctx:
        token = mirror_service.issue_mirror_token(ctx, principal=principal, name=name)
    return MirrorToken(name=name, token=token)


@router.post(
    "/mirrors/{name}/revoke",
    response_model=Revoked,
    responses=ERRORS,
    summary="Revoke every token of a mirror (it stops syncing at once)",
)
def revoke(
    name: str,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> Revoked:
    with runtime.context(write=True) as ctx:
        count = mirror_service.revoke_mirror(ctx, principal=principal, name=name)
    return Revoked(name=name, revoked_tokens=count)


# --------------------------------------------------------------------------- the mirror's API


def _followed(runtime: Runtime, principal: Principal) -> list[Channel]:
    with runtime.context() as ctx:
        return mirror_service.followed_channels(ctx, mirror_service.mirror_for(ctx, principal))


def _server_stopping(request: Request) -> bool:
    """Whether the HTTP server was told to stop. uvicorn owns SIGTERM/SIGINT in `packyard
    serve` and only sets its ``should_exit``: a running request hears nothing until the
    graceful-shutdown timeout cancels it. `packyard serve` hands its server to the app
    (``app.state.http_server``); elsewhere this is False and a long poll runs to its end."""
    server = getattr(request.app.state, "http_server", None)
    return getattr(server, "should_exit", False) is True


@router.get(
    "/mirror/changes",
    response_model=ChangesOut,
    responses={
        **ERRORS,
        503: {"description": "The server is stopping; ask again after Retry-After seconds"},
    },
    summary="Long poll: the live snapshot of each channel this mirror follows",
)
async def changes(
    request: Request,
    since: str | None = Query(default=None, description="The cursor of the previous answer"),
    wait: float = Query(default=30, ge=0, le=300, description="Seconds to wait for a change"),
    runtime: Runtime = Depends(get_runtime),
) -> ChangesOut | JSONResponse:
    principal = await run_in_threadpool(authenticate_request, request)
    followed = await run_in_threadpool(_followed, runtime, principal)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        state = mirror_service.snapshot_state(runtime.publications, followed)
        cursor = mirror_service.change_cursor(state)
        if cursor != since or loop.time() >= deadline or await request.is_disconnected():
            return ChangesOut(cursor=cursor, changed=cursor != since, channels=state)
        if _server_stopping(request):
            return JSONResponse(
                error_body(
                    "unavailable",
                    "the server is shutting down",
                    f"ask again in {RETRY_AFTER_SHUTDOWN} seconds",
                ),
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SHUTDOWN)},
            )
        await asyncio.sleep(min(POLL_INTERVAL, max(deadline - loop.time(), 0)))


@router.get(
    "/mirror/listing",
    response_model=ListingOut,
    responses=ERRORS,
    summary="A snapshot's files with sha256 and size, signed with the repository keys",
)
def listing(
    channel: str,
    snapshot: str,
    request: Request,
    runtime: Runtime = Depends(get_runtime),
) -> ListingOut:
    principal = authenticate_request(request)
    with runtime.context() as ctx:
        signed = mirror_service.signed_listing(
            ctx, principal=principal, channel=channel, snapshot=snapshot
        )
    return ListingOut(
        channel=channel,
        snapshot=snapshot,
        listing=signed.listing.decode(),
        signature=signed.signature.decode(),
    )


@router.post(
    "/mirror/heartbeat",
    response_model=HeartbeatOut,
    responses=ERRORS,
    summary="Report what this mirror has synced and any errors",
)
def heartbeat(
    body: HeartbeatIn, request: Request, runtime: Runtime = Depends(get_runtime)
) -> HeartbeatOut:
    principal = authenticate_request(request)
    with runtime.context(write=True) as ctx:
        mirror = mirror_service.record_heartbeat(
            ctx,
            principal=principal,
            synced=body.synced,
            errors=body.errors,
            version=body.version,
            stats=body.stats,
        )
        assert mirror.last_heartbeat_at is not None
        return HeartbeatOut(name=mirror.name, received_at=mirror.last_heartbeat_at)
