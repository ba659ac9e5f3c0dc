"""Flow checks for `verify`: explore a profile on a platform configuration against every flow
invariant."""

from __future__ import annotations

import inspect
from dataclasses import asdict, replace
from pathlib import Path

import spec
from checker.engines.coverage import explore_with_coverage
from checker.engines.explorer import Bounds, ModelRaised, explore
from checker.engines.platformsearch import (
    MAX_STATES,
    PlatformCrashed,
    describe_config,
    smallest_violating_platform,
)
from checker.gate.results import ERROR, FAIL, INCONCLUSIVE, PASS, CheckResult, Location
from checker.gate.suite import CheckSpec
from checker.inputs.platforms import config_json, configure, flow_model
from checker.views.trace import raised_to_text, trace_to_json, trace_to_text
from invariants.flow import FlowInvariant, flow_invariants
from spec.flow import TdxFlow
from spec.profiles import get_profile

MODEL_ROOT = Path(spec.__file__).resolve().parent.parent

# Configurations that model a caller breaking the `tdx_enable` contract on purpose, to test
# the kernel's own defences: the contract itself is then not the kernel's to keep.
CONTRACT_WAIVERS = {
    "unchecked-callers": ("PACKAGES-ONLINE-FOR-KEYS",),
}


def checked_invariants(flow, config: str) -> list[FlowInvariant]:
    waived = CONTRACT_WAIVERS.get(config, ())
    return [inv for inv in flow_invariants(flow) if inv.id not in waived]


def flow_recipe(profile: str, config: str, **flags) -> tuple:
    """The model and the invariants a flow check explores, built from names (a configuration
    name or PxC, with `configure`'s flags): with `functools.partial` a picklable recipe for
    workers that cannot inherit them (Ray)."""
    flow = flow_model(profile, configure(config, **flags))
    return flow, checked_invariants(flow, config)


def _location_of(function) -> Location:
    target = inspect.unwrap(function)
    return Location("spec", str(Path(inspect.getsourcefile(target))),
                    inspect.getsourcelines(target)[1], target.__qualname__)


def step_location(flow, label, fallback) -> Location:
    """The line of `spec/` whose rule took a step (where the model made its label), else the
    invariant's own spec function."""
    site = flow.label_sites.get(label)
    if site is None:
        return _location_of(fallback)
    file, line, function = site
    return Location("spec", file, line, function)


def _portable(location: Location) -> dict:
    """A location as a counterexample document keeps it: the file relative to the folder that
    holds `spec/`, so a document (and its content-hash name) is the same in every checkout."""
    site = asdict(location)
    site["file"] = Path(location.file).resolve().relative_to(MODEL_ROOT).as_posix()
    return site


def _raised(result: CheckResult, flow, raised: ModelRaised, where: str = "",
            machine: dict | None = None) -> CheckResult:
    """`result` errored: the model raised (a defect of `spec/` or of an invariant, never a
    verdict on the kernel). The trace to the state whose steps raised is kept for whoever
    changed the model, and the location is the line that raised."""
    file, line, function = raised.where
    return replace(result, status=ERROR, invariant="CHECKER-ERROR", detail=f"{raised}{where}",
                   counterexample={"kind": "trace",
                                   "trace": _trace_json(raised.trace, flow, machine),
                                   "text": raised_to_text(raised, headline=False)},
                   location=Location("spec", file, line, function))


def _trace_json(trace, flow, machine: dict | None) -> dict:
    """A trace as a counterexample document holds it, its model naming `machine` in full
    when given (a searched machine no configuration name stands for)."""
    trace_json = trace_to_json(trace, flow)
    if machine is not None:
        trace_json["model"] = {**trace_json["model"], "configuration": machine}
    return trace_json


