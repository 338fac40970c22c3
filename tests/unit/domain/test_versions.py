"""Golden version pairs from dpkg's, rpm's and pacman's own test suites, plus our generic order.

Sources (each row is (a, b, expected)):
- dpkg: scripts/t/Dpkg_Version.t's data table and lib/dpkg/t/t-version.c;
- rpm: tests/rpmvercmp.at (4.18, with the caret cases and the documented "oddities");
- pacman: test/util/vercmptest.sh (every case is also checked mirrored, as that script does).
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from packyard.domain.artifacts import ArtifactFormat
from packyard.domain.versions import (
    compare_versions,
    dpkg_compare,
    generic_compare,
    pacman_compare,
    rpm_compare,
    version_sort_key,
)

# scripts/t/Dpkg_Version.t. Its "foo- foo" rows are left out: dpkg >= 1.20 rejects an empty
# revision ("revision number is empty"), which test_dpkg_rejects_what_dpkg_rejects covers.
DPKG_GOLDEN = [
    ("1.0-1", "2.0-2", -1),
    ("2.2~rc-4", "2.2-1", -1),
    ("2.2-1", "2.2~rc-4", 1),
    ("1.0000-1", "1.0-1", 0),
    ("1", "0:1", 0),
    ("0", "0:0-0", 0),
    ("2:2.5", "1:7.5", 1),
    ("1:foo", "foo", 1),
    ("0:foo", "foo", 0),
    ("foo", "foo", 0),
    ("foo", "fo", 1),
    ("foo-0", "foo-01", -1),
    ("foo~1", "foo", -1),
    ("foo~foo+Bar", "foo~foo+bar", -1),
    ("foo~~", "foo~", -1),
    ("1~", "1", -1),
    ("12345+that-really-is-some-ver-0", "12345+that-really-is-some-ver-10", -1),
    ("foo.bar", "foobar", 1),
    ("foo.bar", "foo1bar", 1),
    ("foo.bar", "foo0bar", 1),
    ("1foo-1", "foo-1", -1),
    ("foo2.0", "foo2", 1),
    ("foo2.0.0", "foo2.10.0", -1),
    ("foo2.0", "foo2.0.0", -1),
    ("foo2.0", "foo2.10", -1),
    ("foo2.1", "foo2.10", -1),
    ("1.09", "1.9", 0),
    ("1.0.8+nmu1", "1.0.8", 1),
    ("3.11", "3.10+nmu1", 1),
    ("0.9j-20080306-4", "0.9i-20070324-2", 1),
    ("1.2.0~b7-1", "1.2.0~b6-1", 1),
    ("1.011-1", "1.06-2", 1),
    ("0.0.9+dfsg1-1", "0.0.8+dfsg1-3", 1),
    ("4.6.99+svn6582-1", "4.6.99+svn6496-1", 1),
    ("53", "52", 1),
    ("0.9.9~pre122-1", "0.9.9~pre111-1", 1),
    ("2:2.3.2-2+lenny2", "2:2.3.2-2", 1),
    ("1:3.8.1-1", "3.8.GA-1", 1),
    ("1.0.1+gpl-1", "1.0.1-2", 1),
    ("1a", "1000a", -1),
    # lib/dpkg/t/t-version.c, written as strings.
    ("0-00", "00-0", 0),
    ("1:2-3", "1:2-3", 0),
    ("0-0", "1:0-0", -1),
    ("a-0", "b-0", -1),
    ("0-a", "0-b", -1),
    ("1-1", "2-1", -1),
    ("1-1", "1-2", -1),
    ("0:0.0-0.0", "0.0-0.0", 0),
]

# t-version.c's parse tests: each string must compare equal to its canonical spelling.
DPKG_PARSE_EQUAL = [
    ("0", "0:0"),
    ("0:0-0", "0-0"),
    ("1:0", "1:0"),
    ("0:0-0-0", "0-0-0"),  # upstream "0-0", revision "0"
    ("0:0-0-0-0", "0-0-0-0"),
    ("0:0:0-0", "0:0:0-0"),  # upstream "0:0" (only the first colon ends the epoch)
    ("0:0:0:0-0", "0:0:0:0-0"),
    ("0:0:0-0-0", "0:0:0-0-0"),
    ("0:0-0:0-0", "0:0-0:0-0"),
    ("0:09azAZ.-+~:-0", "0:09azAZ.-+~:-0"),
    ("0:0-azAZ09.+~", "0:0-azAZ09.+~"),
    ("  \t0:0-1", "0:0-1"),
    ("0:0-1\t  ", "0:0-1"),
    ("\t  0:0-1  \t", "0:0-1"),
    # dpkg only warns about these, and still compares them.
    ("0:abc3-0", "abc3-0"),
    ("0:0a_-0", "0:0a_-0"),
    ("+1:2", "1:2"),  # strtol accepts a sign
]

DPKG_INVALID = [
    "",
    "  ",
    "0:",
    "0:0 0-1",
    "-1:0-1",
    "999999999999999999999999:0-1",
    "2147483648:1",
    "a:0-0",
    "A:0-0",
    "-0",
    "0:-0",
    ":1",
    "1a:1",
    "1.0-",
    "0:0-",
]

RPM_GOLDEN = [
    ("1.0", "1.0", 0),
    ("1.0", "2.0", -1),
    ("2.0", "1.0", 1),
    ("2.0.1", "2.0.1", 0),
    ("2.0", "2.0.1", -1),
    ("2.0.1", "2.0", 1),
    ("2.0.1a", "2.0.1a", 0),
    ("2.0.1a", "2.0.1", 1),
    ("2.0.1", "2.0.1a", -1),
    ("5.5p1", "5.5p1", 0),
    ("5.5p1", "5.5p2", -1),
    ("5.5p2", "5.5p1", 1),
    ("5.5p10", "5.5p10", 0),
    ("5.5p1", "5.5p10", -1),
    ("5.5p10", "5.5p1", 1),
    ("10xyz", "10.1xyz", -1),
    ("10.1xyz", "10xyz", 1),
    ("xyz10", "xyz10", 0),
    ("xyz10", "xyz10.1", -1),
    ("xyz10.1", "xyz10", 1),
    ("xyz.4", "xyz.4", 0),
    ("xyz.4", "8", -1),
    ("8", "xyz.4", 1),
    ("xyz.4", "2", -1),
    ("2", "xyz.4", 1),
    ("5.5p2", "5.6p1", -1),
    ("5.6p1", "5.5p2", 1),
    ("5.6p1", "6.5p1", -1),
    ("6.5p1", "5.6p1", 1),
    ("6.0.rc1", "6.0", 1),
    ("6.0", "6.0.rc1", -1),
    ("10b2", "10a1", 1),
    ("10a2", "10b2", -1),
    ("1.0aa", "1.0aa", 0),
    ("1.0a", "1.0aa", -1),
    ("1.0aa", "1.0a", 1),
    ("10.0001", "10.0001", 0),
    ("10.0001", "10.1", 0),
    ("10.1", "10.0001", 0),
    ("10.0001", "10.0039", -1),
    ("10.0039", "10.0001", 1),
    ("4.999.9", "5.0", -1),
    ("5.0", "4.999.9", 1),
    ("20101121", "20101121", 0),
    ("20101121", "20101122", -1),
    ("20101122", "20101121", 1),
    ("2_0", "2_0", 0),
    ("2.0", "2_0", 0),
    ("2_0", "2.0", 0),
    # RhBug:178798
    ("a", "a", 0),
    ("a+", "a+", 0),
    ("a+", "a_", 0),
    ("a_", "a+", 0),
    ("+a", "+a", 0),
    ("+a", "_a", 0),
    ("_a", "+a", 0),
    ("+_", "+_", 0),
    ("_+", "+_", 0),
    ("_+", "_+", 0),
    ("+", "_", 0),
    ("_", "+", 0),
    # tilde
    ("1.0~rc1", "1.0~rc1", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc2", -1),
    ("1.0~rc2", "1.0~rc1", 1),
    ("1.0~rc1~git123", "1.0~rc1~git123", 0),
    ("1.0~rc1~git123", "1.0~rc1", -1),
    ("1.0~rc1", "1.0~rc1~git123", 1),
    # caret
    ("1.0^", "1.0^", 0),
    ("1.0^", "1.0", 1),
    ("1.0", "1.0^", -1),
    ("1.0^git1", "1.0^git1", 0),
    ("1.0^git1", "1.0", 1),
    ("1.0", "1.0^git1", -1),
    ("1.0^git1", "1.0^git2", -1),
    ("1.0^git2", "1.0^git1", 1),
    ("1.0^git1", "1.01", -1),
    ("1.01", "1.0^git1", 1),
    ("1.0^20160101", "1.0^20160101", 0),
    ("1.0^20160101", "1.0.1", -1),
    ("1.0.1", "1.0^20160101", 1),
    ("1.0^20160101^git1", "1.0^20160101^git1", 0),
    ("1.0^20160102", "1.0^20160101^git1", 1),
    ("1.0^20160101^git1", "1.0^20160102", -1),
    # tilde and caret
    ("1.0~rc1^git1", "1.0~rc1^git1", 0),
    ("1.0~rc1^git1", "1.0~rc1", 1),
    ("1.0~rc1", "1.0~rc1^git1", -1),
    ("1.0^git1~pre", "1.0^git1~pre", 0),
    ("1.0^git1", "1.0^git1~pre", 1),
    ("1.0^git1~pre", "1.0^git1", -1),
    # The "oddities" rpm documents (RhBug:811992; non-ASCII bytes such as Greek alpha and
    # beta are separators).
    ("1b.fc17", "1b.fc17", 0),
    ("1b.fc17", "1.fc17", -1),
    ("1.fc17", "1b.fc17", 1),
    ("1g.fc17", "1g.fc17", 0),
    ("1g.fc17", "1.fc17", 1),
    ("1.fc17", "1g.fc17", -1),
    ("1.1.\u03b1", "1.1.\u03b1", 0),
    ("1.1.\u03b1", "1.1.\u03b2", 0),
    ("1.1.\u03b2", "1.1.\u03b1", 0),
    ("1.1.\u03b1\u03b1", "1.1.\u03b1", 0),
    ("1.1.\u03b1", "1.1.\u03b2\u03b2", 0),
    ("1.1.\u03b2\u03b2", "1.1.\u03b1\u03b1", 0),
]

# Whole EVRs, checked against rpm 4.18's rpm.vercmp (rpmverCmp).
RPM_EVR_GOLDEN = [
    ("1.0", "1.0-1", -1),  # a missing release is older than any release
    ("1.0-1", "1.0-2", -1),
    ("1:1.0", "1.0", 1),
    ("0:1.0", "1.0", 0),
    (":1", "0:1", 0),  # an empty epoch is "0"
    ("5:", "5:0", -1),
    ("01:1.0", "1:1.0", 0),
    ("1.0-1.el9", "1.0-1.el8", 1),
    ("2.0-1", "1:1.0-1", -1),
    ("1.0-1-2", "1.0-2", 1),  # the last "-" starts the release: version "1.0-1" > "1.0"
]

# test/util/vercmptest.sh
PACMAN_GOLDEN = [
    ("1.5.0", "1.5.0", 0),
    ("1.5.1", "1.5.0", 1),
    ("1.5.1", "1.5", 1),
    ("1.5.0-1", "1.5.0-1", 0),
    ("1.5.0-1", "1.5.0-2", -1),
    ("1.5.0-1", "1.5.1-1", -1),
    ("1.5.0-2", "1.5.1-1", -1),
    ("1.5-1", "1.5.1-1", -1),
    ("1.5-2", "1.5.1-1", -1),
    ("1.5-2", "1.5.1-2", -1),
    ("1.5", "1.5-1", 0),
    ("1.5-1", "1.5", 0),
    ("1.1-1", "1.1", 0),
    ("1.0-1", "1.1", -1),
    ("1.1-1", "1.0", 1),
    ("1.5b-1", "1.5-1", -1),
    ("1.5b", "1.5", -1),
    ("1.5b-1", "1.5", -1),
    ("1.5b", "1.5.1", -1),
    ("1.0a", "1.0alpha", -1),
    ("1.0alpha", "1.0b", -1),
    ("1.0b", "1.0beta", -1),
    ("1.0beta", "1.0rc", -1),
    ("1.0rc", "1.0", -1),
    ("1.5.a", "1.5", 1),
    ("1.5.b", "1.5.a", 1),
    ("1.5.1", "1.5.b", 1),
    ("1.5.b-1", "1.5.b", 0),
    ("1.5-1", "1.5.b", -1),
    ("2.0", "2_0", 0),
    ("2.0_a", "2_0.a", 0),
    ("2.0a", "2.0.a", -1),
    ("2___a", "2_a", 1),
    ("0:1.0", "0:1.0", 0),
    ("0:1.0", "0:1.1", -1),
    ("1:1.0", "0:1.0", 1),
    ("1:1.0", "0:1.1", 1),
    ("1:1.0", "2:1.1", -1),
    ("1:1.0", "0:1.0-1", 1),
    ("1:1.0-1", "0:1.1-1", 1),
    ("0:1.0", "1.0", 0),
    ("0:1.0", "1.1", -1),
    ("0:1.1", "1.0", 1),
    ("1:1.0", "1.0", 1),
    ("1:1.0", "1.1", 1),
    ("1:1.1", "1.1", 1),
    # Not in vercmptest.sh; checked against vercmp: pacman has no tilde or caret rule.
    ("1.0~rc1", "1.0", 1),
    ("1.0^git1", "1.0", 1),
    ("", "1", -1),
]

# Each list is in strictly increasing order.
GENERIC_ORDERED = [
    ["1.0~x", "1.0.dev1", "1.0a1", "1.0b2", "1.0rc1", "1.0", "1.0.post1", "1.0.1", "1.1", "2"],
    ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11"],
    ["1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.0+build.1", "1.0.0+build.2", "1.0.1"],
    ["2023.12.31", "2024.01.15", "2024.1.16", "2024.03.1", "2024.10.1"],
    ["1.9", "1.10", "1.10.1", "10"],
    ["5.5", "5.5p1", "5.5p2", "5.5p10", "5.6"],
    ["3.2.0-rc1", "3.2.0-zeta", "3.2.0", "3.2.0-hotfix1", "3.2.1"],
]

GENERIC_EQUAL = [
    ("v1.2.3", "1.2.3"),
    ("V1.2", "1.2"),
    ("1.2-3", "1.2.3"),
    ("1_2_3", "1.2.3"),
    ("1.01", "1.1"),
    ("1.0A1", "1.0alpha1"),
    ("1.0-RC1", "1.0rc1"),
    ("1.0.post1", "1.0p1"),
    (" 1.0 ", "1.0"),
]


def _mirrored(rows: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return rows + [(b, a, -expected) for a, b, expected in rows]


@pytest.mark.parametrize(("a", "b", "expected"), _mirrored(DPKG_GOLDEN))
def test_dpkg_golden(a: str, b: str, expected: int) -> None:
    assert dpkg_compare(a, b) == expected


@pytest.mark.parametrize(("a", "b"), DPKG_PARSE_EQUAL)
def test_dpkg_parses_like_dpkg(a: str, b: str) -> None:
    assert dpkg_compare(a, b) == 0


@pytest.mark.parametrize("bad", DPKG_INVALID)
def test_dpkg_rejects_what_dpkg_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        dpkg_compare(bad, "1.0")
    with pytest.raises(ValueError):
        dpkg_compare("1.0", bad)


@pytest.mark.parametrize(("a", "b", "expected"), RPM_GOLDEN + _mirrored(RPM_EVR_GOLDEN))
def test_rpm_golden(a: str, b: str, expected: int) -> None:
    assert rpm_compare(a, b) == expected


def test_rpm_rejects_empty_versions() -> None:
    with pytest.raises(ValueError):
        rpm_compare("", "1.0")
    with pytest.raises(ValueError):
        rpm_compare("1.0", "")


@pytest.mark.parametrize(("a", "b", "expected"), _mirrored(PACMAN_GOLDEN))
def test_pacman_golden(a: str, b: str, expected: int) -> None:
    assert pacman_compare(a, b) == expected


@pytest.mark.parametrize("ordered", GENERIC_ORDERED)
def test_generic_orders_each_list(ordered: list[str]) -> None:
    for (i, a), (j, b) in itertools.product(enumerate(ordered), repeat=2):
        assert generic_compare(a, b) == (i > j) - (i < j), (a, b)


@pytest.mark.parametrize(("a", "b"), GENERIC_EQUAL)
def test_generic_equal_spellings(a: str, b: str) -> None:
    assert generic_compare(a, b) == 0
    assert generic_compare(b, a) == 0


@pytest.mark.parametrize(
    ("fmt", "a", "b", "expected"),
    [
        (ArtifactFormat.DEB, "1.0~rc1", "1.0", -1),
        ("deb", "1:0.1", "9.9", 1),
        (ArtifactFormat.RPM, "1.0^git1", "1.0", 1),
        ("rpm", "1.0", "1.0-1", -1),
        (ArtifactFormat.PACMAN, "1.0~rc1", "1.0", 1),  # pacman treats "~" as a separator
        ("pacman", "1.5-1", "1.5", 0),
        (ArtifactFormat.PACKET, "3.2.0-rc1", "3.2.0", -1),
        ("generic", "2024.03.1", "2024.10.1", -1),
        (ArtifactFormat.MACOS_PKG, "2.10", "2.9.1", 1),
        (ArtifactFormat.PYTHON_WHEEL, "1.0.dev1", "1.0a1", -1),
        (ArtifactFormat.CONTAINER_IMAGE, "v1.2", "1.2", 0),
    ],
)
def test_compare_versions_dispatches_on_format(
    fmt: ArtifactFormat | str, a: str, b: str, expected: int
) -> None:
    assert compare_versions(fmt, a, b) == expected


def test_compare_versions_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown artifact format 'msi'"):
        compare_versions("msi", "1", "2")


def test_version_sort_key_sorts_oldest_first() -> None:
    debs = ["1.1-1", "1.0-1", "1:0.9-1", "1.0~rc1-1", "1.0-1+b1"]
    assert sorted(debs, key=lambda v: version_sort_key("deb", v)) == [
        "1.0~rc1-1",
        "1.0-1",
        "1.0-1+b1",
        "1.1-1",
        "1:0.9-1",
    ]
    rpms = ["1.0-2.el9", "1.0^20240101-1", "1.0~beta-1", "0.9-9"]
    assert max(rpms, key=lambda v: version_sort_key(ArtifactFormat.RPM, v)) == "1.0^20240101-1"


# Characters every ecosystem treats specially, so generated strings hit the odd branches.
_VERSION_TEXT = st.text(alphabet="0123456789abzAZ.-_+~^:", min_size=1, max_size=12)


@given(_VERSION_TEXT, _VERSION_TEXT)
def test_rpm_and_pacman_are_antisymmetric(a: str, b: str) -> None:
    assert rpm_compare(a, b) == -rpm_compare(b, a)
    assert pacman_compare(a, b) == -pacman_compare(b, a)


@given(_VERSION_TEXT, _VERSION_TEXT)
def test_dpkg_is_antisymmetric_on_valid_versions(a: str, b: str) -> None:
    try:
        forward = dpkg_compare(a, b)
    except ValueError:
        return
    assert forward == -dpkg_compare(b, a)


@given(st.lists(st.text(alphabet="0123456789abrcdevpost.-+~v", max_size=10), max_size=8))
def test_generic_sort_is_consistent(versions: list[str]) -> None:
    """A total order: sorting agrees with every pairwise comparison."""
    ordered = sorted(versions, key=lambda v: version_sort_key("generic", v))
    for earlier, later in itertools.pairwise(ordered):
        assert generic_compare(earlier, later) <= 0
