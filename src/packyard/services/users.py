"""Users, roles and API tokens; authenticating a token into a Principal.

Tokens are ``pky_`` + 43 url-safe characters (256 random bits), shown once, stored as their
SHA-256 (a slow hash adds nothing for secrets of that entropy and would make every request
slow). Web passwords are argon2id hashes (argon2-cffi's defaults, rehashed when those
change); a web session is a random secret in a signed cookie, stored as its SHA-256 like a
token, so signing out, disabling a user or changing a password ends sessions at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from packyard.domain.auth import Action, Principal, Role
from packyard.domain.errors import InvalidRequest, NotAuthenticated, NotAuthorized, NotFound
from packyard.services.audit import record
from packyard.services.context import Context
from packyard.storage.db.models import ApiToken, User, WebSession
from packyard.storage.db.repositories import EventQuery

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "SESSION_LIFETIME",
    "TOKEN_PREFIX",
    "CreatedToken",
    "SignedIn",
    "authenticate_session",
    "authenticate_token",
    "bootstrap_admin",
    "create_token",
    "create_user",
    "hash_token",
    "list_tokens",
    "list_users",
    "needs_first_password",
    "revoke_token",
    "session_needs_touch",
    "set_first_password",
    "set_password",
    "sign_in",
    "sign_out",
    "token_needs_touch",
    "touch_session",
    "touch_token",
    "update_user",
]

TOKEN_PREFIX = "pky_"  # noqa: S105 - a public prefix that marks Packyard tokens, not a secret
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _principal(user: User, token: ApiToken | None = None) -> Principal:
    return Principal(
        name=user.name,
        role=Role(user.role),
        stages=frozenset(user.stages) if user.stages is not None else None,
        user_id=user.id,
        token_id=token.id if token else None,
    )


def authenticate_token(ctx: Context, token: str) -> Principal:
    """The principal a bearer token stands for; NotAuthenticated says why not."""
    if not token.startswith(TOKEN_PREFIX):
        raise NotAuthenticated(
            "the token is not a Packyard API token",
            hint="tokens start with 'pky_'; create one with `packyard tokens create`",
        )
    row = ctx.repos.tokens.by_hash(hash_token(token))
    if row is None:
        raise NotAuthenticated(
            "the token is not valid", hint="check PACKYARD_TOKEN or run `packyard login` again"
        )
    now = ctx.now()
    if row.revoked_at is not None:
        raise NotAuthenticated(f"the token {row.prefix}… was revoked", hint="ask for a new token")
    if row.expires_at is not None and row.expires_at <= now:
        raise NotAuthenticated(
            f"the token {row.prefix}… expired on {row.expires_at:%Y-%m-%d %H:%M} UTC",
            hint="create a new token with `packyard tokens create`",
        )
    if row.user.disabled:
        raise NotAuthenticated(f"user {row.user.name!r} is disabled", hint="ask an admin")
    return _principal(row.user, row)


# Recording every request would turn each read into a write; minute precision is plenty.
LAST_USED_PRECISION = timedelta(minutes=5)


def _stale(row: ApiToken | None, now: datetime) -> bool:
    return row is not None and (
        row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION
    )


def token_needs_touch(ctx: Context, *, token_id: int) -> bool:
    """Whether ``touch_token`` would record anything (checked in a read transaction)."""
    return _stale(ctx.repos.tokens.get(token_id), ctx.now())


def touch_token(ctx: Context, *, token_id: int) -> None:
    """Record that a token was used (at most once per LAST_USED_PRECISION)."""
    row = ctx.repos.tokens.get(token_id)
    if row is not None and _stale(row, ctx.now()):
        row.last_used_at = ctx.now()


def _require(principal: Principal, action: Action, what: str) -> None:
    if not principal.can(action):
        raise NotAuthorized(f"role {principal.role.value!r} may not {what}", hint="ask an admin")


def _check_stages(ctx: Context, stages: Sequence[str] | None) -> list[str] | None:
    if stages is None:
        return None
    known = {s.name for p in ctx.pipelines.values() for s in p.stages}
    unknown = [s for s in stages if s not in known]
    if unknown:
        raise InvalidRequest(
            f"unknown stage(s): {', '.join(unknown)}",
            hint=f"known stages: {', '.join(sorted(known))}",
        )
    return list(stages)


def create_user(
    ctx: Context,
    *,
    principal: Principal,
    name: str,
    role: Role,
    stages: Sequence[str] | None = None,
) -> User:
    _require(principal, Action.MANAGE_USERS, "manage users")
    if not _NAME.fullmatch(name):
        raise InvalidRequest(
            f"invalid user name {name!r}",
            hint="use 1-64 lower-case letters, digits, '.', '_' or '-'",
        )
    if ctx.repos.users.by_name(name) is not None:
        raise InvalidRequest(f"user {name!r} already exists", hint="pick another name")
    user = ctx.repos.users.add(
        User(
            name=name,
            role=role.value,
            stages=_check_stages(ctx, stages),
            disabled=False,
            created_at=ctx.now(),
        )
    )
    record(
        ctx,
        actor=principal,
        action="user.create",
        object_type="user",
        object_id=name,
        after={"role": role.value, "stages": user.stages},
    )
    return user


def update_user(
    ctx: Context,
    *,
    principal: Principal,
    name: str,
    role: Role | None = None,
    stages: Sequence[str] | None = None,
    all_stages: bool = False,
    disabled: bool | None = None,
) -> User:
    _require(principal, Action.MANAGE_USERS, "manage users")
    user = ctx.repos.users.by_name(name)
    if user is None:
        raise NotFound(
            f"user {name!r} does not exist", hint="list users with `packyard users list`"
        )
    before = {"role": user.role, "stages": user.stages, "disabled": user.disabled}
    if role is not None:
        user.role = role.value
    if all_stages:
        user.stages = None
    elif stages is not None:
        user.stages = _check_stages(ctx, stages)
    if disabled is not None:
        if disabled and user.name == principal.name:
            raise InvalidRequest("you cannot disable yourself", hint="ask another admin")
        user.disabled = disabled
    after = {"role": user.role, "stages": user.stages, "disabled": user.disabled}
    if after != before:
        record(
            ctx,
            actor=principal,
            action="user.update",
            object_type="user",
            object_id=name,
            before=before,
            after=after,
        )
    return user


def list_users(ctx: Context, *, principal: Principal) -> Sequence[User]:
    _require(principal, Action.MANAGE_USERS, "list users")
    return ctx.repos.users.list()


@dataclass(frozen=True, kw_only=True)
class CreatedToken:
    token: ApiToken
    secret: str


def create_token(
    ctx: Context,
    *,
    principal: Principal,
    name: str,
    user: str | None = None,
    expires_in: timedelta | None = None,
) -> CreatedToken:
    """A new token for ``user`` (default: the caller). Only admins create tokens for others."""
    owner_name = user or principal.name
    if owner_name != principal.name:
        _require(principal, Action.MANAGE_USERS, "create tokens for other users")
    else:
        _require(principal, Action.OWN_TOKENS, "create tokens")
    owner = ctx.repos.users.by_name(owner_name)
    if owner is None:
        raise NotFound(
            f"user {owner_name!r} does not exist", hint="create it with `packyard users create`"
        )
    if not name.strip():
        raise InvalidRequest("a token needs a name", hint="say what it is for, e.g. 'ci-uploads'")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = ctx.now()
    expires_at: datetime | None = now + expires_in if expires_in else None
    row = ctx.repos.tokens.add(
        ApiToken(
            user_id=owner.id,
            name=name.strip(),
            token_hash=hash_token(secret),
            prefix=secret[:12],
            created_at=now,
            expires_at=expires_at,
        )
    )
    record(
        ctx,
        actor=principal,
        action="token.create",
        object_type="token",
        object_id=str(row.id),
        after={
            "user": owner.name,
            "name": row.name,
            "prefix": row.prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return CreatedToken(token=row, secret=secret)


def list_tokens(
    ctx: Context, *, principal: Principal, all_users: bool = False
) -> Sequence[ApiToken]:
    if all_users:
        _require(principal, Action.MANAGE_USERS, "list other users' tokens")
        return ctx.repos.tokens.list()
    return ctx.repos.tokens.list(user_id=principal.user_id)


def revoke_token(ctx: Context, *, principal: Principal, token_id: int) -> ApiToken:
    row = ctx.repos.tokens.get(token_id)
    if row is None or (row.user_id != principal.user_id and not principal.can(Action.MANAGE_USERS)):
        raise NotFound(
            f"token {token_id} does not exist", hint="list tokens with `packyard tokens list`"
        )
    if row.revoked_at is None:
        row.revoked_at = ctx.now()
        record(
            ctx,
            actor=principal,
            action="token.revoke",
            object_type="token",
            object_id=str(row.id),
            after={"user": row.user.name, "prefix": row.prefix},
        )
    return row


def bootstrap_admin(ctx: Context) -> str | None:
    """On first start only: create user ``admin`` and return its one-time token."""
    if ctx.repos.users.count() > 0:
        return None
    now = ctx.now()
    user = ctx.repos.users.add(
        User(name="admin", role=Role.ADMIN.value, stages=None, disabled=False, created_at=now)
    )
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    ctx.repos.tokens.add(
        ApiToken(
            user_id=user.id,
            name="initial admin token",
            token_hash=hash_token(secret),
            prefix=secret[:12],
            created_at=now,
        )
    )
    record(
        ctx,
        actor="system",
        action="user.create",
        object_type="user",
        object_id="admin",
        after={"role": "admin", "bootstrap": True},
    )
    return secret


# --- Web passwords and sessions -------------------------------------------------------------

MIN_PASSWORD_LENGTH = 10
#: How long a browser stays signed in (absolute; signing in again starts a new session).
SESSION_LIFETIME = timedelta(days=14)
_WRONG_LOGIN = "wrong user name or password"  # the same for every cause: no user enumeration


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Verified against when the user does not exist, so that both cases take as long.
    return _hasher().hash(secrets.token_urlsafe(16))


def _check_new_password(password: str, *, user: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidRequest(
            f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters",
            hint="a few unrelated words make a long password that is easy to remember",
        )
    if password.strip().lower() == user.lower():
        raise InvalidRequest("the password must not be the user name", hint="pick another one")


def _store_password(ctx: Context, user: User, password: str, *, keep_session: str | None) -> None:
    if user.role == Role.MIRROR.value:
        # A mirror's credential reads /repos and the mirror API only: no web sign-in.
        raise InvalidRequest(
            f"{user.name!r} is a mirror and cannot have a web password",
            hint="sign in as a person; manage mirrors with `packyard mirrors`",
        )
    _check_new_password(password, user=user.name)
    user.password_hash = _hasher().hash(password)
    # A new password ends every other session of the user (a stolen cookie stops working).
    ctx.repos.web_sessions.delete_for_user(
        user.id, keep_hash=hash_token(keep_session) if keep_session else None
    )


def needs_first_password(ctx: Context) -> bool:
    """True while no user has a web password (the first admin sets one with the token)."""
    return not ctx.repos.users.any_password()


def set_first_password(ctx: Context, *, token: str, password: str) -> User:
    """Set a web password for the owner of an API token who has none yet.

    This is how the first admin gets into the web UI (with the one-time token printed on first
    start), and how any user created with the CLI sets a password. Whoever holds the token can
    already act as the user, so this grants nothing more than the token does.
    """
    principal = authenticate_token(ctx, token.strip())
    user = ctx.repos.users.get(principal.user_id) if principal.user_id is not None else None
    if user is None:
        raise NotAuthenticated("the token belongs to no user", hint="use a user's API token")
    if user.password_hash is not None:
        raise InvalidRequest(
            f"user {user.name!r} already has a password",
            hint="sign in with it, or ask an admin to set a new one",
        )
    _store_password(ctx, user, password, keep_session=None)
    record(
        ctx,
        actor=principal,
        action="user.set_password",
        object_type="user",
        object_id=user.name,
        after={"via": "api token"},
    )
    return user


def set_password(
    ctx: Context,
    *,
    principal: Principal,
    name: str,
    password: str,
    current_password: str | None = None,
    keep_session: str | None = None,
) -> User:
    """Change a web password: one's own (giving the current one) or, for admins, anyone's.

    Every session of that user ends except ``keep_session`` (the caller's own browser).
    """
    user = ctx.repos.users.by_name(name)
    own = user is not None and user.id == principal.user_id
    if not own:
        _require(principal, Action.MANAGE_USERS, "set other users' passwords")
    if user is None:
        raise NotFound(
            f"user {name!r} does not exist", hint="list users with `packyard users list`"
        )
    if own and user.password_hash is not None and not _verify(user, current_password or ""):
        raise InvalidRequest("the current password is wrong", hint="type your current password")
    _store_password(ctx, user, password, keep_session=keep_session if own else None)
    record(
        ctx,
        actor=principal,
        action="user.set_password",
        object_type="user",
        object_id=user.name,
        after={"via": "own" if own else "admin"},
    )
    return user


def _verify(user: User, password: str) -> bool:
    if user.password_hash is None:
        return False
    try:
        return _hasher().verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, kw_only=True)
class SignedIn:
    principal: Principal
    #: The session secret for the cookie; only its SHA-256 is stored.
    secret: str
    expires_at: datetime


# Password guessing is slowed by argon2 and stopped by this: after SIGN_IN_MAX_FAILURES wrong
# passwords for one user name within SIGN_IN_WINDOW, sign-in for that name is refused until
# the window has passed (API tokens keep working). Failures are audit events, so the count
# holds across restarts and replicas.
SIGN_IN_WINDOW = timedelta(minutes=15)
SIGN_IN_MAX_FAILURES = 5


def _refuse_sign_in(ctx: Context, name: str, message: str, hint: str) -> NotAuthenticated:
    error = NotAuthenticated(message, hint=hint)
    record(
        ctx,
        actor="anonymous",
        action="user.sign_in.refused",
        object_type="user",
        object_id=name[:64],
        after={"via": "web"},
        reason=message,
    )
    error.keep_transaction = True
    return error


def sign_in(ctx: Context, *, name: str, password: str) -> SignedIn:
    """Check a user name and password and start a web session."""
    key = name.strip().lower()
    _recent, failures = ctx.repos.events.search(
        EventQuery(
            action="user.sign_in.refused",
            object_type="user",
            object_id=key[:64],
            since=ctx.now() - SIGN_IN_WINDOW,
            limit=1,
        )
    )
    if failures >= SIGN_IN_MAX_FAILURES:
        raise _refuse_sign_in(
            ctx,
            key,
            f"too many failed sign-ins for this user name in the last "
            f"{int(SIGN_IN_WINDOW.total_seconds() // 60)} minutes",
            "wait and try again, or ask an admin; API tokens are not affected",
        )
    user = ctx.repos.users.by_name(key)
    if user is None or user.password_hash is None:
        _verify(User(name="", role="viewer", password_hash=_dummy_hash()), password)
        raise _refuse_sign_in(ctx, key, _WRONG_LOGIN, "check both and try again")
    if not _verify(user, password) or user.disabled:
        raise _refuse_sign_in(ctx, key, _WRONG_LOGIN, "check both and try again")
    assert user.password_hash is not None
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = _hasher().hash(password)
    now = ctx.now()
    ctx.repos.web_sessions.delete_expired(now=now)
    secret = secrets.token_urlsafe(32)
    expires_at = now + SESSION_LIFETIME
    ctx.repos.web_sessions.add(
        WebSession(
            token_hash=hash_token(secret),
            user_id=user.id,
            created_at=now,
            expires_at=expires_at,
            last_seen_at=now,
        )
    )
    principal = _principal(user)
    record(
        ctx,
        actor=principal,
        action="user.sign_in",
        object_type="user",
        object_id=user.name,
        after={"via": "web"},
    )
    return SignedIn(principal=principal, secret=secret, expires_at=expires_at)


def authenticate_session(ctx: Context, secret: str) -> Principal:
    """The principal a web session stands for; NotAuthenticated when it ended or never was."""
    row = ctx.repos.web_sessions.by_hash(hash_token(secret))
    if row is None:
        raise NotAuthenticated("you are not signed in", hint="sign in")
    if row.expires_at <= ctx.now():
        raise NotAuthenticated("your session expired", hint="sign in again")
    if row.user.disabled:
        raise NotAuthenticated(f"user {row.user.name!r} is disabled", hint="ask an admin")
    return _principal(row.user)


def session_needs_touch(ctx: Context, *, secret: str) -> bool:
    row = ctx.repos.web_sessions.by_hash(hash_token(secret))
    return row is not None and ctx.now() - row.last_seen_at >= LAST_USED_PRECISION


def touch_session(ctx: Context, *, secret: str) -> None:
    """Record that a session was used (at most once per LAST_USED_PRECISION)."""
    row = ctx.repos.web_sessions.by_hash(hash_token(secret))
    if row is not None and ctx.now() - row.last_seen_at >= LAST_USED_PRECISION:
        row.last_seen_at = ctx.now()


def sign_out(ctx: Context, *, secret: str) -> None:
    row = ctx.repos.web_sessions.by_hash(hash_token(secret))
    if row is not None:
        ctx.repos.web_sessions.delete(row)
