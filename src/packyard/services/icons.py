"""Package icons: uploaded (PNG or JPEG), else taken from the newest packet that carries an
``icon.png`` next to its ``control.json``, else a generated letter avatar.

Icons are stored content-addressed in the blob store and served at one stable URL per package
(``icon_url``), which notifications reuse. SVG uploads are refused on purpose: an SVG is a
document that can carry script, and sanitising it well is more than an icon is worth.
Not handled: icons inside debs, rpms or macOS pkgs (they sit deep in compressed payloads;
reading them on every view is not cheap) and resizing (browsers scale; the size is capped).
"""

from __future__ import annotations

import hashlib
import struct
import tarfile
from dataclasses import dataclass
from urllib.parse import quote

from packyard.domain.artifacts import ArtifactFormat
from packyard.domain.auth import Action, Principal
from packyard.domain.errors import InvalidRequest, NotAuthorized, NotFound
from packyard.services.audit import record
from packyard.services.context import Context
from packyard.storage.db.models import Package
from packyard.storage.db.repositories import ArtifactQuery

__all__ = [
    "ICON_MAX_BYTES",
    "ICON_MAX_PIXELS",
    "Icon",
    "icon_for",
    "icon_url",
    "letter_avatar_svg",
    "remove_icon",
    "set_icon",
    "sniff_image",
]

ICON_MAX_BYTES = 256 * 1024
ICON_MAX_PIXELS = 1024
#: A packet bigger than this is not opened to look for an icon (it would not be cheap).
PACKET_ICON_SCAN_LIMIT = 64 * 1024 * 1024
PACKET_ICON_NAMES = ("icon.png", "./icon.png")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Dark enough for white letters at WCAG AA contrast (>= 4.5:1).
_AVATAR_COLOURS = ("#1f5f8b", "#7a3e9d", "#8a4b08", "#1e6b3a", "#a61b4a", "#4a5568", "#0b6e6e")


@dataclass(frozen=True, kw_only=True)
class Icon:
    """What the icon URL serves. ``content`` is None for the letter avatar's SVG source."""

    source: str  # upload | packet | letter
    media_type: str
    content: bytes
    etag: str


def icon_url(package: str) -> str:
    """The stable path of a package's icon (no sign-in needed, so chat and mail can show it)."""
    return f"/packages/{quote(package, safe='')}/icon"


def sniff_image(data: bytes) -> str:
    """The media type of an acceptable icon, or raise InvalidRequest saying what is wrong."""
    if len(data) > ICON_MAX_BYTES:
        raise InvalidRequest(
            f"the icon is larger than {ICON_MAX_BYTES // 1024} KiB", hint="use a smaller image"
        )
    if data.startswith(_PNG_MAGIC) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        if not (0 < width <= ICON_MAX_PIXELS and 0 < height <= ICON_MAX_PIXELS):
            raise InvalidRequest(
                f"the icon is {width}x{height} pixels",
                hint=f"use at most {ICON_MAX_PIXELS}x{ICON_MAX_PIXELS}",
            )
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    raise InvalidRequest("the icon is not a PNG or JPEG image", hint="upload a .png or .jpg file")


def _package(ctx: Context, name: str) -> Package:
    package = ctx.repos.packages.by_name(name)
    if package is None:
        raise NotFound(
            f"package {name!r} does not exist", hint="list packages with `packyard packages list`"
        )
    return package


def set_icon(ctx: Context, *, principal: Principal, package: str, data: bytes) -> Package:
    """Store ``data`` as the package's icon (replacing any earlier one)."""
    if not principal.can(Action.MANAGE_PACKAGES):
        raise NotAuthorized(
            f"role {principal.role.value!r} may not change package icons", hint="ask a maintainer"
        )
    row = _package(ctx, package)
    media_type = sniff_image(data)
    writer = ctx.blobs.writer()
    try:
        writer.write(data)
        blob = writer.commit()
    except BaseException:
        writer.abort()
        raise
    before = {"icon": row.icon_sha256}
    row.icon_sha256 = blob.sha256
    row.icon_type = media_type
    record(
        ctx,
        actor=principal,
        action="package.set_icon",
        object_type="package",
        object_id=package,
        before=before,
        after={"icon": blob.sha256, "type": media_type, "size": blob.size},
    )
    return row


def remove_icon(ctx: Context, *, principal: Principal, package: str) -> Package:
    if not principal.can(Action.MANAGE_PACKAGES):
        raise NotAuthorized(
            f"role {principal.role.value!r} may not change package icons", hint="ask a maintainer"
        )
    row = _package(ctx, package)
    if row.icon_sha256 is not None:
        record(
            ctx,
            actor=principal,
            action="package.remove_icon",
            object_type="package",
            object_id=package,
            before={"icon": row.icon_sha256},
        )
        row.icon_sha256 = None
        row.icon_type = None
    return row


def icon_for(ctx: Context, *, package: str) -> Icon:
    """The icon to show for ``package`` (an unknown name gets a letter avatar, never a 404,
    so the public icon URL does not tell which packages exist)."""
    row = ctx.repos.packages.by_name(package)
    if row is not None and row.icon_sha256 and ctx.blobs.exists(row.icon_sha256):
        with ctx.blobs.open(row.icon_sha256) as stream:
            content = stream.read(ICON_MAX_BYTES + 1)
        return Icon(
            source="upload",
            media_type=row.icon_type or "image/png",
            content=content,
            etag=row.icon_sha256,
        )
    if row is not None:
        from_packet = _packet_icon(ctx, package)
        if from_packet is not None:
            return from_packet
    svg = letter_avatar_svg(package).encode()
    return Icon(
        source="letter",
        media_type="image/svg+xml",
        content=svg,
        etag=hashlib.sha256(svg).hexdigest(),
    )


def _packet_icon(ctx: Context, package: str) -> Icon | None:
    rows, _total = ctx.repos.artifacts.search(
        ArtifactQuery(package=package, format=ArtifactFormat.PACKET.value, limit=1)
    )
    if not rows or rows[0].size > PACKET_ICON_SCAN_LIMIT:
        return None
    artifact = rows[0]
    try:
        with (
            ctx.blobs.open(artifact.sha256) as stream,
            tarfile.open(fileobj=stream, mode="r|*") as tar,
        ):
            for member in tar:
                if member.name in PACKET_ICON_NAMES and member.isreg():
                    if member.size > ICON_MAX_BYTES:
                        return None
                    handle = tar.extractfile(member)
                    data = handle.read() if handle is not None else b""
                    if sniff_image(data) != "image/png":
                        return None
                    return Icon(
                        source="packet",
                        media_type="image/png",
                        content=data,
                        etag=f"{artifact.sha256[:32]}-icon",
                    )
    except (OSError, tarfile.TarError, EOFError, InvalidRequest):
        return None
    return None


def letter_avatar_svg(name: str) -> str:
    """A round avatar with the name's first letter, its colour fixed by the name."""
    letter = next((c for c in name if c.isalnum()), "?").upper()
    colour = _AVATAR_COLOURS[int(hashlib.sha256(name.encode()).hexdigest(), 16) % 7]
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 64" width="64" height="64" '
        f'role="img" aria-label="{_xml(letter)}">'
        f'<rect width="64" height="64" rx="14" fill="{colour}"/>'
        '<text x="32" y="43" font-family="system-ui,sans-serif" font-size="32" '
        f'font-weight="700" fill="#fff" text-anchor="middle">{_xml(letter)}</text></svg>'
    )


def _xml(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
