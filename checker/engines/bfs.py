"""The breadth-first search in one process, and the vocabulary every search engine shares
(bounds, traces, violations, results; `checker.engines.explorer` is the front door).

It knows nothing of TDX. A model offers:
- `initial_states()`: an iterable of hashable states;
- `successors(state)`: an iterable of `(label, next_state)` in a deterministic order;
- `canonical(state)`: a representative of the state's symmetry class (used unless
  `symmetry=False`);
- optionally `state_fields(state) -> dict[str, str]` and `describe() -> dict`, for traces.

A property offers `id` and `kind`, and by kind:
- "state": `check(state) -> bool`, true when the state is fine, and optionally
  `reads`: the names of the state fields the check looks at (states are then NamedTuples);
  a new state whose fields named there are the very objects of its parent's is not checked
  again (the parent was, with the same answer);
- "transition": `check(state, label, next_state) -> bool`, and optionally
  `concerns(label) -> bool`: false for labels it always passes, which are then not checked,
  and `watches`: the name of the one state field (states are then NamedTuples) whose
  change it looks for: it passes every step after which that field holds the very object it
  held before, so also every step that leaves the state as it is (such steps are then not
  checked);
- "eventually": `check(state) -> bool` names goal states; the property holds when a goal is
  reachable from every reachable state (checked only after an exhaustive run);
- "reachable": the same, but a goal need only be reachable from every initial state: what
  must stay possible (the module can be initialised), where "eventually" is what must stay
  possible from anywhere. A violation's trace is the initial state that reaches no goal. It
  needs no edges: an initial state at the root of a goal's path in the search tree reaches
  it, and only an initial state no goal's path starts from is searched again, alone.

Breadth-first order makes every reported trace a shortest one: states are expanded layer by
layer, so the first violation found of each property is at the smallest depth. Only canonical
states are stored; a trace is turned back into concrete steps by replaying the model from a
real initial state and picking, at each depth, the first successor with the recorded
canonical form.

A model or property that raises while a state's steps are taken ends the search with
`ModelRaised`, which carries the shortest trace to that state: whoever changed the model sees
how it got there, as for a violation.
"""

from __future__ import annotations

import os
import sysconfig
import time
import traceback
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from operator import is_
from typing import Any

import numpy as np

from checker.engines.fingerprints import (
    MASK,
    FingerprintTable,
    MemoBudget,
    SpillBuffer,
    StateCodec,
    collision_probability,
    default_memory_budget,
    fingerprint,
    keep_frontier_values,
)

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
GOAL_KINDS = ("eventually", "reachable")  # properties judged on the whole graph at the end


@dataclass(frozen=True)
class Bounds:
    """Limits on one run; hitting any makes an otherwise clean run "bounded, not exhaustive"."""

    max_depth: int | None = None
    max_states: int | None = None
    max_seconds: float | None = None


@dataclass
class Trace:
    """A run of the model: an initial state and the (label, state) steps taken from it."""

    initial: Any
    steps: list[tuple[Any, Any]]
    model: dict = field(default_factory=dict)
    invariant: str | None = None

    def __len__(self) -> int:
        return len(self.steps)

    def __bool__(self) -> bool:
        """A trace of no steps is still a trace: an initial state that breaks a property, or
        from which a "reachable" property's goal cannot be reached."""
        return True

    @property
    def states(self) -> list:
        return [self.initial] + [s for _, s in self.steps]


class ModelRaised(Exception):
    """The model, or a property, raised while the search took the steps of a state (or
    checked an initial one): the error, where in the code it was raised (`file`, absolute,
    `line`, `function`), the shortest trace to that state (its last state is the one whose
    steps raised; a walk's steps up to there, for a simulation) and the model, to show the
    trace's states. A defect of the model, never a verdict on it."""

    def __init__(self, error: str, where: tuple[str, int, str], trace: Trace,
                 model=None) -> None:
        self.error, self.where, self.trace, self.model = error, where, trace, model
        file, line, function = where
        shown = os.path.relpath(file) if os.path.isabs(file) else file
        if shown.startswith(".."):
            shown = file
        state = (f"a state {len(trace)} step{'' if len(trace) == 1 else 's'} from the start"
                 if trace.steps else "an initial state")
        super().__init__(f"the model raised {error} at {shown}:{line} in {function}, taking "
                         f"the steps of {state}")

    def __reduce__(self):  # the model stays behind (a process has its own)
        return ModelRaised, (self.error, self.where, self.trace)


