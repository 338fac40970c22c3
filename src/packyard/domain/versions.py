"""Version ordering for every artifact format, exactly as each ecosystem's own tools order them.

``compare_versions`` picks the rule from the artifact format:

- deb: ``dpkg --compare-versions`` (Debian policy 5.6.12, dpkg's ``verrevcmp``);
- rpm: rpm 4.18's ``rpmverCmp`` (what ``rpm.vercmp`` in rpm's Lua returns) over
  ``[epoch:]version[-release]``, segment by segment with ``rpmvercmp``;
- pacman: libalpm's ``alpm_pkg_vercmp`` (what ``vercmp`` prints);
- everything else: a natural, SemVer-like order described in ``generic_compare``.

The three ecosystem rules are line-by-line ports of the C code and work on the UTF-8 bytes of
the string, as the C code does: that keeps odd separators and non-ASCII characters ordered
exactly as the real tools order them (tests/functional checks this against dpkg, rpm and
vercmp on generated pairs).

This module deliberately does not handle:

- version *relations* (``>=``, ``<<``, rpm rich dependencies): that is dependency solving;
- validating that a version is well-formed for its format beyond what the comparison needs
  (dpkg's warnings about characters are ignored, as ``dpkg --compare-versions`` ignores them);
- dpkg's treatment of an empty version as "no version" in relations: an empty version is an
  error here;
- platforms where C ``char`` is unsigned (arm64 dpkg orders non-ASCII bytes differently); the
  x86 ordering is used everywhere so that the result does not depend on the server's CPU.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from packyard.domain.artifacts import ArtifactFormat

__all__ = [
    "compare_versions",
    "dpkg_compare",
    "generic_compare",
    "pacman_compare",
    "rpm_compare",
    "version_sort_key",
]

_INT_MAX = 2**31 - 1
_DIGITS = frozenset(b"0123456789")
_ALPHAS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALNUMS = _DIGITS | _ALPHAS
_BLANKS = frozenset(b" \t")
_TILDE = ord("~")
_CARET = ord("^")
_ZERO = ord("0")


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


# --------------------------------------------------------------------------------------------
# dpkg
# --------------------------------------------------------------------------------------------


def _dpkg_order(c: int) -> int:
    """Weight of one byte in dpkg's ``verrevcmp`` (0 stands for end of string)."""
    if c in _DIGITS or c == 0:
        return 0
    if c in _ALPHAS:
        return c
    if c == _TILDE:
        return -1
    # dpkg reads a signed ``char`` and adds 256: non-ASCII bytes (negative on x86) land between
    # letters and ASCII punctuation. Reproduced so stored orderings match dpkg on amd64.
    signed = c - 256 if c >= 128 else c
    return signed + 256


def _verrevcmp(a: bytes, b: bytes) -> int:
    """Port of dpkg's ``verrevcmp``: alternating non-digit and digit runs."""
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        first_diff = 0
        while (i < la and a[i] not in _DIGITS) or (j < lb and b[j] not in _DIGITS):
            ac = _dpkg_order(a[i] if i < la else 0)
            bc = _dpkg_order(b[j] if j < lb else 0)
            if ac != bc:
                return _sign(ac - bc)
            i += 1
            j += 1
        while i < la and a[i] == _ZERO:
            i += 1
        while j < lb and b[j] == _ZERO:
            j += 1
        while i < la and j < lb and a[i] in _DIGITS and b[j] in _DIGITS:
            if not first_diff:
                first_diff = a[i] - b[j]
            i += 1
            j += 1
        if i < la and a[i] in _DIGITS:
            return 1
        if j < lb and b[j] in _DIGITS:
            return -1
        if first_diff:
            return _sign(first_diff)
    return 0


_STRTOL_PREFIX = re.compile(rb"[+-]?[0-9]+")


