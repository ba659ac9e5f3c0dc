"""Z3 queries over TDMR layouts: worst-case PAMT placement and explanations of infeasibility.

Both queries reuse the formulas of `invariants.layout`: a legal PAMT placement is one that
satisfies PAMT-IN-MEMORY and PAMT-DISJOINT (plus the allocator's alignment), and an explanation
is an unsat core over those same constraints, grouped per TDMR. Every solver call has a
timeout; a timeout is reported as "unknown", never as a pass.
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import z3

from invariants.layout import (
    CONSTRAINTS_BY_ID,
    PHYS_END,
    AreaTerms,
    LayoutContext,
    TdmrTerms,
    all_of,
    any_of,
    contains,
    count_true,
    layout_atoms,
    overlaps,
)
from spec.memory import SZ_1G, SZ_4G, MemRange
from spec.placement import ExplicitPlacement, FirstFit
from spec.profiles import HOLES_CMR, V6_8, Profile
from spec.sysinfo import TdxSysinfo
from spec.tdmr import (
    AreaDemand,
    ConstructResult,
    Tdmr,
    construct_tdmrs,
    fill_out_tdmrs,
    pamt_sizes,
    tdmr_get_nid,
    tdmr_populate_rsvd_holes,
)

DEFAULT_TIMEOUT_MS = 30_000
SAT, UNSAT, UNKNOWN = "sat", "unsat", "unknown"
ANY_NODE, PREFERRED_NODE = "any-node", "preferred-node"


def solve(solver: z3.Solver, timeout_ms: int, *assumptions: z3.BoolRef) -> str:
    """One bounded solver call: "sat", "unsat", or "unknown" (budget spent, or Z3 gave up).
    The budget is `timeout_ms` worth of Z3 resource units (see `Budget`), not the clock."""
    return Budget(timeout_ms).check(solver, *assumptions)


# Z3 resource units in a second of Z3 work on these queries, measured on this machine with
# `python benchmarks/bench_solver.py --rate` (2.6 to 5 million units per second on the
# worst-case, planner and explanation queries; small queries count fewer, their time going to
# the call itself). A budget counted in units ends at the same point of the search however busy
# the machine is, so the answer does not change with the load; the wall clock only stops a step
# that runs WALL_GUARD times over its seconds.
RLIMIT_PER_SECOND = 3_000_000
WALL_GUARD = 2
# Building an encoding is Python work that Z3 does not count: it is charged to the same budget
# at this many units per z3py operation a builder estimates it makes (about 30 microseconds
# each here, so 100 units keeps the two in proportion).
UNITS_PER_TERM = 100


class Budget:
    """The solver work one step may do: `seconds` worth of Z3 resource units, shared by all its
    calls and by the encodings it builds (`charge`), and a wall-clock deadline as the last
    guard. `cut` says why it ran out, if it did; `used` counts the units spent."""

    def __init__(self, timeout_ms: int) -> None:
        self.seconds = timeout_ms / 1000
        self.units = max(1, int(self.seconds * RLIMIT_PER_SECOND))
        self.deadline = time.monotonic() + WALL_GUARD * self.seconds
        self.cut = ""
        self.used = 0

    def spent(self) -> bool:
        """True once the budget is gone (and `cut` says how)."""
        if self.units <= 0:
            self.cut = f"the solver budget of {self.seconds:g} s (--timeout) ran out"
        elif time.monotonic() >= self.deadline:
            self.cut = (f"the step's wall clock passed {WALL_GUARD} x its solver budget of "
                        f"{self.seconds:g} s (--timeout)")
        else:
            return False
        return True

    def charge(self, terms: int, what: str) -> bool:
        """Pay for building an encoding of about `terms` z3py operations before building it;
        False (with `cut` saying what was not built) when the budget cannot pay."""
        if self.spent():
            return False
        cost = max(0, terms) * UNITS_PER_TERM
        if cost > self.units:
            self.cut = (f"{what} (about {terms:,} terms) is more than the solver budget of "
                        f"{self.seconds:g} s (--timeout) has left")
            return False
        self.units -= cost
        self.used += cost
        return True

    def check(self, solver: z3.Solver, *assumptions: z3.BoolRef) -> str:
        """One solver call on what is left: "sat", "unsat", or "unknown" (budget gone)."""
        if self.spent():
            return UNKNOWN
        used = _rlimit_count(solver)
        solver.set("rlimit", self.units)
        solver.set("timeout", max(1, int((self.deadline - time.monotonic()) * 1000)))
        answer = solver.check(*assumptions)
        spent = _rlimit_count(solver) - used
        self.units -= spent
        self.used += spent
        if answer == z3.sat:
            return SAT
        if answer == z3.unsat:
            return UNSAT
        if not self.spent():  # Z3 gave up for a reason of its own
            self.cut = f"the solver gave up ({solver.reason_unknown()})"
        return UNKNOWN

    def left_ms(self) -> int:
        """What is left, in the milliseconds of `timeout_ms` (for a step run on its own)."""
        return max(1, self.units * 1000 // RLIMIT_PER_SECOND)


def _rlimit_count(solver: z3.Solver) -> int:
    """The resource units the solver's context has used so far."""
    stats = solver.statistics()
    return int(stats.get_key_value("rlimit count")) if "rlimit count" in stats.keys() else 0


def format_addr(addr: int) -> str:
    """An address in words: whole GiB as "2G", anything else in hex."""
    return f"{addr // SZ_1G}G" if addr % SZ_1G == 0 and addr else hex(addr)


