"""Z3 queries over TDMR layouts: worst-case PAMT placement and explanations of infeasibility.

Both queries reuse the formulas of `invariants.layout`: a legal PAMT placement is one that
satisfies PAMT-IN-MEMORY and PAMT-DISJOINT (plus the allocator's alignment), and an explanation
is an unsat core over those same constraints, grouped per TDMR. Every solver call has a
timeout; a timeout is reported as "unknown", never as a pass.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import z3

from invariants.layout import (
    CONSTRAINTS_BY_ID,
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
from spec.sysinfo import PAGE_SIZE_SHIFTS, TdxSysinfo
from spec.tdmr import (
    AreaDemand,
    ConstructResult,
    Tdmr,
    construct_tdmrs,
    fill_out_tdmrs,
    tdmr_get_nid,
    tdmr_get_pamt_sz,
    tdmr_populate_rsvd_holes,
)

DEFAULT_TIMEOUT_MS = 30_000
SAT, UNSAT, UNKNOWN = "sat", "unsat", "unknown"
ANY_NODE, PREFERRED_NODE = "any-node", "preferred-node"


def solve(solver: z3.Solver, timeout_ms: int, *assumptions: z3.BoolRef) -> str:
    """One bounded solver call: "sat", "unsat", or "unknown" (timeout or give-up)."""
    solver.set("timeout", max(1, int(timeout_ms)))
    answer = solver.check(*assumptions)
    return SAT if answer == z3.sat else UNSAT if answer == z3.unsat else UNKNOWN


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


def pamt_sizes(tdmr: Tdmr, sysinfo: TdxSysinfo, profile: Profile = V6_8) -> tuple[int, int, int]:
    return tuple(tdmr_get_pamt_sz(tdmr, shift, entry, profile)
                 for shift, entry in zip(PAGE_SIZE_SHIFTS, sysinfo.pamt_entry_size, strict=True))


def hole_demand(tdmrs: Sequence[Tdmr], hole_ranges: tuple[MemRange, ...]) -> list[AreaDemand]:
    """How many hole areas each TDMR needs, counted by the kernel's own rule."""
    ends = [r.end for r in hole_ranges]
    return [tdmr_populate_rsvd_holes(t, hole_ranges, ends)[1] for t in tdmrs]


# --- worst-case PAMT placement ---------------------------------------------------------------

