"""``python -m bench [NAME ...] [--list] [OPTIONS]``: run the named benchmarks (default: all).

Options after the names go to the benchmarks; with several benchmarks selected each takes the
options it knows, and an option none of them knows is an error.
Adding a benchmark: write ``bench/<name>.py`` with ``build_parser()`` and ``run(args) -> int``
and add one line to ``BENCHMARKS``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from types import ModuleType

__all__ = ["BENCHMARKS", "Benchmark", "main"]


@dataclass(frozen=True)
class Benchmark:
    name: str
    summary: str

    def load(self) -> ModuleType:
        # Imported lazily so `--list` stays fast and one broken benchmark can't hide the others.
        return importlib.import_module(f"bench.{self.name}")


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("ingest", "upload a large generic file through the API vs. cp+fsync+sha256sum"),
    Benchmark("web", "server-side render time of every web UI page with 100,000 artifacts"),
    Benchmark("publish", "apt/dnf/pacman channel publish vs. apt-ftparchive/createrepo_c/repo-add"),
    Benchmark("promote", "promote API latency with 10 vs. 10,000 artifacts in the channel"),
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _usage() -> str:
    lines = [
        "usage: python -m bench [NAME ...] [--list] [OPTIONS]",
        "",
        "Runs the named benchmarks (default: all). Options after the names go to the benchmarks;",
        "`python -m bench NAME --help` shows a benchmark's options.",
        "",
        "benchmarks:",
    ]
    lines += [f"  {b.name:<10} {b.summary}" for b in BENCHMARKS]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks named in ``argv``; return the worst exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    names: list[str] = []
    while args and not args[0].startswith("-"):
        names.append(args.pop(0))
    if "--list" in args:
        for bench in BENCHMARKS:
            print(f"{bench.name:<10} {bench.summary}")
        return EXIT_OK
    if not names and any(a in ("-h", "--help") for a in args):
        print(_usage())
        return EXIT_OK

    known = {b.name: b for b in BENCHMARKS}
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"error: no benchmark named {', '.join(unknown)}", file=sys.stderr)
        print(f"hint: choose from {', '.join(known)} (python -m bench --list)", file=sys.stderr)
        return EXIT_USAGE
    selected = [known[n] for n in dict.fromkeys(names)] or list(BENCHMARKS)

    parsed: list[tuple[Benchmark, ModuleType, argparse.Namespace]] = []
    leftovers: list[set[str]] = []
    for bench in selected:
        module = bench.load()
        parser: argparse.ArgumentParser = module.build_parser()
        parser.prog = f"python -m bench {bench.name}"
        rest: list[str] = []
        if len(selected) == 1:
            ns = parser.parse_args(args)
        else:
            ns, rest = parser.parse_known_args(args)
        leftovers.append({a for a in rest if a.startswith("-")})
        parsed.append((bench, module, ns))
    not_taken = set.intersection(*leftovers) if leftovers else set()
    if not_taken:
        print(f"error: no selected benchmark takes {', '.join(sorted(not_taken))}", file=sys.stderr)
        return EXIT_USAGE

    status = EXIT_OK
    for bench, module, ns in parsed:
        print(f"== {bench.name}: {bench.summary}", flush=True)
        status = max(status, int(module.run(ns)))
    return status


if __name__ == "__main__":
    sys.exit(main())