def format_range(start: int, end: int) -> str:
    return f"[{format_addr(start)}, {format_addr(end)})"


def hole_ranges_for(profile: Profile, memlist: Sequence[MemRange],
                    cmrs: Sequence[MemRange]) -> tuple[MemRange, ...]:
    """The ranges whose gaps are holes under this profile (memblock in v6.8, CMRs in the fix)."""
    if profile.holes == HOLES_CMR:
        if not cmrs:
            raise ValueError(f"profile {profile.name} takes holes from CMRs, but none were given")
        return tuple(sorted(cmrs))
    return tuple(memlist)


def hole_demand(tdmrs: Sequence[Tdmr], hole_ranges: tuple[MemRange, ...]) -> list[AreaDemand]:
    """How many hole areas each TDMR needs, counted by the kernel's own rule."""
    ends = [r.end for r in hole_ranges]
    return [tdmr_populate_rsvd_holes(t, hole_ranges, ends)[1] for t in tdmrs]


# --- worst-case PAMT placement ---------------------------------------------------------------

@dataclass(frozen=True)
class WorstCase:
    """Can some legal PAMT placement make construction fail with reserved areas exhausted?

    `status`: "breaks" (witness found), "safe" (proved: every legal placement succeeds),
    "unknown" (the solver budget ran out: inconclusive, never a pass) or "not-applicable"
    (construction fails before PAMTs exist).
    """

    mode: str
    status: str
    first_fit: ConstructResult
    witness: dict[int, int] | None = None
    witness_result: ConstructResult | None = None
    limit: int = 0
    duration_s: float = 0.0
    reason: str = ""
    units: int = 0  # Z3 resource units spent (encodings charged as `Budget` does)

    def describe(self) -> str:
        ff = "succeeds" if self.first_fit.ok else f"fails ({self.first_fit.error.errno})"
        head = f"first-fit placement: {ff}; worst-case placement ({self.mode}): "
        if self.status == "breaks":
            failed = self.witness_result.failed_tdmr
            t = self.witness_result.tdmrs[failed]
            guests = [j for j, base in sorted(self.witness.items())
                      if base < t.end and base + self.witness_result.tdmrs[j].pamt_size > t.base]
            return (head + f"FAILS (PAMT chunks of TDMRs {_index_list(guests)} land in TDMR "
                    f"{failed} {format_range(t.base, t.end)}: "
                    f"{self.witness_result.demand[failed].total} areas, limit {self.limit})")
        if self.status == "safe":
            return head + "succeeds for every legal placement (proved)"
        return head + f"{self.status}: {self.reason}"

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "status": self.status,
                "first_fit_errno": None if self.first_fit.ok else self.first_fit.error.errno,
                "witness": None if self.witness is None
                else {str(i): hex(b) for i, b in sorted(self.witness.items())},
                "failed_tdmr": self.witness_result.failed_tdmr if self.witness_result else None,
                "duration_s": round(self.duration_s, 3), "reason": self.reason,
                "text": self.describe()}


def _index_list(indices: list[int]) -> str:
    if indices and indices == list(range(indices[0], indices[-1] + 1)) and len(indices) > 2:
        return f"{indices[0]}-{indices[-1]}"
    return ", ".join(map(str, indices))