@dataclass(frozen=True)
class WorstCase:
    """Can some legal PAMT placement make construction fail with reserved areas exhausted?

    `status`: "breaks" (witness found), "safe" (proved: every legal placement succeeds),
    "unknown" (solver timeout) or "not-applicable" (construction fails before PAMTs exist).
    """

    mode: str
    status: str
    first_fit: ConstructResult
    witness: dict[int, int] | None = None
    witness_result: ConstructResult | None = None
    limit: int = 0
    duration_s: float = 0.0
    reason: str = ""

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
                         profile: Profile = V6_8,
                         timeout_ms: int = DEFAULT_TIMEOUT_MS) -> WorstCase:
    """Search every legal placement of the PAMT chunks for one that exhausts reserved areas.

    Legal, as the page allocator could return it: each chunk inside one memory entry (of the
    TDMR's preferred node in "preferred-node" mode, of any node in "any-node" mode), its base a
    multiple of its size, not crossing 4 GiB (the zone boundary), no two chunks overlapping.
    The TDMRs and their holes do not depend on placement; only where chunks land does.
    """
    started = time.monotonic()
    memlist = tuple(memlist)
    first_fit = construct_tdmrs(memlist, sysinfo, FirstFit(), tuple(cmrs), profile)
    filled = fill_out_tdmrs(memlist, sysinfo, [])
    if not isinstance(filled, list):
        return WorstCase(mode, "not-applicable", first_fit,
                         reason="TDMRs exhausted before any PAMT is placed")
    holes = [d.total for d in hole_demand(filled, hole_ranges_for(profile, memlist, cmrs))]
    sizes = [pamt_sizes(t, sysinfo, profile) for t in filled]
    nids = [tdmr_get_nid(t, memlist, []) for t in filled]

    # A fresh context per query: z3's choice of model depends on what the context saw before,
    # and the witness must be the same whatever else ran in this process.
    context = z3.Context()
    slots = [z3.Int(f"chunk{j}.slot", context) for j in range(len(filled))]
    terms = []
    for t, size, slot in zip(filled, sizes, slots, strict=True):
        base = slot * sum(size)
        terms.append(TdmrTerms(t.base, t.size, (base, base + size[0], base + size[0] + size[1]),
                               size, ()))
    ctx = LayoutContext.of(memlist, sysinfo)
    solver = z3.Solver(ctx=context)
    for _, atom in layout_atoms(terms, ctx, [CONSTRAINTS_BY_ID["PAMT-IN-MEMORY"],
                                             CONSTRAINTS_BY_ID["PAMT-DISJOINT"]]):
        solver.add(atom.holds)
    for term, nid in zip(terms, nids, strict=True):
        lo, hi = term.pamt_start, term.pamt_end
        solver.add(any_of((hi <= SZ_4G, lo >= SZ_4G)))
        if mode == PREFERRED_NODE:
            solver.add(any_of(contains(e.start, e.end, lo, hi) for e in memlist if e.nid == nid))
    limit = sysinfo.max_reserved_per_tdmr
    over = []
    for i, t in enumerate(terms):
        guests = terms if profile.reserve_other_tdmrs_pamts else [t]
        chunks_here = count_true([overlaps(g.pamt_start, g.pamt_end, t.base, t.end)
                                  for g in guests])
        over.append(holes[i] + chunks_here > limit)
    solver.add(any_of(over))
    answer = solve(solver, timeout_ms)
    duration = time.monotonic() - started
    if answer == UNSAT:
        return WorstCase(mode, "safe", first_fit, duration_s=duration)
    if answer == UNKNOWN:
        return WorstCase(mode, UNKNOWN, first_fit, duration_s=duration,
                         reason=f"solver gave no answer within {timeout_ms} ms")
    model = solver.model()
    witness = {j: model.eval(slots[j]).as_long() * sum(sizes[j]) for j in range(len(filled))}
    rebuilt = construct_tdmrs(memlist, sysinfo, ExplicitPlacement(witness), tuple(cmrs), profile)
    if rebuilt.failed_tdmr is None:  # the model and the encoding disagree: never claim a break
        return WorstCase(mode, UNKNOWN, first_fit, witness, rebuilt, limit, duration,
                         reason="the solver's placement did not reproduce in the model")
    return WorstCase(mode, "breaks", first_fit, witness, rebuilt, limit, duration)


# --- explanations ----------------------------------------------------------------------------

# Well-formedness of the areas is background; the demand-and-supply constraints are tracked.
# Ordered slots also break the symmetry that would make the core search a pigeonhole proof.
BACKGROUND_CONSTRAINTS = ("RSVD-ALIGNED", "RSVD-INSIDE", "RSVD-ORDER")
TRACKED_CONSTRAINTS = ("TDMR-COUNT", "RSVD-COUNT", "RSVD-COVERS-HOLES", "RSVD-COVERS-PAMT",
                       "RSVD-NO-MEMORY")


@dataclass(frozen=True)
class Explanation:
    """Why no reserved areas can be chosen for a fixed set of TDMRs and PAMT chunks.

    `core` is a set of constraint groups (constraint id, TDMR index or None) that together
    cannot hold; `minimal` is true when dropping any one of them was proved satisfiable;
    `lines` says it in words.
    """

    status: str
    core: tuple[tuple[str, int | None], ...] = ()
    lines: tuple[str, ...] = ()
    minimal: bool = False

    def describe(self) -> str:
        if self.status == UNSAT:
            return "\n".join(self.lines)
        if self.status == SAT:
            return "feasible: reserved areas exist that satisfy every constraint"
        return "unknown: the solver gave no answer within the timeout"

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status,
                "core": [{"constraint": c, "tdmr": t} for c, t in self.core],
                "minimal": self.minimal,
                "text": self.describe()}


