"""Smallest memory map and PAMT placement on which a profile's TDMR construction goes wrong.

Hypothesis draws cases that reach the boundaries (`checker.engines.mapstrategies`): region
ends on and next to GiB, 1 MiB and 4 GiB boundaries, many holes packed in one GiB, touching
regions on different nodes, TDMRs of 8 TiB and more, CMRs, small module limits, and PAMT chunks
placed first-fit, last-fit or next to a boundary the search picks. A case is a counterexample
when the profile's construction succeeds with a layout that breaks a layout invariant, or
when it departs from v6.8 on the same map and placement (SAME-AS-V6.8). The search knows
nothing of any particular bug. `hypothesis.find` with a fixed seed, no example database and a
fixed example budget makes the outcome deterministic, and its shrinking hands back a small
map: few regions, near address 0, offsets on the boundaries, first-fit where it will do.

The search replaces a breadth-first walk over a grid of half-GiB points: that grid was
exhaustive only over maps that never reach the cases above, and its points are among the
addresses drawn here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from time import perf_counter

from checker.engines.casesearch import OutOfTime, find_smallest
from checker.engines.mapstrategies import MapCase, map_cases
from invariants.layout import Violation, check_layout
from invariants.machine import SAME_AS_V6_8, differs_from_v6_8
from invariants.tdmr_reference import reference_construct
from spec.memory import MemRange, build_tdx_memlist
from spec.placement import FirstFit, LastFit, NearestPlacement, PamtAllocator
from spec.profiles import HOLES_CMR, Profile
from spec.sysinfo import TdxSysinfo
from spec.tdmr import ConstructResult, construct_tdmrs

EXAMPLES = 600  # cases generated per search, shrinking not counted
Construct = Callable[..., ConstructResult]


class ConstructionCrashed(RuntimeError):
    """The model raised instead of returning: a defect of the checker or of a mutated model,
    never a bug the search caught."""


@dataclass(frozen=True)
class Finding:
    """What went wrong on a case: the placement, the invariant, the lines saying so, and what
    was built."""

    placement: FirstFit | LastFit | NearestPlacement
    invariant: str
    texts: tuple[str, ...]
    result: ConstructResult
    bases: dict[int, int]  # the chunk base each TDMR got, as far as allocation went
    violations: tuple[Violation, ...] = ()

    @property
    def layout(self) -> bool:
        """A layout invariant broken (else a departure from v6.8)."""
        return bool(self.violations)


@dataclass(frozen=True)
class MapWitness:
    case: MapCase
    finding: Finding


@dataclass(frozen=True)
class SearchOutcome:
    witness: MapWitness | None
    examples: int  # cases examined, shrinking included
    first_find_s: float | None = field(default=None, compare=False)  # None: nothing found
    complete: bool = True  # False: the time bound stopped the search


class _Recording:
    """A placement policy that remembers the base its allocator hands to each TDMR, so that
    any placement can be replayed as explicit bases."""

    def __init__(self, policy) -> None:
        self.policy, self.name, self.bases = policy, policy.name, {}

    def allocator(self, memlist: tuple[MemRange, ...]) -> PamtAllocator:
        return _RecordingAllocator(self.policy.allocator(memlist), self.bases)


class _RecordingAllocator(PamtAllocator):
    def __init__(self, inner: PamtAllocator, bases: dict[int, int]) -> None:
        self.inner, self.bases = inner, bases

    def _alloc(self, index: int, size: int, nid: int) -> int | None:
        base = self.inner.alloc(index, size, nid)
        if base is not None:
            self.bases[index] = base
        return base


def _construct(construct: Construct, case: MapCase, placement, profile: Profile
               ) -> tuple[ConstructResult, dict[int, int]]:
    recording = _Recording(placement)
    try:
        result = construct(case.memlist, case.sysinfo, recording, case.cmrs, profile)
    except Exception as exc:
        raise ConstructionCrashed(
            f"construct_tdmrs under profile {profile.name} raised {type(exc).__name__}: {exc} "
            f"on {describe_case(case)}, placement {placement.name}") from exc
    return result, recording.bases


def examine(case: MapCase, profile: Profile, construct: Construct = construct_tdmrs
            ) -> list[Finding]:
    """The profile's construction on one case, each placement in turn, judged: a layout the
    module would get that breaks an invariant, or a departure from v6.8. `construct` stands
    in for `spec.tdmr.construct_tdmrs` (a mutated copy); v6.8 is always the plain reference."""
    holes = case.cmrs if profile.holes == HOLES_CMR else None
    name = profile.name if construct is construct_tdmrs else f"{profile.name} (mutated)"
    findings = []
    for placement in case.placements:
        result, bases = _construct(construct, case, placement, profile)
        if result.ok:
            found = check_layout(result.tdmrs, case.memlist, case.sysinfo, holes)
            if found:
                findings.append(Finding(placement, found[0].constraint,
                                        tuple(v.describe(result.tdmrs) for v in found),
                                        result, bases, tuple(found)))
                continue
        reference = reference_construct(case.memlist, case.sysinfo, placement)
        diff = differs_from_v6_8(profile, result, reference, name)
        if diff is not None:
            findings.append(Finding(placement, SAME_AS_V6_8.id, (diff,), result, bases))
    return findings


def find_case(goes_wrong: Callable[[MapCase], bool], with_cmrs: bool = False,
              examples: int = EXAMPLES, shrink: bool = True) -> MapCase | None:
    """The smallest map case for which `goes_wrong` holds (see `find_smallest`)."""
    return find_smallest(map_cases(with_cmrs=with_cmrs), goes_wrong, examples, shrink)


def smallest_violating_map(profile: Profile, examples: int = EXAMPLES,
                           construct: Construct = construct_tdmrs,
                           time_s: float | None = None) -> SearchOutcome:
    """The smallest case on which `profile` breaks a layout invariant, found in `examples`
    generated cases; failing that, the smallest on which it departs from v6.8. A layout
    invariant names the rule that broke, so it is preferred even on a larger map. A crash of
    the construction is raised as `ConstructionCrashed` on the smallest case that crashes.
    Past `time_s` the search stops, incomplete, with the smallest case found so far if any."""
    started, tried, first, departs = perf_counter(), 0, None, False
    best: MapWitness | None = None  # while shrinking, each case that goes wrong is smaller

    def judged(case: MapCase, layout_only: bool) -> bool:
        nonlocal tried, first, departs, best
        if time_s is not None and perf_counter() - started > time_s:
            raise OutOfTime
        tried += 1
        findings = examine(case, profile, construct)
        if findings and first is None:
            first = perf_counter() - started
        departs = departs or bool(findings)
        kept = [f for f in findings if f.layout] if layout_only else findings
        if kept:
            best = MapWitness(case, kept[0])
        return bool(kept)

    for layout_only in (True, False):
        if not layout_only and not departs:
            break  # the first pass saw every case the second would, and none departs
        try:
            case = find_case(lambda c, lo=layout_only: judged(c, lo),
                             profile.holes == HOLES_CMR, examples)
            if case is not None:
                _drop_spare_regions(case, lambda c, lo=layout_only: judged(c, lo))
        except OutOfTime:
            return SearchOutcome(best, tried, first, complete=False)
        if case is not None:
            return SearchOutcome(best, tried, first)  # the last case judged wrong is best
    return SearchOutcome(None, tried)


def _drop_spare_regions(case: MapCase, goes_wrong: Callable[[MapCase], bool]) -> MapCase:
    """The case with every region it can do without removed, one at a time. Hypothesis's
    shrinking is heuristic and now and then keeps a region the failure does not need (which
    one depends on the strategy's shape); this pass makes a found map minimal in its region
    count whatever the shape. CMRs drawn for the case are kept: they may then cover memory
    the case no longer has, as firmware's CMRs may."""
    i = 0
    while i < len(case.regions) > 1:
        regions = case.regions[:i] + case.regions[i + 1:]
        memlist = build_tdx_memlist(regions)
        cmrs = case.cmrs if case.cmrs != case.memlist else memlist
        smaller = replace(case, regions=regions, cmrs=cmrs)
        if memlist and goes_wrong(smaller):
            case = smaller
        else:
            i += 1
    return case


def describe_placement(finding: Finding) -> str:
    """The placement in words; for chunks nearest targets, the targets and where chunks went."""
    placement = finding.placement
    if isinstance(placement, NearestPlacement):
        targets = ", ".join(hex(t) for t in placement.targets) or "none"
        got = ", ".join(hex(finding.bases[i]) for i in sorted(finding.bases)) or "none"
        how = "ending nearest" if placement.by_end else "nearest to"
        return f"{how} targets [{targets}]: chunks at [{got}]"
    return placement.name


def describe_case(case: MapCase) -> str:
    """A case in one line: regions with nodes, CMRs if they differ from the memory, limits if
    not the real module's."""
    regions = " ".join(f"[0x{r.start:x}, 0x{r.end:x}) n{r.nid}" for r in case.regions)
    text = f"{len(case.regions)}-region map {regions}"
    if case.cmrs != case.memlist:
        text += ", CMRs " + " ".join(f"[0x{c.start:x}, 0x{c.end:x})" for c in case.cmrs)
    if case.sysinfo != TdxSysinfo():
        s = case.sysinfo
        text += (f", limits {s.max_tdmrs} TDMRs, {s.max_reserved_per_tdmr} areas, entries "
                 f"{'/'.join(map(str, s.pamt_entry_size))}")
    return text
