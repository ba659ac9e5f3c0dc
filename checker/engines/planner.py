"""The best TDMR layout for a memory map: fewest TDMRs, then fewest reserved areas.

The kernel opens one TDMR per memory region that reaches past the previous TDMR; the TDX
architecture asks much less. The planner searches the layouts the architecture allows, so it
shows maps on which the kernel's rule fails although a valid layout exists.

Two stages. Stage 1 (Z3) chooses TDMR bounds and, for each TDMR's PAMT chunk, the TDMR that
hosts it, under the TDMR constraints of `invariants.layout` (asserted as they are) and a count of
reserved areas per TDMR: one per hole piece and one per hosted chunk, as the kernel builds them
(the planner merges nothing). A chunk's host must hold a memory piece at least as large as the
chunk. Stage 2 places the chunks concretely (4 KiB aligned, inside one memory piece of the host)
and builds the areas; the result is then checked against every layout constraint. Stage 1 is a
relaxation of stage 2, so an unsat answer at K TDMRs proves that no layout of this kind has K;
when stage 2 cannot place what stage 1 chose, that choice is blocked and the search goes on.

The count is minimised by raising K step by step, the areas by lowering a bound step by step;
no integer objectives (they do not scale to 64 regions).
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import z3

from checker.engines.solver import (
    DEFAULT_TIMEOUT_MS,
    SAT,
    UNKNOWN,
    UNSAT,
    format_range,
    hole_ranges_for,
    pamt_sizes,
    solve,
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
    pamt_size_formula,
    t_max,
    t_min,
)
from spec.memory import SZ_1G, SZ_4K, MemRange, round_down, round_up
from spec.profiles import V6_8, Profile
from spec.sysinfo import PAGE_SIZE_SHIFTS, TdxSysinfo
from spec.tdmr import (
    ConstructResult,
    ReservedArea,
    Tdmr,
    construct_tdmrs,
    tdmr_populate_rsvd_holes,
)

PLANNED_CONSTRAINTS = ("TDMR-ALIGNED", "TDMR-ORDER", "TDMR-COUNT", "TDMR-COVERS-MEMORY")
MAX_BLOCKED = 50  # stage-2 refusals tolerated per bound before giving up on it
BLOCKED = "unsat-after-blocking"  # no proof: a blocked choice may fit a cleverer placement


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
        proof = ", ".join(f"fewest {what} {'proved' if done else 'not proved'}" for what, done in
                          (("TDMRs", self.fewest_tdmrs_proved),
                           ("areas", self.fewest_areas_proved)))
        lines = [f"plan: {len(self.tdmrs)} TDMRs, {self.areas} reserved areas, max "
                 f"{self.max_areas} per TDMR{kernel}; {proof}"]
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
        chunk_sizes = [sum(pamt_size_formula(t.size, shift, entry) for shift, entry
                           in zip(PAGE_SIZE_SHIFTS, sysinfo.pamt_entry_size, strict=True))
                       for t in terms]
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
    placed = []
    for t, base in zip(tdmrs, bases, strict=True):
        s = t.pamt_sizes
        placed.append(Tdmr(t.base, t.size, (base, base + s[0], base + s[0] + s[1]), s))
    ends = [r.end for r in hole_ranges]
    out = []
    for t in placed:
        areas, _ = tdmr_populate_rsvd_holes(t, hole_ranges, ends)
        for o in placed:
            if o.pamt_base < t.end and o.pamt_end > t.base:
                start, end = max(o.pamt_base, t.base), min(o.pamt_end, t.end)
                areas.append(ReservedArea(start - t.base, end - start, "pamt"))
        areas.sort(key=lambda a: a.offset)
        out.append(Tdmr(t.base, t.size, t.pamt_bases, t.pamt_sizes, tuple(areas)))
    return tuple(out)


MAX_BOUND_WORK = 2_000_000  # TDMRs x candidate bounds squared, for the hole lower bound


def hole_lower_bound(k: int, memlist: tuple[MemRange, ...], holes) -> int | None:
    """The fewest holes any k TDMRs covering all memory can hold, limits and PAMTs ignored
    (a relaxation: a plan that reaches it has the fewest areas for k TDMRs).

    Only the hole pieces a TDMR meets count, and they do not change while a bound moves inside
    one region or inside one memory-free stretch, so one bound per region edge and one inside
    each region suffice. Dynamic programming over those points; None when there are too many.
    """
    points = set()
    for r in memlist:
        points |= {round_down(r.start, SZ_1G), round_up(r.end, SZ_1G)}
        inside = round_up(r.start + 1, SZ_1G)
        if inside < r.end:
            points.add(inside)
    points = sorted(points)
    if k * len(points) ** 2 > MAX_BOUND_WORK:
        return None
    starts = [s for s, _ in holes]
    ends = [e for _, e in holes]
    mem_ends = [r.end for r in memlist]

    def holes_in(base: int, end: int) -> int:  # hole pieces meeting [base, end)
        return bisect_left(starts, end) - bisect_right(ends, base)

    def memory_between(a: int, b: int) -> bool:
        i = bisect_right(mem_ends, a)  # the first region ending above a
        return i < len(memlist) and memlist[i].start < b

    first, last = memlist[0].start, memlist[-1].end
    inf = float("inf")
    # best[j]: fewest holes so far with all memory below points[j] covered and a TDMR ending
    # there (with 0 TDMRs: nothing covered, only before the first region).
    best = [0 if p <= first else inf for p in points]
    for _ in range(k):
        ready = [inf] * len(points)  # a next TDMR may start at points[i]
        for i, p in enumerate(points):
            ready[i] = min((best[h] for h in range(i + 1)
                            if best[h] < inf and not memory_between(points[h], p)), default=inf)
        best = [min((ready[i] + holes_in(points[i], points[j]) for i in range(j)
                     if ready[i] < inf), default=inf) for j in range(len(points))]
    total = min((best[j] for j, p in enumerate(points) if p >= last), default=inf)
    return None if total == inf else int(total)


def _block(stage: _Stage1, model: z3.ModelRef) -> z3.BoolRef:
    chosen = [*stage.lo, *stage.hi, *stage.host]
    return z3.Or([v != model.eval(v) for v in chosen])


def plan_layout(memlist: Sequence[MemRange], sysinfo: TdxSysinfo = TdxSysinfo(),
                cmrs: Sequence[MemRange] = (), profile: Profile = V6_8,
                timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Plan:
    """The layout with the fewest TDMRs, then the fewest reserved areas, for TDX memory
    `memlist` (after `build_tdx_memlist`); holes from `cmrs` when the profile says so
    ("with CMR knowledge"), else from the memory list."""
    started = time.monotonic()
    deadline = started + timeout_ms / 1000
    memlist = tuple(memlist)
    hole_ranges = hole_ranges_for(profile, memlist, cmrs)
    holes = LayoutContext.of(memlist, sysinfo, hole_ranges).holes
    kernel = construct_tdmrs(memlist, sysinfo, cmrs=tuple(cmrs), profile=profile)

    def left_ms() -> float:
        return (deadline - time.monotonic()) * 1000

    def finish(status, tdmrs=(), fewest_k=False, fewest_a=False, reason=""):
        found = check_layout(tdmrs, memlist, sysinfo, hole_ranges) if tdmrs else []
        return Plan(status, tuple(tdmrs), kernel, fewest_k, fewest_a, tuple(found),
                    time.monotonic() - started, reason)

    k_floor_proved = True
    for k in range(1, sysinfo.max_tdmrs + 1):
        stage = _Stage1(k, memlist, holes, sysinfo)
        best, answer = _search(stage, memlist, hole_ranges, sysinfo, profile, left_ms)
        if best is None:
            if answer != UNSAT:
                k_floor_proved = False
            if left_ms() <= 0:
                return finish(UNKNOWN, reason=f"timeout while trying {k} TDMRs")
            continue
        total = sum(len(t.reserved) for t in best)
        floor = hole_lower_bound(k, memlist, holes)
        fewest_areas = True
        while floor is None or total - k > floor:  # tighten the hole total step by step
            bound = total - k - 1
            stage.solver.push()
            stage.solver.add(stage.total_holes <= bound)
            better, answer = _search(stage, memlist, hole_ranges, sysinfo, profile, left_ms)
            stage.solver.pop()
            if better is None:
                fewest_areas = answer == UNSAT
                break
            best, total = better, sum(len(t.reserved) for t in better)
        return finish("found", best, k_floor_proved, fewest_areas)
    if k_floor_proved:
        return finish("infeasible", reason=f"no layout within {sysinfo.max_tdmrs} TDMRs and "
                      f"{sysinfo.max_reserved_per_tdmr} reserved areas per TDMR")
    return finish(UNKNOWN, reason="some TDMR counts timed out")


def _search(stage: _Stage1, memlist, hole_ranges, sysinfo, profile, left_ms
            ) -> tuple[tuple[Tdmr, ...] | None, str]:
    """Stage 1 then stage 2, blocking stage-1 choices that stage 2 cannot place."""
    stage.solver.push()
    try:
        for blocked in range(MAX_BLOCKED):
            if left_ms() <= 0:
                return None, UNKNOWN
            answer = solve(stage.solver, left_ms())
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

