"""All SQL lives here. Repositories read and stage writes; they never commit (the session's
owner, at the request or job boundary, does).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    LargeBinary,
    Select,
    and_,
    cast,
    delete,
    exists,
    func,
    null,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.expression import ClauseElement

from packyard.domain.audit import GENESIS_HASH, EventRecord, event_hash
from packyard.storage.db.models import (
    ApiToken,
    Artifact,
    AuditHead,
    DerivedBlob,
    Event,
    IndexEntry,
    Job,
    MembershipChange,
    Mirror,
    Package,
    PackageNote,
    Publication,
    SigningKey,
    StageEntry,
    User,
    WebSession,
)

__all__ = [
    "ArtifactQuery",
    "ArtifactRepository",
    "ChannelRow",
    "EventQuery",
    "EventRepository",
    "JobRepository",
    "MirrorRepository",
    "NoteRepository",
    "PackageRepository",
    "PublishingRepository",
    "Repositories",
    "TokenRepository",
    "UserRepository",
    "WebSessionRepository",
    "event_record",
]


def event_record(ev: Event) -> EventRecord:
    """The plain audit record of an event row (what the hash chain covers)."""
    return EventRecord(
        seq=ev.seq,
        at=ev.at,
        actor=ev.actor,
        action=ev.action,
        object_type=ev.object_type,
        object_id=ev.object_id,
        before=ev.before,
        after=ev.after,
        reason=ev.reason,
        prev_hash=ev.prev_hash,
        hash=ev.hash,
    )


class UserRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def by_name(self, name: str) -> User | None:
        return self.session.scalar(select(User).where(User.name == name))

    def list(self) -> Sequence[User]:
        return self.session.scalars(select(User).order_by(User.name)).all()

    def any_password(self) -> bool:
        """Whether any user has a web password yet (the first admin sets one from a token)."""
        return (
            self.session.scalar(select(User.id).where(User.password_hash.is_not(None)).limit(1))
            is not None
        )

    def count(self) -> int:
        return self.session.scalar(select(func.count(User.id))) or 0

    def add(self, user: User) -> User:
        self.session.add(user)
        self.session.flush()
        return user


class TokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, token_id: int) -> ApiToken | None:
        return self.session.get(ApiToken, token_id)

    def by_hash(self, token_hash: str) -> ApiToken | None:
        return self.session.scalar(
            select(ApiToken)
            .options(selectinload(ApiToken.user))
            .where(ApiToken.token_hash == token_hash)
        )

    def list(self, *, user_id: int | None = None) -> Sequence[ApiToken]:
        stmt = select(ApiToken).options(selectinload(ApiToken.user)).order_by(ApiToken.id)
        if user_id is not None:
            stmt = stmt.where(ApiToken.user_id == user_id)
        return self.session.scalars(stmt).all()

    def add(self, token: ApiToken) -> ApiToken:
        self.session.add(token)
        self.session.flush()
        return token


class PackageRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_name(self, name: str) -> Package | None:
        return self.session.scalar(select(Package).where(Package.name == name))

    def get_or_create(self, name: str, *, now: datetime) -> Package:
        """The package called ``name``, created if needed — safe against concurrent creators."""
        package = self.by_name(name)
        if package is None:
            insert = _insert_for(self.session)
            self.session.execute(
                insert(Package).values(name=name, created_at=now).on_conflict_do_nothing()
            )
            package = self.by_name(name)
            assert package is not None
        return package

    def list_with_counts(
        self, *, q: str | None = None
    ) -> list[tuple[Package, int, datetime | None]]:
        stmt = (
            select(Package, func.count(Artifact.id), func.max(Artifact.uploaded_at))
            .outerjoin(Artifact, Artifact.package_id == Package.id)
            .group_by(Package.id)
            .order_by(Package.name)
        )
        if q:
            stmt = stmt.where(Package.name.contains(q, autoescape=True))
        return [(p, n, last) for p, n, last in self.session.execute(stmt).all()]

    def icon_sha256s(self) -> set[str]:
        """Blobs referenced as package icons (so that gc keeps them)."""
        return set(
            self.session.scalars(
                select(Package.icon_sha256).where(Package.icon_sha256.is_not(None))
            )
        )


@dataclass(frozen=True, kw_only=True)
class ArtifactQuery:
    """Filters, sort and page for listing artifacts."""

    package: str | None = None
    stage: str | None = None
    format: str | None = None
    arch: str | None = None
    status: str | None = None  # active, failed, deprecated, held
    uploader: str | None = None
    q: str | None = None
    sort: str = "uploaded_at"
    descending: bool = True
    offset: int = 0
    limit: int = 50


ARTIFACT_SORT_COLUMNS: dict[str, Any] = {
    "uploaded_at": Artifact.uploaded_at,
    "name": Artifact.name,
    "version": Artifact.version,
    "format": Artifact.format,
    "arch": Artifact.arch,
    "size": Artifact.size,
    "stage": Artifact.current_stage,
    "status": Artifact.status,
    "uploader": Artifact.uploaded_by,
}


class ArtifactRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _sqlite(self) -> bool:
        return self.session.get_bind().dialect.name == "sqlite"

    def _base(self) -> Select[Artifact]:
        return select(Artifact).options(
            selectinload(Artifact.stages), selectinload(Artifact.package)
        )

    def by_sha256(self, sha256: str) -> Artifact | None:
        return self.session.scalar(self._base().where(Artifact.sha256 == sha256))

    def by_sha256_prefix(self, prefix: str, *, limit: int = 2) -> Sequence[Artifact]:
        return self.session.scalars(
            self._base().where(Artifact.sha256.startswith(prefix, autoescape=True)).limit(limit)
        ).all()

    def by_identity(self, identity: str) -> Artifact | None:
        return self.session.scalar(self._base().where(Artifact.identity == identity))

    def lock(self, artifact_id: int) -> Artifact:
        """Re-read an artifact with a row lock (PostgreSQL) so transitions serialise."""
        artifact = self.session.scalar(
            select(Artifact)
            .where(Artifact.id == artifact_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        assert artifact is not None  # the caller has just read it in this transaction
        self.session.refresh(artifact, attribute_names=["stages"])
        return artifact

    def add(self, artifact: Artifact) -> Artifact | None:
        """Insert ``artifact``; None when a concurrent upload inserted the same sha256 or
        identity first (the caller re-reads and decides), leaving the transaction usable."""
        try:
            with self.session.begin_nested():
                self.session.add(artifact)
                self.session.flush()
        except IntegrityError:
            return None
        return artifact

    def add_stage(self, entry: StageEntry) -> None:
        self.session.add(entry)
        self.session.flush()

    def remove_stages(self, artifact: Artifact, stages: Sequence[str]) -> None:
        for entry in [e for e in artifact.stages if e.stage in stages]:
            artifact.stages.remove(entry)
        self.session.flush()

    def delete(self, artifact: Artifact) -> None:
        self.session.delete(artifact)
        self.session.flush()

    def search(self, query: ArtifactQuery) -> tuple[Sequence[Artifact], int]:
        conditions = _artifact_conditions(query, sqlite=self._sqlite)
        where = and_(*conditions) if conditions else None
        count_stmt = select(func.count(Artifact.id))
        stmt = self._base()
        if where is not None:
            count_stmt = count_stmt.where(where)
            stmt = stmt.where(where)
        column = ARTIFACT_SORT_COLUMNS[query.sort]
        order = column.desc() if query.descending else column.asc()
        tiebreak = Artifact.id.desc() if query.descending else Artifact.id.asc()
        stmt = stmt.order_by(order, tiebreak).offset(query.offset).limit(query.limit)
        total = self.session.scalar(count_stmt) or 0
        return self.session.scalars(stmt).all(), total

    def for_package(self, package_id: int) -> Sequence[Artifact]:
        return self.session.scalars(
            self._base()
            .where(Artifact.package_id == package_id)
            .order_by(Artifact.uploaded_at.desc())
        ).all()

    def retired(self, *, status: str) -> Sequence[Artifact]:
        """Artifacts with ``status``, newest status change first within each package."""
        return self.session.scalars(
            self._base()
            .where(Artifact.status == status)
            .order_by(Artifact.package_id, Artifact.status_changed_at.desc(), Artifact.id.desc())
        ).all()

    def all_sha256(self) -> set[str]:
        return set(self.session.scalars(select(Artifact.sha256)).all())

    def iter_for_scrub(self) -> Iterator[tuple[str, int]]:
        rows = self.session.execute(select(Artifact.sha256, Artifact.size).order_by(Artifact.id))
        for row in rows:
            yield row.sha256, row.size

    def count(self) -> int:
        return self.session.scalar(select(func.count(Artifact.id))) or 0

    def iter_matching(self, query: ArtifactQuery, *, batch: int = 1000) -> Iterator[Artifact]:
        """Every artifact matching ``query`` in its sort order, streamed (CSV export)."""
        conditions = _artifact_conditions(query, sqlite=self._sqlite)
        column = ARTIFACT_SORT_COLUMNS[query.sort]
        order = column.desc() if query.descending else column.asc()
        tiebreak = Artifact.id.desc() if query.descending else Artifact.id.asc()
        stmt = (
            select(Artifact)
            .options(selectinload(Artifact.package))
            .order_by(order, tiebreak)
            .execution_options(yield_per=batch)
        )
        if conditions:
            stmt = stmt.where(and_(*conditions))
        yield from self.session.scalars(stmt)

    def distinct_values(self, column: str, *, limit: int = 200) -> list[str]:
        """Distinct non-empty values of ``format``, ``arch`` or ``uploaded_by`` (filter menus)."""
        col = {"format": Artifact.format, "arch": Artifact.arch, "uploader": Artifact.uploaded_by}[
            column
        ]
        rows = self.session.scalars(
            select(col).where(col.is_not(None)).group_by(col).order_by(col).limit(limit)
        ).all()
        return [r for r in rows if r]

    def newest_in_stage(self, stage: str, *, limit: int) -> Sequence[tuple[Artifact, StageEntry]]:
        """The artifacts that entered ``stage`` most recently, with that entry."""
        rows = self.session.execute(
            select(Artifact, StageEntry)
            .join(StageEntry, StageEntry.artifact_id == Artifact.id)
            .options(selectinload(Artifact.package))
            .where(StageEntry.stage == stage)
            .order_by(StageEntry.entered_at.desc(), StageEntry.id.desc())
            .limit(limit)
        ).all()
        return [(a, e) for a, e in rows]

    def recent_stage_entries(self, *, limit: int) -> Sequence[tuple[Artifact, StageEntry]]:
        rows = self.session.execute(
            select(Artifact, StageEntry)
            .join(StageEntry, StageEntry.artifact_id == Artifact.id)
            .options(selectinload(Artifact.package))
            .order_by(StageEntry.entered_at.desc(), StageEntry.id.desc())
            .limit(limit)
        ).all()
        return [(a, e) for a, e in rows]

    def newest_where(
        self,
        *,
        limit: int,
        status: str | None = None,
        held: bool | None = None,
        stages: Sequence[str] | None = None,
        changed_since: datetime | None = None,
    ) -> Sequence[Artifact]:
        """Newest artifacts (by upload, or by status change when ``changed_since``)."""
        stmt = self._base()
        # Without statistics SQLite would use the status/stage index and sort every match;
        # walking the upload-time index backwards finds the newest few at once. (``x || ''``
        # keeps SQLite off an index; PostgreSQL plans from statistics either way.)
        unindexed = self._sqlite and changed_since is None  # failures are few: index them
        status_col = Artifact.status.op("||")("") if unindexed else Artifact.status
        stage_col = Artifact.current_stage.op("||")("") if self._sqlite else Artifact.current_stage
        if status is not None:
            stmt = stmt.where(status_col == status)
        if held is not None:
            stmt = stmt.where(Artifact.held.is_(held))
        if stages is not None:
            stmt = stmt.where(stage_col.in_(stages))
        if changed_since is not None:
            stmt = stmt.where(Artifact.status_changed_at >= changed_since).order_by(
                Artifact.status_changed_at.desc()
            )
        return self.session.scalars(
            stmt.order_by(Artifact.uploaded_at.desc(), Artifact.id.desc()).limit(limit)
        ).all()

    def stage_entries_per_day(self, *, since: datetime) -> list[tuple[str, str, int]]:
        """(stage, YYYY-MM-DD, how many artifacts entered it that day) since ``since``."""
        day = func.date(StageEntry.entered_at)
        rows = self.session.execute(
            select(StageEntry.stage, day, func.count(StageEntry.id))
            .where(StageEntry.entered_at >= since)
            .group_by(StageEntry.stage, day)
        ).all()
        return [(stage, str(d), n) for stage, d, n in rows]

    def lead_times(self, *, stage: str, since: datetime) -> list[tuple[datetime, datetime]]:
        """(uploaded_at, entered_at) of artifacts that entered ``stage`` since ``since``."""
        rows = self.session.execute(
            select(Artifact.uploaded_at, StageEntry.entered_at)
            .join(StageEntry, StageEntry.artifact_id == Artifact.id)
            .where(StageEntry.stage == stage, StageEntry.entered_at >= since)
        ).all()
        return [(u, e) for u, e in rows]

    def in_stage(self, stage: str, *, formats: Sequence[str]) -> Sequence[Artifact]:
        """Active artifacts of ``formats`` that have reached ``stage`` (a channel's content)."""
        return self.session.scalars(
            select(Artifact)
            .options(selectinload(Artifact.package))
            .join(
                StageEntry, and_(StageEntry.artifact_id == Artifact.id, StageEntry.stage == stage)
            )
            .where(Artifact.status == "active", Artifact.format.in_(formats))
            # Code point order on both databases (SQLite compares bytes; PostgreSQL's "C"
            # collation too), the order publishers keep cached listings in.
            .order_by(
                Artifact.name.collate("C") if self._postgresql else Artifact.name, Artifact.id
            )
        ).all()

    def channel_rows(
        self,
        stage: str,
        *,
        formats: Sequence[str],
        kind: str,
        content: bool,
        with_pipeline: bool = True,
        ids: Sequence[int] | None = None,
    ) -> list[ChannelRow]:
        """A channel's content in one Core query (no ORM objects: a publish of 10,000 artifacts
        must not build 10,000 of them), ordered by name, then id: per active artifact of
        ``formats`` in ``stage`` the tuple ``(id, sha256, format, name, version, arch, size,
        entry)`` where ``entry`` is the UTF-8 text of its index entry of ``kind`` as bytes (with
        ``content``), or just whether it exists (its artifact id, or None); then the package's
        name and its assigned pipeline (None: the configured one), or two Nones without
        ``with_pipeline`` (one join fewer when no caller needs them). With ``ids``, only
        those artifacts (the ones that are in the channel)."""
        # The text as bytes, not str: 10,000 entries are not decoded to be encoded again.
        # (PostgreSQL's text::bytea cast would read backslashes as escapes: convert_to.)
        as_bytes = (
            func.convert_to(IndexEntry.content, "UTF8")
            if self.session.get_bind().dialect.name == "postgresql"
            else cast(IndexEntry.content, LargeBinary)
        )
        entry_column = as_bytes if content else IndexEntry.artifact_id
        stmt = (
            select(
                Artifact.id,
                Artifact.sha256,
                Artifact.format,
                Artifact.name,
                Artifact.version,
                Artifact.arch,
                Artifact.size,
                entry_column,
                *((Package.name, Package.pipeline) if with_pipeline else (null(), null())),
            )
            .join(
                StageEntry, and_(StageEntry.artifact_id == Artifact.id, StageEntry.stage == stage)
            )
            .outerjoin(
                IndexEntry, and_(IndexEntry.artifact_id == Artifact.id, IndexEntry.kind == kind)
            )
            .where(Artifact.status == "active", Artifact.format.in_(formats))
            # Code point order on both databases (SQLite compares bytes; PostgreSQL's "C"
            # collation too), the order publishers keep cached listings in.
            .order_by(
                Artifact.name.collate("C") if self._postgresql else Artifact.name, Artifact.id
            )
        )
        if with_pipeline:
            stmt = stmt.join(Package, Package.id == Artifact.package_id)
        if ids is None:
            return _plain_rows(self.session, stmt)
        wanted = list(ids)
        return [
            row
            for start in range(0, len(wanted), 500)
            for row in _plain_rows(
                self.session, stmt.where(Artifact.id.in_(wanted[start : start + 500]))
            )
        ]

    def membership_marker(self) -> int:
        """Where the feed of membership changes stands now (see ``membership_changes``);
        taken before a channel is listed, so that later changes are read next time."""
        if self._postgresql:
            return int(
                self.session.execute(
                    text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                ).scalar_one()
            )
        return int(
            self.session.execute(
                select(func.coalesce(func.max(MembershipChange.id), 0))
            ).scalar_one()
        )

    def membership_changes(self, since: int) -> tuple[int, set[int]]:
        """The artifacts whose channel rows may have changed since ``since`` (a marker), and
        the marker to pass next time. Rows are pruned after an hour (``prune_membership_
        changes``): a reader must not rely on a marker older than that (publishers list a
        channel afresh every few minutes).

        SQLite: rows with a greater id (one writer at a time: ids are in commit order).
        PostgreSQL: rows of transactions not older than the oldest one still running when
        ``since`` was taken (a change committed later may carry a smaller id); some changes
        are read twice, none is missed.
        """
        if self._postgresql:
            marker = self.membership_marker()
            changed = self.session.execute(
                select(MembershipChange.artifact_id).where(MembershipChange.txid >= since)
            ).scalars()
            return marker, set(changed)
        found = self.session.execute(
            select(MembershipChange.id, MembershipChange.artifact_id).where(
                MembershipChange.id > since
            )
        ).all()
        return max((i for i, _a in found), default=since), {a for _i, a in found}

    def prune_membership_changes(self, *, before: datetime) -> int:
        """Delete the feed's rows written before ``before``."""
        result: Any = self.session.execute(
            delete(MembershipChange).where(MembershipChange.at < before)
        )
        return int(result.rowcount or 0)

    @property
    def _postgresql(self) -> bool:
        return self.session.get_bind().dialect.name == "postgresql"

    def by_ids(self, ids: Sequence[int]) -> list[Artifact]:
        """Artifacts (with their package) by id, in no particular order."""
        out: list[Artifact] = []
        wanted = list(ids)
        for start in range(0, len(wanted), 500):
            out.extend(
                self.session.scalars(
                    select(Artifact)
                    .options(selectinload(Artifact.package))
                    .where(Artifact.id.in_(wanted[start : start + 500]))
                ).all()
            )
        return out

    def count_by_stage(self) -> dict[str, int]:
        rows = self.session.execute(
            select(StageEntry.stage, func.count(StageEntry.id)).group_by(StageEntry.stage)
        ).all()
        return {stage: n for stage, n in rows}


#: One artifact of a channel: (id, sha256, format, name, version, arch, size, entry or None,
#: package name, package pipeline or None).
ChannelRow = tuple[int, str, str, str, str, str | None, int, Any, str, str | None]


def _plain_rows(session: Session, stmt: ClauseElement) -> list[tuple[Any, ...]]:
    """Run ``stmt`` on the DB-API cursor of the session's connection and return plain tuples.

    For the few hot queries that read thousands of rows per call (a channel's content): no
    SQLAlchemy Row objects or result processing (a third of the query's time on SQLite).
    Only for columns whose driver values are already what Python needs (ints, text, bytes).
    """
    connection = session.connection()
    compiled: Any = stmt.compile(
        dialect=connection.dialect, compile_kwargs={"render_postcompile": True}
    )
    params: Any = (
        [compiled.params[key] for key in compiled.positiontup or ()]
        if compiled.positional
        else compiled.params
    )
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(str(compiled), params)
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def _insert_for(session: Session) -> Any:
    """The dialect's INSERT construct (both SQLite and PostgreSQL have ON CONFLICT)."""
    if session.get_bind().dialect.name == "postgresql":
        return pg_insert
    return sqlite_insert


def _artifact_conditions(query: ArtifactQuery, *, sqlite: bool = False) -> list[Any]:
    conditions: list[Any] = []
    if query.package:
        # A scalar subquery, not Artifact.package.has(): EXISTS per row scans every artifact.
        package_id = select(Package.id).where(Package.name == query.package).scalar_subquery()
        conditions.append(Artifact.package_id == package_id)
    if query.stage:
        conditions.append(
            exists().where(
                and_(StageEntry.artifact_id == Artifact.id, StageEntry.stage == query.stage)
            )
        )
    if query.format:
        conditions.append(Artifact.format == query.format)
    if query.arch:
        conditions.append(Artifact.arch == query.arch)
    if query.status == "held":
        conditions.append(Artifact.held.is_(True))
    elif query.status:
        conditions.append(Artifact.status == query.status)
    if query.uploader:
        conditions.append(Artifact.uploaded_by == query.uploader)
    if query.q:
        like = f"%{_escape_like(query.q)}%"
        columns = (
            Artifact.name,
            Artifact.version,
            Artifact.filename,
            Artifact.sha256,
            Artifact.justification,
            Artifact.provenance,
        )
        # SQLite's LIKE ignores ASCII case already (as its lower() does): ilike would add a
        # lower() call per column and row, nearly tripling the cost of a full scan.
        conditions.append(
            or_(
                *(
                    c.like(like, escape="\\") if sqlite else c.ilike(like, escape="\\")
                    for c in columns
                )
            )
        )
    return conditions


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, kw_only=True)
class EventQuery:
    object_type: str | None = None
    object_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    offset: int = 0
    limit: int = 100
    descending: bool = True


class EventRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def append(
        self,
        *,
        at: datetime,
        actor: str,
        action: str,
        object_type: str,
        object_id: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        reason: str | None,
    ) -> Event:
        head = self.session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
        if head is None:
            # The migration creates the head row; this covers databases emptied by hand.
            self.session.execute(
                _insert_for(self.session)(AuditHead)
                .values(id=1, seq=0, hash=GENESIS_HASH)
                .on_conflict_do_nothing()
            )
            head = self.session.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
            assert head is not None
        seq = head.seq + 1
        digest = event_hash(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            before=before,
            after=after,
            reason=reason,
            prev_hash=head.hash,
        )
        event = Event(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            before=before,
            after=after,
            reason=reason,
            prev_hash=head.hash,
            hash=digest,
        )
        self.session.add(event)
        head.seq = seq
        head.hash = digest
        self.session.flush()
        return event

    def search(self, query: EventQuery) -> tuple[Sequence[Event], int]:
        conditions = []
        if query.object_type:
            conditions.append(Event.object_type == query.object_type)
        if query.object_id:
            conditions.append(Event.object_id == query.object_id)
        if query.actor:
            conditions.append(Event.actor == query.actor)
        if query.action:
            conditions.append(Event.action == query.action)
        if query.since:
            conditions.append(Event.at >= query.since)
        stmt = select(Event)
        count_stmt = select(func.count(Event.seq))
        if conditions:
            stmt = stmt.where(and_(*conditions))
            count_stmt = count_stmt.where(and_(*conditions))
        stmt = stmt.order_by(Event.seq.desc() if query.descending else Event.seq.asc())
        stmt = stmt.offset(query.offset).limit(query.limit)
        return self.session.scalars(stmt).all(), self.session.scalar(count_stmt) or 0

    def iter_records(self, *, batch: int = 1000) -> Iterator[EventRecord]:
        last = 0
        while True:
            rows = self.session.scalars(
                select(Event).where(Event.seq > last).order_by(Event.seq).limit(batch)
            ).all()
            if not rows:
                return
            for ev in rows:
                yield event_record(ev)
            last = rows[-1].seq
            self.session.expunge_all()

    def head(self) -> AuditHead | None:
        return self.session.get(AuditHead, 1)


class NoteRepository:
    """Package notes."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def for_package(self, package_id: int) -> Sequence[PackageNote]:
        return self.session.scalars(
            select(PackageNote)
            .where(PackageNote.package_id == package_id)
            .order_by(PackageNote.created_at.desc(), PackageNote.id.desc())
        ).all()

    def get(self, note_id: int) -> PackageNote | None:
        return self.session.get(PackageNote, note_id)

    def add(self, note: PackageNote) -> PackageNote:
        self.session.add(note)
        self.session.flush()
        return note

    def delete(self, note: PackageNote) -> None:
        self.session.delete(note)
        self.session.flush()


class WebSessionRepository:
    """Signed-in browsers, looked up by the sha256 of the cookie's secret."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def by_hash(self, token_hash: str) -> WebSession | None:
        return self.session.scalar(
            select(WebSession)
            .options(selectinload(WebSession.user))
            .where(WebSession.token_hash == token_hash)
        )

    def add(self, web_session: WebSession) -> WebSession:
        self.session.add(web_session)
        self.session.flush()
        return web_session

    def delete(self, web_session: WebSession) -> None:
        self.session.delete(web_session)
        self.session.flush()

    def delete_for_user(self, user_id: int, *, keep_hash: str | None = None) -> int:
        rows = self.session.scalars(select(WebSession).where(WebSession.user_id == user_id)).all()
        removed = 0
        for row in rows:
            if row.token_hash != keep_hash:
                self.session.delete(row)
                removed += 1
        self.session.flush()
        return removed

    def delete_expired(self, *, now: datetime) -> int:
        rows = self.session.scalars(select(WebSession).where(WebSession.expires_at <= now)).all()
        for row in rows:
            self.session.delete(row)
        self.session.flush()
        return len(rows)


