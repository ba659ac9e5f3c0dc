"""The TDX memory snapshot (`build_tdx_memlist`) and the hotplug notifier (`tdx_memory_notifier`).

Expected values come from kernel-behaviour.md section 2, computed by hand in each test.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from spec.memory import (
    SZ_1G,
    SZ_1M,
    SZ_4K,
    MemRange,
    build_tdx_memlist,
    tdx_memory_notifier,
)
from tests.strategies import memory_maps, raw_regions

G = SZ_1G


# --- build_tdx_memlist ---------------------------------------------------------------------

def test_memlist_clips_below_1m_and_drops_what_becomes_empty():
    """Below 1 MiB is clipped; a region entirely below 1 MiB (or ending at it) disappears."""
    regions = [
        MemRange(0x0, 0x9F000, 0),           # [0, 636K): max(0, 1M) = 1M >= 0x9f000: dropped
        MemRange(0xC0000, 0x100000, 0),       # ends exactly at 1M: [1M, 1M) empty: dropped
        MemRange(0xF0000, 0x200000, 1),       # crosses 1M: [1M, 2M) kept, node kept
    ]
    assert build_tdx_memlist(regions) == (MemRange(0x100000, 0x200000, 1),)


def test_memlist_rounds_to_pages_and_drops_sub_page_regions():
    """Start rounds up, end rounds down to 4 KiB; a region holding no whole page is dropped."""
    regions = [
        MemRange(0x100001, 0x200FFF, 0),  # start -> 0x101000, end -> 0x200000
        MemRange(0x300001, 0x300FFF, 0),  # start -> 0x301000 > end -> 0x300000: dropped
        MemRange(0x400800, 0x401800, 0),  # start -> 0x401000 = end -> 0x401000: dropped
    ]
    assert build_tdx_memlist(regions) == (MemRange(0x101000, 0x200000, 0),)


def test_memlist_never_merges_touching_regions():
    """Touching regions stay separate entries, whether their nodes differ or not."""
    regions = [MemRange(SZ_1M, G, 0), MemRange(G, 2 * G, 1), MemRange(2 * G, 3 * G, 1)]
    assert build_tdx_memlist(regions) == tuple(regions)


def test_memlist_is_in_ascending_order():
    """The snapshot is ordered by address whatever the order the regions come in."""
    regions = [MemRange(4 * G, 5 * G, 1), MemRange(SZ_1M, G, 0)]
    assert build_tdx_memlist(regions) == (MemRange(SZ_1M, G, 0), MemRange(4 * G, 5 * G, 1))


def _whole_pages_above_1m(region: MemRange) -> tuple[int, int] | None:
    """The page-aligned part of a region at or above 1 MiB, computed page by page bound."""
    first_page = (region.start + SZ_4K - 1) // SZ_4K
    end_page = region.end // SZ_4K
    first_page = max(first_page, SZ_1M // SZ_4K)
    return (first_page * SZ_4K, end_page * SZ_4K) if first_page < end_page else None


@settings(max_examples=200, deadline=None)
@given(raw_regions())
def test_memlist_property(regions):
    """One entry per region that holds a whole page above 1 MiB, in order, same node."""
    memlist = build_tdx_memlist(regions)
    expected = [(r, p) for r in regions if (p := _whole_pages_above_1m(r)) is not None]
    assert len(memlist) == len(expected)
    for entry, (region, (start, end)) in zip(memlist, expected, strict=True):
        assert (entry.start, entry.end, entry.nid) == (start, end, region.nid)
        assert entry.start % SZ_4K == 0 and entry.end % SZ_4K == 0
        assert SZ_1M <= entry.start < entry.end
    assert all(a.end <= b.start for a, b in pairwise(memlist))


# --- tdx_memory_notifier -------------------------------------------------------------------

SNAPSHOT = (MemRange(SZ_1M, 2 * G, 0), MemRange(2 * G, 3 * G, 1), MemRange(4 * G, 6 * G, 0))


def test_notifier_allows_onlining_inside_one_entry():
    """A range inside one entry (or equal to it) may go online."""
    assert tdx_memory_notifier(SNAPSHOT, True, G, G + 128 * SZ_1M)
    assert tdx_memory_notifier(SNAPSHOT, True, 4 * G, 6 * G)


def test_notifier_rejects_range_spanning_two_adjacent_entries():
    """[2G-128M, 2G+128M) is covered by entries 0 and 1 together, by neither alone: vetoed."""
    assert not tdx_memory_notifier(SNAPSHOT, True, 2 * G - 128 * SZ_1M, 2 * G + 128 * SZ_1M)


def test_notifier_rejects_onlining_outside_or_partly_outside():
    """A hole, or a range sticking out of its entry by one page, is vetoed."""
    assert not tdx_memory_notifier(SNAPSHOT, True, 3 * G, 4 * G)
    assert not tdx_memory_notifier(SNAPSHOT, True, 4 * G, 6 * G + SZ_4K)
    assert not tdx_memory_notifier(SNAPSHOT, True, 8 * G, 9 * G)


def test_notifier_never_vetoes_offlining():
    """Only MEM_GOING_ONLINE is vetoed: offlining a hole, or two entries, is allowed."""
    assert tdx_memory_notifier(SNAPSHOT, False, 3 * G, 4 * G)
    assert tdx_memory_notifier(SNAPSHOT, False, 2 * G - 128 * SZ_1M, 2 * G + 128 * SZ_1M)


def test_notifier_empty_snapshot_allows_everything():
    """No snapshot (TDX off, failed or initialising): onlining anything is allowed."""
    assert tdx_memory_notifier((), True, 3 * G, 4 * G)
    assert tdx_memory_notifier((), True, 0, 1 << 50)


@settings(max_examples=200, deadline=None)
@given(memory_maps(max_regions=8), st.data())
def test_notifier_property(memlist, data):
    """Onlining is allowed iff the entry holding the first page also holds the last one."""
    memlist = tuple(memlist)
    lo, hi = memlist[0].start - G, memlist[-1].end + G
    start = data.draw(st.integers(lo // SZ_4K, hi // SZ_4K - 1)) * SZ_4K
    end = data.draw(st.integers(start // SZ_4K + 1, hi // SZ_4K)) * SZ_4K
    holder = [e for e in memlist if e.start <= start < e.end]
    expected = bool(holder) and holder[0].end >= end
    assert tdx_memory_notifier(memlist, True, start, end) is expected
    assert tdx_memory_notifier(memlist, False, start, end) is True
