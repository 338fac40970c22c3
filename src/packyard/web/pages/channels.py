"""/channels: every channel with its snapshot history, the client configuration (apt line,
.repo file, pacman.conf section, Munki), the public key, and a rollback button — all from
``services.publish`` (channel_status, rollback) and ``services.keys`` (client_config)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response

from packyard.domain.auth import Action, Principal
from packyard.services import keys, publish
from packyard.services import rollback as rollback_service
from packyard.services.context import Context
from packyard.storage.db.models import Publication
from packyard.web.deps import (
    WebRoute,
    check_csrf,
    current_principal,
    flash,
    get_runtime,
    redirect,
    render,
)

__all__ = ["ChannelSummary", "channel_summaries", "router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@dataclass(frozen=True, kw_only=True)
class ChannelSummary:
    name: str
    format: str
    stage: str
    current: Publication | None
    history: list[Publication]


def channel_summaries(
    ctx: Context, *, principal: Principal, history: int = 1
) -> list[ChannelSummary]:
    """Each channel with its live snapshot and the ``history`` newest ones."""
    return [
        ChannelSummary(
            name=s.channel.name,
            format=s.channel.format,
            stage=s.channel.stage,
            current=s.current,
            history=list(s.history),
        )
        for s in publish.channel_status(ctx, history=history)
    ]


@router.get("/channels")
def channels_page(
    request: Request, stage: str | None = None, me: Principal = Depends(current_principal)
) -> Response:
    with get_runtime(request).context() as ctx:
        summaries = channel_summaries(ctx, principal=me, history=10)
        stages = list(dict.fromkeys(s.stage for s in summaries))
        selected = stage if stage in stages else (stages[-1] if stages else None)
        base = ctx.settings.client_base_url(str(request.base_url))
        config = keys.client_config(ctx, stage=selected, base_url=base) if selected else None
        return render(
            request,
            "channels.html",
            {
                "channels": [s for s in summaries if s.stage == selected],
                "stages": stages,
                "selected": selected,
                "config": config,
                "can_rollback": me.can(Action.PUBLISH),
            },
        )


@router.post("/channels/rollback", dependencies=[Depends(check_csrf)])
def rollback(
    request: Request,
    channel: Annotated[str, Form()],
    to: Annotated[str, Form()] = "",
    me: Principal = Depends(current_principal),
) -> Response:
    with get_runtime(request).context(write=True) as ctx:
        chosen = rollback_service.rollback(ctx, principal=me, channel=channel, to=to or None)
        snapshot, source = chosen.snapshot, rollback_service.rollback_of(ctx, chosen)
    flash(
        request,
        f"Channel {channel} now serves the content of snapshot {source}, re-signed as snapshot "
        f"{snapshot}."
        if source
        else f"Channel {channel} now serves snapshot {snapshot}.",
    )
    stage = channel.partition("/")[2]
    return redirect(f"/channels?stage={stage}", request=request)
