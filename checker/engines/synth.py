"""Minimal counterexample memory maps: the fewest regions on which v6.8 breaks in a given way.

Two parts per kind:
- A region-count query (Z3). For `n` regions it asks whether the kernel's rules leave room for
  the failure, using only facts that hold on every map (a relaxation): each TDMR is opened by a
  distinct region; a TDMR met by the regions a..b has at most b-a gaps plus one leading and one
  trailing hole; the region that crosses out of the TDMR at its end both removes the trailing
  hole and may open the next TDMR; a TDMR hosts at most one PAMT chunk per TDMR. An unsat answer
  for n regions therefore proves that no map with n regions fails that way.
- A realisation: a deterministic map with the smallest region count the query allows, built
  from the structure the query found (one TDMR full of holes, one region per GiB, ...), with
  every region and gap as small as the allocator allows. The map is then run through
  `spec.tdmr.construct_tdmrs` (and the planner or the worst-case placement search), so what is
  reported is what the model does, not what the query predicted.

`proved_minimal` is true only when the query with one region fewer came back unsat.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import z3

from checker.engines.planner import Plan, plan_layout
from checker.engines.solver import (
    ANY_NODE,
    DEFAULT_TIMEOUT_MS,
    SAT,
    UNSAT,
    Budget,
    WorstCase,
    format_range,
    worst_case_placement,
)
from checker.inputs.readers import memory_map_json
from invariants.machine import (
    INIT_PLACEMENT_INDEPENDENT,
    INIT_WHEN_LAYOUT_EXISTS,
    LIMIT_RSVD_EXHAUSTED,
    LIMIT_TDMRS_EXHAUSTED,
)
from spec.errno import ENOSPC
from spec.memory import SZ_1G, SZ_1M, SZ_4G, SZ_4K, MemRange, build_tdx_memlist, round_up
from spec.profiles import HOLES_CMR, V6_8, Profile
from spec.sysinfo import TdxSysinfo
from spec.tdmr import ConstructResult, Tdmr, construct_tdmrs, pamt_sizes

KERNEL_FAILS_PLAN_EXISTS = "kernel-fails-plan-exists"
PLACEMENT_BREAKS = "placement-breaks"
RSVD_EXHAUSTED = "rsvd-exhausted"
TDMRS_EXHAUSTED = "tdmrs-exhausted"
KINDS = (KERNEL_FAILS_PLAN_EXISTS, PLACEMENT_BREAKS, RSVD_EXHAUSTED, TDMRS_EXHAUSTED)
# What each kind of smallest map shows, for `counterexample --help`.
KIND_SUMMARIES = {
    KERNEL_FAILS_PLAN_EXISTS: "v6.8 fails although a valid TDMR layout exists (a kernel "
                              "limitation)",
    PLACEMENT_BREAKS: "first-fit PAMT placement builds, but another legal placement makes "
                      "construction fail",
    RSVD_EXHAUSTED: "one TDMR needs more reserved areas than the module allows",
    TDMRS_EXHAUSTED: "the memory needs more TDMRs than the module allows",
}
# The property each kind of smallest map stands for, as verify's checks name them. A map that
# only hits a limit the kernel must enforce records that limit being hit.
SYNTH_PROPERTIES = {
    KERNEL_FAILS_PLAN_EXISTS: INIT_WHEN_LAYOUT_EXISTS.id,
    PLACEMENT_BREAKS: INIT_PLACEMENT_INDEPENDENT.id,
    RSVD_EXHAUSTED: LIMIT_RSVD_EXHAUSTED.id,
    TDMRS_EXHAUSTED: LIMIT_TDMRS_EXHAUSTED.id,
}

PAGE = SZ_4K  # the smallest region, and the smallest gap that keeps two regions apart


# --- the region-count query ------------------------------------------------------------------

@dataclass(frozen=True)
class _Shape:
    """Variables of the query: TDMR count and the failing TDMR's regions, holes and chunks."""

    tdmrs: z3.ArithRef
    first: z3.ArithRef
    last: z3.ArithRef
    lead: z3.ArithRef
    trail: z3.ArithRef
    holes: z3.ArithRef
    chunks: z3.ArithRef


def _shape(solver: z3.Solver, n: int) -> _Shape:
    s = _Shape(*(z3.Int(name, solver.ctx) for name in ("tdmrs", "first", "last", "lead",
                                                       "trail", "holes", "chunks")))
    solver.add(1 <= s.tdmrs, s.tdmrs <= n,  # each TDMR opened by a distinct region
               0 <= s.first, s.first <= s.last, s.last < n,
               0 <= s.lead, s.lead <= 1, 0 <= s.trail, s.trail <= 1,
               0 <= s.holes, s.holes <= (s.last - s.first) + s.lead + s.trail,
               0 <= s.chunks, s.chunks <= s.tdmrs)
    # Other TDMRs are opened by regions before `first`, after `last`, or by `last` itself when
    # it runs past the TDMR's end (so the TDMR has no trailing hole).
    crosses_out = z3.If(z3.And(s.last > s.first, s.trail == 0), 1, 0)
    solver.add(s.tdmrs - 1 <= s.first + (n - 1 - s.last) + crosses_out)
    return s


