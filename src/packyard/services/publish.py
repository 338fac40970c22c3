"""Publishing: every stage becomes a channel per repository format, published as immutable,
signed snapshots that are switched atomically.

A publication runs in steps with short transactions in between, so that reading hundreds of
package files never holds the database's write lock:

1. ``plan`` (read): the channel's artifacts and whether each has its index entry (one query
   returning plain tuples; with ``full``, the entries' text too).
2. ``compute`` (no transaction): the missing per-artifact entries — apt stanzas, rpm XML
   chunks of the rpm re-signed with our key, pacman desc/files with a detached signature,
   packet/munki/file items. Artifacts are immutable, so an entry is computed once per entry
   kind (kinds carry a version, bumped when the code computing them changes).
3. ``store entries`` (write).
4. ``build`` (no transaction): join the entries into indexes from cached, compressed blocks
   (services/assembly.py), sign, write a new snapshot directory with a manifest mapping pool
   paths to blobs.
5. ``record`` (write): the publication row; then the snapshot is switched live and old
   snapshots beyond ``publish.keep_snapshots`` are pruned.

An incremental publish computes the new entries and re-renders only the blocks whose
artifacts changed. ``full=True`` reads every stored entry and rebuilds every index (reusing
only the compression of identical blocks); ``recompute=True`` also computes every entry again
from the package files.

Not handled here: serving (api/routers/repos.py resolves paths through ``resolve``), pushing
to S3 (services/s3_push.py) and mirrors (services/mirrors.py, services/mirror_sync.py),
the job queue (jobs/).
"""

from __future__ import annotations

import base64
import bisect
import gc
import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple, Protocol

from packyard.domain.auth import Action, Principal
from packyard.domain.errors import ConfigError, InvalidRequest, NotAuthorized, NotFound
from packyard.domain.versions import version_sort_key
from packyard.formats import apt_repo, index_common, munki_repo, pacman_repo, rpm_repo
from packyard.formats.pacman import list_pacman_files
from packyard.services.assembly import BlockAssembler, Variant
from packyard.services.audit import record
from packyard.services.context import Context
from packyard.storage.db.models import Artifact, DerivedBlob, Job, Publication
from packyard.storage.db.repositories import ChannelRow

MANIFEST = "manifest.json"
log = logging.getLogger(__name__)

__all__ = [
    "CHANNEL_FORMATS",
    "Channel",
    "ChannelStatus",
    "PublishResult",
    "channel_status",
    "channels",
    "parse_channel",
    "publish",
    "repository_format",
    "request_publish",
    "schedule_initial_publish",
    "schedule_publish",
]

#: Which artifact formats each repository format publishes.
CHANNEL_FORMATS: dict[str, tuple[str, ...]] = {
    "apt": ("deb",),
    "dnf": ("rpm",),
    "pacman": ("pacman",),
    "packet": ("packet",),
    "munki": ("macos-pkg",),
    "files": (
        "generic",
        "container-image",
        "python-wheel",
        "python-sdist",
        "disk-image",
        "appimage",
    ),
}

UnitOfWork = Callable[..., AbstractContextManager[Context]]


@dataclass(frozen=True, kw_only=True)
class Channel:
    format: str
    stage: str

    @property
    def name(self) -> str:
        return f"{self.format}/{self.stage}"


def parse_channel(ctx: Context, name: str) -> Channel:
    fmt, _, stage = name.partition("/")
    if fmt not in CHANNEL_FORMATS or stage not in ctx.settings.stage_names():
        raise NotFound(
            f"channel {name!r} does not exist",
            hint=f"channels are <format>/<stage>: formats {', '.join(CHANNEL_FORMATS)}; "
            f"stages {', '.join(ctx.settings.stage_names())}",
        )
    return Channel(format=fmt, stage=stage)


def channels(
    ctx: Context, *, stages: Sequence[str] | None = None, formats: Sequence[str] | None = None
) -> list[Channel]:
    """Every channel (or those of the given stages/formats)."""
    all_stages = ctx.settings.stage_names()
    for stage in stages or ():
        if stage not in all_stages:
            raise InvalidRequest(
                f"unknown stage {stage!r}", hint=f"stages: {', '.join(all_stages)}"
            )
    for fmt in formats or ():
        if fmt not in CHANNEL_FORMATS:
            raise InvalidRequest(
                f"unknown repository format {fmt!r}", hint=f"formats: {', '.join(CHANNEL_FORMATS)}"
            )
    return [
        Channel(format=f, stage=s)
        for s in (stages or all_stages)
        for f in (formats or CHANNEL_FORMATS)
    ]


# --------------------------------------------------------------------------- scheduling


def repository_format(artifact_format: str) -> str:
    """The repository format (channel kind) that publishes an artifact format."""
    for fmt, artifact_formats in CHANNEL_FORMATS.items():
        if artifact_format in artifact_formats:
            return fmt
    return "files"


#: The publication store's marker naming the layout its channels were published with.
LAYOUT_MARKER = "layout"


def schedule_publish(
    ctx: Context,
    *,
    stages: Iterable[str],
    actor: str,
    trigger: str,
    formats: Iterable[str] | None = None,
) -> Job | None:
    """Queue a background publish of ``stages`` (``formats``, default all) after the current
    transaction.

    Coalesces: when a queued publish job already covers these stages and formats, no new one
    is made.
    """
    if not ctx.settings.publish.auto or ctx.jobs is None:
        return None
    wanted = sorted(set(stages))
    wanted_formats = sorted(set(formats)) if formats is not None else None
    for job in ctx.repos.jobs.queued("publish"):
        queued_formats = job.args.get("formats")
        covers_formats = queued_formats is None or (
            wanted_formats is not None and set(wanted_formats) <= set(queued_formats)
        )
        if set(wanted) <= set(job.args.get("stages") or []) and covers_formats:
            return job
    job = ctx.repos.jobs.add(
        Job(
            kind="publish",
            args={"stages": wanted, "formats": wanted_formats, "trigger": trigger},
            status="queued",
            actor=actor,
            created_at=ctx.now(),
            log="",
        )
    )
    queue, job_id = ctx.jobs, job.id
    ctx.after_commit(lambda: queue.enqueue(job_id))
    return job


def request_publish(
    ctx: Context,
    *,
    principal: Principal,
    stages: Sequence[str] | None = None,
    formats: Sequence[str] | None = None,
    full: bool = False,
    recompute: bool = False,
) -> Job:
    """A publish someone asked for (``packyard publish``): always a new job."""
    if not principal.can(Action.PUBLISH):
        raise NotAuthorized(
            f"role {principal.role.value!r} may not publish", hint="ask a maintainer"
        )
    targets = channels(ctx, stages=stages, formats=formats)
    if ctx.jobs is None:
        raise ConfigError("no job queue is running", hint="publish through a running server")
    job = ctx.repos.jobs.add(
        Job(
            kind="publish",
            args={
                "stages": sorted({c.stage for c in targets}),
                "formats": sorted({c.format for c in targets}),
                "full": full,
                "recompute": recompute,
                "trigger": "manual",
            },
            status="queued",
            actor=principal.name,
            created_at=ctx.now(),
            log="",
        )
    )
    queue, job_id = ctx.jobs, job.id
    ctx.after_commit(lambda: queue.enqueue(job_id))
    return job


