"""Our version comparisons against the ecosystems' own tools on generated pairs.

Each tool is called in one batch (a shell loop, or one rpm Lua script) so the whole module
stays within a few seconds. A missing tool fails the test: these checks are the proof that
``packyard.domain.versions`` is exact, so they must not silently disappear.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from packyard.domain.versions import dpkg_compare, pacman_compare, rpm_compare

PAIRS_PER_TOOL = 500
SEED = 20240611

# Which Debian package provides each tool, for the failure message.
TOOL_PACKAGES = {"dpkg": "dpkg", "vercmp": "pacman-package-manager", "rpm": "rpm", "sh": "dash"}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed; this test compares against the real tool. "
            f"Install it with: apt-get install {TOOL_PACKAGES[name]}"
        )
    return path


def random_version(rng: random.Random, *, version_chars: str, release_chars: str) -> str:
    epoch = f"{rng.randint(0, 3)}:" if rng.random() < 0.25 else ""
    length = rng.randint(0, 7)
    head = rng.choice("0123456789") if rng.random() < 0.8 else rng.choice("ab")
    upstream = head + "".join(rng.choice(version_chars) for _ in range(length))
    release = ""
    if rng.random() < 0.6:
        release = "-" + "".join(rng.choice(release_chars) for _ in range(rng.randint(1, 4)))
    return epoch + upstream + release


def mutate(rng: random.Random, version: str, alphabet: str) -> str:
    """A version close to ``version``, so comparisons reach the interesting later segments."""
    chars = list(version)
    position = rng.randrange(len(chars) + 1)
    action = rng.choice(("insert", "replace", "delete", "append"))
    if action == "insert" or not chars:
        chars.insert(position, rng.choice(alphabet))
    elif action == "replace":
        chars[min(position, len(chars) - 1)] = rng.choice(alphabet)
    elif action == "delete" and len(chars) > 1:
        del chars[min(position, len(chars) - 1)]
    else:
        chars.extend(rng.choice(alphabet) for _ in range(rng.randint(1, 3)))
    return "".join(chars)


def generate_pairs(*, seed: int, version_chars: str, release_chars: str) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs: list[tuple[str, str]] = []
    while len(pairs) < PAIRS_PER_TOOL:
        a = random_version(rng, version_chars=version_chars, release_chars=release_chars)
        roll = rng.random()
        if roll < 0.1:
            b = a
        elif roll < 0.7:
            b = mutate(rng, a, version_chars + "-:")
        else:
            b = random_version(rng, version_chars=version_chars, release_chars=release_chars)
        # Leading "-" reads as an option to vercmp and dpkg; empty is "no version" to dpkg.
        if a and b and not a.startswith("-") and not b.startswith("-"):
            pairs.append((a, b))
    return pairs


def ours(compare: Callable[[str, str], int], a: str, b: str) -> str:
    try:
        return str(compare(a, b))
    except ValueError:
        return "E"


def write_pairs(pairs: list[tuple[str, str]], tmp_path: Path) -> Path:
    """One version a line, a then b: no quoting problems whatever the characters."""
    data = tmp_path / "pairs.txt"
    data.write_text("".join(f"{a}\n{b}\n" for a, b in pairs))
    return data


def run_shell_loop(*, script: str, pairs: list[tuple[str, str]], tmp_path: Path) -> list[str]:
    """Run a shell loop that reads the pairs file ($1) and prints one line a pair."""
    sh = require_tool("sh")
    result = subprocess.run(
        [sh, "-c", script, "sh", str(write_pairs(pairs, tmp_path))],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    assert len(lines) == len(pairs), result.stderr
    return lines


# Exit status 0 = relation holds, 1 = does not, anything else = dpkg refused a version.
DPKG_LOOP = r"""
while IFS= read -r a && IFS= read -r b; do
    dpkg --compare-versions "$a" lt "$b" 2>/dev/null; lt=$?
    if [ $lt -gt 1 ]; then echo E; continue; fi
    if [ $lt -eq 0 ]; then echo -1; continue; fi
    if dpkg --compare-versions "$a" eq "$b" 2>/dev/null; then echo 0; else echo 1; fi
