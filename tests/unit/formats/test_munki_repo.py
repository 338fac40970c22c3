"""Munki pkginfo and catalog writers: golden plists in makepkginfo/makecatalogs' shape."""

from __future__ import annotations

import plistlib
from typing import Any

import pytest

from packyard.formats.munki_repo import (
    ALL_CATALOG,
    CATALOG_HEAD,
    CATALOG_TAIL,
    CATALOGS_PLACEHOLDER,
    catalog,
    catalog_item,
    catalogs,
    host_architectures,
    item_catalogs,
    manifest,
    minimum_os_version,
    pkginfo,
    size_in_kib,
)

HASH = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def notes(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "Notes",
        "version": "2.3.1",
        "display_name": "Notes",
        "description": "Take notes & share them",
        "installer_item_location": "apps/notes-2.3.1.pkg",
        "installer_item_hash": HASH,
        "installer_item_size": size_in_kib(1_048_577),
        "receipts": [{"packageid": "com.example.notes", "version": "2.3.1", "installed_size": 12}],
        "catalogs": ["prod"],
        "minimum_os_version": "12.0",
        "icon_name": "Notes.png",
        **overrides,
    }
    info: dict[str, Any] = pkginfo(**values)
    return info


# plistlib writes tabs; written here with four spaces for readability.
NOTES_CATALOG = """\
<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<array>
    <dict>
        <key>autoremove</key>
        <false/>
        <key>catalogs</key>
        <array>
            <string>prod</string>
        </array>
        <key>description</key>
        <string>Take notes &amp; share them</string>
        <key>display_name</key>
        <string>Notes</string>
        <key>icon_name</key>
        <string>Notes.png</string>
        <key>installer_item_hash</key>
        <string>9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08</string>
        <key>installer_item_location</key>
        <string>apps/notes-2.3.1.pkg</string>
        <key>installer_item_size</key>
        <integer>1024</integer>
        <key>minimum_os_version</key>
        <string>12.0</string>
        <key>name</key>
        <string>Notes</string>
        <key>receipts</key>
        <array>
            <dict>
                <key>installed_size</key>
                <integer>12</integer>
                <key>packageid</key>
                <string>com.example.notes</string>
                <key>version</key>
                <string>2.3.1</string>
            </dict>
        </array>
        <key>uninstall_method</key>
        <string>removepackages</string>
        <key>uninstallable</key>
        <true/>
        <key>version</key>
        <string>2.3.1</string>
    </dict>
</array>
</plist>
""".replace("    ", "\t")


def test_pkginfo_keys_follow_makepkginfo() -> None:
    assert notes() == {
        "autoremove": False,
        "catalogs": ["prod"],
        "description": "Take notes & share them",
        "display_name": "Notes",
        "icon_name": "Notes.png",
        "installer_item_hash": HASH,
        "installer_item_location": "apps/notes-2.3.1.pkg",
        "installer_item_size": 1024,
        "minimum_os_version": "12.0",
        "name": "Notes",
        "receipts": [{"installed_size": 12, "packageid": "com.example.notes", "version": "2.3.1"}],
        "uninstall_method": "removepackages",
        "uninstallable": True,
        "version": "2.3.1",
    }


def test_catalog_golden() -> None:
    assert catalog([notes()]).decode("utf-8") == NOTES_CATALOG
    assert plistlib.loads(catalog([notes()])) == [notes()]


def test_optional_keys_are_left_out() -> None:
    info = notes(minimum_os_version=None, icon_name=None, uninstallable=False, receipts=[])
    for key in ("minimum_os_version", "icon_name", "uninstall_method"):
        assert key not in info
    assert info["uninstallable"] is False
    assert notes(installed_size=40)["installed_size"] == 40


def test_size_in_kib_rounds_down_like_makepkginfo() -> None:
    assert [size_in_kib(n) for n in (0, 1023, 1024, 1_048_577)] == [0, 0, 1, 1024]
    with pytest.raises(ValueError):
        size_in_kib(-1)


def test_catalog_drops_notes_and_underscore_keys_like_makecatalogs() -> None:
    item = {**notes(), "notes": "admin only", "_metadata": {"created_by": "x"}}
    assert plistlib.loads(catalog([item])) == [notes()]
    assert plistlib.loads(catalog([])) == []


