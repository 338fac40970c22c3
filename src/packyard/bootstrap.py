"""The composition root: builds the database, blob store, signer, publication store, job queue
and integrations from settings.

Entry points (api, cli, jobs) call ``Runtime.from_settings`` once and ``runtime.context(...)``
per unit of work. Nothing else decides which backend implements a port.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from packyard.config import Settings
from packyard.integrations.change_control import HttpChangeControl
from packyard.services.context import Context
from packyard.services.ports import BlobStore, ChangeControl, JobQueue, PublicationStore, Signer
from packyard.storage.blobs.local import LocalBlobStore
from packyard.storage.db.engine import Database
from packyard.storage.db.migrate import upgrade
from packyard.storage.db.repositories import Repositories
from packyard.storage.publications import LocalPublicationStore

__all__ = ["Runtime"]

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Runtime:
    settings: Settings
    db: Database
    blobs: BlobStore
    change_control: ChangeControl | None
    publications: PublicationStore
    signer: Signer | None = None
    jobs: JobQueue | None = None
    _closers: list[object] = field(default_factory=list, repr=False)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, migrate: bool = True, signer: bool = True
    ) -> Runtime:
        data_dir = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        if migrate:
            upgrade(settings.resolved_database_url)
        change_control = (
            HttpChangeControl(settings.change_control) if settings.change_control.url else None
        )
        runtime = cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            blobs=LocalBlobStore(Path(settings.resolved_blob_dir)),
            change_control=change_control,
            publications=LocalPublicationStore(
                data_dir / "publish",
                memory_bytes=settings.publish.block_cache_memory_mb * 1024 * 1024,
            ),
        )
        if signer:
            from packyard.integrations.gpg import GpgSigner

            runtime.signer = GpgSigner(data_dir / "gnupg")
        return runtime

    @contextmanager
    def context(self, *, write: bool = False) -> Iterator[Context]:
        """One unit of work: commits on success, rolls back on error; after a commit runs the
        callbacks services registered with ``ctx.after_commit``."""
        with self.db.session(write=write) as session:
            ctx = Context(
                repos=Repositories(session),
                settings=self.settings,
                blobs=self.blobs,
                change_control=self.change_control,
                signer=self.signer,
                publications=self.publications,
                jobs=self.jobs,
            )
            yield ctx
        for callback in ctx.callbacks:
            try:
                callback()
            except Exception:
                # The transaction is committed; a failed follow-up (e.g. the queue is down)
                # must not turn a successful request into an error. Jobs left queued are
                # picked up again by the worker on start.
                log.exception("after-commit callback failed")

    def close(self) -> None:
        if self.signer is not None:
            self.signer.close()
        self.db.dispose()