ENGINE_ERRORS = (MemoryError, OSError, EOFError)  # the machine's or a spill file's, not the model's


def describe_raise(exc: BaseException) -> tuple[str, tuple[str, int, str]]:
    """An exception as `ModelRaised` names it: `Type: message` (its first line, cut to 200
    characters), and the innermost frame of its traceback in a file of the model's (not
    Python's own library, not code generated at run time such as a dataclass's methods)."""
    frames = traceback.extract_tb(exc.__traceback__)
    paths = sysconfig.get_paths()
    installed = (paths["purelib"], paths["platlib"])  # inside stdlib's folder, not of it
    ours = [f for f in frames if not f.filename.startswith("<") and (
        not f.filename.startswith(paths["stdlib"]) or f.filename.startswith(installed))]
    message = f"{type(exc).__name__}: {exc}".splitlines()[0]
    if len(message) > 200:
        message = message[:197] + "..."
    if not ours:
        return message, ("?", 0, "?")
    return message, (os.path.abspath(ours[-1].filename), ours[-1].lineno or 0, ours[-1].name)


def raised_at(model, canon, initial_list: Sequence, parent: array, action: array, ident: int,
              error: str, where: tuple[str, int, str]) -> ModelRaised:
    """`ModelRaised` for an error (`describe_raise`) met taking the steps of state `ident`."""
    path = canonical_path(model, canon, initial_list, parent, action, ident)
    return ModelRaised(error, where, concrete_trace(model, canon, initial_list, path), model)


@contextmanager
def blaming_start(model, start) -> Iterator[None]:
    """An error of the model met on the initial state `start` (its canonical form, a property
    checked on it) becomes `ModelRaised`, with a trace of no steps."""
    try:
        yield
    except ENGINE_ERRORS:
        raise
    except Exception as exc:
        raise ModelRaised(*describe_raise(exc), model_trace(model, start, []), model) from exc


def model_trace(model, initial, steps: list, invariant: str | None = None) -> Trace:
    """A trace of `model`, carrying the model's own description (`describe`, when it has
    one) so that it can be replayed."""
    describe = getattr(model, "describe", None)
    return Trace(initial, steps, describe() if describe else {}, invariant)


@dataclass
class Violation:
    invariant: str
    depth: int
    trace: Trace


class FindsViolations:
    """What a search result says of the violation it reports first (`violation`, None when
    it found none): shared by the breadth-first and the random-walk results."""

    violation: Violation | None

    @property
    def violated(self) -> str | None:
        return self.violation.invariant if self.violation else None

    @property
    def trace(self) -> Trace | None:
        return self.violation.trace if self.violation else None


@dataclass
class ExplorationResult(FindsViolations):
    verdict: str
    violations: dict[str, Violation]
    distinct_states: int
    transitions: int
    max_depth: int
    seconds: float
    bound_hit: str | None
    symmetry: bool
    properties: tuple[str, ...]
    graph: StateGraph | None = None
    label_counts: dict | None = None  # with `count_labels`: transitions per distinct label
    fingerprints: bool = False  # states kept as fingerprints (`explore(fingerprints=True)`)
    seen_bytes: int = 0  # bytes of the seen set and the parent links, in fingerprint mode
    spilled_bytes: int = 0  # frontier bytes written to disk
    workers: int = 1
    forgotten: int = 0  # times the model's memo tables were emptied to keep to the budget

    @property
    def violation(self) -> Violation | None:
        """The first violation found (the shortest, when the run stopped at it)."""
        return next(iter(self.violations.values()), None)

    @property
    def states_per_second(self) -> float:
        return self.distinct_states / self.seconds if self.seconds > 0 else float("inf")

    @property
    def collision_probability(self) -> float | None:
        """In fingerprint mode, TLC's estimate of the chance that a fingerprint collision hid
        a state (`fingerprints.collision_probability`); None in the exact mode."""
        if not self.fingerprints:
            return None
        return collision_probability(self.distinct_states,
                                     self.transitions + self.distinct_states)

    def summary(self) -> str:
        head = {PASS: "holds", FAIL: f"FAILS {self.violated}",
                INCONCLUSIVE: "bounded, not exhaustive"}[self.verdict]
        bound = f" (bound hit: {self.bound_hit})" if self.bound_hit else ""
        return (f"{head}{bound}: {self.distinct_states:,} distinct states, "
                f"{self.transitions:,} transitions, depth {self.max_depth}, "
                f"{self.seconds:.2f} s, {self.states_per_second:,.0f} states/s")


