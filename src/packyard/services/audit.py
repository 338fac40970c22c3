"""Recording and reading the audit log, and proving it has not been tampered with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packyard.domain.audit import verify_chain
from packyard.domain.auth import Action, Principal
from packyard.domain.errors import NotAuthorized, PackyardError
from packyard.services.context import Context
from packyard.storage.db.models import Event
from packyard.storage.db.repositories import EventQuery

__all__ = ["VerifyReport", "artifact_events", "list_events", "record", "refuse", "verify"]


def record(
    ctx: Context,
    *,
    actor: Principal | str,
    action: str,
    object_type: str,
    object_id: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str | None = None,
) -> Event:
    """Append one event to the hash chain (in the caller's transaction)."""
    return ctx.repos.events.append(
        at=ctx.now(),
        actor=actor if isinstance(actor, str) else actor.name,
        action=action,
        object_type=object_type,
        object_id=object_id,
        before=before,
        after=after,
        reason=reason,
    )


def refuse(
    ctx: Context,
    error: PackyardError,
    *,
    actor: Principal,
    action: str,
    object_type: str,
    object_id: str,
    request: dict[str, Any] | None = None,
) -> PackyardError:
    """Record a refused gated action and mark the error so the boundary keeps that record.

    Call it only before anything else was changed in the transaction: the boundary commits
    the transaction despite the error so the refusal stays in the audit log.
    """
    record(
        ctx,
        actor=actor,
        action=f"{action}.refused",
        object_type=object_type,
        object_id=object_id,
        after={"code": error.code, "message": error.message, **(request or {})},
        reason=error.message,
    )
    error.keep_transaction = True
    return error


def list_events(
    ctx: Context, *, principal: Principal, query: EventQuery
) -> tuple[Sequence[Event], int]:
    if not principal.can(Action.READ_AUDIT):
        raise NotAuthorized(
            f"role {principal.role.value!r} may not read the audit log",
            hint="ask an admin for the maintainer role",
        )
    return ctx.repos.events.search(query)


def artifact_events(
    ctx: Context, *, principal: Principal, sha256: str, limit: int = 200
) -> tuple[Sequence[Event], int]:
    """One artifact's trail, oldest first. Readable by everyone who may read the artifact
    (as ``GET /api/v1/artifacts/{id}/events``); the whole log needs READ_AUDIT."""
    return ctx.repos.events.search(
        EventQuery(object_type="artifact", object_id=sha256, descending=False, limit=limit)
    )


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    ok: bool
    checked: int
    head_seq: int
    broken_at: int | None = None
    problem: str | None = None


def verify(ctx: Context, *, principal: Principal) -> VerifyReport:
    """Walk the whole chain and compare its end with the stored head."""
    if not principal.can(Action.READ_AUDIT):
        raise NotAuthorized(
            f"role {principal.role.value!r} may not read the audit log",
            hint="ask an admin for the maintainer role",
        )
    checked, brk = verify_chain(ctx.repos.events.iter_records())
    head = ctx.repos.events.head()
    head_seq = head.seq if head else 0
    if brk is not None:
        return VerifyReport(
            ok=False, checked=checked, head_seq=head_seq, broken_at=brk.seq, problem=brk.problem
        )
    if checked != head_seq:
        return VerifyReport(
            ok=False,
            checked=checked,
            head_seq=head_seq,
            broken_at=checked + 1,
            problem=f"the chain head says {head_seq} events but {checked} "
            "were found: events at the end were removed",
        )
    return VerifyReport(ok=True, checked=checked, head_seq=head_seq)