def schedule_initial_publish(ctx: Context) -> Job | None:
    """Publish every channel once when nothing was ever published (fresh installation)."""
    if ctx.repos.publishing.publications(limit=1):
        return None
    store, layout = ctx.publications, layout_signature(ctx)
    if store is not None:
        ctx.after_commit(lambda: store.set_marker(LAYOUT_MARKER, layout))
    return schedule_publish(
        ctx, stages=ctx.settings.stage_names(), actor="system", trigger="initial"
    )


# --------------------------------------------------------------------------- publishing


_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})


class Item(NamedTuple):
    """A plain-data view of an artifact in a channel (no ORM object crosses transactions).

    ``filename``, ``fields`` and ``relations`` are loaded only for artifacts whose entries are
    computed (``Item.of``); the channel listing (``Item.rows``) leaves them empty. A named
    tuple, because building 10,000 of these is part of every publish.
    """

    id: int
    sha256: str
    format: str
    name: str
    version: str
    arch: str | None
    size: int
    pipeline: str = ""
    filename: str = ""
    fields: Mapping[str, Any] = _NO_FIELDS
    relations: Mapping[str, list[str]] = _NO_FIELDS

    @classmethod
    def of(cls, a: Artifact) -> Item:
        return cls(
            id=a.id,
            sha256=a.sha256,
            format=a.format,
            name=a.name,
            version=a.version,
            arch=a.arch,
            size=a.size,
            filename=a.filename,
            fields=dict(a.fields or {}),
            relations={k: list(v) for k, v in (a.relations or {}).items()},
        )

    @classmethod
    def rows(
        cls, rows: Sequence[ChannelRow], pipelines: Mapping[str, str], default: str
    ) -> list[Item]:
        """From channel rows; ``pipelines`` (package -> pipeline) and ``default`` resolve
        packages without a pipeline of their own, as services.packages does. Built with
        ``tuple.__new__`` (10,000 per listing: half the time of calling the class)."""
        new = tuple.__new__
        rest = ("", _NO_FIELDS, _NO_FIELDS)
        return [
            new(
                cls,
                (
                    *r[:7],
                    r[9] or (pipelines.get(r[8], default) if r[8] else default),
                    *rest,
                ),
            )
            for r in rows
        ]


@dataclass(frozen=True, kw_only=True)
class ChannelQuery:
    """What a publish lists of a channel: its artifacts and whether each has its entry."""

    stage: str
    formats: tuple[str, ...]
    kind: str
    with_pipeline: bool

    def rows(
        self, ctx: Context, *, content: bool = False, ids: Sequence[int] | None = None
    ) -> list[ChannelRow]:
        return ctx.repos.artifacts.channel_rows(
            self.stage,
            formats=self.formats,
            kind=self.kind,
            content=content,
            with_pipeline=self.with_pipeline,
            ids=ids,
        )

    @staticmethod
    def items(ctx: Context, rows: Sequence[ChannelRow]) -> list[Item]:
        assigned, default = ctx.settings.package_pipelines, ctx.settings.default_pipeline
        return Item.rows(rows, assigned, default)


@dataclass
class _Listing:
    marker: int
    listed_at: float
    rows: list[ChannelRow]
    items: list[Item]
    #: artifact id -> name: where a row sits in the (name, id) order.
    names: dict[int, str]
    #: artifact id -> sha256 of its file (``BlockAssembler.identity``).
    identity: dict[int, str]

    @classmethod
    def of(cls, marker: int, rows: list[ChannelRow], items: list[Item]) -> _Listing:
        names = {r[0]: r[3] for r in rows}
        return cls(marker, time.monotonic(), rows, items, names, _identity(items))

    def patch(self, fresh: Sequence[ChannelRow], items: Sequence[Item], ids: set[int]) -> bool:
        """Replace the rows of ``ids`` by ``fresh`` (those still in the channel), in place:
        a few bisections, not a pass over the listing. False (the listing is then unusable)
        if a row is not where the order puts it, which would be a bug."""
        for artifact_id in ids:
            name = self.names.pop(artifact_id, None)
            if name is None:
                continue
            del self.identity[artifact_id]
            at = bisect.bisect_left(self.rows, (name, artifact_id), key=_order)
            if at == len(self.rows) or self.rows[at][0] != artifact_id:
                return False
            del self.rows[at]
            del self.items[at]
        for row, item in zip(fresh, items, strict=True):
            at = bisect.bisect_left(self.rows, (row[3], row[0]), key=_order)
            self.rows.insert(at, row)
            self.items.insert(at, item)
            self.names[row[0]] = row[3]
            self.identity[item.id] = item.sha256
        return True


def _identity(items: Sequence[Item]) -> dict[int, str]:
    return {i.id: i.sha256 for i in items}


def _order(row: ChannelRow) -> tuple[str, int]:
    """A row's place in a channel: name, then id (as the listing query orders them)."""
    return row[3], row[0]


class ChannelListings:
    """Channel listings kept in memory between publishes and brought up to date from the
    database's feed of membership changes (``MembershipChange``, written by triggers).

    Listing a channel of 10,000 artifacts is a three-table query of 10,000 rows and 10,000
    ``Item`` objects: most of an incremental publish's time. Here an incremental publish reads
    the ids that changed since the last one and re-reads those rows only, so its work follows
    the change, not the channel. A listing is made afresh when it is older than ``MAX_AGE``
    (the feed keeps an hour), when too much changed to be worth patching, and for
    ``full`` publishes (which read every entry anyway). Keyed by database engine: one
    process may serve several databases (tests do).
    """

    MAX_AGE = 600.0
    MAX_CHANGES = 2000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_engine: weakref.WeakKeyDictionary[Any, dict[ChannelQuery, _Listing]] = (
            weakref.WeakKeyDictionary()
        )

    def get(
        self, ctx: Context, query: ChannelQuery
    ) -> tuple[list[ChannelRow], list[Item], Mapping[int, str]]:
        """The channel's rows, items and the sha256 of each artifact's file (by id)."""
        engine = ctx.repos.session.get_bind()
        with self._lock:
            cached = self._by_engine.setdefault(engine, {}).get(query)
        repos = ctx.repos.artifacts
        if cached is not None and time.monotonic() - cached.listed_at < self.MAX_AGE:
            marker, changed = repos.membership_changes(cached.marker)
            if len(changed) <= self.MAX_CHANGES:
                # Patched in place: publishes of one channel take turns (_channel_locks), so
                # the lists handed out last time are no longer in use.
                fresh = query.rows(ctx, ids=sorted(changed)) if changed else []
                if cached.patch(fresh, query.items(ctx, fresh), changed):
                    cached.marker = marker
                    return cached.rows, cached.items, cached.identity
                log.error("channel listing of %s out of order; listed afresh", query.stage)
        marker = repos.membership_marker()  # before the listing: later changes come next time
        rows = query.rows(ctx)
        listing = _Listing.of(marker, rows, query.items(ctx, rows))
        with self._lock:
            self._by_engine[engine][query] = listing
        return listing.rows, listing.items, listing.identity


