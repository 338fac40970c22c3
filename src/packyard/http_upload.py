"""Receiving an upload's body into the blob store — shared by the two HTTP entry points (the
REST API's ``POST /api/v1/artifacts`` and the web UI's upload page), so both refuse the same
things the same way.

Outside the layers like ``http_status``: api/ and web/ import it; it uses services only
through their public functions.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from packyard.bootstrap import Runtime
from packyard.domain.auth import Principal
from packyard.domain.errors import UploadTooLarge
from packyard.services import artifacts as artifact_service
from packyard.services.ports import BlobWriter

__all__ = ["receive_upload"]


async def receive_upload(
    request: Request,
    runtime: Runtime,
    *,
    principal: Principal,
    upload: artifact_service.UploadRequest,
) -> BlobWriter:
    """Check the request, then stream the body into a blob writer (hashed as it is written).

    Refused before a byte is stored: a request the principal may not make, or a declared
    Content-Length over ``upload.max_size``; refused while streaming: a body that grows past
    the limit. On any failure (also a client that disconnects) the partial blob is removed.
    The caller ingests the returned writer (in a thread: it reads the file).
    """
    limit = runtime.settings.upload.max_size
    with runtime.context() as ctx:
        artifact_service.check_upload_request(ctx, principal=principal, request=upload)
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
    return writer


def _too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(
        f"the upload exceeds the size limit of {limit} bytes",
        hint="ask an admin to raise [upload] max_size",
    )
