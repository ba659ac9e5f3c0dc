"""v6.8's TDMR construction read plainly: the oracle SAME-AS-V6.8 measures every profile against,
the v6.8 model itself included.

`spec.tdmr` builds the TDMR list with ordered look-ups, a segment tree and early exits so that
maps of 100k regions build in near-linear time; that speed is where a slip hides. This module
walks kernel-behaviour.md section 3 with nothing but full scans over small lists, so that a
change to `spec/tdmr.py` or `spec/placement.py` that alters what v6.8 builds, prints or blames
shows up as a difference on some searched map. It is meant for the small maps a search draws,
not for 100k-region machines. Only the v6.8 rules live here; what a profile switches is judged
by comparing against them (`invariants.machine.differs_from_v6_8`).
"""

from __future__ import annotations

from itertools import pairwise

from spec.errno import ENOMEM, ENOSPC, KernelError
from spec.memory import MemRange
from spec.placement import ExplicitPlacement, LastFit, NearestPlacement
from spec.sysinfo import TdxSysinfo
from spec.tdmr import AreaDemand, ConstructResult, ReservedArea, Tdmr

GIB = 1 << 30
FOUR_GIB = 1 << 32
PAGE = 1 << 12
TDMRS_LEFT_WARNING = 4


def _down(value: int, to: int) -> int:
    return value - value % to