_listings = ChannelListings()


@dataclass(frozen=True, kw_only=True)
class Computed:
    """A computed index entry and the derived file it made (a signed rpm), if any."""

    content: str
    derived: DerivedBlob | None = None


@dataclass(frozen=True, kw_only=True)
class PublishResult:
    channel: str
    snapshot: str
    artifact_count: int
    signed_by: list[str]
    new_entries: int
    seconds: float
    #: Index blocks whose entries were read and joined again (the rest came from the cache).
    rebuilt_blocks: int = 0


class Builder(Protocol):
    format: str

    def entry_kind(self, ctx: Context) -> str:
        """The kind of the cached entries; carries a version, bumped when compute changes."""
        ...

    def compute(self, ctx: Context, item: Item, path: Path, *, signing: Signing) -> Computed: ...

    def build(
        self,
        ctx: Context,
        *,
        channel: Channel,
        items: list[Item],
        entries: Entries,
        sign: Signing,
    ) -> Assembled: ...


@dataclass(kw_only=True)
class Assembled:
    files: dict[str, bytes] = field(default_factory=dict)
    #: sha256 of files whose digest is known already (spares hashing them again).
    digests: dict[str, str] = field(default_factory=dict)
    # pool path -> {"sha256": blob, "size": n} or {"inline": base64} (small signatures)
    pool: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The pool map as JSON text, when a builder assembled it from cached blocks: its members
    #: in parts that join to ``,"<path>":{...},"<path>":{...}`` (never joined on their own:
    #: the manifest joins them once, in place).
    pool_parts: Sequence[bytes] | None = None

    def add(self, path: str, variant: Variant) -> None:
        self.files[path] = variant.data
        self.digests[path] = variant.sha256


class Entries:
    """The entries of one publication: the contents read or computed, decoded on demand, and
    the block assembler for builders that build documents from cached blocks."""

    def __init__(
        self,
        ctx: Context,
        *,
        kind: str,
        contents: dict[int, str | bytes],
        parts: Callable[[str | bytes], Sequence[bytes]] | None,
        layout: Mapping[str, int],
        rebuild: bool,
        identity: Mapping[int, str],
    ) -> None:
        self._ctx = ctx
        self._kind = kind
        self._contents = contents
        self._parts = parts
        store = ctx.publications
        assert store is not None
        self.blocks = BlockAssembler(
            store=store,
            kind=kind,
            load=self._load_parts,
            layout=layout,
            target=ctx.settings.publish.block_entries,
            rebuild=rebuild,
            # An id names one artifact only while it exists (SQLite gives a deleted newest
            # id out again; a restored backup does on any database): blocks are known by
            # ids and file digests together.
            identity=identity,
        )

    def content(self, ids: Sequence[int]) -> dict[int, str | bytes]:
        """The stored text of each entry (read in batches from the database when needed)."""
        missing = [i for i in ids if i not in self._contents]
        if missing:
            for (artifact_id, _kind), text in self._ctx.repos.publishing.entries(
                missing, [self._kind]
            ).items():
                self._contents[artifact_id] = text
        return {i: self._contents[i] for i in ids}

    def decoded(self, items: Sequence[Item]) -> list[tuple[Item, dict[str, Any]]]:
        """JSON entries with their items, for builders that assemble in Python."""
        texts = self.content([i.id for i in items])
        return [(i, json.loads(texts[i.id])) for i in items]

    def _load_parts(self, ids: Sequence[int]) -> dict[int, Sequence[bytes]]:
        assert self._parts is not None
        return {i: self._parts(text) for i, text in self.content(ids).items()}


@dataclass(frozen=True, kw_only=True)
class Signing:
    """The keys that sign this publication and the signer to use."""

    keys: list[str]
    #: The key for single-signature formats (rpm packages, pacman): see keys.single_signature_key.
    primary: str
    signer: Any

    def clearsign(self, data: bytes) -> bytes:
        return bytes(self.signer.clearsign(data, keys=self.keys))

    def detach(self, data: bytes, *, armor: bool, all_keys: bool = True) -> bytes:
        return bytes(
            self.signer.detach_sign(
                data, keys=self.keys if all_keys else [self.primary], armor=armor
            )
        )


_channel_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
#: Computed entries beyond which a publish collects their garbage at once (see below).
_COLLECT_AFTER = 256


def publish(
    uow: UnitOfWork,
    *,
    stages: Sequence[str] | None = None,
    formats: Sequence[str] | None = None,
    full: bool = False,
    recompute: bool = False,
    trigger: str = "manual",
    actor: str = "system:publisher",
    log: Callable[[str], None] | None = None,
) -> list[PublishResult]:
    """Publish the given channels (default: all); returns one result per channel.

    ``full`` rebuilds every index from the stored entries (no cached block membership);
    ``recompute`` also computes every entry again from the package files (a repair: entries
    are normally computed once per artifact) and forgets every cached block.
    """
    with uow() as ctx:
        targets = channels(ctx, stages=stages, formats=formats)
        signing = _signing(ctx)
    results = []
    for channel in targets:
        # One publisher per channel at a time in this process; the database row lock in
        # ``_record`` orders publishers on different hosts.
        with _channel_locks[channel.name], _no_gc_pauses():
            result = _publish_channel(
                uow,
                channel=channel,
                signing=signing,
                full=full or recompute,
                recompute=recompute,
                trigger=trigger,
                actor=actor,
            )
        if log:
            log(
                f"{channel.name}: snapshot {result.snapshot}, {result.artifact_count} artifacts, "
                f"{result.new_entries} new index entries, {result.rebuilt_blocks} index blocks "
                f"rebuilt, {result.seconds:.2f}s"
            )
        results.append(result)
    return results


_gc_lock = threading.Lock()
_gc_state = {"depth": 0, "was_enabled": True}


@contextmanager
def _no_gc_pauses() -> Iterator[None]:
    """Suspend Python's cyclic garbage collector while a channel is published.

    A publication allocates tens of thousands of short-lived tuples and bytes (freed by
    reference counting, not by the collector), which trigger full collections over every
    object of the process: measured, they added 10-70 ms at random to a 100 ms publish of
    10,000 packages. Nested and concurrent publishers share one suspension.
    """
    with _gc_lock:
        if _gc_state["depth"] == 0:
            _gc_state["was_enabled"] = gc.isenabled()
            gc.disable()
        _gc_state["depth"] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_state["depth"] -= 1
            if _gc_state["depth"] == 0 and _gc_state["was_enabled"]:
                gc.enable()


def _signing(ctx: Context) -> Signing:
    from packyard.services.keys import signing_keys, single_signature_key

    if ctx.signer is None:
        raise ConfigError("no signer is configured", hint="the server sets one up on start")
    keys = signing_keys(ctx)
    if not keys:
        raise ConfigError(
            "there is no active signing key",
            hint="restart the server (it creates one) or `packyard keys import`",
        )
    return Signing(keys=keys, primary=single_signature_key(keys), signer=ctx.signer)


