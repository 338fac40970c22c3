"""Downstream copies of publications: mirrors (Packrat's mirror feature, with a checked
credential) and pushes to S3-compatible object stores.

Both copy the *published tree*: the files a client fetches under ``/repos/`` — each channel's
index files from its live snapshot and the package files its manifest maps to blobs — with
the same relative paths, so ``<mirror>/repos/apt`` or ``http://bucket-host/<prefix>/repos/apt``
works as a client's base URL exactly like the server's.

Server side (with a ``Context``):

- mirror management: a mirror is a user of role ``mirror`` plus a ``Mirror`` row naming the
  channels it follows; its token is shown once.
- the change feed: the live snapshot of each followed channel and a cursor (a hash of them),
  so a long poll can answer as soon as anything changed.
- the *signed listing* of a snapshot: every file of the channel's tree with its sha256 and
  size, signed (detached, armored) with the repository signing keys. A mirror checks that
  signature against keys it pinned, then every downloaded file against the listing, so one
  gpgv call covers every format — Munki catalogs, which carry no signature of their own,
  included. On top, the mirror checks the formats' own signatures (InRelease, Release.gpg,
  repomd.xml.asc, pacman ``.sig`` files, index.json.asc) the way clients will.
- heartbeats and the mirror status shown to admins (lag, ok/stale/error).
- ``push``: copies channels to an ``ObjectStore`` uploading only objects whose content
  changed (a state object in the bucket remembers what was uploaded), package files first and
  the entry-point indexes (InRelease, repomd.xml, pacman .db, index.json) last, and deleting
  objects no longer published only after the new indexes are up. apt by-hash files of the
  previous push are kept one more round for clients in the middle of an update.

Client side (no database): ``sync`` makes a local directory a verified copy of the channels
a mirror follows; ``run_daemon`` keeps it so with long polls and backoff. Transport and
signature checking are ports (``MirrorSource``, ``SignatureVerifier``) the CLI provides.

Not handled: serving the mirror's directory (any static web server does), freshness of a
replayed feed beyond what the authenticated change feed says (use HTTPS to the server), and
concurrent pushes to one bucket from several hosts (a per-target lock covers one process).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import io
import json
import os
import random
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from packyard import __version__
from packyard.domain.auth import Action, Principal, Role
from packyard.domain.errors import (
    InvalidRequest,
    NotAuthenticated,
    NotAuthorized,
    NotFound,
    PackyardError,
)
from packyard.services.ports import (
    MirrorSource,
    ObjectStore,
    PublicationStore,
    SignatureVerifier,
)

if TYPE_CHECKING:
    # The server side needs the database layer; the mirror client (``sync``) must not pay
    # for importing it on every run, so these are imported where used.
    from packyard.services.context import Context
    from packyard.services.publish import Channel, UnitOfWork
    from packyard.storage.db.models import Mirror

__all__ = [
    "HEARTBEAT_STALE_AFTER",
    "STATE_DIR",
    "CreatedMirror",
    "MirrorIntegrityError",
    "MirrorStatus",
    "MirrorUnavailable",
    "PushResult",
    "SignedListing",
    "SyncProgress",
    "SyncReport",
    "TreeFile",
    "backoff_delay",
    "change_cursor",
    "channel_tree",
    "create_mirror",
    "followed_channels",
    "issue_mirror_token",
    "list_mirrors",
    "mirror_for",
    "push",
    "push_configured",
    "record_heartbeat",
    "revoke_mirror",
    "run_daemon",
    "signed_listing",
    "snapshot_state",
    "sync",
    "sync_and_report",
    "upload_order",
]

#: A mirror whose last heartbeat is older than this, or that has been behind a channel for
#: longer than this, is shown as stale.
HEARTBEAT_STALE_AFTER = timedelta(minutes=10)
#: The mirror's own bookkeeping inside its directory (state, pinned keys, staging area).
STATE_DIR = ".packyard-mirror"
#: The object in a push target (below its prefix) that remembers what was uploaded.
PUSH_STATE_KEY = ".packyard/push-state.json"
LISTING_VERSION = 1
_MIRROR_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,56}")
_KEY_FILES = ("keys/packyard.asc", "keys/packyard.gpg")


class MirrorIntegrityError(PackyardError):
    """A downloaded file or signature did not verify; nothing was changed."""

    code = "integrity"


class MirrorUnavailable(PackyardError):
    """The upstream server (or a push target) could not be reached or failed; try again."""

    code = "unreachable"


# --------------------------------------------------------------------------- the published tree


@dataclass(frozen=True, kw_only=True)
class TreeFile:
    """One file of a channel's published tree.

    ``path`` is relative to ``/repos/``; exactly one of ``file`` (a snapshot file), ``blob``
    (a blob-store hash) or ``inline`` (small bytes from the manifest) says where it comes from.
    """

    path: str
    sha256: str
    size: int
    kind: str  # "pool" (package files and their signatures) or "index"
    file: Path | None = None
    blob: str | None = None
    inline: bytes | None = None


def _index_urls(ctx: Context, channel: Channel, rel: str) -> list[str]:
    if channel.format == "apt":
        return [f"apt/{rel}"]
    if channel.format == "munki":
        # The resolver serves catalogs/<stage> and configured aliases of the stage.
        names = [channel.stage] + [
            alias
            for alias, target in ctx.settings.publish.munki.catalogs.items()
            if target == channel.stage and alias not in ctx.settings.stage_names()
        ]
        return [f"munki/catalogs/{name}" for name in names] if rel.startswith("catalogs/") else []
    return [f"{channel.format}/{channel.stage}/{rel}"]


def _pool_url(channel: Channel, key: str) -> str:
    if channel.format == "apt":
        return f"apt/{key}"
    if channel.format == "munki":
        return f"munki/pkgs/{key}"
    return f"{channel.format}/{channel.stage}/{key}"


def _digest_file(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def channel_tree(
    ctx: Context, channel: Channel, *, snapshot: str | None = None
) -> dict[str, TreeFile]:
    """The files of ``channel``'s live (or given) snapshot by their path below ``/repos/``."""
    store = ctx.publications
    assert store is not None
    snapshot = snapshot or store.current(channel.format, channel.stage)
    if snapshot is None:
        return {}
    manifest = store.manifest(channel.format, channel.stage, snapshot)
    if manifest is None:
        raise NotFound(
            f"snapshot {snapshot} of {channel.name} is not kept",
            hint="list kept snapshots with `packyard publications list --history 10`",
        )
    out: dict[str, TreeFile] = {}
    for rel in store.files(channel.format, channel.stage, snapshot):
        path = store.file(channel.format, channel.stage, rel, snapshot=snapshot)
        if path is None:
            continue
        sha, size = _digest_file(path)
        for url in _index_urls(ctx, channel, rel):
            out[url] = TreeFile(path=url, sha256=sha, size=size, kind="index", file=path)
    for key, entry in sorted((manifest.get("pool") or {}).items()):
        url = _pool_url(channel, key)
        if "inline" in entry:
            data = base64.b64decode(entry["inline"])
            out[url] = TreeFile(
                path=url,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
                kind="pool",
                inline=data,
            )
        else:
            out[url] = TreeFile(
                path=url,
                sha256=str(entry["sha256"]),
                size=int(entry["size"]),
                kind="pool",
                blob=str(entry["sha256"]),
            )
    return out


