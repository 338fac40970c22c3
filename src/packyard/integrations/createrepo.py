"""Per-package rpm repository metadata through createrepo_c's Python bindings.

createrepo_c reads the rpm header exactly as createrepo does (file lists, changelogs, header
byte range, dependency flags), which is what dnf expects; we only ask it for the XML chunks of
one package at a time so publications can be assembled incrementally (formats/rpm_repo.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import createrepo_c as cr

from packyard.domain.errors import InvalidArtifact

__all__ = ["RpmChunks", "rpm_chunks"]

CHANGELOG_LIMIT = 10


@dataclass(frozen=True, kw_only=True)
class RpmChunks:
    primary: str
    filelists: str
    other: str


def rpm_chunks(path: Path, *, location_href: str) -> RpmChunks:
    """The primary/filelists/other ``<package>`` chunks of the rpm at ``path``."""
    try:
        package = cr.package_from_rpm(str(path), cr.SHA256, location_href, None, CHANGELOG_LIMIT)
    except Exception as exc:  # createrepo_c raises its own error type for unreadable rpms
        raise InvalidArtifact(
            f"createrepo_c could not read the rpm: {exc}", hint="rebuild the package with rpmbuild"
        ) from exc
    # createrepo_c writes the file's mtime as <time file=...>: here the same signed rpm sits
    # in a temporary file once and in the blob store after, a second apart at times, and the
    # entry must not depend on that. The build time is the package's own (dnf shows neither).
    package.time_file = package.time_build
    return RpmChunks(
        primary=cr.xml_dump_primary(package),
        filelists=cr.xml_dump_filelists(package),
        other=cr.xml_dump_other(package),
    )
