"""Smallest machine on which a profile's init flow breaks a flow invariant.

The flow checks of `verify` run on a handful of named configurations; a rule of `spec/` that
only shows on another machine (two KeyIDs, a module allowing one reserved area, a hot block in
a hole, no machine checks but a sleep request) slips past them. This search draws small
machines that reach those boundaries (`flow_cases`: KeyID counts either side of the two the
kernel needs, module limits of none to two, a module without NO_RBP_MOD, a part without the
erratum, hibernation offered or not, one to three callers, each environment event on or off, a
fault or none) and explores each
one exhaustively with every flow invariant. Like the map search it knows no bug: what fails is
whatever invariant the case breaks, TDX-USABLE and TDX-ONLY-WHERE-POSSIBLE first among them
(the platform judged apart from the flow model).

`hypothesis.find` with a fixed seed, no database and a fixed budget of cases makes the answer
deterministic, and its shrinking hands back a small machine with few events on. A case whose
exploration hits the state bound is not judged (`SearchOutcome.bounded` counts them).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from time import perf_counter

from hypothesis import strategies as st

from checker.engines.bfs import FAIL, INCONCLUSIVE, ExplorationResult, ModelRaised, Violation
from checker.engines.casesearch import OutOfTime, find_smallest
from checker.engines.explorer import Bounds, explore
from checker.engines.mapstrategies import BOUNDARY_OFFSETS
from invariants.flow import flow_invariants
from spec.flow import FlowConfig, TdxFlow
from spec.memory import SZ_1G, SZ_1M, MemRange
from spec.platform import SZ_128M, Platform
from spec.profiles import Profile
from spec.sysinfo import TdxSysinfo

EXAMPLES = 200  # machines generated per search, shrinking not counted
MAX_STATES = 40_000  # per machine: past it the machine is not judged

# Each choice lists the real or plain value first, so that shrinking goes there.
KEYIDS = (63, 2, 1, 3, 0)  # the two the kernel needs, and either side
MAX_TDMRS = (64, 1, 2)
MAX_RESERVED = (16, 0, 1, 2)
CALLERS = ((1,), (1, 1), (2,))
# Where init runs at boot (v7.1), caller 0 is the initcall, which spends its one load at once:
# the choices are then about KVM (loading once or twice, or two of them).
BOOT_CALLERS = ((1, 1), (1, 2), (1, 1, 1))
HIBERNATION = ((False,), (True,), (False, True))
_FLAG = st.sampled_from((False, True))
_ON = st.sampled_from((True, False))
# Region edges: a GiB count, plus an offset from the GiB boundary (on it, a page or a MiB
# either side, half a GiB).
_EDGE = st.builds(lambda k, off: max(k * SZ_1G + off, SZ_1M), st.integers(0, 4),
                  st.sampled_from(BOUNDARY_OFFSETS))


@st.composite
def _regions(draw) -> tuple[MemRange, ...]:
    """One to three regions between boundary-biased edges, touching or apart, on one or two
    nodes. Every edge is page-aligned and at or above 1 MiB, so every region is TDX memory."""
    edges = sorted(set(draw(st.lists(_EDGE, min_size=2, max_size=6))))
    if len(edges) < 2:
        edges.append(edges[0] + SZ_1G)
    regions, i = [], 0
    while i + 1 < len(edges) and len(regions) < 3:
        regions.append(MemRange(edges[i], edges[i + 1], draw(st.integers(0, 1))))
        i += 1 if draw(_FLAG) else 2  # the next region touches this one, or a hole between
    return tuple(regions)


def _hot_spots(regions: tuple[MemRange, ...]) -> list[MemRange]:
    """Where a 128 MB hot block may go: right after the last region, inside the first hole
    wide enough, or across the last region's end (partly boot memory already)."""
    last = regions[-1]
    spots = [MemRange(last.end, last.end + SZ_128M, last.nid)]
    spots += [MemRange(a.end, a.end + SZ_128M, a.nid) for a, b in pairwise(regions)
              if b.start - a.end >= SZ_128M][:1]
    if last.end - last.start > SZ_128M:
        spots.append(MemRange(last.end - SZ_128M // 2, last.end + SZ_128M // 2, last.nid))
    return spots


@st.composite
def flow_cases(draw, init_at_boot: bool = False) -> FlowConfig:
    """A small machine and what may happen on it (see the module docstring), for a kernel
    that initialises at boot or not."""
    packages = draw(st.integers(1, 2))
    cpus = draw(st.integers(1, 2)) if packages == 1 else 1
    regions = draw(_regions())
    hot = draw(st.sampled_from(((), *((spot,) for spot in _hot_spots(regions)))))
    platform = Platform(
        packages=packages, cpus_per_package=cpus, regions=regions, hot_blocks=hot,
        sysinfo=TdxSysinfo(draw(st.sampled_from(MAX_TDMRS)),
                           draw(st.sampled_from(MAX_RESERVED))),
        erratum=draw(_ON), module_no_rbp_mod=draw(_ON),
        private_keyids=draw(st.sampled_from(KEYIDS)))
    return FlowConfig(
        name="searched", platform=platform,
        caller_loads=draw(st.sampled_from(BOOT_CALLERS if init_at_boot else CALLERS)),
        fault_budget=draw(st.sampled_from((0, 1))),
        boot_hibernation=draw(st.sampled_from(HIBERNATION)),
        cpu_hotplug=draw(_FLAG), memory_hotplug=bool(hot) and draw(_FLAG),
        sleep_requests=draw(_FLAG), machine_checks=draw(_FLAG),
        alloc_faults=draw(_FLAG), module_update=draw(_FLAG))


@dataclass(frozen=True)
class PlatformWitness:
    config: FlowConfig
    violation: Violation
    states: int  # explored on the witness machine


@dataclass(frozen=True)
class SearchOutcome:
    witness: PlatformWitness | None
    examples: int  # machines explored, shrinking included
    bounded: int  # of those, how many hit the state bound (not judged)
    states: int  # explored over all machines
    complete: bool = True  # False: the time bound stopped the search


class PlatformCrashed(RuntimeError):
    """The flow model raised on a searched machine (`config`): a defect of the checker or of a
    mutated model, never a bug the search caught. `raised` holds the trace to the state whose
    steps raised, when the exploration got that far."""

    def __init__(self, message: str, config: FlowConfig, raised: ModelRaised | None) -> None:
        super().__init__(message)
        self.config, self.raised = config, raised

    def __reduce__(self):
        return PlatformCrashed, (str(self), self.config, self.raised)


def judge(profile: Profile, config: FlowConfig, max_states: int = MAX_STATES,
          stop_at_first: bool = True) -> ExplorationResult:
    """Every flow invariant on one machine, explored up to `max_states`; a model that raises
    is reported as `PlatformCrashed`, naming the machine."""
    try:
        flow = TdxFlow(profile, config)
        return explore(flow, flow_invariants(flow), Bounds(max_states=max_states),
                       stop_at_first=stop_at_first)
    except ModelRaised as exc:
        raise PlatformCrashed(f"the {profile.name} flow on {describe_config(config)}: {exc}",
                              config, exc) from exc
    except Exception as exc:
        raise PlatformCrashed(f"the {profile.name} flow raised {type(exc).__name__}: {exc} on "
                              f"{describe_config(config)}", config, None) from exc


def smallest_violating_platform(profile: Profile, examples: int = EXAMPLES,
                                time_s: float | None = None,
                                max_states: int = MAX_STATES) -> SearchOutcome:
    """The smallest machine, among `examples` drawn ones and their shrinks, on which `profile`
    breaks a flow invariant. Past `time_s` the search stops, incomplete, with the smallest
    machine found so far if any."""
    started = perf_counter()
    tried = bounded = states = 0
    best: PlatformWitness | None = None

    def goes_wrong(config: FlowConfig) -> bool:
        nonlocal tried, bounded, states, best
        if time_s is not None and perf_counter() - started > time_s:
            raise OutOfTime
        result = judge(profile, config, max_states)
        tried += 1
        states += result.distinct_states
        if result.verdict == INCONCLUSIVE:
            bounded += 1
        if result.verdict != FAIL:
            return False
        best = PlatformWitness(config, result.violation, result.distinct_states)
        return True

    try:
        find_smallest(flow_cases(profile.init_at_boot), goes_wrong, examples)
    except OutOfTime:
        return SearchOutcome(best, tried, bounded, states, complete=False)
    return SearchOutcome(best, tried, bounded, states)


def broken_anywhere(profile: Profile, examples: int = EXAMPLES) -> set[str]:
    """Every invariant that some drawn machine breaks, each machine explored in full and none
    shrunk (what the invariant benchmark counts)."""
    broken: set[str] = set()

    def record(config: FlowConfig) -> bool:
        broken.update(judge(profile, config, stop_at_first=False).violations)
        return False  # never "found": every machine of the budget is drawn

    find_smallest(flow_cases(profile.init_at_boot), record, examples)
    return broken


def describe_config(config: FlowConfig) -> str:
    """A searched machine in one line: topology, memory, module, callers, what may happen."""
    p = config.platform
    memory = " ".join(f"[0x{r.start:x}, 0x{r.end:x}) n{r.nid}" for r in p.regions)
    hot = "".join(f", hot block [0x{b.start:x}, 0x{b.end:x}) n{b.nid}" for b in p.hot_blocks)
    module = (f"{p.private_keyids} KeyIDs, limits {p.sysinfo.max_tdmrs} TDMRs and "
              f"{p.sysinfo.max_reserved_per_tdmr} areas"
              + ("" if p.module_no_rbp_mod else ", no NO_RBP_MOD")
              + ("" if p.erratum else ", no erratum"))
    events = [name for name, on in (
        ("CPU hotplug", config.cpu_hotplug), ("memory hotplug", config.memory_hotplug),
        ("S3/hibernation requests", config.sleep_requests),
        ("machine checks", config.machine_checks), ("allocation failures", config.alloc_faults),
        ("a module update", config.module_update)) if on]
    hibernation = {(False,): "off", (True,): "on"}.get(config.boot_hibernation, "either")
    return (f"machine {p.shape}, memory {memory}{hot}; {module}; callers loading "
            f"{'/'.join(map(str, config.caller_loads))} time(s), {config.fault_budget} "
            f"fault(s), hibernation {hibernation}; events: {', '.join(events) or 'none'}")
