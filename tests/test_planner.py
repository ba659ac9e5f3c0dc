"""The planner: valid layouts where the kernel's one-TDMR-per-region rule fails."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from checker.engines.planner import hole_lower_bound, plan_layout
from checker.engines.solver import pamt_sizes
from checker.inputs.readers import read_input
from invariants.layout import LayoutContext, check_layout
from spec.errno import ENOSPC
from spec.memory import SZ_1G, SZ_1M, MemRange, build_tdx_memlist, round_up
from spec.profiles import get_profile
from spec.sysinfo import TdxSysinfo
from spec.tdmr import Tdmr

LOGS = Path(__file__).resolve().parent.parent / "checker" / "data" / "boot-logs"


def test_65_regions_over_1g_apart_fit_in_5_tdmrs():
    memlist = build_tdx_memlist(MemRange(2 * i * SZ_1G + SZ_1M, 2 * i * SZ_1G + 513 * SZ_1M)
                                for i in range(65))
    plan = plan_layout(memlist)
    assert plan.kernel.error.errno == -ENOSPC and "TDMRs exhausted" in plan.kernel.error.message
    assert plan.status == "found" and plan.fewest_tdmrs_proved
    # 65 regions need 65 gaps-or-edges plus one PAMT area per TDMR: 4 x 16 < 65 + 4 + 4
    assert len(plan.tdmrs) == 5
    assert plan.max_areas <= 16
    assert check_layout(plan.tdmrs, memlist) == [] and plan.violations == ()


def test_emr_e820_map_splits_the_failing_tdmr():
    memlist = build_tdx_memlist(read_input(LOGS / "emr-fcp-e820-first-2g.log").regions)
    plan = plan_layout(memlist)
    assert not plan.kernel.ok
    assert [(t.base, t.end) for t in plan.tdmrs] == [(0, SZ_1G), (SZ_1G, 2 * SZ_1G)]
    assert check_layout(plan.tdmrs, memlist) == []
    assert plan.describe().startswith("plan: 2 TDMRs")


def test_with_cmr_knowledge_one_tdmr_is_enough():
    """The same memory with holes taken from the CMR: only the two edges are holes."""
    memlist = build_tdx_memlist(read_input(LOGS / "emr-fcp-e820-first-2g.log").regions)
    cmrs = (MemRange(SZ_1M, 0x6F800000),)
    plan = plan_layout(memlist, cmrs=cmrs, profile=get_profile("cmr-holes"))
    assert [(t.base, t.end) for t in plan.tdmrs] == [(0, 2 * SZ_1G)]
    assert plan.areas == 3  # leading hole, trailing hole, PAMT
    assert check_layout(plan.tdmrs, memlist, hole_ranges=cmrs) == []


def test_no_layout_within_the_limits_is_proved_infeasible():
    memlist = build_tdx_memlist([MemRange(SZ_1M, 64 * SZ_1M)])
    plan = plan_layout(memlist, TdxSysinfo(max_tdmrs=2, max_reserved_per_tdmr=1))
    assert plan.status == "infeasible" and plan.tdmrs == ()


def test_plan_json_has_the_layout_and_the_proofs():
    memlist = build_tdx_memlist([MemRange(SZ_1M, 64 * SZ_1M)])
    data = plan_layout(memlist).to_json()
    assert data["status"] == "found" and data["tdmr_count"] == 1
    assert data["fewest_tdmrs_proved"] and data["fewest_areas_proved"]
    assert data["tdmrs"][0]["base"] == "0x0"


def test_hole_lower_bound_matches_hand_count():
    """65 regions one per odd GiB: k TDMRs meet 65 + k hole pieces at best (each TDMR one more
    than the regions it holds); 65 TDMRs, one per region, meet 2 each."""
    memlist = build_tdx_memlist(MemRange(2 * i * SZ_1G + SZ_1M, 2 * i * SZ_1G + 513 * SZ_1M)
                                for i in range(65))
    holes = LayoutContext.of(memlist).holes
    assert [hole_lower_bound(k, memlist, holes) for k in (1, 5, 65)] == [66, 70, 130]


# --- the bounds, the construction and the solver agree with an exhaustive search -------------

def fewest_by_enumeration(memlist, sysinfo):
    """Every layout of the planner's kind on a small map, enumerated: GiB-aligned TDMRs in
    order covering the memory, each TDMR's holes plus the chunks it hosts within the limit, a
    chunk hosted only where a memory piece is as large (hosts accept every chunk up to their
    largest piece, so Hall's condition is a check per chunk size). The fewest TDMRs and, with
    that many, the fewest holes; None when no layout has at most max_tdmrs."""
    holes = LayoutContext.of(memlist, sysinfo).holes
    limit = sysinfo.max_reserved_per_tdmr
    points = range(0, round_up(memlist[-1].end, SZ_1G) + 1, SZ_1G)

    def feasible(tdmrs):
        spare, largest, chunks = [], [], []
        for base, end in tdmrs:
            met = sum(1 for s, e in holes if s < end and e > base)
            spare.append(limit - met)
            largest.append(max((min(r.end, end) - max(r.start, base) for r in memlist
                                if r.start < end and r.end > base), default=0))
            chunks.append(sum(pamt_sizes(Tdmr(base, end - base), sysinfo)))
        if min(spare) < 0:
            return None
        for size in chunks:
            room = sum(s for s, big in zip(spare, largest, strict=True) if big >= size)
            if sum(1 for c in chunks if c >= size) > room:
                return None
        return sum(limit - s for s in spare)

    best = {}

    def extend(covered_to, tdmrs):
        if covered_to >= memlist[-1].end and tdmrs:
            met = feasible(tdmrs)
            if met is not None:
                k = len(tdmrs)
                best[k] = min(best.get(k, met), met)
            return
        if len(tdmrs) == sysinfo.max_tdmrs:
            return
        for base in points:
            if base < covered_to or any(r.start < base and r.end > covered_to
                                        for r in memlist if base > covered_to):
                continue  # overlaps the last TDMR, or leaves memory uncovered
            for end in points:
                if end > base:
                    extend(end, [*tdmrs, (base, end)])

    extend(0, [])
    if not best:
        return None
    k = min(best)
    return k, best[k]


GIB_MAPS = st.lists(st.tuples(st.sampled_from([4096, SZ_1M, 200 * SZ_1M, SZ_1G]),
                              st.sampled_from([4096, SZ_1M, 4 * SZ_1M, 5 * SZ_1M,
                                               64 * SZ_1M, 512 * SZ_1M, SZ_1G + 4096])),
                    min_size=1, max_size=5)


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(GIB_MAPS, st.integers(min_value=1, max_value=5), st.integers(min_value=2, max_value=8))
def test_plans_agree_with_enumerating_every_layout(pieces, max_tdmrs, limit):
    """Small maps (at most 4 GiB): the planner's fewest TDMRs and areas, when it says they are
    proved, are those of the exhaustive search; "infeasible" only when the search finds none;
    every plan passes the layout constraints."""
    regions, at = [], SZ_1M
    for gap, size in pieces:
        regions.append(MemRange(at, at + size))
        at += size + gap
    memlist = build_tdx_memlist(r for r in regions if r.end <= 4 * SZ_1G)
    if not memlist:
        return
    sysinfo = TdxSysinfo(max_tdmrs=max_tdmrs, max_reserved_per_tdmr=limit)
    plan = plan_layout(memlist, sysinfo)
    truth = fewest_by_enumeration(memlist, sysinfo)
    assert plan.status != "unknown" or plan.reason
    if plan.status == "infeasible":
        assert truth is None
    if plan.status == "found":
        assert plan.violations == () and truth is not None
        k, holes = truth
        assert len(plan.tdmrs) >= k
        if plan.fewest_tdmrs_proved:
            assert len(plan.tdmrs) == k
            if plan.fewest_areas_proved:
                assert plan.areas - k == holes
    solver_only = plan_layout(memlist, sysinfo, construct=False)
    if plan.fewest_tdmrs_proved and solver_only.fewest_tdmrs_proved:
        assert len(solver_only.tdmrs) == len(plan.tdmrs)
    if "unknown" not in (plan.status, solver_only.status):
        assert (plan.status, solver_only.status) in {("found", "found"),
                                                     ("infeasible", "infeasible")}


# --- 1,000-region maps, budgets, and saying what is proved ------------------------------------

def runs_of_touching_regions(count: int, per_run: int = 25) -> tuple[MemRange, ...]:
    """Runs of touching 64 MiB regions on alternating nodes, 3 GiB apart: the kernel opens a
    TDMR per GiB a run reaches (120 for 1,000 regions); no PAMT chunk fits in a TDMR of more
    than 15 GiB, as a chunk lies inside one 64 MiB region."""
    out = []
    for i in range(count):
        run, k = divmod(i, per_run)
        start = 4 * SZ_1G + run * 3 * SZ_1G + 512 * SZ_1M + k * 64 * SZ_1M
        out.append(MemRange(start, start + 64 * SZ_1M, k % 2))
    return build_tdx_memlist(out)


def eight_per_gib(count: int) -> tuple[MemRange, ...]:
    """8 regions of 96 MiB in each GiB from 4 GiB up (benchmarks/bench_tdmr.py's map): each GiB
    meets 8 holes, two GiBs 16."""
    return build_tdx_memlist(
        MemRange(4 * SZ_1G + (i // 8) * SZ_1G + (i % 8) * 128 * SZ_1M,
                 4 * SZ_1G + (i // 8) * SZ_1G + (i % 8) * 128 * SZ_1M + 96 * SZ_1M, i // 8 % 8)
        for i in range(count))


def test_a_thousand_regions_in_touching_runs_fit_in_8_tdmrs():
    memlist = runs_of_touching_regions(1000)
    plan = plan_layout(memlist)
    assert "TDMRs exhausted" in plan.kernel.error.message
    assert plan.status == "found" and plan.fewest_tdmrs_proved and plan.fewest_areas_proved
    assert len(plan.tdmrs) == 8 and plan.violations == () and plan.how == "construction"
    assert all(t.size <= 15 * SZ_1G for t in plan.tdmrs)


def test_a_thousand_regions_eight_per_gib_need_67_tdmrs():
    """125 GiBs of 8 holes each: 1,000 holes and a chunk per TDMR within 16 areas each need
    67 TDMRs (66 x 16 < 1,000 + 66); 58 TDMRs of two GiBs host no chunk, 9 of one GiB host
    all 67. With the architecture's 64 that is proved impossible, with no solver."""
    memlist = eight_per_gib(1000)
    assert plan_layout(memlist).status == "infeasible"
    plan = plan_layout(memlist, TdxSysinfo(max_tdmrs=128))
    assert plan.status == "found" and plan.fewest_tdmrs_proved and plan.fewest_areas_proved
    assert len(plan.tdmrs) == 67 and plan.max_areas == 16 and plan.violations == ()
    assert plan.units < 1_000_000  # the bounds only: no solver call


def test_the_same_budget_gives_the_same_plan(monkeypatch):
    """A map whose 2-TDMR layouts only the solver can rule out (both 1 GiB chunks fit only in
    the 8 MiB region, whose TDMR has one area to spare): with Z3 resource units as the budget
    each answer is the same on every run; too small a budget says unknown and why."""
    memlist = (MemRange(1056768, 9449472), MemRange(1083191296, 1084239872))
    sysinfo = TdxSysinfo(max_tdmrs=3, max_reserved_per_tdmr=3)
    answers = {}
    for rate in (10, 30_000, 3_000_000):
        monkeypatch.setattr("checker.engines.solver.RLIMIT_PER_SECOND", rate)
        runs = [plan_layout(memlist, sysinfo, timeout_ms=1000) for _ in range(2)]
        assert runs[0].to_json() | {"duration_s": 0} == runs[1].to_json() | {"duration_s": 0}
        answers[rate] = runs[0]
    assert answers[10].status == "unknown"
    assert answers[10].reason.startswith("no layout found (2 TDMRs not decided: the solver's "
                                         "model of 2 TDMRs")
    assert answers[30_000].status == answers[3_000_000].status == "infeasible"


def test_a_layout_found_above_an_undecided_count_says_it_is_not_proved_fewest(monkeypatch):
    monkeypatch.setattr("checker.engines.solver.RLIMIT_PER_SECOND", 10)
    memlist = (MemRange(1073741824, 1082134528), MemRange(1083183104, 1091575808),
               MemRange(2165317632, 2166366208), MemRange(2376081408, 2384474112),
               MemRange(3458215936, 3995086848))
    plan = plan_layout(memlist, TdxSysinfo(max_tdmrs=3, max_reserved_per_tdmr=4),
                       timeout_ms=1000)
    assert plan.status == "found" and not plan.fewest_tdmrs_proved and plan.reason == ""
    assert plan.describe().startswith("plan: a valid layout with 3 TDMRs, not proved fewest; "
                                      "10 reserved areas")
    assert "(2 TDMRs not decided: the solver's model of 2 TDMRs" in plan.describe()
    monkeypatch.setattr("checker.engines.solver.RLIMIT_PER_SECOND", 3_000_000)
    assert len(plan_layout(memlist, TdxSysinfo(max_tdmrs=3, max_reserved_per_tdmr=4)).tdmrs) \
        == 2
