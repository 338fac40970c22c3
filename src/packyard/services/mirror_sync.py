"""The mirror host's side (no database): ``sync`` makes a local directory a verified copy of the
channels a mirror follows; ``run_daemon`` keeps it so with long polls and backoff.

Every file is checked against the server's signed listing (services/mirrors.signed_listing,
verified with keys the mirror pinned) and the formats' own signatures; nothing is replaced
until everything of a channel verified. Transport and signature checking are ports
(``MirrorSource``, ``SignatureVerifier``) the CLI provides.

``/repos/`` always serves the live snapshot, so a publication while a sync downloads makes the
files it fetches differ from the listing it holds: a sync that sees a file differ asks the
change feed again and, when the file's channel moved to a newer snapshot, follows the new
listing (keeping what it staged and still matches). Only a difference against a listing that
did not move is tampering.

Not handled: serving the mirror's directory (any static web server does); a server that
publishes faster than a sync can download its indexes (``LISTING_ATTEMPTS``, then the sync
fails as unreachable and a daemon retries later).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO, Protocol

from packyard import __version__
from packyard.domain.errors import (
    InvalidRequest,
    NotAuthenticated,
    NotAuthorized,
    NotFound,
    PackyardError,
)
from packyard.services.ports import (
    MirrorSource,
    SignatureVerifier,
)
from packyard.services.published_tree import (
    KEY_FILES,
    LISTING_VERSION,
    MirrorIntegrityError,
    MirrorUnavailable,
    digest_file,
    upload_order,
)

__all__ = [
    "LISTING_ATTEMPTS",
    "STATE_DIR",
    "MirrorDirError",
    "SyncProgress",
    "SyncReport",
    "backoff_delay",
    "check_mirror_dir",
    "run_daemon",
    "sync",
    "sync_and_report",
]

#: The mirror's own bookkeeping inside its directory (state, pinned keys, staging area).
STATE_DIR = ".packyard-mirror"
#: How many listings of a channel one sync follows when the server publishes while it
#: downloads (each attempt re-downloads only the files that changed, mostly indexes).
LISTING_ATTEMPTS = 5


class MirrorDirError(InvalidRequest):
    """The mirror's directory cannot be used: not a directory, not writable, or its file
    system is full. Nothing in the served tree was changed."""


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


@dataclass(frozen=True, kw_only=True)
class _Listing:
    files: dict[str, _Wanted]
    #: The server's public key files (path below /repos -> bytes) the signed listing carries;
    #: None from servers that do not send them.
    keys: dict[str, bytes] | None


@dataclass(frozen=True, kw_only=True)
class _Plan:
    """What one listing of every synced channel asks for."""

    cursor: str
    live: dict[str, str | None]
    wanted: dict[str, _Wanted]
    per_channel: dict[str, dict[str, Any]]
    keys: dict[str, bytes] | None


class _FileFailed(Exception):
    """A download did not match the listing or was gone (caught by ``sync``, never raised
    out of it): either the server published meanwhile or the file was altered."""

    def __init__(self, path: str, error: PackyardError) -> None:
        super().__init__(path)
        self.path = path
        self.error = error


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


def _parse_listing(raw: bytes, *, channel: str, snapshot: str) -> _Listing:
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
        keys: dict[str, bytes] | None = None
        if doc.get("keys") is not None:
            keys = {}
            for path, data in doc["keys"].items():
                if path not in KEY_FILES:
                    raise MirrorIntegrityError(
                        f"the listing of {channel} names a key file {path!r}",
                        hint="the server or a proxy is broken",
                    )
                keys[path] = base64.b64decode(data, validate=True)
        return _Listing(files=files, keys=keys)
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

    def forget(self, *, remove_root: bool) -> None:
        """After a failed first sync: remove the bookkeeping it created (and the directory,
        when this sync created it and it stayed empty), so nothing half-made is left."""
        if self.state_file.exists():
            return
        shutil.rmtree(self.meta, ignore_errors=True)
        if remove_root:
            with contextlib.suppress(OSError):
                self.root.rmdir()

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
    return digest_file(path)[0] == want.sha256


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


def check_mirror_dir(dest: Path) -> None:
    """Raise ``MirrorDirError`` when ``dest`` cannot be a mirror directory (it exists and is
    not a directory); a missing one is created by the first sync."""
    for path in (dest, dest / STATE_DIR, dest / "repos"):
        if path.exists() and not path.is_dir():
            raise MirrorDirError(
                f"{path} is not a directory",
                hint="DIR is the mirror's directory (created when missing): pass a directory, "
                "or move the file away",
            )


@contextlib.contextmanager
def _local_errors(dest: Path) -> Iterator[None]:
    """Turn an OSError of the mirror's own files (disk full, permissions) into a
    ``MirrorDirError`` naming the path and what to do."""
    try:
        yield
    except OSError as exc:
        # A failed write() names no file: then the mirror's directory is the place to look.
        where = str(exc.filename) if exc.filename else str(dest)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            hint = (
                f"free space on the file system holding {where} (a sync stages what it "
                "downloads next to the served tree); the mirror keeps its previous tree"
            )
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = f"run the sync as a user who may write {dest}"
        elif exc.errno in (errno.ENOTDIR, errno.EEXIST, errno.EISDIR):
            hint = "DIR and the directories the sync makes below it must be directories"
        else:
            hint = f"check {where} and its file system; the mirror keeps its previous tree"
        raise MirrorDirError(f"cannot use {where}: {exc.strerror or exc}", hint=hint) from exc


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
    """Make ``dest`` a verified copy of the channels the mirror follows (or ``only`` those;
    the others stay as they are).

    Keys: ``keyring`` (armored or binary public keys) replaces the pinned ones; without one,
    the keys pinned at the first sync are used, and the first sync pins the server's. Every
    file is downloaded into a staging area and checked against the signed listing, and every
    signature against the pinned keys, before anything in the tree changes; package files
    move into place first and entry-point indexes last; then files no longer published are
    deleted. On any error the tree stays as it was (``MirrorDirError`` for local failures).
    """
    where = _MirrorDir(dest)
    fresh_root = not dest.exists()
    fresh_meta = not where.meta.exists()
    try:
        with _local_errors(dest):
            check_mirror_dir(dest)
            with where.lock():
                return _sync_locked(
                    source,
                    verifier,
                    where,
                    server=server,
                    keyring=keyring,
                    only=only,
                    since=since,
                    wait=wait,
                    progress=progress,
                    say=log or (lambda _line: None),
                )
    except BaseException:
        if fresh_meta:
            where.forget(remove_root=fresh_root)
        raise


def _followed(feed: Mapping[str, Any], only: Sequence[str] | None) -> dict[str, str | None]:
    live: dict[str, str | None] = dict(feed["channels"])
    if only:
        unknown = sorted(set(only) - set(live))
        if unknown:
            raise NotFound(
                f"this mirror does not follow {', '.join(unknown)}",
                hint=f"it follows {', '.join(sorted(live)) or 'nothing'}",
            )
        live = {name: snap for name, snap in live.items() if name in only}
    return live


def _plan(
    source: MirrorSource,
    verifier: SignatureVerifier,
    public_keys: bytes,
    feed: Mapping[str, Any],
    *,
    only: Sequence[str] | None,
    old_channels: Mapping[str, Any],
    recheck: bool,
    signers: set[str],
    listings: dict[tuple[str, str], _Listing],
) -> _Plan:
    """The files of every synced channel's live snapshot in ``feed``: from the state when
    unchanged, else from its signed listing (verified once per sync, kept in ``listings``)."""
    live = _followed(feed, only)
    wanted: dict[str, _Wanted] = {}
    per_channel: dict[str, dict[str, Any]] = {}
    keys: dict[str, bytes] | None = None
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
            parsed = listings.get((name, snapshot))
            if parsed is None:
                listing, signature = source.listing(channel=name, snapshot=snapshot)
                signers.update(_verify(verifier, public_keys, listing, signature, what=name))
                parsed = _parse_listing(listing, channel=name, snapshot=snapshot)
                listings[name, snapshot] = parsed
            files = parsed.files
            keys = parsed.keys if parsed.keys is not None else keys
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
                p: {"sha256": w.sha256, "size": w.size, "kind": w.kind} for p, w in files.items()
            },
        }
    return _Plan(
        cursor=str(feed["cursor"]), live=live, wanted=wanted, per_channel=per_channel, keys=keys
    )


def _sync_locked(
    source: MirrorSource,
    verifier: SignatureVerifier,
    where: _MirrorDir,
    *,
    server: str,
    keyring: bytes | None,
    only: Sequence[str] | None,
    since: str | None,
    wait: float,
    progress: SyncProgress | None,
    say: Callable[[str], None],
) -> SyncReport:
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
    old_channels: dict[str, Any] = dict(state.get("channels") or {})
    # A sync of some channels leaves the others (files and state) as they are.
    kept = {name: ch for name, ch in old_channels.items() if only and name not in only}
    kept_paths = {p for ch in kept.values() for p in (ch.get("files") or {})}
    known: dict[str, str] = {}
    for ch in old_channels.values():
        for p, e in (ch.get("files") or {}).items():
            known[p] = e["sha256"]
    signers: set[str] = set()
    feed = source.changes(since=since, wait=wait)
    staging = where.meta / f"staging-{secrets.token_hex(4)}"
    staged: dict[str, str] = {}
    listings: dict[tuple[str, str], _Listing] = {}
    try:
        for attempt in range(1, LISTING_ATTEMPTS + 1):
            plan = _plan(
                source,
                verifier,
                public_keys,
                feed,
                only=only,
                old_channels=old_channels,
                recheck=recheck,
                signers=signers,
                listings=listings,
            )
            missing = [
                w
                for path, w in sorted(plan.wanted.items())
                if not (
                    known.get(path) == w.sha256
                    and (where.tree / path).is_file()
                    and (where.tree / path).stat().st_size == w.size
                )
                and not _local_matches(where.tree / path, w)
            ]
            _unstage(staging, staged, missing)
            try:
                _download(source, staging, missing, staged, progress=progress)
                break
            except _FileFailed as failed:
                feed = source.changes(since=None, wait=0)
                now_live = _followed(feed, only)
                owners = [n for n, ch in plan.per_channel.items() if failed.path in ch["files"]]
                if all(now_live.get(n) == plan.live.get(n) for n in owners):
                    # The listing did not move: the file is not what the server signed.
                    raise failed.error from None
                if attempt == LISTING_ATTEMPTS:
                    raise MirrorUnavailable(
                        f"the server published {', '.join(owners)} {attempt} times while this "
                        f"sync downloaded it ({failed.path} changed each time)",
                        hint="sync again later; a daemon retries with backoff",
                    ) from None
                say(
                    f"{failed.path} changed on the server while syncing (a new publication "
                    f"of {', '.join(owners)}); following the new listing"
                )
        signers.update(
            _verify_formats(
                verifier,
                public_keys,
                where.tree,
                staging,
                plan.wanted,
                set(plan.wanted) if recheck else {w.path for w in missing},
            )
        )
        # Everything verified. The server's key files (signed with the listing) first: keys
        # that verify more than the tree needs yet are harmless, missing ones are not.
        key_state = _place_keys(where, plan.keys, public_keys, state.get("keys"))
        # Then package files, indexes, and the entry points last.
        for want in sorted(missing, key=lambda w: upload_order(w.path, w.kind)):
            target = where.tree / want.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / want.path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if pinned or keyring is not None:
        _atomic_write(where.keyring_file, public_keys)
    # Delete what is no longer published; apt by-hash files of the previous sync stay one
    # more round for clients in the middle of an update.
    keep = set(plan.wanted) | kept_paths
    retained_before: dict[str, str] = dict(state.get("retained") or {})
    retained = {p: sha for p, sha in known.items() if p not in keep and "/by-hash/" in p}
    doomed = (set(known) | set(retained_before)) - keep - set(retained)
    for path in sorted(doomed):
        (where.tree / _safe_tree_path(path)).unlink(missing_ok=True)
    _prune_empty_dirs(where.tree, doomed)
    new_state: dict[str, Any] = {
        "version": 1,
        "server": server,
        "cursor": plan.cursor,
        "channels": {**kept, **plan.per_channel},
        "retained": retained,
    }
    if key_state is not None:
        new_state["keys"] = key_state
    where.save_state(new_state)
    changed = bool(missing or doomed)
    if changed:
        say(f"{where.root}: {len(missing)} files downloaded, {len(doomed)} deleted")
    return SyncReport(
        cursor=plan.cursor,
        synced={name: ch["snapshot"] for name, ch in plan.per_channel.items()},
        downloaded=len(missing),
        downloaded_bytes=sum(w.size for w in missing),
        deleted=len(doomed),
        files=len(plan.wanted),
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


def _unstage(staging: Path, staged: dict[str, str], missing: Sequence[_Wanted]) -> None:
    """Drop staged files a newer listing no longer asks for as they are (the format checks
    read a staged file in preference to the tree's)."""
    needed = {w.path: w.sha256 for w in missing}
    for path, sha in list(staged.items()):
        if needed.get(path) != sha:
            (staging / path).unlink(missing_ok=True)
            del staged[path]


def _download(
    source: MirrorSource,
    staging: Path,
    missing: Sequence[_Wanted],
    staged: dict[str, str],
    *,
    progress: SyncProgress | None,
) -> None:
    """Download what is missing and not staged yet into ``staging`` (recorded in ``staged``),
    package files first: a publication during a long download then touches only the last
    files, the indexes. Raises ``_FileFailed`` for a file that differs or is gone."""
    todo = sorted(
        (w for w in missing if staged.get(w.path) != w.sha256),
        key=lambda w: upload_order(w.path, w.kind),
    )
    if progress is not None:
        progress.begin(files=len(todo), total_bytes=sum(w.size for w in todo))
    advance = progress.advance if progress is not None else (lambda _n: None)
    try:
        for want in todo:
            target = staging / _safe_tree_path(want.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
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
                        hint="the server did not publish since, so a proxy or cache between "
                        "here and the server altered it; the mirror keeps its previous tree",
                    )
            except (MirrorIntegrityError, MirrorUnavailable, NotFound) as exc:
                target.unlink(missing_ok=True)
                raise _FileFailed(want.path, exc) from exc
            staged[want.path] = want.sha256
    finally:
        if progress is not None:
            progress.end()


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

    def located(path: str) -> Path:
        staged = staging / path
        return staged if staged.is_file() else tree / path

    def read(path: str) -> bytes:
        return located(path).read_bytes()

    for sig, signed in _signed_pairs(wanted):
        if sig not in check and (signed is None or signed not in check):
            continue
        try:
            if signed is None:
                signers.update(verifier.verify_clearsigned(read(sig), public_keys=public_keys))
            else:
                signers.update(
                    verifier.verify_detached(located(signed), read(sig), public_keys=public_keys)
                )
        except PackyardError as exc:
            raise MirrorIntegrityError(
                f"the signature {sig} does not verify with the pinned keys: {exc.message}",
                hint="the server's signing keys changed, or the file was altered; the mirror "
                "keeps its previous tree",
            ) from exc
    return signers


def _place_keys(
    where: _MirrorDir,
    server_keys: Mapping[str, bytes] | None,
    pinned: bytes,
    placed: Mapping[str, str] | None,
) -> dict[str, str] | None:
    """Serve the server's public key files where clients expect them (``repos/keys/``), as
    the signed listing carries them: during a key rotation they hold the old and the new key,
    which clients following the rotation import. Without a listing this round, the files
    placed earlier stay; from a server whose listings carry no keys, the pinned keys are
    served. Returns what to record in the state (path -> sha256), None for pinned keys."""
    if server_keys is None:
        if placed:
            return dict(placed)
        name = "packyard.asc" if pinned.lstrip().startswith(b"-----BEGIN PGP") else "packyard.gpg"
        server_keys = {f"keys/{name}": pinned}
        recorded = False
    else:
        recorded = True
    for path, data in server_keys.items():
        target = where.tree / _safe_tree_path(path)
        if not target.is_file() or target.read_bytes() != data:
            _atomic_write(target, data)
    if not recorded:
        return None
    return {path: hashlib.sha256(data).hexdigest() for path, data in server_keys.items()}


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
    """``sync``, then a heartbeat with the outcome (also when the sync failed on the mirror's
    side: verification, or its directory, e.g. a full disk)."""
    say = kwargs.get("log") or (lambda _line: None)
    try:
        report = sync(source, verifier, dest, **kwargs)
    except (MirrorIntegrityError, MirrorDirError) as exc:
        # Best effort: the server may be as unreachable as the error was local.
        with contextlib.suppress(PackyardError, OSError):
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

    Unreachable servers, failed verifications and local errors (a full disk) are retried
    with exponential backoff and jitter (a failed sync leaves the tree as it was); a refused
    credential ends the loop.
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
