"""What every service call gets: repositories over the current unit of work, settings, ports."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from packyard.config import Settings
from packyard.domain.pipelines import Pipeline
from packyard.services.ports import BlobStore, ChangeControl, JobQueue, PublicationStore, Signer
from packyard.storage.db.repositories import Repositories

__all__ = ["Context", "utcnow"]


def utcnow() -> datetime:
    """Naive UTC now, microsecond precision (what the database stores)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(kw_only=True)
class Context:
    repos: Repositories
    settings: Settings
    blobs: BlobStore
    change_control: ChangeControl | None = None
    signer: Signer | None = None
    publications: PublicationStore | None = None
    jobs: JobQueue | None = None
    now: Callable[[], datetime] = utcnow
    _pipelines: dict[str, Pipeline] | None = field(default=None, repr=False)
    #: Run by the unit-of-work boundary after a successful commit (never on rollback):
    #: enqueueing jobs, switching snapshots live — things that must not happen if the rows
    #: that justify them are rolled back.
    callbacks: list[Callable[[], object]] = field(default_factory=list, repr=False)

    def after_commit(self, callback: Callable[[], object]) -> None:
        self.callbacks.append(callback)

    @property
    def pipelines(self) -> dict[str, Pipeline]:
        if self._pipelines is None:
            self._pipelines = self.settings.build_pipelines()
        return self._pipelines
