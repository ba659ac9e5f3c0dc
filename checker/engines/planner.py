"""The best TDMR layout for a memory map: fewest TDMRs, then fewest reserved areas.

The kernel opens one TDMR per memory region that reaches past the previous TDMR; the TDX
architecture asks much less. The planner searches the layouts the architecture allows, so it
shows maps on which the kernel's rule fails although a valid layout exists.

The layouts searched: 1 GiB-aligned TDMRs in address order covering all memory; each TDMR's
PAMT chunk placed inside one memory piece (a region's part in a TDMR) of some TDMR, its host;
a reserved area per hole piece and per hosted chunk, as the kernel builds them (the planner
merges nothing). So a TDMR needs its holes plus the chunks it hosts, at most the limit.

Three steps, cheapest first:
1. Bounds (`_Segments`). TDMRs only meet their neighbours, so for each TDMR count K dynamic
   programming over the boundaries that matter (region edges, one inside each region) finds
   the fewest holes K TDMRs can meet, each meeting at most the limit. Every chunk needs a host,
   so K TDMRs need those holes plus K areas within K x limit: when they do not fit, K is
   impossible (proved, with no solver). Linear in the map per K.
2. Construction. The first K that passes gets the segmentation the bound came from (and the one
   where each TDMR leaves room for its own chunk); chunks are hosted at home where there is
   room, else in the nearest TDMR with room, and placed. The layout is then checked against
   every layout constraint (`invariants.layout`). When it holds, K is the fewest (step 1
   refuted every smaller count) and, when its holes meet the bound, so are its areas.
3. Z3, only where construction fails (a chunk finds no piece big enough, say): the TDMR
   constraints of `invariants.layout` asserted as they are, a host per chunk with a piece at
   least as large, and the area count per TDMR; a stage-2 placement of what it chooses, a
   choice stage 2 cannot place blocked. Its unsat answer at K proves no layout of this kind has
   K. It runs within the solver budget (Z3 resource units, its encoding charged up front), so
   a large map whose construction fails gets an honest "not proved" instead of a stall.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import z3

from checker.engines.solver import (
    DEFAULT_TIMEOUT_MS,
    SAT,
    UNKNOWN,
    UNSAT,
    Budget,
    format_range,
    hole_ranges_for,
)
from invariants.layout import (
    CONSTRAINTS_BY_ID,
    LayoutContext,
    TdmrTerms,
    Violation,
    all_of,
    any_of,
    check_layout,
    count_true,
    layout_atoms,
    layout_to_json,
    overlaps,
    pamt_size_formulas,
    t_max,
    t_min,
)
from spec.memory import SZ_1G, SZ_4K, MemRange, round_down, round_up
from spec.profiles import V6_8, Profile
from spec.sysinfo import TdxSysinfo, kernel_sysinfo
from spec.tdmr import (
    ConstructResult,
    ReservedArea,
    Tdmr,
    construct_tdmrs,
    pamt_sizes,
    tdmr_populate_rsvd_holes,
)

PLANNED_CONSTRAINTS = ("TDMR-ALIGNED", "TDMR-ORDER", "TDMR-COUNT", "TDMR-COVERS-MEMORY")
MAX_BLOCKED = 50  # stage-2 refusals tolerated per bound before giving up on it
BLOCKED = "unsat-after-blocking"  # no proof: a blocked choice may fit a cleverer placement
# A step of the bounds' dynamic programme costs about a thirtieth of a z3py operation per
# boundary (1 microsecond here), so it is charged to the solver budget at that rate.
POINTS_PER_TERM = 30


@dataclass(frozen=True)
class Plan:
    """A planned layout and how far its optimality is proved.

    `status`: "found", "infeasible" (proved: no layout within `max_tdmrs`), or "unknown".
    `fewest_tdmrs_proved`: one TDMR fewer was proved impossible; `fewest_areas_proved`: one
    reserved area fewer (with this many TDMRs) was proved impossible.
    """

    status: str
    tdmrs: tuple[Tdmr, ...] = ()
    kernel: ConstructResult | None = None
    fewest_tdmrs_proved: bool = False
    fewest_areas_proved: bool = False
    violations: tuple[Violation, ...] = ()
    duration_s: float = 0.0
    reason: str = ""
    units: int = 0  # Z3 resource units spent (encodings charged as `Budget` does)
    how: str = ""  # which step found the layout: "construction" or "solver"
    unproved: str = ""  # with a layout found: why fewer TDMRs are not ruled out

    @property
    def areas(self) -> int:
        return sum(len(t.reserved) for t in self.tdmrs)

    @property
    def max_areas(self) -> int:
        return max((len(t.reserved) for t in self.tdmrs), default=0)

    def describe(self) -> str:
        kernel = ""
        if self.kernel is not None:
            kernel = (f" (kernel: {len(self.kernel.tdmrs)} TDMRs)" if self.kernel.ok else
                      f" (kernel fails: {self.kernel.error.errno} {self.kernel.error.message})")
        if self.status != "found":
            return f"plan: {self.status}{kernel}" + (f": {self.reason}" if self.reason else "")
        areas = f"fewest areas {'proved' if self.fewest_areas_proved else 'not proved'}"
        if self.fewest_tdmrs_proved:
            lines = [f"plan: {len(self.tdmrs)} TDMRs, {self.areas} reserved areas, max "
                     f"{self.max_areas} per TDMR{kernel}; fewest TDMRs proved, {areas}"]
        else:
            lines = [f"plan: a valid layout with {len(self.tdmrs)} TDMRs, not proved fewest; "
                     f"{self.areas} reserved areas, max {self.max_areas} per TDMR{kernel}; "
                     f"{areas}" + (f" ({self.unproved})" if self.unproved else "")]
        lines += [f"  TDMR {format_range(t.base, t.end)}: {len(t.reserved)} reserved areas"
                  for t in self.tdmrs]
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, **layout_to_json(self.tdmrs),
                "tdmr_count": len(self.tdmrs), "reserved_areas": self.areas,
                "fewest_tdmrs_proved": self.fewest_tdmrs_proved,
                "fewest_areas_proved": self.fewest_areas_proved,
                "kernel_errno": None if self.kernel is None or self.kernel.ok
                else self.kernel.error.errno,
                "duration_s": round(self.duration_s, 3), "reason": self.reason,
                "text": self.describe()}


class _Segments:
    """Where K TDMRs can go, by hole count alone: dynamic programming over the boundaries that
    matter (a TDMR's holes do not change while an edge moves inside one region or one stretch
    without memory, so region edges rounded out to 1 GiB and one point inside each region suffice),
    layer by layer in K; no TDMR longer than `longest` (one whose PAMT chunk is larger than
    every memory region has nowhere to put it). For a cap on the holes one TDMR may meet, a
    layer keeps per end point the fewest holes of K TDMRs covering all memory below it;
    `fewest` is that for all memory, `bounds` a segmentation that reaches it. The holes [a, b)
    meets are the holes starting below b less those ending at or below a, so a step is a
    sliding-window minimum: linear in the points per layer."""

    INF = 1 << 62

    def __init__(self, memlist: tuple[MemRange, ...], holes, longest: int | None = None
                 ) -> None:
        self.longest = (1 << 62) if longest is None else longest  # the longest TDMR allowed
        points = set()
        for r in memlist:
            points |= {round_down(r.start, SZ_1G), round_up(r.end, SZ_1G)}
            points.update(range(round_up(r.start + 1, SZ_1G), r.end, SZ_1G))
        self.points = sorted(points)
        starts, ends = [h[0] for h in holes], [h[1] for h in holes]
        self.below = [bisect_left(starts, p) for p in self.points]  # holes starting below p
        self.done = [bisect_right(ends, p) for p in self.points]  # holes ended by p
        # open_from[i]: the first point from which [point, points[i]) holds no memory
        mem_starts = [r.start for r in memlist]
        self.open_from = []
        for i, p in enumerate(self.points):
            r = bisect_left(mem_starts, p) - 1
            if r < 0:
                self.open_from.append(0)
            elif memlist[r].end > p:
                self.open_from.append(i)
            else:
                self.open_from.append(bisect_left(self.points, memlist[r].end))
        self.first, self.last = memlist[0].start, memlist[-1].end
        self.layers: dict[int, list] = {}

    @staticmethod
    def count(memlist: tuple[MemRange, ...]) -> int:
        """At most how many boundaries the map gives (to charge the budget before building)."""
        return sum(2 + max(0, (r.end - 1) // SZ_1G - r.start // SZ_1G) for r in memlist)

    def start(self, cap: int) -> None:
        """Layer 0 for this cap: nothing covered, only below the first region."""
        self.layers[cap] = [([0 if p <= self.first else self.INF for p in self.points], None,
                             None)]

    def step(self, cap: int) -> list[int]:
        """The next layer (one TDMR more) for this cap; returns it."""
        layers = self.layers[cap]
        f = layers[-1][0]
        n, inf, done, below = len(self.points), self.INF, self.done, self.below
        # ready[i]: the best of the last layer at a point from which a TDMR may start at i
        ready, ready_from = [inf] * n, [0] * n
        window: deque[int] = deque()
        for i in range(n):
            while window and f[window[-1]] > f[i]:
                window.pop()
            window.append(i)
            while window[0] < self.open_from[i]:
                window.popleft()
            ready[i], ready_from[i] = f[window[0]], window[0]
        # out[j]: a TDMR [points[i], points[j]) after ready[i], meeting at most `cap` holes
        gain = [r - d for r, d in zip(ready, done, strict=True)]
        out, came_from = [inf] * n, [0] * n
        window.clear()
        lo = 0
        for j in range(1, n):
            while window and gain[window[-1]] > gain[j - 1]:
                window.pop()
            window.append(j - 1)
            while lo < j and (done[lo] < below[j] - cap
                               or self.points[lo] < self.points[j] - self.longest):
                lo += 1
            while window and window[0] < lo:
                window.popleft()
            if window and ready[window[0]] < inf:
                i = window[0]
                out[j], came_from[j] = below[j] + gain[i], i
        layers.append((out, came_from, ready_from))
        return out

    def fewest(self, cap: int) -> int:
        f = self.layers[cap][-1][0]
        return min((v for p, v in zip(self.points, f, strict=True) if p >= self.last),
                   default=self.INF)

    def bounds(self, cap: int) -> list[tuple[int, int]]:
        """The TDMRs (base, end) of a segmentation reaching `fewest(cap)` with this many."""
        layers = self.layers[cap]
        f = layers[-1][0]
        j = min((j for j, p in enumerate(self.points) if p >= self.last),
                key=lambda j: (f[j], j))
        out = []
        for k in range(len(layers) - 1, 0, -1):
            _, came_from, ready_from = layers[k]
            i = came_from[j]
            out.append((self.points[i], self.points[j]))
            j = ready_from[i]
        return out[::-1]

    def holes_in(self, base: int, end: int) -> int:
        i, j = bisect_left(self.points, base), bisect_left(self.points, end)
        return self.below[j] - self.done[i]


def _construct(bounds: list[tuple[int, int]], segments: _Segments, memlist: tuple[MemRange, ...],
               hole_ranges: tuple[MemRange, ...], sysinfo: TdxSysinfo, profile: Profile
               ) -> tuple[Tdmr, ...] | None:
    """Host and place every chunk for these TDMRs: at home where its TDMR has an area to spare
    and a memory piece with room, else in the nearest TDMR that has both (largest chunks
    first); None when one finds no host."""
    limit = sysinfo.max_reserved_per_tdmr
    tdmrs = [Tdmr(b, e - b, pamt_sizes=pamt_sizes(Tdmr(b, e - b), sysinfo, profile))
             for b, e in bounds]
    spare = [limit - segments.holes_in(b, e) for b, e in bounds]
    starts = [r.start for r in memlist]
    free = []
    for t in tdmrs:
        k = max(0, bisect_right(starts, t.base) - 1)
        pieces = []
        while k < len(memlist) and memlist[k].start < t.end:
            r = memlist[k]
            if r.end > t.base:
                pieces.append([max(r.start, t.base), min(r.end, t.end)])
            k += 1
        free.append(pieces)
    bases: list[int | None] = [None] * len(tdmrs)

    def place(j: int, host: int) -> bool:
        piece = max(free[host], key=_room, default=None)
        if spare[host] <= 0 or piece is None or _room(piece) < tdmrs[j].pamt_size:
            return False
        bases[j] = round_up(piece[0], SZ_4K)
        piece[0] = bases[j] + tdmrs[j].pamt_size
        spare[host] -= 1
        return True

    order = sorted(range(len(tdmrs)), key=lambda j: (-tdmrs[j].pamt_size, j))
    for j in order:  # at home first
        place(j, j)
    for j in order:
        if bases[j] is None and not any(place(j, i) for i in _nearest(j, len(tdmrs))):
            return None
    return _with_areas(tdmrs, bases, hole_ranges)


def _nearest(j: int, n: int):
    """TDMR indices by distance from j (the lower first on a tie), j itself left out."""
    for d in range(1, n):
        for i in (j - d, j + d):
            if 0 <= i < n:
                yield i


def _with_areas(tdmrs: list[Tdmr], bases: list[int], hole_ranges: tuple[MemRange, ...]
                ) -> tuple[Tdmr, ...]:
    """The TDMRs with their chunks at `bases` and their reserved areas: each hole piece, and
    each chunk's part inside (chunks sorted by base, so only near ones are looked at)."""
    placed = []
    for t, base in zip(tdmrs, bases, strict=True):
        s = t.pamt_sizes
        placed.append(Tdmr(t.base, t.size, (base, base + s[0], base + s[0] + s[1]), s))
    ends = [r.end for r in hole_ranges]
    chunks = sorted((o.pamt_base, o.pamt_end) for o in placed)
    chunk_starts = [c[0] for c in chunks]
    largest = max((e - b for b, e in chunks), default=0)
    out = []
    for t in placed:
        areas, _ = tdmr_populate_rsvd_holes(t, hole_ranges, ends)
        for start, end in chunks[bisect_left(chunk_starts, t.base - largest):
                                 bisect_left(chunk_starts, t.end)]:
            if start < t.end and end > t.base:
                lo, hi = max(start, t.base), min(end, t.end)
                areas.append(ReservedArea(lo - t.base, hi - lo, "pamt"))
        areas.sort(key=lambda a: a.offset)
        out.append(Tdmr(t.base, t.size, t.pamt_bases, t.pamt_sizes, tuple(areas)))
    return tuple(out)


