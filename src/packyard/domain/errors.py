"""Domain errors.

Every refusal Packyard makes is one of these. Each carries a stable ``code`` (documented in
the API reference and used by clients to branch), a human message naming the problem, and a
``hint`` saying what to do about it. Only ``api/errors.py`` maps them to HTTP statuses and the
CLI maps them to exit codes; nothing here knows about either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ArtifactConflict",
    "ArtifactDeprecated",
    "ArtifactFailed",
    "ArtifactHeld",
    "ChangeControlRejected",
    "ChangeControlRequired",
    "ChangeControlUnavailable",
    "ConfigError",
    "InvalidArtifact",
    "InvalidRequest",
    "NotAuthenticated",
    "NotAuthorized",
    "NotFound",
    "PackyardError",
    "StageRequired",
    "UnknownStage",
    "UnsafeArchive",
    "UploadTooLarge",
]


class PackyardError(Exception):
    """Base of every domain error: a stable code, a message and a hint."""

    code: str = "error"
    #: Set by services that recorded the refusal in the audit log: the transaction boundary
    #: then commits (keeping that record) before the error propagates.
    keep_transaction: bool = False

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details: dict[str, Any] = dict(details or {})

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InvalidRequest(PackyardError):
    """The request is malformed or misses a required value."""

    code = "invalid_request"


class ConfigError(PackyardError):
    """The configuration is invalid."""

    code = "config_error"


class NotFound(PackyardError):
    """The named object does not exist."""

    code = "not_found"


class NotAuthenticated(PackyardError):
    """No valid credential was presented (missing, wrong, expired or revoked token)."""

    code = "not_authenticated"


class NotAuthorized(PackyardError):
    """The principal is known but its role or stage permissions do not allow the action."""

    code = "not_authorized"


class InvalidArtifact(PackyardError):
    """A file is not what it claims to be: truncated, garbage, or missing required metadata."""

    code = "invalid_artifact"


class UnsafeArchive(InvalidArtifact):
    """An archive holds members that would escape its root (``..``, absolute, links, devices)."""

    code = "unsafe_archive"


class UploadTooLarge(PackyardError):
    """An upload exceeds the configured size limit."""

    code = "upload_too_large"


class ArtifactConflict(PackyardError):
    """Another artifact with the same identity but different bytes exists."""

    code = "artifact_conflict"


class UnknownStage(PackyardError):
    """The stage is not part of the package's pipeline."""

    code = "unknown_stage"


class StageRequired(PackyardError):
    """The target stage requires earlier stages the artifact has not reached."""

    code = "stage_required"


class ChangeControlRequired(PackyardError):
    """The target stage requires a change-control id and none was given."""

    code = "change_control_required"


class ChangeControlRejected(PackyardError):
    """The ticket system said no to the given change-control id."""

    code = "change_control_rejected"


class ChangeControlUnavailable(PackyardError):
    """The ticket system could not be asked (down, timed out, answered nonsense)."""

    code = "change_control_unavailable"


class ArtifactFailed(PackyardError):
    """The artifact was marked failed and can no longer be promoted."""

    code = "artifact_failed"


class ArtifactDeprecated(PackyardError):
    """The artifact was deprecated and can no longer be promoted."""

    code = "artifact_deprecated"


class ArtifactHeld(PackyardError):
    """The artifact is on hold; release it before promoting."""

    code = "artifact_held"
