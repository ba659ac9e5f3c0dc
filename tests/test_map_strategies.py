"""The cases the map search draws (`checker.engines.mapstrategies`) and the placement it steers
(`spec.placement.NearestPlacement`): every case is a map memblock could hold, and the cases
reach the boundaries the search exists for within the search's own example budget."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.engines.mapsearch import find_case
from checker.engines.mapstrategies import MAX_REGIONS, NODES, MapCase, map_cases
from spec.memory import SZ_1G, SZ_1M, SZ_4G, SZ_4K, MemRange
from spec.placement import ExplicitPlacement, FirstFit, LastFit, NearestPlacement
from spec.sysinfo import TdxSysinfo
from spec.tdmr import construct_tdmrs
from tests.strategies import memory_maps

SZ_8T = 8 << 40
CASES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- every case is a possible machine --------------------------------------------------------

@CASES
@given(map_cases(with_cmrs=True))
def test_cases_are_memblock_maps_with_tdx_memory(case: MapCase):
    regions = case.regions
    assert 1 <= len(regions) <= MAX_REGIONS
    assert case.memlist, "some memory above 1 MiB"
    for r in regions:
        assert 0 <= r.start < r.end
        assert r.start % SZ_4K == 0 and r.end % SZ_4K == 0
        assert 0 <= r.nid < NODES
    for a, b in pairwise(regions):
        assert a.end <= b.start  # sorted, disjoint
        assert a.end < b.start or a.nid != b.nid  # memblock merges touching same-node ranges
    assert all(t >= 0 for t in case.targets)


@CASES
@given(map_cases(with_cmrs=True))
def test_cmrs_are_sorted_disjoint_and_cover_the_memory(case: MapCase):
    cmrs = case.cmrs
    assert all(c.start < c.end and c.start % SZ_4K == 0 and c.end % SZ_4K == 0 for c in cmrs)
    assert all(a.end <= b.start for a, b in pairwise(cmrs))
    for entry in case.memlist:
        assert any(c.start <= entry.start and entry.end <= c.end for c in cmrs), entry


@CASES
@given(map_cases())
def test_without_cmrs_the_cmrs_are_the_memory(case: MapCase):
    assert case.cmrs == case.memlist


# --- the cases reach the boundaries, within the search's budget ------------------------------

def _gib_holes(case: MapCase) -> int:
    """The most holes between entries that lie inside one GiB."""
    per_gib: dict[int, int] = {}
    for a, b in pairwise(case.memlist):
        if a.end < b.start and a.end // SZ_1G == (b.start - 1) // SZ_1G:
            per_gib[a.end // SZ_1G] = per_gib.get(a.end // SZ_1G, 0) + 1
    return max(per_gib.values(), default=0)


def _straddles_a_tdmr_edge(case: MapCase) -> bool:
    result = construct_tdmrs(case.memlist, case.sysinfo, case.placements[-1])
    edges = {t.base for t in result.tdmrs} | {t.end for t in result.tdmrs}
    return result.ok and any(t.pamt_base < edge < t.pamt_end for t in result.tdmrs
                             for edge in edges)


def _ends_on_a_later_tdmr_base(case: MapCase) -> bool:
    """A chunk, not the largest, ending right where another TDMR starts: the one place where
    `tdmr_populate_rsvd_pamts` must tell an adjacent chunk from an overlapping one."""
    result = construct_tdmrs(case.memlist, case.sysinfo, case.placements[-1])
    largest = max((t.pamt_size for t in result.tdmrs), default=0)
    bases = {t.base for t in result.tdmrs}
    return result.ok and any(t.pamt_end in bases and 0 < t.pamt_size < largest
                             for t in result.tdmrs)


REACHED = {
    "a region end on a GiB boundary above 1 GiB":
        lambda c: any(r.end % SZ_1G == 0 and r.end > SZ_1G for r in c.regions),
    "a region end one page below a GiB boundary":
        lambda c: any(r.end % SZ_1G == SZ_1G - SZ_4K for r in c.regions),
    "a region start one page above a GiB boundary":
        lambda c: any(r.start % SZ_1G == SZ_4K for r in c.regions),
    "a region starting below 1 MiB and ending above":
        lambda c: any(r.start < SZ_1M < r.end for r in c.regions),
    "8 holes in one GiB": lambda c: _gib_holes(c) >= 8,
    "12 regions": lambda c: len(c.regions) >= 12,
    "touching regions on different nodes":
        lambda c: any(a.end == b.start for a, b in pairwise(c.regions)),
    "a region of 8 TiB or more": lambda c: any(r.end - r.start >= SZ_8T for r in c.regions),
    "a region across 4 GiB": lambda c: any(r.start < SZ_4G < r.end for r in c.regions),
    "small module limits": lambda c: c.sysinfo != TdxSysinfo(),
    "a CMR reaching below its memory":
        lambda c: any(cmr.start < entry.start for cmr, entry in zip(c.cmrs, c.memlist,
                                                                     strict=False)),
    "a PAMT chunk across a TDMR edge": _straddles_a_tdmr_edge,
    "a smaller PAMT chunk ending on another TDMR's base": _ends_on_a_later_tdmr_base,
}


@pytest.mark.parametrize("what", REACHED)
def test_the_search_budget_reaches(what):
    """Each boundary case occurs among the cases one search generates (same seed, same
    budget), so the search does try it."""
    found = find_case(REACHED[what], with_cmrs=True, shrink=False)
    assert found is not None and REACHED[what](found)


# --- NearestPlacement ------------------------------------------------------------------------

def _pieces(memlist):
    """Each entry split at 4 GiB: a chunk stays inside one piece."""
    for e in memlist:
        for lo, hi in ((e.start, min(e.end, SZ_4G)), (max(e.start, SZ_4G), e.end)):
            if lo < hi:
                yield lo, hi


def _free_stretches(memlist, taken):
    """The parts of each piece that no chunk in `taken` covers."""
    for lo, hi in _pieces(memlist):
        points = sorted({lo, hi} | {e for chunk in taken for e in chunk if lo < e < hi})
        for a, b in zip(points, points[1:], strict=False):
            if all(b <= s or a >= e for s, e in taken):
                yield a, b


def _nearest(memlist, taken, size, step, point):
    """The multiple of `step` nearest `point` (the lower on a tie) at which a chunk of `size`
    fits inside one free stretch, or None. In a stretch the candidates are evenly spaced, so
    the distance to `point` falls then rises along them: the nearest is within two steps of
    the clamped point, and those few are tried by hand."""
    best = None
    for a, b in _free_stretches(memlist, taken):
        first, last = -(-a // step) * step, (b - size) // step * step
        if first > last:
            continue
        middle = min(max(point // step * step, first), last)
        for c in range(middle - 2 * step, middle + 3 * step, step):
            if first <= c <= last and (best is None or (abs(c - point), c) < (abs(best - point),
                                                                               best)):
                best = c
    return best


_sizes = st.lists(st.integers(256, 16 * 1024).map(lambda pages: pages * SZ_4K),
                  min_size=1, max_size=8)
_targets = st.lists(st.integers(0, 12 * 1024).map(lambda mib: mib * SZ_1M), max_size=8)


@settings(max_examples=150, deadline=None)
@given(memory_maps(max_regions=8, max_first_gib=4), _sizes, _targets, st.booleans())
def test_nearest_takes_the_legal_candidate_closest_to_its_target(memlist, sizes, targets,
                                                                  by_end):
    """Chunk i goes to the legal candidate nearest targets[i] (the lower of two equally near;
    address 0 without a target), and nothing only when no candidate is left. Chunks anchored
    by their end may start on any page, and their end is what is nearest."""
    allocator = NearestPlacement(tuple(targets), by_end).allocator(tuple(memlist))
    taken: list[tuple[int, int]] = []
    for i, size in enumerate(sizes):
        target = targets[i] if i < len(targets) else 0
        anchor = size if by_end else 0
        base = allocator.alloc(i, size, 0)
        assert base == _nearest(memlist, taken, size, SZ_4K if by_end else size,
                                target - anchor)
        if base is not None:
            taken.append((base, base + size))


def test_an_end_anchored_chunk_ends_on_the_tdmr_edge():
    """Memory [1M, 1G) on node 0 and [1G, 3G) on node 1 gives TDMRs [0, 1G) and [1G, 3G). A
    chunk anchored by its end at 1G ends right at TDMR 1's base, and lies wholly in TDMR 0."""
    memlist = (MemRange(SZ_1M, SZ_1G, 0), MemRange(SZ_1G, 3 * SZ_1G, 1))
    result = construct_tdmrs(memlist, placement=NearestPlacement((SZ_1G,), by_end=True))
    first, second = result.tdmrs
    assert first.pamt_end == second.base == SZ_1G
    assert all(a.kind == "hole" for a in second.reserved) and result.ok


