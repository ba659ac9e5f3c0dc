"""Property: whatever map the engine succeeds on, its layout satisfies every layout constraint.

The maps are drawn as one flat list of small codes (a region is a gap, a length and a node), so
that a thousand of them take seconds; lengths mix page, MiB, 128 MiB and GiB scales as in
`tests.strategies`.
"""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from invariants.layout import check_layout
from spec.memory import SZ_1G, SZ_1M, SZ_4K, MemRange, build_tdx_memlist
from spec.placement import PLACEMENTS
from spec.sysinfo import TdxSysinfo
from spec.tdmr import construct_tdmrs
from tests.strategies import sysinfos

UNITS = (SZ_4K, 2 * SZ_1M, 128 * SZ_1M, SZ_1G)
THOUSAND_MAPS = settings(max_examples=1000, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])


def _length(code: int) -> int:
    return UNITS[code % len(UNITS)] * (code // len(UNITS) + 1)


@st.composite
def compact_maps(draw, max_regions: int = 24) -> list[MemRange]:
    """Sorted, disjoint, page-aligned regions on up to 4 nodes; a gap code of 0 makes two
    regions touch."""
    codes = draw(st.lists(st.tuples(st.integers(0, 32), st.integers(0, 31), st.integers(0, 3)),
                          min_size=1, max_size=max_regions))
    addr = SZ_1M + draw(st.integers(0, 4 * SZ_1G // SZ_4K)) * SZ_4K
    regions = []
    for i, (gap, size, nid) in enumerate(codes):
        if i and gap:
            addr += _length(gap - 1)
        regions.append(MemRange(addr, addr + _length(size), nid))
        addr += _length(size)
    return regions


@THOUSAND_MAPS
@given(compact_maps(), st.one_of(sysinfos(), st.just(TdxSysinfo())),
       st.sampled_from(sorted(PLACEMENTS)))
def test_engine_layouts_satisfy_every_layout_constraint(regions, sysinfo, placement):
    """A thousand successful constructions (failed ones are not counted), each checked."""
    memlist = build_tdx_memlist(regions)
    result = construct_tdmrs(memlist, sysinfo, PLACEMENTS[placement])
    assume(result.ok)
    assert check_layout(result.tdmrs, memlist, sysinfo) == []
