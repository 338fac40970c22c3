"""Munki repositories: pkginfo dictionaries for flat packages and the catalog plists.

A Munki repo is ``pkgs/`` (installer items), ``pkgsinfo/`` (one plist per item, written by
``makepkginfo``), ``catalogs/<name>`` (written by ``makecatalogs``: a plist array of every
pkginfo in that catalog, plus ``catalogs/all``) and ``manifests/<name>`` (what a client with
that ClientIdentifier may or must install, from which catalogs). ``pkginfo`` returns the
dictionary ``makepkginfo`` builds for a component or product package with receipts;
``catalog`` and ``catalogs`` do ``makecatalogs``' part; ``manifest`` writes a manifest. Key
names follow Munki's "Supported Pkginfo Keys" and manifest keys.

Differences from ``makepkginfo``, on purpose: no ``_metadata`` (creation user, date and OS,
which would make the output differ on every run; makecatalogs strips ``_`` keys anyway), and
no ``minimum_os_version`` unless given (makepkginfo defaults it to 10.5.0 for flat packages,
which restricts nothing on any Mac that runs Munki today). ``supported_architectures`` can be
given from a product archive's ``hostArchitectures`` (``host_architectures``); makepkginfo
writes it only when asked (``--arch``).

Deliberately not handled: disk images, drag-and-drop apps and their ``installs`` arrays,
scripts, Adobe installers, icons themselves (``icon_name`` only names a file in ``icons/``),
manifests' managed installs, conditions and included manifests, and client-side checks of
installer items (makecatalogs' payload check is the publisher's, which knows which files
exist).
"""

from __future__ import annotations

import plistlib
import re
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
    "host_architectures",
    "item_catalogs",
    "manifest",
    "minimum_os_version",
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


_ARCH_NAME: Final = re.compile(r"^[A-Za-z0-9_.-]+$")
_OS_VERSION: Final = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def host_architectures(value: str) -> list[str]:
    """Split a Distribution's ``hostArchitectures`` (``"x86_64,arm64"``; some tools write
    spaces) into the architectures Munki's ``supported_architectures`` lists, in order, once
    each. Anything that is no architecture name (control characters, punctuation) is left
    out: metadata of an upload must not stop its channel from publishing."""
    names = [name for name in re.split(r"[\s,]+", value) if _ARCH_NAME.match(name)]
    return list(dict.fromkeys(names))


def _os_version_key(version: str) -> tuple[int, ...]:
    # Munki compares OS versions as loose versions: 11 == 11.0 == 11.0.0.
    parts = [int(part) for part in version.split(".")]
    while parts and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def minimum_os_version(allowed: Iterable[Mapping[str, Any]]) -> str | None:
    """The ``minimum_os_version`` of a package whose Distribution allows the given OS ranges
    (``<allowed-os-versions>``: ``{"min": "11.0", "before": "15"}`` per ``<os-version>``):
    the lowest ``min``; None (no limit) when there is no range, or one has no lower bound or
    one that is not a dotted number."""
    lows: list[str] = []
    for os_range in allowed:
        low = os_range.get("min") if isinstance(os_range, Mapping) else None
        if not isinstance(low, str) or not _OS_VERSION.match(low.strip()):
            return None
        lows.append(low.strip())
    return min(lows, key=_os_version_key) if lows else None


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
    supported_architectures: Sequence[str] = (),
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
        supported_architectures: The Mac architectures the item installs on (``x86_64``,
            ``arm64``); empty for any. Munki offers an item only to a Mac whose architecture
            it lists, so builds of one name and version for different architectures can
            share a catalog.

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
    if supported_architectures:
        for arch in supported_architectures:
            if not arch.strip():
                raise ValueError("supported_architectures must not hold empty names")
            check_single_line(arch, what="supported_architectures")
        info["supported_architectures"] = list(supported_architectures)
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


def manifest(*, catalogs: Sequence[str], optional_installs: Iterable[str]) -> bytes:
    """Return a manifest: the catalogs a client reads, in order, and the item names Managed
    Software Center offers (``optional_installs``; sorted, once each).

    A client fetches ``manifests/<ClientIdentifier>`` (falling back to its host name, serial
    number, then ``site_default``); Munki picks each offered name's newest version in these
    catalogs that suits the Mac (``minimum_os_version``, ``supported_architectures``).

    Raises:
        ValueError: no catalog, a bad catalog name, or an item name with control characters.
    """
    if not catalogs:
        raise ValueError("a manifest needs at least one catalog")
    # Once each, keeping the given order: names that come sorted sort in one pass.
    names = sorted(dict.fromkeys(optional_installs))
    document = {"catalogs": [_catalog_name(name) for name in catalogs], "optional_installs": []}
    if not names:
        return plistlib.dumps(document, fmt=plistlib.FMT_XML, sort_keys=True)
    # plistlib's bytes, with the names written here in a few passes over all of them: measured
    # for 10,000 names (every publish of a channel that size), plistlib 12 ms, this 4 ms.
    # optional_installs sorts last: its placeholder is the last <string> of the document.
    try:
        check_single_line(" ".join(names), what="item names")
    except ValueError:
        for name in names:  # name the culprit
            check_single_line(name, what="item name")
        raise
    head, placeholder, tail = plistlib.dumps(
        {**document, "optional_installs": [CATALOGS_PLACEHOLDER]},
        fmt=plistlib.FMT_XML,
        sort_keys=True,
    ).rpartition(b"\t\t" + _string_xml(CATALOGS_PLACEHOLDER) + b"\n")
    if not placeholder:
        raise ValueError("plistlib wrote a manifest of an unexpected shape")
    # Escaped as plistlib escapes (no control characters, so "\n" only separates names).
    escaped = "\n".join(names).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    strings = "\t\t<string>" + escaped.replace("\n", "</string>\n\t\t<string>") + "</string>\n"
    return head + strings.encode("utf-8") + tail
