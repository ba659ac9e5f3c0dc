"""Random walks over a model: a sample of its behaviours where breadth-first search cannot
finish, never a proof.

It takes the explorer's models and properties (`checker.engines.explorer`). Walk `i` starts
from an initial state drawn at random and takes, at each step, one of the state's successors;
its random numbers come from the seed and `i` alone, so a walk is the same whichever process
runs it and whatever ran before it. Every state property is checked on every state of a walk
and every transition property on every step; a walk ends at its first violation, at its
length bound, or in a state with no successors. A "reachable" property is not judged (no
sample shows that no path reaches a goal). An "eventually" property is judged where a
walk ends: when that state is not a goal, a depth-first search of at most `end_budget`
canonical states looks for one; none reachable is a violation (a deadlock, say), and a search
cut by the bound leaves that end unsettled, which the result counts. A time bound is looked
at between walks, so a run may overrun it by one walk and its end search. Between walks the
model's memo tables are emptied once they would outgrow `memory_budget` bytes (split between
the workers; by default an eighth of the machine's memory, as for `explore`).

How a walk draws its step (`strategy`):
- "uniform": uniformly among the successors. On a large machine most of them are the
  environment's (16 CPUs to take offline against a caller's one step), and a fault is taken
  at the first SEAMCALL that offers one, so walks seldom get far into init.
- "weighted" (the default): an actor (a caller, the environment), then an action of that
  actor, then one of its steps; each walk gives every actor and action it meets a weight of
  its own, drawn once between 1/16 and 16 (log-uniform), and injects a fault, where the
  action offers one, with a chance of its own, drawn once between 1/256 and 1 (log-uniform).
  One walk lets a caller lag far behind the other, another injects its fault late or never,
  another takes CPUs offline far more often than online: what a bug needs is likely in some
  walks, however rare in uniform ones. This is swarm testing (Groce et al., ISSTA 2012) with
  graded weights.
- "swarm": an actor, then a kind of step (an action, injected or not), then a step, where
  actors weigh the same and each kind is on or off with even odds for the walk: each walk
  leaves out about half of the kinds of step (an actor whose kinds on offer are all off is
  not drawn; when every kind on offer is off, actors and kinds are drawn as if all were on).

With `restarts` (`explore --simulate --restarts`), walks go in generations of `GENERATION`;
after the first, each walk, with chance `RESTART_SHARE`, starts where an earlier walk first met
a cell of the model's `abstract` view (a coarse picture of a state: for the flow model, where
the callers are, the statuses, and per package whether its CPUs are online and have done
LP.INIT), the cell drawn so that rarely met ones are preferred (`_Archive`: Go-Explore). A
situation met once by chance becomes the start of many walks, and what they reach from there
the next stepping stone: a bug that needs several unlikely turns in a row is met in far fewer
walks. A generation's starts are drawn from the walks before it, in walk order, so the run
does not depend on the number of workers; a restarted walk's steps follow those of the walks
it restarted from, from an initial state, and that whole walk is what is shrunk.

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
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from checker.engines.bfs import (
    ENGINE_ERRORS,
    FAIL,
    INCONCLUSIVE,
    FindsViolations,
    ModelRaised,
    Violation,
    describe_raise,
    model_trace,
    state_checks_by_fields,
    transition_checks_by_label,
)
from checker.engines.fingerprints import (
    MemoBudget,
    StateCodec,
    default_memory_budget,
    fingerprint,
)

BATCH = 16  # walks per task handed to a worker process
IN_FLIGHT = 8  # tasks per worker handed to the pool at a time (see `_batches`)
STRATEGIES = ("weighted", "swarm", "uniform")  # the first is the default
END_BUDGET = 10_000  # canonical states searched from a walk's end for an "eventually" goal
WEIGHT_SPREAD = 2.0  # weights are 4 ** uniform(-spread, spread): 1/16 to 16
FAULT_RATE_OCTAVES = 8  # a walk injects where it may with a chance of 1/256 to 1
GENERATION = 64  # with restarts: walks whose starts are drawn from one state of the archive
RESTART_SHARE = 0.9  # with restarts: the chance a walk restarts (the others are the walks
# a run without restarts takes, in order: what those meet, these meet within ten times the
# walks)


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
    judged_at_ends: tuple[str, ...]  # the "eventually" properties, judged where walks end
    ends_searched: int  # walk ends that were no goal (searched, or answered by the search
    # from an earlier end with the same canonical state)
    ends_unsettled: int  # of those, searches the end budget cut short (nothing proved there)
    seed: int
    workers: int
    bounds: WalkBounds
    strategy: str
    walk: int | None = None  # index of the violating walk
    found_length: int | None = None  # its steps up to the violation, before shrinking (from
    # an initial state: with the steps of the walks it restarted from)
    shrink_seconds: float = 0.0  # of `seconds`, those spent shrinking
    restarts: bool = False
    restarted: int = 0  # of the walks run, those that restarted from the archive
    cells: int = 0  # cells of the model's `abstract` view the walks met (with restarts)
    not_judged: tuple[str, ...] = ()  # the "reachable" properties: a walk cannot show that no
    # path reaches a goal, only an exhaustive search can

    @property
    def shrunk_length(self) -> int | None:
        return len(self.violation.trace) if self.violation else None


def simulate(model, properties: Sequence = (), bounds: WalkBounds = WalkBounds(),
             seed: int = 0, symmetry: bool = True, workers: int = 1,
             progress: Callable[[WalkProgress], None] | None = None,
             strategy: str = STRATEGIES[0], end_budget: int = END_BUDGET,
             memory_budget: int | None = None, restarts: bool = False) -> SimulationResult:
    """Run up to `bounds.walks` random walks of `model` checking `properties` (see the module
    docstring); stop at the first walk, in walk order, that violates one (or in which the
    model raises: `ModelRaised`, with that walk's steps up to there). With `restarts`,
    walks after the first generation may start where an earlier walk met a rare cell of the
    model's `abstract` view (`_Archive`)."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if bounds.walks < 1 or bounds.length < 1:
        raise ValueError("walks and walk length must be at least 1")
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown walk strategy {strategy!r} (known: {', '.join(STRATEGIES)})")
    started = time.perf_counter()
    deadline = None if bounds.max_seconds is None else time.time() + bounds.max_seconds
    if restarts and getattr(model, "abstract", None) is None:
        raise ValueError("restarts need a model with an `abstract(state)` view")
    walker = _Walker(model, properties, symmetry, seed, bounds.length, strategy, end_budget,
                     (default_memory_budget() if memory_budget is None else memory_budget)
                     // workers, restarts)
    seen: set[int] = set()
    walks = steps = longest = searched = unsettled = 0
    hit, found = "walks", None
    collecting = gc.isenabled()
    gc.disable()  # states are acyclic tuples (see `explore`)
    batches = _batches(walker, bounds.walks, deadline, workers)
    try:
        for batch in batches:
            for number, (taken, fps, violation, end, _) in enumerate(batch.walks, batch.start):
                walks += 1
                steps += taken
                searched += end is not None
                unsettled += end == UNSETTLED
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
            walk_index, (prop_id, at, *raised) = found
            initial, path = walker.replay_walk(walk_index, at)
            if raised:  # the model raised in the walk: its steps up to there, not shrunk
                raise ModelRaised(*raised, model_trace(model, initial, path), model)
            prop = next(p for p in properties if p.id == prop_id)
            steps_found = shrink(model, prop, initial, path, walker.goal_unreachable)
            trace = model_trace(model, initial, steps_found, prop_id)
            result_violation = Violation(prop_id, len(trace), trace)
            found_length = len(path)
    finally:
        batches.close()
        if collecting:
            gc.enable()
    finished = time.perf_counter()
    return SimulationResult(
        FAIL if result_violation else INCONCLUSIVE, result_violation, walks, steps, len(seen),
        longest, finished - started, hit, symmetry,
        tuple(p.id for p in properties if p.kind in ("state", "transition")),
        tuple(p.id for p in properties if p.kind == "eventually"), searched, unsettled, seed,
        workers, bounds, strategy, walk_index, found_length, finished - shrinking,
        restarts, sum(1 for index in walker.starts if index < walks),
        0 if walker.archive is None else len(walker.archive.origin),
        tuple(p.id for p in properties if p.kind == "reachable"))


# ----- walks ---------------------------------------------------------------------------------


SETTLED, UNSETTLED = "settled", "unsettled"  # `_Walker.run`: an end's search ended, or the
# end budget cut it short


class _Walker:
    """Runs walk `i` of a simulation: the same walk in every process."""

    def __init__(self, model, properties: Sequence, symmetry: bool, seed: int,
                 length: int, strategy: str = STRATEGIES[0], end_budget: int = END_BUDGET,
                 memory_budget: int | None = None, restarts: bool = False) -> None:
        self.model, self.seed, self.length = model, seed, length
        self.abstract = model.abstract if restarts else None
        self.starts: dict[int, tuple[int, int]] = {}  # walk -> (walk, step) it restarted at
        self.fresh: dict[int, int] = {}  # with restarts: walk -> its number among the others
        self.archive = _Archive() if restarts else None
        self.strategy, self.end_budget = strategy, end_budget
        self.canon = model.canonical if symmetry else (lambda s: s)
        self.initial = list(model.initial_states())
        state_props = [p for p in properties if p.kind == "state"]
        step_props = [p for p in properties if p.kind == "transition"]
        self.state_props = tuple((p.id, p.check) for p in state_props)
        self.goal_props = tuple(p for p in properties if p.kind == "eventually")
        self.end_answers: dict = {}  # canonical end -> what `goal_unreachable` answered
        self.memo = MemoBudget(model, default_memory_budget() if memory_budget is None
                               else memory_budget)
        first = self.initial[0]
        fields = getattr(first, "_fields", ())
        self.state_checks = state_checks_by_fields(state_props, type(first))
        self.step_checks = transition_checks_by_label(step_props, fields, unchanged=False)
        self.loop_checks = transition_checks_by_label(step_props, fields, unchanged=True)
        self.codec = StateCodec.for_state(self.canon(first))

    def key(self, index: int) -> str:
        """What walk `index` draws its random numbers from. With restarts the walks that
        start afresh are numbered apart, so they are the walks a run without restarts takes,
        in the same order (restarts never cost more than the share of walks they take)."""
        if index in self.starts:
            return f"restarted walk {self.seed} {index}"
        return f"walk {self.seed} {self.fresh.get(index, index)}"

    def chooser(self, rng: random.Random) -> Callable[[list], tuple]:
        """How one walk draws a step among a state's successors (see the module docstring)."""
        if self.strategy == "uniform":
            return lambda steps: steps[rng.randrange(len(steps))]
        weights: dict = {}  # ("actor", name) or ("kind", kind) -> this walk's weight
        swarm = self.strategy == "swarm"
        kind_of = _kind if swarm else _action
        fault_rate = 2.0 ** rng.uniform(-FAULT_RATE_OCTAVES, 0)  # drawn always, used if weighted

        def weight(key) -> float:
            held = weights.get(key)
            if held is None:
                if swarm:
                    held = 1.0 if key[0] == "actor" or rng.random() < 0.5 else 0.0
                else:
                    held = 4.0 ** rng.uniform(-WEIGHT_SPREAD, WEIGHT_SPREAD)
                weights[key] = held
            return held

        def choose(steps):
            by_actor: dict = {}  # actor -> kind -> steps
            for step in steps:
                label = step[0]
                kinds = by_actor.setdefault(("actor", getattr(label, "actor", None)), {})
                kinds.setdefault(("kind", kind_of(label)), []).append(step)
            kinds = by_actor[_draw(rng, by_actor, lambda actor: weight(actor) * any(
                weight(kind) for kind in by_actor[actor]))]
            pool = kinds[_draw(rng, kinds, weight)]
            if not swarm:
                faults = [step for step in pool if getattr(step[0], "injected", False)]
                if faults and len(faults) < len(pool):
                    pool = faults if rng.random() < fault_rate else \
                        [step for step in pool if not getattr(step[0], "injected", False)]
            return pool[rng.randrange(len(pool))]

        return choose

    def begin(self, key: str) -> tuple[Any, Callable[[list], tuple]]:
        """A walk's initial state and how it draws its steps, from its random numbers
        (`key`). The initial state is drawn even for a walk that restarts elsewhere, so that
        `run` and `replay_walk` draw the same numbers."""
        rng = random.Random(key)
        initial = self.initial[rng.randrange(len(self.initial))]
        return initial, self.chooser(rng)

    def adopted(self, state):
        """`state` with the model's own objects for the shared values a pickled copy (a
        restart's start, sent to a worker process) holds copies of: look-ups by identity
        miss on copies (`spec.statespace.StateSpace.adopt`)."""
        adopt = getattr(self.model, "adopt", None)
        if adopt is None or not hasattr(state, "_make"):
            return state
        return state._make(map(adopt, state))

    def run(self, key: str, start=None) -> tuple:
        """A walk drawing from `key` (from `start`, a state an earlier walk met, if given): its
        steps, the fingerprints of the states it met (packed), its first violation as
        (property id, steps taken when it showed) or None (or, when the model raised,
        (None, steps to the state whose steps raised, `describe_raise`'s error and place)),
        whether its end was searched for an "eventually" goal (None: not needed, `SETTLED`,
        `UNSETTLED`), and with restarts the cells it met, each with the step it first met it
        at."""
        if self.memo.over():
            self.forget()
        successors, canon = self.model.successors, self.canon
        record, prints = self.codec.record, set()
        state, choose = self.begin(key)
        if start is not None:
            state = self.adopted(start)
        abstract = self.abstract
        cells = None if abstract is None else {}
        taken = at = 0  # steps taken; the steps of the state after `at` of them are taken now
        end = violation = None
        try:
            image = canon(state)
            prints.add(fingerprint(record(image)))
            if cells is not None:
                cells[abstract(image)] = 0
            violation = next(((pid, 0) for pid, check in self.state_props if not check(state)),
                             None)
            while violation is None and taken < self.length:
                at = taken
                steps = successors(state)
                if not steps:
                    break
                label, nxt = choose(steps)
                taken += 1
                violation = self._check_step(state, label, nxt, taken)
                if nxt is not state:
                    image = canon(nxt)
                    prints.add(fingerprint(record(image)))
                    if cells is not None:
                        cells.setdefault(abstract(image), taken)
                state = nxt
            at = taken
            if violation is None and any(not p.check(state) for p in self.goal_props):
                stuck = self.goal_unreachable(state)
                end = UNSETTLED if stuck is None else SETTLED
                if stuck:
                    violation = stuck[0], taken
        except ENGINE_ERRORS:
            raise
        except Exception as exc:  # the model's defect: `simulate` traces the walk to here
            violation = (None, at, *describe_raise(exc))
        return (taken, array("Q", sorted(prints)).tobytes(), violation, end,
                None if cells is None else list(cells.items()))

    def forget(self) -> None:
        """Empty the model's memo tables and this walker's own (what a walk or an end search
        worked out): walks met afterwards are the same, only worked out again."""
        self.model.forget()
        self.end_answers.clear()
        self.codec.forget([set() for _ in range(self.codec.parts)])

    def goal_unreachable(self, state) -> tuple[str, ...] | None:
        """The "eventually" properties none of whose goals can be reached from `state`, by a
        depth-first search over canonical states from `state`'s canonical form (so the answer
        is the same for every symmetric image of it, whichever was met first), the model's
        first successor first (quick to a goal when the model lists its actors' progress
        before the environment's), of at most `end_budget` states; None when the bound cut
        the search short."""
        start = self.canon(state)
        if start in self.end_answers:
            return self.end_answers[start]
        open_props = [p for p in self.goal_props if not p.check(start)]
        seen, stack = {start}, [start]
        answer = None
        while True:
            if not open_props:
                answer = ()
                break
            if not stack:
                answer = tuple(p.id for p in open_props)
                break
            if len(seen) > self.end_budget:
                break
            current = stack.pop()
            open_props = [p for p in open_props if not p.check(current)]
            if open_props:
                for _, nxt in reversed(self.model.successors(current)):
                    image = self.canon(nxt)
                    if image not in seen:
                        seen.add(image)
                        stack.append(image)
        self.end_answers[start] = answer
        return answer

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
        """Walk `index` again, as concrete steps, up to `steps` steps of its own: from an
        initial state, the steps of the walks it restarted from (a chain followed back to a
        walk that started afresh, then replayed forward), then its own."""
        if self.memo.over():  # the replays run here, in the coordinator, too
            self.forget()
        chain = [(index, steps)]
        while chain[-1][0] in self.starts:
            chain.append(self.starts[chain[-1][0]])
        initial = state = None
        path: list[tuple[Any, Any]] = []
        for walk, count in reversed(chain):
            first, choose = self.begin(self.key(walk))
            if initial is None:  # the walk that started afresh
                initial = state = first
            for _ in range(count):
                label, state = choose(self.model.successors(state))
                path.append((label, state))
        return initial, path

    def start_of(self, index: int) -> tuple[str, Any]:
        """Walk `index`'s random numbers (`key`) and, with restarts, where it starts: drawn
        from the archive as it stands (None: an initial state), noted for the replay."""
        if self.archive is not None:
            origin = self.archive.draw(random.Random(f"start {self.seed} {index}"))
            if origin is not None:
                self.starts[index] = origin
                return self.key(index), self.archive.state_at(origin, self)
            self.fresh[index] = len(self.fresh)
        return self.key(index), None


def _action(label):
    return getattr(label, "action", label)


def _kind(label) -> tuple:
    """A label's kind of step for swarm walks: its action, and whether it is an injected
    fault."""
    return _action(label), getattr(label, "injected", False)


def _draw(rng: random.Random, options: dict, weight: Callable[[Any], float]):
    """One of `options`' keys, with chances in proportion to their weights (evenly when
    every weight is 0); keys come in the model's order, so the draw is reproducible."""
    keys = list(options)
    if len(keys) == 1:
        return keys[0]
    weights = [weight(key) for key in keys]
    total = sum(weights)
    if total <= 0:
        return keys[rng.randrange(len(keys))]
    point = rng.random() * total
    for key, share in zip(keys, weights, strict=True):
        point -= share
        if point < 0:
            return key
    return keys[-1]


@dataclass
class _Batch:
    start: int
    walks: list  # per walk, in order: what `_Walker.run` returns
    timed_out: bool  # the deadline passed before the batch's last walk began


def _run_batch(walker: _Walker, start: int, deadline: float | None, walks: list) -> _Batch:
    """Walks from `start` on, each given as (`key`, start state or None)."""
    out = []
    for key, begin in walks:
        if deadline is not None and time.time() > deadline:
            return _Batch(start, out, True)
        out.append(walker.run(key, begin))
        if out[-1][2] is not None:  # later walks would be dropped
            break
    return _Batch(start, out, False)


def _batches(walker: _Walker, walks: int, deadline: float | None, workers: int):
    """The batches of walks in walk order, run here or on forked processes. With restarts,
    a generation's starts are drawn once the walks before it are in the archive, so they
    do not depend on the number of workers."""
    # The pool is handed a bounded list of tasks at a time: terminated (a violation found,
    # the time bound) while its task handler still fed a long stream, a pool could hang for
    # good, the handler blocked writing to the pipe of workers already ended.
    generation = BATCH * IN_FLIGHT * max(workers, 1) if walker.archive is None else GENERATION
    pool = None
    if workers > 1:
        global _WORKER_WALKER
        _WORKER_WALKER = walker  # inherited by the forked workers
        pool = multiprocessing.get_context("fork").Pool(workers, initializer=gc.disable)
    try:
        for first in range(0, walks, generation):
            if walker.archive is not None and deadline is not None and time.time() > deadline:
                yield _Batch(first, [], True)  # drawing the starts would overrun it
                return
            last = min(first + generation, walks)
            # with restarts every start is drawn before the generation's walks
            tasks = [(a, deadline, [walker.start_of(i) for i in range(a, min(a + BATCH, last))])
                     for a in range(first, last, BATCH)]
            results = (_run_batch(walker, *task) for task in tasks) if pool is None else \
                pool.imap(_pool_batch, tasks)
            for batch in results:
                if walker.archive is not None:
                    for number, outcome in enumerate(batch.walks, batch.start):
                        walker.archive.add(number, outcome[4])
                yield batch
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
            _WORKER_WALKER = None


_WORKER_WALKER: _Walker | None = None


def _pool_batch(task: tuple) -> _Batch:
    return _run_batch(_WORKER_WALKER, *task)


class _Archive:
    """The cells of the model's `abstract` view the walks met, for restarts (Go-Explore,
    Ecoffet et al., Nature 2021): each with where a walk first met it (walk, step), how many
    walks met it and how many restarted there. A restarting walk starts where its cell was
    first met, the cell drawn with weight 1/(1 + walks that met it + walks that restarted
    there): rarely met cells are explored further, each a stepping stone to the next, and a
    cell that led nowhere new is drawn less and less. (The square root Go-Explore takes
    spread the draws too thin over the thousands of cells a 4x4 machine gives: the hotplug
    lock bug was met on 2 of 3 seeds in 300 s, against 3 of 3 in 80 s.) The weights are worked
    out once per generation: a draw costs a bisection, not a pass over every cell."""

    def __init__(self) -> None:
        self.origin: dict = {}  # cell -> (walk, step) where it was first met
        self.visits: dict = {}  # cell -> walks that met it
        self.chosen: dict = {}  # cell -> walks that restarted there
        self.states: dict[tuple[int, int], Any] = {}  # (walk, step) -> its state, once drawn
        self._cells: list = []  # the cells and their running total of weights, worked
        self._totals: list[float] = []  # out once per generation (emptied by `add`)

    def add(self, walk: int, cells: list) -> None:
        self._totals = []
        for cell, step in cells:
            if cell in self.visits:
                self.visits[cell] += 1
            else:
                self.visits[cell] = 1
                self.origin[cell] = (walk, step)

    def draw(self, rng: random.Random) -> tuple[int, int] | None:
        """A cell's origin, or None (an initial state) for the other walks. The weights are
        those of the archive as the generation began (a draw counts from the next one on)."""
        if not self.origin or rng.random() >= RESTART_SHARE:
            return None
        if not self._totals:
            self._cells = list(self.origin)
            self._totals = list(accumulate(1 / (1 + self.visits[cell] + self.chosen.get(cell, 0))
                                           for cell in self._cells))
        place = bisect_right(self._totals, rng.random() * self._totals[-1])
        cell = self._cells[min(place, len(self._cells) - 1)]
        self.chosen[cell] = self.chosen.get(cell, 0) + 1
        return self.origin[cell]

    def state_at(self, origin: tuple[int, int], walker: _Walker):
        state = self.states.get(origin)
        if state is None:
            initial, path = walker.replay_walk(*origin)
            state = self.states[origin] = path[-1][1] if path else initial
        return state


def _unpack(data: bytes) -> array:
    prints = array("Q")
    prints.frombytes(data)
    return prints


# ----- shrinking -----------------------------------------------------------------------------


def shrink(model, prop, initial, path: list[tuple[Any, Any]],
           goal_unreachable: Callable[[Any], tuple | None] | None = None) \
        -> list[tuple[Any, Any]]:
    """A shorter walk from `initial` that still violates `prop`, as concrete steps.

    `path` violates `prop` at its last step (for an "eventually" property: no goal can be
    reached from its last state, as `goal_unreachable` says). Loops go first (a stretch
    between two equal states), then stretches of steps, halving in size down to single
    steps, are deleted wherever the labels left still run on the model (each names a
    successor of the state it is taken in) and still reach a violation of `prop`, which the
    result is cut at. Every candidate is replayed from its start, so what is returned is a
    real walk of the model.
    """
    labels = [label for label, _ in _without_loops(initial, path, prop.kind == "transition")]
    if prop.kind == "eventually":
        def stuck(state) -> bool:
            return prop.id in (goal_unreachable(state) or ())
        prop = _StuckAtEnd(prop.id, stuck)
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


@dataclass(frozen=True)
class _StuckAtEnd:
    """An "eventually" property as shrinking judges it: violated by a walk's last state
    alone, when no goal can be reached from there (`stuck`)."""

    id: str
    stuck: Callable[[Any], bool]
    kind: str = "end"


def _violating_prefix(model, prop, initial, labels: list) -> list | None:
    """The steps the labels take from `initial`, up to the first violation of `prop` (for
    `_StuckAtEnd`, all of them, when the last state is stuck); None when a label names no
    successor or no violation comes."""
    state, path = initial, []
    if prop.kind == "state" and not prop.check(state):
        return path
    for wanted in labels:
        nxt = next((s for label, s in model.successors(state) if label == wanted), None)
        if nxt is None:
            return None
        path.append((wanted, nxt))
        if prop.kind == "transition" and not prop.check(state, wanted, nxt):
            return path
        if prop.kind == "state" and not prop.check(nxt):
            return path
        state = nxt
    if prop.kind == "end" and prop.stuck(state):
        return path
    return None
