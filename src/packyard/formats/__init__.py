"""Package-file codecs: bytes in, ``ArtifactMetadata`` out.

``inspect_artifact`` detects a file's format from its content and reads its metadata; the
per-format modules (``deb``, ``rpm``, ``pacman``, ``packet``, ``macos_pkg``, ``other``) hold the
parsers, and ``safetar`` the archive-member safety rules shared with the device agent.

This package does no network or database I/O and never loads a whole file into memory. The
single place that writes files is ``safetar.safe_extract``. Repository index writers are not
here yet.
"""

from __future__ import annotations

from .detect import inspect_artifact

__all__ = ["inspect_artifact"]