@dataclass
class StateGraph:
    """The explored graph: canonical states by id (BFS order) and labelled edges."""

    states: list
    edges: list[tuple[int, Any, int]]
    initial: list[int]


@dataclass(frozen=True)
class Progress:
    """Where a run is, passed to `explore`'s `progress` after each level."""

    depth: int
    states: int
    transitions: int
    frontier: int
    seconds: float


def breadth_first(model, properties: Sequence, bounds: Bounds, symmetry: bool,
                  stop_at_first: bool,
             keep_graph: bool, count_labels: bool, fingerprints: bool = False,
             memory_budget: int | None = None, spill_dir: str | None = None,
             progress: Callable | None = None) -> ExplorationResult:
    started = time.perf_counter()
    if memory_budget is None:
        memory_budget = default_memory_budget()
    canon = model.canonical if symmetry else _identity
    state_props = [p for p in properties if p.kind == "state"]
    step_props = [p for p in properties if p.kind == "transition"]
    goal_props = [p for p in properties if p.kind in GOAL_KINDS]
    # The seen set: states by id (exact mode), or fingerprints by id; a state's id is its
    # place in BFS order, its parent's id and the number of the step out of the parent that
    # reached it are kept for traces.
    seen: dict[Any, int] | FingerprintTable = FingerprintTable() if fingerprints else {}
    states: list = []
    parent = array("i")
    action = array("H")
    edged = [p.kind == "eventually" for p in goal_props]  # the goals that need the edges
    edges = _Edges() if any(edged) else None  # edges that may lead to a goal state
    goal_checks = [p.check for p in goal_props]
    at_goal = [bytearray() for _ in goal_props]  # per goal property, a flag per state by id
    graph_edges: list[tuple[int, Any, int]] = []
    found: dict[str, tuple[int, int, Any, Any]] = {}  # id -> (depth, state id, label, next)
    transitions = 0
    bound_hit = None
    deadline = started + bounds.max_seconds if bounds.max_seconds else None
    label_counts: dict | None = {} if count_labels else None

    def note(prop_id: str, depth: int, ident: int, label=None, nxt=None) -> None:
        if prop_id not in found:
            found[prop_id] = (depth, ident, label, nxt)

    initial_list = list(model.initial_states())
    codec = None
    if fingerprints and initial_list:
        with blaming_start(model, initial_list[0]):
            codec = StateCodec.for_state(canon(initial_list[0]))
    frontier = SpillBuffer(codec.parts, memory_budget, spill_dir) if codec else None
    count = 0  # states stored
    for number, start in enumerate(initial_list):
        with blaming_start(model, start):
            state = canon(start)
            if codec is not None:
                record = codec.record(state)
                key = fingerprint(record)
            else:
                key = state
            if seen.setdefault(key, count) != count:
                continue
            parent.append(-1)
            action.append(number)
            if codec is not None:
                frontier.append(record)
            else:
                states.append(state)
            for prop in state_props:
                if not prop.check(state):
                    note(prop.id, 0, count)
        count += 1
    initial_ids = list(range(count))
    first_state = canon(initial_list[0]) if initial_list else None
    # The BFS loop below runs once per transition, so everything it touches is bound to a
    # local name first, and the transition properties that matter are looked up per label.
    successors, seen_setdefault = model.successors, seen.setdefault
    states_append, parent_append, action_append = states.append, parent.append, action.append
    state_checks_for = state_checks_by_fields(state_props, type(first_state))
    fields = getattr(first_state, "_fields", ())
    step_checks_get, step_checks = transition_checks_by_label(step_props, fields, unchanged=False)
    loop_checks_get, loop_checks = transition_checks_by_label(step_props, fields, unchanged=True)
    one_goal, one_goal_flags = (goal_checks[0], at_goal[0]) if edged == [True] \
        else (None, None)
    if codec is not None:
        state_type, part_hash = codec.state_type, codec.part_hash
        parts = [(part, getter, table.get) for part, (getter, table)
                 in enumerate(zip(codec.getters, codec.hashes, strict=True))]
        slot_keys, slot_ids, slot_mask = seen.keys, seen.ids, seen.mask
    max_states, max_depth, clock = bounds.max_states, bounds.max_depth, time.perf_counter
    level_start, level_end = 0, count
    spilled = 0  # frontier bytes written to disk, over every level
    # With fingerprints, the model's memo tables are emptied once they outgrow the memory
    # budget, and after such a level the codec's part values that the next frontier does not
    # need.
    memo, forgotten, forgotten_before = MemoBudget(model, memory_budget), 0, 0
    depth = 0  # depth of the deepest state discovered so far
    stop = bool(found) and stop_at_first
    while level_end > level_start and not stop and bound_hit is None:
        if max_depth is not None and depth >= max_depth:
            bound_hit = "depth"
            break
        if codec is not None:
            records, frontier = frontier, SpillBuffer(codec.parts, memory_budget, spill_dir)
            level = zip(range(level_start, level_end), records, strict=True)
        else:
            records, level = None, ((i, None) for i in range(level_start, level_end))
        ident = None
        try:
            for ident, record in level:
                # The clock is read before every expansion (some 50 ns, against tens of
                # microseconds an expansion takes), so a run of slow expansions cannot carry the
                # search past the deadline: it stops at most one expansion late.
                if deadline is not None and clock() > deadline:
                    bound_hit = "time"
                    break
                if max_states is not None and count >= max_states:
                    bound_hit = "states"
                    break
                if codec is not None and not ident & 1023 and memo.over():
                    model.forget()
                    forgotten += 1
                if record is None:
                    state = states[ident]
                else:
                    state = codec.decode(record)
                # States are expanded in id order, so the goal flags line up with the ids. Edges
                # out of a state that is a goal of every "eventually" property decide nothing.
                if one_goal is not None:  # the usual case, spelt out
                    reached = one_goal(state)
                    one_goal_flags.append(reached)
                    record_edges = not reached
                else:
                    record_edges = False
                    for flags, goal, needs_edges in zip(at_goal, goal_checks, edged, strict=True):
                        reached = goal(state)
                        flags.append(reached)
                        record_edges = record_edges or (needs_edges and not reached)
                steps = successors(state)
                if not isinstance(steps, (list, tuple)):
                    steps = list(steps)
                transitions += len(steps)
                if label_counts is not None:
                    for label, _ in steps:
                        label_counts[label] = label_counts.get(label, 0) + 1
                for number, (label, nxt) in enumerate(steps):
                    if nxt is state:  # a step that changes nothing (a refused request)
                        checks = loop_checks_get(label)
                        if checks is None:
                            checks = loop_checks(label)
                        for prop_id, check, _ in checks:
                            if not check(state, label, nxt) and prop_id not in found:
                                note(prop_id, depth + 1, ident, label, nxt)
                        if keep_graph:  # a self-loop never helps reach a goal state
                            graph_edges.append((ident, label, ident))
                        continue
                    checks = step_checks_get(label)
                    if checks is None:
                        checks = step_checks(label)
                    for prop_id, check, watched in checks:
                        if watched is not None and state[watched] is nxt[watched]:
                            continue
                        if not check(state, label, nxt) and prop_id not in found:
                            note(prop_id, depth + 1, ident, label, nxt)
                    nxt = canon(nxt)
                    if record is None:
                        key = nxt  # hashed once, by the dict
                    else:  # its parts' hashes, each found by one look-up, summed
                        if type(nxt) is not state_type:
                            codec.check(nxt)  # raises the error that says what is wrong
                        total = 0
                        child = []
                        for part, get_part, get_hash in parts:
                            value = get_part(nxt)
                            code = get_hash(value)
                            if code is None:
                                code = part_hash(part, value)
                            total += code
                            child.append(code)
                        key = (total & MASK) or 1
                    fresh = count
                    if record is None:
                        target = seen_setdefault(key, fresh)
                    else:  # `FingerprintTable.setdefault`, spelt out
                        slot = key & slot_mask
                        held = slot_keys[slot]
                        while held:
                            if held == key:
                                target = slot_ids[slot]
                                break
                            slot = (slot + 1) & slot_mask
                            held = slot_keys[slot]
                        else:
                            target = fresh
                            slot_keys[slot] = key
                            slot_ids[slot] = fresh
                            seen.count += 1
                            if seen.count > seen.limit:
                                seen._grow()
                                slot_keys, slot_ids, slot_mask = seen.keys, seen.ids, seen.mask
                    if target == fresh:
                        count += 1
                        parent_append(ident)
                        action_append(number)
                        if record is None:
                            states_append(nxt)
                        else:
                            frontier.append(child)
                        for prop_id, check in state_checks_for(state, nxt):
                            if not check(nxt) and prop_id not in found:
                                note(prop_id, depth + 1, target)
                    if record_edges:
                        edges.add(target)
                    if keep_graph:
                        graph_edges.append((ident, label, target))
                if edges is not None:
                    edges.close_state()
                if found and stop_at_first:
                    stop = True
                    break
        except ENGINE_ERRORS:
            raise
        except Exception as exc:  # the model's defect: say how it got to the state
            if ident is None:  # before any state: reading the frontier failed
                raise
            raise raised_at(model, canon, initial_list, parent, action, ident,
                           *describe_raise(exc)) from exc
        if records is not None:
            spilled += records.spilled_bytes
            records.close()
            if forgotten > forgotten_before:  # under pressure: the codec too
                keep_frontier_values(codec, frontier)
                forgotten_before = forgotten
        if count > level_end:
            depth += 1
        level_start, level_end = level_end, count
        if progress is not None:
            progress(Progress(depth, count, transitions, level_end - level_start,
                              time.perf_counter() - started))
    if frontier is not None:
        spilled += frontier.spilled_bytes
        frontier.close()
    exhaustive = bound_hit is None and not stop
    if exhaustive and goal_props:
        for prop, flags in zip(goal_props, at_goal, strict=True):
            assert len(flags) == count  # an exhaustive run expanded every state
            if prop.kind == "reachable":
                stuck = first_start_without_goal(model, prop, initial_list, parent, action,
                                                 flags, len(initial_ids), symmetry,
                                                 fingerprints)
            else:
                stuck = edges.first_stuck_state(flags)
            if stuck is not None:
                note(prop.id, _depth(parent, stuck), stuck)
    elapsed = time.perf_counter() - started
    violations = {}
    for prop_id, (_, ident, _label, nxt) in sorted(found.items(),
                                                        key=lambda kv: (kv[1][0], kv[1][1])):
        prop = next(p for p in properties if p.id == prop_id)
        path = canonical_path(model, canon, initial_list, parent, action, ident)
        trace = concrete_trace(model, canon, initial_list, path, prop, nxt)
        violations[prop_id] = Violation(prop_id, len(trace), trace)
    if violations:
        verdict = FAIL
    else:
        verdict = INCONCLUSIVE if bound_hit else PASS
    graph = StateGraph(states, graph_edges, initial_ids) if keep_graph else None
    seen_bytes = seen.nbytes + parent.itemsize * len(parent) + action.itemsize * len(action) \
        if fingerprints else 0
    return ExplorationResult(verdict, violations, count, transitions, depth, elapsed,
                             bound_hit, symmetry, tuple(p.id for p in properties), graph,
                             label_counts, fingerprints, seen_bytes, spilled,
                             forgotten=forgotten)