def _dpkg_parse(version: str) -> tuple[int, bytes, bytes]:
    """Split a Debian version into epoch, upstream and revision as dpkg's parseversion does.

    Raises:
        ValueError: On the inputs dpkg refuses outright (empty, embedded blanks, a bad epoch,
            an empty upstream or revision part). Characters dpkg only warns about are accepted.
    """
    raw = version.encode()
    start, end = 0, len(raw)
    while start < end and raw[start] in _BLANKS:
        start += 1
    if start == end:
        raise ValueError("version string is empty")
    stop = start
    while stop < end and raw[stop] not in _BLANKS:
        stop += 1
    if any(c not in _BLANKS for c in raw[stop:]):
        raise ValueError(f"version {version!r} has embedded spaces")
    text = raw[start:stop]

    epoch = 0
    colon = text.find(b":")
    if colon >= 0:
        # dpkg uses strtol, which also takes a sign; mirror exactly what it accepts.
        match = _STRTOL_PREFIX.match(text)
        if match is None:
            raise ValueError(f"epoch in version {version!r} is empty")
        if match.end() != colon:
            raise ValueError(f"epoch in version {version!r} is not number")
        epoch = int(match.group())
        if epoch < 0:
            raise ValueError(f"epoch in version {version!r} is negative")
        if epoch > _INT_MAX:
            raise ValueError(f"epoch in version {version!r} is too big")
        text = text[colon + 1 :]
        if not text:
            raise ValueError(f"nothing after colon in version {version!r}")
    upstream, hyphen, revision = text.rpartition(b"-")
    if not hyphen:
        upstream, revision = text, b""
    elif not revision:
        raise ValueError(f"revision number is empty in {version!r}")
    if not upstream:
        raise ValueError(f"upstream version is empty in {version!r}")
    return epoch, upstream, revision


def dpkg_compare(a: str, b: str) -> int:
    """Compare two Debian versions the way ``dpkg --compare-versions`` does.

    Args:
        a: First version, ``[epoch:]upstream[-revision]``.
        b: Second version.

    Returns:
        -1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``.

    Raises:
        ValueError: If either version is one dpkg rejects (empty, bad epoch, embedded space).
    """
    epoch_a, upstream_a, revision_a = _dpkg_parse(a)
    epoch_b, upstream_b, revision_b = _dpkg_parse(b)
    if epoch_a != epoch_b:
        return 1 if epoch_a > epoch_b else -1
    return _verrevcmp(upstream_a, upstream_b) or _verrevcmp(revision_a, revision_b)


# --------------------------------------------------------------------------------------------
# rpm
# --------------------------------------------------------------------------------------------


def _compare_segment(one: bytes, two: bytes, *, isnum: bool) -> int:
    """Compare two same-kind segments: numbers by value (any length), letters by strcmp."""
    if isnum:
        one = one.lstrip(b"0")
        two = two.lstrip(b"0")
        if len(one) != len(two):
            return 1 if len(one) > len(two) else -1
    if one == two:
        return 0
    return 1 if one > two else -1


def _take_run(data: bytes, pos: int, kind: frozenset[int]) -> int:
    while pos < len(data) and data[pos] in kind:
        pos += 1
    return pos


def _rpmvercmp(a: bytes, b: bytes) -> int:
    """Port of rpm 4.18's ``rpmvercmp`` (with ``~`` and ``^``)."""
    if a == b:
        return 0
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        while i < la and a[i] not in _ALNUMS and a[i] not in (_TILDE, _CARET):
            i += 1
        while j < lb and b[j] not in _ALNUMS and b[j] not in (_TILDE, _CARET):
            j += 1
        ca = a[i] if i < la else 0
        cb = b[j] if j < lb else 0

        # "~" sorts before everything, even the end of the string (1.0~rc1 < 1.0).
        if _TILDE in (ca, cb):
            if ca != _TILDE:
                return 1
            if cb != _TILDE:
                return -1
            i += 1
            j += 1
            continue
        # "^" sorts after the end of the string but before anything else (1.0 < 1.0^git1 < 1.0.1).
        if _CARET in (ca, cb):
            if not ca:
                return -1
            if not cb:
                return 1
            if ca != _CARET:
                return 1
            if cb != _CARET:
                return -1
            i += 1
            j += 1
            continue

        if not (ca and cb):
            break
        isnum = ca in _DIGITS
        kind = _DIGITS if isnum else _ALPHAS
        end_a = _take_run(a, i, kind)
        end_b = _take_run(b, j, kind)
        if end_b == j:
            # One side is numeric, the other alphabetic: numbers are newer.
            return 1 if isnum else -1
        rc = _compare_segment(a[i:end_a], b[j:end_b], isnum=isnum)
        if rc:
            return rc
        i, j = end_a, end_b

    if i >= la and j >= lb:
        return 0
    return -1 if i >= la else 1


