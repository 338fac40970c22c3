"""The composition root: builds the database, blob store and integrations from settings.

Entry points (api, cli, jobs) call ``Runtime.from_settings`` once and ``runtime.context(...)``
per unit of work. Nothing else decides which backend implements a port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from packyard.config import Settings
from packyard.integrations.change_control import HttpChangeControl
from packyard.services.context import Context
from packyard.services.ports import BlobStore, ChangeControl
from packyard.storage.blobs.local import LocalBlobStore
from packyard.storage.db.engine import Database
from packyard.storage.db.migrate import upgrade
from packyard.storage.db.repositories import Repositories

__all__ = ["Runtime"]


@dataclass(kw_only=True)
class Runtime:
    settings: Settings
    db: Database
    blobs: BlobStore
    change_control: ChangeControl | None

    @classmethod
    def from_settings(cls, settings: Settings, *, migrate: bool = True) -> Runtime:
        data_dir = settings.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        if migrate:
            upgrade(settings.resolved_database_url)
        change_control = (
            HttpChangeControl(settings.change_control) if settings.change_control.url else None
        )
        return cls(
            settings=settings,
            db=Database(settings.resolved_database_url),
            blobs=LocalBlobStore(Path(settings.resolved_blob_dir)),
            change_control=change_control,
        )

    @contextmanager
    def context(self, *, write: bool = False) -> Iterator[Context]:
        """One unit of work: commits on success, rolls back on error."""
        with self.db.session(write=write) as session:
            yield Context(
                repos=Repositories(session),
                settings=self.settings,
                blobs=self.blobs,
                change_control=self.change_control,
            )

    def close(self) -> None:
        self.db.dispose()
