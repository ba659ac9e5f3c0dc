"""Flow checks for `verify`: explore a profile on a platform configuration against every flow
invariant, and replay stored traces."""

from __future__ import annotations

import inspect
from dataclasses import replace
from pathlib import Path

import spec.flow
from checker.counterexamples import Replay, ReplayError
from checker.explorer import Bounds, explore
from checker.platforms import flow_model, model_from_description
from checker.results import FAIL, INCONCLUSIVE, PASS, CheckResult, Location
from checker.suite import CheckSpec
from checker.trace import ReplayError as TraceReplayError
from checker.trace import replay, trace_to_json, trace_to_text
from invariants.flow import FlowInvariant, flow_invariants
from spec.profiles import Profile

# Configurations that model a caller breaking the `tdx_enable` contract on purpose, to test
# the kernel's own defences: the contract itself is then not the kernel's to keep.
CONTRACT_WAIVERS = {
    "unchecked-callers": ("PACKAGES-ONLINE-FOR-KEYS",),
}


def checked_invariants(flow, config: str) -> list[FlowInvariant]:
    waived = CONTRACT_WAIVERS.get(config, ())
    return [inv for inv in flow_invariants(flow) if inv.id not in waived]


def _location_of(function) -> Location:
    target = inspect.unwrap(function)
    return Location("spec", str(Path(inspect.getsourcefile(target))),
                    inspect.getsourcelines(target)[1], target.__qualname__)


def step_location(action: str, fallback) -> Location:
    """The `spec.flow` function that carries out a step's action: the model method named after
    the kernel function (`_config_global_keyid` for `config_global_keyid`), else the
    invariant's own spec function."""
    for holder in (spec.flow.TdxFlow, spec.flow):
        for name in (f"_{action}", action):
            function = getattr(holder, name, None)
            if callable(function):
                return _location_of(function)
    return _location_of(fallback)


def run_flow(check: CheckSpec) -> CheckResult:
    flow = flow_model(check.profile, check.config)
    invariants = checked_invariants(flow, check.config)
    by_id = {inv.id: inv for inv in invariants}
    bounds = Bounds(max_depth=check.bounds.max_depth, max_states=check.bounds.max_states,
                    max_seconds=check.bounds.time_s)
    outcome = explore(flow, invariants, bounds)
    waived = CONTRACT_WAIVERS.get(check.config, ())
    result = CheckResult(check.id, "FLOW", check.profile, check.config, PASS,
                         states=outcome.distinct_states,
                         statement="every flow invariant holds in every reachable state",
                         source="invariants/flow.py",
                         extra={"transitions": outcome.transitions,
                                "depth": outcome.max_depth,
                                "states_per_second": round(outcome.distinct_states
                                                           / max(outcome.seconds, 1e-9)),
                                "waived": list(waived)})
    if outcome.verdict == "fail":
        violation = outcome.violation
        invariant = by_id[violation.invariant]
        trace = violation.trace
        text = trace_to_text(trace, flow)
        last = trace.steps[-1][0] if trace.steps else None
        location = step_location(last.action, invariant.spec_function) if last \
            else _location_of(invariant.spec_function)
        return replace(result, status=FAIL, invariant=invariant.id,
                       statement=invariant.statement, source=invariant.source,
                       detail=f"{invariant.id} violated after {len(trace.steps)} steps "
                              f"(shortest, {outcome.distinct_states} states)",
                       counterexample={"kind": "trace", "trace": trace_to_json(trace, flow),
                                       "text": text},
                       location=location)
    if outcome.verdict == "inconclusive":
        return replace(result, status=INCONCLUSIVE, bound=outcome.bound_hit,
                       detail=f"bounded, not exhaustive: {outcome.bound_hit} bound hit after "
                              f"{outcome.distinct_states} states; no violation so far")
    note = f" (caller contract waived: {', '.join(waived)})" if waived else ""
    return replace(result, detail=f"{len(invariants)} invariants hold on all "
                   f"{outcome.distinct_states} states, depth {outcome.max_depth}{note}")


def replay_trace(doc: dict, body: dict, profile: Profile, name: str) -> Replay:
    """Re-run a stored trace on the model it names: still violating when the recorded
    invariant fails on its last step again."""
    data = body.get("trace")
    if not isinstance(data, dict) or "model" not in data:
        raise ReplayError(f"{name}: the counterexample holds no trace")
    try:
        flow = model_from_description(data["model"])
        trace = replay(flow, data)
    except (KeyError, TraceReplayError) as exc:
        return Replay(False, f"the trace no longer runs on the model: {exc}",
                      doc.get("invariant", "?"))
    invariant = {inv.id: inv for inv in flow_invariants(flow)}.get(data.get("invariant"))
    if invariant is None:
        raise ReplayError(f"{name}: unknown invariant {data.get('invariant')!r}")
    still = not _holds_at_end(flow, invariant, trace)
    trace.invariant = invariant.id if still else None
    text = trace_to_text(trace, flow)
    recorded = body.get("result")
    return Replay(still, text, invariant.id, None if recorded is None else recorded == text)


def _holds_at_end(flow, invariant: FlowInvariant, trace) -> bool:
    """The invariant on the trace's last state or transition; for a liveness property
    ("eventually"), whether a goal state is still reachable from the last state."""
    last = trace.steps[-1][1] if trace.steps else trace.initial
    if invariant.kind == "state":
        return invariant.check(last)
    if invariant.kind == "transition":
        if not trace.steps:
            return True
        before = trace.steps[-2][1] if len(trace.steps) > 1 else trace.initial
        return invariant.check(before, trace.steps[-1][0], last)
    return _goal_reachable(flow, last, invariant.check)


def _goal_reachable(flow, start, goal) -> bool:
    seen, frontier = {flow.canonical(start)}, [start]
    while frontier:
        state = frontier.pop()
        if goal(state):
            return True
        for _, nxt in flow.successors(state):
            key = flow.canonical(nxt)
            if key not in seen:
                seen.add(key)
                frontier.append(nxt)
    return False