class _Stage1:
    """The Z3 model for K TDMRs: bounds in GiB units, a host TDMR per chunk, area counts."""

    def __init__(self, k: int, memlist: tuple[MemRange, ...], holes, sysinfo: TdxSysinfo):
        # A context of its own: solving time then does not depend on what the process built
        # before (Z3's heuristics follow the order terms were created in).
        context = z3.Context()
        self.lo = [z3.Int(f"t{i}.base_gib", context) for i in range(k)]
        self.hi = [z3.Int(f"t{i}.end_gib", context) for i in range(k)]
        self.host = [z3.Int(f"chunk{j}.host", context) for j in range(k)]
        self.solver = z3.Solver(ctx=context)
        add = self.solver.add
        terms = [TdmrTerms(lo * SZ_1G, (hi - lo) * SZ_1G, (0, 0, 0), (0, 0, 0), ())
                 for lo, hi in zip(self.lo, self.hi, strict=True)]
        ctx = LayoutContext.of(memlist, sysinfo)
        for _, atom in layout_atoms(terms, ctx, [CONSTRAINTS_BY_ID[c]
                                                 for c in PLANNED_CONSTRAINTS]):
            add(atom.holds)
        chunk_sizes = [sum(pamt_size_formulas(t.size, sysinfo)) for t in terms]
        overlap = [[overlaps(s, e, t.base, t.end) for s, e in holes] for t in terms]
        self.holes = []
        for i, row in enumerate(overlap):
            holes_here = count_true(row)
            hosted = count_true([h == i for h in self.host])
            self.holes.append(holes_here)
            add(holes_here + hosted <= sysinfo.max_reserved_per_tdmr)
        for host, size in zip(self.host, chunk_sizes, strict=True):
            add(host >= 0, host < k)
            add(any_of(all_of((host == i, _has_piece_at_least(t, memlist, size)))
                       for i, t in enumerate(terms)))
        self.total_holes = z3.Sum(self.holes)

    @staticmethod
    def terms(k: int, memlist: tuple[MemRange, ...], holes) -> int:
        """About how many z3py operations the model takes to build (for `Budget.charge`):
        coverage is regions x (K + 1) x K, the hole counts K x holes, the hosts K x K x
        regions."""
        regions = len(memlist)
        return 3 * regions * (k + 1) * k + 4 * k * len(holes) + 6 * k * k * regions + 20 * k