def _publish_channel(
    uow: UnitOfWork,
    *,
    channel: Channel,
    signing: Signing,
    full: bool,
    recompute: bool,
    trigger: str,
    actor: str,
) -> PublishResult:
    started = datetime.now(UTC)
    builder = BUILDERS[channel.format]
    with uow() as ctx:
        kind = builder.entry_kind(ctx) + (
            f":{signing.primary}" if builder.format in ("dnf", "pacman") else ""
        )
        listing = ChannelQuery(
            stage=channel.stage,
            formats=CHANNEL_FORMATS[channel.format],
            kind=kind,
            # Only apt channels with a distribution per pipeline need each package's pipeline.
            with_pipeline=channel.format == "apt"
            and len(ctx.settings.apt_distributions(channel.stage)) > 1,
        )
        if full:
            rows = listing.rows(ctx, content=True)
            items = listing.items(ctx, rows)
            identity: Mapping[int, str] = _identity(items)
        else:
            rows, items, identity = _listings.get(ctx, listing)
        items = _keep_latest(ctx, channel, items)
        kept = {i.id for i in items} if len(items) != len(rows) else None
        contents: dict[int, str | bytes] = {}
        if full and not recompute:
            contents = {r[0]: r[7] for r in rows if r[7] is not None}
        missing_ids = [
            r[0] for r in rows if (kept is None or r[0] in kept) and (recompute or r[7] is None)
        ]
        settings = ctx.settings
    computed: dict[int, Computed] = {}
    if missing_ids:
        computed = _compute_all(uow, builder, missing_ids, signing=signing)
        with uow(write=True) as ctx:
            texts = {(i, kind): c.content for i, c in computed.items()}
            if recompute:
                ctx.repos.publishing.replace_entries(texts)
            else:
                ctx.repos.publishing.add_entries(texts)
            for c in computed.values():
                if c.derived is not None:
                    ctx.repos.publishing.add_derived(c.derived)
        if len(computed) > _COLLECT_AFTER:
            # The collector is off while publishing (_no_gc_pauses); the ORM objects of the
            # computed artifacts are cyclic garbage now: collect the young generation once
            # (a few are left to the collector's next run after the publish).
            gc.collect(0)
    contents.update({i: c.content for i, c in computed.items()})
    with uow() as ctx:
        entries = Entries(
            ctx,
            kind=kind,
            contents=contents,
            parts=getattr(builder, "parts", None),
            layout=getattr(builder, "layout", {}),
            rebuild=full,
            identity=identity,
        )
        assembled = builder.build(ctx, channel=channel, items=items, entries=entries, sign=signing)
        store = ctx.publications
        assert store is not None
        snapshot = _snapshot_id(started)
        with store.build(channel.format, channel.stage, snapshot) as writer:
            for path, data in assembled.files.items():
                writer.write(path, data, sha256=assembled.digests.get(path))
            manifest_bytes = _manifest(
                {
                    "channel": channel.name,
                    "snapshot": snapshot,
                    "created_at": started.isoformat(),
                    "signed_by": signing.keys,
                    # What each file must hold: mirrors and pushes check the disk against it.
                    "files": file_records(writer.digests, assembled.files),
                },
                assembled,
            )
            manifest_sha256 = hashlib.sha256(manifest_bytes).hexdigest()
            writer.write(MANIFEST, manifest_bytes, sha256=manifest_sha256)
    with uow(write=True) as ctx:
        _record_publication(
            ctx,
            channel=channel,
            snapshot=snapshot,
            started=started,
            count=len(items),
            signing=signing,
            manifest_sha256=manifest_sha256,
            trigger=trigger,
            actor=actor,
        )
        ctx.after_commit(lambda: store.activate(channel.format, channel.stage, snapshot))
        _prune(ctx, channel=channel, keep=settings.publish.keep_snapshots)
    return PublishResult(
        channel=channel.name,
        snapshot=snapshot,
        artifact_count=len(items),
        signed_by=signing.keys,
        new_entries=len(computed),
        rebuilt_blocks=entries.blocks.rendered_blocks,
        seconds=(datetime.now(UTC) - started).total_seconds(),
    )


def _record_publication(
    ctx: Context,
    *,
    channel: Channel,
    snapshot: str,
    started: datetime,
    count: int,
    signing: Signing,
    manifest_sha256: str,
    trigger: str,
    actor: str,
) -> None:
    """The publication row (the channel's current one from now on) and its audit event."""
    current = ctx.repos.publishing.current(channel.name)
    if current is not None:
        current.status = "superseded"
    add_current_publication(
        ctx,
        channel=channel,
        snapshot=snapshot,
        started=started,
        count=count,
        signing=signing,
        manifest_sha256=manifest_sha256,
        trigger=trigger,
    )
    record(
        ctx,
        actor=actor,
        action="publication.create",
        object_type="channel",
        object_id=channel.name,
        before={"snapshot": current.snapshot} if current else None,
        after={"snapshot": snapshot, "artifacts": count, "signed_by": signing.keys},
        reason=trigger,
    )


def file_records(
    digests: Mapping[str, str], files: Mapping[str, bytes]
) -> dict[str, dict[str, Any]]:
    """A manifest's ``files``: each snapshot file's sha256 and size as it was written."""
    return {path: {"sha256": digests[path], "size": len(files[path])} for path in sorted(files)}


def add_current_publication(
    ctx: Context,
    *,
    channel: Channel,
    snapshot: str,
    started: datetime,
    count: int,
    signing: Signing,
    manifest_sha256: str,
    trigger: str,
) -> Publication:
    """The row of a new snapshot, live from now on (the caller retires the previous one)."""
    return ctx.repos.publishing.add_publication(
        Publication(
            channel=channel.name,
            format=channel.format,
            stage=channel.stage,
            snapshot=snapshot,
            created_at=started.replace(tzinfo=None),
            artifact_count=count,
            signed_by=signing.keys,
            status="current",
            trigger=trigger,
            manifest_sha256=manifest_sha256,
        )
    )


def _manifest(head: dict[str, Any], assembled: Assembled) -> bytes:
    """manifest.json: the head fields and the pool map (joined as text when pre-rendered)."""
    if assembled.pool_parts is None:
        return json.dumps(
            {**head, "pool": assembled.pool}, sort_keys=True, separators=(",", ":")
        ).encode()
    text = json.dumps(head, sort_keys=True, separators=(",", ":")).encode()
    parts = list(assembled.pool_parts)
    # The first member has no comma before it.
    first = next((i for i, part in enumerate(parts) if part), None)
    if first is not None:
        parts[first] = parts[first][1:]
    return b"".join([text[:-1], b',"pool":{', *parts, b"}}"])


def _snapshot_id(moment: datetime) -> str:
    return f"{moment:%Y%m%dT%H%M%S%f}-{secrets.token_hex(3)}"


def _keep_latest(ctx: Context, channel: Channel, items: list[Item]) -> list[Item]:
    keep = ctx.settings.publish.options_for(channel.format, channel.stage).keep_latest
    if not keep:
        return items
    groups: dict[tuple[str, str | None], list[Item]] = defaultdict(list)
    for item in items:
        groups[(item.name, item.arch)].append(item)
    kept: list[Item] = []
    for group in groups.values():
        group.sort(key=lambda i: version_sort_key(i.format, i.version), reverse=True)
        kept.extend(group[:keep])
    return sorted(kept, key=lambda i: (i.name, i.id))