def _rpm_split_evr(evr: bytes) -> tuple[bytes | None, bytes, bytes | None]:
    """rpm's ``parseEVR``: leading digits then ``:`` is the epoch, the last ``-`` the release."""
    digits_end = _take_run(evr, 0, _DIGITS)
    rest = evr[digits_end:]
    hyphen = rest.rfind(b"-")
    release: bytes | None = None
    if hyphen >= 0:
        release = rest[hyphen + 1 :]
        evr = evr[: digits_end + hyphen]
    if evr[digits_end : digits_end + 1] == b":":
        return evr[:digits_end] or b"0", evr[digits_end + 1 :], release
    return None, evr, release


def rpm_compare(a: str, b: str) -> int:
    """Compare two rpm EVR strings as rpm 4.18's ``rpm.vercmp`` / ``rpmverCmp`` does.

    A missing epoch counts as 0 (``0:1.0`` equals ``1.0``); a missing release is older than
    any release (``1.0 < 1.0-1``). This is a total order for sorting; rpm's dependency
    matching, where ``= 1.0`` is satisfied by ``1.0-3``, is a relation and is not done here.

    Args:
        a: First version, ``[epoch:]version[-release]``.
        b: Second version.

    Returns:
        -1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``.

    Raises:
        ValueError: If either version is empty (rpm refuses it as an invalid version).
    """
    if not a or not b:
        raise ValueError("rpm versions must not be empty")
    epoch_a, version_a, release_a = _rpm_split_evr(a.encode())
    epoch_b, version_b, release_b = _rpm_split_evr(b.encode())
    rc = _rpmvercmp(epoch_a or b"0", epoch_b or b"0")
    if rc:
        return rc
    rc = _rpmvercmp(version_a, version_b)
    if rc:
        return rc
    if release_a is None or release_b is None:
        # rpmverCmp's compare_values: a missing release is older than any release.
        return (release_a is not None) - (release_b is not None)
    return _rpmvercmp(release_a, release_b)


# --------------------------------------------------------------------------------------------
# pacman
# --------------------------------------------------------------------------------------------


def _alpm_rpmvercmp(a: bytes, b: bytes) -> int:
    """Port of libalpm's ``rpmvercmp`` (older rpm algorithm, no ``~``/``^``).

    It differs from rpm's: the loop stops when either side runs out, separator runs of
    different lengths decide the order, and a trailing letter never beats the end of string.
    """
    if a == b:
        return 0
    i = j = 0  # "one" and "two" in the C code
    pi = pj = 0  # "ptr1" and "ptr2": where the previous segment ended
    la, lb = len(a), len(b)
    while i < la and j < lb:
        i = _skip_non_alnum(a, i)
        j = _skip_non_alnum(b, j)
        if not (i < la and j < lb):
            break
        if (i - pi) != (j - pj):
            return -1 if (i - pi) < (j - pj) else 1
        isnum = a[i] in _DIGITS
        kind = _DIGITS if isnum else _ALPHAS
        pi = _take_run(a, i, kind)
        pj = _take_run(b, j, kind)
        if pj == j:
            return 1 if isnum else -1
        rc = _compare_segment(a[i:pi], b[j:pj], isnum=isnum)
        if rc:
            return rc
        i, j = pi, pj

    if i >= la and j >= lb:
        return 0
    # The "final showdown": a leftover letter run loses even against the end of the string
    # (1.0a < 1.0), anything else left over wins (1.0.1 > 1.0).
    next_b = b[j] if j < lb else 0
    if (i >= la and next_b not in _ALPHAS) or (i < la and a[i] in _ALPHAS):
        return -1
    return 1


