"""Uploading files: deduplication, immutability, required metadata and where uploads land."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from tests.integration.conftest import (
    events,
    generic_bytes,
    make_user,
    stages_of,
    upload_bytes,
)

from packyard.bootstrap import Runtime
from packyard.domain.auth import Principal, Role
from packyard.domain.errors import (
    ArtifactConflict,
    InvalidArtifact,
    InvalidRequest,
    NotAuthorized,
)
from packyard.services import artifacts
from packyard.storage.blobs.local import LocalBlobStore


def _blobs(runtime: Runtime) -> set[str]:
    return set(runtime.blobs.iter_hashes())


def _package_of(runtime: Runtime, ref: str) -> str:
    with runtime.context() as ctx:
        return artifacts.resolve(ctx, ref).package.name


def _temp_files(runtime: Runtime) -> list[str]:
    store = runtime.blobs
    assert isinstance(store, LocalBlobStore)
    return sorted(p.name for p in store.tmp_dir.iterdir())


def test_upload_creates_an_artifact_in_the_first_stage_with_one_event(
    runtime: Runtime, uploader: Principal
) -> None:
    data = generic_bytes("first upload")

    result = upload_bytes(runtime, principal=uploader, data=data, filename="tool-1.2.3.bin")

    artifact = result.artifact
    assert result.created is True
    assert (artifact.format, artifact.name, artifact.version) == ("generic", "tool", "1.2.3")
    assert artifact.size == len(data)
    assert _package_of(runtime, artifact.sha256) == "tool"
    assert artifact.current_stage == "new"
    assert stages_of(runtime, artifact.sha256) == ["new"]
    with runtime.blobs.open(artifact.sha256) as stream:
        assert stream.read() == data
    [event] = events(runtime, action="artifact.upload")
    assert event.object_id == artifact.sha256
    assert event.actor == "ci-bot"
    assert event.after is not None
    assert event.after["stage"] == "new"
    assert event.reason == "integration test"
    assert _temp_files(runtime) == []


def test_identical_bytes_twice_are_one_artifact(runtime: Runtime, uploader: Principal) -> None:
    data = generic_bytes("same bytes")
    first = upload_bytes(runtime, principal=uploader, data=data, filename="tool-1.2.3.bin")

    second = upload_bytes(runtime, principal=uploader, data=data, filename="tool-1.2.3.bin")

    assert second.created is False
    assert second.artifact.id == first.artifact.id
    assert second.artifact.sha256 == first.artifact.sha256
    assert len(events(runtime, action="artifact.upload")) == 1
    assert _blobs(runtime) == {first.artifact.sha256}
    assert _temp_files(runtime) == []


def test_same_identity_with_different_bytes_is_a_conflict_naming_the_existing_artifact(
    runtime: Runtime, uploader: Principal
) -> None:
    original = upload_bytes(
        runtime, principal=uploader, data=generic_bytes("original"), filename="tool-1.2.3.bin"
    ).artifact

    with pytest.raises(ArtifactConflict) as info:
        upload_bytes(
            runtime, principal=uploader, data=generic_bytes("rebuilt"), filename="tool-1.2.3.bin"
        )

    error = info.value
    assert error.details["existing"] == original.sha256
    assert original.sha256[:12] in error.message
    assert "tool" in error.message and "1.2.3" in error.message
    assert error.hint is not None and "version" in error.hint
    # Nothing of the refused upload is left behind: no blob, no temp file, no row, no event.
    assert _blobs(runtime) == {original.sha256}
    assert _temp_files(runtime) == []
    assert len(events(runtime, action="artifact.upload")) == 1
    with runtime.context() as ctx:
        assert ctx.repos.artifacts.count() == 1


@pytest.mark.parametrize(
    ("missing", "message"),
    [("justification", "justification is required"), ("provenance", "provenance is required")],
)
def test_upload_without_justification_or_provenance_is_refused(
    runtime: Runtime, uploader: Principal, missing: str, message: str
) -> None:
    fields = {"justification": "because", "provenance": "ci job 7", missing: "   "}

    with pytest.raises(InvalidRequest, match=message):
        upload_bytes(
            runtime, principal=uploader, data=generic_bytes("x"), filename="tool-1.0.bin", **fields
        )

    assert _blobs(runtime) == set()
    assert _temp_files(runtime) == []
    assert events(runtime, action="artifact.upload") == []


def test_justification_and_provenance_are_optional_when_configured_off(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime(upload={"require_justification": False, "require_provenance": False})
    uploader, _ = make_user(runtime, name="ci-bot", role=Role.UPLOADER)

    result = upload_bytes(
        runtime,
        principal=uploader,
        data=generic_bytes("x"),
        filename="tool-1.0.bin",
        justification="",
        provenance="",
    )

    assert result.created is True
    assert result.artifact.justification == ""
    assert result.artifact.provenance == ""


def test_generic_file_without_a_version_is_invalid(runtime: Runtime, uploader: Principal) -> None:
    with pytest.raises(InvalidArtifact) as info:
        upload_bytes(
            runtime,
            principal=uploader,
            data=generic_bytes("no version"),
            filename="notes.bin",
            package="notes",
        )

    assert "carries no version" in info.value.message
    assert info.value.hint is not None and "--version" in info.value.hint
    assert _blobs(runtime) == set()
    assert _temp_files(runtime) == []


def test_version_given_by_the_uploader_names_a_generic_file(
    runtime: Runtime, uploader: Principal
) -> None:
    artifact = upload_bytes(
        runtime,
        principal=uploader,
        data=generic_bytes("named"),
        filename="notes.bin",
        package="notes",
        version="4.2",
    ).artifact

    assert (artifact.name, artifact.version) == ("notes", "4.2")
    assert _package_of(runtime, artifact.sha256) == "notes"


def test_viewer_cannot_upload(runtime: Runtime) -> None:
    viewer, _ = make_user(runtime, name="eve", role=Role.VIEWER)

    with pytest.raises(NotAuthorized, match="may not upload"):
        upload_bytes(runtime, principal=viewer, data=generic_bytes("x"), filename="tool-1.0.bin")

    assert _blobs(runtime) == set()


def test_upload_lands_in_the_first_stage_of_the_package_pipeline(
    make_runtime: Callable[..., Runtime],
) -> None:
    runtime = make_runtime(
        pipelines={
            "default": {"stages": [{"name": "new"}, {"name": "ci"}]},
            "short": {"stages": [{"name": "dev"}, {"name": "prod", "change_control": True}]},
        },
        package_pipelines={"notes-app": "short"},
    )
    uploader, _ = make_user(runtime, name="ci-bot", role=Role.UPLOADER)

    short = upload_bytes(
        runtime, principal=uploader, data=generic_bytes("notes"), filename="notes-app-2.0.bin"
    ).artifact
    default = upload_bytes(
        runtime, principal=uploader, data=generic_bytes("tool"), filename="tool-2.0.bin"
    ).artifact

    assert stages_of(runtime, short.sha256) == ["dev"]
    assert short.current_stage == "dev"
    assert stages_of(runtime, default.sha256) == ["new"]
