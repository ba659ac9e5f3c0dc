"""The TDMR engine `spec.tdmr.construct_tdmrs` against kernel-behaviour.md section 3.

Three kinds of test: hand-computed cases (the arithmetic is in the comments), properties over
random memory maps checked with independent interval arithmetic, and a deliberately naive
re-implementation of the kernel's loops that must agree with the engine to the letter.
"""

from __future__ import annotations

import re
from dataclasses import replace
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.engines.mapstrategies import map_cases
from invariants.tdmr_reference import reference_construct
from spec.errno import ENOMEM, ENOSPC
from spec.memory import SZ_1G, SZ_1M, SZ_4K, MemRange, build_tdx_memlist
from spec.placement import ExplicitPlacement, FirstFit, LastFit
from spec.profiles import PROFILES, V6_8
from spec.sysinfo import TdxSysinfo
from spec.tdmr import AreaDemand, ReservedArea, Tdmr, construct_tdmrs, tdmr_get_pamt_sz
from tests.strategies import memory_maps, sysinfos

G = SZ_1G
M = SZ_1M
TiB = 1 << 40
LOGS = Path(__file__).resolve().parent.parent / "checker" / "data" / "boot-logs"

TDMRS_EXHAUSTED = "initialization failed: TDMRs exhausted."
# PAMT chunk of a 1 GiB TDMR with 16-byte entries:
#   4K: (2^30 >> 12) = 262144 entries * 16 = 4 MiB;  2M: 512 * 16 = 8192;  1G: 1 * 16 -> 4096
CHUNK_1G = 4 * M + 8192 + 4096  # 0x403000
# ... of a 2 GiB TDMR: 4K: 2^19 * 16 = 8 MiB;  2M: 1024 * 16 = 16 KiB;  1G: 2 * 16 -> 4096
CHUNK_2G = 8 * M + 16384 + 4096  # 0x805000


def _hole(offset, size):
    return ReservedArea(offset, size, "hole")


def _pamt(offset, size):
    return ReservedArea(offset, size, "pamt")


def _exhausted(base, end):
    return f"initialization failed: TDMR [0x{base:x}, 0x{end:x}): reserved areas exhausted."


# --- fill_out_tdmrs ----------------------------------------------------------------------------

def test_region_crossing_a_1g_boundary():
    """[768M, 1280M) crosses 1G: one TDMR [0, 2G); two holes and the PAMT chunk inside it."""
    result = construct_tdmrs((MemRange(0x30000000, 0x50000000, 0),))
    assert result.ok
    (tdmr,) = result.tdmrs
    assert (tdmr.base, tdmr.size) == (0, 2 * G)  # round_down(768M, 1G) = 0, round_up(1280M) = 2G
    assert tdmr.pamt_sizes == (8 * M, 16384, 4096)
    # first-fit, node 0 below 4G: round_up(0x30000000, 0x805000) = 96 * 0x805000 = 0x301e0000
    assert tdmr.pamt_base == 96 * CHUNK_2G == 0x301E0000
    assert tdmr.pamt_bases == (0x301E0000, 0x301E0000 + 8 * M, 0x301E0000 + 8 * M + 16384)
    assert tdmr.reserved == (
        _hole(0, 0x30000000),                # [0, 768M) leading hole
        _pamt(0x301E0000, CHUNK_2G),         # own PAMT chunk
        _hole(0x50000000, 0x30000000),       # [1280M, 2G) trailing hole
    )
    assert result.demand == (AreaDemand(leading_holes=1, trailing_holes=1, own_pamt=1),)
    assert result.pamt_kb == CHUNK_2G // 1024 == 8212