def worst_case_placement(memlist: Sequence[MemRange], sysinfo: TdxSysinfo = TdxSysinfo(),
                         mode: str = ANY_NODE, cmrs: Sequence[MemRange] = (),
                         profile: Profile = V6_8, timeout_ms: int = DEFAULT_TIMEOUT_MS,
                         budget: Budget | None = None) -> WorstCase:
    """Search every legal placement of the PAMT chunks for one that exhausts reserved areas.

    Legal, as the page allocator could return it: each chunk inside one memory entry (of the
    TDMR's preferred node in "preferred-node" mode, of any node in "any-node" mode), its base a
    multiple of its size, not crossing 4 GiB (the zone boundary), no two chunks overlapping.
    The TDMRs and their holes do not depend on placement; only where chunks land does.

    Decomposed by TDMR: TDMR i runs out when `limit - holes + 1` chunks land in it (every
    chunk counts in v6.8; only its own in profiles that reserve no other PAMT). Whether that
    many can be packed over TDMR i is asked on its own (`_ChunkSpace.pack`), a question whose
    size depends on the limit, not on the number of TDMRs; "no" proves TDMR i safe, as leaving
    the other chunks out only drops constraints. A packing is completed greedily (every other
    chunk at its lowest free legal slot) into a witness, checked by the layout formulas and
    rebuilt by the kernel model; where the greedy completion finds no room, the query over the
    whole layout decides TDMR i. `budget` (default: `timeout_ms` worth) pays for it all.
    """
    started = time.monotonic()
    budget = budget or Budget(timeout_ms)
    memlist = tuple(memlist)
    first_fit = construct_tdmrs(memlist, sysinfo, FirstFit(), tuple(cmrs), profile)
    filled = fill_out_tdmrs(memlist, sysinfo, [])
    if not isinstance(filled, list):
        return WorstCase(mode, "not-applicable", first_fit,
                         reason="TDMRs exhausted before any PAMT is placed")
    holes = [d.total for d in hole_demand(filled, hole_ranges_for(profile, memlist, cmrs))]
    sizes = [pamt_sizes(t, sysinfo, profile) for t in filled]
    nids = [tdmr_get_nid(t, memlist, []) for t in filled]
    limit = sysinfo.max_reserved_per_tdmr

    def done(status: str, witness=None, rebuilt=None, reason: str = "") -> WorstCase:
        return WorstCase(mode, status, first_fit, witness, rebuilt,
                         limit if status == "breaks" else 0, time.monotonic() - started,
                         reason, budget.used)

    def breaks(witness: dict[int, int]) -> WorstCase:
        rebuilt = construct_tdmrs(memlist, sysinfo, ExplicitPlacement(witness), tuple(cmrs),
                                  profile)
        if rebuilt.failed_tdmr is None or not _legal(witness, filled, sizes, nids, memlist,
                                                     mode):
            return done(UNKNOWN, witness, rebuilt,
                        "the solver's placement did not reproduce in the model")
        return done("breaks", witness, rebuilt)

    def whole(targets: list[int]) -> tuple[str, dict[int, int] | None]:
        return _whole_layout_query(filled, holes, sizes, nids, memlist, sysinfo, mode, profile,
                                   budget, targets)

    space = _ChunkSpace(memlist, filled, sizes, nids, mode)
    if space.degenerate:  # a chunk of no size: only the whole-layout query says what is legal
        answer, witness = whole(list(range(len(filled))))
        if answer == SAT:
            return breaks(witness)
        return done("safe" if answer == UNSAT else UNKNOWN, reason=budget.cut
                    if answer == UNKNOWN else "")
    if not space.placeable():  # some chunk has no legal place at all: no placement exists
        return done("safe")
    order = sorted(range(len(filled)), key=lambda i: (limit - holes[i], i))
    undecided, why = [], ""
    for at, i in enumerate(order):
        if budget.spent():
            undecided += order[at:]
            why = why or budget.cut
            break
        guests = range(len(filled)) if profile.reserve_other_tdmrs_pamts else (i,)
        pieces = space.pack(i, limit - holes[i] + 1, guests, budget)
        if pieces is None:  # proved: TDMR i cannot run out
            continue
        witness = None if pieces == UNKNOWN else space.complete(pieces)
        if pieces != UNKNOWN and witness is None:  # no greedy room: ask the whole layout
            answer, witness = whole([i])
            if answer == UNSAT:
                continue
        if witness is None:
            undecided.append(i)
            why = why or budget.cut
            continue
        return breaks(witness)
    if undecided:
        which = (f"TDMR {undecided[0]}" if len(undecided) == 1 else
                 f"{len(undecided)} of {len(filled)} TDMRs ({_index_list(sorted(undecided))})")
        return done(UNKNOWN, reason=f"{which} not decided: {why}")
    return done("safe")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class _ChunkSpace:
    """Where each PAMT chunk may legally go, as ranges of slots (base = slot x chunk size): in
    one allowed memory entry (any node, or the TDMR's preferred one), not crossing 4 GiB."""

    def __init__(self, memlist: tuple[MemRange, ...], tdmrs: Sequence[Tdmr],
                 sizes: Sequence[tuple[int, int, int]], nids: Sequence[int], mode: str) -> None:
        self.tdmrs = tdmrs
        self.size = [sum(s) for s in sizes]
        self.degenerate = any(size <= 0 for size in self.size)
        self.key = list(nids) if mode == PREFERRED_NODE else [None] * len(tdmrs)
        self.entries: dict[int | None, tuple[MemRange, ...]] = {}
        for key in set(self.key):
            self.entries[key] = tuple(e for e in memlist if key is None or e.nid == key)
        self.ends = {key: [e.end for e in entries] for key, entries in self.entries.items()}
        self.used: list[tuple[int, int]] = []

    def ranges(self, key: int | None, size: int, lo: int, hi: int) -> list[tuple[int, int]]:
        """Slot ranges (first, last) of a chunk of `size` on `key`'s memory overlapping
        [lo, hi), in address order."""
        entries = self.entries[key]
        first, last = _ceil_div(lo - size + 1, size), (hi - 1) // size
        below, above = (SZ_4G - size) // size, _ceil_div(SZ_4G, size)
        out = []
        for k in range(bisect_right(self.ends[key], lo), len(entries)):
            e = entries[k]
            if e.start >= hi:
                break
            a, b = max(_ceil_div(e.start, size), first), min((e.end - size) // size, last)
            for x, y in ((a, min(b, below)), (max(a, above), b)):
                if x <= y:
                    out.append((x, y))
        return out

    def placeable(self) -> bool:
        return all(self.ranges(self.key[j], self.size[j], 0, PHYS_END + 1)
                   for j in range(len(self.tdmrs)))

    def pack(self, i: int, need: int, guests: Sequence[int], budget: Budget
             ) -> list[tuple[int, int]] | None | str:
        """`need` guest chunks placed legally, disjoint, each overlapping TDMR i, as (owner,
        base); None when that is impossible (proved), UNKNOWN when the budget ran out. Counted
        first, then packed greedily, then asked of Z3 over `need` pieces in address order,
        each of one class (chunks of one size and the same allowed memory)."""
        if need <= 0:
            return []
        t = self.tdmrs[i]
        classes: dict[tuple[int | None, int], list[int]] = {}
        for j in guests:
            classes.setdefault((self.key[j], self.size[j]), []).append(j)
        windows = {c: self.ranges(c[0], c[1], t.base, t.base + t.size) for c in classes}
        classes = {c: members for c, members in sorted(classes.items(), key=lambda x: x[0][1])
                   if windows[c]}
        room = sum(min(len(members), sum(y - x + 1 for x, y in windows[c]))
                   for c, members in classes.items())
        if room < need or self._memory_room(t, classes) < need:
            return None
        greedy = self._greedy_pack(need, classes, windows)
        if greedy is not None:
            return greedy
        order = list(classes)
        terms = need * sum(8 + 3 * len(windows[c]) for c in order) + need * len(order)
        if not budget.charge(terms, f"the packing query of TDMR {i}"):
            return UNKNOWN
        context = z3.Context()
        solver = z3.Solver(ctx=context)
        kind = [z3.Int(f"piece{k}.class", context) for k in range(need)]
        base = [z3.Int(f"piece{k}.base", context) for k in range(need)]
        end = [z3.Int(f"piece{k}.end", context) for k in range(need)]
        for k in range(need):
            options = []
            for c_index, c in enumerate(order):
                slot = z3.Int(f"piece{k}.slot{c_index}", context)
                options.append(z3.And(kind[k] == c_index, base[k] == c[1] * slot,
                                      end[k] == base[k] + c[1],
                                      z3.Or([z3.And(slot >= x, slot <= y)
                                             for x, y in windows[c]])))
            solver.add(z3.Or(options))
            if k:
                solver.add(end[k - 1] <= base[k])  # pieces in address order, disjoint
        for c_index, c in enumerate(order):
            solver.add(z3.Sum([z3.If(kind[k] == c_index, 1, 0) for k in range(need)])
                       <= len(classes[c]))
        answer = budget.check(solver)
        if answer != SAT:
            return None if answer == UNSAT else UNKNOWN
        model, taken = solver.model(), {c: 0 for c in order}
        pieces = []
        for k in range(need):
            c = order[model.eval(kind[k]).as_long()]
            pieces.append((classes[c][taken[c]], model.eval(base[k]).as_long()))
            taken[c] += 1
        return pieces

    def _memory_room(self, t: Tdmr, classes: dict) -> int:
        """At most how many chunks fit over TDMR t: the memory a chunk overlapping it can use,
        in the allowed entries, divided by the smallest chunk."""
        if not classes:
            return 0
        smallest = min(size for _, size in classes)
        largest = max(size for _, size in classes)
        lo, hi = t.base - largest + 1, t.base + t.size + largest - 1
        seen, room = set(), 0
        for key in {key for key, _ in classes}:
            entries = self.entries[key]
            for k in range(bisect_right(self.ends[key], lo), len(entries)):
                e = entries[k]
                if e.start >= hi:
                    break
                if (e.start, e.end) not in seen:
                    seen.add((e.start, e.end))
                    room += (min(e.end, hi) - max(e.start, lo)) // smallest
        return room

    def _greedy_pack(self, need: int, classes: dict, windows: dict
                     ) -> list[tuple[int, int]] | None:
        """Smallest chunks first, each at its lowest free slot over the TDMR; None if fewer
        than `need` fit this way (which proves nothing)."""
        self.used = []
        pieces = []
        for c, members in classes.items():
            for j in members:
                base = self._lowest_free(c[1], [(x * c[1], y * c[1]) for x, y in windows[c]])
                if base is None:
                    break
                self._take(base, c[1])
                pieces.append((j, base))
                if len(pieces) == need:
                    return pieces
        return None

    def complete(self, pieces: list[tuple[int, int]]) -> dict[int, int] | None:
        """The pieces plus every other chunk at its lowest free legal slot (largest chunks
        first); None when one finds no room."""
        self.used = []
        witness = {}
        for j, base in pieces:
            self._take(base, self.size[j])
            witness[j] = base
        rest = sorted((j for j in range(len(self.tdmrs)) if j not in witness),
                      key=lambda j: (-self.size[j], j))
        for j in rest:
            size = self.size[j]
            spans = [(x * size, y * size) for x, y in self.ranges(self.key[j], size, 0,
                                                                  PHYS_END + 1)]
            base = self._lowest_free(size, spans)
            if base is None:
                return None
            self._take(base, size)
            witness[j] = base
        return dict(sorted(witness.items()))

    def _lowest_free(self, size: int, spans: list[tuple[int, int]]) -> int | None:
        """The lowest base in `spans` (first and last legal base, multiples of size) whose
        chunk misses every used range."""
        starts = [u[0] for u in self.used]
        for first, last in spans:
            base = first
            while base <= last:
                k = bisect_left(starts, base + size) - 1
                if k < 0 or self.used[k][1] <= base:
                    return base
                base = _ceil_div(self.used[k][1], size) * size
        return None

    def _take(self, base: int, size: int) -> None:
        k = bisect_left(self.used, (base, base + size))
        self.used.insert(k, (base, base + size))


def _legal(witness: dict[int, int], tdmrs: Sequence[Tdmr], sizes, nids, memlist, mode) -> bool:
    """Is the placement legal, by the layout formulas (PAMT-IN-MEMORY, PAMT-DISJOINT) and the
    allocator's rules (aligned to its size, one zone, the preferred node if asked)?"""
    terms = []
    for j, t in enumerate(tdmrs):
        base, s = witness[j], sizes[j]
        size = sum(s)
        lo, hi = base, base + size
        if base % size or (lo < SZ_4G < hi):
            return False
        if mode == PREFERRED_NODE and not any(e.nid == nids[j] and e.start <= lo and hi <= e.end
                                              for e in memlist):
            return False
        terms.append(TdmrTerms(t.base, t.size, (base, base + s[0], base + s[0] + s[1]), s, ()))
    return all(atom.holds is True for _, atom in layout_atoms(
        terms, LayoutContext.of(memlist), [CONSTRAINTS_BY_ID["PAMT-IN-MEMORY"],
                                           CONSTRAINTS_BY_ID["PAMT-DISJOINT"]]))


def _whole_layout_query(tdmrs: Sequence[Tdmr], holes: list[int], sizes, nids, memlist,
                        sysinfo: TdxSysinfo, mode: str, profile: Profile, budget: Budget,
                        targets: list[int]) -> tuple[str, dict[int, int] | None]:
    """The placement question over every chunk at once, written with the layout formulas
    PAMT-IN-MEMORY and PAMT-DISJOINT (quadratic in the TDMRs): can a legal placement make one
    of the `targets` TDMRs run out? The answer, and the placement when there is one."""
    n = len(tdmrs)
    terms_estimate = n * (4 * len(memlist) + 8) + 3 * n * n + 4 * n * len(targets)
    if not budget.charge(terms_estimate, f"the placement query over all {n} TDMRs"):
        return UNKNOWN, None
    # A fresh context per query: z3's choice of model depends on what the context saw before,
    # and the witness must be the same whatever else ran in this process.
    context = z3.Context()
    slots = [z3.Int(f"chunk{j}.slot", context) for j in range(n)]
    terms = []
    for t, size, slot in zip(tdmrs, sizes, slots, strict=True):
        base = slot * sum(size)
        terms.append(TdmrTerms(t.base, t.size, (base, base + size[0], base + size[0] + size[1]),
                               size, ()))
    solver = z3.Solver(ctx=context)
    for _, atom in layout_atoms(terms, LayoutContext.of(memlist, sysinfo),
                                [CONSTRAINTS_BY_ID["PAMT-IN-MEMORY"],
                                 CONSTRAINTS_BY_ID["PAMT-DISJOINT"]]):
        solver.add(atom.holds)
    for term, nid in zip(terms, nids, strict=True):
        lo, hi = term.pamt_start, term.pamt_end
        solver.add(any_of((hi <= SZ_4G, lo >= SZ_4G)))
        if mode == PREFERRED_NODE:
            solver.add(any_of(contains(e.start, e.end, lo, hi) for e in memlist if e.nid == nid))
    over = []
    for i in targets:
        t = terms[i]
        guests = terms if profile.reserve_other_tdmrs_pamts else [t]
        chunks_here = count_true([overlaps(g.pamt_start, g.pamt_end, t.base, t.end)
                                  for g in guests])
        over.append(holes[i] + chunks_here > sysinfo.max_reserved_per_tdmr)
    solver.add(any_of(over))
    answer = budget.check(solver)
    if answer != SAT:
        return answer, None
    model = solver.model()
    return SAT, {j: model.eval(slots[j]).as_long() * sum(sizes[j]) for j in range(n)}


# --- explanations ----------------------------------------------------------------------------
#
# The reserved areas of one TDMR do not depend on those of another, so a layout has areas
# exactly when every TDMR does and there are not too many TDMRs. For one TDMR, counting
# settles it: an area may not cover TDX memory outside a PAMT chunk (RSVD-NO-MEMORY), so such
# memory cuts the TDMR into stretches, and the fewest areas that cover every hole and PAMT
# piece (RSVD-COVERS-HOLES, RSVD-COVERS-PAMT) is the number of stretches holding one. Z3 then
# proves the conflict and its minimality on a bounded abstraction: the one TDMR, one more
# piece than the limit (each in its own stretch), as memory only the stretches that separate
# them, and the PAMT chunks those touch. Each of its constraints is one of the whole layout's
# or implied by one, so its conflict is one of the whole layout's too; its size depends on the
# limit, not on the map.

# Well-formedness of the areas is background; the demand-and-supply constraints are tracked.
# Ordered slots also break the symmetry that would make the core search a pigeonhole proof.
BACKGROUND_CONSTRAINTS = ("RSVD-ALIGNED", "RSVD-INSIDE", "RSVD-ORDER")
TRACKED_CONSTRAINTS = ("RSVD-COUNT", "RSVD-COVERS-HOLES", "RSVD-COVERS-PAMT", "RSVD-NO-MEMORY")
AREA_CONSTRAINTS = BACKGROUND_CONSTRAINTS + TRACKED_CONSTRAINTS
MAX_ABSTRACTION = 128  # pieces to cover that the solver is asked about; quadratic in it


@dataclass(frozen=True)
class Explanation:
    """Why no reserved areas can be chosen for a fixed set of TDMRs and PAMT chunks.

    `core` is a set of constraint groups (constraint id, TDMR index or None) that together
    cannot hold; `minimal` is true when dropping any one of them was proved satisfiable;
    `lines` says it in words. "unknown" with `lines` is a conflict counted but not proved;
    `cut` says what was left out and why (a spent `--timeout` budget), empty when nothing was.
    """

    status: str
    core: tuple[tuple[str, int | None], ...] = ()
    lines: tuple[str, ...] = ()
    minimal: bool = False
    cut: str = ""

    def describe(self) -> str:
        if self.status == SAT:
            return "\n".join(("feasible: reserved areas exist that satisfy every constraint",
                              *self.lines))
        if self.lines:
            return "\n".join(self.lines)
        return f"unknown: {self.cut or 'the solver gave no answer within the timeout'}"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status,
                "core": [{"constraint": c, "tdmr": t} for c, t in self.core],
                "minimal": self.minimal, "cut": self.cut or None,
                "text": self.describe()}