class _Edges:
    """The edges out of the states expanded so far that may lead to a goal state, for the
    "eventually" properties: the targets in one flat array, grouped by source (states are
    expanded in id order), and where each source's group ends."""

    def __init__(self) -> None:
        self.targets = array("I")
        self.ends = array("I")
        self.add = self.targets.append

    def close_state(self) -> None:
        self.ends.append(len(self.targets))

    def first_stuck_state(self, at_goal: bytearray) -> int | None:
        """The lowest-id (so shallowest) state from which no goal state is reachable."""
        ends = np.frombuffer(self.ends, np.uint32)
        sources = np.repeat(np.arange(len(ends), dtype=np.uint32),
                            np.diff(ends, prepend=np.uint32(0)))
        return first_stuck_state(len(at_goal), sources, self.targets, at_goal)


def _identity(state):
    return state


def transition_checks_by_label(props: Sequence, fields: Sequence[str], unchanged: bool):
    """The transition checks `(id, check, watched)` that concern a label, as
    `(get, compute)`: `get` is the `get` of a memo dict from labels to their checks,
    `compute(label)` fills it in (the explorer calls it when `get` answers None). Without any
    `concerns`, `get` answers every label at once.

    A transition property may offer `concerns(label) -> bool`, false for labels whose steps it
    passes whatever the states are (it looks only at some actions, say); it is then not called
    on them. Without `concerns` it is checked on every step. `watched` is None, or the index
    of the field the property `watches` (`fields` are the state type's field names): a step
    that leaves that field's object in place needs no check. With `unchanged`, the checks are
    those for steps that leave the state as it is, which leaves out every property that
    watches a field. Labels must be hashable when some property offers `concerns`.
    """
    def watched(prop) -> int | None:
        name = getattr(prop, "watches", None)
        return None if name is None else fields.index(name)

    if unchanged:
        props = [p for p in props if getattr(p, "watches", None) is None]
    entries = [(p, (p.id, p.check, watched(p))) for p in props]
    if all(getattr(p, "concerns", None) is None for p in props):
        everywhere = tuple(entry for _, entry in entries)
        return (lambda label: everywhere), None
    memo: dict[Any, tuple] = {}

    def compute(label) -> tuple:
        checks = tuple(entry for p, entry in entries
                       if getattr(p, "concerns", None) is None or p.concerns(label))
        memo[label] = checks
        return checks

    return memo.get, compute


