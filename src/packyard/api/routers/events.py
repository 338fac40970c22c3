"""/api/v1/events: the audit log and its verification."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from packyard.api.deps import get_principal, get_runtime
from packyard.api.routers.artifacts import ERRORS
from packyard.api.schemas import EventOut, Page, VerifyOut
from packyard.bootstrap import Runtime
from packyard.domain.auth import Principal
from packyard.services import audit
from packyard.services.artifacts import resolve
from packyard.storage.db.repositories import EventQuery

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/events", tags=["audit"])


@router.get(
    "", response_model=Page[EventOut], responses=ERRORS, summary="Audit events, newest first"
)
def list_events(
    artifact: Annotated[str | None, Query(description="Artifact id or prefix")] = None,
    object_type: str | None = None,
    object_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=1000)] = 100,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> Page[EventOut]:
    with runtime.context() as ctx:
        if artifact:
            object_type, object_id = "artifact", resolve(ctx, artifact).sha256
        rows, total = audit.list_events(
            ctx,
            principal=principal,
            query=EventQuery(
                object_type=object_type,
                object_id=object_id,
                actor=actor,
                action=action,
                since=since,
                offset=(page - 1) * per_page,
                limit=per_page,
            ),
        )
        return Page[EventOut](
            items=[EventOut.model_validate(r, from_attributes=True) for r in rows],
            total=total,
            page=page,
            per_page=per_page,
        )


@router.get(
    "/verify", response_model=VerifyOut, responses=ERRORS, summary="Check the hash chain end to end"
)
def verify(
    principal: Principal = Depends(get_principal), runtime: Runtime = Depends(get_runtime)
) -> VerifyOut:
    with runtime.context() as ctx:
        report = audit.verify(ctx, principal=principal)
    return VerifyOut(
        ok=report.ok,
        checked=report.checked,
        head_seq=report.head_seq,
        broken_at=report.broken_at,
        problem=report.problem,
    )
