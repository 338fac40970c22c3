"""Database engine and the unit-of-work boundary.

``Database.session(write=...)`` is the only place a transaction begins and commits. On SQLite
a write session starts with ``BEGIN IMMEDIATE`` so concurrent writers queue on the database
lock instead of failing at commit time with "database is locked"; read sessions stay deferred
and, in WAL mode, never block behind writers. On PostgreSQL writers serialise on the rows
they lock (``SELECT ... FOR UPDATE`` in the repositories).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from packyard.domain.errors import PackyardError

__all__ = ["Database"]


class Database:
    """Owns the engine and hands out sessions that commit or roll back as a unit."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo, "future": True}
        if self.is_sqlite:
            # Threads of one server share the file; the busy timeout makes writers queue.
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
            self._write_engine: Engine = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            self._write_engine = self.engine
        self._read_factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._write_factory = sessionmaker(bind=self._write_engine, expire_on_commit=False)

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """A session whose transaction commits when the block ends cleanly, else rolls back."""
        factory = self._write_factory if write else self._read_factory
        session = factory()
        try:
            yield session
            if write:
                session.commit()
            else:
                session.rollback()
        except PackyardError as exc:
            # A refused gated action is audited: keep that record, nothing else was changed.
            if write and exc.keep_transaction:
                session.commit()
            else:
                session.rollback()
            raise
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so we can emit BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")