def state_checks_by_fields(props: Sequence, state_type: type | None):
    """A function from (parent, new state) to the state checks `(id, check)` the new state
    needs.

    A property that declares `reads` (field names of NamedTuple states of `state_type`, the
    type of the initial states) is left out when each of those fields of the new state is the
    very object its parent holds: the answer is the parent's, which was checked when it was
    stored (a failure there is recorded already). Which fields are the same objects is one
    mask per new state; the checks per mask are memoised.
    """
    everywhere = tuple((p.id, p.check) for p in props)
    fields = getattr(state_type, "_fields", None)
    if fields is None or all(getattr(p, "reads", None) is None for p in props):
        return lambda parent, state: everywhere
    index = {name: i for i, name in enumerate(fields)}
    memo: dict[tuple, tuple] = {}

    def checks_for(parent, state) -> tuple:
        if type(state) is not state_type or type(parent) is not state_type:
            return everywhere
        same = tuple(map(is_, parent, state))
        checks = memo.get(same)
        if checks is None:
            checks = tuple((p.id, p.check) for p in props
                           if getattr(p, "reads", None) is None
                           or not all(same[index[name]] for name in p.reads))
            memo[same] = checks
        return checks

    return checks_for


def _depth(parent: array, ident: int) -> int:
    depth = 0
    while parent[ident] >= 0:
        ident = parent[ident]
        depth += 1
    return depth