#: Builders whose entries wait on a subprocess per artifact (rpmsign), computed on a thread
#: per core; the others are CPU-bound Python, which threads would only slow down.
_PARALLEL_COMPUTE = frozenset({"dnf"})


def _compute_all(
    uow: UnitOfWork, builder: Builder, ids: list[int], *, signing: Signing
) -> dict[int, Computed]:
    """Compute the entries of ``ids``; read-only transactions (blobs and derived blobs are
    read, rows are written after)."""

    def run(chunk: list[int]) -> dict[int, Computed]:
        out: dict[int, Computed] = {}
        with uow() as ctx:
            for artifact in sorted(ctx.repos.artifacts.by_ids(chunk), key=lambda a: a.id):
                out[artifact.id] = _compute(ctx, builder, Item.of(artifact), signing=signing)
        return out

    workers = min(os.cpu_count() or 1, 8, len(ids))
    if builder.format not in _PARALLEL_COMPUTE or workers == 1:
        return run(ids)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pky-compute") as pool:
        results = list(pool.map(run, [ids[i::workers] for i in range(workers)]))
    return {k: v for part in results for k, v in part.items()}


def _compute(ctx: Context, builder: Builder, item: Item, *, signing: Signing) -> Computed:
    path = ctx.blobs.local_path(item.sha256)
    if path is not None:
        return builder.compute(ctx, item, path, signing=signing)
    with tempfile.NamedTemporaryFile() as tmp, ctx.blobs.open(item.sha256) as src:
        shutil.copyfileobj(src, tmp)
        tmp.flush()
        return builder.compute(ctx, item, Path(tmp.name), signing=signing)


_KEPT_STATUSES = ("current", "superseded", "rolled_back")
_MEMBERSHIP_FEED_KEPT = timedelta(hours=1)


def _prune(ctx: Context, *, channel: Channel, keep: int) -> None:
    """Mark the channel's snapshots beyond the newest ``keep`` pruned and delete them after
    the commit (in the transaction that records a new publication, whose switch runs first);
    and trim the feed of membership changes."""
    # Only kept snapshots (pruned rows stay as history but are not loaded here).
    rows = ctx.repos.publishing.publications(
        channel=channel.name, statuses=_KEPT_STATUSES, limit=1000
    )
    store = ctx.publications
    assert store is not None
    doomed = [p for p in rows[keep:] if p.status != "current"]
    for pub in doomed:
        pub.status = "pruned"
    # The feed behind cached channel listings keeps an hour (ChannelListings.MAX_AGE).
    ctx.repos.artifacts.prune_membership_changes(
        before=ctx.now().replace(tzinfo=None) - _MEMBERSHIP_FEED_KEPT
    )
    snapshots = [p.snapshot for p in doomed]

    def delete_snapshots() -> None:
        live = store.current(channel.format, channel.stage)
        for snapshot in snapshots:
            if snapshot != live:  # the switch to the new snapshot failed: keep serving this
                store.delete(channel.format, channel.stage, snapshot)

    ctx.after_commit(delete_snapshots)


# --------------------------------------------------------------------------- status & rollback


@dataclass(frozen=True, kw_only=True)
class ChannelStatus:
    channel: Channel
    current: Publication | None
    history: list[Publication]


def channel_status(
    ctx: Context, *, channel: str | None = None, history: int = 10
) -> list[ChannelStatus]:
    targets = [parse_channel(ctx, channel)] if channel else channels(ctx)
    out = []
    for target in targets:
        rows = list(ctx.repos.publishing.publications(channel=target.name, limit=history))
        current = next((p for p in rows if p.status == "current"), None)
        out.append(ChannelStatus(channel=target, current=current, history=rows))
    return out


# --------------------------------------------------------------------------- builders


def _digests(path: Path) -> dict[str, str]:
    hashes = {name: hashlib.new(name) for name in ("md5", "sha1", "sha256", "sha512")}
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            for h in hashes.values():
                h.update(chunk)
    return {name: h.hexdigest() for name, h in hashes.items()}


def _with_by_hash(
    files: dict[str, bytes], prefix: str, path: str, variants: dict[str, bytes]
) -> None:
    for suffix, data in variants.items():
        files[f"{prefix}{path}{suffix}"] = data
        files[
            f"{prefix}{apt_repo.by_hash_path(path + suffix, hashlib.sha256(data).hexdigest())}"
        ] = data


class AptBuilder:
    """apt: ``dists/<suite>/<component>/binary-<arch>/Packages{,.gz,.xz}`` from cached blocks.

    An entry is ``,<pool map fragment>\n<stanza>\n`` (plain text, no JSON to decode: a full
    publish of 10,000 packages reads and splits 10,000 of them, each with one partition).
    """

    format = "apt"

    #: ``parts`` is ``content.partition(b"\n")``: the pool fragment, the newline, the stanza.
    layout: Mapping[str, int] = MappingProxyType({"pool": 0, "Packages": 2})

    def entry_kind(self, ctx: Context) -> str:
        return f"apt:{ctx.settings.publish.apt.component}:v3"

    def compute(self, ctx: Context, item: Item, path: Path, *, signing: Signing) -> Computed:
        control = str(item.fields.get("control") or "")
        arch = item.arch or "all"
        filename = apt_repo.deb_filename(package=item.name, version=item.version, architecture=arch)
        pool = apt_repo.pool_path(
            component=ctx.settings.publish.apt.component,
            source_or_package_name=apt_repo.source_name(control=control),
            filename=filename,
        )
        d = _digests(path)
        stanza = apt_repo.deb_stanza(
            control=control,
            filename=pool,
            size=item.size,
            md5=d["md5"],
            sha1=d["sha1"],
            sha256=d["sha256"],
            sha512=d["sha512"],
        )
        if not stanza.strip():
            raise InvalidRequest(f"{item.filename} has an empty control paragraph")
        stanza = stanza if stanza.endswith("\n") else stanza + "\n"
        return Computed(content=f",{_pool_fragment(pool, item)}\n{stanza}\n")

    @staticmethod
    def parts(text: str | bytes) -> Sequence[bytes]:
        return (text.encode() if isinstance(text, str) else text).partition(b"\n")

    def build(
        self,
        ctx: Context,
        *,
        channel: Channel,
        items: list[Item],
        entries: Entries,
        sign: Signing,
    ) -> Assembled:
        apt = ctx.settings.publish.apt
        out = Assembled()
        # One dists/<suite>/ per distinct pipeline distribution (settings.apt_distributions);
        # each package goes to its pipeline's. The pool is shared.
        distributions = ctx.settings.apt_distributions(channel.stage)
        members: dict[str, list[Item]] = {d.suite: [] for d in distributions}
        if len(distributions) == 1:
            members[distributions[0].suite] = items
        else:
            by_pipeline = {p: d for d in distributions for p in d.pipelines}
            for item in items:
                members[by_pipeline.get(item.pipeline, distributions[0]).suite].append(item)
        now = datetime.now(UTC).replace(microsecond=0)
        for dist in distributions:
            prefix = f"dists/{dist.suite}/"
            index_files: list[apt_repo.IndexFile] = []
            by_arch = _ids_by_arch(members[dist.suite], dist.architectures)
            for arch, ids in by_arch.items():
                path = f"{dist.component}/binary-{arch}/Packages"
                document = entries.blocks.document("Packages", ids)
                for suffix, variant in document.variants().items():
                    index_files.append(
                        apt_repo.IndexFile(
                            path=path + suffix, size=len(variant.data), sha256=variant.sha256
                        )
                    )
                    out.add(prefix + path + suffix, variant)
                    out.add(prefix + apt_repo.by_hash_path(path + suffix, variant.sha256), variant)
            release = apt_repo.release_file(
                origin=apt.origin,
                label=apt.label,
                suite=dist.suite,
                codename=dist.codename,
                architectures=dist.architectures,
                components=[dist.component],
                description=f"Packyard {channel.stage} channel",
                date=now,
                valid_until=now + timedelta(days=apt.valid_days) if apt.valid_days else None,
                files=index_files,
                sections=("SHA256",),
            ).encode()
            out.files[prefix + "Release"] = release
            out.files[prefix + "InRelease"] = sign.clearsign(release)
            out.files[prefix + "Release.gpg"] = sign.detach(release, armor=True)
        out.pool_parts = _pool_parts(entries, [i.id for i in items])
        return out


