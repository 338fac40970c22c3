"""/audit: the audit log with filters (READ_AUDIT, as in the API), newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from packyard.domain.auth import Principal
from packyard.domain.errors import InvalidRequest
from packyard.services import audit
from packyard.services.artifacts import resolve
from packyard.storage.db.repositories import EventQuery
from packyard.web.deps import WebRoute, current_principal, get_runtime, render

__all__ = ["router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)

PER_PAGE = 50
OBJECT_TYPES = ("artifact", "package", "user", "token", "channel")


@router.get("/audit")
def audit_page(
    request: Request,
    actor: str = "",
    action: str = "",
    object_type: str = "",
    object_id: str = "",
    artifact: str = "",
    since: str = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    me: Principal = Depends(current_principal),
) -> Response:
    with get_runtime(request).context() as ctx:
        since_at = None
        if since.strip():
            try:
                since_at = datetime.fromisoformat(since.strip())
            except ValueError:
                raise InvalidRequest(
                    f"{since!r} is not a date", hint="use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
                ) from None
        if artifact.strip():
            object_type, object_id = "artifact", resolve(ctx, artifact).sha256
        rows, total = audit.list_events(
            ctx,
            principal=me,
            query=EventQuery(
                object_type=object_type or None,
                object_id=object_id.strip() or None,
                actor=actor.strip() or None,
                action=action.strip() or None,
                since=since_at,
                offset=(page - 1) * PER_PAGE,
                limit=PER_PAGE,
            ),
        )
        params = {
            k: v
            for k, v in {
                "actor": actor,
                "action": action,
                "object_type": object_type,
                "object_id": object_id,
                "artifact": artifact,
                "since": since,
            }.items()
            if v
        }
        verified = audit.verify(ctx, principal=me) if request.query_params.get("verify") else None
        return render(
            request,
            "audit.html",
            {
                "rows": rows,
                "total": total,
                "page": page,
                "pages": max(1, -(-total // PER_PAGE)),
                "params": params,
                "object_types": OBJECT_TYPES,
                "verified": verified,
            },
        )
