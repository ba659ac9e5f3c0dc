"""Benchmark of the map search behind the `maps` check (`checker.engines.mapsearch`).

One row per profile the default suite gives a `maps` check (v6.8, the CMR-hole variant, the bug
profiles with a TDMR rule): cases examined (generated plus shrinking), seconds, cases per
second, seconds to the first case that goes wrong, and the smallest case found. Each
case is tried with three PAMT placements, and with v6.8 beside it for SAME-AS-V6.8 when the
profile's rules differ.

Usage: python benchmarks/bench_mapsearch.py [--examples N] [--profile NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checker.engines.mapsearch import (  # noqa: E402
    EXAMPLES,
    describe_case,
    describe_placement,
    smallest_violating_map,
)
from spec.profiles import PROFILES, TDMR_RULES, rule_changes  # noqa: E402

DEFAULT = [name for name, p in PROFILES.items()
           if not rule_changes(p) or rule_changes(p) & TDMR_RULES]


def row(name: str, examples: int) -> str:
    started = time.perf_counter()
    outcome = smallest_violating_map(PROFILES[name], examples)
    elapsed = time.perf_counter() - started
    first = "-" if outcome.first_find_s is None else f"{outcome.first_find_s:.2f}"
    found = "none"
    if outcome.witness is not None:
        w = outcome.witness
        found = (f"{w.finding.invariant} on {describe_case(w.case)}, "
                 f"{describe_placement(w.finding)}")
    return (f"| {name} | {outcome.examples:,} | {elapsed:.2f} | "
            f"{outcome.examples / elapsed:,.0f} | {first} | {found} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=EXAMPLES,
                        help=f"cases generated per search (default {EXAMPLES}, as verify)")
    parser.add_argument("--profile", action="append", choices=sorted(PROFILES),
                        help="profile to search (repeatable; default: those with a maps check)")
    args = parser.parse_args()
    print(f"map search, {args.examples} generated cases per profile")
    print("| profile | cases | s | cases/s | s to first find | smallest case found |")
    print("|---|---:|---:|---:|---:|---|")
    for name in args.profile or DEFAULT:
        print(row(name, args.examples), flush=True)


if __name__ == "__main__":
    main()