def test_nearest_puts_a_chunk_across_a_tdmr_edge():
    """Two TDMRs, [0, 1G) and [1G, 2G); the memory [768M, 1.5G) spans their edge. A target 2 MiB
    below 1G puts TDMR 0's 0x403000-byte chunk at 255 * 0x403000, across the edge."""
    memlist = (MemRange(SZ_1M, 512 * SZ_1M), MemRange(768 * SZ_1M, 1536 * SZ_1M))
    result = construct_tdmrs(memlist, placement=NearestPlacement((SZ_1G - 2 * SZ_1M,)))
    assert [(t.base, t.end) for t in result.tdmrs] == [(0, SZ_1G), (SZ_1G, 2 * SZ_1G)]
    chunk = result.tdmrs[0]
    assert chunk.pamt_base == 255 * 0x403000 and chunk.pamt_base < SZ_1G < chunk.pamt_end
    assert result.ok  # v6.8 reserves the chunk's part in each TDMR


@pytest.mark.parametrize("policy", [FirstFit(), LastFit(), NearestPlacement((SZ_1G,)),
                                    ExplicitPlacement({0: SZ_1G})], ids=lambda p: p.name)
@pytest.mark.parametrize("size", [0, -SZ_4K])
def test_a_chunk_of_no_size_gets_nothing(policy, size):
    """A zero or negative chunk (a zero-size TDMR of a broken model) fails allocation as NULL
    from the allocator does, instead of dividing by zero."""
    allocator = policy.allocator((MemRange(SZ_1M, 4 * SZ_1G),))
    assert allocator.alloc(0, size, 0) is None
