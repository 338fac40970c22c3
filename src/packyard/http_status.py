"""Which HTTP status answers each domain error — shared by the two HTTP entry points (the REST
API and the web UI), so a refusal has the same status whichever way it was asked.

Outside the layers like ``asgi``: it knows only domain errors, and api/ and web/ import it.
"""

from __future__ import annotations

from packyard.domain import errors as e

__all__ = ["STATUS_BY_CODE", "status_for"]

STATUS_BY_CODE: dict[type[e.PackyardError], int] = {
    e.InvalidRequest: 400,
    e.UnknownStage: 400,
    e.NotAuthenticated: 401,
    e.NotAuthorized: 403,
    e.NotFound: 404,
    e.ArtifactConflict: 409,
    e.StageRequired: 409,
    e.ArtifactFailed: 409,
    e.ArtifactDeprecated: 409,
    e.ArtifactHeld: 409,
    e.ChangeControlRejected: 409,
    e.UploadTooLarge: 413,
    e.InvalidArtifact: 422,
    e.UnsafeArchive: 422,
    e.ChangeControlRequired: 422,
    e.ChangeControlUnavailable: 503,
    e.ConfigError: 500,
}


def status_for(exc: e.PackyardError) -> int:
    """The status of ``exc``'s most specific class in the table (400 when none is listed)."""
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_CODE:
            return STATUS_BY_CODE[cls]
    return 400
