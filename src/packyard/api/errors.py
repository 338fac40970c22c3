"""The one place domain errors become HTTP responses.

Body shape for every error: ``{"error": {"code", "message", "hint", "details"}}``. The codes
are documented in docs/api.md; clients branch on ``code``, people read ``message``/``hint``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from packyard.domain import errors as e
from packyard.http_status import STATUS_BY_CODE, status_for

__all__ = ["STATUS_BY_CODE", "error_body", "install_error_handlers"]


def error_body(
    code: str, message: str, hint: str | None = None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "hint": hint, "details": details or {}}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(e.PackyardError)
    async def _domain(request: Request, exc: e.PackyardError) -> JSONResponse:
        headers = None
        if isinstance(exc, e.NotAuthenticated):
            # Package managers (pacman's curl above all) send their user:token only after a
            # Basic challenge; API clients use bearer tokens.
            repos = request.url.path.startswith("/repos/")
            headers = {
                "WWW-Authenticate": 'Basic realm="Packyard repositories", charset="UTF-8"'
                if repos
                else "Bearer"
            }
        return JSONResponse(
            error_body(exc.code, exc.message, exc.hint, exc.details),
            status_code=status_for(exc),
            headers=headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()) if p not in ('body', 'query'))}: {err.get('msg')}"
            for err in exc.errors()
        ]
        return JSONResponse(
            error_body(
                "invalid_request",
                "; ".join(problems) or "invalid request",
                "check the parameters against /api/docs",
            ),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )
