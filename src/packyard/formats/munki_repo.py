"""Munki repositories: pkginfo dictionaries for flat packages and the catalog plists.

A Munki repo is ``pkgs/`` (installer items), ``pkgsinfo/`` (one plist per item, written by
``makepkginfo``) and ``catalogs/<name>`` (written by ``makecatalogs``: a plist array of every
pkginfo in that catalog, plus ``catalogs/all``). ``pkginfo`` returns the dictionary
``makepkginfo`` builds for a component or product package with receipts; ``catalog`` and
``catalogs`` do ``makecatalogs``' part. Key names follow Munki's "Supported Pkginfo Keys".

Differences from ``makepkginfo``, on purpose: no ``_metadata`` (creation user, date and OS,
which would make the output differ on every run; makecatalogs strips ``_`` keys anyway), and
no ``minimum_os_version`` unless given (makepkginfo defaults it to 10.4.0, which restricts
nothing on any Mac that runs Munki today).

Deliberately not handled: disk images, drag-and-drop apps and their ``installs`` arrays,
scripts, Adobe installers, icons themselves (``icon_name`` only names a file in ``icons/``),
manifests, and client-side checks of installer items (makecatalogs' payload check is the
publisher's, which knows which files exist).
"""

from __future__ import annotations

import plistlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from .index_common import check_hex, check_relative_path, check_single_line

__all__ = [
    "ALL_CATALOG",
    "CATALOGS_PLACEHOLDER",
    "CATALOG_HEAD",
    "CATALOG_TAIL",
    "catalog",
    "catalog_item",
    "catalogs",
    "item_catalogs",
    "pkginfo",
    "size_in_kib",
]

#: The catalog makecatalogs always writes, holding every item.
ALL_CATALOG: Final = "all"
_RECEIPT_KEYS: Final = frozenset({"packageid", "version", "installed_size", "optional", "name"})


def size_in_kib(size: int) -> int:
    """Convert a byte count to the KiB Munki stores, rounding down as makepkginfo does."""
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    return size // 1024


def _receipt(raw: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(raw) - _RECEIPT_KEYS
    if unknown:
        raise ValueError(f"receipt keys {sorted(unknown)} are not Munki receipt keys")
    packageid, version = raw.get("packageid"), raw.get("version")
    if not isinstance(packageid, str) or not packageid or not isinstance(version, str):
        raise ValueError("a receipt needs a string packageid and version")
    receipt: dict[str, Any] = {"packageid": packageid, "version": version}
    if raw.get("installed_size") is not None:
        receipt["installed_size"] = int(raw["installed_size"])
    if raw.get("optional") is not None:
        receipt["optional"] = bool(raw["optional"])
    if raw.get("name") is not None:
        receipt["name"] = str(raw["name"])
    return receipt


def _catalog_name(name: str) -> str:
    check_single_line(name, what="catalog name")
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"catalog name {name!r} must be a plain file name")
    return name


def pkginfo(
    *,
    name: str,
    version: str,
    display_name: str,
    description: str,
    installer_item_location: str,
    installer_item_hash: str,
    installer_item_size: int,
    receipts: Sequence[Mapping[str, Any]],
    catalogs: Sequence[str],
    minimum_os_version: str | None = None,
    uninstallable: bool = True,
    icon_name: str | None = None,
    installed_size: int | None = None,
) -> dict[str, Any]:
    """Return the pkginfo dictionary of one flat package.

    Args:
        name: Munki item name (what manifests refer to).
        version: Item version.
        display_name: Name shown in Managed Software Center.
        description: Description shown to users (may hold escaped HTML).
        installer_item_location: Path of the package below ``pkgs/``
            (``apps/notes-2.3.1.pkg``).
        installer_item_hash: Hex SHA-256 of the package file.
        installer_item_size: Package file size in KiB (``size_in_kib``).
        receipts: ``{"packageid", "version"}`` per component package, optionally with
            ``installed_size`` (KiB), ``optional`` and ``name``.
        catalogs: Catalog names this item is in (e.g. the stage: ``["prod"]``).
        minimum_os_version: Oldest macOS the item installs on, or None for no limit.
        uninstallable: Whether Munki may remove it; with receipts that is
            ``uninstall_method: removepackages``, as makepkginfo sets.
        icon_name: File name in the repo's ``icons/``; None lets Munki use ``<name>.png``.
        installed_size: Total installed size in KiB, or None.

    Raises:
        ValueError: a required value is empty or malformed, the location escapes ``pkgs/``,
            or uninstallable is requested without receipts.
    """
    for value, what in ((name, "name"), (version, "version"), (display_name, "display_name")):
        if not value.strip():
            raise ValueError(f"{what} must not be empty")
        check_single_line(value, what=what)
    check_relative_path(installer_item_location, what="installer_item_location")
    check_hex(installer_item_hash, length=64, what="installer_item_hash")
    if installer_item_size < 0:
        raise ValueError("installer_item_size must not be negative")
    if not catalogs:
        raise ValueError("an item needs at least one catalog")
    if uninstallable and not receipts:
        raise ValueError("removepackages needs receipts; pass uninstallable=False")
    info: dict[str, Any] = {
        "autoremove": False,
        "catalogs": [_catalog_name(catalog) for catalog in catalogs],
        "description": description,
        "display_name": display_name,
        "installer_item_hash": installer_item_hash,
        "installer_item_location": installer_item_location,
        "installer_item_size": installer_item_size,
        "name": name,
        "receipts": [_receipt(receipt) for receipt in receipts],
        "uninstallable": uninstallable,
        "version": version,
    }
    if uninstallable:
        info["uninstall_method"] = "removepackages"
    if minimum_os_version is not None:
        info["minimum_os_version"] = check_single_line(
            minimum_os_version, what="minimum_os_version"
        )
    if icon_name is not None:
        info["icon_name"] = _catalog_name(icon_name)
    if installed_size is not None:
        if installed_size < 0:
            raise ValueError("installed_size must not be negative")
        info["installed_size"] = installed_size
    return info


def _for_catalog(item: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(item.get("name"), str):
        raise ValueError("every catalog item needs a name")
    # makecatalogs: admin notes and "_" keys (e.g. _metadata) stay out of catalogs.
    return {key: value for key, value in item.items() if key != "notes" and not key.startswith("_")}


def catalog(items: Iterable[Mapping[str, Any]]) -> bytes:
    """Return a catalog: an XML plist array of pkginfo dictionaries, keys sorted.

    Items keep the given order; ``notes`` and keys starting with ``_`` are dropped as
    makecatalogs does.

    Raises:
        ValueError: an item has no name.
        TypeError: an item holds a value plists cannot represent (None, for instance).
    """
    return plistlib.dumps(
        [_for_catalog(item) for item in items], fmt=plistlib.FMT_XML, sort_keys=True
    )


#: A catalog is ``CATALOG_HEAD``, one ``catalog_item`` per pkginfo, ``CATALOG_TAIL``: the
#: bytes ``catalog`` writes, in pieces a publication can cache and join.
#: (An empty catalog is ``catalog([])``: plistlib writes ``<array/>`` for it.)
CATALOG_HEAD: Final = plistlib.dumps([], fmt=plistlib.FMT_XML).split(b"<array/>")[0] + b"<array>\n"
CATALOG_TAIL: Final = b"</array>\n</plist>\n"
#: What ``catalog_item`` writes for the catalogs of an item (``item_catalogs`` fills it in).
CATALOGS_PLACEHOLDER: Final = "{catalogs}"
_PLACEHOLDER_XML: Final = (
    b"\t\t<key>catalogs</key>\n\t\t<array>\n\t\t\t<string>{catalogs}</string>\n\t\t</array>\n"
)


def catalog_item(item: Mapping[str, Any]) -> bytes:
    """One pkginfo as it stands in a catalog (between ``CATALOG_HEAD`` and ``CATALOG_TAIL``),
    with its ``catalogs`` left as ``CATALOGS_PLACEHOLDER`` when it holds exactly that.

    Raises:
        ValueError: the item has no name.
    """
    whole = catalog([item])
    if not whole.startswith(CATALOG_HEAD) or not whole.endswith(CATALOG_TAIL):
        raise ValueError("plistlib wrote a catalog of an unexpected shape")
    return whole[len(CATALOG_HEAD) : -len(CATALOG_TAIL)]


def item_catalogs(items_xml: bytes, names: Sequence[str]) -> bytes:
    """Fill in the catalogs of joined ``catalog_item`` texts (one ``<key>catalogs</key>`` per
    item dictionary, so nothing else matches)."""
    strings = b"".join(b"\t\t\t" + _string_xml(_catalog_name(name)) + b"\n" for name in names)
    rendered = b"\t\t<key>catalogs</key>\n\t\t<array>\n" + strings + b"\t\t</array>\n"
    return items_xml.replace(_PLACEHOLDER_XML, rendered)


def _string_xml(value: str) -> bytes:
    """``<string>value</string>`` escaped as plistlib escapes it."""
    document = plistlib.dumps(value, fmt=plistlib.FMT_XML)
    start = document.index(b"<string>")
    return document[start : document.index(b"</string>") + len(b"</string>")]


def catalogs(items: Iterable[Mapping[str, Any]]) -> dict[str, bytes]:
    """Return every catalog file makecatalogs would write: one per name used, plus ``all``.

    Raises:
        ValueError: an item has no name or names ``all`` as one of its catalogs.
    """
    grouped: dict[str, list[Mapping[str, Any]]] = {ALL_CATALOG: []}
    for item in items:
        grouped[ALL_CATALOG].append(item)
        for name in item.get("catalogs", []):
            if name == ALL_CATALOG:
                raise ValueError("'all' is the catalog of every item; do not list it")
            grouped.setdefault(_catalog_name(name), []).append(item)
    return {name: catalog(members) for name, members in sorted(grouped.items())}