def run_flow(check: CheckSpec) -> CheckResult:
    flow = flow_model(check.profile, check.config)
    invariants = checked_invariants(flow, check.config)
    by_id = {inv.id: inv for inv in invariants}
    bounds = Bounds(max_depth=check.bounds.max_depth, max_states=check.bounds.max_states,
                    max_seconds=check.bounds.time_s)
    result = CheckResult(check.id, "FLOW", check.profile, check.config, PASS,
                         statement="every flow invariant holds: in every reachable state "
                                   "and step, or as a goal still reachable",
                         source="invariants/flow.py")
    coverage = None
    try:
        if flow.profile.kind != "bug":  # real kernels: what the suite exercises of them
            outcome, coverage = explore_with_coverage(flow, invariants, bounds)
        else:
            outcome = explore(flow, invariants, bounds)
    except ModelRaised as raised:
        return _raised(result, flow, raised)
    waived = CONTRACT_WAIVERS.get(check.config, ())
    extra = {"transitions": outcome.transitions, "depth": outcome.max_depth,
             "states_per_second": round(outcome.distinct_states / max(outcome.seconds, 1e-9)),
             "waived": list(waived)}
    if coverage is not None:
        extra["coverage"] = coverage.to_json()
    result = replace(result, states=outcome.distinct_states, extra=extra)
    if outcome.verdict == "fail":
        return _failed(result, flow, by_id[outcome.violation.invariant], outcome.violation,
                       outcome.distinct_states)
    if outcome.verdict == "inconclusive":
        return replace(result, status=INCONCLUSIVE, bound=outcome.bound_hit,
                       detail=f"bounded, not exhaustive: {outcome.bound_hit} bound hit after "
                              f"{outcome.distinct_states} states; no violation so far")
    note = f" (caller contract waived: {', '.join(waived)})" if waived else ""
    return replace(result, detail=f"{len(invariants)} invariants hold on all "
                   f"{outcome.distinct_states} states, depth {outcome.max_depth}{note}")


def _failed(result: CheckResult, flow, invariant: FlowInvariant, violation,
            states: int, where: str = "", machine: dict | None = None) -> CheckResult:
    """`result` failed by `violation` of `invariant` on `flow`, with its trace as the
    counterexample (its model naming `machine` in full, when given) and the spec/ line of its
    last step as the location."""
    trace = violation.trace
    trace_json = _trace_json(trace, flow, machine)
    last = trace.steps[-1][0] if trace.steps else None
    location = step_location(flow, last, invariant.spec_function) if last \
        else _location_of(invariant.spec_function)
    sites = [_portable(step_location(flow, label, invariant.spec_function))
             for label, _ in trace.steps]
    detail = (f"{invariant.id} violated{where}: no run reaches what it asks for (all "
              f"{states} states explored)" if invariant.kind == "reachable" else
              f"{invariant.id} violated{where} after {len(trace.steps)} steps (shortest, "
              f"{states} states)")
    return replace(result, status=FAIL, invariant=invariant.id, statement=invariant.statement,
                   source=invariant.source, detail=detail,
                   counterexample={"kind": "trace", "trace": trace_json,
                                   "text": trace_to_text(trace, flow, invariant.kind),
                                   "sites": sites},
                   location=location)


def run_platforms(check: CheckSpec) -> CheckResult:
    """Every flow invariant on small searched machines (`checker.engines.platformsearch`): the
    smallest machine that breaks one is the counterexample, its trace recorded with the
    machine written out in full so that it replays."""
    profile = get_profile(check.profile)
    result = CheckResult(check.id, "FLOW", check.profile, check.config, PASS,
                         statement="every flow invariant holds on every searched machine",
                         source="invariants/flow.py")
    try:
        outcome = smallest_violating_platform(profile, time_s=check.bounds.time_s)
    except PlatformCrashed as crashed:
        if crashed.raised is None:  # the model could not be built: run_check reports it
            raise
        return _raised(result, TdxFlow(profile, crashed.config), crashed.raised,
                       f" on {describe_config(crashed.config)}", config_json(crashed.config))
    result = replace(result, states=outcome.states,
                     extra={"machines": outcome.examples, "bounded": outcome.bounded})
    witness = outcome.witness
    if witness is not None:
        flow = TdxFlow(profile, witness.config)
        invariant = {inv.id: inv for inv in flow_invariants(flow)}[witness.violation.invariant]
        failed = _failed(result, flow, invariant, witness.violation, witness.states,
                         f" on {describe_config(witness.config)}", config_json(witness.config))
        if not outcome.complete:
            failed = replace(failed, detail=failed.detail + " (shrinking cut short by the "
                             "time bound)")
        return failed
    if not outcome.complete or outcome.bounded:
        why = (f"time {check.bounds.time_s:g} s" if not outcome.complete
               else f"{outcome.bounded} machines past {MAX_STATES} states")
        return replace(result, status=INCONCLUSIVE, bound=why,
                       detail=f"no violation on the {outcome.examples} machines judged, but "
                       f"{why}: bounded, not exhaustive")
    return replace(result, detail=f"{outcome.examples} small machines searched, none breaks "
                   f"a flow invariant ({outcome.states} states; a fixed sample, not a proof)")