def _has_piece_at_least(t: TdmrTerms, memlist: tuple[MemRange, ...], size) -> z3.BoolRef:
    return any_of(t_min(r.end, t.end) - t_max(r.start, t.base) >= size for r in memlist)


def _place_chunks(tdmrs: list[Tdmr], hosts: list[int], memlist: tuple[MemRange, ...]
                  ) -> list[int] | None:
    """Stage 2: 4 KiB-aligned chunk bases inside memory pieces of each host TDMR, largest chunk
    first into the piece with the most room left; None when they do not fit."""
    free: dict[int, list[list[int]]] = {}
    for i, t in enumerate(tdmrs):
        free[i] = [[max(r.start, t.base), min(r.end, t.end)] for r in memlist
                   if r.start < t.end and r.end > t.base]
    bases = [0] * len(tdmrs)
    for j in sorted(range(len(tdmrs)), key=lambda j: (-tdmrs[j].pamt_size, j)):
        pieces = free[hosts[j]]
        piece = max(pieces, key=_room, default=None)
        if piece is None or _room(piece) < tdmrs[j].pamt_size:
            return None
        bases[j] = round_up(piece[0], SZ_4K)
        piece[0] = bases[j] + tdmrs[j].pamt_size
    return bases


def _room(piece: list[int]) -> int:
    return piece[1] - round_up(piece[0], SZ_4K)


