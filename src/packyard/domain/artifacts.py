"""Artifact formats and the metadata a codec extracts from a package file.

This module holds values only. Reading files is the job of ``packyard.formats`` (which turns a
stream into an ``ArtifactMetadata``) and storing them is the job of ``packyard.storage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["ArtifactFormat", "ArtifactMetadata", "ArtifactStatus"]


class ArtifactFormat(StrEnum):
    """What kind of package file an artifact is, detected from its content."""

    DEB = "deb"
    RPM = "rpm"
    PACMAN = "pacman"
    PACKET = "packet"
    MACOS_PKG = "macos-pkg"
    CONTAINER_IMAGE = "container-image"
    PYTHON_SDIST = "python-sdist"
    PYTHON_WHEEL = "python-wheel"
    DISK_IMAGE = "disk-image"
    APPIMAGE = "appimage"
    GENERIC = "generic"


class ArtifactStatus(StrEnum):
    """Lifecycle status independent of the stages reached.

    A hold is separate (``held`` flag on the artifact): a held artifact keeps its status and
    stages but cannot be promoted until released.
    """

    ACTIVE = "active"
    FAILED = "failed"
    DEPRECATED = "deprecated"


@dataclass(frozen=True, kw_only=True)
class ArtifactMetadata:
    """What a format codec read from a package file.

    Attributes:
        format: The detected format.
        name: Package name, or None when the file does not carry one (generic files).
        version: Full version string as the format's own tools print it (deb: ``[epoch:]upstream
            [-revision]``; rpm: ``[epoch:]version-release``; pacman: ``[epoch:]pkgver-pkgrel``).
        arch: Architecture as the format names it (``amd64``, ``x86_64``, ``all``, ``noarch``,
            ``any``) or None.
        distro: Distribution the file targets when the file says so (e.g. rpm ``el9`` from the
            release's dist tag), else None.
        kind: A finer label inside the format (``ova``, ``qcow2``, ``iso``, ``docker-save``...).
        relations: Dependency-like fields, lower-case keys (``depends``, ``pre-depends``,
            ``provides``, ``conflicts``, ``replaces``, ``requires``, ``recommends``...), each a
            tuple of the relation strings in file order.
        fields: Every other field the format carries, JSON-serialisable, keyed by the
            format's own field names (deb control field names, rpm tag names, .PKGINFO keys...).
    """

    format: ArtifactFormat
    name: str | None
    version: str | None
    arch: str | None = None
    distro: str | None = None
    kind: str | None = None
    relations: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fields: Mapping[str, Any] = field(default_factory=dict)
