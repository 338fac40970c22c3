"""How the web UI answers a refused request: an HTML page (or htmx fragment) with the same
code, message and hint the API would send, under the same HTTP status.

The status table mirrors ``api/errors.STATUS_BY_CODE`` (the web may not import the API);
tests/functional/web/test_web_errors.py checks that the two agree.
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
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_CODE:
            return STATUS_BY_CODE[cls]
    return 400