def _build_layout(model: z3.ModelRef, stage: _Stage1, memlist: tuple[MemRange, ...],
                  hole_ranges: tuple[MemRange, ...], sysinfo: TdxSysinfo,
                  profile: Profile) -> tuple[Tdmr, ...] | None:
    bounds = [(model.eval(lo).as_long() * SZ_1G, model.eval(hi).as_long() * SZ_1G)
              for lo, hi in zip(stage.lo, stage.hi, strict=True)]
    tdmrs = [Tdmr(b, e - b, pamt_sizes=pamt_sizes(Tdmr(b, e - b), sysinfo, profile))
             for b, e in bounds]
    hosts = [model.eval(h).as_long() for h in stage.host]
    bases = _place_chunks(tdmrs, hosts, memlist)
    if bases is None:
        return None
    return _with_areas(tdmrs, bases, hole_ranges)


def hole_lower_bound(k: int, memlist: tuple[MemRange, ...], holes) -> int | None:
    """The fewest holes any k TDMRs covering all memory can meet, limits and PAMTs ignored
    (a relaxation: a plan that reaches it has the fewest areas for k TDMRs); None when no k
    TDMRs cover the memory."""
    segments = _Segments(tuple(memlist), holes)
    segments.start(segments.INF)
    for _ in range(k):
        segments.step(segments.INF)
    fewest = segments.fewest(segments.INF)
    return None if fewest >= segments.INF else fewest


