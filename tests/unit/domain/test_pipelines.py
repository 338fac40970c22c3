"""Pipelines, stages and promotion gates, on plain values."""

from __future__ import annotations

import pytest

from packyard.domain.artifacts import ArtifactStatus
from packyard.domain.auth import Principal, Role
from packyard.domain.errors import (
    ArtifactDeprecated,
    ArtifactFailed,
    ArtifactHeld,
    ChangeControlRequired,
    ConfigError,
    NotAuthorized,
    StageRequired,
    UnknownStage,
)
from packyard.domain.pipelines import DEFAULT_PIPELINE, Gate, Pipeline, Stage, promotion_gates

MAINTAINER = Principal(name="maint", role=Role.MAINTAINER)
ADMIN = Principal(name="root", role=Role.ADMIN)


def pipeline(*stages: Stage, name: str = "p") -> Pipeline:
    return Pipeline(name=name, stages=stages)


# A pipeline whose later stages require earlier ones out of order.
FORKED = pipeline(
    Stage(name="new"),
    Stage(name="ci"),
    Stage(name="dev", requires=("new",)),
    Stage(name="stage", requires=("ci",)),
    Stage(
        name="prod",
        requires=("dev", "stage"),
        change_control=True,
        promote_roles=frozenset({Role.ADMIN}),
    ),
)


def gates(
    *,
    target: str,
    reached: tuple[str, ...] = ("new",),
    status: ArtifactStatus = ArtifactStatus.ACTIVE,
    held: bool = False,
    principal: Principal | None = MAINTAINER,
    change_control_id: str | None = None,
    in_pipeline: Pipeline = DEFAULT_PIPELINE,
) -> list[Gate]:
    return promotion_gates(
        pipeline=in_pipeline,
        target=target,
        reached=reached,
        status=status,
        held=held,
        principal=principal,
        change_control_id=change_control_id,
    )


def codes(found: list[Gate]) -> list[str]:
    return [g.code for g in found]


# ---------------------------------------------------------------------------------- validation


def test_pipeline_needs_a_stage() -> None:
    with pytest.raises(ConfigError, match="pipeline 'empty' has no stages"):
        Pipeline(name="empty", stages=())


def test_stage_names_are_unique() -> None:
    with pytest.raises(ConfigError, match="lists stage 'ci' twice"):
        pipeline(Stage(name="new"), Stage(name="ci"), Stage(name="ci"))


@pytest.mark.parametrize(
    "stages",
    [
        (Stage(name="new"), Stage(name="ci", requires=("qa",))),
        (Stage(name="new", requires=("ci",)), Stage(name="ci")),
        (Stage(name="new"), Stage(name="ci", requires=("ci",))),
    ],
    ids=["unknown", "later", "itself"],
)
def test_stage_may_only_require_earlier_stages(stages: tuple[Stage, ...]) -> None:
    with pytest.raises(ConfigError, match="which is not an earlier stage") as info:
        pipeline(*stages)

    assert info.value.hint == "a stage may only require stages listed before it"


def test_pipeline_basics() -> None:
    assert DEFAULT_PIPELINE.first.name == "new"
    assert DEFAULT_PIPELINE.stage_names == ("new", "ci", "dev", "stage", "prod")
    assert DEFAULT_PIPELINE.index("dev") == 2
    assert DEFAULT_PIPELINE.stage("prod").change_control is True
    assert [s.name for s in DEFAULT_PIPELINE.stages if s.change_control] == ["prod"]
    assert DEFAULT_PIPELINE.stage("ci").promote_roles == frozenset({Role.ADMIN, Role.MAINTAINER})


def test_unknown_stage_names_the_valid_ones() -> None:
    with pytest.raises(UnknownStage) as info:
        DEFAULT_PIPELINE.stage("qa")

    assert info.value.message == "stage 'qa' is not part of pipeline 'default'"
    assert info.value.hint == "use one of: new, ci, dev, stage, prod"
    assert info.value.details == {
        "pipeline": "default",
        "stages": ["new", "ci", "dev", "stage", "prod"],
    }
    with pytest.raises(UnknownStage):
        DEFAULT_PIPELINE.index("qa")


# ------------------------------------------------------------------------ required and dependents


@pytest.mark.parametrize(
    ("stage", "required"),
    [("new", ()), ("ci", ("new",)), ("dev", ("ci",)), ("prod", ("stage",))],
)
def test_required_stages_default_to_the_previous_one(stage: str, required: tuple[str, ...]) -> None:
    assert DEFAULT_PIPELINE.required_stages(stage) == required


@pytest.mark.parametrize(
    ("stage", "required"),
    [("ci", ("new",)), ("dev", ("new",)), ("stage", ("ci",)), ("prod", ("dev", "stage"))],
)
def test_required_stages_explicit(stage: str, required: tuple[str, ...]) -> None:
    assert FORKED.required_stages(stage) == required


def test_explicit_empty_requires_means_no_requirement() -> None:
    hotfix = pipeline(Stage(name="new"), Stage(name="ci"), Stage(name="prod", requires=()))

    assert hotfix.required_stages("prod") == ()
    assert hotfix.dependents("ci") == ()