def test_catalogs_writes_one_per_name_plus_all() -> None:
    dev = notes(name="Dev", catalogs=["dev", "prod"])
    prod = notes()
    written = catalogs([dev, prod])
    assert sorted(written) == [ALL_CATALOG, "dev", "prod"]
    assert [item["name"] for item in plistlib.loads(written["all"])] == ["Dev", "Notes"]
    assert [item["name"] for item in plistlib.loads(written["dev"])] == ["Dev"]
    assert [item["name"] for item in plistlib.loads(written["prod"])] == ["Dev", "Notes"]
    with pytest.raises(ValueError):
        catalogs([{**prod, "catalogs": ["all"]}])


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": ""},
        {"version": "1\n2"},
        {"installer_item_location": "../outside.pkg"},
        {"installer_item_location": "/abs.pkg"},
        {"installer_item_hash": "abc"},
        {"installer_item_size": -1},
        {"catalogs": []},
        {"catalogs": ["a/b"]},
        {"receipts": []},
        {"receipts": [{"packageid": "x"}]},
        {"receipts": [{"packageid": "x", "version": "1", "bogus": 1}]},
        {"icon_name": "../icon.png"},
        {"installed_size": -5},
    ],
)
def test_pkginfo_refuses_bad_values(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        notes(**overrides)


def test_catalog_items_need_a_name() -> None:
    with pytest.raises(ValueError):
        catalog([{"version": "1"}])


def test_a_catalog_joined_from_items_is_the_catalog_makecatalogs_writes() -> None:
    """Publishing caches one item's XML per package and joins them; the catalog names are
    filled in per channel, and only the catalogs array is touched."""
    items = [
        {
            "name": "notes",
            "version": "1.0",
            "catalogs": [CATALOGS_PLACEHOLDER],
            # The same text elsewhere in an item is left alone.
            "blocking_applications": [CATALOGS_PLACEHOLDER],
            "description": "<b>Notes</b> & more",
        },
        {"name": "tools", "version": "2.0", "catalogs": [CATALOGS_PLACEHOLDER]},
    ]
    names = ["testing", "dev & co"]
    joined = b"".join(catalog_item(item) for item in items)
    published = CATALOG_HEAD + item_catalogs(joined, names) + CATALOG_TAIL
    assert published == catalog([{**item, "catalogs": names} for item in items])
    loaded = plistlib.loads(published)
    assert [i["catalogs"] for i in loaded] == [names, names]
    assert loaded[0]["blocking_applications"] == [CATALOGS_PLACEHOLDER]
    with pytest.raises(ValueError, match="catalog name"):
        item_catalogs(joined, ["../prod"])


def test_supported_architectures_are_written_only_when_given() -> None:
    assert "supported_architectures" not in notes()
    info = notes(supported_architectures=["x86_64", "arm64"])
    assert info["supported_architectures"] == ["x86_64", "arm64"]
    assert plistlib.loads(catalog([info]))[0]["supported_architectures"] == ["x86_64", "arm64"]
    with pytest.raises(ValueError):
        notes(supported_architectures=[""])


def test_host_architectures_split_like_installer_reads_them() -> None:
    assert host_architectures("x86_64,arm64") == ["x86_64", "arm64"]
    assert host_architectures("arm64 x86_64") == ["arm64", "x86_64"]
    assert host_architectures(" arm64, arm64 ,i386") == ["arm64", "i386"]
    # What no Mac calls an architecture is left out, never an error that stops a publish.
    assert host_architectures("arm64,\x01bad,<x>") == ["arm64"]
    assert host_architectures("") == []


def test_minimum_os_version_is_the_lowest_allowed_min() -> None:
    assert minimum_os_version([{"min": "12.0"}]) == "12.0"
    assert minimum_os_version([{"min": "10.15", "before": "11"}, {"min": "10.9.5"}]) == "10.9.5"
    # 10.10 is after 10.9 (numbers, not text); 11 and 11.0.0 are the same version.
    assert minimum_os_version([{"min": "10.10"}, {"min": "10.9"}]) == "10.9"
    assert minimum_os_version([{"min": "11.0.0"}, {"min": "11"}]) in ("11", "11.0.0")
    # A range without a lower bound, or one Munki could not compare, limits nothing.
    assert minimum_os_version([{"min": "12.0"}, {"before": "10.9"}]) is None
    assert minimum_os_version([{"min": "twelve"}]) is None
    assert minimum_os_version([]) is None


def test_manifest_names_the_catalog_and_offers_every_item() -> None:
    data = manifest(catalogs=["prod"], optional_installs=["tools", "notes", "tools"])
    assert plistlib.loads(data) == {"catalogs": ["prod"], "optional_installs": ["notes", "tools"]}
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE plist')
    assert plistlib.loads(manifest(catalogs=["dev"], optional_installs=[])) == {
        "catalogs": ["dev"],
        "optional_installs": [],
    }
    with pytest.raises(ValueError):
        manifest(catalogs=[], optional_installs=["notes"])
    with pytest.raises(ValueError):
        manifest(catalogs=["../prod"], optional_installs=[])
    with pytest.raises(ValueError):
        manifest(catalogs=["prod"], optional_installs=["two\nlines"])


def test_manifest_is_the_plist_plistlib_writes() -> None:
    names = ["zeta", "R&D <tools>", "café", "a&amp;b", "zeta", "{catalogs}", "Notes"]
    expected = plistlib.dumps(
        {"catalogs": ["prod", "a&b"], "optional_installs": sorted(set(names))},
        fmt=plistlib.FMT_XML,
        sort_keys=True,
    )
    assert manifest(catalogs=["prod", "a&b"], optional_installs=names) == expected
