"""Concurrent requests for the same transition: exactly one wins, none fails."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from tests.integration.conftest import events, promote, stages_of, upload_generic

from packyard.bootstrap import Runtime
from packyard.domain.auth import Principal
from packyard.services import audit, promotions

THREADS = 8
ONE_WINNER = [False] * (THREADS - 1) + [True]


def _race(
    runtime: Runtime, *, principal: Principal, targets: list[tuple[str, str]]
) -> dict[str, list[bool]]:
    """Promote each (ref, stage) from THREADS threads at once, every thread in its own unit
    of work; returns the `changed` results per ref."""
    jobs = [target for target in targets for _ in range(THREADS)]
    barrier = threading.Barrier(len(jobs), timeout=30)

    def one(ref: str, stage: str) -> bool:
        barrier.wait()
        with runtime.context(write=True) as ctx:
            return promotions.promote(ctx, principal=principal, ref=ref, stage=stage).changed

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [(ref, pool.submit(one, ref, stage)) for ref, stage in jobs]
        results: dict[str, list[bool]] = {}
        for ref, future in futures:
            # .result() re-raises a thread's exception here, failing the test with it.
            results.setdefault(ref, []).append(future.result(timeout=60))
    return {ref: sorted(changed) for ref, changed in results.items()}


def test_concurrent_promotions_of_one_artifact_change_it_once(
    runtime: Runtime, uploader: Principal, maintainer: Principal
) -> None:
    sha = upload_generic(runtime, principal=uploader).sha256

    results = _race(runtime, principal=maintainer, targets=[(sha, "ci")])

    assert results == {sha: ONE_WINNER}
    assert stages_of(runtime, sha) == ["new", "ci"]
    assert len(events(runtime, action="artifact.promote", object_id=sha)) == 1
    assert events(runtime, action="artifact.promote.refused") == []


def test_concurrent_promotions_of_two_artifacts_keep_the_audit_chain_intact(
    runtime: Runtime, uploader: Principal, maintainer: Principal, admin: Principal
) -> None:
    first = upload_generic(runtime, principal=uploader, version="1.0").sha256
    second = upload_generic(runtime, principal=uploader, version="2.0").sha256
    promote(runtime, principal=maintainer, ref=second, stage="ci")

    results = _race(runtime, principal=maintainer, targets=[(first, "ci"), (second, "dev")])

    assert results == {first: ONE_WINNER, second: ONE_WINNER}
    assert stages_of(runtime, first) == ["new", "ci"]
    assert stages_of(runtime, second) == ["new", "ci", "dev"]
    with runtime.context() as ctx:
        report = audit.verify(ctx, principal=admin)
    assert report.ok, report.problem
    assert [e.seq for e in events(runtime)] == list(range(1, report.head_seq + 1))
