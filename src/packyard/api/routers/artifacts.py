"""/api/v1/artifacts: upload, query, download and lifecycle transitions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from packyard.api.deps import get_principal, get_runtime
from packyard.api.schemas import (
    ArtifactDetail,
    ArtifactOut,
    DemoteIn,
    ErrorBody,
    EventOut,
    GateOut,
    Page,
    PromoteIn,
    ReasonIn,
    StageEntryOut,
    TransitionOut,
    UploadOut,
)
from packyard.bootstrap import Runtime
from packyard.domain.artifacts import ArtifactStatus
from packyard.domain.auth import Principal
from packyard.http_download import artifact_download
from packyard.http_upload import receive_upload
from packyard.services import artifacts as artifact_service
from packyard.services import promotions
from packyard.services.context import Context
from packyard.services.packages import pipeline_name_for
from packyard.storage.db.models import Artifact
from packyard.storage.db.repositories import ArtifactQuery, EventQuery

__all__ = ["artifact_out", "router"]

router = APIRouter(prefix="/api/v1/artifacts", tags=["artifacts"])

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 413, 422, 503)
}
SortField = Literal[
    "uploaded_at", "name", "version", "format", "arch", "size", "stage", "status", "uploader"
]


def artifact_out(
    ctx: Context, artifact: Artifact, *, model: type[ArtifactOut] = ArtifactOut, **extra: object
) -> ArtifactOut:
    return model(
        id=artifact.sha256,
        sha256=artifact.sha256,
        package=artifact.package.name,
        pipeline=pipeline_name_for(ctx, artifact.package),
        format=artifact.format,
        kind=artifact.kind,
        name=artifact.name,
        version=artifact.version,
        arch=artifact.arch,
        distro=artifact.distro,
        size=artifact.size,
        filename=artifact.filename,
        provenance=artifact.provenance,
        justification=artifact.justification,
        uploaded_by=artifact.uploaded_by,
        uploaded_at=artifact.uploaded_at,
        status=artifact.status,
        status_reason=artifact.status_reason,
        held=artifact.held,
        hold_reason=artifact.hold_reason,
        current_stage=artifact.current_stage,
        stages=[
            StageEntryOut(
                stage=e.stage,
                entered_at=e.entered_at,
                entered_by=e.entered_by,
                change_control=e.change_control,
                note=e.note,
            )
            for e in artifact.stages
        ],
        relations={k: list(v) for k, v in (artifact.relations or {}).items()},
        download_url=f"/api/v1/artifacts/{artifact.sha256}/file",
        **extra,
    )


@router.post(
    "",
    status_code=201,
    response_model=UploadOut,
    responses={
        200: {"model": UploadOut, "description": "Identical bytes were already stored"},
        **ERRORS,
    },
    summary="Upload a package file (raw request body, streamed)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload(
    request: Request,
    response: Response,
    filename: Annotated[
        str,
        Query(description="Original file name (labels only; the format is detected from content)"),
    ],
    justification: Annotated[str, Query(description="Why this file should be deployed")] = "",
    provenance: Annotated[
        str, Query(description="Where it came from: CI job, build id, commit")
    ] = "",
    package: Annotated[
        str | None, Query(description="Package to group it under; default: its name")
    ] = None,
    name: Annotated[str | None, Query(description="Name, for files that carry none")] = None,
    version: Annotated[str | None, Query(description="Version, for files that carry none")] = None,
    arch: Annotated[str | None, Query()] = None,
    distro: Annotated[str | None, Query()] = None,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> UploadOut:
    upload_request = artifact_service.UploadRequest(
        filename=filename,
        justification=justification,
        provenance=provenance,
        package=package,
        name=name,
        version=version,
        arch=arch,
        distro=distro,
    )
    writer = await receive_upload(request, runtime, principal=principal, upload=upload_request)
    result = await run_in_threadpool(_finish_upload, runtime, principal, writer, upload_request)
    response.status_code = 201 if result.created else 200
    response.headers["Location"] = f"/api/v1/artifacts/{result.id}"
    return result


def _finish_upload(
    runtime: Runtime,
    principal: Principal,
    writer: object,
    upload_request: artifact_service.UploadRequest,
) -> UploadOut:
    with runtime.context(write=True) as ctx:
        result = artifact_service.ingest(
            ctx,
            principal=principal,
            writer=writer,  # type: ignore[arg-type]
            request=upload_request,
        )
        out = artifact_out(ctx, result.artifact, model=UploadOut, created=result.created)
    assert isinstance(out, UploadOut)
    return out


@router.get(
    "",
    response_model=Page[ArtifactOut],
    responses=ERRORS,
    summary="List, filter, sort and page artifacts",
)
def list_artifacts(
    package: str | None = None,
    stage: str | None = None,
    format: str | None = None,
    arch: str | None = None,
    status: Annotated[Literal["active", "failed", "deprecated", "held"] | None, Query()] = None,
    uploader: str | None = None,
    q: Annotated[
        str | None,
        Query(description="Free text: name, version, file name, sha256, justification, provenance"),
    ] = None,
    sort: SortField = "uploaded_at",
    order: Literal["asc", "desc"] = "desc",
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 50,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> Page[ArtifactOut]:
    query = ArtifactQuery(
        package=package,
        stage=stage,
        format=format,
        arch=arch,
        status=status,
        uploader=uploader,
        q=q,
        sort=sort,
        descending=order == "desc",
        offset=(page - 1) * per_page,
        limit=per_page,
    )
    with runtime.context() as ctx:
        rows, total = artifact_service.search(ctx, query=query)
        return Page[ArtifactOut](
            items=[artifact_out(ctx, a) for a in rows], total=total, page=page, per_page=per_page
        )


@router.get(
    "/{ref}",
    response_model=ArtifactDetail,
    responses=ERRORS,
    summary="One artifact, with the gates open for its next stage",
)
def show_artifact(
    ref: str, principal: Principal = Depends(get_principal), runtime: Runtime = Depends(get_runtime)
) -> ArtifactDetail:
    with runtime.context() as ctx:
        artifact = artifact_service.resolve(ctx, ref)
        next_stage, gates = promotions.open_gates(ctx, artifact=artifact, principal=principal)
        out = artifact_out(
            ctx,
            artifact,
            model=ArtifactDetail,
            fields=artifact.fields or {},
            next_stage=next_stage,
            open_gates=[
                GateOut(code=g.code, message=g.error.message, hint=g.error.hint) for g in gates
            ],
        )
    assert isinstance(out, ArtifactDetail)
    return out


@router.get(
    "/{ref}/file",
    responses={200: {"content": {"application/octet-stream": {}}}, **ERRORS},
    summary="Download the artifact's file",
)
def download(
    ref: str, principal: Principal = Depends(get_principal), runtime: Runtime = Depends(get_runtime)
) -> Response:
    return artifact_download(runtime, ref)


@router.get(
    "/{ref}/events",
    response_model=Page[EventOut],
    responses=ERRORS,
    summary="The artifact's audit trail",
)
def artifact_events(
    ref: str,
    page: Annotated[int, Query(ge=1)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 100,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> Page[EventOut]:
    with runtime.context() as ctx:
        artifact = artifact_service.resolve(ctx, ref)
        rows, total = ctx.repos.events.search(
            EventQuery(
                object_type="artifact",
                object_id=artifact.sha256,
                descending=False,
                offset=(page - 1) * per_page,
                limit=per_page,
            )
        )
        return Page[EventOut](
            items=[EventOut.model_validate(r, from_attributes=True) for r in rows],
            total=total,
            page=page,
            per_page=per_page,
        )


def _transition(runtime: Runtime, fn: object, **kwargs: object) -> TransitionOut:
    with runtime.context(write=True) as ctx:
        result = fn(ctx, **kwargs)  # type: ignore[operator]
        return TransitionOut(changed=result.changed, artifact=artifact_out(ctx, result.artifact))


@router.post(
    "/{ref}/promote",
    response_model=TransitionOut,
    responses=ERRORS,
    summary="Promote into a stage (idempotent: changed=false when already there)",
)
def promote(
    ref: str,
    body: PromoteIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> TransitionOut:
    return _transition(
        runtime,
        promotions.promote,
        principal=principal,
        ref=ref,
        stage=body.stage,
        change_control=body.change_control,
        note=body.note,
    )


@router.post(
    "/{ref}/demote",
    response_model=TransitionOut,
    responses=ERRORS,
    summary="Remove from a stage (default: the highest) and every stage requiring it",
)
def demote(
    ref: str,
    body: DemoteIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> TransitionOut:
    return _transition(
        runtime, promotions.demote, principal=principal, ref=ref, stage=body.stage, note=body.note
    )


@router.post(
    "/{ref}/hold", response_model=TransitionOut, responses=ERRORS, summary="Hold: block promotions"
)
def hold(
    ref: str,
    body: ReasonIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> TransitionOut:
    return _transition(
        runtime, promotions.set_hold, principal=principal, ref=ref, held=True, reason=body.reason
    )


@router.post(
    "/{ref}/release", response_model=TransitionOut, responses=ERRORS, summary="Release a hold"
)
def release(
    ref: str,
    body: ReasonIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> TransitionOut:
    return _transition(
        runtime, promotions.set_hold, principal=principal, ref=ref, held=False, reason=body.reason
    )


@router.post(
    "/{ref}/fail",
    response_model=TransitionOut,
    responses=ERRORS,
    summary="Mark failed: leaves every channel, can no longer be promoted",
)
def fail(
    ref: str,
    body: ReasonIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> TransitionOut:
    return _transition(
        runtime,
        promotions.set_status,
        principal=principal,
        ref=ref,
        status=ArtifactStatus.FAILED,
        reason=body.reason,
    )


@router.post(
    "/{ref}/deprecate",
    response_model=TransitionOut,
    responses=ERRORS,
    summary="Mark deprecated: leaves every channel, can no longer be promoted",
)
def deprecate(
    ref: str,
    body: ReasonIn,
    principal: Principal = Depends(get_principal),
    runtime: Runtime = Depends(get_runtime),
) -> TransitionOut:
    return _transition(
        runtime,
        promotions.set_status,
        principal=principal,
        ref=ref,
        status=ArtifactStatus.DEPRECATED,
        reason=body.reason,
    )