def _rsvd_fails(s: _Shape, sysinfo: TdxSysinfo) -> z3.BoolRef:
    return z3.And(s.tdmrs <= sysinfo.max_tdmrs,
                  s.holes + s.chunks > sysinfo.max_reserved_per_tdmr)


def _tdmrs_fail(s: _Shape, sysinfo: TdxSysinfo) -> z3.BoolRef:
    return s.tdmrs > sysinfo.max_tdmrs


def _failure(kind: str, s: _Shape, sysinfo: TdxSysinfo) -> z3.BoolRef:
    if kind == RSVD_EXHAUSTED:
        return _rsvd_fails(s, sysinfo)
    if kind == TDMRS_EXHAUSTED:
        return _tdmrs_fail(s, sysinfo)
    if kind == KERNEL_FAILS_PLAN_EXISTS:  # the planner's success is checked on the map itself
        return z3.Or(_rsvd_fails(s, sysinfo), _tdmrs_fail(s, sysinfo))
    if kind == PLACEMENT_BREAKS:
        # Some placement overfills the TDMR while first-fit does not: its holes alone fit, and
        # with one TDMR every placement puts the one chunk in the same place.
        return z3.And(_rsvd_fails(s, sysinfo), s.tdmrs >= 2,
                      s.holes <= sysinfo.max_reserved_per_tdmr)
    raise ValueError(f"unknown counterexample kind {kind!r} (known: {', '.join(KINDS)})")


def region_count_query(kind: str, n: int, sysinfo: TdxSysinfo, budget: Budget | int) -> str:
    """Can a map with `n` regions fail this way, as far as the counting facts go? Within
    `budget` (a `Budget`, or that many milliseconds' worth of Z3 resource units), in a fresh Z3
    context so the answer does not depend on earlier queries."""
    budget = budget if isinstance(budget, Budget) else Budget(budget)
    solver = z3.Solver(ctx=z3.Context())
    shape = _shape(solver, n)
    solver.add(_failure(kind, shape, sysinfo))
    return budget.check(solver)


# --- realisations ----------------------------------------------------------------------------

def _chunk(sysinfo: TdxSysinfo, gib: int) -> int:
    """Size of the PAMT chunk of a `gib` GiB TDMR."""
    return sum(pamt_sizes(Tdmr(0, gib * SZ_1G), sysinfo))


def _pages_from(start: int, count: int) -> list[MemRange]:
    """`count` one-page regions, each a page apart, from `start`."""
    return [MemRange(start + 2 * PAGE * i, start + 2 * PAGE * i + PAGE) for i in range(count)]


def _one_tdmr_full_of_holes(n: int, sysinfo: TdxSysinfo) -> list[MemRange]:
    """TDMR [0, 1G): a region exactly one chunk long (its own PAMT lands there) and n-1
    one-page regions after it: 1 leading hole, n-1 gaps, 1 trailing hole, 1 PAMT area."""
    chunk = _chunk(sysinfo, 1)
    base = round_up(SZ_1M, chunk)
    return [MemRange(base, base + chunk), *_pages_from(base + chunk + PAGE, n - 1)]


def _one_region_per_gib(n: int, sysinfo: TdxSysinfo) -> list[MemRange]:
    """One page in each of n consecutive GiBs, the first at the top of its GiB and the last at
    the bottom of its GiB: n TDMRs on the smallest span."""
    regions = [MemRange(SZ_1G - PAGE, SZ_1G)]
    regions += [MemRange(i * SZ_1G + PAGE, i * SZ_1G + 2 * PAGE) for i in range(1, n - 1)]
    last = (n - 1) * SZ_1G
    if n > 2:
        regions.append(MemRange(last, last + PAGE))
    elif n == 2:
        regions.append(MemRange(last + PAGE, last + 2 * PAGE))
    return regions


def _split_at_1g(n: int, sysinfo: TdxSysinfo) -> list[MemRange]:
    """A first region crossing 1 GiB, big enough for the kernel's 2 GiB chunk and for two
    1 GiB chunks below 1 GiB, then n-1 one-page regions. Being first, the crossing region makes
    the kernel open one TDMR [0, 2G) that holds every hole; a planner may cut at 1 GiB."""
    half = max(2 * _chunk(sysinfo, 2), 2 * _chunk(sysinfo, 1))
    crossing = MemRange(SZ_1G - half, SZ_1G + half)
    return [crossing, *_pages_from(crossing.end + PAGE, n - 1)]