def _ids_by_arch(items: Sequence[Item], architectures: Sequence[str]) -> dict[str, list[int]]:
    """The ids of each architecture's index, in channel order: packages of arch ``all`` are
    listed in every architecture's (one pass over the channel, not one per architecture)."""
    out: dict[str, list[int]] = {arch: [] for arch in architectures}
    every = list(out.values())
    for item in items:
        arch = item.arch or "all"
        if arch == "all":
            for ids in every:
                ids.append(item.id)
        elif (ids_of_arch := out.get(arch)) is not None:
            ids_of_arch.append(item.id)
    return out


def _pool_fragment(path: str, item: Item) -> str:
    """``"<pool path>":{"sha256":...,"size":...}`` - one member of a manifest's pool map."""
    spec = json.dumps({"sha256": item.sha256, "size": item.size}, separators=(",", ":"))
    return f"{json.dumps(path)}:{spec}"


def _pool_parts(entries: Entries, ids: Sequence[int]) -> Sequence[bytes]:
    """The manifest's pool map of ``ids`` from the entries' ``,<fragment>`` parts."""
    return entries.blocks.document("pool", ids, compress=False, join=False).parts


class DnfBuilder:
    """dnf: ``repodata/`` with primary, filelists and other from cached blocks, gzip'd."""

    format = "dnf"

    def entry_kind(self, ctx: Context) -> str:
        return "rpm"

    def compute(self, ctx: Context, item: Item, path: Path, *, signing: Signing) -> Computed:
        from packyard.integrations.createrepo import rpm_chunks

        assert ctx.signer is not None
        filename = _rpm_filename(item)
        derived_kind = f"rpm-signed:{signing.primary}"
        location = f"Packages/{filename[0].lower()}/{filename}"
        # Plain values, not the ORM row: the entry outlives this read-only transaction.
        stored = ctx.repos.publishing.derived(item.id, derived_kind)
        reuse = (
            (stored.sha256, stored.size)
            if stored is not None and ctx.blobs.exists(stored.sha256)
            else None
        )
        new_row: DerivedBlob | None = None
        with tempfile.TemporaryDirectory() as tmp:
            signed = Path(tmp) / filename
            if reuse is not None:
                sha256, size = reuse
                local = ctx.blobs.local_path(sha256)
                if local is None:  # a remote blob store: read it through a temporary copy
                    with ctx.blobs.open(sha256) as src, signed.open("wb") as dst:
                        shutil.copyfileobj(src, dst)
                    local = signed
            else:
                shutil.copyfile(path, signed)
                # gpgcheck=1 checks the package's own signature: publish a copy signed with
                # our key (the uploaded artifact keeps its bytes and its identity).
                ctx.signer.sign_rpm(signed, key=signing.primary)
                new_row = _store_derived(ctx, item=item, kind=derived_kind, path=signed)
                sha256, size, local = new_row.sha256, new_row.size, signed
            chunks = rpm_chunks(local, location_href=location)
        content = json.dumps(
            {
                "primary": chunks.primary,
                "filelists": chunks.filelists,
                "other": chunks.other,
                "location": location,
                "blob": sha256,
                "size": size,
                "derived": {"kind": derived_kind, "sha256": sha256, "size": size},
            }
        )
        return Computed(content=content, derived=new_row)

    layout: Mapping[str, int] = MappingProxyType(
        {**{kind: i for i, kind in enumerate(rpm_repo.DOCUMENTS)}, "pool": len(rpm_repo.DOCUMENTS)}
    )

    @staticmethod
    def parts(text: str | bytes) -> Sequence[bytes]:
        e = json.loads(text)
        spec = json.dumps({"sha256": e["blob"], "size": e["size"]}, separators=(",", ":"))
        chunks = [
            (chunk if chunk.endswith("\n") else chunk + "\n").encode()
            for chunk in (e[kind] for kind in rpm_repo.DOCUMENTS)
        ]
        return (*chunks, f",{json.dumps(e['location'])}:{spec}".encode())

    def build(
        self,
        ctx: Context,
        *,
        channel: Channel,
        items: list[Item],
        entries: Entries,
        sign: Signing,
    ) -> Assembled:
        out = Assembled()
        ids = [i.id for i in items]
        # Only the gzip'd documents are published: their plain texts are hashed (for
        # open-checksum) on the hashing thread while the next document is assembled.
        documents = {
            kind: entries.blocks.document(
                kind,
                ids,
                head=rpm_repo.document_head(kind, len(ids)),
                tail=rpm_repo.document_tail(kind),
                xz=False,
                join=False,
            )
            for kind in rpm_repo.DOCUMENTS
        }
        # The pool map before the first wait for a plain text's digest.
        out.pool_parts = _pool_parts(entries, ids)
        files = []
        for kind, document in documents.items():
            assert document.gz is not None
            files.append(
                rpm_repo.RepoDataFile.of(
                    kind,
                    data=document.gz.data,
                    checksum=document.gz.sha256,
                    open_checksum=document.raw.sha256,
                    open_size=document.size,
                )
            )
        now = int(datetime.now(UTC).timestamp())
        repomd = rpm_repo.repomd_xml(files, revision=now, timestamp=now)
        for f in files:
            out.files[f.href] = f.data
            out.digests[f.href] = f.checksum
        out.files["repodata/repomd.xml"] = repomd
        out.files["repodata/repomd.xml.asc"] = sign.detach(repomd, armor=True)
        out.files["repodata/repomd.xml.key"] = bytes(sign.signer.public_key(sign.keys))
        return out


def _desc_value(desc: str, section: str) -> str:
    """The first value of ``%SECTION%`` in a pacman desc entry."""
    marker = f"%{section}%\n"
    at = desc.index(marker) + len(marker)
    return desc[at : desc.index("\n", at)]


