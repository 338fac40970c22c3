"""Mounting the web UI on the application: session cookie, static files, the pages."""

from __future__ import annotations

import logging

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from packyard.bootstrap import Runtime
from packyard.web.pages import (
    artifacts,
    audit,
    auth,
    channels,
    dashboard,
    packages,
    upload,
    users,
)
from packyard.web.sessions import SignedSessionMiddleware, load_or_create_secret
from packyard.web.templating import STATIC_DIR

__all__ = ["mount_web"]

log = logging.getLogger(__name__)

VENDOR_FILES = ("htmx.min.js", "pico.min.css", "chart.umd.min.js")


def mount_web(app: FastAPI, runtime: Runtime) -> None:
    """Add the web UI's pages to ``app`` (which already carries ``runtime`` in its state)."""
    missing = [f for f in VENDOR_FILES if not (STATIC_DIR / "vendor" / f).is_file()]
    if missing:
        log.warning(
            "web UI front-end files are missing (%s): run `./dev setup` to copy them into %s",
            ", ".join(missing),
            STATIC_DIR / "vendor",
        )
    secret = load_or_create_secret(runtime.settings.data_dir)
    app.add_middleware(SignedSessionMiddleware, secret=secret)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for module in (auth, dashboard, artifacts, packages, channels, upload, audit, users):
        app.include_router(module.router)
