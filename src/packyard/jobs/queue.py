"""The job queue: Huey with SQLite storage in the data dir (embedded default, consumer threads
inside ``packyard serve``) or Redis (``jobs.backend = "redis://..."``, ``packyard worker``
processes on many hosts).

The queue carries job ids only; the jobs table holds status, log and error. On start the
consumer re-enqueues jobs left ``queued`` or ``running`` by a crash.
"""

from __future__ import annotations

import logging
from typing import Any

from huey import RedisHuey, SqliteHuey
from huey.api import Huey
from huey.consumer import Consumer

from packyard.bootstrap import Runtime
from packyard.jobs.runner import run_job

__all__ = ["HueyJobQueue"]

log = logging.getLogger(__name__)


class _EmbeddedConsumer(Consumer):  # type: ignore[misc]
    def _set_signal_handlers(self) -> None:
        # Inside `packyard serve`, uvicorn owns the signals and stops us from its lifespan.
        pass


class HueyJobQueue:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.huey = self._make_huey(runtime)
        self._task = self.huey.task(retries=2, retry_delay=5, name="packyard.run_job")(self._run)
        self._consumer: Consumer | None = None

    @staticmethod
    def _make_huey(runtime: Runtime) -> Huey:
        backend = runtime.settings.jobs.backend
        if backend == "sqlite":
            return SqliteHuey(name="packyard", filename=str(runtime.settings.data_dir / "jobs.db"))
        if backend.startswith(("redis://", "rediss://", "unix://")):
            return RedisHuey(name="packyard", url=backend)
        from packyard.domain.errors import ConfigError

        raise ConfigError(
            f"unknown jobs.backend {backend!r}", hint='use "sqlite" or a redis:// URL'
        )

    def _run(self, job_id: int) -> str:
        return run_job(self.runtime, job_id)

    def enqueue(self, job_id: int) -> None:
        self._task(job_id)

    def recover(self) -> int:
        """Re-enqueue jobs a crash left unfinished; returns how many."""
        count = 0
        with self.runtime.context(write=True) as ctx:
            unfinished = list(ctx.repos.jobs.unfinished())
            for job in unfinished:
                job.status = "queued"
            ids = [j.id for j in unfinished]
        for job_id in ids:
            self.enqueue(job_id)
            count += 1
        return count

    def start_embedded(self, *, workers: int) -> None:
        """Consumer threads inside this process (``packyard serve``)."""
        self._consumer = _EmbeddedConsumer(
            self.huey,
            workers=workers,
            worker_type="thread",
            periodic=False,
            check_worker_health=False,
            initial_delay=0.05,
            max_delay=0.5,
            backoff=1.5,
        )
        self._consumer.start()

    def run_foreground(self, *, workers: int) -> None:
        """A dedicated worker process (``packyard worker``); returns on SIGINT/SIGTERM."""
        consumer = Consumer(
            self.huey,
            workers=workers,
            worker_type="thread",
            periodic=False,
            initial_delay=0.05,
            max_delay=1.0,
            backoff=1.5,
        )
        consumer.run()

    def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None

    def describe(self) -> dict[str, Any]:
        return {"backend": self.runtime.settings.jobs.backend, "pending": self.huey.pending_count()}
