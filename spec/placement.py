"""Where each PAMT chunk lands: the choice the kernel leaves to `alloc_contig_pages()`.

The kernel asks for one physically contiguous chunk per TDMR on a preferred node and takes what
the page allocator returns. The model makes that an input: a placement policy hands out the
chunk base. Policies model an idle machine (only earlier PAMT chunks are taken); symbolic
engines substitute their own choice through `ExplicitPlacement`, and the map search steers
chunks towards addresses of its choosing through `NearestPlacement`.

Every policy follows the allocator's rules: a chunk lies inside one memory entry and one zone
(entries are split at 4 GiB), clear of earlier chunks, at a multiple of its own size. The one
exception is `NearestPlacement` anchoring chunks by their end: `alloc_contig_pages` steps through
a zone in chunk-size strides from the zone's first aligned page, so on a zone that starts off
such a multiple any page may be a chunk base. A size of zero or less (a degenerate TDMR of a
broken model) gets nothing, as NULL from `alloc_contig_pages`.
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Mapping
from dataclasses import dataclass, field

from spec.memory import SZ_4G, SZ_4K, MemRange, round_down, round_up


class PamtAllocator:
    """One TDMR construction's allocator state; `alloc` returns a chunk base or None (-ENOMEM).
    A chunk of no size gets None before any policy sees it."""

    def alloc(self, index: int, size: int, nid: int) -> int | None:
        if size <= 0:
            return None
        return self._alloc(index, size, nid)

    def _alloc(self, index: int, size: int, nid: int) -> int | None:
        raise NotImplementedError


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int


class _MaxTree:
    """A segment tree of per-piece free-space bounds: finds the next piece worth trying in
    O(log n), which keeps allocation near-linear on maps with 100k regions."""

    def __init__(self, values: list[int]) -> None:
        self.n = max(1, len(values))
        self.size = 1
        while self.size < self.n:
            self.size *= 2
        self.tree = [0] * (2 * self.size)
        self.tree[self.size:self.size + len(values)] = values
        for i in range(self.size - 1, 0, -1):
            self.tree[i] = max(self.tree[2 * i], self.tree[2 * i + 1])

    def set(self, i: int, value: int) -> None:
        i += self.size
        self.tree[i] = value
        while i > 1:
            i //= 2
            self.tree[i] = max(self.tree[2 * i], self.tree[2 * i + 1])

    def first_at_least(self, lo: int, hi: int, need: int) -> int | None:
        """Smallest index in [lo, hi) whose value is >= need."""
        return self._search(1, 0, self.size, lo, hi, need, forward=True)

    def last_at_least(self, lo: int, hi: int, need: int) -> int | None:
        """Largest index in [lo, hi) whose value is >= need."""
        return self._search(1, 0, self.size, lo, hi, need, forward=False)

    def _search(self, node, left, right, lo, hi, need, forward):
        if right <= lo or hi <= left or self.tree[node] < need:
            return None
        if right - left == 1:
            return left
        mid = (left + right) // 2
        halves = ((2 * node, left, mid), (2 * node + 1, mid, right))
        for child, a, b in (halves if forward else halves[::-1]):
            found = self._search(child, a, b, lo, hi, need, forward)
            if found is not None:
                return found
        return None


def _zone_pieces(memlist: tuple[MemRange, ...]) -> dict[tuple[int, int], list[_Piece]]:
    """The memory entries split at 4 GiB and grouped by (node, zone): zone 0 is the part above
    (ZONE_NORMAL), zone 1 the part below (ZONE_DMA32). A chunk never crosses a zone."""
    groups: dict[tuple[int, int], list[_Piece]] = {}
    for entry in memlist:
        for lo, hi, zone in ((max(entry.start, SZ_4G), entry.end, 0),
                             (entry.start, min(entry.end, SZ_4G), 1)):
            if lo < hi:
                groups.setdefault((entry.nid, zone), []).append(_Piece(lo, hi))
    return groups


class _ZoneAllocator(PamtAllocator):
    """`alloc_contig_pages` on an idle machine.

    Zones are searched preferred node first (its memory above 4 GiB, then below), then the other
    nodes in ascending id. Inside a zone the candidates are the multiples of the chunk size;
    the first (or, for last-fit, the last) that lies inside one memory entry and clear of the
    chunks already handed out wins.
    """

    def __init__(self, memlist: tuple[MemRange, ...], last_fit: bool) -> None:
        self.last_fit = last_fit
        groups = _zone_pieces(memlist)
        self.pieces: list[_Piece] = []
        self.zone_ranges: dict[tuple[int, int], tuple[int, int]] = {}
        for key in sorted(groups):
            first = len(self.pieces)
            self.pieces.extend(sorted(groups[key], key=lambda p: p.start))
            self.zone_ranges[key] = (first, len(self.pieces))
        self.nodes = sorted({nid for nid, _ in groups})
        self.taken: list[list[tuple[int, int]]] = [[] for _ in self.pieces]
        self.free = _MaxTree([p.end - p.start for p in self.pieces])

    def _alloc(self, index: int, size: int, nid: int) -> int | None:
        order = [nid] + [n for n in self.nodes if n != nid]
        for node in order:
            for zone in (0, 1):
                lo_hi = self.zone_ranges.get((node, zone))
                if lo_hi and (base := self._alloc_in(lo_hi, size)) is not None:
                    return base
        return None

    def _alloc_in(self, lo_hi: tuple[int, int], size: int) -> int | None:
        lo, hi = lo_hi
        while lo < hi:
            if self.last_fit:
                i = self.free.last_at_least(lo, hi, size)
            else:
                i = self.free.first_at_least(lo, hi, size)
            if i is None:
                return None
            base = self._fit(i, size)
            if base is not None:
                insort(self.taken[i], (base, base + size))
                self.free.set(i, self._largest_gap(i))
                return base
            if self.last_fit:
                hi = i
            else:
                lo = i + 1
        return None

    def _fit(self, i: int, size: int) -> int | None:
        """The first (last) multiple of `size` in piece i that fits clear of taken chunks."""
        piece, taken = self.pieces[i], self.taken[i]
        if self.last_fit:
            cand = round_down(piece.end - size, size)
            for t_start, t_end in reversed(taken):
                if cand < piece.start:
                    return None
                if cand >= t_end:
                    return cand
                if cand + size > t_start:
                    cand = round_down(t_start - size, size)
            return cand if cand >= piece.start else None
        cand = round_up(piece.start, size)
        for t_start, t_end in taken:
            if cand + size > piece.end:
                return None
            if cand + size <= t_start:
                return cand
            if cand < t_end:
                cand = round_up(t_end, size)
        return cand if cand + size <= piece.end else None

    def _largest_gap(self, i: int) -> int:
        piece, prev, best = self.pieces[i], self.pieces[i].start, 0
        for t_start, t_end in self.taken[i]:
            best = max(best, t_start - prev)
            prev = t_end
        return max(best, piece.end - prev)


class _ExplicitAllocator(PamtAllocator):
    def __init__(self, bases: Mapping[int, int]) -> None:
        self.bases = bases

    def _alloc(self, index: int, size: int, nid: int) -> int | None:
        return self.bases.get(index)


class _NearestAllocator(PamtAllocator):
    """Each chunk at the legal candidate nearest its TDMR's target, whatever the node: the
    allocator may fall back to any node, so any such candidate is one it may return. A chunk
    anchored by its end takes the page-aligned base that ends it nearest the target."""

    def __init__(self, memlist: tuple[MemRange, ...], targets: tuple[int, ...],
                 by_end: bool) -> None:
        self.targets, self.by_end = targets, by_end
        self.pieces = sorted((p for ps in _zone_pieces(memlist).values() for p in ps),
                             key=lambda p: p.start)
        self.taken: list[tuple[int, int]] = []  # chunks handed out, sorted

    def _alloc(self, index: int, size: int, nid: int) -> int | None:
        target = self.targets[index] if index < len(self.targets) else 0
        step, anchor = (SZ_4K, size) if self.by_end else (size, 0)
        best = None
        for lo, hi in self._free_ranges():
            first, last = round_up(lo, step), round_down(hi - size, step)
            if first > last:
                continue
            near = min(max(round_down(target - anchor, step), first), last)
            for cand in (near, min(near + step, last)):
                if best is None or ((abs(cand + anchor - target), cand)
                                    < (abs(best + anchor - target), best)):
                    best = cand
        if best is not None:
            insort(self.taken, (best, best + size))
        return best

    def _free_ranges(self):
        """The parts of every piece that no chunk handed out so far covers."""
        for piece in self.pieces:
            prev = piece.start
            for t_start, t_end in self.taken:
                if t_end <= prev or t_start >= piece.end:
                    continue
                if t_start > prev:
                    yield prev, t_start
                prev = max(prev, t_end)
            if prev < piece.end:
                yield prev, piece.end


@dataclass(frozen=True)
class FirstFit:
    """Lowest candidate on the preferred node (above 4 GiB first), as an idle machine gives."""

    name: str = "first-fit"

    def allocator(self, memlist: tuple[MemRange, ...]) -> PamtAllocator:
        return _ZoneAllocator(memlist, last_fit=False)


@dataclass(frozen=True)
class LastFit:
    """Highest candidate on the preferred node: the other end of what an allocator may return."""

    name: str = "last-fit"

    def allocator(self, memlist: tuple[MemRange, ...]) -> PamtAllocator:
        return _ZoneAllocator(memlist, last_fit=True)


@dataclass(frozen=True)
class ExplicitPlacement:
    """Chunk bases given per TDMR index (a witness from the solver, or a what-if by hand).

    A TDMR without a base fails allocation (-ENOMEM), as `alloc_contig_pages` returning NULL.
    """

    bases: Mapping[int, int] = field(default_factory=dict)
    name: str = "explicit"

    def allocator(self, memlist: tuple[MemRange, ...]) -> PamtAllocator:
        return _ExplicitAllocator(self.bases)


@dataclass(frozen=True)
class NearestPlacement:
    """Chunk i at the legal candidate nearest `targets[i]` (address 0 past the end of the
    list), or with `by_end` the one ending nearest it: a search puts targets next to TDMR
    boundaries to make chunks straddle them, or end right at one."""

    targets: tuple[int, ...] = ()
    by_end: bool = False
    name: str = "nearest"

    def allocator(self, memlist: tuple[MemRange, ...]) -> PamtAllocator:
        return _NearestAllocator(memlist, self.targets, self.by_end)


PLACEMENTS = {"first-fit": FirstFit(), "last-fit": LastFit()}
