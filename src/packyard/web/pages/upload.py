"""/upload: a form whose script streams each file as the raw request body (as the API's
upload does, see docs/adr/0002) with a progress bar; POST /upload takes the session and the
CSRF header instead of a bearer token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from packyard.bootstrap import Runtime
from packyard.domain.auth import Action, Principal
from packyard.domain.errors import NotAuthorized, PackyardError
from packyard.http_upload import receive_upload
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
    try:
        writer = await receive_upload(request, runtime, principal=me, upload=upload_request)
        return await run_in_threadpool(_finish, runtime, me, writer, upload_request)
    except PackyardError as exc:
        return _error(exc)


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