def _up(value: int, to: int) -> int:
    return -(-value // to) * to


def _clash(chunks: list[tuple[int, int]], lo: int, hi: int) -> tuple[int, int] | None:
    """A chunk handed out earlier that [lo, hi) overlaps, if any."""
    return next(((s, e) for s, e in chunks if s < hi and lo < e), None)


def _pieces(memlist: tuple[MemRange, ...], nid: int | None, above_4g: bool | None
            ) -> list[tuple[int, int]]:
    """The memory of a node (any node when None) in one zone (both when None): an allocation
    never crosses 4 GiB, so every entry reaching across it is two pieces."""
    out = []
    for entry in memlist:
        if nid is not None and entry.nid != nid:
            continue
        for above in (True, False):
            if above_4g is not None and above != above_4g:
                continue
            lo = max(entry.start, FOUR_GIB) if above else entry.start
            hi = entry.end if above else min(entry.end, FOUR_GIB)
            if lo < hi:
                out.append((lo, hi))
    return sorted(out)


def _zone_alloc(memlist, chunks, size, nid, last_fit) -> int | None:
    """An idle machine's `alloc_contig_pages`: the preferred node above 4 GiB, below it, then
    the other nodes in ascending id; the lowest (highest) multiple of `size` inside one piece
    and clear of every chunk handed out so far."""
    for node in [nid] + sorted({e.nid for e in memlist} - {nid}):
        for above in (True, False):
            pieces = _pieces(memlist, node, above)
            for lo, hi in (reversed(pieces) if last_fit else pieces):
                candidate = _down(hi - size, size) if last_fit else _up(lo, size)
                while lo <= candidate and candidate + size <= hi:
                    taken = _clash(chunks, candidate, candidate + size)
                    if taken is None:
                        return candidate
                    # the next multiple past the chunk in the way
                    candidate = (_down(taken[0] - size, size) if last_fit
                                 else _up(taken[1], size))
    return None


def _nearest_alloc(memlist, chunks, size, target, by_end) -> int | None:
    """The legal candidate nearest `target` on any node (ties to the lower address): for each
    free stretch of a piece, the multiples of `size` on either side of the target; `by_end`:
    the page-aligned bases whose chunk ends on either side of it."""
    step, anchor = (PAGE, size) if by_end else (size, 0)
    best = None
    for lo, hi in _pieces(memlist, None, None):
        edges = sorted({lo, hi} | {e for c in chunks for e in c if lo < e < hi})
        for a, b in pairwise(edges):
            if _clash(chunks, a, b) is not None:
                continue
            first, last = _up(a, step), _down(b - size, step)
            if first > last:
                continue
            near = min(max(_down(target - anchor, step), first), last)
            for candidate in (near, min(near + step, last)):
                key = (abs(candidate + anchor - target), candidate)
                if best is None or key < (abs(best + anchor - target), best):
                    best = candidate
    return best


def allocate(placement, memlist, chunks, index, size, nid) -> int | None:
    """The base an idle machine's allocator gives chunk `index` under `placement`, with
    `chunks` (start, end) handed out before (None: -ENOMEM)."""
    if size <= 0:
        return None
    if isinstance(placement, ExplicitPlacement):
        return placement.bases.get(index)
    if isinstance(placement, NearestPlacement):
        targets = placement.targets
        return _nearest_alloc(memlist, chunks, size,
                              targets[index] if index < len(targets) else 0, placement.by_end)
    return _zone_alloc(memlist, chunks, size, nid, isinstance(placement, LastFit))


def _holes(base: int, end: int, memlist: tuple[MemRange, ...]) -> list[tuple[int, int]]:
    """(start, end) of each stretch of [base, end) that no memory entry covers."""
    holes, covered_to = [], base
    for entry in memlist:
        if entry.start >= end:
            break
        if entry.end < base:
            continue
        if entry.start > covered_to:
            holes.append((covered_to, entry.start))
        covered_to = max(covered_to, entry.end)
    if covered_to < end:
        holes.append((covered_to, end))
    return holes


def reference_construct(memlist: tuple[MemRange, ...], sysinfo: TdxSysinfo, placement
                        ) -> ConstructResult:
    """What v6.8's `construct_tdmrs` hands back on this map and placement, with the lines it
    prints, the failing TDMR or PAMT, and every TDMR's reserved-area demand."""
    if not memlist:
        raise ValueError("no TDX memory: the model needs at least one region above 1 MiB")
    lines: list[str] = []
    # fill_out_tdmrs: one TDMR per region reaching past the previous TDMR, on GiB boundaries
    spans: list[tuple[int, int]] = []
    for entry in memlist:
        start, end = _down(entry.start, GIB), _up(entry.end, GIB)
        if spans and end <= spans[-1][1]:
            continue
        if spans:
            start = max(start, spans[-1][1])
            if len(spans) == sysinfo.max_tdmrs:
                lines.append("initialization failed: TDMRs exhausted.")
                return ConstructResult((), KernelError(-ENOSPC, lines[-1]), tuple(lines))
        spans.append((start, end))
    if sysinfo.max_tdmrs - len(spans) < TDMRS_LEFT_WARNING:
        lines.append(f"consumed TDMRs reaching limit: {len(spans)} used out of "
                     f"{sysinfo.max_tdmrs}")
    # tdmrs_set_up_pamt_all: the 4K, 2M and 1G PAMTs in one chunk on the TDMR's node
    chunks: list[tuple[int, int]] = []
    tdmrs: list[Tdmr] = []
    for index, (start, end) in enumerate(spans):
        sizes = tuple(_up(((end - start) >> shift) * entry_size, PAGE)
                      for shift, entry_size in zip((12, 21, 30), sysinfo.pamt_entry_size,
                                                   strict=True))
        nodes = [e.nid for e in memlist if e.end > start]
        if not nodes:
            lines.append(f"TDMR [0x{start:x}, 0x{end:x}): unable to find local NUMA node for "
                         "PAMT allocation, fallback to use node 0.")
        base = allocate(placement, memlist, chunks, index, sum(sizes),
                        nodes[0] if nodes else 0)
        if base is None:
            bare = tuple(Tdmr(s, e - s) for s, e in spans)
            return ConstructResult(bare, KernelError(-ENOMEM), tuple(lines), failed_pamt=index)
        chunks.append((base, base + sum(sizes)))
        tdmrs.append(Tdmr(start, end - start, (base, base + sizes[0], base + sizes[0] + sizes[1]),
                          sizes))
    # tdmrs_populate_rsvd_areas_all: holes, then every chunk's part inside, sorted by offset
    built, demands, failed = [], [], None
    for index, tdmr in enumerate(tdmrs):
        start, end = tdmr.base, tdmr.base + tdmr.size
        holes = _holes(start, end, memlist)
        areas = [ReservedArea(lo - start, hi - lo) for lo, hi in holes]
        owners = [j for j, (lo, hi) in enumerate(chunks) if lo < end and hi > start]
        areas += [ReservedArea(max(chunks[j][0], start) - start,
                               min(chunks[j][1], end) - max(chunks[j][0], start), "pamt")
                  for j in owners]
        areas.sort(key=lambda a: a.offset)
        leading = sum(1 for lo, _ in holes if lo == start)
        trailing = sum(1 for lo, hi in holes if hi == end and lo != start)
        demands.append(AreaDemand(leading, len(holes) - leading - trailing, trailing,
                                  owners.count(index), len(owners) - owners.count(index)))
        if failed is None and len(areas) > sysinfo.max_reserved_per_tdmr:
            failed = index
            lines.append(f"initialization failed: TDMR [0x{start:x}, 0x{end:x}): reserved "
                         "areas exhausted.")
        built.append(Tdmr(tdmr.base, tdmr.size, tdmr.pamt_bases, tdmr.pamt_sizes, tuple(areas)))
    error = None if failed is None else KernelError(-ENOSPC, lines[-1])
    return ConstructResult(tuple(built), error, tuple(lines), failed, tuple(demands))
