"""Random walks over a model: a sample of its behaviours where breadth-first search cannot
finish, never a proof.

It takes the explorer's models and properties (`checker.engines.explorer`). Walk `i` starts
from an initial state drawn at random and takes, at each step, one of the state's successors
drawn uniformly; its random numbers come from the seed and `i` alone, so a walk is the same
whichever process runs it and whatever ran before it. Every state property is checked on
every state of a walk and every transition property on every step; a walk ends at its first
violation, at its length bound, or in a state with no successors. "Eventually" properties
need the whole state graph, so a walk cannot judge them: the result names them as unjudged.

With `swarm` (swarm testing, Groce et al., ISSTA 2012) each walk switches off, with
probability 1/2 and independently, each kind of step (a label's action, injected or not) the
first time it meets one, and draws only among the steps it left on, all of them when none is:
a walk that never injects a fault, or never takes a CPU offline, reaches states that uniform
walks, which spend the fault budget on the first SEAMCALL they meet, seldom do.

Walks run in this process or on forked processes (`workers`), in batches; results are merged
in walk order, so the first violating walk, and every count up to it, do not depend on the
number of workers. The violating walk is then shrunk (`shrink`) and returned as the explorer
returns a violation: a `Violation` holding a concrete `Trace`, which the trace views print,
store and replay. Distinct states are counted by the fingerprints of their canonical forms
(`checker.engines.fingerprints`), so states must be tuples, as in fingerprint mode.
"""

from __future__ import annotations

import gc
import multiprocessing
import random
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from checker.engines.bfs import (
    FAIL,
    INCONCLUSIVE,
    FindsViolations,
    Trace,
    Violation,
    state_checks_by_fields,
    transition_checks_by_label,
)
from checker.engines.fingerprints import StateCodec, fingerprint

BATCH = 16  # walks per task handed to a worker process


@dataclass(frozen=True)
class WalkBounds:
    """How many walks, how long each may be, and a wall-clock limit on the whole run."""

    walks: int = 1000
    length: int = 200
    max_seconds: float | None = None


@dataclass(frozen=True)
class WalkProgress:
    """Where a simulation is, passed to `simulate`'s `progress` as batches of walks finish."""

    walks: int
    steps: int
    states: int
    seconds: float


@dataclass
class SimulationResult(FindsViolations):
    """What the walks covered and the first violation met, shrunk. `verdict` is "fail" or
    "inconclusive": walks that meet no violation prove nothing."""

    verdict: str
    violation: Violation | None
    walks: int  # walks run: every one, or those up to the violating one
    steps: int  # steps taken by those walks
    distinct_states: int  # distinct canonical states those walks met
    longest: int  # steps of the longest of those walks
    seconds: float
    bound_hit: str  # "walks" (all run), "time", or "violation"
    symmetry: bool
    properties: tuple[str, ...]  # the properties checked on every state and step
    unjudged: tuple[str, ...]  # the "eventually" properties, which a walk cannot judge
    seed: int
    workers: int
    bounds: WalkBounds
    walk: int | None = None  # index of the violating walk
    found_length: int | None = None  # its steps up to the violation, before shrinking
    shrink_seconds: float = 0.0  # of `seconds`, those spent shrinking

    @property
    def shrunk_length(self) -> int | None:
        return len(self.violation.trace) if self.violation else None