@dataclass(frozen=True)
class _NoGoal:
    """A state property that a goal state breaks: a search for it stops at the first goal."""

    goal: Callable
    id: str = "NO-GOAL"
    kind: str = "state"

    def check(self, state) -> bool:
        return not self.goal(state)


class _StartingAt:
    """`model` with one initial state, for a search from there."""

    def __init__(self, model, start) -> None:
        self.model, self.start = model, start

    def initial_states(self) -> list:
        return [self.start]

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def goal_reachable(model, start, goal: Callable, symmetry: bool = True,
                   fingerprints: bool = False) -> bool:
    """Whether some state `goal` names is reachable from `start` (a search from there alone,
    in the given mode, that stops at the first goal)."""
    search = breadth_first(_StartingAt(model, start), [_NoGoal(goal)], Bounds(), symmetry, True,
                           False, False, fingerprints=fingerprints)
    return search.verdict == FAIL


def first_start_without_goal(model, prop, initial_list: Sequence, parent: array,
                             action: array, at_goal, starts: int, symmetry: bool,
                             fingerprints: bool) -> int | None:
    """The lowest initial id (`starts` of them: the first ids) from which no goal of `prop`
    is reachable, after an exhaustive search that recorded each state's parent and goal flag
    (a byte each). An initial state at the root of some goal's path reaches it; any other is
    searched again alone (in the search's mode, stopping at the first goal), as a goal may
    still lie beyond a step into states first reached from another start."""
    root = np.frombuffer(parent, np.int32).astype(np.int64)
    orphans = root < 0
    root[orphans] = np.flatnonzero(orphans)
    while True:  # pointer jumping: log2(depth) rounds over the parent links
        further = root[root]
        if np.array_equal(further, root):
            break
        root = further
    reached = np.frombuffer(at_goal, np.uint8).astype(bool)
    settled = set(np.unique(root[reached]).tolist())
    for start in range(starts):
        if start not in settled and not goal_reachable(model, initial_list[action[start]],
                                                       prop.check, symmetry, fingerprints):
            return start
    return None


