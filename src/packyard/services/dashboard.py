"""What the dashboard shows: the pipeline as a board, recent changes, what waits for the
reader, and the two charts (artifacts entering each stage per day, lead time upload -> last
stage). Read-only; every number comes from stage entries and artifacts, not from the audit
log, so viewers (who may not read the audit log) see the same dashboard.

Not handled: approvals waiting for someone (they arrive with the approvals capability) and
publication status (``services.publish``).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from packyard.domain.artifacts import ArtifactStatus
from packyard.domain.auth import Action, Principal
from packyard.domain.pipelines import Pipeline, promotion_gates
from packyard.services.context import Context
from packyard.services.promotions import open_gates
from packyard.storage.db.models import Artifact, StageEntry

__all__ = [
    "BoardColumn",
    "LeadTimes",
    "StageActivity",
    "Waiting",
    "board",
    "lead_times",
    "recent_changes",
    "stage_activity",
    "stage_names",
    "waiting_for",
]


def _default(ctx: Context) -> Pipeline:
    return ctx.pipelines[ctx.settings.default_pipeline]


def stage_names(ctx: Context) -> list[str]:
    """Every stage name: the default pipeline's in order, then other pipelines' extra ones."""
    names = list(_default(ctx).stage_names)
    for pipeline in ctx.pipelines.values():
        names += [s for s in pipeline.stage_names if s not in names]
    return names


@dataclass(frozen=True, kw_only=True)
class BoardColumn:
    stage: str
    count: int
    entries: list[tuple[Artifact, StageEntry]]


def board(ctx: Context, *, per_stage: int = 5) -> list[BoardColumn]:
    """One column per stage: how many artifacts reached it and the newest arrivals."""
    counts = ctx.repos.artifacts.count_by_stage()
    return [
        BoardColumn(
            stage=stage,
            count=counts.get(stage, 0),
            entries=list(ctx.repos.artifacts.newest_in_stage(stage, limit=per_stage)),
        )
        for stage in stage_names(ctx)
    ]


def recent_changes(ctx: Context, *, limit: int = 8) -> list[tuple[Artifact, StageEntry]]:
    """The newest stage entries (uploads land in the first stage, so they show up too)."""
    return list(ctx.repos.artifacts.recent_stage_entries(limit=limit))


@dataclass(frozen=True, kw_only=True)
class Waiting:
    #: Artifacts the reader may promote to their next stage now (change control aside).
    ready: list[tuple[Artifact, str]]
    held: list[Artifact]
    failed: list[Artifact]

    @property
    def empty(self) -> bool:
        return not (self.ready or self.held or self.failed)


def waiting_for(
    ctx: Context, *, principal: Principal, limit: int = 6, failed_days: int = 14
) -> Waiting:
    """What needs the reader: promotions they could make, holds, recent failures."""
    ready: list[tuple[Artifact, str]] = []
    held: list[Artifact] = []
    if principal.can(Action.PROMOTE):
        pipeline = _default(ctx)
        # Candidates: stages whose next stage the principal may promote into at all.
        # Candidates: artifacts in stages whose next stage the principal may promote into
        # (a change-control id is left aside: the reader brings one).
        from_stages = [
            stage.name
            for index, stage in enumerate(pipeline.stages[:-1])
            if not promotion_gates(
                pipeline=pipeline,
                target=pipeline.stages[index + 1].name,
                reached=pipeline.stage_names[: index + 1],
                status=ArtifactStatus.ACTIVE,
                held=False,
                principal=principal,
                change_control_id="given",
            )
        ]
        candidates = ctx.repos.artifacts.newest_where(
            limit=limit * 3, status=ArtifactStatus.ACTIVE.value, held=False, stages=from_stages
        )
        for artifact in candidates:
            target, gates = open_gates(ctx, artifact=artifact, principal=principal)
            if target and all(g.code == "change_control_required" for g in gates):
                ready.append((artifact, target))
            if len(ready) >= limit:
                break
        held = list(ctx.repos.artifacts.newest_where(limit=limit, held=True))
    failed = list(
        ctx.repos.artifacts.newest_where(
            limit=limit,
            status=ArtifactStatus.FAILED.value,
            changed_since=ctx.now() - timedelta(days=failed_days),
        )
    )
    return Waiting(ready=ready, held=held, failed=failed)


@dataclass(frozen=True, kw_only=True)
class StageActivity:
    days: list[str]
    #: stage -> how many artifacts entered it on each of ``days``
    series: dict[str, list[int]]


def stage_activity(ctx: Context, *, days: int = 30) -> StageActivity:
    """Artifacts entering each stage per day over the last ``days`` days."""
    today = ctx.now().date()
    first = today - timedelta(days=days - 1)
    labels = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    position = {d: i for i, d in enumerate(labels)}
    names = stage_names(ctx)
    series = {stage: [0] * days for stage in names}
    since = datetime.combine(first, datetime.min.time())
    for stage, day, n in ctx.repos.artifacts.stage_entries_per_day(since=since):
        if stage in series and day[:10] in position:
            series[stage][position[day[:10]]] += n
    return StageActivity(days=labels, series=series)


@dataclass(frozen=True, kw_only=True)
class LeadTimes:
    stage: str
    weeks: list[str]  # Monday of each week
    median_hours: list[float | None]
    p90_hours: list[float | None]
    overall_median_hours: float | None
    count: int


def lead_times(ctx: Context, *, weeks: int = 12) -> LeadTimes:
    """Hours from upload to the default pipeline's last stage, per week of arrival there."""
    stage = _default(ctx).stages[-1].name
    today = ctx.now().date()
    first_monday = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)
    buckets: dict[date, list[float]] = {first_monday + timedelta(weeks=i): [] for i in range(weeks)}
    since = datetime.combine(first_monday, datetime.min.time())
    everything: list[float] = []
    for uploaded_at, entered_at in ctx.repos.artifacts.lead_times(stage=stage, since=since):
        hours = max((entered_at - uploaded_at).total_seconds() / 3600, 0.0)
        monday = entered_at.date() - timedelta(days=entered_at.weekday())
        if monday in buckets:
            buckets[monday].append(hours)
            everything.append(hours)
    return LeadTimes(
        stage=stage,
        weeks=[d.isoformat() for d in buckets],
        median_hours=[round(statistics.median(v), 1) if v else None for v in buckets.values()],
        p90_hours=[_p90(v) for v in buckets.values()],
        overall_median_hours=round(statistics.median(everything), 1) if everything else None,
        count=len(everything),
    )


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 1)