def _skip_non_alnum(data: bytes, pos: int) -> int:
    while pos < len(data) and data[pos] not in _ALNUMS:
        pos += 1
    return pos


def _alpm_split_evr(evr: bytes) -> tuple[bytes, bytes, bytes | None]:
    epoch, version, release = _rpm_split_evr(evr)
    # Unlike rpm, libalpm always compares epochs, defaulting to 0.
    return epoch or b"0", version, release


def pacman_compare(a: str, b: str) -> int:
    """Compare two pacman versions exactly as ``vercmp`` (``alpm_pkg_vercmp``) does.

    Args:
        a: First version, ``[epoch:]pkgver[-pkgrel]``.
        b: Second version.

    Returns:
        -1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``. The pkgrel is
        compared only when both versions carry one.
    """
    if a == b:
        return 0
    epoch_a, version_a, release_a = _alpm_split_evr(a.encode())
    epoch_b, version_b, release_b = _alpm_split_evr(b.encode())
    rc = _alpm_rpmvercmp(epoch_a, epoch_b)
    if rc:
        return rc
    rc = _alpm_rpmvercmp(version_a, version_b)
    if rc or release_a is None or release_b is None:
        return rc
    return _alpm_rpmvercmp(release_a, release_b)


# --------------------------------------------------------------------------------------------
# everything else
# --------------------------------------------------------------------------------------------

# Rank of a token at one position; the end of the version has rank _END.
_TILDE_RANK = 0
_PRE = 1
_END = 2
_POST = 3
_NUMBER = 4

_PRE_RELEASE_ORDER = {
    "dev": 0,
    "snapshot": 0,
    "nightly": 0,
    "a": 1,
    "alpha": 1,
    "b": 2,
    "beta": 2,
    "pre": 3,
    "preview": 3,
    "c": 4,
    "rc": 4,
    "cr": 4,
}
# Unknown words sort after every known pre-release word (and among themselves alphabetically).
_UNKNOWN_PRE = 5
_POST_RELEASE_WORDS = frozenset({"post", "patch", "p", "pl", "r", "rev", "hotfix"})
_GENERIC_TOKEN = re.compile(r"[0-9]+|[a-z]+|~")
_LEADING_V = re.compile(r"^v(?=[0-9])")

_Token = tuple[int, int, str]


def _generic_tokens(part: str) -> list[_Token]:
    tokens: list[_Token] = []
    for text in _GENERIC_TOKEN.findall(part):
        if text == "~":
            tokens.append((_TILDE_RANK, 0, ""))
        elif text.isdigit():
            tokens.append((_NUMBER, int(text), ""))
        elif text in _POST_RELEASE_WORDS:
            # Spellings of one idea compare equal (1.0.post1 == 1.0p1, 1.0a1 == 1.0alpha1).
            tokens.append((_POST, 0, ""))
        elif text in _PRE_RELEASE_ORDER:
            tokens.append((_PRE, _PRE_RELEASE_ORDER[text], ""))
        else:
            tokens.append((_PRE, _UNKNOWN_PRE, text))
    return tokens


def _compare_tokens(a: list[_Token], b: list[_Token]) -> int:
    end: _Token = (_END, 0, "")
    for index in range(max(len(a), len(b))):
        ta = a[index] if index < len(a) else end
        tb = b[index] if index < len(b) else end
        if ta != tb:
            return 1 if ta > tb else -1
    return 0


