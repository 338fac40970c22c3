"""/upload: a form whose script streams each file as the raw request body (as the API's
upload does, see docs/adr/0002) with a progress bar; POST /upload takes the session and the
CSRF header instead of a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from packyard.bootstrap import Runtime
from packyard.domain.auth import Action, Principal
from packyard.domain.errors import NotAuthorized, PackyardError, UploadTooLarge
from packyard.services import artifacts as artifact_service
from packyard.services.ports import BlobWriter
from packyard.web.deps import WebRoute, check_csrf, current_principal, get_runtime, render
from packyard.web.errors import status_for

__all__ = ["router"]

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/upload")
def upload_page(request: Request, me: Principal = Depends(current_principal)) -> Response:
    if not me.can(Action.UPLOAD):
        raise NotAuthorized(
            f"role {me.role.value!r} may not upload", hint="ask an admin for the uploader role"
        )
    with get_runtime(request).context() as ctx:
        settings = ctx.settings.upload
    return render(request, "upload.html", {"limits": settings})


def _error(exc: PackyardError) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": exc.code, "message": exc.message, "hint": exc.hint}},
        status_code=status_for(exc),
    )


@router.post("/upload", dependencies=[Depends(check_csrf)])
async def upload(
    request: Request,
    filename: Annotated[str, Query()],
    justification: str = "",
    provenance: str = "",
    package: str | None = None,
    version: str | None = None,
    me: Principal = Depends(current_principal),
) -> Response:
    """Stream the body into the blob store, then ingest: JSON in, JSON out (for the script)."""
    runtime = get_runtime(request)
    upload_request = artifact_service.UploadRequest(
        filename=filename,
        justification=justification,
        provenance=provenance,
        package=package or None,
        version=version or None,
    )
    limit = runtime.settings.upload.max_size
    try:
        with runtime.context() as ctx:
            artifact_service.check_upload_request(ctx, principal=me, request=upload_request)
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        writer = runtime.blobs.writer()
        try:
            async for chunk in request.stream():
                writer.write(chunk)
                if writer.size > limit:
                    raise _too_large(limit)
        except (ClientDisconnect, Exception):
            writer.abort()
            raise
        return await run_in_threadpool(_finish, runtime, me, writer, upload_request)
    except PackyardError as exc:
        return _error(exc)


def _too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(
        f"the upload exceeds the size limit of {limit} bytes",
        hint="ask an admin to raise [upload] max_size",
    )


def _finish(
    runtime: Runtime,
    principal: Principal,
    writer: BlobWriter,
    upload_request: artifact_service.UploadRequest,
) -> Response:
    with runtime.context(write=True) as ctx:
        result = artifact_service.ingest(
            ctx, principal=principal, writer=writer, request=upload_request
        )
        a = result.artifact
        body = {
            "id": a.sha256,
            "created": result.created,
            "name": a.name,
            "version": a.version,
            "format": a.format,
            "stage": a.current_stage,
            "url": f"/artifacts/{a.sha256}",
        }
    return JSONResponse(body, status_code=201 if result.created else 200)
