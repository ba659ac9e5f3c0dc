"""Coverage of flow explorations, as TLC reports action coverage.

For each kernel function or event (a step's `action`) and each of its outcomes, how many
transitions took it; for each invariant, in how many reached states (state and liveness
properties) or transitions (transition properties) it had something to check, that is where
its `applies` antecedent held. A step no run takes cannot show a bug, and an invariant that
never applies cannot catch one: those are the blind spots a coverage report lists.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import spec.flow
import spec.seamldr
from checker.engines.explorer import Bounds, ExplorationResult, explore

STATES, STEPS = "states", "steps"


def model_actions(modules=(spec.flow, spec.seamldr)) -> tuple[str, ...]:
    """Every action the flow model can label a step with, read from its source (the flow
    and the rules mixed into it): the first argument of each `_label(...)` or `Step(...)`
    call that is a string constant."""
    found = set()
    for module in modules:
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            if isinstance(node, ast.Call) and node.args:
                name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
                first = node.args[0]
                if name in ("_label", "Step") and isinstance(first, ast.Constant) \
                        and isinstance(first.value, str):
                    found.add(first.value)
    return tuple(sorted(found))


def outcome_of(label) -> str:
    """A step's outcome as coverage counts it: its result (the SEAMCALL's outcome, or the
    errno the function returned), marked when a fault was injected."""
    outcome = label.result if label.result is not None else "-"
    return f"{outcome} (injected)" if label.injected else outcome


@dataclass
class Coverage:
    """Counts from one or more explorations (`merged` adds them up)."""

    actions: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # action -> outcome ->
    invariants: dict[str, int] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)  # invariant -> STATES or STEPS
    known_actions: tuple[str, ...] = ()

    @classmethod
    def of_run(cls, result: ExplorationResult, counts: dict[str, int], units: dict[str, str],
               known_actions: Sequence[str]) -> Coverage:
        coverage = cls(invariants=dict(counts), units=dict(units),
                       known_actions=tuple(known_actions))
        for label, count in (result.label_counts or {}).items():
            coverage.actions[label.action] = coverage.actions.get(label.action, 0) + count
            per = coverage.outcomes.setdefault(label.action, {})
            outcome = outcome_of(label)
            per[outcome] = per.get(outcome, 0) + count
        return coverage

    def merged(self, other: Coverage) -> Coverage:
        out = Coverage(dict(self.actions), {a: dict(o) for a, o in self.outcomes.items()},
                       dict(self.invariants), {**self.units, **other.units},
                       tuple(sorted(set(self.known_actions) | set(other.known_actions))))
        for action, count in other.actions.items():
            out.actions[action] = out.actions.get(action, 0) + count
        for action, outcomes in other.outcomes.items():
            per = out.outcomes.setdefault(action, {})
            for outcome, count in outcomes.items():
                per[outcome] = per.get(outcome, 0) + count
        for ident, count in other.invariants.items():
            out.invariants[ident] = out.invariants.get(ident, 0) + count
        return out

    @property
    def unexercised_actions(self) -> list[str]:
        return [a for a in self.known_actions if not self.actions.get(a)]

    @property
    def vacuous_invariants(self) -> list[str]:
        return sorted(i for i, count in self.invariants.items() if not count)

    def to_json(self) -> dict:
        return {"actions": {a: {"transitions": self.actions.get(a, 0),
                                "outcomes": dict(sorted(self.outcomes.get(a, {}).items()))}
                            for a in sorted(set(self.known_actions) | set(self.actions))},
                "invariants": {i: {"applies": count, "in": self.units.get(i, STATES)}
                               for i, count in sorted(self.invariants.items())},
                "unexercised_actions": self.unexercised_actions,
                "vacuous_invariants": self.vacuous_invariants}

    @classmethod
    def from_json(cls, data: dict) -> Coverage:
        actions = {a: v["transitions"] for a, v in data["actions"].items() if v["transitions"]}
        outcomes = {a: dict(v["outcomes"]) for a, v in data["actions"].items() if v["outcomes"]}
        return cls(actions, outcomes,
                   {i: v["applies"] for i, v in data["invariants"].items()},
                   {i: v["in"] for i, v in data["invariants"].items()},
                   tuple(sorted(data["actions"])))

    def render_text(self, outcomes: bool = True) -> str:
        """Two tables: steps by action (and outcome), invariants by where they applied."""
        lines = ["coverage: transitions per step"]
        for action in sorted(set(self.known_actions) | set(self.actions)):
            count = self.actions.get(action, 0)
            lines.append(f"  {action:<28} {count:>12,}" + ("" if count else "   never taken"))
            if outcomes and count:
                for outcome, n in sorted(self.outcomes.get(action, {}).items()):
                    lines.append(f"      {outcome:<40} {n:>12,}")
        lines.append("coverage: where each invariant had something to check")
        for ident, count in sorted(self.invariants.items()):
            unit = self.units.get(ident, STATES)
            lines.append(f"  {ident:<28} {count:>12,} {unit}"
                         + ("" if count else "   never applies (vacuous)"))
        return "\n".join(lines)


def counting_properties(properties: Iterable) -> tuple[list, dict[str, int], dict[str, str]]:
    """The properties rewrapped so that each counts where its `applies` holds; the explorer's
    shortcuts (`concerns`, `reads`, `watches`) are dropped so every state and step is seen."""
    counts: dict[str, int] = {}
    units: dict[str, str] = {}
    wrapped = []
    for prop in properties:
        counts[prop.id] = 0
        units[prop.id] = STEPS if prop.kind == "transition" else STATES
        wrapped.append(replace(prop, check=_counting(prop, counts), concerns=None, reads=None,
                               watches=None))
    return wrapped, counts, units


def _counting(prop, counts: dict[str, int]):
    check, applies, ident = prop.check, prop.applies, prop.id
    if prop.kind == "transition":
        def counted_step(state, label, after) -> bool:
            if applies(state, label, after):
                counts[ident] += 1
            return check(state, label, after)
        return counted_step

    def counted_state(state) -> bool:
        if applies(state):
            counts[ident] += 1
        return check(state)
    return counted_state


def explore_with_coverage(model, properties: Sequence, bounds: Bounds | None = None,
                          symmetry: bool = True) -> tuple[ExplorationResult, Coverage]:
    """Explore as `explore` does, counting coverage on the way (slower: every property is
    checked on every state and step)."""
    bounds = bounds or Bounds()
    wrapped, counts, units = counting_properties(properties)
    result = explore(model, wrapped, bounds, symmetry, count_labels=True)
    return result, Coverage.of_run(result, counts, units, model_actions())
