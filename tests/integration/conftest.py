"""A real database for every integration test, on SQLite and on PostgreSQL.

Every test that asks for ``runtime`` (or ``make_runtime``/``db_url``) runs twice: once on a
fresh SQLite file and once on a fresh PostgreSQL database. PostgreSQL is a private server this
session starts on loopback (``fsync=off``; the data is thrown away) and stops at the end; each
test gets its own ``CREATE DATABASE``, migrated with Alembic and dropped afterwards. A fresh
database rather than a rolled-back transaction, because these tests are about what the unit of
work commits: refusals that must survive a failed request, and concurrent writers in their own
transactions.

The factories below are keyword-only functions that go through the services exactly as the API
does: users and tokens are made by ``services.users`` and turned into principals by
authenticating the token; files are streamed through the blob store and ingested.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from packyard.bootstrap import Runtime
from packyard.config import load_settings
from packyard.domain.audit import EventRecord
from packyard.domain.auth import SYSTEM, Principal, Role
from packyard.services import artifacts, promotions, users
from packyard.services.artifacts import IngestResult, UploadRequest
from packyard.storage.db.migrate import upgrade
from packyard.storage.db.models import Artifact
from packyard.storage.db.repositories import EventQuery, event_record

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"
BACKENDS = ["sqlite", "postgresql"]


# --------------------------------------------------------------------------- PostgreSQL server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        )


def _as_postgres(argv: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; as any other user it runs as that user.
    return ["runuser", "-u", PG_USER, "--", *argv] if os.geteuid() == 0 else argv


def _run(argv: list[str], *, what: str) -> None:
    done = subprocess.run(_as_postgres(argv), capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}", pytrace=False
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL 15 on 127.0.0.1 and a random port, for the whole session."""
    missing = [b for b in ("initdb", "pg_ctl", "postgres") if not (PG_BIN / b).is_file()]
    if missing:
        pytest.fail(
            f"PostgreSQL 15 server binaries not found in {PG_BIN} (missing: {', '.join(missing)}); "
            "the integration tests run on PostgreSQL too. Install them with "
            "`apt-get install postgresql-15` (Debian/Ubuntu).",
            pytrace=False,
        )
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.fail(
            "running as root but `runuser` is missing: PostgreSQL cannot run as root", pytrace=False
        )
    # On tmpfs when there is one: CREATE DATABASE per test is then ~10x faster.
    shm = Path("/dev/shm")
    root = Path(
        tempfile.mkdtemp(
            prefix="packyard-pg-", dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None
        )
    )
    if os.geteuid() == 0:
        shutil.chown(root, PG_USER, PG_USER)
    data = root / "data"
    _run(
        [
            str(PG_BIN / "initdb"),
            "-D",
            str(data),
            "-U",
            PG_USER,
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ],
        what="initdb",
    )
    port = _free_port()
    options = (
        f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    log = root / "postgres.log"
    start = subprocess.run(
        _as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(log),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ]
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if start.returncode != 0:
        server_log = log.read_text(errors="replace") if log.exists() else "(no log)"
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(
            f"PostgreSQL did not start:\n{start.stdout}\n{start.stderr}\n{server_log}",
            pytrace=False,
        )
    try:
        yield PostgresServer(host="127.0.0.1", port=port, user=PG_USER)
    finally:
        subprocess.run(
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"]
            ),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------ database and runtime


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for this test only."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'packyard.db'}"
        upgrade(url)
        yield url
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex}"
    with server.admin() as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = server.url(name)
        upgrade(url)
        yield url
    finally:
        with server.admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def make_runtime(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Runtime]]:
    """Factory: ``make_runtime(**settings)`` -> a Runtime on this test's database.

    Keyword arguments are settings, as command-line flags would give them (e.g.
    ``retention={"keep_failed": 1}``). Several runtimes share the one database.
    """
    for key in list(os.environ):
        if key.startswith("PACKYARD_"):
            monkeypatch.delenv(key)
    made: list[Runtime] = []

    def factory(**overrides: Any) -> Runtime:
        settings = load_settings(data_dir=tmp_path / "data", database_url=db_url, **overrides)
        runtime = Runtime.from_settings(settings, migrate=False)
        made.append(runtime)
        return runtime

    yield factory
    for runtime in made:
        runtime.close()