def test_two_regions_one_window_different_nodes():
    """[4G, 4G+256M) on node 1 and [4G+512M, 4G+768M) on node 0 share TDMR [4G, 5G); its PAMT
    goes to node 1, the node of the first entry ending above the TDMR base."""
    memlist = (MemRange(4 * G, 4 * G + 256 * M, 1), MemRange(4 * G + 512 * M, 4 * G + 768 * M, 0))
    result = construct_tdmrs(memlist)
    assert result.ok
    (tdmr,) = result.tdmrs
    assert (tdmr.base, tdmr.end) == (4 * G, 5 * G)
    # node 1 above 4G: round_up(4G, 0x403000) = 1022 * 0x403000 = 0x1003fa000 (in node 1's entry;
    # node 0 would have given round_up(4G+512M, 0x403000), inside the second entry)
    assert tdmr.pamt_base == 1022 * CHUNK_1G == 0x1003FA000
    assert tdmr.reserved == (
        _pamt(0x3FA000, CHUNK_1G),
        _hole(0x10000000, 0x10000000),       # [4G+256M, 4G+512M) gap
        _hole(0x30000000, 0x10000000),       # [4G+768M, 5G) trailing hole
    )


def test_entry_reaching_past_a_tdmr_opens_the_next_from_its_end():
    """A [1M, 256M) node 0 -> TDMR0 [0, 1G). B [512M, 3.5G) node 1: round_down(512M) = 0 is
    below 1G, so TDMR1 = [1G, 4G). TDMR1's node is B's (B starts below 1G: starts ignored), so
    its 3 GiB chunk lands in B, below 1G, inside TDMR0."""
    a, b = MemRange(M, 256 * M, 0), MemRange(512 * M, 3584 * M, 1)
    result = construct_tdmrs((a, b))
    assert result.ok
    t0, t1 = result.tdmrs
    assert (t0.base, t0.end, t1.base, t1.end) == (0, G, G, 4 * G)
    # TDMR0 chunk 0x403000 on node 0, below 4G: round_up(1M, 0x403000) = 0x403000
    assert t0.pamt_base == CHUNK_1G
    # TDMR1 chunk: 4K 3 * 4M = 0xc00000, 2M 1536 * 16 = 0x6000, 1G 3 * 16 -> 0x1000: 0xc07000;
    # node 1 below 4G: round_up(512M, 0xc07000) = 43 * 0xc07000 = 0x2052d000
    assert t1.pamt_sizes == (0xC00000, 0x6000, 0x1000)
    assert t1.pamt_base == 43 * 0xC07000 == 0x2052D000
    assert t0.reserved == (
        _hole(0, M),                          # [0, 1M)
        _pamt(CHUNK_1G, CHUNK_1G),            # own chunk
        _hole(256 * M, 256 * M),              # [256M, 512M)
        _pamt(0x2052D000, 0xC07000),          # TDMR1's chunk, inside TDMR0
    )
    assert t1.reserved == (_hole(2560 * M, 512 * M),)  # [3.5G, 4G) trailing, offset 2.5G
    assert result.demand[0] == AreaDemand(1, 1, 0, 1, 1)


def _spread(count):
    """`count` 1 GiB regions 2 GiB apart from 4G, region k on node k (own PAMT node)."""
    return tuple(MemRange(4 * G + 2 * G * k, 5 * G + 2 * G * k, k) for k in range(count))


def test_65_regions_exhaust_64_tdmrs():
    """65 regions 2 GiB apart need 65 TDMRs > 64: -ENOSPC, exactly the kernel line, no warning."""
    result = construct_tdmrs(_spread(65))
    assert result.error.errno == -ENOSPC == -28
    assert result.error.message == TDMRS_EXHAUSTED
    assert result.messages == (TDMRS_EXHAUSTED,)
    assert result.tdmrs == ()