def explain_layout(tdmrs: Sequence[Tdmr], memlist: Sequence[MemRange],
                   sysinfo: TdxSysinfo = TdxSysinfo(),
                   hole_ranges: Sequence[MemRange] | None = None,
                   timeout_ms: int = DEFAULT_TIMEOUT_MS) -> Explanation:
    """Given TDMRs and their PAMT chunks, can any reserved areas satisfy the constraints?

    The areas are left free (one slot more per TDMR than it could ever use); their
    well-formedness is assumed and every other constraint instance is tracked under its group
    (id, TDMR). An unsat core, shrunk by deletion until each group is needed, names what
    conflicts.
    """
    memlist = tuple(memlist)
    ranges = tuple(hole_ranges) if hole_ranges else memlist
    demand = hole_demand(tdmrs, ranges)
    if len(tdmrs) > sysinfo.max_tdmrs:
        # TDMR-COUNT alone is false on a fixed list this long: a one-group core, no search.
        core = (("TDMR-COUNT", None),)
        return Explanation(UNSAT, core, tuple(_core_words(list(core), tdmrs, demand, sysinfo)),
                           True)
    context = z3.Context()  # fresh, so the core found does not depend on earlier queries
    terms = []
    for i, t in enumerate(tdmrs):
        chunks = sum(1 for o in tdmrs if o.pamt_size and o.pamt_base < t.end
                     and o.pamt_end > t.base)
        slots = max(sysinfo.max_reserved_per_tdmr, demand[i].total + chunks) + 1
        areas = tuple(AreaTerms(z3.Int(f"t{i}.rsvd{j}.offset", context),
                                z3.Int(f"t{i}.rsvd{j}.size", context))
                      for j in range(slots))
        terms.append(TdmrTerms(t.base, t.size, tuple(t.pamt_bases), tuple(t.pamt_sizes), areas))
    ctx = LayoutContext.of(memlist, sysinfo, ranges)
    solver = z3.Solver(ctx=context)
    for _, atom in layout_atoms(terms, ctx, [CONSTRAINTS_BY_ID[c]
                                             for c in BACKGROUND_CONSTRAINTS]):
        solver.add(atom.holds)
    groups: dict[tuple[str, int | None], list] = {}
    for constraint, atom in layout_atoms(terms, ctx, [CONSTRAINTS_BY_ID[c]
                                                      for c in TRACKED_CONSTRAINTS]):
        groups.setdefault((constraint.id, atom.tdmr), []).append(atom.holds)
    selectors = {}
    for key, formulas in groups.items():
        selector = z3.Bool(f"{key[0]}@{key[1]}", context)
        selectors[key] = selector
        solver.add(z3.Implies(selector, all_of(formulas)))
    deadline = time.monotonic() + timeout_ms / 1000
    answer = solve(solver, timeout_ms, *selectors.values())
    if answer != UNSAT:
        return Explanation(answer)
    by_name = {str(s): key for key, s in selectors.items()}
    core = [by_name[str(s)] for s in solver.unsat_core()]
    minimal = True
    for key in list(core):  # deletion: drop each group the others still conflict without
        rest = [selectors[k] for k in core if k != key]
        left_ms = (deadline - time.monotonic()) * 1000
        answer = solve(solver, left_ms, *rest) if left_ms > 0 else UNKNOWN
        if answer == UNSAT:
            core.remove(key)
        minimal = minimal and answer != UNKNOWN
    core.sort(key=lambda k: (k[1] is None, k[1] or 0, k[0]))
    return Explanation(UNSAT, tuple(core), tuple(_core_words(core, tdmrs, demand, sysinfo)),
                       minimal)


def _core_words(core, tdmrs: Sequence[Tdmr], demand: list[AreaDemand],
                sysinfo: TdxSysinfo) -> list[str]:
    lines = []
    for index in sorted({t for _, t in core if t is not None}):
        t = tdmrs[index]
        own = int(t.pamt_size > 0 and t.pamt_base < t.end and t.pamt_end > t.base)
        other = sum(1 for j, o in enumerate(tdmrs) if j != index and o.pamt_size
                    and o.pamt_base < t.end and o.pamt_end > t.base)
        need = replace(demand[index], own_pamt=own, other_pamts=other)
        ids = ", ".join(c for c, i in core if i == index)
        lines.append(f"TDMR {format_range(t.base, t.end)}: {need.total} reserved areas needed: "
                     f"{need.describe()}, limit {sysinfo.max_reserved_per_tdmr} "
                     f"(conflicting: {ids})")
    if any(i is None for _, i in core):
        ids = ", ".join(c for c, i in core if i is None)
        lines.append(f"{len(tdmrs)} TDMRs, limit {sysinfo.max_tdmrs} (conflicting: {ids})")
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
