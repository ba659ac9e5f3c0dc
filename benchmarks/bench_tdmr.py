"""Scaling benchmark of `spec.tdmr.construct_tdmrs` on generated maps of 1k, 10k, 100k regions.

Each 1 GiB window from 4 GiB up holds 8 regions of 96 MiB, 128 MiB apart (7 gaps and a
trailing hole per window), on node `window % 8`; so a map of N regions gives N/8 TDMRs. First-fit
packs the PAMT chunks into the first windows of each node. Limits are raised so that
construction succeeds. Growth per 10x more regions must stay under 15x (near-linear).

Usage: python benchmarks/bench_tdmr.py [--sizes 1000 10000 100000] [--profile]
Exit status 1 if growth is worse than the bound.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from spec.memory import SZ_1G, SZ_1M, MemRange  # noqa: E402
from spec.placement import FirstFit  # noqa: E402
from spec.sysinfo import TdxSysinfo  # noqa: E402
from spec.tdmr import construct_tdmrs  # noqa: E402

PER_WINDOW = 8
NODES = 8
MAX_GROWTH = 15.0


def generate(regions: int) -> tuple[MemRange, ...]:
    """`regions` page-aligned regions, 8 per 1 GiB window, windows from 4 GiB up."""
    out = []
    for i in range(regions):
        window, slot = divmod(i, PER_WINDOW)
        start = 4 * SZ_1G + window * SZ_1G + slot * 128 * SZ_1M
        out.append(MemRange(start, start + 96 * SZ_1M, window % NODES))
    return tuple(out)


def build(memlist: tuple[MemRange, ...]):
    sysinfo = TdxSysinfo(max_tdmrs=len(memlist) + 4, max_reserved_per_tdmr=len(memlist) + 16)
    result = construct_tdmrs(memlist, sysinfo, FirstFit())
    if not result.ok:
        raise SystemExit(f"construction failed: {result.error}")
    return result


def timed(memlist: tuple[MemRange, ...], budget: float = 1.0) -> tuple[float, int]:
    """Best of several runs (as many as fit in `budget` seconds, at least one)."""
    best, tdmrs, spent = float("inf"), 0, 0.0
    while spent < budget or best == float("inf"):
        t0 = time.perf_counter()
        tdmrs = len(build(memlist).tdmrs)
        elapsed = time.perf_counter() - t0
        best, spent = min(best, elapsed), spent + elapsed
        if elapsed > budget:
            break
    return best, tdmrs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--profile", action="store_true",
                        help="profile the largest size and print the top functions")
    args = parser.parse_args(argv)

    rows, worst = [], 0.0
    print(f"{'regions':>8} {'TDMRs':>7} {'seconds':>9} {'growth/10x':>11}")
    for n in args.sizes:
        seconds, tdmrs = timed(generate(n))
        if rows:
            prev_n, prev_s = rows[-1]
            # normalise to a factor of 10 in size, whatever the step
            growth = (seconds / prev_s) ** (1 / math.log10(n / prev_n))
            worst = max(worst, growth)
            col = f"{growth:10.1f}x"
        else:
            col = f"{'-':>11}"
        rows.append((n, seconds))
        print(f"{n:>8} {tdmrs:>7} {seconds:>9.3f} {col}", flush=True)
    if len(rows) > 1:
        verdict = "near-linear" if worst < MAX_GROWTH else f"WORSE than {MAX_GROWTH:.0f}x per 10x"
        print(f"worst growth per 10x: {worst:.1f}x ({verdict})")

    if args.profile:
        memlist = generate(max(args.sizes))
        profiler = cProfile.Profile()
        profiler.runcall(build, memlist)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(8)
    return 0 if worst < MAX_GROWTH else 1


if __name__ == "__main__":
    sys.exit(main())