def _spread_for_merging(n: int, sysinfo: TdxSysinfo) -> list[MemRange]:
    """n regions one per GiB with 1 GiB between them, each big enough for the PAMT of a TDMR
    that merges up to max_reserved of them: the kernel needs n TDMRs, a planner fewer."""
    span = 2 * max(1, sysinfo.max_reserved_per_tdmr)
    size = round_up(_chunk(sysinfo, span), SZ_1M)
    return [MemRange(2 * i * SZ_1G + SZ_1M, 2 * i * SZ_1G + SZ_1M + size) for i in range(n)]


def _two_chunks_fit_low(n: int, sysinfo: TdxSysinfo) -> list[MemRange]:
    """TDMR [0, 1G): a region holding exactly two 1 GiB chunks and n-2 one-page regions; TDMR
    [4G, 5G) all memory. First-fit puts both chunks above 4 GiB; a placement that puts both in
    the low region adds two areas to its n holes."""
    chunk = _chunk(sysinfo, 1)
    base = round_up(SZ_1M, chunk)
    low = [MemRange(base, base + 2 * chunk), *_pages_from(base + 2 * chunk + PAGE, n - 2)]
    return [*low, MemRange(SZ_4G, SZ_4G + SZ_1G)]


Realisation = Callable[[int, TdxSysinfo], list[MemRange]]

REALISATIONS: dict[str, tuple[Realisation, ...]] = {
    RSVD_EXHAUSTED: (_one_tdmr_full_of_holes,),
    TDMRS_EXHAUSTED: (_one_region_per_gib,),
    KERNEL_FAILS_PLAN_EXISTS: (_split_at_1g, _spread_for_merging),
    PLACEMENT_BREAKS: (_two_chunks_fit_low,),
}


# --- the result ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Counterexample:
    """A smallest memory map of one kind, what the kernel model does on it, and why it is
    smallest. `status` is "found" or "not-found" (no realisation validated up to the bound)."""

    kind: str
    status: str
    sysinfo: TdxSysinfo
    profile: str
    regions: tuple[MemRange, ...] = ()
    kernel: ConstructResult | None = None
    proved_minimal: bool = False
    smaller: str = ""  # the query's answer with one region fewer: "unsat", "sat", "unknown"
    minimality: str = ""
    plan: Plan | None = None
    worst_case: WorstCase | None = None
    duration_s: float = 0.0
    notes: tuple[str, ...] = field(default=())

    @property
    def span(self) -> int:
        return self.regions[-1].end - self.regions[0].start if self.regions else 0

    def map_json(self) -> dict[str, Any]:
        """The map in the readers' JSON format, loadable with `checker.inputs.readers`."""
        comment = (f"{self.kind} counterexample ({self.profile}, {self.sysinfo.max_tdmrs} TDMRs, "
                   f"{self.sysinfo.max_reserved_per_tdmr} reserved areas, PAMT entries "
                   f"{self.sysinfo.pamt_entry_size})")
        return {"comment": comment, **memory_map_json(self.regions, sysinfo=self.sysinfo)}

    def to_json(self) -> dict[str, Any]:
        kernel = None
        if self.kernel is not None:
            kernel = {"ok": self.kernel.ok, "tdmrs": len(self.kernel.tdmrs),
                      "errno": None if self.kernel.ok else self.kernel.error.errno,
                      "message": None if self.kernel.ok else self.kernel.error.message,
                      "failed_tdmr": self.kernel.failed_tdmr}
        out = {"kind": self.kind, "status": self.status, "profile": self.profile,
               "map": self.map_json(), "region_count": len(self.regions),
               "span": hex(self.span), "kernel": kernel, "proved_minimal": self.proved_minimal,
               "smaller_query": self.smaller, "minimality": self.minimality,
               "duration_s": round(self.duration_s, 3), "notes": list(self.notes),
               "text": self.describe()}
        if self.plan is not None:
            out["plan"] = self.plan.to_json()
        if self.worst_case is not None:
            out["worst_case"] = self.worst_case.to_json()
        return out

    def describe(self) -> str:
        if self.status != "found":
            return f"{self.kind}: no map found ({'; '.join(self.notes)})"
        proof = ("proved: none with " if self.proved_minimal else "not proved: ") + \
            f"{len(self.regions) - 1} ({self.smaller})"
        lines = [f"{self.kind}: smallest map has {len(self.regions)} regions ({proof}), span "
                 f"{self.span:#x}"]
        lines += [f"  region {format_range(r.start, r.end)} node {r.nid}" for r in self.regions]
        k = self.kernel
        lines.append("  kernel (v6.8, first-fit): " + (
            f"succeeds with {len(k.tdmrs)} TDMRs" if k.ok
            else f"fails {k.error.errno}: {k.error.message}"))
        if self.plan is not None:
            lines += ["  " + line for line in self.plan.describe().splitlines()]
        if self.worst_case is not None:
            lines.append("  " + self.worst_case.describe())
        lines.append(f"  minimality: {self.minimality}")
        return "\n".join(lines)


