"""Pipelines, stages and the gates that guard a promotion.

A pipeline is an ordered list of stages. Each stage names the earlier stages an artifact must
have reached (by default: the stage right before it), whether a change-control id is needed,
and which roles may promote into it. ``promotion_gates`` evaluates all of that on plain values
and returns the gates that are still closed, so the API, the CLI and the web page that shows
"what is still needed for the next stage" agree by construction.

Not handled here: asking a ticket system whether a change-control id is approved (a service
does that through a port), soak time and fleet-health gates (they arrive with the fleet).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from packyard.domain.artifacts import ArtifactStatus
from packyard.domain.auth import Action, Principal, Role
from packyard.domain.errors import (
    ArtifactDeprecated,
    ArtifactFailed,
    ArtifactHeld,
    ChangeControlRequired,
    ConfigError,
    NotAuthorized,
    PackyardError,
    StageRequired,
    UnknownStage,
)

__all__ = [
    "DEFAULT_PIPELINE",
    "Gate",
    "Pipeline",
    "Stage",
    "promotion_gates",
]

DEFAULT_PROMOTE_ROLES: frozenset[Role] = frozenset({Role.ADMIN, Role.MAINTAINER})


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One stage of a pipeline.

    Attributes:
        name: Stage name, unique within the pipeline.
        requires: Stages that must be reached first. None means "the previous stage".
        change_control: Whether promoting into this stage needs a change-control id.
        promote_roles: Roles allowed to promote into (and demote out of) this stage.
    """

    name: str
    requires: tuple[str, ...] | None = None
    change_control: bool = False
    promote_roles: frozenset[Role] = DEFAULT_PROMOTE_ROLES


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """An ordered list of stages; the first one is where uploads land."""

    name: str
    stages: tuple[Stage, ...]
    _by_name: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError(f"pipeline {self.name!r} has no stages", hint="list at least one")
        by_name: dict[str, int] = {}
        for index, stage in enumerate(self.stages):
            if stage.name in by_name:
                raise ConfigError(
                    f"pipeline {self.name!r} lists stage {stage.name!r} twice",
                    hint="stage names must be unique within a pipeline",
                )
            for required in stage.requires or ():
                if required not in by_name:
                    raise ConfigError(
                        f"stage {stage.name!r} of pipeline {self.name!r} requires "
                        f"{required!r}, which is not an earlier stage",
                        hint="a stage may only require stages listed before it",
                    )
            by_name[stage.name] = index
        object.__setattr__(self, "_by_name", by_name)

    @property
    def first(self) -> Stage:
        return self.stages[0]

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.stages)

    def stage(self, name: str) -> Stage:
        """The stage called ``name``; raises UnknownStage naming the valid ones."""
        index = self._by_name.get(name)
        if index is None:
            raise UnknownStage(
                f"stage {name!r} is not part of pipeline {self.name!r}",
                hint=f"use one of: {', '.join(self.stage_names)}",
                details={"pipeline": self.name, "stages": list(self.stage_names)},
            )
        return self.stages[index]

    def index(self, name: str) -> int:
        self.stage(name)
        return self._by_name[name]

    def required_stages(self, name: str) -> tuple[str, ...]:
        """Stages that must be reached before ``name``."""
        stage = self.stage(name)
        if stage.requires is not None:
            return stage.requires
        index = self._by_name[name]
        return (self.stages[index - 1].name,) if index > 0 else ()

    def dependents(self, name: str) -> tuple[str, ...]:
        """Stages that (transitively) require ``name``: they must go when it goes."""
        out: list[str] = []
        gone = {name}
        for stage in self.stages[self.index(name) + 1 :]:
            if gone.intersection(self.required_stages(stage.name)):
                gone.add(stage.name)
                out.append(stage.name)
        return tuple(out)

    def highest(self, reached: Iterable[str]) -> str | None:
        """The latest stage in pipeline order among ``reached`` (unknown names ignored)."""
        indexes = [self._by_name[s] for s in reached if s in self._by_name]
        return self.stages[max(indexes)].name if indexes else None

    def next_stage(self, reached: Iterable[str]) -> str | None:
        """The stage after the highest reached one, or None at the end."""
        top = self.highest(reached)
        index = -1 if top is None else self._by_name[top]
        return self.stages[index + 1].name if index + 1 < len(self.stages) else None


