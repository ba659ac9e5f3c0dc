"""Traces as JSON (schema-versioned, replayable) and as text for people.

Generic over models whose step labels are NamedTuples (or anything with a stable `str`).
A JSON trace records the model description, which initial state it starts from, each step's
label and the state fields the step changed; `replay` re-runs the model and insists every
label names exactly one successor and every recorded change happens again.
"""

from __future__ import annotations

from typing import Any

from checker.engines.explorer import ModelRaised, Trace, model_trace

SCHEMA = "tdx-host-checker/trace"
SCHEMA_VERSION = 1


class ReplayError(ValueError):
    """The trace does not run on this model (a label matches no successor, or differs)."""


def label_json(label: Any) -> Any:
    return dict(label._asdict()) if hasattr(label, "_asdict") else str(label)


def _fields(model, state) -> dict[str, str]:
    fields = getattr(model, "state_fields", None)
    return fields(state) if fields else {"state": repr(state)}


def changed_fields(model, before, after) -> dict[str, tuple[str, str]]:
    """{field: (old, new)} for every field the step changed."""
    old, new = _fields(model, before), _fields(model, after)
    return {k: (old.get(k, ""), new.get(k, "")) for k in new if old.get(k) != new.get(k)}


def trace_to_json(trace: Trace, model) -> dict:
    initial = list(model.initial_states()).index(trace.initial)
    steps, previous = [], trace.initial
    for label, state in trace.steps:
        changes = changed_fields(model, previous, state)
        steps.append({"step": label_json(label),
                      "changed": {k: list(v) for k, v in changes.items()}})
        previous = state
    return {"schema": SCHEMA, "version": SCHEMA_VERSION, "model": trace.model,
            "invariant": trace.invariant, "initial": initial, "length": len(steps),
            "steps": steps}


def replay(model, data: dict) -> Trace:
    """Run a JSON trace on `model`; the trace it produces, or ReplayError."""
    if data.get("schema") != SCHEMA or data.get("version") != SCHEMA_VERSION:
        raise ReplayError(f"not a version {SCHEMA_VERSION} trace: "
                          f"{data.get('schema')} {data.get('version')}")
    initials = list(model.initial_states())
    index = data["initial"]
    if not 0 <= index < len(initials):
        raise ReplayError(f"initial state {index} does not exist ({len(initials)} known)")
    current = initials[index]
    steps = []
    for number, recorded in enumerate(data["steps"], 1):
        matches = [(lab, s) for lab, s in model.successors(current)
                   if label_json(lab) == recorded["step"]]
        if len(matches) != 1:
            what = "no successor" if not matches else f"{len(matches)} successors"
            raise ReplayError(f"step {number}: {what} for {recorded['step']}")
        label, state = matches[0]
        changes = {k: list(v) for k, v in changed_fields(model, current, state).items()}
        if changes != recorded["changed"]:
            raise ReplayError(f"step {number}: state changed differently: {changes}")
        steps.append((label, state))
        current = state
    return model_trace(model, initials[index], steps, data.get("invariant"))


def step_text(label: Any) -> str:
    """`action [actor] cpu N: SEAMCALL -> result (injected) - detail` for NamedTuple labels
    (or their JSON form, a dict)."""
    if isinstance(label, dict):
        d = label
    elif hasattr(label, "_asdict"):
        d = label._asdict()
    else:
        return str(label)
    text = f"{d.get('action')} [{d.get('actor')}]"
    if d.get("cpu") is not None:
        text += f" cpu {d['cpu']}"
    if d.get("seamcall"):
        text += f": {d['seamcall']} -> {d.get('result')}"
    elif d.get("result") is not None:
        text += f" -> {d['result']}"
    if d.get("injected"):
        text += "   [injected]"
    if d.get("detail"):
        text += f"   ({d['detail']})"
    return text


def raised_to_text(raised: ModelRaised, headline: bool = True) -> str:
    """A model's error for people: what it raised and where (the `headline`), then the trace
    to the state whose steps raised (that state's fields, when it is an initial state)."""
    lines = [f"{raised}; the trace to that state:"] if headline else []
    if raised.trace.steps:
        lines.append(trace_to_text(raised.trace, raised.model))
    else:
        lines += [f"      {name}: {value}"
                  for name, value in _fields(raised.model, raised.trace.initial).items()]
    return "\n".join(lines)


def trace_to_text(trace: Trace, model, kind: str | None = None) -> str:
    """The steps with the fields each changed, under a headline naming the property; `kind`
    is the property's (a "reachable" one is broken by an initial state, not by steps)."""
    lines = []
    if trace.invariant and kind == "reachable":
        lines.append(f"violates {trace.invariant}: no run from this initial state reaches "
                     "what it asks for (every reachable state was explored)")
        lines += [f"      {name}: {value}" for name, value in _fields(model, trace.initial).items()]
    elif trace.invariant:
        lines.append(f"violates {trace.invariant} after {len(trace)} steps")
    previous = trace.initial
    for number, (label, state) in enumerate(trace.steps, 1):
        lines.append(f"{number:3d} {step_text(label)}")
        changes = changed_fields(model, previous, state)
        for name, (old, new) in changes.items():
            lines.append(f"      {name}: {old} -> {new}")
        if not changes:
            lines.append("      (changes nothing)")
        previous = state
    return "\n".join(lines)