@dataclass(frozen=True)
class _Stretches:
    """A TDMR cut where no area may reach across.

    `items` are its holes and PAMT pieces as (start, end, kind, stretch, source): the whole
    hole (start, end) or the chunk's owner index. `cuts[k]`, between stretches k and k + 1, is
    (position, the stretch of memory that makes it, the owners of the chunks it lies between).
    Memory outside every chunk is a cut; so is a seam where one chunk ends and another begins,
    as one area's part of a region must lie in one chunk.
    """

    items: tuple[tuple[int, int, str, int, Any], ...]
    cuts: tuple[tuple[int, MemRange, tuple[int, ...]], ...]

    def stretches(self, kind: str | None = None) -> list[int]:
        """The stretches holding a piece (of this kind), in address order."""
        return sorted({s for _, _, k, s, _ in self.items if kind in (None, k)})


class _Layout:
    """A fixed TDMR list and its memory, indexed once for ordered look-ups per TDMR."""

    def __init__(self, tdmrs: Sequence[Tdmr], memlist: tuple[MemRange, ...],
                 hole_ranges: tuple[MemRange, ...]) -> None:
        self.tdmrs = tdmrs
        self.regions = [(r.start, r.end, r) for r in sorted(memlist)]
        self.region_starts = [r[0] for r in self.regions]
        self.holes = LayoutContext.of((), TdxSysinfo(), hole_ranges).holes
        self.hole_starts = [h[0] for h in self.holes]
        self.hole_ranges = [(r.start, r.end, r) for r in sorted(hole_ranges)]
        self.range_starts = [r[0] for r in self.hole_ranges]
        self.chunks = sorted((t.pamt_base, t.pamt_end, j) for j, t in enumerate(tdmrs)
                             if t.pamt_size > 0)
        self.chunk_starts = [c[0] for c in self.chunks]
        self.largest = max((end - start for start, end, _ in self.chunks), default=0)

    @staticmethod
    def near(items: list, starts: list[int], start: int, end: int, longest: int = 0) -> list:
        """The `items` (tuples beginning with start, end, sorted) that overlap [start, end):
        disjoint ones, or ones at most `longest` long."""
        lo = (bisect_left(starts, start - longest + 1) if longest
              else max(0, bisect_right(starts, start) - 1))
        hi = bisect_left(starts, end)
        return [x for x in items[lo:hi] if x[1] > start]

    def owners(self, t: Tdmr) -> list[tuple[int, int, int]]:
        """The PAMT chunks (start, end, owner index) that overlap the TDMR, by start."""
        return self.near(self.chunks, self.chunk_starts, t.base, t.end, self.largest)

    def stretches(self, t: Tdmr) -> _Stretches:
        chunks = self.owners(t)
        chunk_starts = [c[0] for c in chunks]
        items = [(max(s, t.base), min(e, t.end), "hole", (s, e))
                 for s, e in self.near(self.holes, self.hole_starts, t.base, t.end)]
        items += [(max(s, t.base), min(e, t.end), "pamt", j) for s, e, j in chunks]
        cuts = []
        for r_start, r_end, region in self.near(self.regions, self.region_starts, t.base,
                                                t.end):
            start, end = max(r_start, t.base), min(r_end, t.end)
            pos, prev = start, None
            for chunk in self.near(chunks, chunk_starts, start, end, self.largest):
                if chunk[0] > pos:
                    cuts.append((pos, MemRange(pos, chunk[0], region.nid), ()))
                elif prev is not None:
                    cuts.append((chunk[0], MemRange(max(prev[0], start), min(chunk[1], end),
                                                    region.nid), (prev[2], chunk[2])))
                pos, prev = max(pos, min(chunk[1], end)), chunk
            if pos < end:
                cuts.append((pos, MemRange(pos, end, region.nid), ()))
        cuts.sort(key=lambda c: c[0])
        positions = [c[0] for c in cuts]
        return _Stretches(tuple((s, e, k, bisect_right(positions, s), source)
                                for s, e, k, source in sorted(items, key=lambda x: x[:2])),
                          tuple(cuts))

    def context(self, t: Tdmr, sysinfo: TdxSysinfo) -> LayoutContext:
        """The memory and hole ranges near one TDMR: its constraints come out the same as with
        all of them (a sentinel past PHYS_END keeps the hole ranges from being empty)."""
        regions = [r for _, _, r in self.near(self.regions, self.region_starts, t.base, t.end)]
        ranges = [r for _, _, r in self.near(self.hole_ranges, self.range_starts, t.base,
                                             t.end)]
        return LayoutContext.of(regions, sysinfo, [*ranges, MemRange(PHYS_END, PHYS_END + 1)])

    def kernel_count(self, index: int, demand: AreaDemand) -> AreaDemand:
        """The areas the kernel adds to TDMR `index`: its holes and every PAMT chunk in it."""
        owners = [j for _, _, j in self.owners(self.tdmrs[index])]
        own = owners.count(index)
        return replace(demand, own_pamt=own, other_pamts=len(owners) - own)


