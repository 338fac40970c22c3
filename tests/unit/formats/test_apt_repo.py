"""apt index writers against golden output captured from apt-ftparchive 2.6.2.

Every expected stanza below is what ``apt-ftparchive packages <dir>`` printed for a deb built
with ``dpkg-deb --nocheck`` from the control text beside it (sizes and hashes are those of
that deb). The functional test tests/functional/test_repo_writers_vs_tools.py re-checks the
same behaviour against the installed tools.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
from datetime import UTC, datetime, timedelta, timezone

import pytest

from packyard.domain.errors import InvalidArtifact
from packyard.formats.apt_repo import (
    PACKAGES_FIELD_ORDER,
    IndexFile,
    by_hash_path,
    compress_variants,
    deb_filename,
    deb_stanza,
    index_files,
    packages_by_architecture,
    packages_index,
    pool_path,
    redate_release,
    release_date,
    release_file,
    source_name,
)
from packyard.formats.index_common import (
    JSON_INDEX_SCHEMA,
    arch_file_suffix,
    file_item,
    json_index,
    packet_item,
    url_path,
)


def lines(*parts: str) -> str:
    return "".join(parts)


# Every known field, written in reverse order, plus unknown fields before and after.
ALL_FIELDS_CONTROL = lines(
    "Zzz-Custom: z\n",
    "Task: t1\n",
    "Tag: role::program\n",
    "Description: all fields\n",
    " long line\n",
    " .\n",
    " more\n",
    "Homepage: https://x\n",
    "X-Custom: x\n",
    "Enhances: e\n",
    "Replaces: r\n",
    "Breaks: b\n",
    "Conflicts: c\n",
    "Suggests: s\n",
    "Recommends: rr\n",
    "Depends: d\n",
    "Pre-Depends: pd\n",
    "Provides: p\n",
    "Installed-Size: 5\n",
    "Build-Ids: abc\n",
    "Bugs: mailto:x@y\n",
    "Original-Maintainer: Orig <o@x>\n",
    "Maintainer: M <m@x>\n",
    "Origin: myorigin\n",
    "Source: src-all (1.0)\n",
    "Section: misc\n",
    "Phased-Update-Percentage: 10\n",
    "Essential: yes\n",
    "Protected: yes\n",
    "Build-Essential: yes\n",
    "Important: yes\n",
    "Priority: optional\n",
    "Multi-Arch: foreign\n",
    "Auto-Built-Package: debug-symbols\n",
    "Built-For-Profiles: noudeb\n",
    "Static-Built-Using: sbu (1)\n",
    "Built-Using: bu (1)\n",
    "Version: 1.0\n",
    "Architecture: all\n",
    "Package-Type: deb\n",
    "Package: allfields\n",
    "Aaa-Custom: a\n",
    "Python-Version: 3.11\n",
    "Ruby-Versions: all\n",
    "Vcs-Git: https://g\n",
    "Description-md5: 0123\n",
    "Cnf-Extra-Commands: foo\n",
    "Gstreamer-Version: 1.0\n",
    "Npp-Name: n\n",
)
ALL_FIELDS_FILE = {
    "filename": "d/allfields.deb",
    "size": 1092,
    "md5": "c83d6d08283d4b57d4b49093c1d87d4f",
    "sha1": "c8d1409c41a968de304ef67989ac9320d7bc7271",
    "sha256": "c44794d7aef455fbe55b4d27b6008af2aa9cc6294a89b6d766066933b495300f",
    "sha512": "c9e4d74f3e4a6a937623f490bb226074c042298ac56b8bf1db02ef7a481bd2d1"
    "dc5efbf3aaedda01f28d0600d6f4dc7bf169e8d818501f2d0404c46da5892516",
}
ALL_FIELDS_STANZA = lines(
    "Package: allfields\n",
    "Package-Type: deb\n",
    "Architecture: all\n",
    "Version: 1.0\n",
    "Built-Using: bu (1)\n",
    "Static-Built-Using: sbu (1)\n",
    "Built-For-Profiles: noudeb\n",
    "Auto-Built-Package: debug-symbols\n",
    "Multi-Arch: foreign\n",
    "Priority: optional\n",
    "Build-Essential: yes\n",
    "Protected: yes\n",
    "Important: yes\n",
    "Essential: yes\n",
    "Section: misc\n",
    "Source: src-all (1.0)\n",
    "Origin: myorigin\n",
    "Phased-Update-Percentage: 10\n",
    "Maintainer: M <m@x>\n",
    "Original-Maintainer: Orig <o@x>\n",
    "Bugs: mailto:x@y\n",
    "Installed-Size: 5\n",
    "Provides: p\n",
    "Pre-Depends: pd\n",
    "Depends: d\n",
    "Recommends: rr\n",
    "Suggests: s\n",
    "Conflicts: c\n",
    "Breaks: b\n",
    "Replaces: r\n",
    "Enhances: e\n",
    "Filename: d/allfields.deb\n",
    "Size: 1092\n",
    "MD5sum: c83d6d08283d4b57d4b49093c1d87d4f\n",
    "SHA1: c8d1409c41a968de304ef67989ac9320d7bc7271\n",
    "SHA256: c44794d7aef455fbe55b4d27b6008af2aa9cc6294a89b6d766066933b495300f\n",
    "SHA512: c9e4d74f3e4a6a937623f490bb226074c042298ac56b8bf1db02ef7a481bd2d1"
    "dc5efbf3aaedda01f28d0600d6f4dc7bf169e8d818501f2d0404c46da5892516\n",
    "Homepage: https://x\n",
    "Description: all fields\n",
    " long line\n",
    " .\n",
    " more\n",
    "Description-md5: 0123\n",
    "Tag: role::program\n",
    "Task: t1\n",
    "Zzz-Custom: z\n",
    "X-Custom: x\n",
    "Build-Ids: abc\n",
    "Aaa-Custom: a\n",
    "Python-Version: 3.11\n",
    "Ruby-Versions: all\n",
    "Vcs-Git: https://g\n",
    "Cnf-Extra-Commands: foo\n",
    "Gstreamer-Version: 1.0\n",
    "Npp-Name: n\n",
)

# Lower-case names, dpkg-internal fields, a tab continuation, stale Filename/Size/hashes.
ODD_CONTROL = lines(
    "package: lowercase\n",
    "version:   2.0  \n",
    "architecture: amd64\n",
    "Class: important\n",
    "Revision: 3\n",
    "Status: install ok installed\n",
    "Optional: foo\n",
    "Conffiles:\n",
    " /etc/foo 0123\n",
    "MSDOS-Filename: FOO.DEB\n",
    "Subarchitecture: sub\n",
    "Kernel-Version: 6\n",
    "Installer-Menu-Item: 3\n",
    "Config-Version: 1\n",
    "Triggers-Awaited: t\n",
    "multi-arch: same\n",
    "x-lower: v\n",
    "DM-Upload-Allowed: yes\n",
    "Filename: bogus\n",
    "Size: 1\n",
    "MD5sum: bogus\n",
    "SHA256: bogus\n",
    "Description: tabs\n",
    "\tindented with tab\n",
    "  two spaces\n",
    "Recommended: rr\n",
    "Depends: a,\n",
    " b\n",
    "Package-Revision: 1\n",
    "Description-md5: ff\n",
)
ODD_FILE = {
    "filename": "d2/x.deb",
    "size": 904,
    "md5": "a5364395a7d9ad9d3c1b832d4fd98380",
    "sha1": "32d3323cb487042d807fa6353b4e080dd1905ce8",
    "sha256": "2270847a5c0812029570fa4dff8a7a7a238af15926f7035e13be75d8072e3683",
    "sha512": "7e4a0b662f1b33ccd12842ad9f76425b37795ca9ce7a1bed74132a988149fbdf"
    "ffe6b3fda783458ed1c895523193a13b971af95a6ba5186478c797e076df6dd5",
}
ODD_STANZA = lines(
    "Package: lowercase\n",
    "Architecture: amd64\n",
    "Subarchitecture: sub\n",
    "Version:   2.0\n",
    "Kernel-Version: 6\n",
    "Multi-Arch: same\n",
    "Installer-Menu-Item: 3\n",
    "Config-Version: 1\n",
    "Conffiles:\n",
    " /etc/foo 0123\n",
    "Triggers-Awaited: t\n",
    "Depends: a,\n",
    " b\n",
    "Filename: d2/x.deb\n",
    "MSDOS-Filename: FOO.DEB\n",
    "Size: 904\n",
    "MD5sum: a5364395a7d9ad9d3c1b832d4fd98380\n",
    "SHA1: 32d3323cb487042d807fa6353b4e080dd1905ce8\n",
    "SHA256: 2270847a5c0812029570fa4dff8a7a7a238af15926f7035e13be75d8072e3683\n",
    "SHA512: 7e4a0b662f1b33ccd12842ad9f76425b37795ca9ce7a1bed74132a988149fbdf"
    "ffe6b3fda783458ed1c895523193a13b971af95a6ba5186478c797e076df6dd5\n",
    "Description: tabs\n",
    "\tindented with tab\n",
    "  two spaces\n",
    "Description-md5: ff\n",
    "Class: important\n",
    "Revision: 3\n",
    "Optional: foo\n",
    "x-lower: v\n",
    "DM-Upload-Allowed: yes\n",
    "Recommended: rr\n",
    "Package-Revision: 1\n",
)

# Whitespace: Section/Priority are re-written trimmed, other values keep their raw form.
SPACES_CONTROL = lines(
    "Package: edge\n",
    "Version: 1\n",
    "Architecture: all\n",
    "Section:   misc  \n",
    "Priority:extra\n",
    "Optional: foo\n",
    "Suggests: bar\n",
    "Maintainer:M <m@x>\n",
    "Source:\n",
    "Homepage:   https://h  \n",
    "Description: first line  \n",
    " second  \n",
    " .\n",
    " third\n",
)
SPACES_FILE = {
    "filename": "d3/x.deb",
    "size": 724,
    "md5": "f64b053a8d083f31e27dec9520da33a9",
    "sha1": "29f6e9c50d982da29e17b977b3f3a14dc92fcce4",
    "sha256": "a0bd868bd6b82a86e69fe2cc53bebf1e7d824584988d26ebd272065233ad3ad2",
}
SPACES_HEAD = lines(
    "Package: edge\n",
    "Architecture: all\n",
    "Version: 1\n",
    "Priority: extra\n",
    "Section: misc\n",
    "Source:\n",
    "Maintainer: M <m@x>\n",
    "Suggests: bar\n",
    "Filename: d3/x.deb\n",
    "Size: 724\n",
    "MD5sum: f64b053a8d083f31e27dec9520da33a9\n",
    "SHA1: 29f6e9c50d982da29e17b977b3f3a14dc92fcce4\n",
    "SHA256: a0bd868bd6b82a86e69fe2cc53bebf1e7d824584988d26ebd272065233ad3ad2\n",
    "Homepage:   https://h\n",
)
# apt-ftparchive -o APT::FTPArchive::SHA512=false packages d3
SPACES_STANZA = SPACES_HEAD + lines(
    "Description: first line  \n",
    " second  \n",
    " .\n",
    " third\n",
    "Optional: foo\n",
)
# ... and -o APT::FTPArchive::LongDescription=false
SPACES_SHORT_STANZA = SPACES_HEAD + lines(
    "Description: first line  \n",
    "Description-md5: 53db16d8cc330b0d62da851f9c23a150\n",
    "Optional: foo\n",
)


@pytest.mark.parametrize(
    ("control", "file", "expected"),
    [
        (ALL_FIELDS_CONTROL, ALL_FIELDS_FILE, ALL_FIELDS_STANZA),
        (ODD_CONTROL, ODD_FILE, ODD_STANZA),
        (SPACES_CONTROL, SPACES_FILE, SPACES_STANZA),
    ],
    ids=["all-fields", "odd-fields", "whitespace"],
)
def test_stanza_matches_apt_ftparchive(
    control: str, file: dict[str, object], expected: str
) -> None:
    assert deb_stanza(control=control, **file) == expected


def test_short_description_mode_adds_description_md5() -> None:
    stanza = deb_stanza(control=SPACES_CONTROL, long_description=False, **SPACES_FILE)
    assert stanza == SPACES_SHORT_STANZA


def test_field_order_is_apts() -> None:
    # Spot checks of apt 2.6's TFRewritePackageOrder that users notice most.
    order = list(PACKAGES_FIELD_ORDER)
    assert order[:3] == ["Package", "Package-Type", "Architecture"]
    assert order.index("Installed-Size") < order.index("Depends") < order.index("Filename")
    assert order[order.index("Filename") :][:7] == [
        "Filename",
        "MSDOS-Filename",
        "Size",
        "MD5sum",
        "SHA1",
        "SHA256",
        "SHA512",
    ]
    assert order[-5:] == ["Homepage", "Description", "Description-md5", "Tag", "Task"]


def test_stanza_empty_section_and_priority_are_dropped() -> None:
    control = "Package: p\nVersion: 1\nArchitecture: all\nSection:\nPriority:  \nDescription: d\n"
    stanza = deb_stanza(
        control=control,
        filename="pool/main/p/p/p_1_all.deb",
        size=1,
        md5="0" * 32,
        sha1="0" * 40,
        sha256="0" * 64,
    )
    assert "Section" not in stanza
    assert "Priority" not in stanza
    assert stanza.startswith("Package: p\nArchitecture: all\nVersion: 1\nFilename: pool/")


def test_stanza_ignores_text_after_the_first_paragraph() -> None:
    control = "\nPackage: p\nVersion: 1\n\nPackage: other\n"
    stanza = deb_stanza(
        control=control,
        filename="p.deb",
        size=0,
        md5="0" * 32,
        sha1="0" * 40,
        sha256="0" * 64,
    )
    assert "other" not in stanza


@pytest.mark.parametrize(
    "control",
    ["Version: 1\n", " Package: p\n", "Package p\nVersion: 1\n", "Package:\nVersion: 1\n"],
)
def test_stanza_refuses_controls_apt_cannot_read(control: str) -> None:
    with pytest.raises(InvalidArtifact):
        deb_stanza(
            control=control, filename="x.deb", size=1, md5="0" * 32, sha1="0" * 40, sha256="0" * 64
        )


@pytest.mark.parametrize(
    "override",
    [
        {"md5": "xyz"},
        {"sha256": "A" * 64},
        {"sha512": "0" * 127},
        {"size": -1},
        {"filename": "../escape.deb"},
        {"filename": "/abs.deb"},
        {"filename": "a\nb.deb"},
    ],
)
def test_stanza_refuses_bad_file_values(override: dict[str, object]) -> None:
    values: dict[str, object] = {
        "control": "Package: p\n",
        "filename": "p.deb",
        "size": 1,
        "md5": "0" * 32,
        "sha1": "0" * 40,
        "sha256": "0" * 64,
        **override,
    }
    with pytest.raises(ValueError):
        deb_stanza(**values)


def test_packages_index_joins_stanzas_with_blank_lines() -> None:
    assert packages_index([]) == b""
    assert packages_index(["Package: a\n", "Package: b"]) == b"Package: a\n\nPackage: b\n\n"
    with pytest.raises(ValueError):
        packages_index(["Package: a\n", "\n"])


def test_arch_all_goes_into_every_architecture() -> None:
    entries = [("all", "A"), ("amd64", "B"), ("arm64", "C"), ("i386", "D"), ("all", "E")]
    grouped = packages_by_architecture(entries, architectures=["amd64", "arm64"])
    assert grouped == {"amd64": ["A", "B", "E"], "arm64": ["A", "C", "E"]}
    assert packages_by_architecture([], architectures=["riscv64"]) == {"riscv64": []}
    for bad in ([], ["amd64", "amd64"], ["amd64", "all"]):
        with pytest.raises(ValueError):
            packages_by_architecture(entries, architectures=bad)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hello", "pool/main/h/hello/f.deb"),
        ("libc6", "pool/main/libc/libc6/f.deb"),
        ("lib", "pool/main/lib/lib/f.deb"),
        ("0ad", "pool/main/0/0ad/f.deb"),
        ("liba", "pool/main/liba/liba/f.deb"),
    ],
)
def test_pool_path_follows_debian_layout(name: str, expected: str) -> None:
    assert pool_path(component="main", source_or_package_name=name, filename="f.deb") == expected


@pytest.mark.parametrize(
    "kwargs",
    [
        {"component": "../main"},
        {"component": ""},
        {"source_or_package_name": "Hello"},
        {"source_or_package_name": "a/b"},
        {"source_or_package_name": "x"},
        {"filename": "../f.deb"},
        {"filename": "f.txt"},
    ],
)
def test_pool_path_refuses_escapes(kwargs: dict[str, str]) -> None:
    values = {"component": "main", "source_or_package_name": "hello", "filename": "f.deb", **kwargs}
    with pytest.raises(ValueError):
        pool_path(**values)


def test_deb_filename_drops_the_epoch() -> None:
    assert deb_filename(package="hello", version="1:2.4-1", architecture="all") == (
        "hello_2.4-1_all.deb"
    )
    assert deb_filename(package="a", version="1.0~rc1+b1", architecture="amd64") == (
        "a_1.0~rc1+b1_amd64.deb"
    )
    with pytest.raises(ValueError):
        deb_filename(package="a/b", version="1", architecture="all")


def test_source_name() -> None:
    assert source_name(control="Package: hello-bin\nSource: hello (2.10-1)\n") == "hello"
    assert source_name(control="Package: hello-bin\nSource:  hello\n") == "hello"
    assert source_name(control="Package: hello-bin\nVersion: 1\n") == "hello-bin"
    with pytest.raises(InvalidArtifact):
        source_name(control="Version: 1\n")


def test_by_hash_path() -> None:
    digest = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert by_hash_path("main/binary-amd64/Packages.xz", digest) == (
        f"main/binary-amd64/by-hash/SHA256/{digest}"
    )
    assert by_hash_path("Contents-amd64", digest) == f"by-hash/SHA256/{digest}"
    with pytest.raises(ValueError):
        by_hash_path("../Packages", digest)
    with pytest.raises(ValueError):
        by_hash_path("main/Packages", "abc")


def test_compress_variants_are_deterministic_and_round_trip() -> None:
    data = b"Package: a\n\n" * 100
    first, second = compress_variants(data), compress_variants(data)
    assert first == second
    assert set(first) == {"", ".gz", ".xz"}
    assert first[""] == data
    assert gzip.decompress(first[".gz"]) == data
    assert first[".gz"][4:8] == b"\x00\x00\x00\x00"  # gzip header mtime
    assert lzma.decompress(first[".xz"]) == data
    assert first[".xz"].startswith(b"\xfd7zXZ\x00")
    assert gzip.decompress(compress_variants(b"")[".gz"]) == b""


def test_index_file_of_empty_data_uses_the_well_known_hashes() -> None:
    item = IndexFile.of("main/binary-all/Packages", b"")
    assert item == IndexFile(
        path="main/binary-all/Packages",
        size=0,
        md5="d41d8cd98f00b204e9800998ecf8427e",
        sha1="da39a3ee5e6b4b0d3255bfef95601890afd80709",
        sha256="e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    )
    listed = index_files("main/binary-amd64/Packages", compress_variants(b"x"))
    assert [entry.path for entry in listed] == [
        "main/binary-amd64/Packages",
        "main/binary-amd64/Packages.gz",
        "main/binary-amd64/Packages.xz",
    ]
    assert listed[0].sha256 == hashlib.sha256(b"x").hexdigest()


def test_release_dates_are_rfc2822_in_utc_with_english_names() -> None:
    eastern = timezone(timedelta(hours=-5))
    assert release_date(datetime(2026, 11, 21, 1, 30, tzinfo=eastern)) == (
        "Sat, 21 Nov 2026 06:30:00 UTC"
    )
    assert (
        release_date(datetime(2024, 2, 5, 0, 0, 9, tzinfo=UTC)) == "Mon, 05 Feb 2024 00:00:09 UTC"
    )
    with pytest.raises(ValueError):
        release_date(datetime(2026, 11, 21))


# From `apt-ftparchive release .` over these three files (its hash lines, byte for byte).
RELEASE_FILES = [
    IndexFile(
        path="main/binary-amd64/Packages.gz",
        size=761,
        md5="63938ffb084ada53c5aef0f7627de5fb",
        sha1="dbff62056d8f8a226998ca5155756c6bd1970a60",
        sha256="1d0408f861a7c33e2fa1f5ec2150fb021c05c0565e14007f8c96d6e33214b0c8",
    ),
    IndexFile(
        path="main/binary-amd64/Packages",
        size=1324,
        md5="b46fcc425693f083fd8aa9c5bb163dbd",
        sha1="29f5dbee9dc0ba8c3cddbd9b9ead0bf8b3c961c5",
        sha256="43d792e454ed873cf35264a90b94fbb9227152721d0f891c791366cd2b8dc90e",
    ),
    IndexFile.of("main/binary-arm64/Packages", b""),
]
RELEASE = lines(
    "Acquire-By-Hash: yes\n",
    "Architectures: amd64 arm64\n",
    "Codename: stable\n",
    "Components: main\n",
    "Date: Sat, 21 Nov 2026 06:30:00 UTC\n",
    "Description: Packyard prod\n",
    "Label: PL\n",
    "No-Support-for-Architecture-all: Packages\n",
    "Origin: Packyard\n",
    "Suite: prod\n",
    "Valid-Until: Sat, 28 Nov 2026 06:30:00 UTC\n",
    "MD5Sum:\n",
    " b46fcc425693f083fd8aa9c5bb163dbd             1324 main/binary-amd64/Packages\n",
    " 63938ffb084ada53c5aef0f7627de5fb              761 main/binary-amd64/Packages.gz\n",
    " d41d8cd98f00b204e9800998ecf8427e                0 main/binary-arm64/Packages\n",
    "SHA1:\n",
    " 29f5dbee9dc0ba8c3cddbd9b9ead0bf8b3c961c5             1324 main/binary-amd64/Packages\n",
    " dbff62056d8f8a226998ca5155756c6bd1970a60              761 main/binary-amd64/Packages.gz\n",
    " da39a3ee5e6b4b0d3255bfef95601890afd80709                0 main/binary-arm64/Packages\n",
    "SHA256:\n",
    " 43d792e454ed873cf35264a90b94fbb9227152721d0f891c791366cd2b8dc90e"
    "             1324 main/binary-amd64/Packages\n",
    " 1d0408f861a7c33e2fa1f5ec2150fb021c05c0565e14007f8c96d6e33214b0c8"
    "              761 main/binary-amd64/Packages.gz\n",
    " e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    "                0 main/binary-arm64/Packages\n",
)


def release(**overrides: object) -> str:
    date = datetime(2026, 11, 21, 6, 30, tzinfo=UTC)
    values: dict[str, object] = {
        "origin": "Packyard",
        "label": "PL",
        "suite": "prod",
        "codename": "stable",
        "architectures": ["amd64", "arm64"],
        "components": ["main"],
        "description": "Packyard prod",
        "date": date,
        "valid_until": date + timedelta(days=7),
        "files": RELEASE_FILES,
        **overrides,
    }
    text: str = release_file(**values)
    return text


def test_release_file_golden() -> None:
    assert release() == RELEASE


def test_release_file_options() -> None:
    text = release(valid_until=None, acquire_by_hash=False, label="", files=[])
    assert "Valid-Until" not in text
    assert "Acquire-By-Hash" not in text
    assert "Label" not in text
    assert text.endswith("MD5Sum:\nSHA1:\nSHA256:\n")


@pytest.mark.parametrize(
    "overrides",
    [
        {"architectures": ["amd64", "all"]},
        {"architectures": []},
        {"components": ["main", "../x"]},
        {"codename": ""},
        {"origin": "two\nlines"},
        {"valid_until": datetime(2026, 11, 20, tzinfo=UTC)},
        {"date": datetime(2026, 11, 21)},
        {"files": [RELEASE_FILES[0], RELEASE_FILES[0]]},
    ],
)
def test_release_file_refuses_bad_values(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        release(**overrides)


@pytest.mark.parametrize("valid", [True, False])
@pytest.mark.parametrize("had_valid", [True, False])
def test_redate_release_is_release_file_with_the_new_dates(valid: bool, had_valid: bool) -> None:
    # A rollback re-dates an old Release: the result is what release_file writes for the
    # same indexes on the new date, with or without Valid-Until either side.
    later = datetime(2026, 12, 24, 18, 0, 5, tzinfo=UTC)
    until = later + timedelta(days=3) if valid else None
    old = release(valid_until=datetime(2026, 11, 28, tzinfo=UTC) if had_valid else None)
    renewed = redate_release(old.encode(), date=later, valid_until=until)
    assert renewed.decode() == release(date=later, valid_until=until)


def test_redate_release_refuses_bad_input() -> None:
    later = datetime(2026, 12, 24, tzinfo=UTC)
    with pytest.raises(ValueError, match="no Date"):
        redate_release(b"Origin: x\nSHA256:\n", date=later, valid_until=None)
    with pytest.raises(ValueError, match="after"):
        redate_release(release().encode(), date=later, valid_until=later)
    with pytest.raises(ValueError, match="timezone"):
        redate_release(release().encode(), date=datetime(2026, 12, 24), valid_until=None)


def test_index_file_refuses_bad_paths() -> None:
    for path in ("/abs", "a/../b", "with space", ""):
        with pytest.raises(ValueError):
            IndexFile.of(path, b"")


# --- index_common: the JSON index for packets and generic files (no test module of its own:
# it shares compress_variants and the path checks exercised above).


def test_json_index_is_canonical() -> None:
    item = packet_item(
        name="notes",
        version="2.3.1",
        tags=["arch=armv7l", "app", "app"],
        sha256="0" * 64,
        size=10,
        url="https://packyard.example/p/notes-2.3.1.packet",
        scripts=["postinst", "preinst"],
    )
    data = json_index(
        channel="prod",
        generated_at=datetime(2026, 11, 21, 7, 30, tzinfo=timezone(timedelta(hours=1))),
        items=[item, file_item(filename="disk.qcow2", sha256="1" * 64, size=0, url="u")],
    )
    assert data.decode("utf-8") == lines(
        "{\n",
        '  "channel": "prod",\n',
        '  "generated_at": "2026-11-21T06:30:00Z",\n',
        '  "items": [\n',
        "    {\n",
        '      "arch": null,\n',
        '      "name": "notes",\n',
        '      "scripts": [\n        "postinst",\n        "preinst"\n      ],\n',
        f'      "sha256": "{"0" * 64}",\n',
        '      "size": 10,\n',
        '      "tags": [\n        "app",\n        "arch=armv7l"\n      ],\n',
        '      "url": "https://packyard.example/p/notes-2.3.1.packet",\n',
        '      "version": "2.3.1"\n',
        "    },\n",
        "    {\n",
        '      "filename": "disk.qcow2",\n',
        f'      "sha256": "{"1" * 64}",\n',
        '      "size": 0,\n',
        '      "url": "u"\n',
        "    }\n",
        "  ],\n",
        f'  "schema": {JSON_INDEX_SCHEMA}\n',
        "}\n",
    )


def test_json_index_keeps_utf8_and_refuses_non_json() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    data = json_index(channel="dev", generated_at=moment, items=[{"name": "café"}])
    assert "café".encode() in data
    assert json_index(channel="dev", generated_at=moment, items=[]).endswith(b'"schema": 1\n}\n')
    with pytest.raises(ValueError):
        json_index(channel="dev", generated_at=moment, items=[{"size": float("nan")}])
    with pytest.raises(ValueError):
        json_index(channel="dev", generated_at=moment, items=[{1: "x", "a": "y"}])
    with pytest.raises(ValueError):
        json_index(channel="dev", generated_at=datetime(2026, 1, 1), items=[])
    with pytest.raises(ValueError):
        packet_item(name="n", version="1", tags=[], sha256="x", size=1, url="u")
    with pytest.raises(ValueError):
        file_item(filename="f", sha256="0" * 64, size=-1, url="u")


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{}],
        [{"a": "line\nbreak", "n": [1, {"x": []}], "é": "ü"}],
        [{"name": f"p{i}", "tags": [], "meta": {"k": i}} for i in range(5)],
    ],
)
def test_json_index_is_exactly_json_dumps_of_the_document(items: list[dict[str, object]]) -> None:
    # json_index is assembled from per-item parts (cached by publishers): it must stay equal
    # to serialising the whole document at once.
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    document = {
        "channel": "dev",
        "generated_at": "2026-01-01T00:00:00Z",
        "items": items,
        "schema": JSON_INDEX_SCHEMA,
    }
    expected = json.dumps(document, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert json_index(channel="dev", generated_at=moment, items=items) == expected.encode()


def test_packet_items_name_their_arch() -> None:
    def item(arch: str | None) -> dict[str, object]:
        return packet_item(
            name="n", version="1", tags=[], sha256="0" * 64, size=1, url="u", arch=arch
        )

    assert item("armv7l")["arch"] == "armv7l"
    assert item(None)["arch"] is None  # the key is always there


def test_arch_file_suffix_keeps_names_without_arch_and_paths_flat() -> None:
    assert arch_file_suffix(None) == arch_file_suffix("") == ""
    assert arch_file_suffix("aarch64") == "-aarch64"
    assert arch_file_suffix("x86_64,arm64") == "-x86_64+arm64"
    assert arch_file_suffix("x86_64, arm64") == "-x86_64+arm64"
    assert arch_file_suffix("../a/b\n") == "-..+a+b+"  # never a path separator
    assert arch_file_suffix("armv7l") != arch_file_suffix("aarch64")


def test_url_path_encodes_each_segment() -> None:
    assert url_path("0123abcd4567/fw blob#1?.bin") == "0123abcd4567/fw%20blob%231%3F.bin"
    assert url_path("files/tool-1.0+git~1-x86_64+arm64.packet") == (
        "files/tool-1.0%2Bgit~1-x86_64%2Barm64.packet"
    )
    assert url_path("a/100%.bin") == "a/100%25.bin"
    assert url_path("plain/name-1.0.packet") == "plain/name-1.0.packet"
