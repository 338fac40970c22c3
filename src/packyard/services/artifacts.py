"""Ingest (upload) and query of artifacts.

Upload order, which is what makes a crash harmless: bytes stream into a temporary file that is
hashed on the way and fsynced; the file is inspected; only then is the blob renamed into the
store, and only after that are rows added (the caller commits them). A crash before the rename
leaves a temp file for ``gc``; a crash after it leaves an unreferenced blob for ``gc``; no row
ever points at a missing blob.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from packyard.domain.artifacts import ArtifactFormat, ArtifactMetadata, ArtifactStatus
from packyard.domain.auth import Action, Principal
from packyard.domain.errors import (
    ArtifactConflict,
    InvalidArtifact,
    InvalidRequest,
    NotAuthorized,
    NotFound,
)
from packyard.formats import inspect_artifact
from packyard.services.audit import record
from packyard.services.context import Context
from packyard.services.packages import pipeline_for
from packyard.services.ports import BlobWriter
from packyard.services.publish import repository_format, schedule_publish
from packyard.storage.db.models import Artifact, StageEntry
from packyard.storage.db.repositories import ArtifactQuery

__all__ = [
    "Facets",
    "IngestResult",
    "UploadRequest",
    "check_upload_request",
    "facets",
    "identity_of",
    "ingest",
    "iter_search",
    "known_formats",
    "resolve",
    "search",
]

_FILENAME_VERSION = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9+._-]*?)[-_]v?(?P<version>\d[A-Za-z0-9+.~]*?)"
    r"(?:[-_.](?:x86_64|amd64|aarch64|arm64|armv7l|i686|any|all|noarch))?"
    r"(?:\.(?:tar\.(?:gz|xz|zst|bz2)|[A-Za-z0-9]{1,8}))?$"
)
_SHA_PREFIX = re.compile(r"[0-9a-f]{8,64}")


@dataclass(frozen=True, kw_only=True)
class UploadRequest:
    """What the uploader says about a file (the file's own metadata wins where it has any)."""

    filename: str
    justification: str = ""
    provenance: str = ""
    package: str | None = None
    name: str | None = None
    version: str | None = None
    arch: str | None = None
    distro: str | None = None


@dataclass(frozen=True, kw_only=True)
class IngestResult:
    artifact: Artifact
    created: bool


def check_upload_request(ctx: Context, *, principal: Principal, request: UploadRequest) -> None:
    """Refuse before any byte is read: permissions and required fields."""
    if not principal.can(Action.UPLOAD):
        raise NotAuthorized(
            f"role {principal.role.value!r} may not upload",
            hint="use a token of an uploader, maintainer or admin",
        )
    if not request.filename or "/" in request.filename or request.filename in {".", ".."}:
        raise InvalidRequest("the upload needs a plain file name", hint="pass ?filename=NAME")
    if ctx.settings.upload.require_justification and not request.justification.strip():
        raise InvalidRequest(
            "a justification is required: say why this file should be deployed",
            hint="pass --justification TEXT",
        )
    if ctx.settings.upload.require_provenance and not request.provenance.strip():
        raise InvalidRequest(
            "a provenance is required: say where this file came from",
            hint="pass --provenance TEXT, e.g. the CI job URL and commit",
        )


def identity_of(
    *, format: str, name: str, version: str, arch: str | None, distro: str | None
) -> str:
    return "|".join([format, name, version, arch or "", distro or ""])


def _name_version(meta: ArtifactMetadata, request: UploadRequest) -> tuple[str, str]:
    name = meta.name or request.name or request.package
    version = meta.version or request.version
    if not (name and version):
        guess = _FILENAME_VERSION.match(request.filename)
        if guess:
            name = name or guess.group("name")
            version = version or guess.group("version")
    if not name or not version:
        raise InvalidArtifact(
            f"{request.filename!r} is a {meta.format.value} file that carries no "
            f"{'name' if not name else 'version'}",
            hint="give them with --package NAME --version VERSION",
        )
    return name, version


def ingest(
    ctx: Context, *, principal: Principal, writer: BlobWriter, request: UploadRequest
) -> IngestResult:
    """Turn a fully received upload into an artifact (or find the identical one)."""
    try:
        check_upload_request(ctx, principal=principal, request=request)
        blob = writer.finish()
        existing = ctx.repos.artifacts.by_sha256(blob.sha256)
        if existing is not None:
            writer.abort()
            return IngestResult(artifact=existing, created=False)
        with writer.temp_path.open("rb") as stream:
            meta = inspect_artifact(stream, filename=request.filename)
        name, version = _name_version(meta, request)
        arch = meta.arch or request.arch
        distro = meta.distro or request.distro
        identity = identity_of(
            format=meta.format.value, name=name, version=version, arch=arch, distro=distro
        )
        clash = ctx.repos.artifacts.by_identity(identity)
        if clash is not None:
            raise ArtifactConflict(
                f"{meta.format.value} {name} {version} ({arch or 'no arch'}) already exists as "
                f"artifact {clash.sha256[:12]} ({clash.filename}) with different content",
                hint="bump the version (or release) and upload again; artifacts are immutable",
                details={"existing": clash.sha256},
            )
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    now = ctx.now()
    package = ctx.repos.packages.get_or_create(request.package or name, now=now)
    pipeline = pipeline_for(ctx, package)
    first = pipeline.first.name
    inserted = ctx.repos.artifacts.add(
        Artifact(
            sha256=blob.sha256,
            identity=identity,
            package_id=package.id,
            format=meta.format.value,
            kind=meta.kind,
            name=name,
            version=version,
            arch=arch,
            distro=distro,
            size=blob.size,
            filename=request.filename,
            relations={k: list(v) for k, v in meta.relations.items()},
            fields=dict(meta.fields),
            provenance=request.provenance.strip(),
            justification=request.justification.strip(),
            uploaded_by=principal.name,
            uploaded_at=now,
            status=ArtifactStatus.ACTIVE.value,
            held=False,
            current_stage=first,
        )
    )
    if inserted is None:
        # A concurrent upload won the race (PostgreSQL; SQLite serialises writers).
        return _lost_race(ctx, blob_sha=blob.sha256, identity=identity)
    artifact = inserted
    ctx.repos.artifacts.add_stage(
        StageEntry(artifact_id=artifact.id, stage=first, entered_at=now, entered_by=principal.name)
    )
    record(
        ctx,
        actor=principal,
        action="artifact.upload",
        object_type="artifact",
        object_id=artifact.sha256,
        after={
            "package": package.name,
            "format": meta.format.value,
            "name": name,
            "version": version,
            "arch": arch,
            "size": blob.size,
            "filename": request.filename,
            "stage": first,
        },
        reason=request.justification.strip() or None,
    )
    ctx.repos.session.refresh(artifact)
    schedule_publish(
        ctx,
        formats=[repository_format(meta.format.value)],
        stages=[first],
        actor=principal.name,
        trigger="upload",
    )
    return IngestResult(artifact=artifact, created=True)


def _lost_race(ctx: Context, *, blob_sha: str, identity: str) -> IngestResult:
    same = ctx.repos.artifacts.by_sha256(blob_sha)
    if same is not None:
        return IngestResult(artifact=same, created=False)
    clash = ctx.repos.artifacts.by_identity(identity)
    raise ArtifactConflict(
        "another upload with the same identity but different content finished first"
        + (f" (artifact {clash.sha256[:12]})" if clash else ""),
        hint="bump the version (or release) and upload again; artifacts are immutable",
        details={"existing": clash.sha256 if clash else None},
    )


def resolve(ctx: Context, ref: str) -> Artifact:
    """An artifact by full sha256 or a unique prefix of at least 8 hex digits."""
    ref = ref.strip().lower().removeprefix("sha256:")
    if not _SHA_PREFIX.fullmatch(ref):
        raise InvalidRequest(
            f"{ref!r} is not an artifact id",
            hint="use the sha256 or a prefix of at least 8 hex digits",
        )
    if len(ref) == 64:
        artifact = ctx.repos.artifacts.by_sha256(ref)
        if artifact is None:
            raise NotFound(
                f"artifact {ref[:12]} does not exist", hint="list with `packyard artifacts list`"
            )
        return artifact
    matches = ctx.repos.artifacts.by_sha256_prefix(ref)
    if not matches:
        raise NotFound(
            f"no artifact id starts with {ref!r}", hint="list with `packyard artifacts list`"
        )
    if len(matches) > 1:
        raise InvalidRequest(f"{ref!r} matches more than one artifact", hint="give more digits")
    return matches[0]


def search(ctx: Context, *, query: ArtifactQuery) -> tuple[Sequence[Artifact], int]:
    return ctx.repos.artifacts.search(query)


def known_formats() -> list[str]:
    return [f.value for f in ArtifactFormat]


def iter_search(ctx: Context, *, query: ArtifactQuery) -> Iterator[Artifact]:
    """Every artifact matching ``query`` (offset and limit ignored), streamed: for exports."""
    return ctx.repos.artifacts.iter_matching(query)


@dataclass(frozen=True, kw_only=True)
class Facets:
    """The values the artifact filters offer."""

    formats: list[str]
    arches: list[str]
    uploaders: list[str]


def facets(ctx: Context) -> Facets:
    return Facets(
        formats=ctx.repos.artifacts.distinct_values("format"),
        arches=ctx.repos.artifacts.distinct_values("arch"),
        uploaders=ctx.repos.artifacts.distinct_values("uploader"),
    )
