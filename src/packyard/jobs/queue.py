"""The job queue: Huey with SQLite storage in the data dir (embedded default, consumer threads
inside ``packyard serve``) or Redis (``jobs.backend = "redis://..."``, ``packyard worker``
processes on many hosts).

The queue carries job ids only; the jobs table holds status, log and error. On start the
consumer re-enqueues jobs left ``queued`` or ``running`` by a crash.
"""

from __future__ import annotations

import logging
import threading
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


class Housekeeper:
    """A thread that queues the publishes no stage change asks for (services/housekeeping.py:
    signatures to renew) every ``interval`` seconds, the first check shortly after start."""

    FIRST_CHECK = 5.0

    def __init__(self, runtime: Runtime, interval: float) -> None:
        self.runtime = runtime
        self.interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pky-housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def check(self) -> int:
        """One check; returns how many publish jobs it queued."""
        from packyard.services.housekeeping import schedule_due

        with self.runtime.context(write=True) as ctx:
            return len(schedule_due(ctx))

    def _loop(self) -> None:
        wait = min(self.FIRST_CHECK, self.interval)
        while not self._stopped.wait(wait):
            wait = self.interval
            try:
                self.check()
            except Exception:  # a database hiccup must not end the checks
                log.exception("the housekeeping check failed; next try in %.0f s", wait)


class HueyJobQueue:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.huey = self._make_huey(runtime)
        self._task = self.huey.task(retries=2, retry_delay=5, name="packyard.run_job")(self._run)
        self._consumer: Consumer | None = None
        self._housekeeper: Housekeeper | None = None

    def _start_housekeeping(self) -> None:
        interval = self.runtime.settings.publish.housekeeping_seconds
        if interval > 0 and self.runtime.signer is not None and self._housekeeper is None:
            self._housekeeper = Housekeeper(self.runtime, interval)
            self._housekeeper.start()

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
        self._start_housekeeping()

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
        self._start_housekeeping()
        try:
            consumer.run()
        finally:
            self.stop()

    def stop(self) -> None:
        if self._housekeeper is not None:
            self._housekeeper.stop()
            self._housekeeper = None
        if self._consumer is not None:
            self._consumer.stop(graceful=True)
            self._consumer = None

    def describe(self) -> dict[str, Any]:
        return {"backend": self.runtime.settings.jobs.backend, "pending": self.huey.pending_count()}
