"""Pushing publications to S3-compatible object stores (``packyard publish --to s3://…`` and
per-channel targets in ``[publish.s3]``).

``push`` copies the channels' published trees (services/published_tree.py) to an
``ObjectStore``, uploading only objects whose content changed (a state object in the bucket
remembers what was uploaded), package files first and the entry-point indexes (InRelease,
repomd.xml, pacman .db, index.json) last, and deleting objects no longer published only after
the new indexes are up. apt by-hash files of the previous push are kept one more round for
clients in the middle of an update. The state also records the snapshot pushed per channel, so
a configured push (``push_configured``) catches up every channel of its target that an
earlier, failed push left behind.

Not handled: concurrent pushes to one bucket from several hosts (a per-target lock covers one
process). Never deleted: the public keys (``keys/…``, only replaced), and anything at all by a
push none of whose channels is published (a wrong data dir or stage must not empty a bucket).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, BinaryIO

from packyard.domain.errors import (
    InvalidRequest,
    PackyardError,
)
from packyard.services.ports import (
    ObjectStore,
)
from packyard.services.published_tree import (
    KEY_FILES,
    MirrorUnavailable,
    TreeFile,
    channel_tree,
    upload_order,
)

if TYPE_CHECKING:
    # The server side needs the database layer; the mirror client (``sync``) must not pay
    # for importing it on every run, so these are imported where used.
    from packyard.services.context import Context
    from packyard.services.publish import UnitOfWork

__all__ = [
    "PUSH_STATE_KEY",
    "PushProgress",
    "PushResult",
    "push",
    "push_configured",
    "s3_url_problem",
]

#: The object in a push target (below its prefix) that remembers what was uploaded.
PUSH_STATE_KEY = ".packyard/push-state.json"


@dataclass(frozen=True, kw_only=True)
class PushResult:
    url: str
    channels: list[str]
    #: Keys (below the prefix) in upload order.
    uploaded: list[str]
    deleted: list[str]
    unchanged: int


@dataclass(frozen=True, kw_only=True)
class PushProgress:
    """Where a push is: reported before the first upload and after every one."""

    url: str
    channels: list[str]
    #: Objects (and their bytes) to upload in all, and uploaded so far.
    objects: int
    bytes: int
    done_objects: int
    done_bytes: int
    unchanged: int


_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,62}")


def s3_url_problem(url: str) -> str | None:
    """Why ``url`` is not an ``s3://bucket[/prefix]`` URL (None when it is one)."""
    url = url.strip()
    if not url.startswith("s3://"):
        return f"{url!r} is not an S3 URL: it does not start with s3://"
    bucket = url.removeprefix("s3://").partition("/")[0]
    if _BUCKET.fullmatch(bucket):
        return None
    if not bucket:
        return f"{url!r} is not an S3 URL: it names no bucket"
    why = f"{url!r} is not an S3 URL: "
    if _BUCKET.fullmatch(bucket.lower()):
        fixed = "s3://" + bucket.lower() + url.removeprefix("s3://")[len(bucket) :]
        return why + f"bucket names are lowercase (did you mean {fixed}?)"
    if len(bucket) > 63 or len(bucket) < 3:
        return why + f"bucket names have 3 to 63 characters ({bucket!r} has {len(bucket)})"
    if not bucket[0].isalnum():
        return why + "bucket names start with a lowercase letter or a digit"
    return why + f"bucket names have only lowercase letters, digits, dots and hyphens ({bucket!r})"


_push_locks: dict[str, threading.Lock] = {}
_push_locks_guard = threading.Lock()


def _push_lock(url: str) -> threading.Lock:
    with _push_locks_guard:
        return _push_locks.setdefault(url, threading.Lock())