def explain_layout(tdmrs: Sequence[Tdmr], memlist: Sequence[MemRange],
                   sysinfo: TdxSysinfo = TdxSysinfo(),
                   hole_ranges: Sequence[MemRange] | None = None,
                   timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Explanation:
    """Given TDMRs and their PAMT chunks, can any reserved areas satisfy the constraints?

    Counted per TDMR (near-linear in the map); the first TDMR that needs more areas than the
    limit is handed to Z3 as a bounded abstraction, whose unsat core, shrunk by deletion until
    each group is needed, names what conflicts. With no such TDMR, one area per stretch is a
    witness, checked against the layout constraints themselves. `timeout_ms` is the budget of
    the whole step; what it cuts is said in `cut`, never dropped.
    """
    memlist = tuple(memlist)
    ranges = tuple(hole_ranges) if hole_ranges else memlist
    demand = hole_demand(tdmrs, ranges)
    layout = _Layout(tdmrs, memlist, ranges)
    if len(tdmrs) > sysinfo.max_tdmrs:
        # TDMR-COUNT alone is false on a fixed list this long: a one-group core, no search.
        core = (("TDMR-COUNT", None),)
        return Explanation(UNSAT, core, tuple(_core_words(core, layout, demand, sysinfo, {})),
                           True)
    budget = Budget(timeout_ms)
    limit = sysinfo.max_reserved_per_tdmr
    found = []
    for i, t in enumerate(tdmrs):
        if budget.spent():
            return Explanation(UNKNOWN, cut=f"counting stopped at TDMR {i} of {len(tdmrs)}: "
                               f"{budget.cut}")
        found.append(layout.stretches(t))
        if len(found[i].stretches()) > limit:
            return _explain_tdmr(i, found[i], layout, demand, sysinfo, budget)
    for i in range(len(tdmrs)):
        if budget.spent():
            return Explanation(UNKNOWN, cut=f"the witness was checked up to TDMR {i} of "
                               f"{len(tdmrs)}: {budget.cut}")
        if not _witness_holds(i, found[i], layout, sysinfo):
            return Explanation(UNKNOWN, cut=f"the count says TDMR {i} fits, but one area per "
                               "stretch breaks a layout constraint there")
    return Explanation(SAT, lines=tuple(_sharing_words(layout, found, demand, sysinfo)))


def _explain_tdmr(i: int, found: _Stretches, layout: _Layout, demand: list[AreaDemand],
                  sysinfo: TdxSysinfo, budget: Budget) -> Explanation:
    """The conflict in TDMR i, which needs more areas than the limit: counted, then proved
    minimal by Z3 on the abstraction (or said to be unproved, and why)."""
    limit = sysinfo.max_reserved_per_tdmr
    # The pieces one kind alone puts over the limit make the smaller core.
    for kind in ("hole", "pamt", None):
        chosen = found.stretches(kind)[:limit + 1]
        if len(chosen) > limit:
            break
    kinds = {"hole": ("RSVD-COVERS-HOLES",), "pamt": ("RSVD-COVERS-PAMT",),
             None: ("RSVD-COVERS-HOLES", "RSVD-COVERS-PAMT")}[kind]
    counted = sorted((c, i) for c in ("RSVD-COUNT", "RSVD-NO-MEMORY", *kinds))

    def words(core) -> list[str]:
        return _core_words(core, layout, demand, sysinfo, {i: len(found.stretches())})

    first = {}  # per chosen stretch, its first piece of the kind chosen
    for _, _, k, stretch, source in found.items:
        if kind in (None, k) and stretch not in first:
            first[stretch] = (k, source)
    holes = [first[s][1] for s in chosen if first[s][0] == "hole"]
    owners = {first[s][1] for s in chosen if first[s][0] == "pamt"}
    separators = [found.cuts[s] for s in chosen[:-1]]
    owners.update(j for _, _, seam in separators for j in seam)
    owners.discard(i)
    size = len(holes) + len(owners) + 1  # pieces to cover: the holes and every chunk there
    if size > MAX_ABSTRACTION:
        cut = (f"Z3 was not asked: {size} pieces and chunks is more than its bounded "
               f"abstraction holds ({MAX_ABSTRACTION})")
        return Explanation(UNKNOWN, tuple(counted), tuple(words(counted)), False, cut)
    solver, selectors = _abstraction(i, layout, holes, [r for _, r, _ in separators],
                                     sorted(owners), sysinfo, size + 1)
    answer = budget.check(solver, *selectors.values())
    if answer == SAT:  # the count and the encoding disagree: never claim a conflict
        return Explanation(UNKNOWN, cut=f"the count says TDMR {i} needs {len(chosen)} areas, "
                           "but the solver found fewer would do")
    if answer == UNKNOWN:
        cut = f"Z3's proof of the conflict was cut: {budget.cut}"
        return Explanation(UNKNOWN, tuple(counted), tuple(words(counted)), False, cut)
    by_name = {str(s): key for key, s in selectors.items()}
    core = [by_name[str(s)] for s in solver.unsat_core()]
    minimal = True
    for key in list(core):  # deletion: drop each group the others still conflict without
        answer = budget.check(solver, *[selectors[k] for k in core if k != key])
        if answer == UNSAT:
            core.remove(key)
        minimal = minimal and answer != UNKNOWN
    core.sort(key=lambda k: (k[1] is None, k[1] or 0, k[0]))
    cut = "" if minimal else f"the proof that the conflict is minimal was cut: {budget.cut}"
    return Explanation(UNSAT, tuple(core), tuple(words(core)), minimal, cut)


def _abstraction(i: int, layout: _Layout, holes: list[tuple[int, int]],
                 separators: list[MemRange], owners: list[int], sysinfo: TdxSysinfo,
                 slots: int) -> tuple[z3.Solver, dict]:
    """TDMR i with `slots` free areas, only these holes, the chunks of these owners (and its
    own), and as memory only the separating stretches. Each constraint of it is one of the
    whole layout's or implied by one: RSVD-NO-MEMORY on part of a region follows from it on
    the region, and chunks that miss every separator allow nothing there. Areas beyond the
    limit's worth change nothing while RSVD-COUNT holds (used slots come first), and the slots
    suffice to cover each piece alone when RSVD-COUNT is dropped."""
    context = z3.Context()  # fresh, so the core found does not depend on earlier queries
    t = layout.tdmrs[i]
    areas = tuple(AreaTerms(z3.Int(f"t{i}.rsvd{j}.offset", context),
                            z3.Int(f"t{i}.rsvd{j}.size", context)) for j in range(slots))
    terms = [_terms(t, areas)] + [_terms(layout.tdmrs[j], ()) for j in owners]
    ranges, prev = [], 0  # hole ranges whose gaps are exactly the chosen holes
    for start, end in sorted(holes):
        if start > prev:
            ranges.append(MemRange(prev, start))
        prev = end
    ranges.append(MemRange(prev, PHYS_END + 1))
    ctx = LayoutContext.of(separators, sysinfo, ranges)
    solver = z3.Solver(ctx=context)
    selectors: dict[tuple[str, int | None], z3.BoolRef] = {}
    groups: dict[tuple[str, int | None], list] = {}
    for constraint, atom in layout_atoms(terms, ctx, [CONSTRAINTS_BY_ID[c]
                                                      for c in AREA_CONSTRAINTS]):
        if atom.tdmr != 0:  # the chunk owners are there for their chunks only
            continue
        if constraint.id in BACKGROUND_CONSTRAINTS:
            solver.add(atom.holds)
        else:
            groups.setdefault((constraint.id, i), []).append(atom.holds)
    for key, formulas in groups.items():
        selectors[key] = z3.Bool(f"{key[0]}@{key[1]}", context)
        solver.add(z3.Implies(selectors[key], all_of(formulas)))
    return solver, selectors


def _terms(t: Tdmr, areas: tuple[AreaTerms, ...]) -> TdmrTerms:
    return TdmrTerms(t.base, t.size, tuple(t.pamt_bases), tuple(t.pamt_sizes), areas)


def _witness_holds(i: int, found: _Stretches, layout: _Layout, sysinfo: TdxSysinfo) -> bool:
    """One area per stretch, from its first piece to its last, checked by the very formulas of
    the area constraints on TDMR i (with the chunk owners that land in it)."""
    t = layout.tdmrs[i]
    spans: dict[int, list[int]] = {}
    for start, end, _, stretch, _ in found.items:
        span = spans.setdefault(stretch, [start, end])
        span[1] = max(span[1], end)
    areas = tuple(AreaTerms(start - t.base, end - start) for start, end in spans.values())
    terms = [_terms(t, areas)] + [_terms(layout.tdmrs[j], ()) for _, _, j in layout.owners(t)
                                  if j != i]
    return all(atom.holds is True for _, atom in layout_atoms(
        terms, layout.context(t, sysinfo), [CONSTRAINTS_BY_ID[c] for c in AREA_CONSTRAINTS])
        if atom.tdmr == 0)


def _core_words(core, layout: _Layout, demand: list[AreaDemand], sysinfo: TdxSysinfo,
                least: dict[int, int]) -> list[str]:
    """The core in words: per TDMR, the kernel's count of the areas it needs (and the fewest
    any layout needs, when adjacent pieces could share an area)."""
    lines, tdmrs = [], layout.tdmrs
    for index in sorted({t for _, t in core if t is not None}):
        need = layout.kernel_count(index, demand[index])
        fewest = least.get(index, need.total)
        shared = (f"; at least {fewest} in any layout, adjacent pieces sharing an area"
                  if fewest < need.total else "")
        ids = ", ".join(c for c, i in core if i == index)
        t = tdmrs[index]
        lines.append(f"TDMR {format_range(t.base, t.end)}: {need.total} reserved areas needed: "
                     f"{need.describe()}{shared}, limit {sysinfo.max_reserved_per_tdmr} "
                     f"(conflicting: {ids})")
    if any(i is None for _, i in core):
        ids = ", ".join(c for c, i in core if i is None)
        lines.append(f"{len(tdmrs)} TDMRs, limit {sysinfo.max_tdmrs} (conflicting: {ids})")
    return lines


def _sharing_words(layout: _Layout, found: list[_Stretches], demand: list[AreaDemand],
                   sysinfo: TdxSysinfo) -> list[str]:
    """Where the kernel's count is over the limit but shared areas fit: the TDMRs it gives up
    on although a layout exists."""
    lines = []
    for i, t in enumerate(layout.tdmrs):
        need = layout.kernel_count(i, demand[i])
        if need.total > sysinfo.max_reserved_per_tdmr:
            lines.append(f"TDMR {format_range(t.base, t.end)}: the kernel adds {need.total} "
                         f"areas ({need.describe()}), but {len(found[i].stretches())} would do, "
                         f"adjacent pieces sharing an area; limit "
                         f"{sysinfo.max_reserved_per_tdmr}")
    return lines


def explain_construction(result: ConstructResult, memlist: Sequence[MemRange],
                         sysinfo: TdxSysinfo = TdxSysinfo(), cmrs: Sequence[MemRange] = (),
                         profile: Profile = V6_8,
                         timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Explanation:
    """Explain a failed `construct_tdmrs`: the layout it built (TDMRs and PAMT chunks, or when
    TDMRs ran out the TDMRs it would have needed) admits no valid reserved areas."""
    tdmrs = result.tdmrs
    if not tdmrs:
        unbounded = replace(sysinfo, max_tdmrs=len(memlist) + 1)
        tdmrs = tuple(fill_out_tdmrs(tuple(memlist), unbounded, []))
    return explain_layout(tdmrs, memlist, sysinfo, hole_ranges_for(profile, memlist, cmrs)
                          if profile.holes == HOLES_CMR else None, timeout_ms)
