"""Executing one job row: mark it running, call the service, record the outcome and log.

Job arguments are ids and names only; the job re-reads everything it needs. A job whose row
is no longer ``queued`` (another worker took it, or it ran already) is skipped, so a job
enqueued twice runs once.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from packyard.bootstrap import Runtime
from packyard.domain.errors import PackyardError
from packyard.services import publish as publish_service
from packyard.services.context import utcnow

__all__ = ["run_job"]

log = logging.getLogger(__name__)


def run_job(runtime: Runtime, job_id: int) -> str:
    """Run job ``job_id``; returns its final status."""
    with runtime.context(write=True) as ctx:
        job = ctx.repos.jobs.lock(job_id)
        if job is None or job.status != "queued":
            return job.status if job else "missing"
        job.status = "running"
        job.started_at = utcnow()
        kind, args = job.kind, dict(job.args or {})
    lines: list[str] = []
    status, error = "succeeded", None
    try:
        _dispatch(runtime, kind, args, lines.append)
    except PackyardError as exc:
        status, error = "failed", str(exc)
        log.warning("job %s (%s) failed: %s", job_id, kind, exc)
    except Exception as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        lines.append(traceback.format_exc())
        log.exception("job %s (%s) crashed", job_id, kind)
    with runtime.context(write=True) as ctx:
        job = ctx.repos.jobs.lock(job_id)
        assert job is not None
        job.status, job.error, job.finished_at = status, error, utcnow()
        job.log = "\n".join(lines)[-64_000:]
    return status


def _dispatch(runtime: Runtime, kind: str, args: dict[str, Any], log_line: Any) -> None:
    if kind == "publish":
        results = publish_service.publish(
            runtime.context,
            stages=args.get("stages"),
            formats=args.get("formats"),
            full=bool(args.get("full")),
            recompute=bool(args.get("recompute")),
            trigger=str(args.get("trigger") or "job"),
            log=log_line,
        )
        if runtime.settings.publish.s3.targets:
            from packyard.integrations.s3 import open_object_store
            from packyard.services.s3_push import push_configured

            push_configured(
                runtime.context,
                published=[r.channel for r in results],
                open_store=lambda url: open_object_store(runtime.settings.publish.s3, url),
                log=log_line,
            )
        return
    raise PackyardError(f"unknown job kind {kind!r}", hint="upgrade the worker")
