"""Hypothesis strategies for memory maps and PAMT placements that reach the boundaries.

TDMR rules change behaviour at GiB boundaries (TDMR edges), at 1 MiB (nothing below is TDX
memory), at 4 GiB (the zone split the allocator respects), at page granularity (holes a page
wide) and at 8 and 16 TiB (a TDMR of 2^31 or 2^32 4K pages, where a 32-bit entry count goes
negative or wraps to zero). So an address is drawn as k GiB plus a small signed offset from a
boundary set, or plus a random page multiple; k is small, or huge now and then, and counts
from the case's anchor GiB. A map is a few such regions plus clusters of small regions and
holes packed into one GiB, each region on one of four NUMA nodes; touching regions on one node
merge as memblock merges them. PAMT chunks go first-fit, last-fit, and to the candidates
nearest targets the search draws next to boundaries, often the first GiB boundary above an
entry's start, where a TDMR edge falls inside memory: that puts chunks across TDMR edges, or,
for a chunk anchored by its end, ending right at one.
Every choice shrinks towards the simple end (fewer regions, anchor 0, k = 0, offset 0, no
targets, the real module limits), so a found case shrinks to a small map.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import assume
from hypothesis import strategies as st

from spec.memory import SZ_1G, SZ_1M, SZ_4K, MemRange, build_tdx_memlist, round_down, round_up
from spec.placement import FirstFit, LastFit, NearestPlacement
from spec.platform import memblock_regions
from spec.sysinfo import TdxSysinfo

SZ_2M = 2 * SZ_1M
MAX_REGIONS = 16
# Offsets from a GiB boundary, simplest first: on it, a page or two either side, 1 or 2 MiB
# either side (a 1 GiB TDMR's PAMT chunk is just over 4 MiB), half a GiB.
BOUNDARY_OFFSETS = (0, SZ_4K, -SZ_4K, 2 * SZ_4K, -2 * SZ_4K, SZ_1M, -SZ_1M, SZ_2M, -SZ_2M,
                    SZ_1G // 2)
# GiB counts either side of 8 TiB and 16 TiB, where a TDMR's 4K entry count reaches 2^31
# (negative in a signed 32-bit int) and 2^32 (zero).
HUGE_GIBS = (8191, 8192, 16383, 16384)
# Steps of a cluster of small regions: pages, MiBs, large pages, 64 MiB.
CLUSTER_UNITS = (SZ_4K, SZ_1M, SZ_2M, 64 * SZ_1M)
NODES = 4


@dataclass(frozen=True)
class MapCase:
    """One drawn case: memblock regions, CMRs, module limits, and targets for the PAMT chunks.
    The case is tried with first-fit, last-fit, the chunks nearest the targets and the chunks
    ending nearest them, in that order: trying four placements costs less than drawing four
    maps."""

    regions: tuple[MemRange, ...]
    cmrs: tuple[MemRange, ...]
    sysinfo: TdxSysinfo
    targets: tuple[int, ...]

    @property
    def memlist(self) -> tuple[MemRange, ...]:
        return build_tdx_memlist(self.regions)

    @property
    def placements(self) -> tuple[FirstFit | LastFit | NearestPlacement, ...]:
        return (FirstFit(), LastFit(), NearestPlacement(self.targets),
                NearestPlacement(self.targets, by_end=True))


def _gibs() -> st.SearchStrategy[int]:
    """A GiB count: 0 to 8, or near 8 or 16 TiB once in 28 draws. Hypothesis favours the
    ends of a range, so the huge counts sit in the middle of the choices; a lower choice is a
    small count, so shrinking leaves the huge ones behind in one step."""
    small = tuple(range(9)) * 6
    return st.sampled_from(small + HUGE_GIBS + small)


def _offsets() -> st.SearchStrategy[int]:
    """An offset from a GiB boundary: often none (TDMR edges are GiB boundaries), else one from
    the boundary set, or any page multiple in a GiB either side."""
    pages = SZ_1G // SZ_4K
    return st.one_of(st.just(0), st.sampled_from(BOUNDARY_OFFSETS),
                     st.integers(-pages + 1, pages - 1).map(lambda n: n * SZ_4K))


# Strategies are built once: building one per draw costs more than the draw.
GIBS = _gibs()
OFFSETS = _offsets()
# Addresses are drawn relative to the case's anchor GiB, so that one shrinking step moves a
# whole case down (to address 0 if it still goes wrong there).
_RELATIVE = st.builds(lambda k, off: k * SZ_1G + off, GIBS, OFFSETS)
_NODE = st.integers(0, NODES - 1)
_SLOTS, _LENGTHS = 64, 4
# One draw per region of a cluster: where it starts (one of 64 unit steps), its length (1-4
# units) and its node, packed so that 0 (at the start, one unit, node 0) is the simplest.
# Regions of a cluster overlap, touch or leave holes; removing one moves no other.
_SLOT = st.integers(0, _SLOTS * _LENGTHS * NODES - 1)


@st.composite
def _single(draw) -> list[MemRange]:
    """One region between two boundary-biased addresses (an empty one is dropped later)."""
    a, b = sorted((draw(_RELATIVE), draw(_RELATIVE)))
    return [MemRange(a, b, draw(_NODE))]


@st.composite
def _cluster(draw) -> list[MemRange]:
    """Small regions and holes packed from a boundary-biased start: 64 steps of one unit (a
    page to 64 MiB), so that regions touch (two entries on different nodes, one on the same)
    and holes are a unit wide."""
    start = draw(_RELATIVE)
    unit = draw(st.sampled_from(CLUSTER_UNITS))
    regions = []
    for code in draw(st.lists(_SLOT, min_size=2, max_size=16)):
        code, slot = divmod(code, _SLOTS)
        nid, length = divmod(code, _LENGTHS)
        regions.append(MemRange(start + slot * unit, start + (slot + length + 1) * unit, nid))
    return regions


_PARTS = st.lists(st.one_of(_single(), _cluster()), min_size=1, max_size=6)
# A target next to a GiB boundary where memory entry j makes a TDMR edge, or anywhere. The
# boundaries of entry j: the first above its start (where a TDMR edge falls inside memory, if
# one does), then, in a branch of their own so that cases drawn before they existed shrink
# alike, the one below its start (its TDMR's base) and the one at or above its end.
_EDGES = 3
_ENTRY_INDEX = st.integers(0, MAX_REGIONS - 1)
_TARGETS = st.lists(st.one_of(st.tuples(_ENTRY_INDEX, st.just(0), OFFSETS), _RELATIVE,
                              st.tuples(_ENTRY_INDEX, st.integers(1, _EDGES - 1), OFFSETS)),
                    max_size=6)
_JOIN = st.booleans()
_EDGE = st.integers(0, 2)  # a CMR end kept, moved a page out, or out to the GiB boundary
_ENTRY = st.sampled_from((16, 8, 32))
SYSINFOS = st.one_of(st.just(TdxSysinfo()),
                     st.builds(TdxSysinfo, st.integers(1, 8), st.integers(0, 8),
                               st.tuples(_ENTRY, _ENTRY, _ENTRY)))
"""The real module limits, or small ones that the maps here can exhaust, with PAMT entry
sizes that tell the three page sizes apart."""


def memblock(anchor: int, parts: list[list[MemRange]]) -> tuple[MemRange, ...]:
    """Memblock memory from the drawn parts moved up by `anchor`: nothing below 0, empty
    ranges dropped, overlaps and touching ranges of one node merged as memblock merges them,
    the lowest `MAX_REGIONS` kept."""
    moved = (MemRange(max(0, anchor + r.start), max(0, anchor + r.end), r.nid)
             for part in parts for r in part)
    return memblock_regions(tuple(r for r in moved if r.start < r.end), ())[:MAX_REGIONS]


@st.composite
def cmrs_for(draw, memlist: tuple[MemRange, ...]) -> tuple[MemRange, ...]:
    """CMRs covering the TDX memory: consecutive entries grouped into one CMR (the gaps
    between them convertible), each CMR's ends kept, moved a page out, or out to the GiB
    boundary, never into a neighbouring CMR or entry."""
    cmrs: list[MemRange] = []
    i = 0
    while i < len(memlist):
        j = i
        while j + 1 < len(memlist) and draw(_JOIN):
            j += 1
        start, end = memlist[i].start, memlist[j].end
        start = (start, start - SZ_4K, round_down(start, SZ_1G))[draw(_EDGE)]
        end = (end, end + SZ_4K, round_up(end, SZ_1G))[draw(_EDGE)]
        floor = cmrs[-1].end if cmrs else 0
        ceiling = memlist[j + 1].start if j + 1 < len(memlist) else end
        cmrs.append(MemRange(max(floor, start), min(ceiling, end)))
        i = j + 1
    return tuple(cmrs)


def _target(drawn: tuple[int, int, int] | int, anchor: int,
            memlist: tuple[MemRange, ...]) -> int:
    if isinstance(drawn, tuple):
        j, edge, offset = drawn
        entry = memlist[j % len(memlist)]
        return (round_up(entry.start, SZ_1G), round_down(entry.start, SZ_1G),
                round_up(entry.end, SZ_1G))[edge] + offset
    return anchor + drawn


@st.composite
def map_cases(draw, with_cmrs: bool = False) -> MapCase:
    """A case with TDX memory in it (memory above 1 MiB). Without `with_cmrs` the CMRs are the
    memory itself (only profiles that take holes from CMRs read them)."""
    anchor = draw(GIBS) * SZ_1G
    regions = memblock(anchor, draw(_PARTS))
    memlist = build_tdx_memlist(regions)
    assume(memlist)
    cmrs = draw(cmrs_for(memlist)) if with_cmrs else memlist
    targets = tuple(max(0, _target(t, anchor, memlist)) for t in draw(_TARGETS))
    return MapCase(regions, cmrs, draw(SYSINFOS), targets)