def _generic_split(version: str) -> tuple[list[_Token], list[_Token] | None]:
    text = _LEADING_V.sub("", version.strip().lower())
    main, plus, build = text.partition("+")
    return _generic_tokens(main), (_generic_tokens(build) if plus else None)


def generic_compare(a: str, b: str) -> int:
    """Natural, SemVer-like order for formats without an ordering rule of their own.

    Used for packets, macOS pkgs, wheels and sdists, images and generic blobs. The rule:

    - case is ignored and a leading ``v`` before a digit is dropped (``v1.2`` == ``1.2``);
    - the version splits into number runs and letter runs; every other character separates
      (``1.2-3`` == ``1.2.3`` == ``1_2_3``) and leading zeros do not count (``1.01`` == ``1.1``);
    - runs compare left to right; at one position ``~`` < pre-release word < end of version <
      post-release word < number. So ``1.0~x < 1.0rc1 < 1.0 < 1.0.post1 < 1.0.1``;
    - pre-release words order ``dev``/``snapshot``/``nightly`` < ``a``/``alpha`` <
      ``b``/``beta`` < ``pre``/``preview`` < ``c``/``rc``/``cr`` < any other word
      (alphabetically); post-release words are ``post``, ``patch``, ``p``, ``pl``, ``r``,
      ``rev``, ``hotfix``;
    - everything after the first ``+`` is build metadata: it only breaks ties, and a version
      with build metadata is newer than the same version without (``1.0 < 1.0+b1 < 1.0+b2``).

    Unlike SemVer, a numeric identifier inside a pre-release sorts after a word
    (``1.0.0-alpha.beta < 1.0.0-alpha.1``) and build metadata is not ignored; unlike PEP 440,
    epochs (``1!2.0``) are not understood.

    Args:
        a: First version.
        b: Second version.

    Returns:
        -1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``.
    """
    main_a, build_a = _generic_split(a)
    main_b, build_b = _generic_split(b)
    rc = _compare_tokens(main_a, main_b)
    if rc:
        return rc
    if build_a is None or build_b is None:
        return (build_a is not None) - (build_b is not None)
    return _compare_tokens(build_a, build_b)


# --------------------------------------------------------------------------------------------
# dispatch
# --------------------------------------------------------------------------------------------

_COMPARATORS: dict[ArtifactFormat, Callable[[str, str], int]] = {
    ArtifactFormat.DEB: dpkg_compare,
    ArtifactFormat.RPM: rpm_compare,
    ArtifactFormat.PACMAN: pacman_compare,
}


def _comparator(fmt: ArtifactFormat | str) -> Callable[[str, str], int]:
    try:
        artifact_format = ArtifactFormat(fmt)
    except ValueError:
        known = ", ".join(f.value for f in ArtifactFormat)
        raise ValueError(f"unknown artifact format {fmt!r}; expected one of: {known}") from None
    return _COMPARATORS.get(artifact_format, generic_compare)


def compare_versions(fmt: ArtifactFormat | str, a: str, b: str) -> int:
    """Compare two versions of the same format with that format's own rule.

    Args:
        fmt: The artifact format (or its string value, e.g. ``"deb"``).
        a: First version.
        b: Second version.

    Returns:
        -1, 0 or 1 as ``a`` is older than, equal to or newer than ``b``.

    Raises:
        ValueError: If the format is unknown or a version is one the format's tool rejects.
    """
    return _comparator(fmt)(a, b)


def version_sort_key(fmt: ArtifactFormat | str, v: str) -> Any:
    """A key for ``sorted``/``max`` that orders versions of one format oldest first.

    Args:
        fmt: The artifact format (or its string value).
        v: The version to wrap.

    Returns:
        An opaque object comparable with other keys made for the same format.

    Raises:
        ValueError: If the format is unknown.

    Example:
        ``sorted(versions, key=lambda v: version_sort_key("deb", v))``
    """
    return functools.cmp_to_key(_comparator(fmt))(v)
