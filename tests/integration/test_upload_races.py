"""Concurrent writers on a fresh database: uploads and first events must not fail with
integrity errors (PostgreSQL runs them truly in parallel; SQLite serialises writers)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from tests.integration.conftest import generic_bytes, make_user, upload_bytes

from packyard.bootstrap import Runtime
from packyard.domain.auth import SYSTEM, Role
from packyard.domain.errors import ArtifactConflict
from packyard.services import users


def _at_once(n: int, fn: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        return fn(i)

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(run, i) for i in range(n)]
        return [f.exception() or f.result() for f in futures]


def test_first_audit_events_written_concurrently_all_succeed(runtime: Runtime) -> None:
    def create(i: int) -> str:
        with runtime.context(write=True) as ctx:
            users.create_user(ctx, principal=SYSTEM, name=f"user{i}", role=Role.VIEWER)
        return "ok"

    assert _at_once(4, create) == ["ok"] * 4


def test_concurrent_uploads_of_a_new_package_all_succeed(runtime: Runtime) -> None:
    uploader, _ = make_user(runtime, name="ci", role=Role.UPLOADER)

    def upload(i: int) -> bool:
        return upload_bytes(
            runtime, principal=uploader, data=generic_bytes(f"v{i}"), filename=f"newpkg-1.{i}.bin"
        ).created

    assert _at_once(4, upload) == [True] * 4


def test_concurrent_identical_uploads_give_one_artifact(runtime: Runtime) -> None:
    uploader, _ = make_user(runtime, name="ci", role=Role.UPLOADER)

    def upload(_: int) -> bool:
        return upload_bytes(
            runtime, principal=uploader, data=generic_bytes("same"), filename="pkg-1.0.bin"
        ).created

    assert sorted(_at_once(4, upload)) == [False, False, False, True]


def test_concurrent_clashing_uploads_give_one_artifact_and_conflicts(runtime: Runtime) -> None:
    uploader, _ = make_user(runtime, name="ci", role=Role.UPLOADER)

    def upload(i: int) -> Any:
        return upload_bytes(
            runtime,
            principal=uploader,
            data=generic_bytes(f"content {i}"),
            filename="clash-1.0.bin",
        ).created

    results = _at_once(4, upload)
    assert results.count(True) == 1
    assert all(isinstance(r, ArtifactConflict) for r in results if r is not True), results
    with pytest.raises(ArtifactConflict):
        upload(99)
