"""The mirror host's side (no database): ``sync`` makes a local directory a verified copy of the
channels a mirror follows; ``run_daemon`` keeps it so with long polls and backoff.

Every file is checked against the server's signed listing (services/mirrors.signed_listing,
verified with keys the mirror pinned) and the formats' own signatures; nothing is replaced
until everything of a channel verified. Transport and signature checking are ports
(``MirrorSource``, ``SignatureVerifier``) the CLI provides.

Not handled: serving the mirror's directory (any static web server does).
"""

from __future__ import annotations

import contextlib
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
    LISTING_VERSION,
    MirrorIntegrityError,
    digest_file,
    upload_order,
)

__all__ = [
    "STATE_DIR",
    "SyncProgress",
    "SyncReport",
    "backoff_delay",
    "run_daemon",
    "sync",
    "sync_and_report",
]

#: The mirror's own bookkeeping inside its directory (state, pinned keys, staging area).
STATE_DIR = ".packyard-mirror"


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
