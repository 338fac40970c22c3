"""/api/v1/channels, /publications, /publish, /jobs and /keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from packyard.api.deps import get_principal, get_runtime
from packyard.api.routers.artifacts import ERRORS
from packyard.bootstrap import Runtime
from packyard.config import check_base_url
from packyard.domain.auth import Action, Principal
from packyard.domain.errors import InvalidRequest, NotAuthorized, NotFound
from packyard.services import keys as key_service
from packyard.services import publish as publish_service
from packyard.services import rollback as rollback_service
from packyard.services.context import utcnow
from packyard.storage.db.models import Job, Publication

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["publishing"])


class PublicationOut(BaseModel):
    channel: str
    snapshot: str
    created_at: datetime
    artifact_count: int
    signed_by: list[str]
    status: str
    trigger: str
    #: A rollback's publication: the snapshot whose content it serves again (re-signed).
    rollback_of: str | None = None


class ChannelOut(BaseModel):
    channel: str
    format: str
    stage: str
    url: str
    current: PublicationOut | None
    history: list[PublicationOut]


class PublishIn(BaseModel):
    stages: list[str] | None = Field(default=None, description="Default: every stage")
    formats: list[str] | None = Field(
        default=None, description="apt, dnf, pacman, packet, munki, files"
    )
    full: bool = Field(
        default=False,
        description="Rebuild every index from the stored entries, ignoring cached index blocks",
    )
    recompute: bool = Field(
        default=False,
        description="Also compute every index entry again from the package files (a repair)",
    )


class RollbackIn(BaseModel):
    snapshot: str | None = Field(
        default=None, description="Default: the snapshot before the current one"
    )


class JobOut(BaseModel):
    id: int
    kind: str
    args: dict[str, Any]
    status: str
    actor: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    log: str
    url: str


class KeyOut(BaseModel):
    fingerprint: str
    uid: str
    created_at: datetime
    status: str
    retire_after: datetime | None


class ClientConfigOut(BaseModel):
    stage: str
    fingerprints: list[str]
    public_key: str
    apt_setup: str
    apt_sources: str
    apt_sources_file: str
    dnf_repo: str
    dnf_repo_file: str
    pacman_setup: str
    pacman_conf: str
    munki: str
    #: The repositories need a token: ``<TOKEN>`` in the lines stands for a reader's.
    private: bool
    apt_auth: str
    apt_auth_file: str


class KeysOut(BaseModel):
    keys: list[KeyOut]
    signing: list[str]
    client_config: ClientConfigOut | None


class RotateIn(BaseModel):
    transition_days: int = Field(default=30, ge=0, le=3650)


class ImportIn(BaseModel):
    armored_secret_key: str
    transition_days: int = Field(default=30, ge=0, le=3650)


def _pub(p: Publication) -> PublicationOut:
    return PublicationOut(
        channel=p.channel,
        snapshot=p.snapshot,
        created_at=p.created_at,
        artifact_count=p.artifact_count,
        signed_by=list(p.signed_by or []),
        status=p.status,
        trigger=p.trigger,
    )


def _job(j: Job) -> JobOut:
    return JobOut(
        id=j.id,
        kind=j.kind,
        args=dict(j.args or {}),
        status=j.status,
        actor=j.actor,
        created_at=j.created_at,
        started_at=j.started_at,
        finished_at=j.finished_at,
        error=j.error,
        log=j.log or "",
        url=f"/api/v1/jobs/{j.id}",
    )


def _channel_url(runtime: Runtime, base: str, fmt: str, stage: str) -> str:
    if fmt == "apt":
        suite = runtime.settings.apt_distributions(stage)[0].suite
        return f"{base}/repos/apt/dists/{suite}/"
    if fmt == "munki":
        return f"{base}/repos/munki/catalogs/{stage}"
    return f"{base}/repos/{fmt}/{stage}/"


@router.get(
    "/channels",
    response_model=list[ChannelOut],
    responses=ERRORS,
    summary="Every channel with its live snapshot and recent history",
)
def list_channels(
    request: Request,
    channel: str | None = None,
    history: int = Query(default=10, ge=1, le=100),
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> list[ChannelOut]:
    base = runtime.settings.client_base_url(str(request.base_url))
    with runtime.context() as ctx:
        return [
            ChannelOut(
                channel=s.channel.name,
                format=s.channel.format,
                stage=s.channel.stage,
                url=_channel_url(runtime, base, s.channel.format, s.channel.stage),
                current=_pub(s.current) if s.current else None,
                history=[_pub(p) for p in s.history],
            )
            for s in publish_service.channel_status(ctx, channel=channel, history=history)
        ]


@router.get("/publications", response_model=list[PublicationOut], responses=ERRORS)
def list_publications(
    channel: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> list[PublicationOut]:
    with runtime.context() as ctx:
        if channel:
            publish_service.parse_channel(ctx, channel)
        return [_pub(p) for p in ctx.repos.publishing.publications(channel=channel, limit=limit)]


@router.post(
    "/publish",
    response_model=JobOut,
    status_code=202,
    responses=ERRORS,
    summary="Publish channels now (answers 202 with the job to follow)",
)
def publish(
    body: PublishIn,
    response: Response,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> JobOut:
    with runtime.context(write=True) as ctx:
        job = publish_service.request_publish(
            ctx,
            principal=principal,
            stages=body.stages,
            formats=body.formats,
            full=body.full,
            recompute=body.recompute,
        )
        out = _job(job)
    response.headers["Location"] = out.url
    return out


@router.post(
    "/channels/{fmt}/{stage}/rollback",
    response_model=PublicationOut,
    responses=ERRORS,
    summary="Serve an earlier kept snapshot's content again, re-dated and re-signed",
)
def rollback(
    fmt: str,
    stage: str,
    body: RollbackIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> PublicationOut:
    with runtime.context(write=True) as ctx:
        pub = rollback_service.rollback(
            ctx, principal=principal, channel=f"{fmt}/{stage}", to=body.snapshot
        )
        return _pub(pub).model_copy(update={"rollback_of": rollback_service.rollback_of(ctx, pub)})


@router.get("/jobs", response_model=list[JobOut], responses=ERRORS)
def list_jobs(
    kind: str | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> list[JobOut]:
    with runtime.context() as ctx:
        return [_job(j) for j in ctx.repos.jobs.recent(limit=limit, kind=kind)]


@router.get("/jobs/{job_id}", response_model=JobOut, responses=ERRORS)
def show_job(
    job_id: int,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> JobOut:
    with runtime.context() as ctx:
        job = ctx.repos.jobs.get(job_id)
        if job is None:
            raise NotFound(f"job {job_id} does not exist", hint="list jobs with GET /api/v1/jobs")
        return _job(job)


@router.get(
    "/keys",
    response_model=KeysOut,
    responses=ERRORS,
    summary="Signing keys and the client configuration for a stage",
)
def list_keys(
    request: Request,
    stage: str | None = None,
    base_url: str | None = None,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> KeysOut:
    settings = runtime.settings
    if stage is not None and stage not in settings.stage_names():
        raise NotFound(
            f"there is no stage {stage!r}", hint=f"stages: {', '.join(settings.stage_names())}"
        )
    if base_url:
        try:
            base = check_base_url(base_url)
        except ValueError as exc:
            raise InvalidRequest(
                str(exc), hint="pass the URL clients use, e.g. https://packages.example.com"
            ) from exc
    else:
        # publish.base_url, else the URL this request came in on (not the bind address).
        base = settings.client_base_url(str(request.base_url))
    with runtime.context() as ctx:
        rows = key_service.key_rows(ctx)
        config = None
        if stage:
            c = key_service.client_config(ctx, stage=stage, base_url=base)
            config = ClientConfigOut(**{k: getattr(c, k) for k in ClientConfigOut.model_fields})
        return KeysOut(
            keys=[_key_out(r) for r in rows],
            signing=key_service.signing_keys(ctx),
            client_config=config,
        )


@router.post(
    "/keys/rotate",
    response_model=KeyOut,
    responses=ERRORS,
    summary="New active key; the old one keeps signing for the transition period",
)
def rotate(
    body: RotateIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> KeyOut:
    with runtime.context(write=True) as ctx:
        row = key_service.rotate_signing_key(
            ctx, principal=principal, transition_days=body.transition_days
        )
        publish_service.schedule_publish(
            ctx, stages=ctx.settings.stage_names(), actor=principal.name, trigger="key rotation"
        )
        return _key_out(row)


@router.post("/keys/import", response_model=KeyOut, responses=ERRORS)
def import_key(
    body: ImportIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> KeyOut:
    if not principal.can(Action.MANAGE_USERS):
        raise NotAuthorized("only admins manage signing keys", hint="ask an admin")
    if "PRIVATE KEY BLOCK" not in body.armored_secret_key:
        raise InvalidRequest(
            "that is not an ASCII-armored secret key",
            hint="export it with gpg --armor --export-secret-keys FPR",
        )
    with runtime.context(write=True) as ctx:
        row = key_service.import_signing_key(
            ctx,
            principal=principal,
            armored_secret=body.armored_secret_key.encode(),
            transition_days=body.transition_days,
        )
        publish_service.schedule_publish(
            ctx, stages=ctx.settings.stage_names(), actor=principal.name, trigger="key import"
        )
        return _key_out(row)


def _key_out(row: Any) -> KeyOut:
    """A signing-key row as the API shows it."""
    return KeyOut(
        fingerprint=row.fingerprint,
        uid=row.uid,
        created_at=row.created_at,
        status=key_service.key_status(row, utcnow()),
        retire_after=row.retire_after,
    )