done < "$1"
"""
VERCMP_LOOP = r"""
while IFS= read -r a && IFS= read -r b; do vercmp "$a" "$b"; done < "$1"
"""
# rpm's print() appends to the expansion without a newline, so the script joins the lines.
RPM_LUA = """
local lines = {}
for line in io.lines(PAIRS) do lines[#lines + 1] = line end
local out = {}
for i = 1, #lines, 2 do
    local ok, rc = pcall(rpm.vercmp, lines[i], lines[i + 1])
    out[#out + 1] = ok and tostring(rc) or "E"
end
print(table.concat(out, "\\n"))
"""


def dpkg_results(pairs: list[tuple[str, str]], tmp_path: Path) -> list[str]:
    require_tool("dpkg")
    return run_shell_loop(script=DPKG_LOOP, pairs=pairs, tmp_path=tmp_path)


def vercmp_results(pairs: list[tuple[str, str]], tmp_path: Path) -> list[str]:
    require_tool("vercmp")
    return run_shell_loop(script=VERCMP_LOOP, pairs=pairs, tmp_path=tmp_path)


def rpm_results(pairs: list[tuple[str, str]], tmp_path: Path) -> list[str]:
    """All pairs in one rpm process, through a Lua file rpm's macro expander never sees."""
    rpm = require_tool("rpm")
    script = tmp_path / "vercmp.lua"
    script.write_text(RPM_LUA.replace("PAIRS", repr(str(write_pairs(pairs, tmp_path)))))
    result = subprocess.run(
        [rpm, "--eval", f"%{{lua: dofile('{script}')}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = [line for line in result.stdout.splitlines() if line]
    assert len(lines) == len(pairs), result.stderr
    return lines


def assert_all_match(
    pairs: list[tuple[str, str]], theirs: list[str], compare: Callable[[str, str], int]
) -> None:
    mismatches = [
        (a, b, expected, ours(compare, a, b))
        for (a, b), expected in zip(pairs, theirs, strict=True)
        if ours(compare, a, b) != expected
    ]
    assert not mismatches, f"{len(mismatches)} mismatches (a, b, tool, ours): {mismatches[:20]}"


def test_dpkg_compare_matches_dpkg(tmp_path: Path) -> None:
    # "_", "^" and "é" are characters dpkg only warns about: it still compares them.
    pairs = generate_pairs(
        seed=SEED, version_chars="0123456789abzAZ.+~~_^é", release_chars="0123456789abz.+~"
    )
    theirs = dpkg_results(pairs, tmp_path)
    assert theirs.count("E") < len(pairs) // 4, "generator produced mostly invalid versions"
    assert_all_match(pairs, theirs, dpkg_compare)


def test_pacman_compare_matches_vercmp(tmp_path: Path) -> None:
    pairs = generate_pairs(
        seed=SEED + 1, version_chars="0123456789abzAZ.._+~^é", release_chars="0123456789ab._"
    )
    assert_all_match(pairs, vercmp_results(pairs, tmp_path), pacman_compare)


def test_rpm_compare_matches_rpm_vercmp(tmp_path: Path) -> None:
    pairs = generate_pairs(
        seed=SEED + 2, version_chars="0123456789abzAZ.._+~^é", release_chars="0123456789ab._~^"
    )
    assert_all_match(pairs, rpm_results(pairs, tmp_path), rpm_compare)


TRICKY_PAIRS = [
    ("1.0~rc1", "1.0"),
    ("1.0~~", "1.0~"),
    ("1.0+b1", "1.0"),
    ("1.0a", "1.0"),
    ("1.0.a", "1.0"),
    ("2___a", "2_a"),
    ("1:1.0", "2.0"),
    ("01:1", "1:1"),
    ("1.0-1", "1.0"),
    ("1.0-a", "1.0-1"),
    ("1.0.0001", "1.0.1"),
    ("99999999999999999999", "99999999999999999998"),
    ("1.0^git1", "1.0"),
    ("1.0^git1", "1.0.1"),
    ("1.0^", "1.0"),
    ("1.0~", "1.0"),
    ("1.0é", "1.0z"),
    ("1.0é", "1.0."),
]


@pytest.mark.parametrize(
    ("run_tool", "compare"),
    [(dpkg_results, dpkg_compare), (vercmp_results, pacman_compare), (rpm_results, rpm_compare)],
    ids=["dpkg", "vercmp", "rpm"],
)
def test_hand_picked_corner_cases_match_tools(
    run_tool: Callable[[list[tuple[str, str]], Path], list[str]],
    compare: Callable[[str, str], int],
    tmp_path: Path,
) -> None:
    """Corners each port must get right: tilde, caret, odd separators, epochs, big numbers."""
    pairs = TRICKY_PAIRS + [(b, a) for a, b in TRICKY_PAIRS]
    assert_all_match(pairs, run_tool(pairs, tmp_path), compare)
