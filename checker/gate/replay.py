"""Replaying a stored counterexample: a map (rebuild the TDMRs and test a property of the
result) or a flow trace (re-run it on the model it names). Replaying gives the same text as the
run that found it and says whether it still violates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checker.inputs.platforms import model_from_description
from checker.inputs.readers import read_json_map
from checker.views.tdmr_report import TdmrOptions, analyse
from checker.views.trace import ReplayError as TraceReplayError
from checker.views.trace import replay, trace_to_text
from invariants.flow import FlowInvariant, flow_invariants
from spec.profiles import Profile, get_profile

SCHEMA_VERSION = 1
# What a map counterexample shows, and so what "still violates" means on replay.
LAYOUT_VIOLATED = "layout-violated"  # construction succeeds with a layout breaking invariants
CONSTRUCT_FAILS = "construct-fails"  # construction fails with the recorded errno


@dataclass(frozen=True)
class Replay:
    """What replaying found: does the counterexample still violate, the result in words, and
    whether that is word for word the result recorded when it was found."""

    still_violates: bool
    text: str
    invariant: str
    same_as_recorded: bool | None = None


class ReplayError(ValueError):
    """A counterexample file that cannot be replayed (exit 2)."""


def load_document(path: str | Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReplayError(f"{path}: not a counterexample file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION \
            or not isinstance(doc.get("counterexample"), dict):
        raise ReplayError(f"{path}: not a counterexample file (schema_version "
                          f"{SCHEMA_VERSION} with a 'counterexample' object expected)")
    return doc


def replay_document(doc: dict[str, Any], name: str = "<counterexample>") -> Replay:
    body = doc["counterexample"]
    kind = body.get("kind")
    try:
        profile = get_profile(doc.get("profile", ""))
    except KeyError as exc:
        raise ReplayError(f"{name}: {exc.args[0]}") from None
    if kind == "map":
        return _replay_map(doc, body, profile, name)
    if kind == "trace":
        return replay_trace(doc, body, profile, name)
    raise ReplayError(f"{name}: unknown counterexample kind {kind!r}")


def _replay_map(doc, body, profile, name: str) -> Replay:
    machine = read_json_map(json.dumps(body["map"]), name)
    placement = None if machine.pamt_bases is not None else body.get("placement", "first-fit")
    report = analyse(machine, TdmrOptions(profile, placement, explain=False))
    prop = body.get("property")
    if prop == LAYOUT_VIOLATED:
        found = report["layout_check"]["violations"]
        still = bool(found)
        text = "\n".join(v["text"] for v in found) or "the layout now satisfies every invariant"
    elif prop == CONSTRUCT_FAILS:
        error = report["error"]
        still = error is not None and error["errno"] == body.get("errno")
        text = (f"construction fails: {error['message']} ({error['errno']})" if error
                else f"construction now succeeds ({report['pamt_kb']} KB of PAMT)")
    else:
        raise ReplayError(f"{name}: unknown map property {prop!r}")
    recorded = body.get("result")
    return Replay(still, text, doc.get("invariant", "?"),
                  None if recorded is None else recorded == text)


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