@pytest.mark.parametrize(("max_tdmrs", "count", "warned"), [
    (64, 60, False),   # 64 - 60 = 4 left: not fewer than 4
    (64, 61, True),    # 64 - 61 = 3 left
    (64, 64, True),    # 0 left, still a success
    (5, 1, False),     # 5 - 1 = 4 left
    (5, 2, True),      # 5 - 2 = 3 left
])
def test_consumed_tdmrs_warning(max_tdmrs, count, warned):
    """`consumed TDMRs reaching limit: N used out of M` exactly when fewer than 4 remain."""
    result = construct_tdmrs(_spread(count), TdxSysinfo(max_tdmrs=max_tdmrs))
    assert result.ok and len(result.tdmrs) == count
    line = f"consumed TDMRs reaching limit: {count} used out of {max_tdmrs}"
    assert result.messages == ((line,) if warned else ())
    # each region fills its TDMR and its node's chunk stays in it: one PAMT area each
    assert all(t.reserved == (_pamt(t.pamt_base - t.base, CHUNK_1G),) for t in result.tdmrs)


# --- PAMT -------------------------------------------------------------------------------------

def test_pamt_chunk_inside_another_tdmr():
    """TDMR0's chunk placed inside TDMR1: TDMR1 gets one extra area of kind "pamt"."""
    memlist = (MemRange(4 * G, 5 * G, 0), MemRange(8 * G, 9 * G, 0))
    result = construct_tdmrs(memlist, placement=ExplicitPlacement({0: 8 * G + 256 * M, 1: 8 * G}))
    assert result.ok
    t0, t1 = result.tdmrs
    assert t0.reserved == ()  # fully memory, no chunk in it
    assert t1.reserved == (_pamt(0, CHUNK_1G), _pamt(256 * M, CHUNK_1G))
    assert result.demand == (AreaDemand(), AreaDemand(own_pamt=1, other_pamts=1))


def test_pamt_chunk_straddling_two_tdmrs_is_clipped_in_each():
    """A chunk at 5G - 4K spans TDMRs [4G, 5G) and [5G, 6G): one clipped area in each."""
    memlist = (MemRange(4 * G, 5 * G, 0), MemRange(5 * G, 6 * G, 1))
    result = construct_tdmrs(memlist, placement=ExplicitPlacement({0: 5 * G - SZ_4K,
                                                                   1: 5 * G + 256 * M}))
    assert result.ok
    t0, t1 = result.tdmrs
    assert t0.reserved == (_pamt(G - SZ_4K, SZ_4K),)                     # [5G-4K, 5G)
    assert t1.reserved == (_pamt(0, CHUNK_1G - SZ_4K), _pamt(256 * M, CHUNK_1G))


def test_8tib_pamt_size_is_exact():
    """TDMR of 8 TiB = 2^43: 4K 2^31 entries * 16 = 2^35; 2M 2^22 * 16 = 2^26; 1G 2^13 * 16 =
    2^17. KB: 2^25 + 2^16 + 2^7 = 33620096 (= 4096*8192 + 8*8192 + 4*ceil(16*8192/4096))."""
    result = construct_tdmrs((MemRange(8 * TiB, 16 * TiB, 0),))
    assert result.ok
    assert result.tdmrs[0].size == 1 << 43
    assert result.tdmrs[0].pamt_sizes == (1 << 35, 1 << 26, 1 << 17)
    assert result.pamt_kb == 33620096


def test_8tib_pamt_size_wrong_with_32_bit_entry_count():
    """With the entry count held in 32 signed bits, 2^31 wraps to -2^31: the 4K PAMT size is
    wrong (the model's wrap gives 2^64 - 2^35); the 2M and 1G PAMTs still fit and are right."""
    buggy = replace(V6_8, name="32-bit", pamt_entry_count_bits=32)
    result = construct_tdmrs((MemRange(8 * TiB, 16 * TiB, 0),), placement=ExplicitPlacement(
        {0: 8 * TiB}), profile=buggy)
    sizes = result.tdmrs[0].pamt_sizes
    assert sizes[0] != 1 << 35
    assert sizes[0] == (1 << 64) - (1 << 35)
    assert sizes[1:] == (1 << 26, 1 << 17)
    # below 2^31 entries (a 4 TiB TDMR: 2^30 entries) the count still fits
    assert tdmr_get_pamt_sz(Tdmr(0, 4 * TiB), 12, 16, buggy) == 1 << 34