@pytest.mark.parametrize(
    ("in_pipeline", "stage", "dependents"),
    [
        (DEFAULT_PIPELINE, "ci", ("dev", "stage", "prod")),
        (DEFAULT_PIPELINE, "stage", ("prod",)),
        (DEFAULT_PIPELINE, "prod", ()),
        (FORKED, "ci", ("stage", "prod")),
        (FORKED, "dev", ("prod",)),
        (FORKED, "new", ("ci", "dev", "stage", "prod")),
    ],
)
def test_dependents_are_the_stages_that_transitively_require_a_stage(
    in_pipeline: Pipeline, stage: str, dependents: tuple[str, ...]
) -> None:
    assert in_pipeline.dependents(stage) == dependents


@pytest.mark.parametrize(
    ("reached", "highest", "next_stage"),
    [
        ((), None, "new"),
        (("new",), "new", "ci"),
        (("ci", "new"), "ci", "dev"),
        (("new", "dev"), "dev", "stage"),
        (("new", "ci", "dev", "stage", "prod"), "prod", None),
        (("new", "qa", "legacy"), "new", "ci"),
        (("qa",), None, "new"),
    ],
)
def test_highest_and_next_stage(
    reached: tuple[str, ...], highest: str | None, next_stage: str | None
) -> None:
    assert DEFAULT_PIPELINE.highest(reached) == highest
    assert DEFAULT_PIPELINE.next_stage(reached) == next_stage


# ----------------------------------------------------------------------------------- the gates


def test_no_gates_when_everything_is_in_order() -> None:
    assert gates(target="ci") == []
    assert (
        gates(target="prod", reached=("new", "ci", "dev", "stage"), change_control_id="CHG-1") == []
    )


def test_gates_come_most_fundamental_first() -> None:
    found = gates(
        target="prod",
        reached=("new",),
        status=ArtifactStatus.FAILED,
        held=True,
        principal=Principal(name="eve", role=Role.VIEWER),
    )

    assert codes(found) == [
        "artifact_failed",
        "artifact_held",
        "not_authorized",
        "stage_required",
        "change_control_required",
    ]
    assert all(g.code == g.error.code for g in found)


def test_failed_artifact_gate() -> None:
    [gate] = gates(target="ci", status=ArtifactStatus.FAILED)

    assert isinstance(gate.error, ArtifactFailed)
    assert gate.error.hint == "upload a fixed build instead"


def test_deprecated_artifact_gate() -> None:
    [gate] = gates(target="ci", status=ArtifactStatus.DEPRECATED)

    assert isinstance(gate.error, ArtifactDeprecated)


def test_held_artifact_gate() -> None:
    [gate] = gates(target="ci", held=True)

    assert isinstance(gate.error, ArtifactHeld)


def test_stage_required_gate_lists_every_missing_stage() -> None:
    [gate] = gates(
        target="prod",
        reached=("new", "ci"),
        change_control_id="CHG-1",
        in_pipeline=FORKED,
        principal=ADMIN,
    )

    assert isinstance(gate.error, StageRequired)
    assert gate.error.details == {"missing": ["dev", "stage"]}
    assert gate.error.message == (
        "stage 'prod' requires the artifact to have reached 'dev', 'stage' first"
    )
    assert gate.error.hint == "promote it to 'dev' first"


def test_only_the_required_stages_count_not_every_earlier_one() -> None:
    assert gates(target="dev", reached=("new",), in_pipeline=FORKED) == []


@pytest.mark.parametrize("change_control_id", [None, "", "   "])
def test_change_control_gate(change_control_id: str | None) -> None:
    [gate] = gates(
        target="prod", reached=("new", "ci", "dev", "stage"), change_control_id=change_control_id
    )

    assert isinstance(gate.error, ChangeControlRequired)
    assert gate.error.message == "stage 'prod' requires a change-control id"


@pytest.mark.parametrize("role", [Role.VIEWER, Role.UPLOADER])
def test_roles_without_promote_are_refused(role: Role) -> None:
    [gate] = gates(target="ci", principal=Principal(name="u", role=role))

    assert isinstance(gate.error, NotAuthorized)
    assert gate.error.message == f"role {role.value!r} may not promote artifacts"


def test_stage_promote_roles_refuse_other_roles() -> None:
    [gate] = gates(
        target="prod",
        reached=("new", "ci", "dev", "stage"),
        in_pipeline=FORKED,
        change_control_id="CHG-1",
    )

    assert isinstance(gate.error, NotAuthorized)
    assert gate.error.message == "role 'maintainer' may not promote into stage 'prod'"
    assert gate.error.hint == "roles allowed: admin"


def test_per_user_stages_refuse_other_stages() -> None:
    limited = Principal(name="ci-maint", role=Role.MAINTAINER, stages=frozenset({"ci"}))

    assert gates(target="ci", principal=limited) == []
    [gate] = gates(target="dev", reached=("new", "ci"), principal=limited)
    assert isinstance(gate.error, NotAuthorized)
    assert gate.error.message == "user 'ci-maint' has no permission for stage 'dev'"


def test_admin_passes_stage_promote_roles() -> None:
    assert (
        gates(
            target="prod",
            reached=("new", "ci", "dev", "stage"),
            in_pipeline=FORKED,
            principal=ADMIN,
            change_control_id="CHG-1",
        )
        == []
    )


def test_without_a_principal_permissions_are_left_out() -> None:
    found = gates(target="dev", principal=None)

    assert codes(found) == ["stage_required"]


def test_unknown_target_raises_instead_of_returning_a_gate() -> None:
    with pytest.raises(UnknownStage):
        gates(target="qa")
