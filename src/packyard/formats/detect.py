"""Format detection: from a stream's content to ``ArtifactMetadata``.

Detection looks at magic bytes first (ar, rpm lead, xar, zip, ELF, qcow2, ISO, MBR/GPT,
compression magics, ``ustar``), then, for tars, at member names. The uploader's file name is
never used to decide the format, only as a name/version fallback for disk images, AppImages
and sdists without them.

Order matters where signatures overlap: AppImages are ELF files, hybrid ISOs carry an MBR, and
a tar can be a pacman package, a packet, a container image, an sdist or an OVA; the more
specific claim wins. Files that claim a format and then break its rules raise
``InvalidArtifact``; files that claim nothing are ``GENERIC`` with no name or version.

Deliberately not handled: guessing from extensions, nested compression (``.tar.gz.xz``) and
archives Packyard does not understand (7z, rar, cpio...), which are all generic.
"""

from __future__ import annotations

from typing import BinaryIO

from packyard.domain.artifacts import ArtifactFormat, ArtifactMetadata

from . import deb, macos_pkg, other, packet, pacman, rpm
from ._io import HEAD_SIZE, read_exact, sniff_compression
from ._tarscan import is_tar_header, scan_tar

__all__ = ["inspect_artifact"]


def _generic() -> ArtifactMetadata:
    return ArtifactMetadata(format=ArtifactFormat.GENERIC, name=None, version=None)


def _inspect_tar(stream: BinaryIO, compression: str | None, *, filename: str) -> ArtifactMetadata:
    scan = scan_tar(stream, compression)
    if scan is None:
        return _generic()
    found = pacman.metadata_from_scan(scan)
    if found is not None:
        return found
    if packet.is_packet(scan):
        return packet.inspect_packet(stream, scan)
    found = (
        other.container_from_scan(scan)
        or other.sdist_from_scan(scan, filename=filename)
        or other.ova_from_scan(scan, filename=filename)
    )
    return found or _generic()


def inspect_artifact(stream: BinaryIO, *, filename: str) -> ArtifactMetadata:
    """Detect a package file's format from its content and read its metadata.

    Reads headers and metadata members in bounded chunks; the stream is never loaded whole.
    The stream's position is left undefined.

    Args:
        stream: A seekable binary file, positioned anywhere.
        filename: The uploader's original file name, a fallback for name and version only.

    Returns:
        The metadata; ``ArtifactFormat.GENERIC`` with no name or version when unrecognised.

    Raises:
        InvalidArtifact: the file claims a format but is truncated, corrupt or incomplete.
        UnsafeArchive: a packet holds members that would escape its root or are special.
    """
    stream.seek(0)
    head = read_exact(stream, HEAD_SIZE)

    if head.startswith(deb.AR_MAGIC):
        return deb.inspect_deb(stream) or _generic()
    if head.startswith(rpm.RPM_MAGIC):
        return rpm.inspect_rpm(stream)
    if head.startswith(macos_pkg.XAR_MAGIC):
        return macos_pkg.inspect_macos_pkg(stream) or _generic()
    if head.startswith(b"PK\x03\x04"):
        return other.wheel_metadata(stream) or _generic()
    if head.startswith(b"\x7fELF"):
        return other.appimage_metadata(head, filename=filename) or _generic()

    compression = sniff_compression(head)
    if compression is not None or is_tar_header(head):
        return _inspect_tar(stream, compression, filename=filename)

    return other.disk_image_from_head(head, filename=filename) or _generic()