@pytest.fixture
def runtime(make_runtime: Callable[..., Runtime]) -> Runtime:
    """A Runtime with default settings on a fresh database."""
    return make_runtime()


# ------------------------------------------------------------------------------------ factories


def make_user(
    runtime: Runtime, *, name: str, role: Role, stages: list[str] | None = None
) -> tuple[Principal, str]:
    """Create a user and a token for it; returns the token's principal and secret."""
    with runtime.context(write=True) as ctx:
        users.create_user(ctx, principal=SYSTEM, name=name, role=role, stages=stages)
        secret = users.create_token(ctx, principal=SYSTEM, name="tests", user=name).secret
    with runtime.context() as ctx:
        return users.authenticate_token(ctx, secret), secret


def generic_bytes(label: str) -> bytes:
    """Bytes no codec claims (so they ingest as a generic file), distinct per label."""
    return f"packyard test payload: {label}\n".encode() * 8


def upload_bytes(
    runtime: Runtime,
    *,
    principal: Principal,
    data: bytes,
    filename: str,
    package: str | None = None,
    version: str | None = None,
    justification: str = "integration test",
    provenance: str = "pytest",
) -> IngestResult:
    """Stream ``data`` into the blob store and ingest it, committing as an upload request does."""
    writer = runtime.blobs.writer()
    try:
        writer.write(data)
        with runtime.context(write=True) as ctx:
            return artifacts.ingest(
                ctx,
                principal=principal,
                writer=writer,
                request=UploadRequest(
                    filename=filename,
                    package=package,
                    version=version,
                    justification=justification,
                    provenance=provenance,
                ),
            )
    finally:
        writer.abort()


def upload_generic(
    runtime: Runtime,
    *,
    principal: Principal,
    name: str = "tool",
    version: str = "1.0.0",
    package: str | None = None,
) -> Artifact:
    """Upload a generic ``<name>-<version>.bin`` and return its artifact."""
    result = upload_bytes(
        runtime,
        principal=principal,
        data=generic_bytes(f"{name} {version}"),
        filename=f"{name}-{version}.bin",
        package=package,
    )
    return result.artifact


def promote(
    runtime: Runtime,
    *,
    principal: Principal,
    ref: str,
    stage: str,
    change_control: str | None = None,
) -> promotions.TransitionResult:
    """Promote in a unit of work of its own (committed, or rolled back on error)."""
    with runtime.context(write=True) as ctx:
        return promotions.promote(
            ctx, principal=principal, ref=ref, stage=stage, change_control=change_control
        )


def promote_through(
    runtime: Runtime,
    *,
    principal: Principal,
    ref: str,
    stages: list[str],
    change_control: str | None = None,
) -> None:
    for stage in stages:
        promote(runtime, principal=principal, ref=ref, stage=stage, change_control=change_control)


def events(
    runtime: Runtime, *, action: str | None = None, object_id: str | None = None
) -> list[EventRecord]:
    """Committed audit events, oldest first, read in a fresh unit of work."""
    with runtime.context() as ctx:
        rows, _ = ctx.repos.events.search(
            EventQuery(action=action, object_id=object_id, descending=False, limit=10_000)
        )
        return [event_record(ev) for ev in rows]


def stages_of(runtime: Runtime, ref: str) -> list[str]:
    with runtime.context() as ctx:
        return [e.stage for e in artifacts.resolve(ctx, ref).stages]


@pytest.fixture
def admin(runtime: Runtime) -> Principal:
    principal, _ = make_user(runtime, name="root", role=Role.ADMIN)
    return principal


@pytest.fixture
def maintainer(runtime: Runtime) -> Principal:
    principal, _ = make_user(runtime, name="maint", role=Role.MAINTAINER)
    return principal


@pytest.fixture
def uploader(runtime: Runtime) -> Principal:
    principal, _ = make_user(runtime, name="ci-bot", role=Role.UPLOADER)
    return principal
