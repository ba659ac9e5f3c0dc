"""Flow checks for `verify`: explore a profile on a platform configuration against every flow
invariant."""

from __future__ import annotations

import inspect
from dataclasses import asdict, replace
from pathlib import Path

import spec
from checker.engines.coverage import explore_with_coverage
from checker.engines.explorer import Bounds, explore
from checker.gate.results import FAIL, INCONCLUSIVE, PASS, CheckResult, Location
from checker.gate.suite import CheckSpec
from checker.inputs.platforms import configure, flow_model
from checker.views.trace import trace_to_json, trace_to_text
from invariants.flow import FlowInvariant, flow_invariants

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


def run_flow(check: CheckSpec) -> CheckResult:
    flow = flow_model(check.profile, check.config)
    invariants = checked_invariants(flow, check.config)
    by_id = {inv.id: inv for inv in invariants}
    bounds = Bounds(max_depth=check.bounds.max_depth, max_states=check.bounds.max_states,
                    max_seconds=check.bounds.time_s)
    coverage = None
    if flow.profile.kind != "bug":  # real kernels: what the suite exercises of them
        outcome, coverage = explore_with_coverage(flow, invariants, bounds)
    else:
        outcome = explore(flow, invariants, bounds)
    waived = CONTRACT_WAIVERS.get(check.config, ())
    extra = {"transitions": outcome.transitions, "depth": outcome.max_depth,
             "states_per_second": round(outcome.distinct_states / max(outcome.seconds, 1e-9)),
             "waived": list(waived)}
    if coverage is not None:
        extra["coverage"] = coverage.to_json()
    result = CheckResult(check.id, "FLOW", check.profile, check.config, PASS,
                         states=outcome.distinct_states,
                         statement="every flow invariant holds: in every reachable state "
                                   "and step, or as a goal still reachable",
                         source="invariants/flow.py", extra=extra)
    if outcome.verdict == "fail":
        violation = outcome.violation
        invariant = by_id[violation.invariant]
        trace = violation.trace
        text = trace_to_text(trace, flow, invariant.kind)
        last = trace.steps[-1][0] if trace.steps else None
        location = step_location(flow, last, invariant.spec_function) if last \
            else _location_of(invariant.spec_function)
        sites = [_portable(step_location(flow, label, invariant.spec_function))
                 for label, _ in trace.steps]
        return replace(result, status=FAIL, invariant=invariant.id,
                       statement=invariant.statement, source=invariant.source,
                       detail=f"{invariant.id} violated: no run reaches what it asks for "
                              f"(all {outcome.distinct_states} states explored)"
                       if invariant.kind == "reachable" else
                       f"{invariant.id} violated after {len(trace.steps)} steps "
                       f"(shortest, {outcome.distinct_states} states)",
                       counterexample={"kind": "trace", "trace": trace_to_json(trace, flow),
                                       "text": text, "sites": sites},
                       location=location)
    if outcome.verdict == "inconclusive":
        return replace(result, status=INCONCLUSIVE, bound=outcome.bound_hit,
                       detail=f"bounded, not exhaustive: {outcome.bound_hit} bound hit after "
                              f"{outcome.distinct_states} states; no violation so far")
    note = f" (caller contract waived: {', '.join(waived)})" if waived else ""
    return replace(result, detail=f"{len(invariants)} invariants hold on all "
                   f"{outcome.distinct_states} states, depth {outcome.max_depth}{note}")