def _is_entry_point(path: str) -> bool:
    """Indexes a client fetches first, naming the others: written last."""
    name = PurePosixPath(path).name
    return (
        name in {"InRelease", "Release", "Release.gpg"}
        or name.startswith("repomd.xml")
        or name.startswith("index.json")
        or "/catalogs/" in f"/{path}"
        or re.search(r"\.(db|files)(\.tar\.\w+)?(\.sig)?$", name) is not None
    )


def upload_order(path: str, kind: str) -> tuple[int, int, str]:
    """Sort key: package files, then by-hash indexes, then other indexes, then entry points
    (signatures before what they sign, InRelease very last) — so a client never sees an index
    naming a file that is not there yet."""
    if kind == "pool":
        rank = 0
    elif "/by-hash/" in path:
        rank = 1
    elif not _is_entry_point(path):
        rank = 2
    else:
        rank = 3
    name = PurePosixPath(path).name
    last = 2 if name == "InRelease" else 0 if name.endswith((".sig", ".asc", ".gpg", ".key")) else 1
    return (rank, last, path)


# --------------------------------------------------------------------------- mirrors (server)


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
    tree = channel_tree(ctx, target, snapshot=snapshot)
    listing = json.dumps(
        {
            "version": LISTING_VERSION,
            "channel": target.name,
            "snapshot": snapshot,
            "files": {
                f.path: {"sha256": f.sha256, "size": f.size, "kind": f.kind} for f in tree.values()
            },
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    if ctx.signer is None or not keys:
        raise NotFound("no signing key is active", hint="the server creates one on start")
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
    changes nothing but the mirror's own status."""
    mirror = mirror_for(ctx, principal)
    mirror.last_heartbeat_at = ctx.now()
    mirror.last_status = {
        "synced": {str(k): (str(v) if v else None) for k, v in list(synced.items())[:200]},
        "errors": [str(e)[:500] for e in errors][:20],
        "version": version[:64],
        "stats": {str(k): int(v) for k, v in (stats or {}).items()},
    }
    return mirror


@dataclass(frozen=True, kw_only=True)
class MirrorStatus:
    name: str
    user: str
    channels: list[str] | None
    created_at: datetime
    last_heartbeat_at: datetime | None
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


# --------------------------------------------------------------------------- S3 push


@dataclass(frozen=True, kw_only=True)
class PushResult:
    url: str
    channels: list[str]
    #: Keys (below the prefix) in upload order.
    uploaded: list[str]
    deleted: list[str]
    unchanged: int


_push_locks: dict[str, threading.Lock] = {}
_push_locks_guard = threading.Lock()


def _push_lock(url: str) -> threading.Lock:
    with _push_locks_guard:
        return _push_locks.setdefault(url, threading.Lock())


def _load_push_state(store: ObjectStore) -> dict[str, Any]:
    raw = store.get(PUSH_STATE_KEY)
    empty: dict[str, Any] = {"version": 1, "objects": {}, "channels": {}, "live": []}
    if raw is None:
        return empty
    try:
        state: dict[str, Any] = json.loads(raw)
        if not isinstance(state.get("objects"), dict) or not isinstance(
            state.get("channels"), dict
        ):
            raise ValueError("not a push state")
    except ValueError:
        # Unreadable state: upload everything again (deleting nothing we cannot name).
        return empty
    return state


def _save_push_state(store: ObjectStore, state: dict[str, Any]) -> None:
    data = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
    store.put(
        PUSH_STATE_KEY,
        io.BytesIO(data),
        size=len(data),
        content_type="application/json",
        cache_control="no-cache",
    )


def _key_files(ctx: Context) -> dict[str, TreeFile]:
    from packyard.services.keys import signing_keys

    if ctx.signer is None:
        return {}
    keys = signing_keys(ctx)
    if not keys:
        return {}
    out = {}
    for path, data in (
        ("keys/packyard.asc", ctx.signer.public_key(keys)),
        ("keys/packyard.gpg", ctx.signer.public_keyring_binary(keys)),
    ):
        out[path] = TreeFile(
            path=path,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            kind="index",
            inline=data,
        )
    return out


def push(
    uow: UnitOfWork,
    *,
    store: ObjectStore,
    stages: Sequence[str] | None = None,
    formats: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    full: bool = False,
    log: Callable[[str], None] | None = None,
    actor: str = "system:push",
) -> PushResult:
    """Copy the live publications of the chosen channels to ``store``.

    Channels: ``only`` (names), else those of ``stages``/``formats`` (default all). Channels
    never published are left as they are in the target. ``full`` uploads every object again.
    """
    from packyard.services.audit import record
    from packyard.services.publish import channels, parse_channel

    say = log or (lambda _line: None)
    with uow() as ctx:
        targets = (
            [parse_channel(ctx, name) for name in only]
            if only is not None
            else channels(ctx, stages=stages, formats=formats)
        )
        trees = {c.name: channel_tree(ctx, c) for c in targets}
        trees = {name: tree for name, tree in trees.items() if tree}
        keys = _key_files(ctx)
        blobs = ctx.blobs
    with _push_lock(store.url):
        state = _load_push_state(store)
        old_objects: dict[str, str] = dict(state["objects"])
        old_live = set(state.get("live") or [])
        channel_keys: dict[str, list[str]] = {
            k: list(v) for k, v in state["channels"].items() if isinstance(v, list)
        }
        wanted: dict[str, TreeFile] = dict(keys)
        for name, tree in trees.items():
            for path, f in tree.items():
                other = wanted.get(path)
                if other is not None and other.sha256 != f.sha256:
                    raise InvalidRequest(
                        f"{path} differs between channels being pushed",
                        hint="publish again; if it persists, report a bug",
                    )
                wanted[path] = f
            channel_keys[name] = sorted(tree)
        uploads = sorted(
            (f for f in wanted.values() if full or old_objects.get(_repo_key(f.path)) != f.sha256),
            key=lambda f: upload_order(f.path, f.kind),
        )
        uploaded: list[str] = []
        # Upload group by group (package files, by-hash, indexes, entry points): a group
        # starts only when the one before is complete.
        for _rank, group in _groups(uploads):
            parallel = 4 if _rank < 2 else 1
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                for key in pool.map(lambda f: _upload(store, blobs, f), group):
                    uploaded.append(key)
        live = {_repo_key(p) for paths in channel_keys.values() for p in paths} | {
            _repo_key(p) for p in keys
        }
        objects = dict(old_objects)
        objects.update({_repo_key(f.path): f.sha256 for f in wanted.values()})
        state = {"version": 1, "objects": objects, "channels": channel_keys, "live": sorted(live)}
        _save_push_state(store, state)
        # Keep by-hash files that the previous push served (clients mid-update use them).
        doomed = sorted(
            key
            for key in objects
            if key not in live and not ("/by-hash/" in key and key in old_live)
        )
        if doomed:
            store.delete(doomed)
            for key in doomed:
                objects.pop(key, None)
            _save_push_state(store, state)
    unchanged = len(wanted) - len(uploaded)
    say(
        f"{store.url}: {len(uploaded)} uploaded, {unchanged} unchanged, {len(doomed)} deleted "
        f"({', '.join(sorted(trees)) or 'no published channel'})"
    )
    with uow(write=True) as ctx:
        record(
            ctx,
            actor=actor,
            action="publication.push",
            object_type="push_target",
            object_id=store.url,
            after={
                "channels": sorted(trees),
                "uploaded": len(uploaded),
                "deleted": len(doomed),
            },
        )
    return PushResult(
        url=store.url,
        channels=sorted(trees),
        uploaded=uploaded,
        deleted=doomed,
        unchanged=unchanged,
    )


def _repo_key(path: str) -> str:
    return f"repos/{path}"


def _groups(files: list[TreeFile]) -> Iterator[tuple[int, list[TreeFile]]]:
    current: list[TreeFile] = []
    rank = -1
    for f in files:
        r = upload_order(f.path, f.kind)[0]
        if r != rank and current:
            yield rank, current
            current = []
        rank = r
        current.append(f)
    if current:
        yield rank, current


def _upload(store: ObjectStore, blobs: Any, f: TreeFile) -> str:
    from packyard.services.repos import content_type_for

    key = _repo_key(f.path)
    immutable = f.kind == "pool" or "/by-hash/" in f.path
    content_type = "application/pgp-keys" if f.path in _KEY_FILES else content_type_for(f.path)
    cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
    with _open_tree_file(blobs, f) as body:
        store.put(key, body, size=f.size, content_type=content_type, cache_control=cache)
    return key


@contextlib.contextmanager
def _open_tree_file(blobs: Any, f: TreeFile) -> Iterator[BinaryIO]:
    if f.inline is not None:
        yield io.BytesIO(f.inline)
    elif f.file is not None:
        with f.file.open("rb") as handle:
            yield handle
    else:
        assert f.blob is not None
        with blobs.open(f.blob) as handle:
            yield handle


def push_configured(
    uow: UnitOfWork,
    *,
    published: Sequence[str],
    open_store: Callable[[str], ObjectStore],
    log: Callable[[str], None] | None = None,
) -> list[PushResult]:
    """After a publication: push the ``published`` channels to every configured target that
    takes them (``publish.s3.targets``). Raises after trying every target if one failed."""
    with uow() as ctx:
        targets = list(ctx.settings.publish.s3.targets)
    results: list[PushResult] = []
    failures: list[str] = []
    for target in targets:
        names = [c for c in published if any(fnmatchcase(c, pat) for pat in target.channels)]
        if not names:
            continue
        try:
            store = open_store(target.url)
            try:
                results.append(push(uow, store=store, only=names, log=log))
            finally:
                store.close()
        except PackyardError as exc:
            failures.append(f"{target.url}: {exc}")
    if failures:
        raise MirrorUnavailable(
            "published, but pushing failed: " + "; ".join(failures),
            hint="the next publication retries; or run `packyard publish --to URL` now",
        )
    return results


# --------------------------------------------------------------------------- mirror sync (client)


class SyncProgress(Protocol):
    """Progress of one sync's downloads (the CLI shows a Rich progress bar)."""

    def begin(self, *, files: int, total_bytes: int) -> None: ...

    def advance(self, n: int) -> None: ...

    def end(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class SyncReport:
    cursor: str
    synced: dict[str, str | None]
    downloaded: int
    downloaded_bytes: int
    deleted: int
    files: int
    changed: bool
    signers: list[str]
    pinned: bool


@dataclass(frozen=True, kw_only=True)
class _Wanted:
    path: str
    sha256: str
    size: int
    kind: str


def _safe_tree_path(path: str) -> PurePosixPath:
    parts = PurePosixPath(path).parts
    if (
        not parts
        or path.startswith("/")
        or "\\" in path
        or any(p in {"", ".", ".."} or "\x00" in p for p in parts)
    ):
        raise MirrorIntegrityError(
            f"the listing names an unsafe path {path!r}", hint="the server or a proxy is broken"
        )
    return PurePosixPath(*parts)


def _channel_prefix(channel: str) -> str:
    fmt, _, stage = channel.partition("/")
    return f"{fmt}/" if fmt in ("apt", "munki") else f"{fmt}/{stage}/"


def _parse_listing(raw: bytes, *, channel: str, snapshot: str) -> dict[str, _Wanted]:
    try:
        doc = json.loads(raw)
        if doc.get("version") != LISTING_VERSION:
            raise ValueError(f"listing version {doc.get('version')!r}")
        if doc.get("channel") != channel or doc.get("snapshot") != snapshot:
            raise MirrorIntegrityError(
                f"the signed listing is for {doc.get('channel')} {doc.get('snapshot')}, "
                f"not {channel} {snapshot}",
                hint="a proxy replayed another listing; sync again over a trusted connection",
            )
        files: dict[str, _Wanted] = {}
        prefix = _channel_prefix(channel)
        for path, entry in doc["files"].items():
            _safe_tree_path(path)
            if not path.startswith(prefix):
                raise MirrorIntegrityError(
                    f"the listing of {channel} names {path!r} outside {prefix}",
                    hint="the server or a proxy is broken",
                )
            sha, size, kind = entry["sha256"], entry["size"], entry["kind"]
            if not re.fullmatch(r"[0-9a-f]{64}", sha) or not isinstance(size, int) or size < 0:
                raise ValueError(f"bad entry for {path}")
            files[path] = _Wanted(path=path, sha256=sha, size=size, kind=str(kind))
        return files
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MirrorIntegrityError(
            f"the listing of {channel} {snapshot} is malformed: {exc}",
            hint="the server or a proxy is broken",
        ) from exc


class _MirrorDir:
    """The mirror directory: ``repos/`` (served) and ``.packyard-mirror/`` (bookkeeping)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tree = root / "repos"
        self.meta = root / STATE_DIR
        self.state_file = self.meta / "state.json"
        self.keyring_file = self.meta / "keyring.asc"

    def load_state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_bytes())
            return state
        except FileNotFoundError:
            return {"version": 1, "server": None, "cursor": None, "channels": {}, "retained": {}}
        except ValueError as exc:
            raise InvalidRequest(
                f"{self.state_file} is not readable: {exc}",
                hint="remove it; the next sync re-checks every file",
            ) from exc

    def save_state(self, state: dict[str, Any]) -> None:
        _atomic_write(self.state_file, json.dumps(state, indent=1, sort_keys=True).encode())

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        self.meta.mkdir(parents=True, exist_ok=True)
        with (self.meta / "lock").open("a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InvalidRequest(
                    f"another sync is running in {self.root}",
                    hint="wait for it, or stop the other `packyard mirror sync`",
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _local_matches(path: Path, want: _Wanted) -> bool:
    try:
        if path.stat().st_size != want.size:
            return False
    except FileNotFoundError:
        return False
    return _digest_file(path)[0] == want.sha256


class _HashingSink:
    """Writes a download to a file while hashing and counting it."""

    def __init__(self, handle: BinaryIO, *, limit: int, progress: Callable[[int], None]) -> None:
        self.handle = handle
        self.hash = hashlib.sha256()
        self.size = 0
        self.limit = limit
        self.progress = progress

    def write(self, chunk: bytes) -> int:
        self.size += len(chunk)
        if self.size > self.limit:
            raise MirrorIntegrityError(
                "a download is larger than the signed listing says",
                hint="the server or a proxy is broken",
            )
        self.hash.update(chunk)
        self.handle.write(chunk)
        self.progress(len(chunk))
        return len(chunk)


def _signed_pairs(paths: Iterable[str]) -> Iterator[tuple[str, str | None]]:
    """(signature file, signed file) for every detached signature in a tree; InRelease is
    clearsigned (signed file None)."""
    names = set(paths)
    for path in sorted(names):
        name = PurePosixPath(path).name
        if name == "InRelease":
            yield path, None
        elif name == "Release.gpg":
            signed = path[: -len(".gpg")]
            if signed in names:
                yield path, signed
        elif name.endswith((".sig", ".asc")):
            signed = path[: -len(".sig")]
            if signed in names:
                yield path, signed


def sync(
    source: MirrorSource,
    verifier: SignatureVerifier,
    dest: Path,
    *,
    server: str,
    keyring: bytes | None = None,
    only: Sequence[str] | None = None,
    since: str | None = None,
    wait: float = 0,
    progress: SyncProgress | None = None,
    log: Callable[[str], None] | None = None,
) -> SyncReport:
    """Make ``dest`` a verified copy of the channels the mirror follows (or ``only`` those).

    Keys: ``keyring`` (armored or binary public keys) replaces the pinned ones; without one,
    the keys pinned at the first sync are used, and the first sync pins the server's. Every
    file is downloaded into a staging area and checked against the signed listing, and every
    signature against the pinned keys, before anything in the tree changes; package files
    move into place first and entry-point indexes last; then files no longer published are
    deleted. On any error the tree stays as it was.
    """
    say = log or (lambda _line: None)
    where = _MirrorDir(dest)
    with where.lock():
        # The server's URL may change (a proxy, a new host name): the pinned keys, not the
        # URL, say whose publications these are.
        state = where.load_state()
        pinned = False
        previous_keys = where.keyring_file.read_bytes() if where.keyring_file.is_file() else None
        if keyring is not None:
            public_keys = keyring
        elif previous_keys is not None:
            public_keys = previous_keys
        else:
            public_keys = source.public_keys()
            pinned = True
        # New keys: check every listing and signature again, not only what changed.
        recheck = public_keys != previous_keys
        feed = source.changes(since=since, wait=wait)
        cursor, live = str(feed["cursor"]), dict(feed["channels"])
        if only:
            unknown = sorted(set(only) - set(live))
            if unknown:
                raise NotFound(
                    f"this mirror does not follow {', '.join(unknown)}",
                    hint=f"it follows {', '.join(sorted(live)) or 'nothing'}",
                )
            live = {name: snap for name, snap in live.items() if name in only}
        old_channels: dict[str, Any] = dict(state.get("channels") or {})
        wanted: dict[str, _Wanted] = {}
        per_channel: dict[str, dict[str, Any]] = {}
        signers: set[str] = set()
        for name, snapshot in sorted(live.items()):
            if snapshot is None:
                per_channel[name] = {"snapshot": None, "files": {}}
                continue
            previous = old_channels.get(name) or {}
            if previous.get("snapshot") == snapshot and not recheck:
                files = {
                    p: _Wanted(path=p, sha256=e["sha256"], size=e["size"], kind=e["kind"])
                    for p, e in previous["files"].items()
                }
            else:
                listing, signature = source.listing(channel=name, snapshot=snapshot)
                signers.update(_verify(verifier, public_keys, listing, signature, what=name))
                files = _parse_listing(listing, channel=name, snapshot=snapshot)
            for path, want in files.items():
                other = wanted.get(path)
                if other is not None and other.sha256 != want.sha256:
                    raise MirrorIntegrityError(
                        f"channels disagree about {path}", hint="sync again in a minute"
                    )
                wanted[path] = want
            per_channel[name] = {
                "snapshot": snapshot,
                "files": {
                    p: {"sha256": w.sha256, "size": w.size, "kind": w.kind}
                    for p, w in files.items()
                },
            }
        known: dict[str, str] = {}
        for ch in old_channels.values():
            for p, e in (ch.get("files") or {}).items():
                known[p] = e["sha256"]
        missing = [
            w
            for path, w in sorted(wanted.items())
            if not (
                known.get(path) == w.sha256
                and (where.tree / path).is_file()
                and (where.tree / path).stat().st_size == w.size
            )
            and not _local_matches(where.tree / path, w)
        ]
        staging = where.meta / f"staging-{secrets.token_hex(4)}"
        try:
            fetched = _download(source, staging, missing, progress=progress)
            signers.update(
                _verify_formats(
                    verifier,
                    public_keys,
                    where.tree,
                    staging,
                    wanted,
                    set(wanted) if recheck else fetched,
                )
            )
            # Everything verified: move into place, package files first, entry points last.
            for want in sorted(missing, key=lambda w: upload_order(w.path, w.kind)):
                target = where.tree / want.path
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / want.path, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if pinned or keyring is not None:
            _atomic_write(where.keyring_file, public_keys)
        _publish_keyring(where, public_keys)
        # Delete what is no longer published; apt by-hash files of the previous sync stay one
        # more round for clients in the middle of an update.
        retained_before: dict[str, str] = dict(state.get("retained") or {})
        retained = {p: sha for p, sha in known.items() if p not in wanted and "/by-hash/" in p}
        doomed = (set(known) | set(retained_before)) - set(wanted) - set(retained)
        for path in sorted(doomed):
            (where.tree / _safe_tree_path(path)).unlink(missing_ok=True)
        _prune_empty_dirs(where.tree, doomed)
        state = {
            "version": 1,
            "server": server,
            "cursor": cursor,
            "channels": per_channel,
            "retained": retained,
        }
        where.save_state(state)
    changed = bool(missing or doomed)
    if changed:
        say(f"{dest}: {len(missing)} files downloaded, {len(doomed)} deleted")
    return SyncReport(
        cursor=cursor,
        synced={name: ch["snapshot"] for name, ch in per_channel.items()},
        downloaded=len(missing),
        downloaded_bytes=sum(w.size for w in missing),
        deleted=len(doomed),
        files=len(wanted),
        changed=changed,
        signers=sorted(signers),
        pinned=pinned,
    )


def _verify(
    verifier: SignatureVerifier, public_keys: bytes, data: bytes, signature: bytes, *, what: str
) -> list[str]:
    try:
        return verifier.verify_detached(data, signature, public_keys=public_keys)
    except PackyardError as exc:
        raise MirrorIntegrityError(
            f"the signature of {what} does not verify with the pinned keys: {exc.message}",
            hint="if the server rotated its keys past the transition period, check the new "
            "fingerprint (`packyard keys show`) and sync with --keyring; otherwise a proxy or "
            "the server was tampered with",
        ) from exc


def _download(
    source: MirrorSource,
    staging: Path,
    missing: Sequence[_Wanted],
    *,
    progress: SyncProgress | None,
) -> set[str]:
    if progress is not None:
        progress.begin(files=len(missing), total_bytes=sum(w.size for w in missing))
    advance = progress.advance if progress is not None else (lambda _n: None)
    try:
        for want in missing:
            target = staging / _safe_tree_path(want.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as handle:
                sink = _HashingSink(handle, limit=want.size, progress=advance)
                source.download(want.path, sink.write)
                handle.flush()
                os.fsync(handle.fileno())
            if sink.size != want.size or sink.hash.hexdigest() != want.sha256:
                raise MirrorIntegrityError(
                    f"{want.path} does not match the signed listing: got sha256 "
                    f"{sink.hash.hexdigest()} ({sink.size} bytes), expected {want.sha256} "
                    f"({want.size} bytes)",
                    hint="a proxy or cache between here and the server altered it; the "
                    "mirror keeps its previous tree",
                )
    finally:
        if progress is not None:
            progress.end()
    return {w.path for w in missing}


def _verify_formats(
    verifier: SignatureVerifier,
    public_keys: bytes,
    tree: Path,
    staging: Path,
    wanted: Mapping[str, _Wanted],
    check: set[str],
) -> set[str]:
    """Check each format's own signatures (what apt, dnf and pacman will check) where the
    signature or the signed file is in ``check`` (read from staging when downloaded now)."""
    signers: set[str] = set()

    def read(path: str) -> bytes:
        staged = staging / path
        return (staged if staged.is_file() else tree / path).read_bytes()

    for sig, signed in _signed_pairs(wanted):
        if sig not in check and (signed is None or signed not in check):
            continue
        try:
            if signed is None:
                signers.update(verifier.verify_clearsigned(read(sig), public_keys=public_keys))
            else:
                signers.update(
                    verifier.verify_detached(read(signed), read(sig), public_keys=public_keys)
                )
        except PackyardError as exc:
            raise MirrorIntegrityError(
                f"the signature {sig} does not verify with the pinned keys: {exc.message}",
                hint="the server's signing keys changed, or the file was altered; the mirror "
                "keeps its previous tree",
            ) from exc
    return signers


def _publish_keyring(where: _MirrorDir, public_keys: bytes) -> None:
    """Serve the pinned keys where clients expect the server's (``repos/keys/``)."""
    name = "packyard.asc" if public_keys.lstrip().startswith(b"-----BEGIN PGP") else "packyard.gpg"
    target = where.tree / "keys" / name
    if not target.is_file() or target.read_bytes() != public_keys:
        _atomic_write(target, public_keys)


def _prune_empty_dirs(tree: Path, removed: Iterable[str]) -> None:
    for path in sorted(removed, key=len, reverse=True):
        parent = (tree / path).parent
        while parent != tree and tree in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


def backoff_delay(failures: int, *, base: float = 2.0, cap: float = 300.0) -> float:
    """Exponential backoff with full jitter (never 0, so a fleet of mirrors spreads out)."""
    ceiling = min(cap, base * (2 ** max(failures - 1, 0)))
    return max(0.5, random.uniform(ceiling / 2, ceiling))  # noqa: S311 - jitter, not crypto


def sync_and_report(
    source: MirrorSource,
    verifier: SignatureVerifier,
    dest: Path,
    **kwargs: Any,
) -> SyncReport:
    """``sync``, then a heartbeat with the outcome (also when verification failed)."""
    say = kwargs.get("log") or (lambda _line: None)
    try:
        report = sync(source, verifier, dest, **kwargs)
    except MirrorIntegrityError as exc:
        with contextlib.suppress(PackyardError):
            source.heartbeat(_heartbeat(dest, errors=[exc.message]))
        raise
    try:
        source.heartbeat(
            _heartbeat(
                dest,
                errors=[],
                stats={
                    "files": report.files,
                    "downloaded": report.downloaded,
                    "downloaded_bytes": report.downloaded_bytes,
                    "deleted": report.deleted,
                },
            )
        )
    except (NotAuthenticated, NotAuthorized):
        raise
    except PackyardError as exc:
        # The tree is good; a lost heartbeat only makes the mirror look stale for a while.
        say(f"the heartbeat was not delivered: {exc.message}")
    return report


def _heartbeat(
    dest: Path, *, errors: list[str], stats: Mapping[str, int] | None = None
) -> dict[str, Any]:
    state = _MirrorDir(dest).load_state()
    return {
        "synced": {name: ch.get("snapshot") for name, ch in (state.get("channels") or {}).items()},
        "errors": errors,
        "version": __version__,
        "stats": dict(stats or {}),
    }


def run_daemon(
    source: MirrorSource,
    verifier: SignatureVerifier,
    dest: Path,
    *,
    wait: float = 30,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    on_report: Callable[[SyncReport], None] | None = None,
    log: Callable[[str], None] | None = None,
    **kwargs: Any,
) -> None:
    """Sync, then long-poll for changes and sync again, forever (until ``should_stop``).

    Unreachable servers and failed verifications are retried with exponential backoff and
    jitter (a failed sync leaves the tree as it was); a refused credential ends the loop.
    """
    say = log or (lambda _line: None)
    since: str | None = None
    failures = 0
    while not should_stop():
        try:
            report = sync_and_report(
                source, verifier, dest, since=since, wait=wait if since else 0, log=log, **kwargs
            )
        except (NotAuthenticated, NotAuthorized):
            raise
        except PackyardError as exc:
            failures += 1
            delay = backoff_delay(failures)
            say(f"sync failed ({exc.message}); retrying in {delay:.0f}s")
            sleep(delay)
            continue
        failures = 0
        since = report.cursor
        if on_report is not None:
            on_report(report)