def test_configurable_entry_sizes():
    """Entry sizes (8, 32, 64) on a 1 GiB TDMR: 262144*8 = 2 MiB, 512*32 = 16 KiB, 64 -> 4 KiB."""
    result = construct_tdmrs((MemRange(4 * G, 5 * G, 0),),
                             TdxSysinfo(pamt_entry_size=(8, 32, 64)))
    (tdmr,) = result.tdmrs
    assert tdmr.pamt_sizes == (2 * M, 16384, 4096)
    assert tdmr.pamt_bases == (tdmr.pamt_base, tdmr.pamt_base + 2 * M,
                               tdmr.pamt_base + 2 * M + 16384)


def test_explicit_placement_without_base_is_enomem():
    """No base for TDMR 1: -ENOMEM with no message; TDMRs as filled out, without PAMTs."""
    memlist = (MemRange(4 * G, 5 * G, 0), MemRange(8 * G, 9 * G, 0))
    result = construct_tdmrs(memlist, placement=ExplicitPlacement({0: 4 * G}))
    assert result.error.errno == -ENOMEM == -12
    assert result.error.message is None and result.messages == ()
    assert [(t.base, t.size, t.pamt_size) for t in result.tdmrs] == [(4 * G, G, 0), (8 * G, G, 0)]
    assert result.failed_tdmr is None and result.pamt_kb is None


# --- reserved areas ---------------------------------------------------------------------------

def test_max_reserved_is_configurable():
    """TDMR [4G, 5G) with a gap [4G+256M, 4G+512M) and its own chunk needs 2 areas."""
    memlist = (MemRange(4 * G, 4 * G + 256 * M, 0), MemRange(4 * G + 512 * M, 5 * G, 0))
    assert construct_tdmrs(memlist, TdxSysinfo(max_reserved_per_tdmr=2)).ok
    result = construct_tdmrs(memlist, TdxSysinfo(max_reserved_per_tdmr=1))
    assert result.error.errno == -ENOSPC
    assert result.error.message == _exhausted(4 * G, 5 * G)
    assert result.messages == (_exhausted(4 * G, 5 * G),)
    assert result.failed_tdmr == 0
    assert result.demand[0] == AreaDemand(gaps=1, own_pamt=1)


def test_max_tdmrs_is_configurable():
    """Three regions in three windows: 3 TDMRs; max 2 fails, max 3 warns (0 left < 4)."""
    memlist = _spread(3)
    result = construct_tdmrs(memlist, TdxSysinfo(max_tdmrs=2))
    assert (result.error.errno, result.error.message) == (-ENOSPC, TDMRS_EXHAUSTED)
    result = construct_tdmrs(memlist, TdxSysinfo(max_tdmrs=3))
    assert result.ok and result.messages == ("consumed TDMRs reaching limit: 3 used out of 3",)


def _e820_usable(name):
    """Usable e820 lines of a boot log as regions on node 0 (e820 ends are inclusive)."""
    pattern = re.compile(r"BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] usable")
    return [MemRange(int(a, 16), int(b, 16) + 1, 0)
            for a, b in pattern.findall((LOGS / name).read_text())]


def _cmrs(name):
    """The `CMR: [a, b)` lines of a boot log as regions on node 0."""
    pattern = re.compile(r"CMR: \[0x([0-9a-f]+), 0x([0-9a-f]+)\)")
    return [MemRange(int(a, 16), int(b, 16), 0)
            for a, b in pattern.findall((LOGS / name).read_text())]


def _emr_first_2g():
    memlist = build_tdx_memlist(_e820_usable("emr-fcp-e820-first-2g.log"))
    assert len(memlist) == 16  # 17 usable lines, the first one [0, 0x9f000) clipped away
    return memlist


