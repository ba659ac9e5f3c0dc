"""Hypothesis strategies shared by the tests: memory maps and TDX module limits.

A memory map is a list of `spec.memory.MemRange`, sorted by address, pairwise disjoint (touching
is allowed, on the same node or not), every bound a multiple of 4 KiB, each range on a random
node. Sizes and gaps mix page, MiB and GiB scales so that maps exercise every TDMR rule:
several ranges per 1 GiB window, ranges crossing 1 GiB boundaries, ranges spanning GiBs.
"""

from __future__ import annotations

from hypothesis import strategies as st

from spec.memory import SZ_1G, SZ_1M, SZ_4K, MemRange
from spec.sysinfo import TdxSysinfo

SZ_2M = 2 * SZ_1M

# Multiples of these units; each scale hits different rules.
_UNITS = (SZ_4K, SZ_2M, 128 * SZ_1M, SZ_1G)


def lengths(min_units: int = 1, max_units: int = 8) -> st.SearchStrategy[int]:
    """A positive length, a multiple of 4 KiB: a few pages, MiBs, hundreds of MiB or GiBs."""
    return st.builds(lambda unit, n: unit * n, st.sampled_from(_UNITS),
                     st.integers(min_units, max_units))


def gaps() -> st.SearchStrategy[int]:
    """Distance between two ranges: often zero (touching ranges), else a length."""
    return st.one_of(st.just(0), lengths())


@st.composite
def memory_maps(draw, min_regions: int = 1, max_regions: int = 16, max_nodes: int = 4,
                min_start: int = SZ_1M, max_first_gib: int = 8) -> list[MemRange]:
    """A sorted, disjoint, page-aligned memory map with random NUMA nodes.

    The first range starts at or above `min_start` (a multiple of 4 KiB; the default 1 MiB
    matches what `build_tdx_memlist` hands to TDMR construction).
    """
    assert min_start % SZ_4K == 0
    count = draw(st.integers(min_regions, max_regions))
    nodes = draw(st.integers(1, max_nodes))
    addr = min_start + draw(st.integers(0, max_first_gib * (SZ_1G // SZ_4K))) * SZ_4K
    regions = []
    for i in range(count):
        if i:
            addr += draw(gaps())
        size = draw(lengths())
        regions.append(MemRange(addr, addr + size, draw(st.integers(0, nodes - 1))))
        addr += size
    return regions


@st.composite
def raw_regions(draw, max_regions: int = 10) -> list[MemRange]:
    """Firmware-like regions at byte granularity (not page aligned), possibly below 1 MiB,
    possibly shorter than a page: the input of `build_tdx_memlist`. Sorted and disjoint."""
    count = draw(st.integers(0, max_regions))
    addr = draw(st.integers(0, 3 * SZ_1M))
    regions = []
    for _ in range(count):
        addr += draw(st.integers(0, 3 * SZ_1M))
        size = draw(st.integers(1, 2 * SZ_1M))
        regions.append(MemRange(addr, addr + size, draw(st.integers(0, 3))))
        addr += size
    return regions


@st.composite
def sysinfos(draw, small: bool = True) -> TdxSysinfo:
    """TDX module limits. `small`: often tiny limits so that both failures happen, sometimes
    the real 64 TDMRs / 16 areas; entry sizes vary around the real 16 bytes."""
    if small:
        max_tdmrs = draw(st.one_of(st.integers(1, 8), st.just(64)))
        max_reserved = draw(st.one_of(st.integers(0, 8), st.just(16)))
    else:
        max_tdmrs, max_reserved = 64, 16
    entry = st.sampled_from((1, 8, 16, 24, 64))
    return TdxSysinfo(max_tdmrs, max_reserved, (draw(entry), draw(entry), draw(entry)))
