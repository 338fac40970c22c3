"""Principals, roles and what each role may do.

Pure rules only: how a token is looked up or a password checked lives in services/storage.
Device and mirror principals arrive with the fleet and publishing capabilities; they get their
own kinds here so that a device credential can never act as a user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

__all__ = ["Action", "Principal", "PrincipalKind", "Role", "role_allows"]


class Role(StrEnum):
    """User roles, from most to least powerful."""

    ADMIN = "admin"
    MAINTAINER = "maintainer"
    UPLOADER = "uploader"
    VIEWER = "viewer"
    # Not a person: a downstream mirror that may only read publications and report heartbeats.
    MIRROR = "mirror"


class PrincipalKind(StrEnum):
    USER = "user"
    SYSTEM = "system"


class Action(StrEnum):
    """Everything a principal can be allowed to do through the API or CLI."""

    READ = "read"
    UPLOAD = "upload"
    PROMOTE = "promote"  # promote, demote, hold, release (per-stage checks apply on top)
    RETIRE = "retire"  # fail, deprecate
    MANAGE_PACKAGES = "manage_packages"  # assign pipelines
    MANAGE_USERS = "manage_users"  # users and other people's tokens
    READ_AUDIT = "read_audit"
    OWN_TOKENS = "own_tokens"  # create/list/revoke one's own tokens
    PUBLISH = "publish"  # force a publish, roll a channel back, manage signing keys
    MIRROR_SYNC = "mirror_sync"  # read publications and report heartbeats (mirrors)


_ROLE_ACTIONS: dict[Role, frozenset[Action]] = {
    Role.MIRROR: frozenset({Action.MIRROR_SYNC}),
    Role.VIEWER: frozenset({Action.READ, Action.OWN_TOKENS}),
    Role.UPLOADER: frozenset({Action.READ, Action.UPLOAD, Action.OWN_TOKENS}),
    Role.MAINTAINER: frozenset(
        {
            Action.READ,
            Action.UPLOAD,
            Action.PROMOTE,
            Action.RETIRE,
            Action.MANAGE_PACKAGES,
            Action.READ_AUDIT,
            Action.OWN_TOKENS,
            Action.PUBLISH,
        }
    ),
    Role.ADMIN: frozenset(Action),
}


def role_allows(role: Role, action: Action) -> bool:
    """Whether ``role`` may perform ``action`` at all (stage permissions come on top)."""
    return action in _ROLE_ACTIONS[role]


@dataclass(frozen=True, kw_only=True)
class Principal:
    """Who is acting.

    Attributes:
        name: User name, or ``system:<job>`` for Packyard's own background work.
        role: The user's role.
        stages: Stages this principal may promote into; None means every stage its role and
            the pipeline allow.
        user_id: Database id of the user, None for system principals.
        token_id: Id of the API token used, None for sessions and system principals.
    """

    name: str
    role: Role
    kind: PrincipalKind = PrincipalKind.USER
    stages: frozenset[str] | None = None
    user_id: int | None = None
    token_id: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def can(self, action: Action) -> bool:
        return role_allows(self.role, action)


SYSTEM = Principal(name="system", role=Role.ADMIN, kind=PrincipalKind.SYSTEM)
