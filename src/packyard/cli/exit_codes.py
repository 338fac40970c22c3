"""The one exit-code table of the ``packyard`` command (documented in the README)."""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode", "exit_code_for"]


class ExitCode(IntEnum):
    OK = 0
    ERROR = 1  # unexpected failure
    USAGE = 2  # bad command line (Typer/Click's own code)
    NOT_AUTHENTICATED = 3
    NOT_AUTHORIZED = 4
    NOT_FOUND = 5
    REFUSED = 6  # a gate or a conflict refused the action
    INVALID_INPUT = 7  # bad file, bad request, too large
    UNREACHABLE = 8  # the server could not be reached
    INTEGRITY = 9  # scrub or audit verify found a problem
    CONFIG = 10  # invalid configuration


_BY_CODE = {
    "not_authenticated": ExitCode.NOT_AUTHENTICATED,
    "not_authorized": ExitCode.NOT_AUTHORIZED,
    "not_found": ExitCode.NOT_FOUND,
    "artifact_conflict": ExitCode.REFUSED,
    "stage_required": ExitCode.REFUSED,
    "change_control_required": ExitCode.REFUSED,
    "change_control_rejected": ExitCode.REFUSED,
    "change_control_unavailable": ExitCode.REFUSED,
    "artifact_failed": ExitCode.REFUSED,
    "artifact_deprecated": ExitCode.REFUSED,
    "artifact_held": ExitCode.REFUSED,
    "invalid_artifact": ExitCode.INVALID_INPUT,
    "unsafe_archive": ExitCode.INVALID_INPUT,
    "invalid_request": ExitCode.INVALID_INPUT,
    "unknown_stage": ExitCode.INVALID_INPUT,
    "upload_too_large": ExitCode.INVALID_INPUT,
    "config_error": ExitCode.CONFIG,
    "unreachable": ExitCode.UNREACHABLE,
    "integrity": ExitCode.INTEGRITY,
}


def exit_code_for(code: str) -> ExitCode:
    return _BY_CODE.get(code, ExitCode.ERROR)
