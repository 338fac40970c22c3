"""The whole HTTP application: the REST API plus, as they arrive, the web UI and the
repositories. A composition root like ``bootstrap``: entry-point packages (api, web) stay
independent of each other and are only put together here.
"""

from __future__ import annotations

from fastapi import FastAPI

from packyard.api.app import create_app as create_api_app
from packyard.bootstrap import Runtime

__all__ = ["create_app"]


def create_app(runtime: Runtime) -> FastAPI:
    return create_api_app(runtime)
