"""Mirrors (Packrat's mirror feature, with a checked credential), server side.

- mirror management: a mirror is a user of role ``mirror`` plus a ``Mirror`` row naming the
  channels it follows; its token is shown once (and limits what it reads of ``/repos``).
- the change feed: the live snapshot of each followed channel and a cursor (a hash of them),
  so a long poll can answer as soon as anything changed.
- the *signed listing* of a snapshot: every file of the channel's published tree
  (services/published_tree.py) with its sha256 and size, signed (detached, armored) with the
  repository signing keys. A mirror checks that signature against keys it pinned, then every
  downloaded file against the listing, so one gpgv call covers every format — Munki catalogs,
  which carry no signature of their own, included. On top, the mirror checks the formats' own
  signatures (InRelease, Release.gpg, repomd.xml.asc, pacman ``.sig`` files, index.json.asc)
  the way clients will (services/mirror_sync.py). The listing also carries the public key
  files the server publishes (``keys/packyard.asc`` and ``.gpg``), so a mirror serves the same
  keys as the server — both keys during a rotation — verified by the same signature.
- heartbeats and the mirror status shown to admins (lag, ok/stale/error, last good sync).

Not handled: the mirror host's side (services/mirror_sync.py), pushes to object stores
(services/s3_push.py), freshness of a replayed feed beyond what the authenticated change feed
says (use HTTPS to the server).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from packyard.domain.auth import Action, Principal, Role
from packyard.domain.errors import (
    InvalidRequest,
    NotAuthorized,
    NotFound,
)
from packyard.services.ports import (
    PublicationStore,
)
from packyard.services.published_tree import LISTING_VERSION, channel_tree

if TYPE_CHECKING:
    # The server side needs the database layer; the mirror client (``sync``) must not pay
    # for importing it on every run, so these are imported where used.
    from packyard.services.context import Context
    from packyard.services.publish import Channel
    from packyard.storage.db.models import Mirror

__all__ = [
    "HEARTBEAT_STALE_AFTER",
    "CreatedMirror",
    "MirrorStatus",
    "SignedListing",
    "change_cursor",
    "create_mirror",
    "followed_channels",
    "issue_mirror_token",
    "list_mirrors",
    "mirror_for",
    "record_heartbeat",
    "revoke_mirror",
    "signed_listing",
    "snapshot_state",
]

#: A mirror whose last heartbeat is older than this, or that has been behind a channel for
#: longer than this, is shown as stale.
HEARTBEAT_STALE_AFTER = timedelta(minutes=10)
_MIRROR_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,56}")


@dataclass(frozen=True, kw_only=True)
class CreatedMirror:
    mirror: Mirror
    user: str
    #: The mirror's API token: shown once, stored only as a hash.
    token: str


def _require(principal: Principal, action: Action, what: str) -> None:
    if not principal.can(action):
        raise NotAuthorized(f"role {principal.role.value!r} may not {what}", hint="ask an admin")


def _mirror(ctx: Context, name: str) -> Mirror:
    mirror = ctx.repos.mirrors.by_name(name)
    if mirror is None:
        raise NotFound(
            f"mirror {name!r} does not exist", hint="list mirrors with `packyard mirrors list`"
        )
    return mirror


def create_mirror(
    ctx: Context, *, principal: Principal, name: str, channels: Sequence[str] | None = None
) -> CreatedMirror:
    """A mirror with its own user (role ``mirror``, named ``mirror-<name>``) and token."""
    from packyard.services.audit import record
    from packyard.services.publish import parse_channel
    from packyard.services.users import create_token, create_user
    from packyard.storage.db.models import Mirror

    _require(principal, Action.MANAGE_USERS, "create mirrors")
    if not _MIRROR_NAME.fullmatch(name):
        raise InvalidRequest(
            f"invalid mirror name {name!r}",
            hint="use 1-57 lower-case letters, digits, '.', '_' or '-'",
        )
    if ctx.repos.mirrors.by_name(name) is not None:
        raise InvalidRequest(f"mirror {name!r} already exists", hint="pick another name")
    followed = sorted({parse_channel(ctx, c.strip()).name for c in channels or () if c.strip()})
    user = create_user(ctx, principal=principal, name=f"mirror-{name}", role=Role.MIRROR)
    mirror = ctx.repos.mirrors.add(
        Mirror(
            name=name,
            user_id=user.id,
            channels=followed or None,
            created_at=ctx.now(),
            last_heartbeat_at=None,
            last_status=None,
        )
    )
    token = create_token(ctx, principal=principal, name=f"mirror {name}", user=user.name)
    record(
        ctx,
        actor=principal,
        action="mirror.create",
        object_type="mirror",
        object_id=name,
        after={"user": user.name, "channels": mirror.channels},
    )
    return CreatedMirror(mirror=mirror, user=user.name, token=token.secret)


def issue_mirror_token(ctx: Context, *, principal: Principal, name: str) -> str:
    """A new token for the mirror; its earlier tokens are revoked."""
    from packyard.services.users import create_token

    _require(principal, Action.MANAGE_USERS, "manage mirrors")
    mirror = _mirror(ctx, name)
    _revoke_tokens(ctx, principal=principal, mirror=mirror)
    user = ctx.repos.users.get(mirror.user_id)
    assert user is not None
    user.disabled = False
    return create_token(ctx, principal=principal, name=f"mirror {name}", user=user.name).secret


def revoke_mirror(ctx: Context, *, principal: Principal, name: str) -> int:
    """Revoke every token of the mirror (it stops syncing at once); returns how many."""
    _require(principal, Action.MANAGE_USERS, "manage mirrors")
    return _revoke_tokens(ctx, principal=principal, mirror=_mirror(ctx, name))


def _revoke_tokens(ctx: Context, *, principal: Principal, mirror: Mirror) -> int:
    from packyard.services.users import revoke_token

    revoked = 0
    for token in ctx.repos.tokens.list(user_id=mirror.user_id):
        if token.revoked_at is None:
            revoke_token(ctx, principal=principal, token_id=token.id)
            revoked += 1
    return revoked


def mirror_for(ctx: Context, principal: Principal) -> Mirror:
    """The mirror a principal authenticates as; NotAuthorized for any other principal."""
    mirror = (
        ctx.repos.mirrors.by_user(principal.user_id)
        if principal.role is Role.MIRROR and principal.user_id is not None
        else None
    )
    if mirror is None:
        raise NotAuthorized(
            "only a mirror's own token may use the mirror API",
            hint="create a mirror with `packyard mirrors create NAME` and use its token",
        )
    return mirror


def followed_channels(ctx: Context, mirror: Mirror) -> list[Channel]:
    """The channels a mirror copies (every channel when it names none)."""
    from packyard.services.publish import channels, parse_channel

    if not mirror.channels:
        return channels(ctx)
    out = []
    for name in mirror.channels:
        with contextlib.suppress(NotFound):  # a stage removed from the configuration since
            out.append(parse_channel(ctx, name))
    return out


def snapshot_state(store: PublicationStore, targets: Iterable[Channel]) -> dict[str, str | None]:
    """The live snapshot of each channel (read from the publication store: no database)."""
    return {c.name: store.current(c.format, c.stage) for c in targets}


def change_cursor(state: Mapping[str, str | None]) -> str:
    """A cursor naming one combination of live snapshots (stable across servers/restarts)."""
    data = json.dumps(dict(sorted(state.items())), separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:24]


@dataclass(frozen=True, kw_only=True)
class SignedListing:
    listing: bytes
    signature: bytes


_listing_cache: dict[tuple[str, str, tuple[str, ...]], SignedListing] = {}
_listing_lock = threading.Lock()


def signed_listing(
    ctx: Context, *, principal: Principal, channel: str, snapshot: str
) -> SignedListing:
    """The signed file listing of a kept snapshot of a channel the mirror follows."""
    from packyard.services.keys import signing_keys
    from packyard.services.publish import parse_channel

    mirror = mirror_for(ctx, principal)
    target = parse_channel(ctx, channel)
    if target.name not in {c.name for c in followed_channels(ctx, mirror)}:
        raise NotAuthorized(
            f"mirror {mirror.name!r} does not follow {target.name}",
            hint="an admin can create a mirror for that channel",
        )
    store = ctx.publications
    assert store is not None
    if snapshot not in store.snapshots(target.format, target.stage):
        raise NotFound(
            f"snapshot {snapshot!r} of {target.name} is not kept",
            hint="ask the change feed for the live snapshot",
        )
    keys = tuple(signing_keys(ctx))
    cache_key = (target.name, snapshot, keys)
    with _listing_lock:
        cached = _listing_cache.get(cache_key)
    if cached is not None:
        return cached
    if ctx.signer is None or not keys:
        raise NotFound("no signing key is active", hint="the server creates one on start")
    tree = channel_tree(ctx, target, snapshot=snapshot)
    # The key files as /repos/keys/ serves them now (they depend only on the signing keys,
    # part of the cache key); older mirrors ignore the field.
    key_files = {
        "keys/packyard.asc": ctx.signer.public_key(list(keys)),
        "keys/packyard.gpg": ctx.signer.public_keyring_binary(list(keys)),
    }
    listing = json.dumps(
        {
            "version": LISTING_VERSION,
            "channel": target.name,
            "snapshot": snapshot,
            "files": {
                f.path: {"sha256": f.sha256, "size": f.size, "kind": f.kind} for f in tree.values()
            },
            "keys": {path: base64.b64encode(data).decode() for path, data in key_files.items()},
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    signature = ctx.signer.detach_sign(listing, keys=list(keys), armor=True)
    signed = SignedListing(listing=listing, signature=signature)
    with _listing_lock:
        if len(_listing_cache) > 256:
            _listing_cache.clear()
        _listing_cache[cache_key] = signed
    return signed


def record_heartbeat(
    ctx: Context,
    *,
    principal: Principal,
    synced: Mapping[str, str | None],
    errors: Sequence[str],
    version: str,
    stats: Mapping[str, int] | None = None,
) -> Mirror:
    """Store what a mirror reports. Not an audit event: it comes every few seconds and
    changes nothing but the mirror's own status. A heartbeat without errors reports a good
    sync: its time is kept apart from the last heartbeat's, which failed syncs send too."""
    mirror = mirror_for(ctx, principal)
    now = ctx.now()
    previous = mirror.last_status or {}
    mirror.last_heartbeat_at = now
    mirror.last_status = {
        "synced": {str(k): (str(v) if v else None) for k, v in list(synced.items())[:200]},
        "errors": [str(e)[:2000] for e in errors][:20],
        "version": version[:64],
        "stats": {str(k): int(v) for k, v in (stats or {}).items()},
        "synced_at": previous.get("synced_at") if errors else now.isoformat(),
    }
    return mirror