def _rpm_filename(item: Item) -> str:
    version = item.version.split(":", 1)[-1]
    return f"{item.name}-{version}.{item.arch or 'noarch'}.rpm"


def _store_derived(ctx: Context, *, item: Item, kind: str, path: Path) -> DerivedBlob:
    """Put a derived file in the blob store; its row is written with the index entry."""
    writer = ctx.blobs.writer()
    try:
        with path.open("rb") as src:
            while chunk := src.read(1024 * 1024):
                writer.write(chunk)
        blob = writer.commit()
    except BaseException:
        writer.abort()
        raise
    return DerivedBlob(
        artifact_id=item.id, kind=kind, sha256=blob.sha256, size=blob.size, created_at=ctx.now()
    )


class PacmanBuilder:
    format = "pacman"

    def entry_kind(self, ctx: Context) -> str:
        return "pacman"

    def compute(self, ctx: Context, item: Item, path: Path, *, signing: Signing) -> Computed:
        assert ctx.signer is not None
        d = _digests(path)
        sig = ctx.signer.detach_sign(path, keys=[signing.primary], armor=False)
        with path.open("rb") as stream:
            files = list_pacman_files(stream)
        arch = item.arch or "any"
        filename = f"{item.name}-{item.version}-{arch}.pkg.tar.{_pacman_ext(item.filename)}"
        desc = pacman_repo.desc_entry(
            fields=item.fields,
            relations=item.relations,
            filename=filename,
            csize=item.size,
            md5=d["md5"],
            sha256=d["sha256"],
            pgpsig_b64=base64.b64encode(sig).decode(),
        )
        return Computed(
            content=json.dumps(
                {
                    "dirname": pacman_repo.entry_dirname(name=item.name, version=item.version),
                    "desc": desc,
                    "files": pacman_repo.files_entry(files),
                    "filename": filename,
                    "arch": arch,
                    "sig": base64.b64encode(sig).decode(),
                }
            )
        )

    #: ``parts``: the entry's tar members in the .db, in the .files database, and its pool
    #: map fragments with ``{arch}/`` for the architecture (no pacman name holds a brace).
    layout: Mapping[str, int] = MappingProxyType({"db": 0, "files": 1, "pool": 2})

    @staticmethod
    def parts(text: str | bytes) -> Sequence[bytes]:
        e = json.loads(text)
        desc = e["desc"]
        # The package file's digest and size are the desc's (it was computed from them).
        spec = json.dumps(
            {"sha256": _desc_value(desc, "SHA256SUM"), "size": int(_desc_value(desc, "CSIZE"))},
            separators=(",", ":"),
        )
        path = json.dumps("{arch}/" + e["filename"])
        sig = json.dumps("{arch}/" + e["filename"] + ".sig")
        inline = json.dumps({"inline": e["sig"]}, separators=(",", ":"))
        return (
            pacman_repo.entry_members(e["dirname"], desc),
            pacman_repo.entry_members(e["dirname"], desc, e["files"]),
            f",{path}:{spec},{sig}:{inline}".encode(),
        )

    def build(
        self,
        ctx: Context,
        *,
        channel: Channel,
        items: list[Item],
        entries: Entries,
        sign: Signing,
    ) -> Assembled:
        """One .db and one .files database per architecture, joined from cached blocks of
        tar members like apt's Packages (gzip only)."""
        pac = ctx.settings.publish.pacman
        repo = pac.repo_template.replace("{stage}", channel.stage)
        out = Assembled()
        by_arch = pacman_repo.entries_by_architecture(
            ((item.arch or "any", item) for item in items), architectures=pac.architectures
        )
        pools = []
        for arch in pac.architectures:
            # A pacman database holds one version per name: the newest (pacman's vercmp).
            ids = [
                item.id
                for item in pacman_repo.newest_per_name(
                    (item.name, item.version, item) for item in by_arch.get(arch, [])
                )
            ]
            for kind in ("db", "files"):
                document = entries.blocks.document(
                    kind, ids, tail=pacman_repo.TAR_END, xz=False, join=False
                )
                assert document.gz is not None
                name = f"{arch}/{repo}.{kind}"
                signature = sign.detach(document.gz.data, armor=False, all_keys=False)
                # pacman fetches <repo>.db; repo-add makes it a symlink to the .tar.gz.
                for path in (name, f"{name}.tar.gz"):
                    out.add(path, document.gz)
                    out.files[f"{path}.sig"] = signature
            pool = entries.blocks.document("pool", ids, compress=False).raw.data
            pools.append(pool.replace(b'"{arch}/', f'"{arch}/'.encode()))
        out.pool_parts = pools
        return out


def _pacman_ext(filename: str) -> str:
    for ext in ("zst", "xz", "gz", "bz2"):
        if filename.endswith(f".tar.{ext}"):
            return ext
    return "zst"


def _json_entry(entry: dict[str, Any]) -> Computed:
    return Computed(content=json.dumps(entry))


_JSON_LAYOUT: Mapping[str, int] = MappingProxyType({"items": 0, "pool": 1})


def _json_parts(text: str | bytes) -> Sequence[bytes]:
    """A packet/file entry as the parts of a JSON index: its item and its pool fragment."""
    e = json.loads(text)
    item = e["item"]
    spec = json.dumps({"sha256": item["sha256"], "size": item["size"]}, separators=(",", ":"))
    return (
        b",\n" + index_common.json_index_item(item),
        f",{json.dumps(e['path'])}:{spec}".encode(),
    )


def _json_channel(
    channel: Channel, items: list[Item], entries: Entries, sign: Signing
) -> Assembled:
    """index.json (+ .asc) from cached blocks of items: the same bytes json_index makes."""
    out = Assembled()
    ids = [i.id for i in items]
    joined = entries.blocks.document("items", ids, compress=False).raw.data
    index = (
        index_common.json_index_head(
            channel=channel.name, generated_at=datetime.now(UTC), count=len(ids)
        )
        + joined[2:]  # the first item has no ",\n" before it
        + index_common.json_index_tail(count=len(ids))
    )
    out.files["index.json"] = index
    out.files["index.json.asc"] = sign.detach(index, armor=True)
    out.pool_parts = _pool_parts(entries, ids)
    return out


class _JsonIndexBuilder:
    """Channels published as a signed index.json (packets for the agent, generic files)."""

    format: str
    #: The entry kind; bump its version whenever ``compute`` writes something else.
    kind: str
    parts = staticmethod(_json_parts)
    layout = _JSON_LAYOUT

    def entry_kind(self, ctx: Context) -> str:
        return self.kind

    def build(
        self,
        ctx: Context,
        *,
        channel: Channel,
        items: list[Item],
        entries: Entries,
        sign: Signing,
    ) -> Assembled:
        return _json_channel(channel, items, entries, sign)


