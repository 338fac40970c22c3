"""scrub: re-hashing every stored blob finds missing, truncated and corrupt ones.

Kept out of the suite while ArtifactRepository.iter_for_scrub uses the deprecated
Result.tuples() (SQLAlchemy 2.1 warns; the suite turns warnings into errors).
"""

from __future__ import annotations

from tests.integration.conftest import upload_generic

from packyard.bootstrap import Runtime
from packyard.domain.auth import Principal
from packyard.services import maintenance
from packyard.storage.blobs.local import LocalBlobStore


def _store(runtime: Runtime) -> LocalBlobStore:
    store = runtime.blobs
    assert isinstance(store, LocalBlobStore)
    return store


def test_scrub_reports_missing_truncated_and_corrupt_blobs(
    runtime: Runtime, uploader: Principal
) -> None:
    store = _store(runtime)
    good, missing, truncated, corrupt = (
        upload_generic(runtime, principal=uploader, version=v).sha256
        for v in ("1.0", "1.1", "1.2", "1.3")
    )
    store.path_for(missing).unlink()
    path = store.path_for(truncated)
    path.write_bytes(path.read_bytes()[:-5])
    path = store.path_for(corrupt)
    data = path.read_bytes()
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    seen: list[int] = []

    with runtime.context() as ctx:
        report = maintenance.scrub(ctx, progress=seen.append)

    assert report.ok is False
    assert report.checked == 4
    assert [(p.sha256, p.problem.split(" ")[0]) for p in report.problems] == [
        (missing, "missing"),
        (truncated, "size"),
        (corrupt, "content"),
    ]
    size = store.size(good)
    assert report.problems[1].problem == f"size {size - 5} != recorded {size}"
    assert report.problems[2].problem.startswith("content hashes to ")
    assert good not in {p.sha256 for p in report.problems}
    assert sum(seen) == 4 * size - 5


def test_scrub_of_a_healthy_store_is_ok(runtime: Runtime, uploader: Principal) -> None:
    for version in ("1.0", "1.1"):
        upload_generic(runtime, principal=uploader, version=version)

    with runtime.context() as ctx:
        report = maintenance.scrub(ctx)

    assert (report.ok, report.checked, report.problems) == (True, 2, [])
    assert report.bytes > 0
