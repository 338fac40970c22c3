"""Container images, Python distributions, disk images and AppImages.

These are stored and promoted like any package but Packyard publishes no repository index
for them, so only identity and a few descriptive fields are read:

- ``docker save`` tars (``manifest.json`` with ``RepoTags``; kind ``docker-save``) and OCI
  image-layout tars (``oci-layout`` + ``index.json``; kind ``oci``);
- wheels (``*.dist-info/METADATA`` and ``WHEEL``) and sdists (``<name>-<ver>/PKG-INFO``);
- disk images: OVA (tar with ``*.ovf``), qcow2, ISO 9660, raw images with an MBR or GPT;
- AppImages (ELF with ``AI`` and type 1 or 2 at offset 8).

Deliberately not handled: image layers and signatures, zip sdists (pre-PEP 625), wheel
RECORD verification, OVF descriptor contents, VMDK/VHD/VDI images, and compressed disk images
(``.img.xz``: generic). Names from file names are a fallback, never used for detection.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from email.parser import BytesHeaderParser, BytesParser
from email.policy import compat32
from typing import Any, BinaryIO, Final, Literal

from packyard.domain.artifacts import ArtifactFormat, ArtifactMetadata
from packyard.domain.errors import InvalidArtifact

from ._io import read_bounded
from ._tarscan import TarScan

__all__ = [
    "appimage_metadata",
    "container_from_scan",
    "disk_image_from_head",
    "name_version_from_filename",
    "ova_from_scan",
    "parse_core_metadata",
    "sdist_from_scan",
    "wheel_metadata",
]

_METADATA_LIMIT: Final = 16 * 1024 * 1024
_EXTENSIONS: Final = re.compile(
    r"\.(ova|ovf|qcow2|iso|img|raw|appimage|tar\.gz|tgz|tar\.xz|tar\.zst|tar|zip)$", re.I
)
_ARCH_SUFFIX: Final = re.compile(r"[-_.](x86_64|amd64|aarch64|arm64|armhf|armv7l|i[3-6]86)$")
_NAME_VERSION: Final = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._+-]*?)[-_]v?"
    r"(?P<version>\d+(?:\.\d+)*(?:[-.+~]?(?:rc|alpha|beta|a|b|dev|post)\d*)?)$"
)
_ELF_MACHINES: Final = {3: "i686", 40: "armhf", 62: "x86_64", 183: "aarch64"}


def name_version_from_filename(filename: str) -> tuple[str | None, str | None]:
    """Split ``name-1.2.3[-arch].ext`` into name and version; (None, None) otherwise."""
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    stem = _EXTENSIONS.sub("", base)
    stem = _ARCH_SUFFIX.sub("", stem)
    match = _NAME_VERSION.match(stem)
    if match is None:
        return None, None
    return match.group("name"), match.group("version")


# --- containers ---------------------------------------------------------------------------


def _json(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def _split_reference(reference: str) -> tuple[str, str]:
    """``registry:5000/repo:tag`` -> (``registry:5000/repo``, ``tag``); no tag -> latest."""
    repo, sep, tag = reference.rpartition(":")
    if not sep or "/" in tag:
        return reference, "latest"
    return repo, tag


def _blob(scan: TarScan, digest: Any) -> Any:
    if not isinstance(digest, str) or ":" not in digest:
        return None
    algorithm, _, hexdigest = digest.partition(":")
    return _json(scan.kept.get(f"blobs/{algorithm}/{hexdigest}"))


def _platform(config: Any) -> dict[str, str]:
    if not isinstance(config, dict):
        return {}
    return {
        key: config[key]
        for key in ("architecture", "os", "variant")
        if isinstance(config.get(key), str)
    }


def container_from_scan(scan: TarScan) -> ArtifactMetadata | None:
    """Return metadata for a ``docker save`` or OCI layout tar, else None."""
    manifest = _json(scan.kept.get("manifest.json"))
    if isinstance(manifest, list) and manifest and isinstance(manifest[0], dict):
        first = manifest[0]
        tags = [tag for tag in first.get("RepoTags") or [] if isinstance(tag, str)]
        config_name = first.get("Config")
        config = None
        if isinstance(config_name, str):
            config = _json(scan.kept.get(config_name.removeprefix("./")))
        fields: dict[str, Any] = {
            "repo_tags": tags,
            "images": len(manifest),
            "layers": len(first.get("Layers") or []),
            **_platform(config),
        }
        name, version = _split_reference(tags[0]) if tags else (None, None)
        return ArtifactMetadata(
            format=ArtifactFormat.CONTAINER_IMAGE,
            name=name,
            version=version,
            arch=fields.get("architecture"),
            kind="docker-save",
            fields=fields,
        )
    index = _json(scan.kept.get("index.json"))
    if "oci-layout" in scan.top_names and isinstance(index, dict):
        manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
        name = version = None
        fields = {"manifests": len(manifests)}
        if manifests:
            annotations = manifests[0].get("annotations") or {}
            reference = annotations.get("io.containerd.image.name") or annotations.get(
                "org.opencontainers.image.ref.name"
            )
            if isinstance(reference, str) and reference:
                if ":" in reference or "/" in reference:
                    name, version = _split_reference(reference)
                else:
                    version = reference  # a bare ref.name is only the tag
            image_manifest = _blob(scan, manifests[0].get("digest"))
            if isinstance(image_manifest, dict):
                fields.update(
                    _platform(_blob(scan, (image_manifest.get("config") or {}).get("digest")))
                )
                fields["layers"] = len(image_manifest.get("layers") or [])
        return ArtifactMetadata(
            format=ArtifactFormat.CONTAINER_IMAGE,
            name=name,
            version=version,
            arch=fields.get("architecture"),
            kind="oci",
            fields=fields,
        )
    return None


# --- python -------------------------------------------------------------------------------

#: Core-metadata fields that may repeat (packaging's core metadata spec).
_MULTI_FIELDS: Final = frozenset(
    {
        "Classifier",
        "Dynamic",
        "License-File",
        "Obsoletes-Dist",
        "Platform",
        "Project-URL",
        "Provides-Dist",
        "Provides-Extra",
        "Requires-Dist",
        "Requires-External",
        "Supported-Platform",
    }
)


def parse_core_metadata(raw: bytes) -> dict[str, Any]:
    """Parse ``METADATA``/``PKG-INFO`` into a dict; repeatable fields become lists.

    The long description (header ``Description`` or the message body) is kept as
    ``Description``.
    """
    message = BytesParser(policy=compat32).parsebytes(raw)
    fields: dict[str, Any] = {}
    for key in message:
        if key in fields:
            continue
        values = [str(value) for value in message.get_all(key, [])]
        fields[key] = values if key in _MULTI_FIELDS else values[0]
    body = message.get_payload()
    if isinstance(body, str) and body.strip():
        fields["Description"] = body
    return fields


def _python_metadata(
    fields: dict[str, Any], *, fmt: ArtifactFormat, arch: str | None, extra: dict[str, Any]
) -> ArtifactMetadata:
    requires = fields.pop("Requires-Dist", [])
    return ArtifactMetadata(
        format=fmt,
        name=fields.get("Name"),
        version=fields.get("Version"),
        arch=arch,
        relations={"requires": tuple(requires)} if requires else {},
        fields={**fields, **extra},
    )


def _read_zip_member(archive: zipfile.ZipFile, name: str) -> bytes:
    try:
        with archive.open(name) as handle:
            return read_bounded(handle, limit=_METADATA_LIMIT, what=name)
    except InvalidArtifact:
        raise
    # zipfile reports damage with many types: unknown methods, "encrypted", bad CRC...
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        RuntimeError,  # includes NotImplementedError (unknown compression method)
        zlib.error,
    ) as exc:
        raise InvalidArtifact(
            f"the wheel's {name} cannot be read: {exc}",
            hint="the file is truncated or damaged; rebuild the wheel with `python -m build`",
            details={"format": "python-wheel"},
        ) from None


def wheel_metadata(stream: BinaryIO) -> ArtifactMetadata | None:
    """Return metadata for a wheel (zip with ``*.dist-info/METADATA`` and ``WHEEL``), else None.

    A zip whose directory cannot be read is "not a wheel" (still a file someone may store);
    a zip that lists a wheel's metadata which then cannot be read is an invalid wheel.

    Raises:
        InvalidArtifact: the METADATA or WHEEL member is damaged or oversized.
    """
    stream.seek(0)
    try:
        archive = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError):
        return None
    with archive:
        names = set(archive.namelist())
        dist_infos = sorted(
            {
                name.split("/", 1)[0]
                for name in names
                if name.count("/") == 1 and name.split("/", 1)[0].endswith(".dist-info")
            }
        )
        found = [d for d in dist_infos if {f"{d}/METADATA", f"{d}/WHEEL"} <= names]
        if not found:
            return None
        metadata = _read_zip_member(archive, f"{found[0]}/METADATA")
        wheel = _read_zip_member(archive, f"{found[0]}/WHEEL")
    wheel_fields = BytesHeaderParser(policy=compat32).parsebytes(wheel)
    tags = [str(tag) for tag in wheel_fields.get_all("Tag", [])]
    platforms = list(dict.fromkeys(tag.rsplit("-", 1)[-1] for tag in tags))
    extra: dict[str, Any] = {"wheel_tags": tags}
    if wheel_fields.get("Root-Is-Purelib") is not None:
        extra["root_is_purelib"] = str(wheel_fields["Root-Is-Purelib"]).strip() == "true"
    return _python_metadata(
        parse_core_metadata(metadata),
        fmt=ArtifactFormat.PYTHON_WHEEL,
        arch=".".join(platforms) or None,
        extra=extra,
    )


def sdist_from_scan(scan: TarScan, *, filename: str) -> ArtifactMetadata | None:
    """Return metadata for an sdist (one top directory holding ``PKG-INFO``), else None."""
    dirs = [name for name in scan.top_names if name.endswith("/")]
    if len(dirs) != 1 or len(scan.top_names) != 1:
        return None
    raw = scan.kept.get(f"{dirs[0]}PKG-INFO")
    if raw is None:
        return None
    fields = parse_core_metadata(raw)
    if not fields.get("Name") or not fields.get("Version"):
        fallback_name, fallback_version = name_version_from_filename(filename)
        fields.setdefault("Name", fallback_name)
        fields.setdefault("Version", fallback_version)
    return _python_metadata(fields, fmt=ArtifactFormat.PYTHON_SDIST, arch=None, extra={})


# --- disk images and AppImages ------------------------------------------------------------


def ova_from_scan(scan: TarScan, *, filename: str) -> ArtifactMetadata | None:
    """Return metadata for an OVA (a tar with a top-level ``*.ovf``), else None."""
    descriptors = sorted(name for name in scan.top_names if name.lower().endswith(".ovf"))
    if not descriptors:
        return None
    name, version = name_version_from_filename(filename)
    return ArtifactMetadata(
        format=ArtifactFormat.DISK_IMAGE,
        name=name,
        version=version,
        kind="ova",
        fields={"ovf": descriptors},
    )


def disk_image_from_head(head: bytes, *, filename: str) -> ArtifactMetadata | None:
    """Recognise qcow2, ISO 9660 and MBR/GPT raw images from the first 64 KiB."""
    fields: dict[str, Any]
    if head.startswith(b"QFI\xfb") and len(head) >= 32:
        kind = "qcow2"
        fields = {
            "qcow2_version": int.from_bytes(head[4:8], "big"),
            "virtual_size": int.from_bytes(head[24:32], "big"),
        }
    elif head[0x8001:0x8006] == b"CD001":
        kind = "iso"
        fields = {"volume_id": head[0x8028:0x8048].decode("ascii", "replace").strip()}
    elif head[512:520] == b"EFI PART":
        kind, fields = "img", {"partition_table": "gpt"}
    elif head[510:512] == b"\x55\xaa":
        kind, fields = "img", {"partition_table": "mbr"}
    else:
        return None
    name, version = name_version_from_filename(filename)
    return ArtifactMetadata(
        format=ArtifactFormat.DISK_IMAGE, name=name, version=version, kind=kind, fields=fields
    )


def appimage_metadata(head: bytes, *, filename: str) -> ArtifactMetadata | None:
    """Recognise an AppImage (ELF with ``AI\\x01`` or ``AI\\x02`` at offset 8), else None."""
    if not head.startswith(b"\x7fELF") or head[8:10] != b"AI" or head[10] not in (1, 2):
        return None
    byteorder: Literal["little", "big"] = "little" if head[5] == 1 else "big"
    machine = int.from_bytes(head[18:20], byteorder)
    name, version = name_version_from_filename(filename)
    return ArtifactMetadata(
        format=ArtifactFormat.APPIMAGE,
        name=name,
        version=version,
        arch=_ELF_MACHINES.get(machine),
        kind=f"type{head[10]}",
        fields={"appimage_type": head[10], "elf_machine": machine},
    )
