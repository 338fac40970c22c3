"""/channels: every channel with its snapshot history, client configuration, public key and a
rollback button. Built on ``services.publish`` (channel_status, rollback) and
``services.keys`` (client_config); while a build lacks them the page says so."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response

from packyard.domain.auth import Action, Principal
from packyard.services.context import Context
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


def _publishing() -> tuple[ModuleType, ModuleType] | None:
    """The publishing services, or None when this build has none."""
    try:
        publish = importlib.import_module("packyard.services.publish")
        keys = importlib.import_module("packyard.services.keys")
    except ImportError:
        return None
    needed = ("channel_status", "rollback")
    if not all(hasattr(publish, n) for n in needed) or not hasattr(keys, "client_config"):
        return None
    return publish, keys


@dataclass(frozen=True, kw_only=True)
class ChannelSummary:
    name: str
    format: str
    stage: str
    current: Any | None  # a Publication row
    history: list[Any]


def channel_summaries(
    ctx: Context, *, principal: Principal, history: int = 1
) -> list[ChannelSummary] | None:
    """Each channel with its live snapshot (None: publishing is not available)."""
    services = _publishing()
    if services is None:
        return None
    publish, _keys = services
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
    services = _publishing()
    with get_runtime(request).context() as ctx:
        summaries = channel_summaries(ctx, principal=me, history=10)
        configs: dict[str, Any] = {}
        if services is not None and summaries is not None:
            _publish, keys = services
            base = str(request.base_url).rstrip("/")
            for stage_name in dict.fromkeys(s.stage for s in summaries):
                configs[stage_name] = keys.client_config(ctx, stage=stage_name, base_url=base)
        stages = list(configs) if configs else []
        selected = stage if stage in configs else (stages[-1] if stages else None)
        return render(
            request,
            "channels.html",
            {
                "available": summaries is not None,
                "channels": [s for s in summaries or [] if selected is None or s.stage == selected],
                "stages": stages,
                "selected": selected,
                "config": configs.get(selected) if selected else None,
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
    services = _publishing()
    if services is None:
        flash(request, "Publishing is not available in this build.", kind="error")
        return redirect("/channels", request=request)
    publish, _keys = services
    with get_runtime(request).context(write=True) as ctx:
        chosen = publish.rollback(ctx, principal=me, channel=channel, to=to or None)
        snapshot = chosen.snapshot
    flash(request, f"Channel {channel} now serves snapshot {snapshot}.")
    stage = channel.partition("/")[2]
    return redirect(f"/channels?stage={stage}", request=request)
