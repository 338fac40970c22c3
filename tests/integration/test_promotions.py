"""Moving artifacts through their pipeline: every gate refuses, and the refusal is audited."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from tests.integration.conftest import (
    events,
    make_user,
    promote,
    promote_through,
    stages_of,
    upload_generic,
)

from packyard.bootstrap import Runtime
from packyard.domain.artifacts import ArtifactStatus
from packyard.domain.auth import Principal, Role
from packyard.domain.errors import (
    ArtifactDeprecated,
    ArtifactFailed,
    ArtifactHeld,
    ChangeControlRejected,
    ChangeControlRequired,
    ChangeControlUnavailable,
    InvalidRequest,
    NotAuthorized,
    PackyardError,
    StageRequired,
    UnknownStage,
)
from packyard.services import artifacts, packages, promotions
from packyard.services.ports import ChangeControlDecision

DEFAULT_STAGES = ["new", "ci", "dev", "stage", "prod"]
SHORT_PIPELINES = {
    "default": {
        "stages": [{"name": s} for s in DEFAULT_STAGES[:-1]]
        + [{"name": "prod", "change_control": True}]
    },
    "short": {"stages": [{"name": "dev"}, {"name": "prod", "change_control": True}]},
}


def _current_stage(runtime: Runtime, ref: str) -> str | None:
    with runtime.context() as ctx:
        return artifacts.resolve(ctx, ref).current_stage


def assert_refusal_recorded(
    runtime: Runtime,
    *,
    sha256: str,
    error: PackyardError,
    actor: str,
    stage: str,
    action: str = "artifact.promote.refused",
) -> None:
    """The refusal outlived the failed unit of work: read back in a fresh one."""
    [event] = events(runtime, action=action, object_id=sha256)
    assert event.actor == actor
    assert event.object_type == "artifact"
    assert event.after is not None
    assert event.after["code"] == error.code
    assert event.after["stage"] == stage
    assert event.reason == error.message


def _set_status(
    runtime: Runtime, *, principal: Principal, ref: str, status: ArtifactStatus
) -> None:
    with runtime.context(write=True) as ctx:
        promotions.set_status(ctx, principal=principal, ref=ref, status=status, reason="test")


def _set_hold(runtime: Runtime, *, principal: Principal, ref: str, held: bool) -> None:
    with runtime.context(write=True) as ctx:
        promotions.set_hold(ctx, principal=principal, ref=ref, held=held, reason="investigating")


# ----------------------------------------------------------------------------- the happy path


def test_maintainer_promotes_through_the_default_pipeline(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256

    for stage in DEFAULT_STAGES[1:]:
        result = promote(
            runtime,
            principal=maintainer,
            ref=sha,
            stage=stage,
            change_control="CHG-7" if stage == "prod" else None,
        )
        assert result.changed is True
        assert result.artifact.current_stage == stage

    assert stages_of(runtime, sha) == DEFAULT_STAGES
    promoted = events(runtime, action="artifact.promote", object_id=sha)
    assert [e.after["stage"] for e in promoted if e.after] == DEFAULT_STAGES[1:]
    assert promoted[-1].after is not None and promoted[-1].after["change_control"] == "CHG-7"
    assert promoted[-1].before is not None
    assert promoted[-1].before["stages"] == DEFAULT_STAGES[:-1]
    assert events(runtime, action="artifact.promote.refused") == []


def test_promotion_is_idempotent(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256
    assert promote(runtime, principal=maintainer, ref=sha, stage="ci").changed is True

    again = promote(runtime, principal=maintainer, ref=sha, stage="ci")

    assert again.changed is False
    assert stages_of(runtime, sha) == ["new", "ci"]
    assert len(events(runtime, action="artifact.promote", object_id=sha)) == 1


def test_promotion_accepts_a_unique_id_prefix(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256

    promote(runtime, principal=maintainer, ref=sha[:10].upper(), stage="ci")

    assert stages_of(runtime, sha) == ["new", "ci"]


# ---------------------------------------------------------------------------------- the gates


def test_skipping_a_stage_is_refused_and_audited(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256

    with pytest.raises(StageRequired) as info:
        promote(runtime, principal=maintainer, ref=sha, stage="dev")

    assert info.value.details["missing"] == ["ci"]
    assert info.value.hint == "promote it to 'ci' first"
    assert stages_of(runtime, sha) == ["new"]
    assert_refusal_recorded(runtime, sha256=sha, error=info.value, actor="maint", stage="dev")
    assert events(runtime, action="artifact.promote") == []


def test_prod_without_change_control_is_refused_and_audited(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256
    promote_through(runtime, principal=maintainer, ref=sha, stages=["ci", "dev", "stage"])

    with pytest.raises(ChangeControlRequired) as info:
        promote(runtime, principal=maintainer, ref=sha, stage="prod", change_control="  ")

    assert "change-control id" in info.value.message
    assert stages_of(runtime, sha) == ["new", "ci", "dev", "stage"]
    assert_refusal_recorded(runtime, sha256=sha, error=info.value, actor="maint", stage="prod")


def test_unknown_stage_is_refused_naming_the_valid_ones(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256

    with pytest.raises(UnknownStage) as info:
        promote(runtime, principal=maintainer, ref=sha, stage="qa")

    assert info.value.hint == "use one of: new, ci, dev, stage, prod"
    assert_refusal_recorded(runtime, sha256=sha, error=info.value, actor="maint", stage="qa")


@pytest.mark.parametrize(
    ("status", "error"),
    [(ArtifactStatus.FAILED, ArtifactFailed), (ArtifactStatus.DEPRECATED, ArtifactDeprecated)],
)
def test_retired_artifact_cannot_be_promoted(
    runtime: Runtime,
    uploader: Principal,
    maintainer: Principal,
    status: ArtifactStatus,
    error: type[PackyardError],
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256
    _set_status(runtime, principal=maintainer, ref=sha, status=status)

    with pytest.raises(error) as info:
        promote(runtime, principal=maintainer, ref=sha, stage="ci")

    assert stages_of(runtime, sha) == ["new"]
    assert_refusal_recorded(runtime, sha256=sha, error=info.value, actor="maint", stage="ci")


def test_held_artifact_cannot_be_promoted_until_released(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256
    _set_hold(runtime, principal=maintainer, ref=sha, held=True)

    with pytest.raises(ArtifactHeld) as info:
        promote(runtime, principal=maintainer, ref=sha, stage="ci")

    assert_refusal_recorded(runtime, sha256=sha, error=info.value, actor="maint", stage="ci")
    _set_hold(runtime, principal=maintainer, ref=sha, held=False)
    assert promote(runtime, principal=maintainer, ref=sha, stage="ci").changed is True
    assert [e.action for e in events(runtime, object_id=sha)] == [
        "artifact.upload",
        "artifact.hold",
        "artifact.promote.refused",
        "artifact.release",
        "artifact.promote",
    ]


def test_role_without_promote_permission_is_refused(runtime: Runtime, uploader: Principal) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256

    with pytest.raises(NotAuthorized) as info:
        promote(runtime, principal=uploader, ref=sha, stage="ci")

    assert info.value.message == "role 'uploader' may not promote artifacts"
    assert_refusal_recorded(runtime, sha256=sha, error=info.value, actor="ci-bot", stage="ci")


def test_unauthorized_user_gets_no_silent_no_op_for_a_stage_already_reached(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256
    promote(runtime, principal=maintainer, ref=sha, stage="ci")

    with pytest.raises(NotAuthorized) as info:
        promote(runtime, principal=uploader, ref=sha, stage="ci")

    assert_refusal_recorded(runtime, sha256=sha, error=info.value, actor="ci-bot", stage="ci")


def test_user_limited_to_some_stages_is_refused_the_others(
    runtime: Runtime, uploader: Principal
) -> None:
    ci_only, _ = make_user(runtime, name="ci-maint", role=Role.MAINTAINER, stages=["ci"])
    sha = upload_generic(runtime, principal=uploader).sha256
    assert promote(runtime, principal=ci_only, ref=sha, stage="ci").changed is True

    with pytest.raises(NotAuthorized) as info:
        promote(runtime, principal=ci_only, ref=sha, stage="dev")

    assert info.value.message == "user 'ci-maint' has no permission for stage 'dev'"
    assert stages_of(runtime, sha) == ["new", "ci"]
    assert_refusal_recorded(runtime, sha256=sha, error=info.value, actor="ci-maint", stage="dev")


def test_stage_promote_roles_from_settings_refuse_other_roles(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime(
        pipelines={
            "default": {
                "stages": [
                    {"name": "new"},
                    {"name": "ci", "promote_roles": ["admin", "maintainer", "uploader"]},
                    {"name": "prod", "promote_roles": ["admin"]},
                ]
            }
        }
    )
    uploader, _ = make_user(runtime, name="ci-bot", role=Role.UPLOADER)
    maintainer, _ = make_user(runtime, name="maint", role=Role.MAINTAINER)
    admin, _ = make_user(runtime, name="root", role=Role.ADMIN)
    sha = upload_generic(runtime, principal=uploader).sha256
    promote(runtime, principal=maintainer, ref=sha, stage="ci")

    with pytest.raises(NotAuthorized) as info:
        promote(runtime, principal=maintainer, ref=sha, stage="prod")

    assert info.value.message == "role 'maintainer' may not promote into stage 'prod'"
    assert info.value.hint == "roles allowed: admin"
    assert_refusal_recorded(runtime, sha256=sha, error=info.value, actor="maint", stage="prod")
    assert promote(runtime, principal=admin, ref=sha, stage="prod").changed is True


def test_uploader_in_promote_roles_is_still_refused_by_its_role(
    make_runtime: Callable[..., Runtime],
) -> None:
    # promote_roles narrows who may promote; it cannot grant the promote action to a role.
    runtime = make_runtime(
        pipelines={
            "default": {
                "stages": [
                    {"name": "new"},
                    {"name": "ci", "promote_roles": ["uploader"]},
                ]
            }
        }
    )
    uploader, _ = make_user(runtime, name="ci-bot", role=Role.UPLOADER)
    sha = upload_generic(runtime, principal=uploader).sha256

    with pytest.raises(NotAuthorized, match="may not promote artifacts"):
        promote(runtime, principal=uploader, ref=sha, stage="ci")


@pytest.mark.parametrize(
    ("change", "action"),
    [
        (lambda rt, p, sha: _set_hold(rt, principal=p, ref=sha, held=True), "artifact.hold"),
        (
            lambda rt, p, sha: _set_status(rt, principal=p, ref=sha, status=ArtifactStatus.FAILED),
            "artifact.fail",
        ),
    ],
    ids=["hold", "fail"],
)
def test_uploader_cannot_hold_or_fail_and_the_attempt_is_audited(
    runtime: Runtime,
    uploader: Principal,
    change: Callable[[Runtime, Principal, str], None],
    action: str,
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256

    with pytest.raises(NotAuthorized):
        change(runtime, uploader, sha)

    with runtime.context() as ctx:
        artifact = artifacts.resolve(ctx, sha)
        assert (artifact.held, artifact.status) == (False, "active")
    [event] = events(runtime, action=f"{action}.refused", object_id=sha)
    assert event.actor == "ci-bot"
    assert event.after is not None and event.after["code"] == "not_authorized"


# ---------------------------------------------------------------------------------- demotion


def _demote(
    runtime: Runtime, *, principal: Principal, ref: str, stage: str | None = None
) -> promotions.TransitionResult:
    with runtime.context(write=True) as ctx:
        return promotions.demote(ctx, principal=principal, ref=ref, stage=stage, note="bad build")


def test_demote_removes_the_stage_and_every_stage_after_it(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256
    promote_through(runtime, principal=maintainer, ref=sha, stages=["ci", "dev", "stage"])

    result = _demote(runtime, principal=maintainer, ref=sha, stage="ci")

    assert result.changed is True
    assert stages_of(runtime, sha) == ["new"]
    assert _current_stage(runtime, sha) == "new"
    [event] = events(runtime, action="artifact.demote", object_id=sha)
    assert event.after is not None
    assert event.after["removed"] == ["ci", "dev", "stage"]
    assert event.reason == "bad build"


def test_demote_without_a_stage_takes_the_highest(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256
    promote_through(runtime, principal=maintainer, ref=sha, stages=["ci", "dev"])

    _demote(runtime, principal=maintainer, ref=sha)

    assert stages_of(runtime, sha) == ["new", "ci"]
    assert _current_stage(runtime, sha) == "ci"


def test_demote_keeps_stages_that_do_not_require_the_removed_one(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime(
        pipelines={
            "default": {
                "stages": [
                    {"name": "new"},
                    {"name": "ci"},
                    {"name": "dev", "requires": ["new"]},
                    {"name": "stage", "requires": ["ci"]},
                ]
            }
        }
    )
    maintainer, _ = make_user(runtime, name="maint", role=Role.MAINTAINER)
    sha = upload_generic(runtime, principal=maintainer).sha256
    promote_through(runtime, principal=maintainer, ref=sha, stages=["ci", "dev", "stage"])

    _demote(runtime, principal=maintainer, ref=sha, stage="ci")

    assert stages_of(runtime, sha) == ["new", "dev"]
    assert _current_stage(runtime, sha) == "dev"


def test_demote_out_of_the_first_stage_is_refused_and_audited(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256

    with pytest.raises(InvalidRequest) as info:
        _demote(runtime, principal=maintainer, ref=sha, stage="new")

    assert "first stage" in info.value.message
    assert stages_of(runtime, sha) == ["new"]
    assert_refusal_recorded(
        runtime,
        sha256=sha,
        error=info.value,
        actor="maint",
        stage="new",
        action="artifact.demote.refused",
    )


def test_demote_of_a_stage_not_reached_changes_nothing(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256

    assert _demote(runtime, principal=maintainer, ref=sha, stage="dev").changed is False
    assert events(runtime, action="artifact.demote") == []


def test_demote_needs_promote_permission(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256
    promote(runtime, principal=maintainer, ref=sha, stage="ci")

    with pytest.raises(NotAuthorized) as info:
        _demote(runtime, principal=uploader, ref=sha, stage="ci")

    assert stages_of(runtime, sha) == ["new", "ci"]
    assert_refusal_recorded(
        runtime,
        sha256=sha,
        error=info.value,
        actor="ci-bot",
        stage="ci",
        action="artifact.demote.refused",
    )


# --------------------------------------------------------------------------- other pipelines


def test_package_on_a_short_pipeline_starts_in_dev_and_goes_to_prod(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime(pipelines=SHORT_PIPELINES, package_pipelines={"notes-app": "short"})
    maintainer, _ = make_user(runtime, name="maint", role=Role.MAINTAINER)
    sha = upload_generic(runtime, principal=maintainer, name="notes-app", version="3.1").sha256
    assert stages_of(runtime, sha) == ["dev"]

    with pytest.raises(UnknownStage):
        promote(runtime, principal=maintainer, ref=sha, stage="ci")
    promote(runtime, principal=maintainer, ref=sha, stage="prod", change_control="CHG-1")

    assert stages_of(runtime, sha) == ["dev", "prod"]


def test_pipeline_assigned_to_a_package_applies_to_its_next_uploads(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime(pipelines=SHORT_PIPELINES)
    maintainer, _ = make_user(runtime, name="maint", role=Role.MAINTAINER)
    with runtime.context(write=True) as ctx:
        packages.set_pipeline(ctx, principal=maintainer, name="notes-app", pipeline="short")

    sha = upload_generic(runtime, principal=maintainer, name="notes-app", version="3.1").sha256

    assert stages_of(runtime, sha) == ["dev"]
    [event] = events(runtime, action="package.set_pipeline")
    assert (event.before, event.after) == ({"pipeline": "default"}, {"pipeline": "short"})


# ---------------------------------------------------------------------------- change control


@dataclass
class FakeChangeControl:
    """A ticket system that approves the ids it is given and remembers every question."""

    approved: set[str]
    down: bool = False
    asked: list[tuple[str, str, str]] = field(default_factory=list)

    def check(self, change_id: str, *, artifact: str, stage: str) -> ChangeControlDecision:
        self.asked.append((change_id, artifact, stage))
        if self.down:
            raise ChangeControlUnavailable("the change-control system could not be reached")
        if change_id in self.approved:
            return ChangeControlDecision(approved=True, detail="approved")
        return ChangeControlDecision(approved=False, detail="awaiting CAB")


@pytest.fixture
def at_stage(runtime: Runtime, uploader: Principal, maintainer: Principal) -> str:
    sha = upload_generic(runtime, principal=uploader).sha256
    promote_through(runtime, principal=maintainer, ref=sha, stages=["ci", "dev", "stage"])
    return sha


def test_change_control_approved_by_the_ticket_system(
    runtime: Runtime, maintainer: Principal, at_stage: str
) -> None:
    tickets = FakeChangeControl(approved={"CHG-1"})
    runtime.change_control = tickets

    result = promote(
        runtime, principal=maintainer, ref=at_stage, stage="prod", change_control=" CHG-1 "
    )

    assert result.changed is True
    assert tickets.asked == [("CHG-1", at_stage, "prod")]
    with runtime.context() as ctx:
        [entry] = [e for e in artifacts.resolve(ctx, at_stage).stages if e.stage == "prod"]
        assert entry.change_control == "CHG-1"


def test_change_control_rejected_by_the_ticket_system_is_refused_and_audited(
    runtime: Runtime, maintainer: Principal, at_stage: str
) -> None:
    runtime.change_control = FakeChangeControl(approved={"CHG-1"})

    with pytest.raises(ChangeControlRejected) as info:
        promote(runtime, principal=maintainer, ref=at_stage, stage="prod", change_control="CHG-2")

    assert "CHG-2" in info.value.message and "awaiting CAB" in info.value.message
    assert "prod" not in stages_of(runtime, at_stage)
    assert_refusal_recorded(runtime, sha256=at_stage, error=info.value, actor="maint", stage="prod")


def test_stages_without_change_control_do_not_ask_the_ticket_system(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    tickets = FakeChangeControl(approved=set())
    runtime.change_control = tickets
    sha = upload_generic(runtime, principal=uploader).sha256

    promote(runtime, principal=maintainer, ref=sha, stage="ci", change_control="CHG-9")

    assert tickets.asked == []
    assert stages_of(runtime, sha) == ["new", "ci"]


def test_unreachable_ticket_system_blocks_the_promotion(
    runtime: Runtime, maintainer: Principal, at_stage: str
) -> None:
    runtime.change_control = FakeChangeControl(approved={"CHG-1"}, down=True)

    with pytest.raises(ChangeControlUnavailable):
        promote(runtime, principal=maintainer, ref=at_stage, stage="prod", change_control="CHG-1")

    assert "prod" not in stages_of(runtime, at_stage)
    promoted = events(runtime, action="artifact.promote", object_id=at_stage)
    assert [e.after["stage"] for e in promoted if e.after] == ["ci", "dev", "stage"]
    refused = events(runtime, action="artifact.promote.refused", object_id=at_stage)
    assert [e.after["code"] for e in refused if e.after] == ["change_control_unavailable"]
