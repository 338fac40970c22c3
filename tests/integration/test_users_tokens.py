"""Users and API tokens: who gets in, who does not, and what is stored."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import text
from tests.integration.conftest import events, make_user

from packyard.bootstrap import Runtime
from packyard.domain.auth import SYSTEM, Principal, Role
from packyard.domain.errors import InvalidRequest, NotAuthenticated, NotAuthorized, NotFound
from packyard.services import users
from packyard.services.context import utcnow


def _authenticate(runtime: Runtime, secret: str, *, at: timedelta | None = None) -> Principal:
    """Authenticate as a request would, optionally ``at`` this far in the future."""
    with runtime.context() as ctx:
        if at is not None:
            later = utcnow() + at
            ctx.now = lambda: later
        return users.authenticate_token(ctx, secret)


def _create_token(
    runtime: Runtime,
    *,
    principal: Principal,
    user: str | None = None,
    expires_in: timedelta | None = None,
) -> users.CreatedToken:
    with runtime.context(write=True) as ctx:
        return users.create_token(
            ctx, principal=principal, name="laptop", user=user, expires_in=expires_in
        )


def _revoke(runtime: Runtime, *, principal: Principal, token_id: int) -> None:
    with runtime.context(write=True) as ctx:
        users.revoke_token(ctx, principal=principal, token_id=token_id)


def _user_names(runtime: Runtime) -> list[str]:
    with runtime.context() as ctx:
        return [u.name for u in users.list_users(ctx, principal=SYSTEM)]


def test_token_authenticates_as_its_user(runtime: Runtime) -> None:
    principal, secret = make_user(runtime, name="alice", role=Role.MAINTAINER, stages=["ci"])

    again = _authenticate(runtime, secret)

    assert again == principal
    assert (again.name, again.role, again.stages) == ("alice", Role.MAINTAINER, frozenset({"ci"}))
    assert again.user_id is not None and again.token_id is not None


@pytest.mark.parametrize(
    ("secret", "message"),
    [
        ("pky_" + "A" * 43, "the token is not valid"),
        ("ghp_abcdef", "the token is not a Packyard API token"),
        ("", "the token is not a Packyard API token"),
    ],
)
def test_unknown_token_is_refused(runtime: Runtime, secret: str, message: str) -> None:
    make_user(runtime, name="alice", role=Role.ADMIN)

    with pytest.raises(NotAuthenticated, match=message):
        _authenticate(runtime, secret)


def test_revoked_token_is_refused(runtime: Runtime) -> None:
    principal, secret = make_user(runtime, name="alice", role=Role.UPLOADER)
    assert principal.token_id is not None

    _revoke(runtime, principal=principal, token_id=principal.token_id)

    with pytest.raises(NotAuthenticated, match="was revoked") as info:
        _authenticate(runtime, secret)
    assert secret[:12] in info.value.message
    assert secret not in str(info.value)
    [event] = events(runtime, action="token.revoke")
    assert event.actor == "alice"


def test_token_expires(runtime: Runtime) -> None:
    principal, _ = make_user(runtime, name="alice", role=Role.UPLOADER)
    created = _create_token(runtime, principal=principal, expires_in=timedelta(hours=1))

    assert _authenticate(runtime, created.secret, at=timedelta(minutes=59)).name == "alice"
    with pytest.raises(NotAuthenticated, match="expired on"):
        _authenticate(runtime, created.secret, at=timedelta(hours=1, minutes=1))


def test_token_with_expiry_in_the_past_is_refused(runtime: Runtime) -> None:
    principal, secret = make_user(runtime, name="alice", role=Role.UPLOADER)
    with runtime.context(write=True) as ctx:
        ctx.repos.session.execute(
            text("UPDATE api_tokens SET expires_at = :t WHERE id = :id"),
            {"t": utcnow() - timedelta(seconds=1), "id": principal.token_id},
        )

    with pytest.raises(NotAuthenticated, match="expired"):
        _authenticate(runtime, secret)


def test_disabled_user_is_refused_until_enabled_again(runtime: Runtime, admin: Principal) -> None:
    _, secret = make_user(runtime, name="bob", role=Role.UPLOADER)

    with runtime.context(write=True) as ctx:
        users.update_user(ctx, principal=admin, name="bob", disabled=True)
    with pytest.raises(NotAuthenticated, match="user 'bob' is disabled"):
        _authenticate(runtime, secret)

    with runtime.context(write=True) as ctx:
        users.update_user(ctx, principal=admin, name="bob", disabled=False)
    assert _authenticate(runtime, secret).name == "bob"


def test_admin_cannot_disable_themselves(runtime: Runtime, admin: Principal) -> None:
    with runtime.context(write=True) as ctx, pytest.raises(InvalidRequest, match="yourself"):
        users.update_user(ctx, principal=admin, name=admin.name, disabled=True)


def test_tokens_are_stored_only_as_their_sha256(runtime: Runtime) -> None:
    principal, secret = make_user(runtime, name="alice", role=Role.ADMIN)
    second = _create_token(runtime, principal=principal).secret

    with runtime.context() as ctx:
        rows = ctx.repos.session.execute(text("SELECT * FROM api_tokens")).mappings().all()
        stored_events = ctx.repos.session.execute(text("SELECT * FROM events")).all()

    assert len(rows) == 2
    for plain in (secret, second):
        assert plain.startswith("pky_") and len(plain) == 4 + 43
        assert not any(plain in str(value) for row in rows for value in row.values())
        assert not any(plain in str(value) for row in stored_events for value in row)
    assert {row["token_hash"] for row in rows} == {
        hashlib.sha256(s.encode()).hexdigest() for s in (secret, second)
    }


def test_viewer_cannot_create_users(runtime: Runtime) -> None:
    viewer, _ = make_user(runtime, name="eve", role=Role.VIEWER)

    with runtime.context(write=True) as ctx, pytest.raises(NotAuthorized, match="manage users"):
        users.create_user(ctx, principal=viewer, name="mallory", role=Role.ADMIN)

    assert _user_names(runtime) == ["eve"]


def test_uploader_creates_own_tokens_but_not_others(runtime: Runtime) -> None:
    uploader, _ = make_user(runtime, name="ci-bot", role=Role.UPLOADER)
    make_user(runtime, name="alice", role=Role.ADMIN)

    own = _create_token(runtime, principal=uploader)
    assert _authenticate(runtime, own.secret).name == "ci-bot"

    with pytest.raises(NotAuthorized, match="create tokens for other users"):
        _create_token(runtime, principal=uploader, user="alice")
    with runtime.context() as ctx:
        assert [t.user.name for t in users.list_tokens(ctx, principal=SYSTEM, all_users=True)] == [
            "ci-bot",
            "alice",
            "ci-bot",
        ]


def test_users_see_and_revoke_only_their_own_tokens(runtime: Runtime) -> None:
    alice, _ = make_user(runtime, name="alice", role=Role.MAINTAINER)
    bob, bob_secret = make_user(runtime, name="bob", role=Role.UPLOADER)
    assert bob.token_id is not None

    with runtime.context() as ctx:
        assert [t.id for t in users.list_tokens(ctx, principal=alice)] == [alice.token_id]
        with pytest.raises(NotAuthorized):
            users.list_tokens(ctx, principal=alice, all_users=True)
    with pytest.raises(NotFound):
        _revoke(runtime, principal=alice, token_id=bob.token_id)

    assert _authenticate(runtime, bob_secret).name == "bob"


def test_admin_creates_users_with_stage_limits(runtime: Runtime, admin: Principal) -> None:
    with runtime.context(write=True) as ctx:
        users.create_user(
            ctx, principal=admin, name="dev-lead", role=Role.MAINTAINER, stages=["ci", "dev"]
        )
        with pytest.raises(InvalidRequest, match="unknown stage"):
            users.create_user(
                ctx, principal=admin, name="typo", role=Role.MAINTAINER, stages=["prdo"]
            )
        with pytest.raises(InvalidRequest, match="already exists"):
            users.create_user(ctx, principal=admin, name="dev-lead", role=Role.VIEWER)
        with pytest.raises(InvalidRequest, match="invalid user name"):
            users.create_user(ctx, principal=admin, name="Bad Name", role=Role.VIEWER)

    [event] = [e for e in events(runtime, action="user.create") if e.object_id == "dev-lead"]
    assert event.actor == "root"
    assert event.after == {"role": "maintainer", "stages": ["ci", "dev"]}


def test_bootstrap_admin_only_on_first_start(runtime: Runtime) -> None:
    with runtime.context(write=True) as ctx:
        secret = users.bootstrap_admin(ctx)
    with runtime.context(write=True) as ctx:
        assert users.bootstrap_admin(ctx) is None

    assert secret is not None
    principal = _authenticate(runtime, secret)
    assert (principal.name, principal.role) == ("admin", Role.ADMIN)
    assert _user_names(runtime) == ["admin"]
