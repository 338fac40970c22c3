"""The FastAPI application factory."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from packyard import __version__
from packyard.api.errors import install_error_handlers
from packyard.api.routers import artifacts, events, mirrors, packages, publications, repos, users
from packyard.bootstrap import Runtime

__all__ = ["create_app"]

DESCRIPTION = """Packyard's REST API. Authenticate with `Authorization: Bearer <token>`.

Errors always have the body `{"error": {"code", "message", "hint", "details"}}`; see the
`code` values in docs/api.md (e.g. `stage_required`, `change_control_required`,
`change_control_rejected`, `not_authorized`, `artifact_failed`, `artifact_conflict`)."""


def create_app(runtime: Runtime, *, lifespan: Any = None) -> FastAPI:
    app = FastAPI(
        lifespan=lifespan,
        title="Packyard",
        version=__version__,
        description=DESCRIPTION,
        docs_url="/api/docs",
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    for module in (artifacts, packages, events, users, publications, mirrors, repos):
        app.include_router(module.router)

    @app.get("/api/v1/health", tags=["system"], summary="Liveness and database check")
    def health() -> dict[str, str]:
        with runtime.context() as ctx:
            ctx.repos.users.count()
        return {"status": "ok", "version": __version__}

    return app
