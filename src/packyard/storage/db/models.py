"""SQLAlchemy models. Schema changes go through Alembic migrations (``alembic check`` in CI).

Timestamps are stored as naive UTC. Format codecs and domain values live elsewhere; these
classes are only the persistence shape.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "ApiToken",
    "Artifact",
    "AuditHead",
    "Base",
    "DerivedBlob",
    "Event",
    "IndexEntry",
    "Job",
    "MembershipChange",
    "Mirror",
    "Package",
    "PackageNote",
    "Publication",
    "SigningKey",
    "StageEntry",
    "User",
    "WebSession",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # Stages this user may promote into; NULL = all that the role allows.
    stages: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    # sha256 of the whole token: tokens are 256-bit random, so a fast hash is enough and
    # lets us look a token up by its hash.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    user: Mapped[User] = relationship(back_populates="tokens")


class Package(Base):
    __tablename__ = "packages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    # NULL = the pipeline from configuration (package_pipelines, else default_pipeline).
    pipeline: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # An uploaded icon, stored content-addressed in the blob store (PNG or JPEG only).
    icon_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    icon_type: Mapped[str | None] = mapped_column(String(32), nullable=True)

    artifacts: Mapped[list[Artifact]] = relationship(back_populates="package")


class Artifact(Base):
    __tablename__ = "artifacts"
    __table_args__ = (
        Index("ix_artifacts_package_uploaded", "package_id", "uploaded_at"),
        Index("ix_artifacts_format_name", "format", "name"),
        # Sort columns of the web UI's artifacts table (the others have indexes already).
        Index("ix_artifacts_name", "name"),
        Index("ix_artifacts_version", "version"),
        Index("ix_artifacts_size", "size"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    # format|name|version|arch|distro: a column so that NULL arch/distro still collide.
    identity: Mapped[str] = mapped_column(String(1024), unique=True)
    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id"), index=True)
    format: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    name: Mapped[str] = mapped_column(String(255))
    version: Mapped[str] = mapped_column(String(255))
    arch: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    distro: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger)
    filename: Mapped[str] = mapped_column(String(512))
    relations: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    provenance: Mapped[str] = mapped_column(Text, default="")
    justification: Mapped[str] = mapped_column(Text, default="")
    uploaded_by: Mapped[str] = mapped_column(String(64), index=True)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    status: Mapped[str] = mapped_column(String(16), default="active", index=True)
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    status_changed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Denormalised highest stage reached, for sorting/filtering large tables cheaply.
    current_stage: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)

    package: Mapped[Package] = relationship(back_populates="artifacts")
    stages: Mapped[list[StageEntry]] = relationship(
        back_populates="artifact", cascade="all, delete-orphan", order_by="StageEntry.id"
    )


class StageEntry(Base):
    __tablename__ = "stage_entries"
    __table_args__ = (
        UniqueConstraint("artifact_id", "stage"),
        Index("ix_stage_entries_stage", "stage"),
        # The dashboard's newest artifacts per stage and the charts' time windows.
        Index("ix_stage_entries_stage_entered", "stage", "entered_at"),
        Index("ix_stage_entries_entered_at", "entered_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    artifact_id: Mapped[int] = mapped_column(ForeignKey("artifacts.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(64))
    entered_at: Mapped[datetime] = mapped_column(DateTime)
    entered_by: Mapped[str] = mapped_column(String(64))
    change_control: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)

    artifact: Mapped[Artifact] = relationship(back_populates="stages")


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_object", "object_type", "object_id"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """One row: the chain's newest seq and hash. Locked FOR UPDATE to append in order."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class IndexEntry(Base):
    """A repository index entry of one artifact (apt stanza, rpm XML chunk, pacman desc...),
    computed once — artifacts are immutable — so publishing only concatenates."""

    __tablename__ = "index_entries"

    artifact_id: Mapped[int] = mapped_column(
        ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    content: Mapped[str] = mapped_column(Text)


class MembershipChange(Base):
    """A change that may alter what a channel lists: one row per artifact whose stages,
    columns, package or index entries changed. Written only by database triggers (migration
    0004, on stage_entries, artifacts, packages and index_entries), so no code path can
    forget it; read by publishers to update their cached channel listings
    (services/publish.py) and pruned after an hour.

    ``id`` grows with every row (AUTOINCREMENT: never reused) and, SQLite having one writer
    at a time, in commit order. On PostgreSQL writers commit out of id order, so readers go
    by ``txid``, the writing transaction's id, against their snapshot's oldest running one.
    """

    __tablename__ = "membership_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No foreign key: the change of a deleted artifact is what tells readers it is gone.
    artifact_id: Mapped[int] = mapped_column(Integer)
    txid: Mapped[int | None] = mapped_column(BigInteger, nullable=True, index=True)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)


class DerivedBlob(Base):
    """A file derived from an artifact for publishing (e.g. an rpm signed with our key)."""

    __tablename__ = "derived_blobs"

    artifact_id: Mapped[int] = mapped_column(
        ForeignKey("artifacts.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(128), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Publication(Base):
    """One immutable snapshot of a channel (a stage in one repository format)."""

    __tablename__ = "publications"
    __table_args__ = (Index("ix_publications_channel_created", "channel", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(128))  # "<format>/<stage>"
    format: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str] = mapped_column(String(64))
    snapshot: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    artifact_count: Mapped[int] = mapped_column(Integer)
    signed_by: Mapped[list[str]] = mapped_column(JSON, default=list)
    # current | superseded | rolled_back | pruned
    status: Mapped[str] = mapped_column(String(16), index=True)
    trigger: Mapped[str] = mapped_column(String(32))
    manifest_sha256: Mapped[str] = mapped_column(String(64))


class Job(Base):
    """A background job: arguments are ids only; status, log and error are kept."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), index=True)  # queued running succeeded failed
    actor: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    log: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class SigningKey(Base):
    """A repository signing key known to Packyard (secret material stays in the keyring)."""

    __tablename__ = "signing_keys"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    uid: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # active: signs; retiring: still signs until retire_after; retired: no longer signs
    status: Mapped[str] = mapped_column(String(16))
    retire_after: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Mirror(Base):
    """A downstream copy of publications; authenticates as its own user (role mirror)."""

    __tablename__ = "mirrors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    channels: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    last_status: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class PackageNote(Base):
    """A note on a package (PkgBot's package notes): who wrote what, when."""

    __tablename__ = "package_notes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    package_id: Mapped[int] = mapped_column(
        ForeignKey("packages.id", ondelete="CASCADE"), index=True
    )
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    text: Mapped[str] = mapped_column(Text)


class WebSession(Base):
    """A signed-in browser. The cookie carries a random secret; only its sha256 is stored, so
    signing out, disabling the user or changing the password ends sessions at once."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(DateTime)

    user: Mapped[User] = relationship()
