"""Moving artifacts through their pipeline: promote, demote, hold/release, fail, deprecate.

Every transition locks the artifact row first (PostgreSQL ``FOR UPDATE``; on SQLite the write
transaction already holds the database lock), then re-reads its state, so concurrent requests
for the same transition produce exactly one change and one event; the others see it done and
return ``changed=False``. Refused gated actions are recorded in the audit log.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from packyard.domain.artifacts import ArtifactStatus
from packyard.domain.auth import Action, Principal, Role
from packyard.domain.errors import (
    ChangeControlRejected,
    InvalidRequest,
    NotAuthorized,
    PackyardError,
)
from packyard.domain.pipelines import Gate, Pipeline, promotion_gates
from packyard.services.artifacts import resolve
from packyard.services.audit import record, refuse
from packyard.services.context import Context
from packyard.services.packages import pipeline_for
from packyard.services.publish import repository_format, schedule_publish
from packyard.storage.db.models import Artifact, StageEntry

__all__ = [
    "TransitionResult",
    "demote",
    "open_gates",
    "promote",
    "set_hold",
    "set_status",
]


@dataclass(frozen=True, kw_only=True)
class TransitionResult:
    artifact: Artifact
    changed: bool


def _state(artifact: Artifact) -> dict[str, Any]:
    return {
        "stages": [e.stage for e in artifact.stages],
        "status": artifact.status,
        "held": artifact.held,
    }


def _locked(ctx: Context, ref: str) -> Artifact:
    return ctx.repos.artifacts.lock(resolve(ctx, ref).id)


def _reached(artifact: Artifact) -> set[str]:
    return {e.stage for e in artifact.stages}


def _refresh_current(pipeline: Pipeline, artifact: Artifact) -> None:
    artifact.current_stage = pipeline.highest(_reached(artifact))


def _refused(
    ctx: Context,
    error: PackyardError,
    *,
    principal: Principal,
    artifact: Artifact,
    action: str,
    request: dict[str, Any] | None = None,
) -> PackyardError:
    """A refused transition of ``artifact``, recorded in the audit log (see ``refuse``)."""
    return refuse(
        ctx,
        error,
        actor=principal,
        action=action,
        object_type="artifact",
        object_id=artifact.sha256,
        request=request,
    )


def _applied(
    ctx: Context,
    *,
    principal: Principal,
    artifact: Artifact,
    action: str,
    before: dict[str, Any],
    after: dict[str, Any],
    reason: str | None,
    publish_stages: Iterable[str],
    trigger: str,
) -> TransitionResult:
    """Record an applied transition and republish the stages it changed (after commit)."""
    record(
        ctx,
        actor=principal,
        action=action,
        object_type="artifact",
        object_id=artifact.sha256,
        before=before,
        after=after,
        reason=reason,
    )
    stages = list(publish_stages)
    if stages:
        schedule_publish(
            ctx,
            formats=[repository_format(artifact.format)],
            stages=stages,
            actor=principal.name,
            trigger=trigger,
        )
    return TransitionResult(artifact=artifact, changed=True)


def open_gates(
    ctx: Context,
    *,
    artifact: Artifact,
    target: str | None = None,
    principal: Principal | None = None,
) -> tuple[str | None, list[Gate]]:
    """The next stage (or ``target``) and the gates still closed for it, for display."""
    pipeline = pipeline_for(ctx, artifact.package)
    target = target or pipeline.next_stage(_reached(artifact))
    if target is None:
        return None, []
    return target, promotion_gates(
        pipeline=pipeline,
        target=target,
        reached=_reached(artifact),
        status=ArtifactStatus(artifact.status),
        held=artifact.held,
        principal=principal,
        change_control_id=None,
    )


def promote(
    ctx: Context,
    *,
    principal: Principal,
    ref: str,
    stage: str,
    change_control: str | None = None,
    note: str | None = None,
) -> TransitionResult:
    artifact = _locked(ctx, ref)
    pipeline = pipeline_for(ctx, artifact.package)
    request = {"stage": stage, "change_control": change_control}
    try:
        target = pipeline.stage(stage)
    except PackyardError as exc:
        raise _refused(
            ctx,
            exc,
            principal=principal,
            artifact=artifact,
            action="artifact.promote",
            request=request,
        ) from None
    gates = promotion_gates(
        pipeline=pipeline,
        target=stage,
        reached=_reached(artifact),
        status=ArtifactStatus(artifact.status),
        held=artifact.held,
        principal=principal,
        change_control_id=change_control,
    )
    if stage in _reached(artifact):
        # Already there (e.g. a concurrent request won): a no-op, but only for those allowed.
        denied = [g for g in gates if isinstance(g.error, NotAuthorized)]
        if denied:
            raise _refused(
                ctx,
                denied[0].error,
                principal=principal,
                artifact=artifact,
                action="artifact.promote",
                request=request,
            )
        return TransitionResult(artifact=artifact, changed=False)
    if gates:
        raise _refused(
            ctx,
            gates[0].error,
            principal=principal,
            artifact=artifact,
            action="artifact.promote",
            request=request,
        )
    cc = (change_control or "").strip() or None
    if target.change_control and cc and ctx.change_control is not None:
        try:
            decision = ctx.change_control.check(cc, artifact=artifact.sha256, stage=stage)
        except PackyardError as exc:  # the ticket system is down: refused, and audited
            raise _refused(
                ctx,
                exc,
                principal=principal,
                artifact=artifact,
                action="artifact.promote",
                request=request,
            ) from None
        if not decision.approved:
            error = ChangeControlRejected(
                f"change control {cc!r} was not approved by the ticket system: {decision.detail}",
                hint="get the ticket approved, or use an approved ticket id",
            )
            raise _refused(
                ctx,
                error,
                principal=principal,
                artifact=artifact,
                action="artifact.promote",
                request=request,
            )
    before = _state(artifact)
    now = ctx.now()
    artifact.stages.append(
        StageEntry(
            stage=stage, entered_at=now, entered_by=principal.name, change_control=cc, note=note
        )
    )
    _refresh_current(pipeline, artifact)
    ctx.repos.session.flush()
    return _applied(
        ctx,
        principal=principal,
        artifact=artifact,
        action="artifact.promote",
        before=before,
        after={**_state(artifact), "stage": stage, "change_control": cc},
        reason=note,
        publish_stages=[stage],
        trigger="promotion",
    )


def _may_move(principal: Principal, pipeline: Pipeline, stage: str) -> None:
    if not principal.can(Action.PROMOTE):
        raise NotAuthorized(
            f"role {principal.role.value!r} may not change stages",
            hint="ask an admin for the maintainer role",
        )
    if principal.role is Role.ADMIN:
        return
    target = pipeline.stage(stage)
    if principal.role not in target.promote_roles or (
        principal.stages is not None and stage not in principal.stages
    ):
        raise NotAuthorized(
            f"user {principal.name!r} has no permission for stage {stage!r}",
            hint="ask an admin to grant it",
        )


def demote(
    ctx: Context,
    *,
    principal: Principal,
    ref: str,
    stage: str | None = None,
    note: str | None = None,
) -> TransitionResult:
    """Take an artifact out of ``stage`` (default: its highest) and every stage requiring it."""
    artifact = _locked(ctx, ref)
    pipeline = pipeline_for(ctx, artifact.package)
    reached = _reached(artifact)
    stage = stage or pipeline.highest(reached)
    if stage is None:
        return TransitionResult(artifact=artifact, changed=False)
    try:
        pipeline.stage(stage)
        _may_move(principal, pipeline, stage)
        if stage == pipeline.first.name:
            raise InvalidRequest(
                f"{stage!r} is the pipeline's first stage; an artifact cannot leave it",
                hint="mark it failed or deprecated instead",
            )
    except PackyardError as exc:
        raise _refused(
            ctx,
            exc,
            principal=principal,
            artifact=artifact,
            action="artifact.demote",
            request={"stage": stage},
        ) from None
    if stage not in reached:
        return TransitionResult(artifact=artifact, changed=False)
    before = _state(artifact)
    removed = [stage, *[s for s in pipeline.dependents(stage) if s in reached]]
    ctx.repos.artifacts.remove_stages(artifact, removed)
    _refresh_current(pipeline, artifact)
    return _applied(
        ctx,
        principal=principal,
        artifact=artifact,
        action="artifact.demote",
        before=before,
        after={**_state(artifact), "removed": removed},
        reason=note,
        publish_stages=removed,
        trigger="demotion",
    )


def set_hold(
    ctx: Context, *, principal: Principal, ref: str, held: bool, reason: str | None = None
) -> TransitionResult:
    artifact = _locked(ctx, ref)
    action = "artifact.hold" if held else "artifact.release"
    if not principal.can(Action.PROMOTE):
        raise _refused(
            ctx,
            NotAuthorized(
                f"role {principal.role.value!r} may not hold or release", hint="ask a maintainer"
            ),
            principal=principal,
            artifact=artifact,
            action=action,
        )
    if artifact.held == held:
        return TransitionResult(artifact=artifact, changed=False)
    before = _state(artifact)
    artifact.held = held
    artifact.hold_reason = reason if held else None
    ctx.repos.session.flush()
    return _applied(
        ctx,
        principal=principal,
        artifact=artifact,
        action=action,
        before=before,
        after=_state(artifact),
        reason=reason,
        publish_stages=(),  # a hold changes what may be promoted, not what is published
        trigger="",
    )


def set_status(
    ctx: Context,
    *,
    principal: Principal,
    ref: str,
    status: ArtifactStatus,
    reason: str | None = None,
) -> TransitionResult:
    """Mark failed or deprecated (it leaves every channel and can no longer be promoted)."""
    if status is ArtifactStatus.ACTIVE:
        raise InvalidRequest("artifacts cannot be re-activated", hint="upload a new version")
    artifact = _locked(ctx, ref)
    action = f"artifact.{'fail' if status is ArtifactStatus.FAILED else 'deprecate'}"
    if not principal.can(Action.RETIRE):
        raise _refused(
            ctx,
            NotAuthorized(
                f"role {principal.role.value!r} may not fail or deprecate", hint="ask a maintainer"
            ),
            principal=principal,
            artifact=artifact,
            action=action,
        )
    if artifact.status == status.value:
        return TransitionResult(artifact=artifact, changed=False)
    before = _state(artifact)
    artifact.status = status.value
    artifact.status_reason = reason
    artifact.status_changed_at = ctx.now()
    ctx.repos.session.flush()
    # A retired artifact leaves every channel it was in.
    return _applied(
        ctx,
        principal=principal,
        artifact=artifact,
        action=action,
        before=before,
        after=_state(artifact),
        reason=reason,
        publish_stages=sorted(_reached(artifact)),
        trigger=action.removeprefix("artifact."),
    )