def first_stuck_state(count: int, sources, targets, at_goal) -> int | None:
    """The lowest-id (so shallowest) state from which no goal state is reachable, given the
    goal flag of every state (a byte each, in a buffer) and the edges (`sources[k]` to
    `targets[k]`, sequences of integers or buffers of unsigned 32-bit ones) out of the states
    that are not goals. A backward breadth-first search from the goals, a whole layer of
    predecessors at a time."""
    sources = np.asarray(sources, np.uint32)
    targets = np.asarray(targets, np.uint32)
    predecessors = sources[np.argsort(targets, kind="stable")]
    starts = np.zeros(count + 1, np.int64)  # of state t: predecessors[starts[t]:starts[t + 1]]
    np.cumsum(np.bincount(targets, minlength=count), out=starts[1:])
    can_reach = np.frombuffer(at_goal, np.uint8).astype(bool)
    layer = np.flatnonzero(can_reach)
    while layer.size:
        first, sizes = starts[layer], starts[layer + 1] - starts[layer]
        ends = np.cumsum(sizes)
        # the positions of the layer's predecessors, range after range
        places = np.arange(ends[-1]) + np.repeat(first - ends + sizes, sizes)
        found = predecessors[places]
        layer = np.unique(found[~can_reach[found]])
        can_reach[layer] = True
    stuck = np.flatnonzero(~can_reach)
    return int(stuck[0]) if stuck.size else None


def canonical_path(model, canon, initial_list: Sequence, parent: array, action: array,
                   ident: int) -> list[tuple[Any, Any]]:
    """The canonical states from an initial one to state `ident`, each with the label of the
    step that reached it (None for the first): the recorded step numbers replayed on the
    model, whose successors come in a deterministic order."""
    path = []
    while ident >= 0:
        path.append(ident)
        ident = parent[ident]
    path.reverse()
    state = canon(initial_list[action[path[0]]])
    out = [(None, state)]
    for ident in path[1:]:
        label, nxt = list(model.successors(state))[action[ident]]
        state = canon(nxt)
        out.append((label, state))
    return out


def concrete_trace(model, canon, initial_list: Sequence, path: list, prop=None,
                   nxt=None) -> Trace:
    """Turn the canonical path (plus the violating step, for transition properties) into
    concrete steps of the model: from a real initial state, at each depth the first successor
    with the recorded canonical form (the one with the recorded label, if any). Without a
    property, the trace of the path alone."""
    target = path[0][1]
    current = next(s for s in initial_list if canon(s) == target)
    initial = current
    steps: list[tuple[Any, Any]] = []
    for label, wanted in path[1:]:
        candidates = [(lab, s) for lab, s in model.successors(current) if canon(s) == wanted]
        exact = [c for c in candidates if c[0] == label]
        step = (exact or candidates)[0]
        steps.append(step)
        current = step[1]
    if prop is not None and prop.kind == "transition":
        wanted = canon(nxt)
        step = next(((lab, s) for lab, s in model.successors(current)
                     if canon(s) == wanted and not prop.check(current, lab, s)))
        steps.append(step)
    return model_trace(model, initial, steps, prop and prop.id)