def test_emr_first_2g_exhausts_reserved_areas():
    """16 ranges above 1M in TDMR [0, 2G): 1 leading + 15 gaps + 1 trailing = 17 holes > 16."""
    result = construct_tdmrs(_emr_first_2g())
    message = "initialization failed: TDMR [0x0, 0x80000000): reserved areas exhausted."
    assert result.error.errno == -28
    assert result.error.message == message and result.messages == (message,)
    assert result.failed_tdmr == 0
    # the chunk also lands in the TDMR: first-fit, round_up(1M, 0x805000) = 0x805000
    assert result.demand == (AreaDemand(leading_holes=1, gaps=15, trailing_holes=1,
                                        own_pamt=1),)
    assert result.demand[0].total == 18


def test_emr_first_2g_with_cmr_holes_succeeds():
    """Holes from the CMR [1M, 0x6f800000): [0, 1M), the chunk, [0x6f800000, 2G)."""
    result = construct_tdmrs(_emr_first_2g(), profile=PROFILES["cmr-holes"],
                             cmrs=(MemRange(0x100000, 0x6F800000),))
    assert result.ok and result.messages == ()
    (tdmr,) = result.tdmrs
    assert tdmr.pamt_base == CHUNK_2G  # round_up(1M, 0x805000) in [1M, 0x5d169000)
    assert tdmr.reserved == (
        _hole(0, 0x100000),
        _pamt(0x805000, 0x805000),
        _hole(0x6F800000, 0x80000000 - 0x6F800000),   # size 0x10800000
    )
    assert result.pamt_kb == 8212


@pytest.mark.parametrize(("log", "kb"), [
    # TDMRs [0,2G) [4G,130G) [130G,258G): S = 2, 126, 128 GiB;
    # 4096*S + 8*S + 4*ceil(16*S/4096) KB: 8212 + 517108 + 525316 = 1050636
    ("spr-8480c-256g.log", 1050636),
    # [0,2G) [4G,258G) [258G,514G): 8212 + (4096+8)*254 + 4 + (4096+8)*256 + 8 = 2101260
    ("2s-512g.log", 2101260),
    # [0,2G) [4G,258G) then three of 256G: 8212 + 1042420 + 3 * 1050632 = 4202516
    ("4node-1t-6.5.log", 4202516),
    # [0,2G) [4G,66G) then three of 64G: 8212 + 4104*62+4 + 3 * (4104*64+4) = 1050644
    ("emr-fcp-6.8.0-1006-intel.log", 1050644),
])
def test_pamt_kb_from_boot_log_cmrs(log, kb):
    """The CMR list of a real boot, as regions on node 0, gives the logged `N KB` figure."""
    cmrs = _cmrs(log)
    assert len(cmrs) in (3, 5)
    result = construct_tdmrs(build_tdx_memlist(cmrs))
    assert result.ok
    assert result.pamt_kb == kb


# --- properties over random maps --------------------------------------------------------------

