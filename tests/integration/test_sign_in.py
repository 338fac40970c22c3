"""Web sign-in: wrong passwords are audited, and repeated guessing locks the user name out
for a while (API tokens keep working)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.integration.conftest import events, make_user

from packyard.bootstrap import Runtime
from packyard.domain.auth import Role
from packyard.domain.errors import NotAuthenticated
from packyard.services import users
from packyard.services.context import utcnow

PASSWORD = "correct horse battery staple"


def _sign_in(runtime: Runtime, password: str, *, at: timedelta = timedelta()) -> users.SignedIn:
    with runtime.context(write=True) as ctx:
        ctx.now = lambda: utcnow() + at
        return users.sign_in(ctx, name="dana", password=password)


def test_repeated_wrong_passwords_lock_the_name_out_for_a_while(runtime: Runtime) -> None:
    _principal, token = make_user(runtime, name="dana", role=Role.MAINTAINER)
    with runtime.context(write=True) as ctx:
        users.set_first_password(ctx, token=token, password=PASSWORD)

    for _ in range(users.SIGN_IN_MAX_FAILURES):
        with pytest.raises(NotAuthenticated, match="wrong user name or password"):
            _sign_in(runtime, "guess")
    with pytest.raises(NotAuthenticated, match="too many failed sign-ins"):
        _sign_in(runtime, PASSWORD)  # even the right password, while locked
    refused = events(runtime, action="user.sign_in.refused")
    assert len(refused) == users.SIGN_IN_MAX_FAILURES + 1
    assert {e.object_id for e in refused} == {"dana"}

    with runtime.context() as ctx:  # API tokens are not affected
        assert users.authenticate_token(ctx, token).name == "dana"
    later = _sign_in(runtime, PASSWORD, at=users.SIGN_IN_WINDOW + timedelta(minutes=1))
    assert later.principal.name == "dana"


def test_unknown_names_are_refused_like_wrong_passwords(runtime: Runtime) -> None:
    with (
        pytest.raises(NotAuthenticated, match="wrong user name or password"),
        runtime.context(write=True) as ctx,
    ):
        users.sign_in(ctx, name="nobody", password="x")
    assert [e.object_id for e in events(runtime, action="user.sign_in.refused")] == ["nobody"]