def _load_push_state(store: ObjectStore) -> dict[str, Any]:
    raw = store.get(PUSH_STATE_KEY)
    empty: dict[str, Any] = {
        "version": 1,
        "objects": {},
        "channels": {},
        "live": [],
        "snapshots": {},
    }
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
    if not isinstance(state.get("snapshots"), dict):
        # Written before snapshots were recorded: every channel counts as behind once.
        state["snapshots"] = {}
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
    catch_up: Sequence[str] = (),
    full: bool = False,
    log: Callable[[str], None] | None = None,
    progress: Callable[[PushProgress], None] | None = None,
    actor: str = "system:push",
) -> PushResult:
    """Copy the live publications of the chosen channels to ``store``.

    Channels: ``only`` (names), else those of ``stages``/``formats`` (default all); plus every
    channel matching a ``catch_up`` pattern whose live snapshot is not the one last pushed to
    ``store``. Channels never published are left as they are in the target; when none of the
    chosen channels is published, nothing is uploaded or deleted. ``full`` uploads every object
    again.
    """
    from packyard.services.audit import record
    from packyard.services.publish import channels, parse_channel

    say = log or (lambda _line: None)
    with _push_lock(store.url):
        state = _load_push_state(store)
        pushed_snapshots: dict[str, Any] = state["snapshots"]
        with uow() as ctx:
            publications = ctx.publications
            assert publications is not None
            chosen = (
                [parse_channel(ctx, name) for name in only]
                if only is not None
                else channels(ctx, stages=stages, formats=formats)
            )
            selected = {c.name: (c, publications.current(c.format, c.stage)) for c in chosen}
            for c in channels(ctx) if catch_up else ():
                if c.name in selected or not any(fnmatchcase(c.name, p) for p in catch_up):
                    continue
                snapshot = publications.current(c.format, c.stage)
                if snapshot is not None and pushed_snapshots.get(c.name) != snapshot:
                    selected[c.name] = (c, snapshot)
            # The tree of the snapshot read above, so that the state records what was pushed.
            trees = {
                name: channel_tree(ctx, c, snapshot=snapshot)
                for name, (c, snapshot) in selected.items()
                if snapshot is not None
            }
            trees = {name: tree for name, tree in trees.items() if tree}
            snapshots = {name: selected[name][1] for name in trees}
            keys = _key_files(ctx) if trees else {}
            blobs = ctx.blobs
        if not trees:
            # Nothing to serve: a wrong data dir or stage must not empty the target.
            say(f"{store.url}: nothing pushed (no published channel)")
            return PushResult(url=store.url, channels=[], uploaded=[], deleted=[], unchanged=0)
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
        total_bytes = sum(f.size for f in uploads)
        done_bytes = 0

        def report(done: int) -> None:
            if progress is not None:
                progress(
                    PushProgress(
                        url=store.url,
                        channels=sorted(trees),
                        objects=len(uploads),
                        bytes=total_bytes,
                        done_objects=done,
                        done_bytes=done_bytes,
                        unchanged=len(wanted) - len(uploads),
                    )
                )

        def upload(f: TreeFile) -> str:
            return _upload(store, blobs, f)

        report(0)
        uploaded: list[str] = []
        # Upload group by group (package files, by-hash, indexes, entry points): a group
        # starts only when the one before is complete.
        for _rank, group in _groups(uploads):
            parallel = 4 if _rank < 2 else 1
            with ThreadPoolExecutor(max_workers=parallel) as pool:
                for f, key in zip(group, pool.map(upload, group), strict=True):
                    uploaded.append(key)
                    done_bytes += f.size
                    report(len(uploaded))
        # Key files are only ever replaced: a push from a host without signing keys must not
        # take the clients' keys away.
        kept_keys = {key for key in map(_repo_key, KEY_FILES) if key in old_objects}
        live = (
            {_repo_key(p) for paths in channel_keys.values() for p in paths}
            | {_repo_key(p) for p in keys}
            | kept_keys
        )
        objects = dict(old_objects)
        objects.update({_repo_key(f.path): f.sha256 for f in wanted.values()})
        state = {
            "version": 1,
            "objects": objects,
            "channels": channel_keys,
            "live": sorted(live),
            "snapshots": {**pushed_snapshots, **snapshots},
        }
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
        f"({', '.join(sorted(trees))})"
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
    content_type = "application/pgp-keys" if f.path in KEY_FILES else content_type_for(f.path)
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
    takes them (``publish.s3.targets``), with every other channel of that target whose last
    push there is behind (a failed push is caught up by the next one). Raises after trying
    every target if one failed."""
    with uow() as ctx:
        targets = list(ctx.settings.publish.s3.targets)
    results: list[PushResult] = []
    failures: list[str] = []
    for target in targets:
        names = [c for c in published if any(fnmatchcase(c, pat) for pat in target.channels)]
        if not names:
            continue
        url = target.url
        try:
            store = open_store(target.url)
            url = store.url
            try:
                results.append(
                    push(uow, store=store, only=names, catch_up=target.channels, log=log)
                )
            finally:
                store.close()
        except PackyardError as exc:
            # The store's errors name its URL already.
            detail = str(exc)
            failures.append(detail if url in detail else f"{url}: {detail}")
    if failures:
        raise MirrorUnavailable(
            "published, but pushing failed: " + "; ".join(failures),
            hint="the next publication of any channel a failed target takes pushes every "
            "channel it is behind on; `packyard publish` retries now",
        )
    return results