def _block(stage: _Stage1, model: z3.ModelRef) -> z3.BoolRef:
    chosen = [*stage.lo, *stage.hi, *stage.host]
    return z3.Or([v != model.eval(v) for v in chosen])


def plan_layout(memlist: Sequence[MemRange], sysinfo: TdxSysinfo = TdxSysinfo(),
                cmrs: Sequence[MemRange] = (), profile: Profile = V6_8,
                timeout_ms: int = DEFAULT_TIMEOUT_MS, budget: Budget | None = None,
                construct: bool = True) -> Plan:
    """The layout with the fewest TDMRs, then the fewest reserved areas, for TDX memory
    `memlist` (after `build_tdx_memlist`); holes from `cmrs` when the profile says so
    ("with CMR knowledge"), else from the memory list. `budget` (default: `timeout_ms` worth
    of Z3 resource units) pays for the solver; `construct=False` leaves step 2 out (the
    solver decides every count the bounds do not refute: the slow way, for tests)."""
    started = time.monotonic()
    budget = budget or Budget(timeout_ms)
    memlist = tuple(memlist)
    sysinfo = kernel_sysinfo(sysinfo, profile)  # what the layout invariants judge the plan by
    hole_ranges = hole_ranges_for(profile, memlist, cmrs)
    holes = LayoutContext.of(memlist, sysinfo, hole_ranges).holes
    kernel = construct_tdmrs(memlist, sysinfo, cmrs=tuple(cmrs), profile=profile)
    limit = sysinfo.max_reserved_per_tdmr

    def finish(status, tdmrs=(), fewest_k=False, fewest_a=False, reason="", how="", found=None):
        if found is None:
            found = check_layout(tdmrs, memlist, sysinfo, hole_ranges) if tdmrs else []
        return Plan(status, tuple(tdmrs), kernel, fewest_k, fewest_a, tuple(found),
                    time.monotonic() - started, "" if tdmrs else reason, budget.used, how,
                    reason if tdmrs else "")

    caps = sorted({max(limit, -1), max(limit - 1, -1)}, reverse=True)
    if not budget.charge(_Segments.count(memlist) // POINTS_PER_TERM, "the boundaries"):
        return finish(UNKNOWN, reason=f"not searched: {budget.cut}")
    segments = _Segments(memlist, holes, _longest_tdmr(memlist, sysinfo, profile))
    for cap in caps:
        segments.start(cap)
    k_floor_proved, unproved = True, ""
    for k in range(1, sysinfo.max_tdmrs + 1):
        if not budget.charge(len(caps) * len(segments.points) // POINTS_PER_TERM,
                             f"the bounds for {k} TDMRs"):
            return finish(UNKNOWN, reason=unproved or f"stopped at {k} TDMRs: {budget.cut}")
        if all(v >= segments.INF for v in segments.step(caps[0])):
            # no k TDMRs within the cap cover the memory, so none with more do either
            return finish("infeasible" if k_floor_proved else UNKNOWN, reason=_none_within(
                sysinfo) if k_floor_proved else f"no layout found ({unproved})")
        for cap in caps[1:]:
            segments.step(cap)
        fewest = segments.fewest(caps[0])
        if fewest >= segments.INF or fewest + k > k * limit:
            continue  # proved: the holes k TDMRs must meet and k chunks do not fit
        if construct:
            for cap in caps:
                if segments.fewest(cap) >= segments.INF:
                    continue
                layout = _construct(segments.bounds(cap), segments, memlist, hole_ranges,
                                    sysinfo, profile)
                if layout is None or check_layout(layout, memlist, sysinfo, hole_ranges):
                    continue  # (a layout the constraints refuse is never shown as a plan)
                areas_floor = sum(len(t.reserved) for t in layout) - k == fewest
                return finish("found", layout, k_floor_proved, areas_floor,
                              "" if k_floor_proved else unproved, "construction", [])
        best, answer = _solve_count(k, memlist, holes, hole_ranges, sysinfo, profile, budget,
                                    fewest)
        if best is not None:
            layout, fewest_a = best
            return finish("found", layout, k_floor_proved, fewest_a,
                          "" if k_floor_proved else unproved, "solver")
        if answer != UNSAT:
            k_floor_proved = False
            why = ("the PAMT chunks had no room in what the solver chose, again and again "
                   "(no proof)" if answer == BLOCKED else budget.cut or "no answer")
            unproved = unproved or f"{k} TDMRs not decided: {why}"
    if not k_floor_proved:
        return finish(UNKNOWN, reason=unproved)
    return finish("infeasible", reason=_none_within(sysinfo))


def _longest_tdmr(memlist: tuple[MemRange, ...], sysinfo: TdxSysinfo, profile: Profile
                  ) -> int | None:
    """The longest TDMR whose PAMT chunk fits in the largest memory region (a chunk lies in one
    region); None when chunk sizes do not grow with the TDMR (a profile whose entry count
    wraps), where no such bound holds."""
    if profile.pamt_entry_count_bits is not None:
        return None
    largest = max(r.size for r in memlist)
    lo, hi = 0, 1 << 22  # in GiB: every TDMR lies below 2^52

    def fits(gib: int) -> bool:
        return sum(pamt_sizes(Tdmr(0, gib * SZ_1G), sysinfo, profile)) <= largest
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo * SZ_1G


def _none_within(sysinfo: TdxSysinfo) -> str:
    return (f"no layout within {sysinfo.max_tdmrs} TDMRs and {sysinfo.max_reserved_per_tdmr} "
            "reserved areas per TDMR")


def _solve_count(k: int, memlist, holes, hole_ranges, sysinfo, profile, budget: Budget,
                 floor: int) -> tuple[tuple[tuple[Tdmr, ...], bool] | None, str]:
    """Z3 on K TDMRs: a layout and whether its areas are proved fewest (tightening the hole
    total step by step down to `floor`), or None and the answer (unsat: proved impossible)."""
    if not budget.charge(_Stage1.terms(k, memlist, holes), f"the solver's model of {k} TDMRs"):
        return None, UNKNOWN
    stage = _Stage1(k, memlist, holes, sysinfo)
    best, answer = _search(stage, memlist, hole_ranges, sysinfo, profile, budget)
    if best is None:
        return None, answer
    total = sum(len(t.reserved) for t in best)
    fewest_areas = True
    while total - k > floor:  # tighten the hole total step by step
        stage.solver.push()
        stage.solver.add(stage.total_holes <= total - k - 1)
        better, answer = _search(stage, memlist, hole_ranges, sysinfo, profile, budget)
        stage.solver.pop()
        if better is None:
            fewest_areas = answer == UNSAT
            break
        best, total = better, sum(len(t.reserved) for t in better)
    return (best, fewest_areas), SAT


def _search(stage: _Stage1, memlist, hole_ranges, sysinfo, profile, budget: Budget
            ) -> tuple[tuple[Tdmr, ...] | None, str]:
    """Stage 1 then stage 2, blocking stage-1 choices that stage 2 cannot place."""
    stage.solver.push()
    try:
        for blocked in range(MAX_BLOCKED):
            answer = budget.check(stage.solver)
            if answer == UNSAT and blocked:
                return None, BLOCKED
            if answer != SAT:
                return None, answer
            model = stage.solver.model()
            layout = _build_layout(model, stage, memlist, hole_ranges, sysinfo, profile)
            if layout is not None:
                return layout, SAT
            stage.solver.add(_block(stage, model))
        return None, UNKNOWN
    finally:
        stage.solver.pop()