def _round_up(value, align):
    return -(-value // align) * align


def _merge(intervals):
    """Sorted union of half-open intervals, touching ones joined."""
    out = []
    for start, end in sorted(i for i in intervals if i[0] < i[1]):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _minus(lo, hi, intervals):
    """[lo, hi) minus a union of intervals, as its maximal pieces."""
    out, cur = [], lo
    for start, end in _merge(intervals):
        if end <= cur or start >= hi:
            continue
        if start > cur:
            out.append((cur, start))
        cur = max(cur, end)
    if cur < hi:
        out.append((cur, hi))
    return out


def _pamt_formula(size, entries):
    return tuple(_round_up((size >> shift) * entry, SZ_4K)
                 for shift, entry in zip((12, 21, 30), entries, strict=True))


def _demand(tdmr_lo, tdmr_hi, memlist, chunks):
    """Areas a TDMR needs: each maximal hole is one, each chunk touching the TDMR is one."""
    holes = _minus(tdmr_lo, tdmr_hi, [(e.start, e.end) for e in memlist])
    return len(holes) + sum(1 for s, e in chunks if s < tdmr_hi and e > tdmr_lo)


@st.composite
def _explicit_cases(draw):
    """A map, limits, and explicit chunk bases: page aligned, each inside one entry, pairwise
    disjoint; now and then a TDMR gets no base (-ENOMEM)."""
    memlist = tuple(draw(memory_maps()))
    sysinfo = draw(sysinfos())
    ends = sorted({_round_up(e.end, G) for e in memlist})
    bases, taken = {}, []
    for i, end in enumerate(ends):
        start = max(ends[i - 1] if i else 0,
                    min(e.start for e in memlist if _round_up(e.end, G) == end) // G * G)
        size = sum(_pamt_formula(end - start, sysinfo.pamt_entry_size))
        fitting = [e for e in memlist if e.size >= size]
        if not fitting or draw(st.integers(0, 31)) == 0:
            continue
        entry = draw(st.sampled_from(fitting))
        base = entry.start + draw(st.integers(0, (entry.size - size) // SZ_4K)) * SZ_4K
        while (hit := [e for s, e in taken if base < e and s < base + size]):
            base = max(hit)
        if base + size <= entry.end:
            bases[i] = base
            taken.append((base, base + size))
    return memlist, sysinfo, ExplicitPlacement(bases)


_policies = st.sampled_from((FirstFit(), LastFit()))


@st.composite
def _cases(draw):
    """Either a first-fit/last-fit case or an explicit-placement case."""
    if draw(st.booleans()):
        return draw(_explicit_cases())
    return tuple(draw(memory_maps())), draw(sysinfos()), draw(_policies)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_construct_properties(case):
    """Every TDMR rule of section 3 and invariant 7, checked with interval arithmetic."""
    memlist, sysinfo, placement = case
    result = construct_tdmrs(memlist, sysinfo, placement)  # never raises
    ends = sorted({_round_up(e.end, G) for e in memlist})
    warn = [m for m in result.messages if m.startswith("consumed TDMRs")]
    if len(ends) > sysinfo.max_tdmrs:
        assert (result.error.errno, result.error.message) == (-ENOSPC, TDMRS_EXHAUSTED)
        assert result.messages == (TDMRS_EXHAUSTED,) and result.tdmrs == ()
        return
    assert warn == ([f"consumed TDMRs reaching limit: {len(ends)} used out of "
                     f"{sysinfo.max_tdmrs}"] if sysinfo.max_tdmrs - len(ends) < 4 else [])
    tdmrs = result.tdmrs
    # TDMRs: one per distinct round_up(end, 1G); base = lowest start of its group, rounded
    # down, but not below the previous TDMR; 1G aligned and sized, ascending, disjoint.
    assert [t.end for t in tdmrs] == ends
    for prev, tdmr in zip((None, *tdmrs), tdmrs, strict=False):
        first = min(e.start for e in memlist if _round_up(e.end, G) == tdmr.end)
        assert tdmr.base == max(first // G * G, prev.end if prev else 0)
        assert tdmr.base % G == 0 and tdmr.size % G == 0 and tdmr.size > 0
    assert all(a.end <= b.base for a, b in pairwise(tdmrs))
    for e in memlist:
        assert not _minus(e.start, e.end, [(t.base, t.end) for t in tdmrs])
    if result.error is not None and result.error.errno == -ENOMEM:
        assert result.error.message is None
        if isinstance(placement, ExplicitPlacement):
            assert any(i not in placement.bases for i in range(len(tdmrs)))
        else:
            assert _reference_alloc_fails(memlist, sysinfo, placement, tdmrs)
        return
    chunks = [(t.pamt_base, t.pamt_end) for t in tdmrs]
    for tdmr in tdmrs:
        assert tdmr.pamt_sizes == _pamt_formula(tdmr.size, sysinfo.pamt_entry_size)
        b, s = tdmr.pamt_bases, tdmr.pamt_sizes
        assert b[1] == b[0] + s[0] and b[2] == b[1] + s[1]
    limit = sysinfo.max_reserved_per_tdmr
    demands = [_demand(t.base, t.end, memlist, chunks) for t in tdmrs]
    if result.error is not None:
        assert result.error.errno == -ENOSPC
        f = result.failed_tdmr
        assert demands[f] > limit and all(d <= limit for d in demands[:f])
        assert result.error.message == _exhausted(tdmrs[f].base, tdmrs[f].end)
        return
    assert all(d <= limit for d in demands)
    for tdmr, demand in zip(tdmrs, demands, strict=True):
        areas = [(tdmr.base + a.offset, tdmr.base + a.offset + a.size) for a in tdmr.reserved]
        assert len(areas) == demand <= limit
        assert all(a.offset % SZ_4K == 0 and a.size % SZ_4K == 0 and a.size > 0
                   for a in tdmr.reserved)
        assert all(tdmr.base <= s and e <= tdmr.end for s, e in areas)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(areas))
        holes = _minus(tdmr.base, tdmr.end, [(e.start, e.end) for e in memlist])
        pamt = [(max(s, tdmr.base), min(e, tdmr.end)) for s, e in chunks]
        # reserved = holes + PAMT bytes, exactly: no hole or PAMT byte left out, no other memory
        assert _merge(areas) == _merge(holes + pamt)
    assert result.pamt_kb == sum(t.pamt_size for t in tdmrs) // 1024


# --- the plain reference: v6.8's loops, written out without the engine's speed-ups ------------

def _reference_alloc_fails(memlist, sysinfo, placement, tdmrs):
    """True if the plain reference's allocator fails for some TDMR of this list."""
    return reference_construct(memlist, sysinfo, placement).error.errno == -ENOMEM


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cases())
def test_engine_agrees_with_plain_reference(case):
    """TDMRs, PAMTs, reserved areas, errors, lines printed, the failing TDMR or PAMT and the
    demand per TDMR agree exactly (the reference is SAME-AS-V6.8's oracle)."""
    memlist, sysinfo, placement = case
    assert construct_tdmrs(memlist, sysinfo, placement) == reference_construct(
        memlist, sysinfo, placement)


# --- SPEC BUG: quadratic PAMT node look-up ----------------------------------------------------

class _CountingMemlist(tuple):
    """A memlist that counts the full passes made over it (each `iter()` is one pass)."""

    passes = 0

    def __iter__(self):
        type(self).passes += 1
        return super().__iter__()


def test_construct_scans_memlist_a_bounded_number_of_times():
    """2000 regions, 8 per 1 GiB window: 250 TDMRs. A near-linear construction walks the memlist
    a fixed number of times (fill, allocator set-up, hole look-up), not once per TDMR (which
    made 100k-region maps quadratic before tdmr_get_nid took the ends list)."""
    _CountingMemlist.passes = 0
    memlist = _CountingMemlist(
        MemRange(4 * G + (i // 8) * G + (i % 8) * 128 * M,
                 4 * G + (i // 8) * G + (i % 8) * 128 * M + 96 * M, (i // 8) % 8)
        for i in range(2000))
    _CountingMemlist.passes = 0
    result = construct_tdmrs(memlist, TdxSysinfo(max_tdmrs=300, max_reserved_per_tdmr=500))
    assert result.ok and len(result.tdmrs) == 250
    assert 1 <= _CountingMemlist.passes <= 20, _CountingMemlist.passes


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(map_cases())
def test_engine_agrees_with_plain_reference_on_boundary_cases(case):
    """The same on the map search's boundary-biased cases, boundary-seeking placement included:
    chunks across TDMR edges, regions a page from GiB boundaries, TDMRs of 8 and 16 TiB."""
    for placement in case.placements:
        assert construct_tdmrs(case.memlist, case.sysinfo, placement) == reference_construct(
            case.memlist, case.sysinfo, placement)
