"""The grid search for the smallest map breaking a layout invariant
(`checker.engines.mapsearch`)."""

from __future__ import annotations

import pytest

from checker.engines.mapsearch import (
    GRID,
    MAX_REGIONS,
    SZ_8T,
    SZ_16T,
    candidate_maps,
    layout_violations,
    smallest_violating_map,
)
from spec.memory import SZ_1G, SZ_1M
from spec.profiles import V6_8
from spec.sysinfo import TdxSysinfo


def variant(**changes):
    return V6_8.but("test-variant", "v6.8 with one TDMR rule switched", "tests", **changes)


@pytest.fixture(scope="module")
def maps():
    return list(candidate_maps())


def test_maps_come_in_nondecreasing_region_count(maps):
    counts = [len(m) for m in maps]
    assert counts == sorted(counts)
    assert set(counts) == set(range(1, MAX_REGIONS + 1))
    assert len(maps) == len(set(maps))  # no map twice


def test_one_region_maps_are_every_pair_of_grid_points_smallest_span_first(maps):
    singles = [m[0] for m in maps if len(m) == 1]
    n = len(GRID)
    assert len(singles) == n * (n - 1) // 2
    assert {(r.start, r.end) for r in singles} == {
        (a, b) for i, a in enumerate(GRID) for b in GRID[i + 1:]}
    assert all(r.nid == 0 for r in singles)
    spans = [r.end - r.start for r in singles]
    assert spans == sorted(spans)
    # the very first map is the smallest region of the grid
    assert (singles[0].start, singles[0].end) == (SZ_1M, SZ_1G // 2)


def test_within_a_region_count_the_span_never_decreases(maps):
    for previous, current in zip(maps, maps[1:], strict=False):
        if len(previous) == len(current):
            assert current[-1].end - current[0].start >= previous[-1].end - previous[0].start, (
                previous, current)


def test_regions_are_sorted_never_overlap_and_touch_only_across_nodes(maps):
    for regions in maps:
        assert all(r.start < r.end for r in regions)
        assert all(r.start in GRID and r.end in GRID for r in regions)
        if not any(a.end == b.start for a, b in zip(regions, regions[1:], strict=False)):
            assert regions[0].nid == 0  # node names are symmetric
        for left, right in zip(regions, regions[1:], strict=False):
            assert left.end <= right.start, regions  # sorted, no overlap
            if left.end == right.start:
                assert left.nid != right.nid, regions  # memblock would merge them


def test_touching_maps_are_generated_for_several_regions(maps):
    touching = [m for m in maps if any(a.end == b.start for a, b in zip(m, m[1:], strict=False))]
    assert touching
    assert {len(m) for m in touching} == {2, 3}


def test_v6_8_breaks_no_layout_invariant_on_the_grid():
    outcome = smallest_violating_map(V6_8, time_s=60)
    assert outcome.witness is None
    assert outcome.complete is True
    # every map with both placements
    assert outcome.maps_tried == 2 * sum(1 for _ in candidate_maps())


def test_unsorted_reserved_areas_are_caught_with_one_region():
    outcome = smallest_violating_map(variant(sort_reserved_areas=False))
    w = outcome.witness
    assert w is not None and outcome.complete
    assert len(w.regions) == 1
    assert w.violations[0].constraint == "RSVD-ORDER"
    # the first map of all: [1M, 512M) gives a trailing hole then the PAMT chunk before it
    assert outcome.maps_tried == 1
    assert (w.regions[0].start, w.regions[0].end) == (SZ_1M, SZ_1G // 2)
    assert w.result.ok


def test_other_tdmrs_pamts_not_reserved_needs_two_regions():
    profile = variant(reserve_other_tdmrs_pamts=False)
    outcome = smallest_violating_map(profile)
    w = outcome.witness
    assert w is not None and outcome.complete
    assert len(w.regions) == 2
    assert "RSVD-COVERS-PAMT" in {v.constraint for v in w.violations}
    assert w.violations[0].constraint == "RSVD-COVERS-PAMT"
    # the chunk of one TDMR lands in the other: two TDMRs are needed
    assert len(w.result.tdmrs) == 2
    homes = [next(i for i, t in enumerate(w.result.tdmrs)
                  if t.base <= tdmr.pamt_base < t.end) for tdmr in w.result.tdmrs]
    assert homes != [0, 1]


def test_no_one_region_map_breaks_the_other_pamt_rule():
    """A single region makes TDMRs that hold only their own chunk: no 1-region map would do."""
    profile = variant(reserve_other_tdmrs_pamts=False)
    singles = [m for m in candidate_maps(1)]
    assert singles and all(len(m) == 1 for m in singles)
    for regions in singles:
        for placement in ("first-fit", "last-fit"):
            _, found = layout_violations(regions, profile, TdxSysinfo(), placement)
            assert found == [], (regions, placement)


def test_32_bit_pamt_entry_counts_are_caught_by_pamt_size():
    outcome = smallest_violating_map(variant(pamt_entry_count_bits=32))
    w = outcome.witness
    assert w is not None and outcome.complete
    assert w.violations[0].constraint == "PAMT-SIZE"
    assert len(w.regions) == 1
    # the count wraps only for a TDMR of 8 TiB or more (2^31 4K pages)
    assert w.regions[0].end - w.regions[0].start >= SZ_8T - SZ_1G
    assert w.regions[0].end in (SZ_8T + SZ_1G, SZ_16T)


def test_a_tiny_time_bound_leaves_the_search_incomplete():
    outcome = smallest_violating_map(V6_8, time_s=0.001)
    assert outcome.witness is None
    assert outcome.complete is False
    assert outcome.maps_tried < 2 * sum(1 for _ in candidate_maps())


def test_the_search_is_deterministic():
    profile = variant(reserve_other_tdmrs_pamts=False)
    a, b = smallest_violating_map(profile), smallest_violating_map(profile)
    assert (a.maps_tried, a.witness.regions, a.witness.placement) == (
        b.maps_tried, b.witness.regions, b.witness.placement)
