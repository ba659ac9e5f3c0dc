"""Speed of the Z3 layout engines: one table row per query, with the Z3 resource units it spent
and its target (not a test; the unit tests time nothing).

Rows: checking a 64-TDMR layout; worst-case PAMT placement on 8, 16, 32 and 64 TDMRs (the
architecture's maximum), each with 5 or 14 holes per TDMR, chunks on any node and on the
preferred node, and the growth per doubling of the TDMRs; `tdmr --plan` on maps of 128 and
1,000 regions; the four counterexample kinds. Figures are of one run on whatever else the
machine is doing: compare rows of one run, not runs.

Usage: python benchmarks/bench_solver.py [--quick] [--rate] [--root CHECKOUT] [--timeout S]
  --quick            skip the counterexample rows and the 1,000-region plans
  --rate             measure Z3 resource units per second of solving (RLIMIT_PER_SECOND)
  --root CHECKOUT    run another checkout's engines (`git archive REV | tar -x -C DIR`) on the
                     same rows, for a before/after table (units show as "-" where it has none)
  --timeout S        solver budget per query in seconds (default 30, as `tdmr --timeout`)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", action="store_true")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--timeout", type=float, default=30.0)
    return parser.parse_args()


ARGS = parse()
sys.path.insert(0, str(ARGS.root.resolve()))

from checker.engines.planner import plan_layout  # noqa: E402
from checker.engines.solver import ANY_NODE, PREFERRED_NODE, worst_case_placement  # noqa: E402
from checker.engines.synth import KINDS, synthesise  # noqa: E402
from invariants.layout import check_layout  # noqa: E402
from spec.memory import SZ_1G, SZ_1M, MemRange, build_tdx_memlist  # noqa: E402
from spec.sysinfo import TdxSysinfo  # noqa: E402
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


def map_n_tdmrs(tdmrs: int, regions_per_tdmr: int) -> tuple[MemRange, ...]:
    """`tdmrs` TDMRs 2 GiB apart on 2 nodes, each with this many 40 MiB regions (one hole
    more)."""
    regions = []
    for i in range(tdmrs):
        base = 2 * i * SZ_1G + SZ_1M
        regions += [MemRange(base + 64 * SZ_1M * j, base + 64 * SZ_1M * j + 40 * SZ_1M, i % 2)
                    for j in range(regions_per_tdmr)]
    return build_tdx_memlist(regions)


def runs_of_touching_regions(count: int, per_run: int = 25) -> tuple[MemRange, ...]:
    """Runs of touching 64 MiB regions on alternating nodes, 3 GiB apart (v6.8 opens a TDMR per
    GiB a run reaches, 120 for 1,000 regions)."""
    out = []
    for i in range(count):
        run, k = divmod(i, per_run)
        start = 4 * SZ_1G + run * 3 * SZ_1G + 512 * SZ_1M + k * 64 * SZ_1M
        out.append(MemRange(start, start + 64 * SZ_1M, k % 2))
    return build_tdx_memlist(out)


def eight_per_gib(count: int) -> tuple[MemRange, ...]:
    """8 regions of 96 MiB per GiB from 4 GiB up on 8 nodes (benchmarks/bench_tdmr.py)."""
    return build_tdx_memlist(
        MemRange(4 * SZ_1G + (i // 8) * SZ_1G + (i % 8) * 128 * SZ_1M,
                 4 * SZ_1G + (i // 8) * SZ_1G + (i % 8) * 128 * SZ_1M + 96 * SZ_1M, i // 8 % 8)
        for i in range(count))


def one_per_2gib(count: int) -> tuple[MemRange, ...]:
    """A 512 MiB region every 2 GiB."""
    return build_tdx_memlist(MemRange(2 * i * SZ_1G + SZ_1M, 2 * i * SZ_1G + 513 * SZ_1M)
                             for i in range(count))


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def units(result) -> str:
    used = getattr(result, "units", None)
    return "-" if used is None else f"{used / 1e6:.2f}M"


def plan_result(plan) -> str:
    if plan.status != "found":
        return plan.status
    proof = "fewest proved" if plan.fewest_tdmrs_proved else "not proved fewest"
    return f"found, {len(plan.tdmrs)} TDMRs ({proof})"


def main() -> None:
    timeout_ms = int(ARGS.timeout * 1000)
    if ARGS.rate:
        measure_rate()
        return
    rows = []
    memlist = map_64_tdmrs_16_areas()
    layout = construct_tdmrs(memlist).tdmrs
    areas = max(len(t.reserved) for t in layout)
    seconds, found = min((timed(lambda: check_layout(layout, memlist)) for _ in range(3)),
                         key=lambda r: r[0])
    rows.append((f"check layout: {len(layout)} TDMRs x {areas} areas", seconds, "", 1.0,
                 f"{len(found)} violations"))

    growth = {}
    for per_tdmr in (4, 13):
        for mode in (ANY_NODE, PREFERRED_NODE):
            for tdmrs in (8, 16, 32, 64):
                memlist = map_n_tdmrs(tdmrs, per_tdmr)
                seconds, worst = timed(lambda memlist=memlist, mode=mode: worst_case_placement(
                    memlist, mode=mode, timeout_ms=timeout_ms))
                growth.setdefault((per_tdmr, mode), []).append(seconds)
                rows.append((f"worst-case, {tdmrs} TDMRs x {per_tdmr + 1} holes, {mode}",
                             seconds, units(worst), 10.0, worst.status))
    for (per_tdmr, mode), times in growth.items():
        per_doubling = (times[-1] / max(times[0], 1e-6)) ** (1 / 3)
        rows.append((f"  growth per doubling, 8 to 64 TDMRs x {per_tdmr + 1} holes, {mode}",
                     None, "", None, f"{per_doubling:.1f}x"))

    plans = [("plan: 65 regions 2 GiB apart", one_per_2gib(65), TdxSysinfo()),
             ("plan: 128 regions, runs of 8 touching", runs_of_touching_regions(128, 8),
              TdxSysinfo()),
             ("plan: 128 regions, 8 per GiB", eight_per_gib(128), TdxSysinfo()),
             ("plan: 128 regions 2 GiB apart", one_per_2gib(128), TdxSysinfo())]
    if not ARGS.quick:
        plans += [("plan: 1,000 regions, runs of 25 touching", runs_of_touching_regions(1000),
                   TdxSysinfo()),
                  ("plan: 1,000 regions, 8 per GiB (64 TDMRs)", eight_per_gib(1000),
                   TdxSysinfo()),
                  ("plan: 1,000 regions, 8 per GiB (128 TDMRs)", eight_per_gib(1000),
                   TdxSysinfo(max_tdmrs=128)),
                  ("plan: 1,000 regions 2 GiB apart (128 TDMRs, 32 areas)", one_per_2gib(1000),
                   TdxSysinfo(max_tdmrs=128, max_reserved_per_tdmr=32))]
    for name, memlist, sysinfo in plans:
        seconds, plan = timed(lambda memlist=memlist, sysinfo=sysinfo: plan_layout(
            memlist, sysinfo, timeout_ms=timeout_ms))
        rows.append((name, seconds, units(plan), ARGS.timeout, plan_result(plan)))

    if not ARGS.quick:
        for kind in KINDS:
            seconds, found = timed(lambda kind=kind: synthesise(kind, timeout_ms=timeout_ms))
            proof = "proved" if found.proved_minimal else "not proved"
            rows.append((f"counterexample {kind} (64/16)", seconds, "", 60.0,
                         f"{len(found.regions)} regions, {proof}"))

    print(f"{'query':<62} {'seconds':>8} {'units':>7} {'target':>7}  result")
    for name, seconds, used, target, result in rows:
        goal = f"< {target:g}" if target else "-"
        mark = "" if target is None or seconds is None or seconds < target else "  OVER TARGET"
        secs = "" if seconds is None else f"{seconds:8.3f}"
        print(f"{name:<62} {secs:>8} {used:>7} {goal:>7}  {result}{mark}", flush=True)


def measure_rate() -> None:
    """Z3 resource units per second of solving, over the queries the budgets pay for: the
    whole-layout placement query, the planner's solver model, the packing queries. Only the
    time inside `Solver.check` counts; the constant in checker/engines/solver.py should sit
    at or below what this prints, so that units run out before the wall-clock guard."""
    import z3

    from checker.engines import solver as engine
    from checker.engines.planner import _solve_count
    from invariants.layout import LayoutContext
    from spec.tdmr import fill_out_tdmrs, tdmr_get_nid

    calls = []
    check = z3.Solver.check

    def counted(self, *assumptions):
        before, started = engine._rlimit_count(self), time.perf_counter()
        answer = check(self, *assumptions)
        calls.append((time.perf_counter() - started, engine._rlimit_count(self) - before))
        return answer
    z3.Solver.check = counted

    def whole(tdmrs: int, per_tdmr: int, mode: str) -> None:
        memlist = map_n_tdmrs(tdmrs, per_tdmr)
        sysinfo = TdxSysinfo()
        filled = fill_out_tdmrs(memlist, sysinfo, [])
        holes = [d.total for d in engine.hole_demand(filled, memlist)]
        sizes = [engine.pamt_sizes(t, sysinfo) for t in filled]
        nids = [tdmr_get_nid(t, memlist, []) for t in filled]
        engine._whole_layout_query(filled, holes, sizes, nids, memlist, sysinfo, mode,
                                   engine.V6_8, engine.Budget(600_000), list(range(tdmrs)))

    def planner(k: int, memlist) -> None:
        holes = LayoutContext.of(memlist).holes
        _solve_count(k, memlist, holes, memlist, TdxSysinfo(), engine.V6_8,
                     engine.Budget(600_000), 0)

    queries = [(f"whole-layout placement, {n} TDMRs, {mode}",
                lambda n=n, mode=mode: whole(n, 13, mode))
               for n in (16, 32) for mode in (ANY_NODE, PREFERRED_NODE)]
    queries += [("planner's solver model, 65 regions, 5 TDMRs",
                 lambda: planner(5, one_per_2gib(65))),
                ("planner's solver model, 32 regions, 3 TDMRs",
                 lambda: planner(3, runs_of_touching_regions(32, 8)))]
    print(f"{'query':<50} {'calls':>5} {'solve s':>8} {'units':>12} {'units/s':>12}")
    for name, run in queries:
        calls.clear()
        run()
        seconds, used = sum(c[0] for c in calls), sum(c[1] for c in calls)
        print(f"{name:<50} {len(calls):>5} {seconds:8.3f} {used:>12,} "
              f"{used / max(seconds, 1e-9):>12,.0f}", flush=True)
    print(f"RLIMIT_PER_SECOND in checker/engines/solver.py: {engine.RLIMIT_PER_SECOND:,}")


if __name__ == "__main__":
    main()