DEFAULT_PIPELINE = Pipeline(
    name="default",
    stages=(
        Stage(name="new"),
        Stage(name="ci"),
        Stage(name="dev"),
        Stage(name="stage"),
        Stage(name="prod", change_control=True),
    ),
)


@dataclass(frozen=True, kw_only=True)
class Gate:
    """A condition for a promotion that is not met yet, as the error it would raise."""

    code: str
    error: PackyardError


def promotion_gates(
    *,
    pipeline: Pipeline,
    target: str,
    reached: Iterable[str],
    status: ArtifactStatus,
    held: bool,
    principal: Principal | None,
    change_control_id: str | None,
) -> list[Gate]:
    """Every closed gate for promoting an artifact into ``target``, most fundamental first.

    An empty list means the promotion may proceed (apart from verifying the change-control id
    with a ticket system, which needs I/O and is the caller's job). Pass ``principal=None`` to
    leave permissions out, e.g. when showing what an artifact still needs in general.
    """
    stage = pipeline.stage(target)
    gates: list[Gate] = []
    if status is ArtifactStatus.FAILED:
        gates.append(
            _gate(
                ArtifactFailed(
                    "the artifact is marked failed and cannot be promoted",
                    hint="upload a fixed build instead",
                )
            )
        )
    elif status is ArtifactStatus.DEPRECATED:
        gates.append(
            _gate(
                ArtifactDeprecated(
                    "the artifact is deprecated and cannot be promoted",
                    hint="promote a newer version instead",
                )
            )
        )
    if held:
        gates.append(
            _gate(
                ArtifactHeld(
                    "the artifact is on hold", hint="release the hold first (packyard release)"
                )
            )
        )
    if principal is not None:
        gates.extend(_permission_gates(stage=stage, principal=principal))
    reached_set = set(reached)
    missing = [s for s in pipeline.required_stages(target) if s not in reached_set]
    if missing:
        gates.append(
            _gate(
                StageRequired(
                    f"stage {target!r} requires the artifact to have reached "
                    f"{', '.join(repr(m) for m in missing)} first",
                    hint=f"promote it to {missing[0]!r} first",
                    details={"missing": missing},
                )
            )
        )
    if stage.change_control and not (change_control_id or "").strip():
        gates.append(
            _gate(
                ChangeControlRequired(
                    f"stage {target!r} requires a change-control id",
                    hint="pass --change-control ID with an approved ticket",
                )
            )
        )
    return gates


def _permission_gates(*, stage: Stage, principal: Principal) -> list[Gate]:
    if not principal.can(Action.PROMOTE):
        return [
            _gate(
                NotAuthorized(
                    f"role {principal.role.value!r} may not promote artifacts",
                    hint="ask an admin for the maintainer role",
                )
            )
        ]
    if principal.role is Role.ADMIN:
        return []
    if principal.role not in stage.promote_roles:
        return [
            _gate(
                NotAuthorized(
                    f"role {principal.role.value!r} may not promote into stage {stage.name!r}",
                    hint=f"roles allowed: {', '.join(sorted(r.value for r in stage.promote_roles))}",
                )
            )
        ]
    if principal.stages is not None and stage.name not in principal.stages:
        return [
            _gate(
                NotAuthorized(
                    f"user {principal.name!r} has no permission for stage {stage.name!r}",
                    hint="ask an admin to grant it (packyard users update NAME --stages ...)",
                )
            )
        ]
    return []


def _gate(error: PackyardError) -> Gate:
    return Gate(code=error.code, error=error)


def require_stage_names(pipeline: Pipeline, names: Sequence[str]) -> None:
    """Raise UnknownStage for the first name not in ``pipeline``."""
    for name in names:
        pipeline.stage(name)