class Repositories:
    """All repositories over one session."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.users = UserRepository(session)
        self.tokens = TokenRepository(session)
        self.packages = PackageRepository(session)
        self.artifacts = ArtifactRepository(session)
        self.events = EventRepository(session)
        self.publishing = PublishingRepository(session)
        self.jobs = JobRepository(session)
        self.mirrors = MirrorRepository(session)
        self.notes = NoteRepository(session)
        self.web_sessions = WebSessionRepository(session)


class PublishingRepository:
    """Index entries, derived blobs, publications and signing keys."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def entries(
        self, artifact_ids: Sequence[int], kinds: Sequence[str]
    ) -> dict[tuple[int, str], str]:
        out: dict[tuple[int, str], str] = {}
        ids = list(artifact_ids)
        for start in range(0, len(ids), 500):
            rows = self.session.execute(
                select(IndexEntry.artifact_id, IndexEntry.kind, IndexEntry.content).where(
                    IndexEntry.artifact_id.in_(ids[start : start + 500]), IndexEntry.kind.in_(kinds)
                )
            )
            for artifact_id, kind, content in rows:
                out[(artifact_id, kind)] = content
        return out

    def add_entries(self, entries: dict[tuple[int, str], str]) -> None:
        if not entries:
            return
        insert = _insert_for(self.session)
        rows = [{"artifact_id": a, "kind": k, "content": c} for (a, k), c in entries.items()]
        for start in range(0, len(rows), 500):
            self.session.execute(
                insert(IndexEntry).values(rows[start : start + 500]).on_conflict_do_nothing()
            )

    def replace_entries(self, entries: dict[tuple[int, str], str]) -> None:
        """Store recomputed entries (a full publish), replacing what was cached."""
        by_kind: dict[str, list[int]] = {}
        for artifact_id, kind in entries:
            by_kind.setdefault(kind, []).append(artifact_id)
        # One DELETE per 500 entries, not one per entry (it dominated full publishes).
        for kind, ids in by_kind.items():
            for start in range(0, len(ids), 500):
                self.session.execute(
                    delete(IndexEntry).where(
                        IndexEntry.kind == kind,
                        IndexEntry.artifact_id.in_(ids[start : start + 500]),
                    )
                )
        self.add_entries(entries)

    def derived(self, artifact_id: int, kind: str) -> DerivedBlob | None:
        return self.session.get(DerivedBlob, (artifact_id, kind))

    def derived_many(self, kind: str, artifact_ids: Sequence[int]) -> dict[int, DerivedBlob]:
        rows = self.session.scalars(
            select(DerivedBlob).where(
                DerivedBlob.kind == kind, DerivedBlob.artifact_id.in_(list(artifact_ids))
            )
        ).all()
        return {r.artifact_id: r for r in rows}

    def add_derived(self, blob: DerivedBlob) -> None:
        """Record a derived file; replaces the row of the same artifact and kind (a file made
        again because the old one was missing must be the one gc keeps)."""
        insert = _insert_for(self.session)
        stmt = insert(DerivedBlob).values(
            artifact_id=blob.artifact_id,
            kind=blob.kind,
            sha256=blob.sha256,
            size=blob.size,
            created_at=blob.created_at,
        )
        self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=[DerivedBlob.artifact_id, DerivedBlob.kind],
                set_={
                    "sha256": stmt.excluded.sha256,
                    "size": stmt.excluded.size,
                    "created_at": stmt.excluded.created_at,
                },
            )
        )

    def derived_hashes(self) -> set[str]:
        return set(self.session.scalars(select(DerivedBlob.sha256)).all())

    def add_publication(self, publication: Publication) -> Publication:
        self.session.add(publication)
        self.session.flush()
        return publication

    def publication(self, snapshot: str) -> Publication | None:
        return self.session.scalar(select(Publication).where(Publication.snapshot == snapshot))

    def publications(
        self,
        *,
        channel: str | None = None,
        status: str | None = None,
        statuses: Sequence[str] | None = None,
        limit: int = 100,
    ) -> Sequence[Publication]:
        stmt = select(Publication).order_by(Publication.created_at.desc(), Publication.id.desc())
        if channel:
            stmt = stmt.where(Publication.channel == channel)
        if status:
            stmt = stmt.where(Publication.status == status)
        if statuses:
            stmt = stmt.where(Publication.status.in_(statuses))
        return self.session.scalars(stmt.limit(limit)).all()

    def current(self, channel: str) -> Publication | None:
        return self.session.scalar(
            select(Publication)
            .where(Publication.channel == channel, Publication.status == "current")
            .with_for_update()
        )

    def keys(self) -> Sequence[SigningKey]:
        return self.session.scalars(select(SigningKey).order_by(SigningKey.created_at)).all()

    def key(self, fingerprint: str) -> SigningKey | None:
        return self.session.get(SigningKey, fingerprint)

    def add_key(self, key: SigningKey) -> None:
        self.session.add(key)
        self.session.flush()


class JobRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, job: Job) -> Job:
        self.session.add(job)
        self.session.flush()
        return job

    def get(self, job_id: int) -> Job | None:
        return self.session.get(Job, job_id)

    def lock(self, job_id: int) -> Job | None:
        return self.session.scalar(select(Job).where(Job.id == job_id).with_for_update())

    def queued(self, kind: str) -> Sequence[Job]:
        return self.session.scalars(
            select(Job).where(Job.kind == kind, Job.status == "queued").order_by(Job.id)
        ).all()

    def unfinished(self) -> Sequence[Job]:
        return self.session.scalars(
            select(Job).where(Job.status.in_(("queued", "running"))).order_by(Job.id)
        ).all()

    def recent(self, *, limit: int = 50, kind: str | None = None) -> Sequence[Job]:
        stmt = select(Job).order_by(Job.id.desc()).limit(limit)
        if kind:
            stmt = stmt.where(Job.kind == kind)
        return self.session.scalars(stmt).all()


class MirrorRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def by_name(self, name: str) -> Mirror | None:
        return self.session.scalar(select(Mirror).where(Mirror.name == name))

    def by_user(self, user_id: int) -> Mirror | None:
        return self.session.scalar(select(Mirror).where(Mirror.user_id == user_id))

    def list(self) -> Sequence[Mirror]:
        return self.session.scalars(select(Mirror).order_by(Mirror.name)).all()

    def add(self, mirror: Mirror) -> Mirror:
        self.session.add(mirror)
        self.session.flush()
        return mirror
