"""The whole HTTP application: the REST API, the repositories under /repos and, as it
arrives, the web UI — plus the background job consumer that runs inside ``packyard serve``.
A composition root like ``bootstrap``: entry-point packages (api, web, jobs) stay independent
of each other and are only put together here.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from packyard.api.app import create_app as create_api_app
from packyard.bootstrap import Runtime
from packyard.jobs.queue import HueyJobQueue
from packyard.web.app import mount_web

__all__ = ["attach_jobs", "create_app", "prepare_publishing"]

log = logging.getLogger(__name__)


def attach_jobs(runtime: Runtime) -> HueyJobQueue:
    queue = HueyJobQueue(runtime)
    runtime.jobs = queue
    return queue


def prepare_publishing(runtime: Runtime) -> None:
    """First start: a signing key, and an initial publication of every channel so that every
    repository URL answers from the beginning (empty repositories are valid)."""
    from packyard.services.keys import ensure_signing_key
    from packyard.services.publish import schedule_initial_publish

    if runtime.signer is None:
        return
    with runtime.context(write=True) as ctx:
        ensure_signing_key(ctx)
        schedule_initial_publish(ctx)


def create_app(runtime: Runtime, *, run_jobs: bool = True) -> FastAPI:
    queue = runtime.jobs if isinstance(runtime.jobs, HueyJobQueue) else attach_jobs(runtime)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        workers = runtime.settings.jobs.workers
        if run_jobs and workers > 0:
            queue.start_embedded(workers=workers)
            recovered = queue.recover()
            if recovered:
                log.info("re-enqueued %d unfinished jobs", recovered)
        try:
            yield
        finally:
            queue.stop()
            if runtime.signer is not None:
                runtime.signer.close()

    app = create_api_app(runtime, lifespan=lifespan)
    mount_web(app, runtime)
    return app