def simulate(model, properties: Sequence = (), bounds: WalkBounds = WalkBounds(),
             seed: int = 0, symmetry: bool = True, workers: int = 1,
             progress: Callable[[WalkProgress], None] | None = None,
             swarm: bool = False) -> SimulationResult:
    """Run up to `bounds.walks` random walks of `model` checking `properties` (see the module
    docstring); stop at the first walk, in walk order, that violates one."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if bounds.walks < 1 or bounds.length < 1:
        raise ValueError("walks and walk length must be at least 1")
    started = time.perf_counter()
    deadline = None if bounds.max_seconds is None else time.time() + bounds.max_seconds
    walker = _Walker(model, properties, symmetry, seed, bounds.length, swarm)
    seen: set[int] = set()
    walks = steps = longest = 0
    hit, found = "walks", None
    collecting = gc.isenabled()
    gc.disable()  # states are acyclic tuples (see `explore`)
    batches = _batches(walker, bounds.walks, deadline, workers)
    try:
        for batch in batches:
            for number, (taken, fps, violation) in enumerate(batch.walks, batch.start):
                walks += 1
                steps += taken
                longest = max(longest, taken)
                seen.update(_unpack(fps))
                if violation is not None:
                    hit, found = "violation", (number, violation)
                    break
            if progress is not None:
                progress(WalkProgress(walks, steps, len(seen),
                                      time.perf_counter() - started))
            if found is None and batch.timed_out:
                hit = "time"
            if hit != "walks":
                break
        batches.close()  # the worker processes end before shrinking begins
        result_violation = found_length = walk_index = None
        shrinking = time.perf_counter()
        if found is not None:
            walk_index, (prop_id, at) = found
            prop = next(p for p in properties if p.id == prop_id)
            initial, path = walker.replay_walk(walk_index, at)
            steps_found = shrink(model, prop, initial, path)
            describe = getattr(model, "describe", None)
            trace = Trace(initial, steps_found, describe() if describe else {}, prop_id)
            result_violation = Violation(prop_id, len(trace), trace)
            found_length = at
    finally:
        batches.close()
        if collecting:
            gc.enable()
    finished = time.perf_counter()
    return SimulationResult(
        FAIL if result_violation else INCONCLUSIVE, result_violation, walks, steps, len(seen),
        longest, finished - started, hit, symmetry,
        tuple(p.id for p in properties if p.kind != "eventually"),
        tuple(p.id for p in properties if p.kind == "eventually"), seed, workers, bounds,
        walk_index, found_length, finished - shrinking)


# ----- walks ---------------------------------------------------------------------------------


class _Walker:
    """Runs walk `i` of a simulation: the same walk in every process."""

    def __init__(self, model, properties: Sequence, symmetry: bool, seed: int,
                 length: int, swarm: bool = False) -> None:
        self.model, self.seed, self.length, self.swarm = model, seed, length, swarm
        self.canon = model.canonical if symmetry else (lambda s: s)
        self.initial = list(model.initial_states())
        state_props = [p for p in properties if p.kind == "state"]
        step_props = [p for p in properties if p.kind == "transition"]
        self.state_props = tuple((p.id, p.check) for p in state_props)
        first = self.initial[0]
        fields = getattr(first, "_fields", ())
        self.state_checks = state_checks_by_fields(state_props, type(first))
        self.step_checks = transition_checks_by_label(step_props, fields, unchanged=False)
        self.loop_checks = transition_checks_by_label(step_props, fields, unchanged=True)
        self.codec = StateCodec.for_state(self.canon(first))

    def rng(self, index: int) -> random.Random:
        return random.Random(f"walk {self.seed} {index}")

    def chooser(self, rng: random.Random) -> Callable[[list], tuple]:
        """How one walk draws a step among a state's successors (see the module docstring)."""
        if not self.swarm:
            return lambda steps: steps[rng.randrange(len(steps))]
        on: dict = {}  # kind of step -> whether this walk takes it

        def choose(steps):
            kept = []
            for step in steps:
                label = step[0]
                kind = (getattr(label, "action", label), getattr(label, "injected", False))
                taken = on.get(kind)
                if taken is None:
                    taken = on[kind] = rng.random() < 0.5
                if taken:
                    kept.append(step)
            pool = kept or steps
            return pool[rng.randrange(len(pool))]

        return choose

    def run(self, index: int) -> tuple[int, bytes, tuple[str, int] | None]:
        """Walk `index`: its steps, the fingerprints of the states it met (packed), and its
        first violation as (property id, steps taken when it showed), or None."""
        rng, successors, canon = self.rng(index), self.model.successors, self.canon
        record, prints = self.codec.record, set()
        state = self.initial[rng.randrange(len(self.initial))]
        choose = self.chooser(rng)
        prints.add(fingerprint(record(canon(state))))
        violation = next(((pid, 0) for pid, check in self.state_props if not check(state)),
                         None)
        taken = 0
        while violation is None and taken < self.length:
            steps = successors(state)
            if not steps:
                break
            label, nxt = choose(steps)
            taken += 1
            violation = self._check_step(state, label, nxt, taken)
            if nxt is not state:
                prints.add(fingerprint(record(canon(nxt))))
            state = nxt
        return taken, array("Q", sorted(prints)).tobytes(), violation

    def _check_step(self, state, label, nxt, taken: int) -> tuple[str, int] | None:
        get, compute = self.loop_checks if nxt is state else self.step_checks
        checks = get(label)
        if checks is None:
            checks = compute(label)
        for prop_id, check, watched in checks:
            if watched is not None and state[watched] is nxt[watched]:
                continue
            if not check(state, label, nxt):
                return prop_id, taken
        if nxt is not state:
            for prop_id, check in self.state_checks(state, nxt):
                if not check(nxt):
                    return prop_id, taken
        return None

    def replay_walk(self, index: int, steps: int) -> tuple[Any, list[tuple[Any, Any]]]:
        """Walk `index` again, as concrete steps, up to `steps` steps."""
        rng = self.rng(index)
        state = initial = self.initial[rng.randrange(len(self.initial))]
        choose = self.chooser(rng)
        path = []
        for _ in range(steps):
            label, state = choose(self.model.successors(state))
            path.append((label, state))
        return initial, path