def _validate(kind: str, regions: list[MemRange], sysinfo: TdxSysinfo, profile: Profile,
              budget: Budget) -> tuple[bool, ConstructResult, Plan | None, WorstCase | None]:
    """Does the model really break this way on the map?"""
    memlist = build_tdx_memlist(regions)
    if len(memlist) != len(regions):
        return False, construct_tdmrs(memlist, sysinfo, profile=profile), None, None
    kernel = construct_tdmrs(memlist, sysinfo, profile=profile)
    enospc = not kernel.ok and kernel.error.errno == -ENOSPC
    if kind == RSVD_EXHAUSTED:
        return enospc and kernel.failed_tdmr is not None, kernel, None, None
    if kind == TDMRS_EXHAUSTED:
        return enospc and kernel.failed_tdmr is None, kernel, None, None
    if kind == KERNEL_FAILS_PLAN_EXISTS:
        if not enospc:
            return False, kernel, None, None
        plan = plan_layout(memlist, sysinfo, profile=profile, budget=budget)
        return plan.status == "found" and not plan.violations, kernel, plan, None
    worst = worst_case_placement(memlist, sysinfo, ANY_NODE, profile=profile, budget=budget)
    broken = (worst.status == "breaks" and not worst.witness_result.ok
              and worst.witness_result.error.errno == -ENOSPC)
    return kernel.ok and broken, kernel, None, worst


def synthesise(kind: str, sysinfo: TdxSysinfo = TdxSysinfo(), profile: Profile = V6_8,
               timeout_ms: int = DEFAULT_TIMEOUT_MS, max_regions: int | None = None
               ) -> Counterexample:
    """The smallest map (fewest regions, then smallest span) of `kind` for these limits."""
    if profile.holes == HOLES_CMR:
        raise ValueError("counterexample synthesis builds memblock maps; the profile takes "
                         "holes from CMRs")
    if kind not in KINDS:
        raise ValueError(f"unknown counterexample kind {kind!r} (known: {', '.join(KINDS)})")
    started = time.monotonic()
    budget = Budget(timeout_ms)  # Z3 resource units shared by every query, the clock a guard
    limit = max_regions or sysinfo.max_tdmrs + sysinfo.max_reserved_per_tdmr + 4
    answers: dict[int, str] = {}

    def query(n: int) -> str:
        if n not in answers:
            answers[n] = region_count_query(kind, n, sysinfo, budget)
        return answers[n]

    notes = []
    for n in range(1, limit + 1):
        if budget.spent():
            notes.append(f"unknown from {n} regions on (inconclusive): {budget.cut}")
            break
        if query(n) == UNSAT:
            continue
        for realise in REALISATIONS[kind]:
            regions = realise(n, sysinfo)
            if len(regions) != n:
                continue
            ok, kernel, plan, worst = _validate(kind, regions, sysinfo, profile, budget)
            if ok:
                smaller = query(n - 1)
                return Counterexample(
                    kind, "found", sysinfo, profile.name, tuple(regions), kernel,
                    smaller == UNSAT, smaller, _minimality_text(kind, n, smaller, regions,
                                                                sysinfo),
                    plan, worst, time.monotonic() - started)
        allows = "allows it" if query(n) == SAT else "is unknown (inconclusive)"
        notes.append(f"{n} regions: the query {allows}, no realisation validated")
    else:
        notes.append(f"nothing up to {limit} regions")
    return Counterexample(kind, "not-found", sysinfo, profile.name, duration_s=time.monotonic()
                          - started, notes=tuple(notes[-3:]))


def _minimality_text(kind: str, n: int, smaller: str, regions: Sequence[MemRange],
                     sysinfo: TdxSysinfo) -> str:
    fewer = f"the region-count query for {kind} with {n - 1} regions is {smaller}"
    if smaller == UNSAT:
        head = f"{n} regions is the fewest: {fewer}"
    elif smaller == SAT:
        head = (f"not proved: {fewer}, but no map with {n - 1} regions was realised and "
                "validated")
    else:
        head = f"unknown: {fewer} (the solver budget ran out: inconclusive)"
    return (head + "; span: every region and every gap between regions is one page, except "
            "the regions that must hold PAMT chunks, which are as large as the chunks they hold "
            "(tightened by construction, not by a solver)")
