"""The audit log as stored: verification passes on real activity and catches tampering."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from tests.integration.conftest import (
    events,
    generic_bytes,
    make_user,
    promote,
    promote_through,
    upload_bytes,
)

from packyard.bootstrap import Runtime
from packyard.domain.auth import Principal, Role
from packyard.domain.errors import NotAuthorized, StageRequired
from packyard.services import audit
from packyard.services.audit import VerifyReport
from packyard.storage.db.repositories import EventQuery


def _verify(runtime: Runtime, principal: Principal) -> VerifyReport:
    with runtime.context() as ctx:
        return audit.verify(ctx, principal=principal)


def _sql(runtime: Runtime, statement: str, **params: object) -> None:
    """Tamper with the stored log the way someone with database access could."""
    with runtime.context(write=True) as ctx:
        ctx.repos.session.execute(text(statement), params)


@pytest.fixture
def activity(runtime: Runtime, admin: Principal, maintainer: Principal, uploader: Principal) -> int:
    """A realistic log: users, tokens, an upload with non-ASCII text, promotions, a refusal.
    Returns the number of events."""
    sha = upload_bytes(
        runtime,
        principal=uploader,
        data=generic_bytes("audited"),
        filename="tool-1.0.bin",
        justification="Sicherheitslücke CVE-2024-1 behoben ✓",
    ).artifact.sha256
    promote_through(runtime, principal=maintainer, ref=sha, stages=["ci", "dev"])
    with pytest.raises(StageRequired):
        promote(runtime, principal=maintainer, ref=sha, stage="prod")
    count = len(events(runtime))
    assert count >= 10
    return count


def test_verify_passes_on_a_normal_log(runtime: Runtime, admin: Principal, activity: int) -> None:
    report = _verify(runtime, admin)

    assert report == VerifyReport(ok=True, checked=activity, head_seq=activity)


def test_verify_detects_a_modified_event(runtime: Runtime, admin: Principal, activity: int) -> None:
    [upload] = events(runtime, action="artifact.upload")
    _sql(
        runtime,
        "UPDATE events SET reason = :reason WHERE seq = :seq",
        reason="nothing to see here",
        seq=upload.seq,
    )

    report = _verify(runtime, admin)

    assert report.ok is False
    assert report.broken_at == upload.seq
    assert report.problem == "content does not match its hash: the event was modified"
    assert report.checked == upload.seq


def test_verify_detects_a_modified_actor_in_the_last_event(
    runtime: Runtime, admin: Principal, activity: int
) -> None:
    _sql(runtime, "UPDATE events SET actor = 'someone-else' WHERE seq = :seq", seq=activity)

    report = _verify(runtime, admin)

    assert (report.ok, report.broken_at) == (False, activity)
    assert report.problem is not None and "was modified" in report.problem


def test_verify_detects_a_removed_event_in_the_middle(
    runtime: Runtime, admin: Principal, activity: int
) -> None:
    middle = activity // 2
    _sql(runtime, "DELETE FROM events WHERE seq = :seq", seq=middle)

    report = _verify(runtime, admin)

    assert report.ok is False
    assert report.broken_at == middle + 1
    assert report.problem == (
        f"expected event #{middle}, found #{middle + 1}: events were removed or reordered"
    )


def test_verify_detects_removed_events_at_the_end(
    runtime: Runtime, admin: Principal, activity: int
) -> None:
    _sql(runtime, "DELETE FROM events WHERE seq = :seq", seq=activity)

    report = _verify(runtime, admin)

    assert report.ok is False
    assert report.checked == activity - 1
    assert report.head_seq == activity
    assert report.broken_at == activity
    assert report.problem == (
        f"the chain head says {activity} events but {activity - 1} "
        "were found: events at the end were removed"
    )


def test_verify_detects_a_relinked_event(runtime: Runtime, admin: Principal, activity: int) -> None:
    _sql(runtime, "UPDATE events SET prev_hash = :h WHERE seq = 3", h="f" * 64)

    report = _verify(runtime, admin)

    assert (report.ok, report.broken_at) == (False, 3)
    assert report.problem == "previous-hash link does not match the event before it"


def test_new_events_after_verification_continue_the_chain(
    runtime: Runtime, admin: Principal, activity: int
) -> None:
    make_user(runtime, name="late", role=Role.VIEWER)

    report = _verify(runtime, admin)

    assert report.ok is True
    assert report.checked == report.head_seq > activity


@pytest.mark.parametrize("role", [Role.VIEWER, Role.UPLOADER])
def test_only_maintainers_and_admins_read_the_audit_log(runtime: Runtime, role: Role) -> None:
    principal, _ = make_user(runtime, name="nosy", role=role)

    with runtime.context() as ctx, pytest.raises(NotAuthorized):
        audit.verify(ctx, principal=principal)
    with runtime.context() as ctx, pytest.raises(NotAuthorized):
        audit.list_events(ctx, principal=principal, query=EventQuery())


def test_list_events_filters_and_pages(
    runtime: Runtime, maintainer: Principal, activity: int
) -> None:
    with runtime.context() as ctx:
        rows, total = audit.list_events(
            ctx, principal=maintainer, query=EventQuery(action="artifact.promote", limit=1)
        )
        newest = [(e.action, (e.after or {}).get("stage")) for e in rows]

    assert total == 2
    assert newest == [("artifact.promote", "dev")]