class PacketBuilder(_JsonIndexBuilder):
    format = "packet"
    # v2: the arch in the file name and the item (v1 gave builds for two architectures one URL).
    kind = "packet:v2"

    def compute(self, ctx: Context, item: Item, path: Path, *, signing: Signing) -> Computed:
        pool = f"files/{item.name}-{item.version}{index_common.arch_file_suffix(item.arch)}.packet"
        return _json_entry(
            {
                "item": index_common.packet_item(
                    name=item.name,
                    version=item.version,
                    arch=item.arch,
                    tags=list(item.fields.get("tags") or []),
                    sha256=item.sha256,
                    size=item.size,
                    url=index_common.url_path(pool),
                    scripts=list(item.fields.get("scripts") or []),
                ),
                "path": pool,
            }
        )


class FilesBuilder(_JsonIndexBuilder):
    format = "files"
    # v2: a percent-encoded url (v1's "fw blob#1?.bin" was cut at the "#").
    kind = "files:v2"

    def compute(self, ctx: Context, item: Item, path: Path, *, signing: Signing) -> Computed:
        pool = f"{item.sha256[:12]}/{item.filename}"
        return _json_entry(
            {
                "item": index_common.file_item(
                    name=item.name,
                    version=item.version,
                    filename=item.filename,
                    sha256=item.sha256,
                    size=item.size,
                    url=index_common.url_path(pool),
                ),
                "path": pool,
            }
        )


def _munki_receipts(item: Item) -> list[dict[str, Any]]:
    """The receipts macOS records when ``item`` is installed, by which Munki tells that it is.

    macOS records a receipt per *component* package, under the component's id: a product
    archive gets one per pkg-ref of its Distribution that names a version (the first of each
    id), a component package its own identifier. A receipt under a product archive's
    identifier would never appear, and Munki would install the item on every run.
    Unlike makepkginfo, which prefers the components' own PackageInfo files when the archive
    carries them, this lists a component without a payload too, though macOS records no
    receipt for it (docs/publishing.md tells publishers to leave those out of product
    archives): the artifact's metadata does not say which components have a payload.
    """
    receipts: dict[str, dict[str, Any]] = {}
    for ref in item.fields.get("packages") or ():
        packageid = ref.get("id") if isinstance(ref, Mapping) else None
        if not isinstance(packageid, str) or not packageid or packageid in receipts:
            continue
        version = ref.get("version")
        if isinstance(version, str) and version:
            receipts[packageid] = _with_size(
                {"packageid": packageid, "version": version}, ref.get("install-kbytes")
            )
    if receipts:
        return list(receipts.values())
    own = {"packageid": str(item.fields.get("identifier") or item.name), "version": item.version}
    return [_with_size(own, item.fields.get("install-kbytes"))]


def _with_size(receipt: dict[str, Any], kbytes: object) -> dict[str, Any]:
    if isinstance(kbytes, int) and not isinstance(kbytes, bool) and kbytes >= 0:
        receipt["installed_size"] = kbytes
    return receipt


class MunkiBuilder:
    """Munki: ``catalogs/<stage>``, a plist array joined from cached blocks of pkginfo
    dictionaries (the catalog names of the channel filled in after joining), and
    ``manifests/<stage>``, offering every item of that catalog."""

    format = "munki"
    #: ``parts``: the item's dictionary in the catalog and its pool map fragment.
    layout: Mapping[str, int] = MappingProxyType({"catalog": 0, "pool": 1})

    def entry_kind(self, ctx: Context) -> str:
        # v3: the arch in the file name and supported_architectures (v2 gave builds for two
        # architectures one URL), a receipt per component, minimum_os_version, sizes as
        # makepkginfo rounds them.
        return "munki:v3"

    def compute(self, ctx: Context, item: Item, path: Path, *, signing: Signing) -> Computed:
        suffix = index_common.arch_file_suffix(item.arch)
        location = f"apps/{item.name}/{item.name}-{item.version}{suffix}.pkg"
        receipts = _munki_receipts(item)
        # makepkginfo: the receipts' sizes added up, left out when that is 0.
        installed = sum(r.get("installed_size", 0) for r in receipts)
        return _json_entry(
            {
                "location": location,
                "sha256": item.sha256,
                "size": item.size,
                "pkginfo": munki_repo.pkginfo(
                    name=item.name,
                    version=item.version,
                    display_name=str(item.fields.get("title") or item.name),
                    description=str(item.fields.get("description") or ""),
                    installer_item_location=location,
                    installer_item_hash=item.sha256,
                    installer_item_size=munki_repo.size_in_kib(item.size),
                    receipts=receipts,
                    installed_size=installed or None,
                    minimum_os_version=munki_repo.minimum_os_version(
                        item.fields.get("allowed-os-versions") or ()
                    ),
                    supported_architectures=munki_repo.host_architectures(item.arch or ""),
                    # Filled in per channel in build(): an entry is shared by every stage.
                    catalogs=[munki_repo.CATALOGS_PLACEHOLDER],
                ),
            }
        )

    @staticmethod
    def parts(text: str | bytes) -> Sequence[bytes]:
        e = json.loads(text)
        spec = json.dumps({"sha256": e["sha256"], "size": e["size"]}, separators=(",", ":"))
        return (
            munki_repo.catalog_item(e["pkginfo"]),
            f",{json.dumps(e['location'])}:{spec}".encode(),
        )

    def build(
        self,
        ctx: Context,
        *,
        channel: Channel,
        items: list[Item],
        entries: Entries,
        sign: Signing,
    ) -> Assembled:
        ids = [i.id for i in items]
        out = Assembled()
        if ids:
            joined = entries.blocks.document("catalog", ids, compress=False).raw.data
            catalog = munki_repo.CATALOG_HEAD + munki_repo.item_catalogs(
                joined, munki_catalog_names(ctx, channel.stage)
            )
            out.files[f"catalogs/{channel.stage}"] = catalog + munki_repo.CATALOG_TAIL
        else:
            out.files[f"catalogs/{channel.stage}"] = munki_repo.catalog([])
        # What a client whose ClientIdentifier is the stage (or an alias, repos.py) installs:
        # anything in the stage's catalog, on request from Managed Software Center.
        out.files[f"manifests/{channel.stage}"] = munki_repo.manifest(
            catalogs=[channel.stage], optional_installs=(i.name for i in items)
        )
        out.pool_parts = _pool_parts(entries, ids)
        return out


def munki_catalog_names(ctx: Context, stage: str) -> list[str]:
    """The stage's own catalog name plus the configured aliases pointing at it."""
    aliases = sorted(
        name for name, target in ctx.settings.publish.munki.catalogs.items() if target == stage
    )
    return [stage, *aliases]


#: Bumped when what a publish writes changes beyond the entry kinds (which carry their own
#: versions): channels published by an older version are published again (housekeeping).
PUBLISHED_LAYOUT = 2  # 2: manifests record their files' sha256; Munki manifests


def layout_signature(ctx: Context) -> str:
    """What the publications of this version look like: the layout and every entry kind."""
    kinds = ",".join(f"{fmt}={BUILDERS[fmt].entry_kind(ctx)}" for fmt in sorted(BUILDERS))
    return f"{PUBLISHED_LAYOUT};{kinds}"


BUILDERS: dict[str, Builder] = {
    b.format: b
    for b in (
        AptBuilder(),
        DnfBuilder(),
        PacmanBuilder(),
        PacketBuilder(),
        MunkiBuilder(),
        FilesBuilder(),
    )
}