@dataclass(frozen=True, kw_only=True)
class MirrorStatus:
    name: str
    user: str
    channels: list[str] | None
    created_at: datetime
    last_heartbeat_at: datetime | None
    #: When the mirror last reported a sync without errors (None: never).
    last_sync_at: datetime | None
    #: ok, stale, error or never (no heartbeat yet)
    status: str
    #: Channels where the mirror's snapshot is not the live one.
    behind: list[str]
    #: Seconds since the oldest live snapshot the mirror lacks was published (0 when current).
    lag_seconds: float
    synced: dict[str, str | None]
    current: dict[str, str | None]
    errors: list[str]
    version: str | None
    stats: dict[str, int] = field(default_factory=dict)


def list_mirrors(ctx: Context, *, principal: Principal) -> list[MirrorStatus]:
    """Every mirror with its last heartbeat, lag and status (for admins and maintainers)."""
    _require(principal, Action.PUBLISH, "see mirrors")
    now = ctx.now()
    live = {p.channel: p for p in ctx.repos.publishing.publications(status="current", limit=10_000)}
    out = []
    for mirror in ctx.repos.mirrors.list():
        user = ctx.repos.users.get(mirror.user_id)
        status_doc = mirror.last_status or {}
        synced: dict[str, str | None] = dict(status_doc.get("synced") or {})
        current = {
            c.name: (live[c.name].snapshot if c.name in live else None)
            for c in followed_channels(ctx, mirror)
        }
        behind = sorted(name for name, snap in current.items() if snap and synced.get(name) != snap)
        lag = max(((now - live[name].created_at).total_seconds() for name in behind), default=0.0)
        errors = list(status_doc.get("errors") or [])
        if mirror.last_heartbeat_at is None:
            state = "never"
        elif errors:
            state = "error"
        elif (
            now - mirror.last_heartbeat_at > HEARTBEAT_STALE_AFTER
            or lag > HEARTBEAT_STALE_AFTER.total_seconds()
        ):
            state = "stale"
        else:
            state = "ok"
        out.append(
            MirrorStatus(
                name=mirror.name,
                user=user.name if user else "?",
                channels=list(mirror.channels) if mirror.channels else None,
                created_at=mirror.created_at,
                last_heartbeat_at=mirror.last_heartbeat_at,
                last_sync_at=_parse_time(status_doc.get("synced_at")),
                status=state,
                behind=behind,
                lag_seconds=max(lag, 0.0),
                synced=synced,
                current=current,
                errors=errors,
                version=status_doc.get("version"),
                stats=dict(status_doc.get("stats") or {}),
            )
        )
    return out


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