@dataclass
class _Batch:
    start: int
    walks: list  # per walk, in order: what `_Walker.run` returns
    timed_out: bool  # the deadline passed before the batch's last walk began


def _run_batch(walker: _Walker, start: int, stop: int, deadline: float | None) -> _Batch:
    out = []
    for index in range(start, stop):
        if deadline is not None and time.time() > deadline:
            return _Batch(start, out, True)
        out.append(walker.run(index))
        if out[-1][2] is not None:  # later walks would be dropped
            break
    return _Batch(start, out, False)


def _batches(walker: _Walker, walks: int, deadline: float | None, workers: int):
    """The batches of walks in walk order, run here or on forked processes."""
    spans = [(start, min(start + BATCH, walks)) for start in range(0, walks, BATCH)]
    if workers == 1:
        for start, stop in spans:
            yield _run_batch(walker, start, stop, deadline)
        return
    global _WORKER_WALKER
    _WORKER_WALKER = walker  # inherited by the forked workers
    pool = multiprocessing.get_context("fork").Pool(workers, initializer=gc.disable)
    try:
        yield from pool.imap(_pool_batch, [(a, b, deadline) for a, b in spans])
    finally:
        pool.terminate()
        pool.join()
        _WORKER_WALKER = None


_WORKER_WALKER: _Walker | None = None


def _pool_batch(task: tuple[int, int, float | None]) -> _Batch:
    return _run_batch(_WORKER_WALKER, *task)


def _unpack(data: bytes) -> array:
    prints = array("Q")
    prints.frombytes(data)
    return prints


# ----- shrinking -----------------------------------------------------------------------------


def shrink(model, prop, initial, path: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """A shorter walk from `initial` that still violates `prop`, as concrete steps.

    `path` violates `prop` at its last step. Loops go first (a stretch between two equal
    states), then stretches of steps, halving in size down to single steps, are deleted
    wherever the labels left still run on the model (each names a successor of the state it
    is taken in) and still reach a violation of `prop`, which the result is cut at. Every
    candidate is replayed from its start, so what is returned is a real walk of the model.
    """
    labels = [label for label, _ in _without_loops(initial, path, prop.kind == "transition")]
    path = _violating_prefix(model, prop, initial, labels)
    labels = [label for label, _ in path]
    size = max(len(labels) // 2, 1)
    while True:
        shrunk = False
        start = 0
        while start < len(labels):
            candidate = _violating_prefix(model, prop, initial,
                                          labels[:start] + labels[start + size:])
            if candidate is not None and len(candidate) < len(path):
                path, labels, shrunk = candidate, [label for label, _ in candidate], True
            else:
                start += size
        if size == 1 and not shrunk:
            return path
        size = max(size // 2, 1)


def _without_loops(initial, path: list, keep_last: bool) -> list:
    """`path` with every stretch between two equal states cut out (the last step kept when
    it is the violation)."""
    states = [initial] + [state for _, state in path]
    cut = len(path) - 1 if keep_last else len(path)
    last = {state: i for i, state in enumerate(states[:cut + 1])}
    out, i = [], 0
    while i < cut:
        i = last[states[i]]
        if i < cut:
            out.append(path[i])
            i += 1
    return out + path[cut:]


def _violating_prefix(model, prop, initial, labels: list) -> list | None:
    """The steps the labels take from `initial`, up to the first violation of `prop`; None
    when a label names no successor or no violation comes."""
    state, path = initial, []
    if prop.kind == "state" and not prop.check(state):
        return path
    for wanted in labels:
        nxt = next((s for label, s in model.successors(state) if label == wanted), None)
        if nxt is None:
            return None
        path.append((wanted, nxt))
        if (not prop.check(state, wanted, nxt) if prop.kind == "transition"
                else not prop.check(nxt)):
            return path
        state = nxt
    return None
