"""Worst-case PAMT placement and explanations of infeasible layouts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.engines.solver import (
    ANY_NODE,
    AREA_CONSTRAINTS,
    PREFERRED_NODE,
    SAT,
    UNKNOWN,
    UNSAT,
    Budget,
    _whole_layout_query,
    explain_construction,
    explain_layout,
    hole_demand,
    pamt_sizes,
    solve,
    worst_case_placement,
)
from checker.inputs.readers import read_input
from invariants.layout import CONSTRAINTS_BY_ID, AreaTerms, LayoutContext, TdmrTerms, layout_atoms
from spec.errno import ENOSPC
from spec.memory import SZ_1G, SZ_1M, SZ_4G, MemRange, build_tdx_memlist
from spec.placement import ExplicitPlacement
from spec.profiles import V6_8, get_profile
from spec.sysinfo import TdxSysinfo
from spec.tdmr import construct_tdmrs, fill_out_tdmrs, tdmr_get_nid

LOGS = Path(__file__).resolve().parent.parent / "checker" / "data" / "boot-logs"


def cmr_map(name: str) -> tuple[MemRange, ...]:
    text = (LOGS / name).read_text()
    return build_tdx_memlist(MemRange(int(a, 16), int(b, 16)) for a, b in
                             re.findall(r"CMR: \[(0x[0-9a-f]+), (0x[0-9a-f]+)\)", text))


def crafted_map() -> tuple[MemRange, ...]:
    """TDMR [0, 1G): a 63 MiB region then 13 small ones = 15 holes; TDMR [4G, 5G): all memory.
    First-fit puts both chunks above 4 GiB; the 63 MiB region could take both."""
    small = [MemRange(64 * SZ_1M + 8 * SZ_1M * j, 64 * SZ_1M + 8 * SZ_1M * j + 4 * SZ_1M)
             for j in range(1, 14)]
    return build_tdx_memlist([MemRange(SZ_1M, 64 * SZ_1M), *small, MemRange(SZ_4G, 5 * SZ_1G)])


@pytest.mark.parametrize("mode", [ANY_NODE, PREFERRED_NODE])
def test_worst_case_on_emr_cmr_map_is_proved_safe(mode):
    worst = worst_case_placement(cmr_map("emr-fcp-6.8.0-1006-intel.log"), mode=mode)
    assert worst.first_fit.ok
    assert worst.status == "safe"  # unsat: no legal placement exhausts any TDMR
    assert worst.witness is None
    assert "succeeds for every legal placement (proved)" in worst.describe()


@pytest.mark.parametrize("mode", [ANY_NODE, PREFERRED_NODE])
def test_worst_case_witness_rebuilds_to_enospc(mode):
    memlist = crafted_map()
    worst = worst_case_placement(memlist, mode=mode)
    assert worst.first_fit.ok
    assert worst.status == "breaks"
    sizes = [t.pamt_size for t in worst.first_fit.tdmrs]
    for index, base in worst.witness.items():  # legal: aligned, inside one entry, disjoint
        assert base % sizes[index] == 0
        assert any(e.start <= base and base + sizes[index] <= e.end for e in memlist)
    rebuilt = construct_tdmrs(memlist, TdxSysinfo(), ExplicitPlacement(worst.witness))
    assert rebuilt.error.errno == -ENOSPC
    assert rebuilt.failed_tdmr == 0
    assert "reserved areas exhausted" in rebuilt.error.message
    assert "PAMT chunks of TDMRs 0, 1 land in TDMR 0" in worst.describe()


def test_preferred_node_mode_is_narrower_than_any_node():
    """A one-page node-0 entry first, then the low memory on node 1 (16 holes in TDMR 0), the
    high memory on node 0. Both TDMRs prefer node 0, so only a fallback to node 1 puts a chunk
    into TDMR 0 and overfills it."""
    low = [MemRange(SZ_1M, SZ_1M + 4096, 0)]
    low += [MemRange(r.start + SZ_1M, r.end, 1) for r in crafted_map() if r.end <= SZ_1G]
    memlist = (*low, MemRange(SZ_4G, 5 * SZ_1G, 0))
    assert construct_tdmrs(memlist).ok
    assert worst_case_placement(memlist, mode=PREFERRED_NODE).status == "safe"
    worst = worst_case_placement(memlist, mode=ANY_NODE)
    assert worst.status == "breaks"
    assert construct_tdmrs(memlist, placement=ExplicitPlacement(worst.witness)).failed_tdmr == 0


def test_timeout_is_unknown_never_a_pass():
    x, y, z = z3.Ints("x y z")
    solver = z3.Solver()
    solver.add(x > 0, y > 0, z > 0, x * x * x + y * y * y == z * z * z)
    assert solve(solver, 1) == UNKNOWN


def test_explanation_of_the_emr_e820_failure_names_the_conflict():
    machine = read_input(LOGS / "emr-fcp-e820-first-2g.log")
    memlist = build_tdx_memlist(machine.regions)
    result = construct_tdmrs(memlist)
    assert result.error.errno == -ENOSPC
    explanation = explain_construction(result, memlist)
    assert explanation.status == UNSAT and explanation.minimal
    assert set(explanation.core) == {("RSVD-COUNT", 0), ("RSVD-COVERS-HOLES", 0),
                                     ("RSVD-NO-MEMORY", 0)}
    assert explanation.describe().startswith(
        "TDMR [0x0, 2G): 18 reserved areas needed: 1 leading hole, 15 gaps, 1 trailing hole, "
        "1 own PAMT, limit 16")


def test_explanation_of_a_valid_layout_is_sat():
    memlist = crafted_map()
    result = construct_tdmrs(memlist)
    assert explain_layout(result.tdmrs, memlist).status == "sat"


def test_explanation_when_tdmrs_run_out_names_the_count():
    memlist = build_tdx_memlist([MemRange(i * SZ_1G + SZ_1M, i * SZ_1G + 64 * SZ_1M)
                                 for i in range(3)])
    sysinfo = TdxSysinfo(max_tdmrs=2)
    result = construct_tdmrs(memlist, sysinfo)
    explanation = explain_construction(result, memlist, sysinfo)
    assert explanation.core == (("TDMR-COUNT", None),)
    assert explanation.describe() == "3 TDMRs, limit 2 (conflicting: TDMR-COUNT)"


# --- explanations by counting, proved on a bounded abstraction ----------------------------------

def many_holes(holes: int) -> tuple[MemRange, ...]:
    """TDMR [0, 1G): `holes - 2` 64 KiB ranges 128 KiB apart from 1 MiB up, then a 64 MiB range
    that takes the PAMT: a leading hole, `holes - 2` gaps and a trailing hole."""
    small = [MemRange(SZ_1M + j * 0x20000, SZ_1M + j * 0x20000 + 0x10000)
             for j in range(holes - 2)]
    top = SZ_1M + (holes - 2) * 0x20000
    return build_tdx_memlist([*small, MemRange(top, top + 64 * SZ_1M)])


def test_thousands_of_holes_are_counted_and_the_conflict_proved_on_a_few():
    memlist = many_holes(2000)
    result = construct_tdmrs(memlist)
    assert result.failed_tdmr == 0
    explanation = explain_construction(result, memlist)
    assert explanation.status == UNSAT and explanation.minimal and not explanation.cut
    assert explanation.core == (("RSVD-COUNT", 0), ("RSVD-COVERS-HOLES", 0),
                                ("RSVD-NO-MEMORY", 0))
    assert explanation.describe() == (
        "TDMR [0x0, 1G): 2001 reserved areas needed: 1 leading hole, 1998 gaps, 1 trailing "
        "hole, 1 own PAMT, limit 16 (conflicting: RSVD-COUNT, RSVD-COVERS-HOLES, "
        "RSVD-NO-MEMORY)")


def test_pamt_chunks_packed_into_one_tdmr_conflict_without_holes():
    """First-fit packs the chunks of 40 one-GiB TDMRs back to back into the first one: each
    seam between two chunks keeps them in separate areas, so PAMTs alone overfill it."""
    memlist = build_tdx_memlist(MemRange(4 * SZ_1G + i * SZ_1G + SZ_1M,
                                         4 * SZ_1G + i * SZ_1G + 513 * SZ_1M)
                                for i in range(40))
    sysinfo = TdxSysinfo(max_tdmrs=40)
    result = construct_tdmrs(memlist, sysinfo)
    assert result.failed_tdmr == 0 and result.demand[0].other_pamts > 16
    explanation = explain_construction(result, memlist, sysinfo)
    assert explanation.status == UNSAT and explanation.minimal
    assert explanation.core == (("RSVD-COUNT", 0), ("RSVD-COVERS-PAMT", 0),
                                ("RSVD-NO-MEMORY", 0))


def test_kernel_count_over_the_limit_but_shared_areas_fit_is_sat():
    """A chunk that ends where a hole begins: the kernel adds them as two areas (4 in all),
    one area could hold both (3), so with a limit of 3 the kernel fails where a layout exists."""
    memlist = (MemRange(SZ_1M, 64 * SZ_1M), MemRange(128 * SZ_1M, 256 * SZ_1M))
    chunk = 4 * SZ_1M + 3 * 4096  # 1 GiB TDMR: 4 MiB + 8 KiB + 4 KiB of PAMT
    sysinfo = TdxSysinfo(max_reserved_per_tdmr=3)
    result = construct_tdmrs(memlist, sysinfo, ExplicitPlacement({0: 64 * SZ_1M - chunk}))
    assert result.failed_tdmr == 0 and result.demand[0].total == 4
    explanation = explain_construction(result, memlist, sysinfo)
    assert explanation.status == "sat"
    assert explanation.lines == (
        "TDMR [0x0, 1G): the kernel adds 4 areas (1 leading hole, 1 gap, 1 trailing hole, "
        "1 own PAMT), but 3 would do, adjacent pieces sharing an area; limit 3",)


def test_a_spent_budget_leaves_a_counted_conflict_and_says_what_was_cut(monkeypatch):
    """With almost no Z3 resource units the proof is cut, deterministically (not by the clock);
    the count and its words are still there, marked unproved."""
    monkeypatch.setattr("checker.engines.solver.RLIMIT_PER_SECOND", 10)
    machine = read_input(LOGS / "emr-fcp-e820-first-2g.log")
    memlist = build_tdx_memlist(machine.regions)
    explanation = explain_construction(construct_tdmrs(memlist), memlist)
    assert explanation.status == UNKNOWN and not explanation.minimal
    assert set(explanation.core) == {("RSVD-COUNT", 0), ("RSVD-COVERS-HOLES", 0),
                                     ("RSVD-NO-MEMORY", 0)}
    assert explanation.describe().startswith("TDMR [0x0, 2G): 18 reserved areas needed")
    assert explanation.cut == ("Z3's proof of the conflict was cut: the solver budget of 30 s "
                               "(--timeout) ran out")
    assert explanation.to_json()["cut"] == explanation.cut


def test_budget_counts_units_across_calls():
    x = z3.Int("x")
    solver = z3.Solver()
    solver.add(x > 0)
    budget = Budget(1000)
    assert budget.check(solver) == SAT and not budget.cut
    budget.units = 0
    assert budget.check(solver) == UNKNOWN
    assert budget.cut == "the solver budget of 1 s (--timeout) ran out"


def full_encoding_answer(tdmrs, memlist, sysinfo) -> str:
    """Whether reserved areas exist, asked of Z3 over every TDMR, hole and region at once with
    a slot per piece and one more: the question the counting answers, asked the slow way."""
    terms, demand = [], hole_demand(tdmrs, memlist)
    for i, t in enumerate(tdmrs):
        slots = demand[i].total + len(tdmrs) + 1
        areas = tuple(AreaTerms(z3.Int(f"t{i}.o{j}"), z3.Int(f"t{i}.s{j}"))
                      for j in range(slots))
        terms.append(TdmrTerms(t.base, t.size, tuple(t.pamt_bases), tuple(t.pamt_sizes),
                               areas))
    solver = z3.Solver()
    for _, atom in layout_atoms(terms, LayoutContext.of(memlist, sysinfo),
                                [CONSTRAINTS_BY_ID[c] for c in AREA_CONSTRAINTS]):
        solver.add(atom.holds)
    return solve(solver, 60_000)


PAGES = st.integers(min_value=1, max_value=24).map(lambda n: n * 16 * SZ_1M)


@settings(max_examples=60, derandomize=True, database=None, deadline=None)
@given(st.lists(st.tuples(PAGES, PAGES), min_size=1, max_size=6),
       st.integers(min_value=1, max_value=4), st.sampled_from(["first-fit", "edge"]))
def test_the_count_agrees_with_the_full_encoding(pieces, limit, placement):
    """Small maps in two 1 GiB TDMRs, PAMT chunks first-fit or against a region's end (where
    they can share an area with the hole after it): sat exactly when the full encoding is."""
    regions, at = [], SZ_1M
    for gap, size in pieces:
        regions.append(MemRange(at, min(at + size, 2 * SZ_1G)))
        at += size + gap
        if at >= 2 * SZ_1G - SZ_1M:
            break
    memlist = build_tdx_memlist(regions)
    sysinfo = TdxSysinfo(max_reserved_per_tdmr=limit)
    filled = construct_tdmrs(memlist, TdxSysinfo(max_reserved_per_tdmr=64)).tdmrs
    if placement == "edge":
        bases, used = {}, set()
        for i, t in enumerate(filled):
            room = [r for r in memlist if r.size >= t.pamt_size and r not in used]
            if room:
                used.add(room[-1])
                bases[i] = room[-1].end - t.pamt_size
        if len(bases) < len(filled):
            return
        tdmrs = construct_tdmrs(memlist, sysinfo, ExplicitPlacement(bases)).tdmrs
    else:
        tdmrs = construct_tdmrs(memlist, sysinfo).tdmrs
    if not all(t.pamt_size for t in tdmrs):
        return
    explanation = explain_layout(tdmrs, memlist, sysinfo)
    assert explanation.status == full_encoding_answer(tdmrs, memlist, sysinfo)
    assert explanation.status == UNSAT or not explanation.core


# --- worst-case placement, decomposed by TDMR -------------------------------------------------

def whole_layout_answer(memlist, sysinfo, mode, profile=V6_8) -> str:
    """The placement question asked the slow way: one query over every chunk and every TDMR
    (the encoding the decomposition replaced), as a WorstCase status."""
    filled = fill_out_tdmrs(memlist, sysinfo, [])
    holes = [d.total for d in hole_demand(filled, memlist)]
    sizes = [pamt_sizes(t, sysinfo, profile) for t in filled]
    nids = [tdmr_get_nid(t, memlist, []) for t in filled]
    answer, _ = _whole_layout_query(filled, holes, sizes, nids, memlist, sysinfo, mode, profile,
                                    Budget(60_000), list(range(len(filled))))
    return {SAT: "breaks", UNSAT: "safe"}[answer]


CHUNK_1G = 4 * SZ_1M + 3 * 4096  # the PAMT chunk of a 1 GiB TDMR
LOW_SIZES = st.sampled_from([CHUNK_1G, 2 * CHUNK_1G, 3 * CHUNK_1G, 5 * CHUNK_1G,
                             8 * SZ_1M + 8192, 12 * SZ_1M + 36 * 1024, 24 * SZ_1M])
LOW_STARTS = st.sampled_from([0, 4096, 2 * SZ_1M, 4 * SZ_1M - 8192])


@settings(max_examples=40, derandomize=True, database=None, deadline=None)
@given(st.lists(st.tuples(LOW_STARTS, LOW_SIZES, st.integers(0, 1)), min_size=1, max_size=4),
       st.lists(st.tuples(st.integers(1, 3), st.integers(0, 1)), min_size=1, max_size=4),
       st.integers(min_value=2, max_value=8), st.sampled_from([ANY_NODE, PREFERRED_NODE]),
       st.sampled_from(["v6.8", "mutant-other-pamt-not-reserved"]))
def test_decomposed_worst_case_agrees_with_the_whole_layout_query(low, high, limit, mode,
                                                                  profile):
    """TDMR [0, 1G) with a few regions sized in chunks (aligned or just off), TDMRs of 1-3 GiB
    from 4 GiB up: the per-TDMR queries (counted, packed greedily, or asked of Z3) give the
    verdict of the one query over the whole layout."""
    regions, at = [], SZ_1M
    for start, size, nid in low:
        at = at // (4 * SZ_1M) * 4 * SZ_1M + start
        regions.append(MemRange(at, at + size, nid))
        at += size + 4096
    at = SZ_4G
    for span, nid in high:
        regions.append(MemRange(at + SZ_1M, at + span * SZ_1G - SZ_1M, nid))
        at += span * SZ_1G
    memlist = build_tdx_memlist(r for r in regions if r.end <= SZ_1G or r.start >= SZ_4G)
    sysinfo = TdxSysinfo(max_reserved_per_tdmr=limit)
    worst = worst_case_placement(memlist, sysinfo, mode, profile=get_profile(profile))
    assert worst.status == whole_layout_answer(memlist, sysinfo, mode, get_profile(profile))
    if worst.status == "breaks":
        rebuilt = construct_tdmrs(memlist, sysinfo, ExplicitPlacement(worst.witness),
                                  profile=get_profile(profile))
        assert rebuilt.error.errno == -ENOSPC


def test_a_packing_greedy_misses_is_found_by_the_solver():
    """TDMR [0, 1G) has 2 holes and a limit of 3: one more chunk breaks it... two, with its
    own. Its 20 MiB region has four slots for its own 4 MiB chunk but one for the 8 MiB chunk
    of TDMR [4G, 6G), overlapping the lowest three: smallest-first takes the lowest and leaves
    the large one nowhere; Z3 puts the large chunk first and the small one above it."""
    memlist = (MemRange(SZ_1M, 0x140F000), MemRange(SZ_4G + SZ_1M, 6 * SZ_1G - SZ_1M))
    sysinfo = TdxSysinfo(max_reserved_per_tdmr=3)
    worst = worst_case_placement(memlist, sysinfo)
    assert worst.status == "breaks" and worst.witness == {0: 0x100C000, 1: 0x805000}
    assert whole_layout_answer(memlist, sysinfo, ANY_NODE) == "breaks"


def test_a_packing_the_count_allows_is_refuted_by_the_solver():
    memlist = (MemRange(1048576, 8417280), MemRange(10485760, 31518720),
               MemRange(4296015872, 6441402368), MemRange(6443499520, 9662627840))
    sysinfo = TdxSysinfo(max_reserved_per_tdmr=5)
    assert worst_case_placement(memlist, sysinfo).status == "safe"
    assert whole_layout_answer(memlist, sysinfo, ANY_NODE) == "safe"


def sixty_four_tdmrs(per_tdmr: int) -> tuple[MemRange, ...]:
    """64 TDMRs 2 GiB apart on 2 nodes, each with this many 40 MiB regions."""
    regions = []
    for i in range(64):
        base = 2 * i * SZ_1G + SZ_1M
        regions += [MemRange(base + 64 * SZ_1M * j, base + 64 * SZ_1M * j + 40 * SZ_1M, i % 2)
                    for j in range(per_tdmr)]
    return build_tdx_memlist(regions)


@pytest.mark.parametrize("mode", [ANY_NODE, PREFERRED_NODE])
def test_worst_case_at_the_architectural_maximum_of_64_tdmrs_is_decided(mode):
    memlist = sixty_four_tdmrs(13)
    worst = worst_case_placement(memlist, mode=mode)
    assert worst.status == "breaks"
    assert construct_tdmrs(memlist, placement=ExplicitPlacement(worst.witness)).error.errno \
        == -ENOSPC


def test_the_same_budget_gives_the_same_answer(monkeypatch):
    """Budgets in Z3 resource units: each answer, and where it stopped, is the same on every
    run, whatever the machine is doing; the smallest budgets say unknown and why."""
    memlist = (MemRange(1048576, 8417280), MemRange(10485760, 31518720),
               MemRange(4296015872, 6441402368), MemRange(6443499520, 9662627840))
    sysinfo = TdxSysinfo(max_reserved_per_tdmr=5)
    seen = {}
    for rate in (10, 2_000, 20_000, 3_000_000):
        monkeypatch.setattr("checker.engines.solver.RLIMIT_PER_SECOND", rate)
        runs = [worst_case_placement(memlist, sysinfo, timeout_ms=1000) for _ in range(2)]
        assert [(w.status, w.reason, w.units) for w in runs] == \
            [(runs[0].status, runs[0].reason, runs[0].units)] * 2
        seen[rate] = runs[0]
    assert seen[10].status == UNKNOWN
    assert seen[10].reason.startswith("TDMR 0 not decided: the packing query of TDMR 0")
    assert "unknown: TDMR 0 not decided" in seen[10].describe()
    assert seen[3_000_000].status == "safe"


def test_a_charge_the_budget_cannot_pay_is_refused_and_said():
    budget = Budget(1000)
    assert budget.charge(10, "a small encoding") and budget.used == 1000
    left = budget.units
    assert not budget.charge(10 ** 9, "the whole layout")
    assert budget.units == left
    assert budget.cut == ("the whole layout (about 1,000,000,000 terms) is more than the solver "
                          "budget of 1 s (--timeout) has left")
