"""Speed of the Z3 layout engines: prints one table row per query with its target.

Run: `python benchmarks/bench_solver.py` (from the repository root).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from checker.engines.planner import plan_layout  # noqa: E402
from checker.engines.solver import ANY_NODE, PREFERRED_NODE, worst_case_placement  # noqa: E402
from checker.engines.synth import KINDS, synthesise  # noqa: E402
from invariants.layout import check_layout  # noqa: E402
from spec.memory import SZ_1G, SZ_1M, MemRange, build_tdx_memlist  # noqa: E402
from spec.tdmr import construct_tdmrs  # noqa: E402


def map_64_tdmrs_16_areas() -> tuple[MemRange, ...]:
    """64 GiBs on 64 nodes, each a 64 MiB region and 13 small ones: 15 holes + own PAMT."""
    regions = []
    for i in range(64):
        base = i * SZ_1G + SZ_1M
        regions.append(MemRange(base, base + 64 * SZ_1M, i))
        regions += [MemRange(base + 64 * SZ_1M + 8 * SZ_1M * j,
                             base + 64 * SZ_1M + 8 * SZ_1M * j + 4 * SZ_1M, i)
                    for j in range(1, 14)]
    return build_tdx_memlist(regions)


def map_8_tdmrs(regions_per_tdmr: int) -> tuple[MemRange, ...]:
    """8 TDMRs 2 GiB apart on 2 nodes, each with this many 40 MiB regions (one hole more)."""
    regions = []
    for i in range(8):
        base = 2 * i * SZ_1G + SZ_1M
        regions += [MemRange(base + 64 * SZ_1M * j, base + 64 * SZ_1M * j + 40 * SZ_1M, i % 2)
                    for j in range(regions_per_tdmr)]
    return build_tdx_memlist(regions)


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def main() -> None:
    rows = []
    memlist = map_64_tdmrs_16_areas()
    layout = construct_tdmrs(memlist).tdmrs
    areas = max(len(t.reserved) for t in layout)
    seconds, found = min((timed(lambda: check_layout(layout, memlist)) for _ in range(3)),
                         key=lambda r: r[0])
    rows.append((f"check layout: {len(layout)} TDMRs x {areas} areas", seconds, 1.0,
                 f"{len(found)} violations"))

    for per_tdmr in (4, 13):
        memlist = map_8_tdmrs(per_tdmr)
        for mode in (ANY_NODE, PREFERRED_NODE):
            seconds, worst = timed(lambda memlist=memlist, mode=mode:
                                   worst_case_placement(memlist, mode=mode))
            rows.append((f"worst-case placement, 8 TDMRs x {per_tdmr + 1} holes, {mode}",
                         seconds, 10.0, worst.status))

    memlist = build_tdx_memlist(MemRange(2 * i * SZ_1G + SZ_1M, 2 * i * SZ_1G + 513 * SZ_1M)
                                for i in range(65))
    seconds, plan = timed(lambda: plan_layout(memlist))
    rows.append(("plan: 65 regions 2 GiB apart", seconds, None,
                 f"{plan.status}, {len(plan.tdmrs)} TDMRs"))

    for kind in KINDS:
        seconds, found = timed(lambda kind=kind: synthesise(kind))
        proof = "proved" if found.proved_minimal else "not proved"
        rows.append((f"counterexample {kind} (64/16)", seconds, 60.0,
                     f"{len(found.regions)} regions, {proof}"))

    print(f"{'query':<60} {'seconds':>8} {'target':>7}  result")
    for name, seconds, target, result in rows:
        goal = f"< {target:g}" if target else "-"
        mark = "" if target is None or seconds < target else "  OVER TARGET"
        print(f"{name:<60} {seconds:8.3f} {goal:>7}  {result}{mark}")


if __name__ == "__main__":
    main()
