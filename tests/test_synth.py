"""Minimal counterexample maps: the region counts, what the model does on them, the proofs."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.engines.solver import worst_case_placement
from checker.engines.synth import (
    KERNEL_FAILS_PLAN_EXISTS,
    KINDS,
    PLACEMENT_BREAKS,
    RSVD_EXHAUSTED,
    TDMRS_EXHAUSTED,
    region_count_query,
    synthesise,
)
from checker.inputs.readers import read_json_map
from invariants.layout import check_layout
from spec.errno import ENOSPC
from spec.memory import SZ_1G, SZ_1M, MemRange, build_tdx_memlist
from spec.placement import PLACEMENTS, ExplicitPlacement
from spec.sysinfo import TdxSysinfo
from spec.tdmr import construct_tdmrs
from tests.test_layout_property import compact_maps

SMALL = TdxSysinfo(max_tdmrs=2, max_reserved_per_tdmr=2)
CHUNK_1G = 4 * 1024 * 1024 + 8192 + 4096  # PAMT of a 1 GiB TDMR with 16-byte entries


@pytest.fixture(scope="module")
def default_results():
    return {kind: synthesise(kind) for kind in KINDS}


def test_rsvd_exhausted_needs_15_regions_with_64_16(default_results):
    found = default_results[RSVD_EXHAUSTED]
    assert found.status == "found" and len(found.regions) == 15
    assert found.proved_minimal and found.smaller == "unsat"
    assert found.kernel.error.errno == -ENOSPC and found.kernel.failed_tdmr == 0
    assert found.kernel.demand[0].total == 17  # 16 holes + its own PAMT


def test_tdmrs_exhausted_needs_65_regions_with_64_16(default_results):
    found = default_results[TDMRS_EXHAUSTED]
    assert len(found.regions) == 65 and found.proved_minimal
    assert found.kernel.error.message == "initialization failed: TDMRs exhausted."


def test_kernel_fails_plan_exists(default_results):
    found = default_results[KERNEL_FAILS_PLAN_EXISTS]
    assert found.proved_minimal and len(found.regions) == 15
    memlist = build_tdx_memlist(found.regions)
    kernel = construct_tdmrs(memlist)
    assert kernel.error.errno == -ENOSPC
    assert found.plan.status == "found"
    assert check_layout(found.plan.tdmrs, memlist) == []


def test_placement_breaks_witness_replays_to_enospc(default_results):
    found = default_results[PLACEMENT_BREAKS]
    assert found.proved_minimal and len(found.regions) == 15
    memlist = build_tdx_memlist(found.regions)
    assert construct_tdmrs(memlist).ok  # first-fit succeeds
    rebuilt = construct_tdmrs(memlist, placement=ExplicitPlacement(found.worst_case.witness))
    assert rebuilt.error.errno == -ENOSPC


def test_maps_load_back_through_the_json_reader(default_results):
    for found in default_results.values():
        text = json.dumps(found.to_json()["map"], indent=1)
        machine = read_json_map(text, f"{found.kind}.json")
        assert machine.regions == found.regions
        assert machine.sysinfo == found.sysinfo


def test_synthesis_is_deterministic(default_results):
    again = synthesise(RSVD_EXHAUSTED)
    assert again.to_json()["map"] == default_results[RSVD_EXHAUSTED].to_json()["map"]


# With 2 TDMRs and 2 reserved areas the maps are small enough to check by hand.
C = CHUNK_1G


def test_small_rsvd_exhausted_is_one_region_holding_its_chunk():
    """[C, 2C) in TDMR [0, 1G): leading hole, trailing hole, own PAMT = 3 > 2."""
    found = synthesise(RSVD_EXHAUSTED, SMALL)
    assert found.regions == (MemRange(C, 2 * C),) and found.proved_minimal
    assert found.kernel.demand[0].total == 3


def test_small_tdmrs_exhausted_is_three_pages_in_three_gibs():
    found = synthesise(TDMRS_EXHAUSTED, SMALL)
    assert found.regions == (MemRange(SZ_1G - 4096, SZ_1G),
                             MemRange(SZ_1G + 4096, SZ_1G + 8192),
                             MemRange(2 * SZ_1G, 2 * SZ_1G + 4096))
    assert found.proved_minimal and found.smaller == "unsat"


def test_small_kernel_fails_plan_exists_is_one_region_across_1g():
    """One region across 1 GiB: the kernel's TDMR [0, 2G) needs 3 areas; [0, 1G) and
    [1G, 2G) need 2 each (an edge hole and one chunk)."""
    found = synthesise(KERNEL_FAILS_PLAN_EXISTS, SMALL)
    (region,) = found.regions
    assert region.start < SZ_1G < region.end and found.proved_minimal
    assert found.kernel.demand[0].total == 3
    assert [len(t.reserved) for t in found.plan.tdmrs] == [2, 2]


def test_small_placement_breaks_is_two_regions():
    """Two chunks' room below 1 GiB, a full GiB at 4 GiB: first-fit fills the high TDMR (2
    areas), putting a chunk low gives 2 holes + 1 > 2."""
    found = synthesise(PLACEMENT_BREAKS, SMALL)
    assert found.regions == (MemRange(C, 3 * C), MemRange(4 * SZ_1G, 5 * SZ_1G))
    assert found.proved_minimal and found.kernel.ok
    assert found.worst_case.witness_result.failed_tdmr == 0


def test_custom_entry_sizes_change_the_chunk():
    found = synthesise(RSVD_EXHAUSTED, TdxSysinfo(64, 4, (32, 16, 16)))
    assert len(found.regions) == 3 and found.proved_minimal
    assert found.regions[0].size == sum(t.pamt_size for t in found.kernel.tdmrs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(compact_maps(max_regions=10), st.integers(1, 4), st.integers(0, 5),
       st.sampled_from(sorted(PLACEMENTS)))
def test_region_count_query_allows_every_failure_the_model_shows(regions, tdmrs, reserved,
                                                                  placement):
    """The query is a relaxation: whenever the model fails on a map of n regions, the query
    for n regions is satisfiable (so its unsat answers are proofs)."""
    sysinfo = TdxSysinfo(tdmrs, reserved)
    memlist = build_tdx_memlist(regions)
    result = construct_tdmrs(memlist, sysinfo, PLACEMENTS[placement])
    if result.ok or result.error.errno != -ENOSPC:
        return
    kind = RSVD_EXHAUSTED if result.failed_tdmr is not None else TDMRS_EXHAUSTED
    assert region_count_query(kind, len(memlist), sysinfo, 10_000) == "sat"
    assert region_count_query(KERNEL_FAILS_PLAN_EXISTS, len(memlist), sysinfo, 10_000) == "sat"


@st.composite
def maps_with_room_for_chunks(draw) -> list[MemRange]:
    """2-3 GiBs, each with 1-4 regions of a page, 16 MiB or 48 MiB on 64 MiB slots, 2 nodes:
    small enough for many holes, large enough for PAMT chunks to land in several TDMRs."""
    regions = []
    for gib in sorted(draw(st.sets(st.integers(0, 6), min_size=2, max_size=3))):
        for slot in sorted(draw(st.sets(st.integers(0, 15), min_size=1, max_size=4))):
            start = gib * SZ_1G + slot * 64 * SZ_1M + SZ_1M
            size = draw(st.sampled_from([4096, 16 * SZ_1M, 48 * SZ_1M]))
            regions.append(MemRange(start, start + size, draw(st.integers(0, 1))))
    return regions


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(maps_with_room_for_chunks(), st.integers(3, 4), st.integers(1, 6))
def test_region_count_query_allows_every_placement_break_the_solver_finds(regions, tdmrs,
                                                                        reserved):
    sysinfo = TdxSysinfo(tdmrs, reserved)
    memlist = build_tdx_memlist(regions)
    worst = worst_case_placement(memlist, sysinfo, timeout_ms=10_000)
    if worst.first_fit.ok and worst.status == "breaks":
        assert region_count_query(PLACEMENT_BREAKS, len(memlist), sysinfo, 10_000) == "sat"


def _answer(result: dict) -> dict:
    """A synthesis result as the budget decides it: the plan beside the kernel's layout is any
    valid one Z3 returns (its addresses may differ between contexts), so only its status and
    TDMR count are compared; durations, nested ones too, are the clock's."""
    plan = result.get("plan")
    if isinstance(plan, dict):
        result = result | {"plan": (plan.get("status"), len(plan.get("tdmrs") or ()))}
    return {key: 0 if key == "duration_s" else _answer(value) if isinstance(value, dict)
            else value for key, value in result.items()}


def test_the_same_budget_gives_the_same_synthesis(monkeypatch):
    """Budgets in Z3 resource units shared by every query: the same on every run; a budget
    too small to prove anything says unknown, never a proof."""
    # 10 and 30,000 units, over 10 s so the wall-clock guard (twice that) never decides
    for rate, proved in ((1, False), (3_000, True)):
        monkeypatch.setattr("checker.engines.solver.RLIMIT_PER_SECOND", rate)
        runs = [_answer(synthesise(kind, SMALL, timeout_ms=10_000).to_json())
                for kind in KINDS for _ in range(2)]
        assert runs[0::2] == runs[1::2]
        assert all(r["proved_minimal"] == proved for r in runs)
        if not proved:
            assert all("unknown" in r["text"] for r in runs)
