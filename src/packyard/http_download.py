"""Sending an artifact's file — shared by the two HTTP entry points (the REST API's
``GET /api/v1/artifacts/{ref}/file`` and the web UI's download link), so both answer with the
same headers.

Outside the layers like ``http_upload``: api/ and web/ import it; it uses services only
through their public functions.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

from fastapi.responses import FileResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.responses import Response

from packyard.bootstrap import Runtime
from packyard.services import artifacts as artifact_service

__all__ = ["artifact_download"]

_CHUNK = 1024 * 1024


def artifact_download(runtime: Runtime, ref: str) -> Response:
    """The file of the artifact ``ref`` (sha256, prefix or name@version) as an attachment
    under its uploaded name, with its sha256 as ETag and ``X-Checksum-Sha256``. A blob on
    local disk is sent by the server (Range and conditional requests included); one in a
    remote store is streamed through."""
    with runtime.context() as ctx:
        artifact = artifact_service.resolve(ctx, ref)
        sha, filename = artifact.sha256, artifact.filename
    headers = {"ETag": f'"{sha}"', "X-Checksum-Sha256": sha}
    path = runtime.blobs.local_path(sha)
    if path is not None:
        return FileResponse(
            path, filename=filename, media_type="application/octet-stream", headers=headers
        )
    stream = runtime.blobs.open(sha)

    def chunks() -> Iterator[bytes]:
        with stream:
            while chunk := stream.read(_CHUNK):
                yield chunk

    return StreamingResponse(
        chunks(),
        headers={**headers, "Content-Disposition": _attachment(filename)},
        media_type="application/octet-stream",
        # Also when the body is never read (the client went away first).
        background=BackgroundTask(stream.close),
    )


def _attachment(filename: str) -> str:
    """``Content-Disposition`` for ``filename``, as Starlette's FileResponse writes it (RFC 6266:
    percent-encoded ``filename*`` when the name is not plain ASCII, so a quote or a newline in
    an uploaded name cannot break the header)."""
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'
