"""Smallest memory map on which a profile's TDMR construction breaks a layout invariant.

Breadth-first over maps: every map of 1 region, then of 2, then 3, each size in order of
span, built from a grid of boundaries where the kernel's rules change behaviour (1 MiB, inside
and at 1 GiB steps, 4 GiB, 8 and 16 TiB where 32-bit entry counts go negative and wrap). The
first map whose construction succeeds but hands the module a layout that violates an
invariant is the smallest counterexample on the grid. The search knows nothing of any
particular bug: it runs the profile's `construct_tdmrs` and the layout invariants, so it
finds whatever a profile breaks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import combinations, product

from invariants.layout import Violation, check_layout
from spec.memory import SZ_1G, SZ_1M, MemRange, build_tdx_memlist
from spec.placement import PLACEMENTS
from spec.profiles import Profile
from spec.sysinfo import TdxSysinfo
from spec.tdmr import ConstructResult, construct_tdmrs

SZ_8T, SZ_16T = 8 << 40, 16 << 40
GRID = (SZ_1M, SZ_1G // 2, SZ_1G, 3 * SZ_1G // 2, 2 * SZ_1G, 4 * SZ_1G, 5 * SZ_1G,
        6 * SZ_1G, SZ_8T, SZ_8T + SZ_1G, SZ_16T)
MAX_REGIONS = 3


@dataclass(frozen=True)
class MapWitness:
    """A map, the placement policy and what went wrong on it."""

    regions: tuple[MemRange, ...]
    placement: str
    result: ConstructResult
    violations: tuple[Violation, ...]


@dataclass(frozen=True)
class SearchOutcome:
    witness: MapWitness | None
    maps_tried: int
    complete: bool  # False: the time bound stopped the search


def candidate_maps(max_regions: int = MAX_REGIONS):
    """Maps in search order: fewer regions first, then smaller span, then by address. Two
    neighbours are separated by a gap, or touch on different nodes (memblock merges touching
    same-node regions, so such maps cannot occur). Node names are symmetric: the first region
    is always node 0."""
    for count in range(1, max_regions + 1):
        shapes = []
        for points in combinations(GRID, 2 * count):
            shapes.append((points[-1] - points[0], points,
                           [(points[2 * i], points[2 * i + 1]) for i in range(count)], False))
        if count > 1:
            for points in combinations(GRID, count + 1):
                shapes.append((points[-1] - points[0], points,
                               [(points[i], points[i + 1]) for i in range(count)], True))
        shapes.sort(key=lambda s: (s[0], s[1]))
        for _, _, ranges, touching in shapes:
            for nodes in product((0, 1), repeat=count):
                if nodes[0] != 0:
                    continue
                if touching and any(nodes[i] == nodes[i + 1] for i in range(count - 1)):
                    continue
                yield tuple(MemRange(s, e, n) for (s, e), n in zip(ranges, nodes, strict=True))


def layout_violations(regions: tuple[MemRange, ...], profile: Profile, sysinfo: TdxSysinfo,
                      placement: str) -> tuple[ConstructResult, list[Violation]]:
    """Construct under `profile`; a layout the kernel would hand to TDH.SYS.CONFIG is checked.
    CMRs are taken to be the memory itself (a map without firmware quirks)."""
    memlist = build_tdx_memlist(regions)
    result = construct_tdmrs(memlist, sysinfo, PLACEMENTS[placement], memlist, profile)
    if not result.ok:
        return result, []
    return result, check_layout(result.tdmrs, memlist, sysinfo)


def smallest_violating_map(profile: Profile, sysinfo: TdxSysinfo = TdxSysinfo(),
                           max_regions: int = MAX_REGIONS, time_s: float = 60.0,
                           placements: tuple[str, ...] = ("first-fit", "last-fit")
                           ) -> SearchOutcome:
    deadline = time.monotonic() + time_s
    tried = 0
    for regions in candidate_maps(max_regions):
        if time.monotonic() > deadline:
            return SearchOutcome(None, tried, complete=False)
        for placement in placements:
            tried += 1
            result, found = layout_violations(regions, profile, sysinfo, placement)
            if found:
                return SearchOutcome(MapWitness(regions, placement, result, tuple(found)),
                                     tried, complete=True)
    return SearchOutcome(None, tried, complete=True)
