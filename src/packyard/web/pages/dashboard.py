"""/: the pipeline as a board, what changed, what waits for the reader, channels, charts."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from packyard.domain.auth import Principal
from packyard.services import dashboard as dashboard_service
from packyard.web.deps import WebRoute, current_principal, get_runtime, render
from packyard.web.pages.channels import ChannelSummary, channel_summaries

__all__ = ["router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/")
def dashboard(request: Request, me: Principal = Depends(current_principal)) -> Response:
    with get_runtime(request).context() as ctx:
        board = dashboard_service.board(ctx)
        recent = dashboard_service.recent_changes(ctx)
        waiting = dashboard_service.waiting_for(ctx, principal=me)
        activity = dashboard_service.stage_activity(ctx)
        lead = dashboard_service.lead_times(ctx)
        channels = _publication_matrix(channel_summaries(ctx, principal=me))
        charts = _json_for_script(
            {
                "activity": {"labels": activity.days, "series": activity.series},
                "lead": {
                    "labels": lead.weeks,
                    "median": lead.median_hours,
                    "p90": lead.p90_hours,
                    "stage": lead.stage,
                },
            }
        )
        return render(
            request,
            "dashboard.html",
            {
                "board": board,
                "recent": recent,
                "waiting": waiting,
                "activity": activity,
                "lead": lead,
                "charts": charts,
                "channels": channels,
            },
        )


@router.get("/dashboard/board")
def board_fragment(request: Request, me: Principal = Depends(current_principal)) -> Response:
    """The board alone, for htmx to refresh every so often."""
    with get_runtime(request).context() as ctx:
        return render(request, "partials/board.html", {"board": dashboard_service.board(ctx)})


def _publication_matrix(summaries: list[ChannelSummary]) -> dict[str, Any]:
    """Channels as stage rows x format columns (the live snapshot of each, or None)."""
    formats = list(dict.fromkeys(s.format for s in summaries))
    stages = list(dict.fromkeys(s.stage for s in summaries))
    live = {(s.stage, s.format): s.current for s in summaries}
    return {
        "formats": formats,
        "rows": [(stage, [live.get((stage, f)) for f in formats]) for stage in stages],
        "any": any(s.current for s in summaries),
    }


def _json_for_script(value: object) -> str:
    """JSON that cannot close the <script> element it sits in."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
