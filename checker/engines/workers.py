"""One exploration on several processes: the frontier and the seen set partitioned by
fingerprint, level by level, with the verdict, counts and traces of one process.

Each worker owns the fingerprints whose high bits (`owner`) name it: it keeps those in its
seen set and expands those states. A level goes in four rounds, each a call on every worker
at once, with a coordinator (`explore_parallel`) in between that only routes data and keeps
the parent links:

1. `expand`: each worker expands its part of the frontier in id order. A successor's
   fingerprint it owns and has seen is done with at once; every other distinct successor is a
   candidate for its owner, with the key `(parent id, step number)` of its first discovery.
2. `resolve`: each owner sorts its candidates into states seen in earlier levels and new ones;
   a new one's winning discovery is the one with the least key, which is the discovery the
   one-process explorer makes first (it expands in id order, and its steps in order).
3. The coordinator merges the owners' winning keys: a new state's id is its rank among them,
   after the frontier's ids, as in the one-process run. Where that run would have stopped
   within this level (a violation with `stop_at_first`, the state bound, the time bound), the
   level is cut at the same place: what the later parents found is dropped. `commit`: each
   owner stores its new fingerprints with their ids and answers each candidate (its id, and
   whether it won).
4. `ship`: the winners' compact records (`StateCodec`) go to their owners, with the part values
   the owner has not been sent yet; they form the next level's frontier there.

Violations are found where the one-process run finds them: transition properties on the step,
state properties on a new state by whoever discovers it (they count only for the winner). The
coordinator keeps the first violation of each property in the one-process order, and rebuilds
traces by replaying the recorded step numbers on its own model. Workers run as forked
processes (`backend="processes"`, the default), as Ray actors (`backend="ray"`, the `ray` extra;
on a cluster when Ray is started there), or in this process one after another
(`backend="inline"`, for tests). Processes and Ray need the model and properties in every
worker: forked processes inherit them, Ray builds them from `recipe`, a picklable callable that
returns `(model, properties)`.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import time
from array import array
from collections.abc import Callable, Sequence

import numpy as np

from checker.engines.bfs import (
    ENGINE_ERRORS,
    FAIL,
    GOAL_KINDS,
    INCONCLUSIVE,
    PASS,
    ExplorationResult,
    Progress,
    Violation,
    blaming_start,
    canonical_path,
    concrete_trace,
    describe_raise,
    first_start_without_goal,
    first_stuck_state,
    raised_at,
    state_checks_by_fields,
    transition_checks_by_label,
)
from checker.engines.fingerprints import (
    MASK,
    FingerprintTable,
    MemoBudget,
    SpillBuffer,
    StateCodec,
    default_memory_budget,
    spill_folder,
)

STEP_BITS = 16  # a key is parent id << STEP_BITS | step number
STEP_MASK = (1 << STEP_BITS) - 1
NEW = 1 << 63  # `Worker.resolve`: an answer that is a new state's winning key
KEY_MASK = NEW - 1
BACKENDS = ("processes", "ray", "inline")


def owner(record, workers: int) -> int:
    """The worker that owns a state: picked by the hash of its record's last part (high bits:
    the low bits of fingerprints pick table slots). For the flow model that part is
    `packages`, so the states of one `packages` value are all expanded by one worker, and
    what the model works out once per value (`spec.statespace.CpuFacts`, the replayed
    steps) is worked out by that worker only."""
    return (record[-1] >> 40) % workers


class Worker:
    """One partition of a parallel exploration (see the module docstring)."""

    def __init__(self, index: int, workers: int, model, properties: Sequence, symmetry: bool,
                 options: dict) -> None:
        self.index, self.workers = index, workers
        self.model, self.properties = model, list(properties)
        self.canon = model.canonical if symmetry else (lambda s: s)
        self.count_labels = options["count_labels"]
        self.budget, self.spill_dir = options["memory_budget"], options["spill_dir"]
        self.deadline = options["deadline"]
        self.table = FingerprintTable()
        # Fingerprints of other workers' states this worker has been given the ids of: a
        # successor found here is skipped at once, as one of its own seen states is, instead
        # of going to its owner as a candidate (most steps lead to states seen before). A
        # cache: emptied when it outgrows a quarter of the budget.
        self.foreign = FingerprintTable()
        self.codec: StateCodec | None = None
        self.position = {p.id: i for i, p in enumerate(self.properties)}
        self.state_props = [p for p in self.properties if p.kind == "state"]
        self.step_props = [p for p in self.properties if p.kind == "transition"]
        self.goal_props = [p for p in self.properties if p.kind in GOAL_KINDS]
        self.edged = [p.kind == "eventually" for p in self.goal_props]  # need the edges
        self.state_checks, self.step_checks = state_checks_by_fields, transition_checks_by_label
        self.frontier_gids = array("I")
        self.frontier: SpillBuffer | None = None
        self.level: SpillBuffer | None = None
        self.steps_per_state = array("I")
        self.sent: list[set] = [set() for _ in range(workers)]  # per owner: (part, code) sent
        self.edge_src, self.edge_dst = array("I"), array("I")
        self.goal_gids = array("I")
        self.goal_flags: list[bytearray] = [bytearray() for _ in self.goal_props]
        self.label_counts: dict = {}
        self.level_labels: dict = {}
        self.spilled = 0
        self.forgotten = 0  # times the model's memo tables were emptied (the budget)

    def _ready(self, example) -> None:
        if self.codec is None:
            self.codec = StateCodec.for_state(example)
            fields = getattr(example, "_fields", ())
            self.state_checks_for = self.state_checks(self.state_props, type(example))
            self.step_get, self.step_compute = self.step_checks(self.step_props, fields, False)
            self.loop_get, self.loop_compute = self.step_checks(self.step_props, fields, True)

    def seed(self, example, payloads: list) -> int:
        """The initial states this worker owns, shipped as `receive` takes them; `example` is a
        canonical state (for the record layout)."""
        self._ready(example)
        return self.receive(payloads)

    # ----- round 1 ------------------------------------------------------------------------------

    def expand(self, payloads: list, found: frozenset) -> dict:
        """Take the states shipped to this worker as the frontier, and expand them in id order.
        Returns the candidates for each owner (fingerprints and keys), the first transition
        note of each property not `found` yet, where the deadline stopped the level, and the
        first state whose steps raised (its id, `describe_raise`'s error and place), if any:
        the level stops there too."""
        if payloads:
            self.receive(payloads)
        self._close_level()
        self.level = self.frontier
        codec, canon, table, position = self.codec, self.canon, self.table, self.position
        successors, state_checks_for = self.model.successors, self.state_checks_for
        loop_get, loop_compute = self.loop_get, self.loop_compute
        step_get, step_compute = self.step_get, self.step_compute
        goal_props, goal_flags, goal_gids = self.goal_props, self.goal_flags, self.goal_gids
        goals = list(zip(goal_flags, goal_props, self.edged, strict=True))
        edge_src, edge_dst = self.edge_src, self.edge_dst
        state_type, part_hash = codec.state_type, codec.part_hash
        parts = [(part, getter, hashes.get) for part, (getter, hashes)
                 in enumerate(zip(codec.getters, codec.hashes, strict=True))]
        workers, me, deadline = self.workers, self.index, self.deadline
        mine = table.keys, table.ids, table.mask
        theirs = self.foreign.keys, self.foreign.ids, self.foreign.mask
        step_notes: dict[int, tuple] = {}  # property -> (gid, step number) of its first note
        pending: dict[int, int] = {}  # fingerprint -> candidate number
        cand_fps, cand_keys, cand_owner = array("Q"), array("Q"), bytearray()
        cand_records = array("Q")
        cand_failed: list[tuple[int, str]] = []  # (candidate, a property it fails)
        pending_src, pending_cand = array("I"), array("I")
        steps_per_state = array("I")
        level_labels: dict = {} if self.count_labels else None
        stopped_at = raised = gid = None
        model, memo = self.model, MemoBudget(self.model, self.budget)
        try:
            for number, (gid, record) in enumerate(zip(self.frontier_gids, self.level,
                                                       strict=True)):
                if deadline is not None and time.time() > deadline:
                    stopped_at = gid
                    break
                # Every part value stays (the other workers count on those shipped to them); only
                # the look-ups the model's new objects would add to are rebuilt.
                if not number & 1023 and memo.over():
                    model.forget()
                    codec.forget([set(values) for values in codec.values])
                    self.forgotten += 1
                state = codec.decode(record)
                record_edges = False
                if goal_props:
                    goal_gids.append(gid)
                    for flags, prop, needs_edges in goals:
                        reached = prop.check(state)
                        flags.append(reached)
                        record_edges = record_edges or (needs_edges and not reached)
                steps = successors(state)
                if not isinstance(steps, (list, tuple)):
                    steps = list(steps)
                steps_per_state.append(len(steps))
                if level_labels is not None:
                    for label, _ in steps:
                        level_labels[label] = level_labels.get(label, 0) + 1
                key_base = gid << STEP_BITS
                for number, (label, nxt) in enumerate(steps):
                    if nxt is state:
                        checks = loop_get(label)
                        if checks is None:
                            checks = loop_compute(label)
                        for prop_id, check, _ in checks:
                            if not check(state, label, nxt) and prop_id not in found:
                                step_notes.setdefault(position[prop_id], (gid, number))
                        continue
                    checks = step_get(label)
                    if checks is None:
                        checks = step_compute(label)
                    for prop_id, check, watched in checks:
                        if watched is not None and state[watched] is nxt[watched]:
                            continue
                        if not check(state, label, nxt) and prop_id not in found:
                            step_notes.setdefault(position[prop_id], (gid, number))
                    nxt = canon(nxt)
                    if type(nxt) is not state_type:
                        codec.check(nxt)
                    total = 0
                    child = []
                    for part, get_part, get_hash in parts:
                        value = get_part(nxt)
                        code = get_hash(value)
                        if code is None:
                            code = part_hash(part, value)
                        total += code
                        child.append(code)
                    fp = (total & MASK) or 1
                    home = (code >> 40) % workers  # `owner`: `code` is the last part's hash
                    # `FingerprintTable.get`, spelt out (the tables are not written while the
                    # level is expanded): this worker's own seen set, or what it was told of others'
                    keys, ids, mask = mine if home == me else theirs
                    slot = fp & mask
                    held = keys[slot]
                    while held and held != fp:
                        slot = (slot + 1) & mask
                        held = keys[slot]
                    if held:
                        if record_edges:
                            edge_src.append(gid)
                            edge_dst.append(ids[slot])
                        continue
                    cand = pending.get(fp)
                    if cand is None:
                        cand = pending[fp] = len(cand_fps)
                        cand_fps.append(fp)
                        cand_keys.append(key_base | number)
                        cand_owner.append(home)
                        cand_records.extend(child)
                        # a loop, not a comprehension: no frame to build
                        for prop_id, check in state_checks_for(state, nxt):
                            if not check(nxt) and prop_id not in found:
                                cand_failed.append((cand, prop_id))
                    if record_edges:
                        pending_src.append(gid)
                        pending_cand.append(cand)
        except ENGINE_ERRORS:
            raise
        except Exception as exc:  # the model's defect: the coordinator traces it
            if gid is None:  # before any state: reading the frontier failed
                raise
            raised = (gid, *describe_raise(exc))
        self.steps_per_state, self.level_labels = steps_per_state, level_labels
        self.cand_fps, self.cand_keys, self.cand_owner = cand_fps, cand_keys, cand_owner
        self.cand_records, self.cand_failed = cand_records, cand_failed
        self.pending_edges = (pending_src, pending_cand)
        homes = np.frombuffer(cand_owner, np.uint8)
        fps, keys = np.frombuffer(cand_fps, np.uint64), np.frombuffer(cand_keys, np.uint64)
        batches = []
        for home in range(workers):
            theirs = homes == home
            batches.append((fps[theirs].tobytes(), keys[theirs].tobytes()))
        return {"batches": batches, "step_notes": step_notes, "stopped_at": stopped_at,
                "raised": raised}

    # ----- round 2 ------------------------------------------------------------------------------

    def resolve(self, batches: list) -> tuple[bytes, list]:
        """Sort the candidates sent to this worker (one batch per sender) into seen and new.
        Returns the new ones' least keys, sorted, and for each sender an answer per candidate:
        the id of a state seen before, or `NEW | key` of the new state's winning discovery."""
        received = []
        for fps_bytes, keys_bytes in batches:
            fps = np.frombuffer(fps_bytes, np.uint64)
            known = self.table.get_many(fps, NEW)
            received.append((fps, np.frombuffer(keys_bytes, np.uint64), known, known == NEW))
        fps = np.concatenate([f[new] for f, _, _, new in received])
        keys = np.concatenate([k[new] for _, k, _, new in received])
        order = np.lexsort((keys, fps))  # by fingerprint, then key
        fps, keys = fps[order], keys[order]
        least = np.ones(len(fps), bool)  # the first of each fingerprint: its least key
        least[1:] = fps[1:] != fps[:-1]
        fps, keys = fps[least], keys[least]
        answers = []
        for sent, _, known, new in received:
            known[new] = keys[np.searchsorted(fps, sent[new])] | np.uint64(NEW)
            answers.append(known.tobytes())
        return np.sort(keys).tobytes(), answers

    # ----- round 3 ------------------------------------------------------------------------------

    def settle(self, merged_bytes: bytes, answers: list, level_end: int) -> dict:
        """Given the level's winning keys (sorted, across all owners: a new state's id is
        `level_end` + its rank) and every owner's answers to this worker's candidates: record
        the edges, note the state properties the candidates that won fail (checked when they
        were found; the first note of each property, in key order), and ship the winners'
        records to their owners with the part values not sent there before."""
        merged = np.frombuffer(merged_bytes, np.uint64)
        workers, codec, parts, me = self.workers, self.codec, self.codec.parts, self.index
        homes = np.frombuffer(self.cand_owner, np.uint8)
        fps = np.frombuffer(self.cand_fps, np.uint64)
        keys = np.frombuffer(self.cand_keys, np.uint64)
        cand_gid = np.zeros(len(fps), np.uint64)
        won = np.zeros(len(fps), bool)
        for home, data in enumerate(answers):
            cands = np.flatnonzero(homes == home)
            answer = np.frombuffer(data, np.uint64)
            new = (answer & np.uint64(NEW)) != 0
            cand_gid[cands[~new]] = answer[~new]
            cands, key = cands[new], answer[new] & np.uint64(KEY_MASK)
            cand_gid[cands] = np.searchsorted(merged, key) + np.uint64(level_end)
            won[cands] = key == keys[cands]
        cand_gid = cand_gid.astype(np.uint32)
        theirs = homes != me
        self.foreign.add_many(fps[theirs], cand_gid[theirs])
        if self.foreign.nbytes > self.budget // 4:
            self.foreign = FingerprintTable()
        src, cands = self.pending_edges
        self.edge_src.extend(src)
        self.edge_dst.frombytes(cand_gid[np.frombuffer(cands, np.uint32)].tobytes())
        state_notes: dict[int, int] = {}
        for cand, prop_id in self.cand_failed:  # in key order
            if won[cand]:
                state_notes.setdefault(self.position[prop_id], int(keys[cand]))
        records = np.frombuffer(self.cand_records, np.uint64).reshape(-1, parts)
        winners = np.flatnonzero(won)
        payloads = []
        for home in range(workers):
            mine = winners[homes[winners] == home]
            flat = records[mine]
            values = []
            if home != me:
                sent = self.sent[home]
                for part in range(parts):
                    for code in np.unique(flat[:, part]).tolist():
                        if (part, code) not in sent:
                            sent.add((part, code))
                            values.append((part, code, codec.values[part][code]))
            payloads.append((cand_gid[mine].tobytes(), flat.tobytes(), fps[mine].tobytes(),
                             _pickled(values)))
        self.cand_fps = self.cand_keys = self.cand_owner = None
        self.cand_records = self.cand_failed = self.pending_edges = None
        if self.level_labels:
            for label, count in self.level_labels.items():
                self.label_counts[label] = self.label_counts.get(label, 0) + count
        return {"state_notes": state_notes, "payloads": payloads,
                "transitions": sum(self.steps_per_state)}

    # ----- the next frontier ----------------------------------------------------------------

    def receive(self, payloads: list) -> int:
        """Make the next frontier from what the senders shipped (ids, records and
        fingerprints as flat arrays, and part values; one payload per sender, so at least
        one), in id order."""
        codec, parts = self.codec, self.codec.parts
        adopt = getattr(self.model, "adopt", None) or (lambda value: value)
        gids, flat, fps = [], [], []
        for gids_bytes, flat_bytes, fps_bytes, values in payloads:
            for part, code, value in pickle.loads(values):
                codec.learn(part, code, adopt(value))
            gids.append(np.frombuffer(gids_bytes, np.uint32))
            flat.append(np.frombuffer(flat_bytes, np.uint64))
            fps.append(np.frombuffer(fps_bytes, np.uint64))
        gids = np.concatenate(gids)
        self.table.add_many(np.concatenate(fps), gids)
        order = np.argsort(gids, kind="stable")
        frontier = SpillBuffer(parts, self.budget, self.spill_dir)
        frontier.extend(np.concatenate(flat).reshape(-1, parts)[order])
        self.frontier, self.frontier_gids = frontier, array("I", gids[order].tobytes())
        return len(gids)

    def _close_level(self) -> None:
        if self.level is not None:
            self.spilled += self.level.spilled_bytes
            self.level.close()
            self.level = None

    # ----- the end ------------------------------------------------------------------------------

    def finish(self, last_parent: int | None) -> dict:
        """What the coordinator needs at the end. When the last level was cut after
        `last_parent`, its steps count only up to that parent."""
        transitions = None
        if last_parent is not None:
            transitions = 0
            later = set()
            for place, (gid, steps) in enumerate(zip(self.frontier_gids, self.steps_per_state,
                                                     strict=False)):
                if gid <= last_parent:
                    transitions += steps
                else:
                    later.add(place)
            if self.count_labels and later:
                for place, record in enumerate(self.level or ()):
                    if place in later:
                        for label, _ in self.model.successors(self.codec.decode(record)):
                            self.label_counts[label] -= 1
        self._close_level()
        if self.frontier is not None:
            self.spilled += self.frontier.spilled_bytes
            self.frontier.close()
        return {"edges": (self.edge_src.tobytes(), self.edge_dst.tobytes()),
                "goal_gids": self.goal_gids.tobytes(),
                "goal_flags": [bytes(f) for f in self.goal_flags],
                "label_counts": self.label_counts, "seen_bytes": self.table.nbytes,
                "spilled": self.spilled, "forgotten": self.forgotten,
                "transitions": transitions}


# ----- backends ------------------------------------------------------------------------------


class _Inline:
    """Workers in this process, called one after another."""

    def __init__(self, make: Callable[[int], Worker], workers: int) -> None:
        self.workers = [make(i) for i in range(workers)]

    def call(self, method: str, args: list) -> list:
        return [getattr(w, method)(*a) for w, a in zip(self.workers, args, strict=True)]

    def close(self) -> None:
        self.workers = []


def _serve(make, index: int, connection) -> None:
    gc.disable()
    worker = make(index)
    while True:
        message = connection.recv()
        if message is None:
            break
        method, args = message
        try:
            connection.send(("ok", getattr(worker, method)(*args)))
        except BaseException as exc:  # reported to the coordinator, which raises it
            connection.send(("error", f"{type(exc).__name__}: {exc}"))
            break
    connection.close()


class _Processes:
    """Forked worker processes, each serving calls over a pipe."""

    def __init__(self, make: Callable[[int], Worker], workers: int) -> None:
        context = multiprocessing.get_context("fork")
        self.connections, self.processes = [], []
        for index in range(workers):
            mine, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(make, index, theirs), daemon=True)
            process.start()
            theirs.close()
            self.connections.append(mine)
            self.processes.append(process)

    def call(self, method: str, args: list) -> list:
        for connection, a in zip(self.connections, args, strict=True):
            connection.send((method, a))
        results = []
        for connection in self.connections:
            try:
                status, value = connection.recv()
            except EOFError:
                raise RuntimeError("an explorer worker process ended unexpectedly") from None
            if status != "ok":
                raise RuntimeError(f"explorer worker failed: {value}")
            results.append(value)
        return results

    def close(self) -> None:
        for connection in self.connections:
            try:
                connection.send(None)
            except (BrokenPipeError, OSError):
                pass
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.terminate()
                process.join()


class _RayWorker:
    """A Worker built in a Ray actor from the recipe."""

    def __init__(self, recipe, index: int, workers: int, symmetry: bool, options: dict):
        gc.disable()
        model, properties = recipe()
        self.worker = Worker(index, workers, model, properties, symmetry, options)

    def call(self, method: str, args):
        return getattr(self.worker, method)(*args)


class _Ray:
    """Workers as Ray actors (the `ray` extra). Uses the Ray cluster this process is connected
    to (`ray.init(address=...)` before exploring) or the one `RAY_ADDRESS` names, else starts
    a local one."""

    def __init__(self, recipe, workers: int, symmetry: bool, options: dict) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError("the ray backend needs Ray: pip install 'tdx-host-checker[ray]'") \
                from None
        if recipe is None:
            raise ValueError("the ray backend needs a recipe: a picklable callable that "
                             "returns (model, properties)")
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started and os.environ.get("RAY_ADDRESS"):  # a running cluster: join it
            ray.init(log_to_driver=False, configure_logging=False)
        elif self.started:  # a local Ray of `workers` CPUs, for this run only
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
        actor = ray.remote(num_cpus=1)(_RayWorker)
        self.workers = [actor.remote(recipe, i, workers, symmetry, options)
                        for i in range(workers)]

    def call(self, method: str, args: list) -> list:
        return self.ray.get([w.call.remote(method, a)
                             for w, a in zip(self.workers, args, strict=True)])

    def close(self) -> None:
        for worker in self.workers:
            self.ray.kill(worker)
        self.workers = []
        if self.started:
            self.ray.shutdown()


# ----- the coordinator -----------------------------------------------------------------------


def explore_parallel(model, properties: Sequence, bounds, symmetry: bool, stop_at_first: bool,
                     count_labels: bool, workers: int, memory_budget: int | None,
                     spill_dir: str | None, progress, backend: str, recipe=None):
    """`explore` on `workers` workers (see the module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")
    started = time.perf_counter()
    if memory_budget is None:
        memory_budget = default_memory_budget()
    properties = list(properties)
    spill_dir = spill_folder(spill_dir)
    options = {"count_labels": count_labels, "memory_budget": memory_budget // workers,
               "spill_dir": spill_dir,
               "deadline": None if bounds.max_seconds is None else
               time.time() + bounds.max_seconds}
    # the workers' deadline is wall-clock time (their perf_counter is their own)
    canon = model.canonical if symmetry else (lambda s: s)
    initial_list = list(model.initial_states())
    state_props = [p for p in properties if p.kind == "state"]
    goal_props = [p for p in properties if p.kind in GOAL_KINDS]
    order = {p.id: i for i, p in enumerate(properties)}

    # the initial states, numbered here
    with blaming_start(model, initial_list[0]):
        codec = StateCodec.for_state(canon(initial_list[0]))
    seen: dict[int, int] = {}
    parent, action = array("i"), array("H")
    found: dict[str, tuple] = {}  # id -> (depth, ident, order key, kind, data)
    seeds: list[list] = [[] for _ in range(workers)]
    example = None
    for number, start in enumerate(initial_list):
        with blaming_start(model, start):
            state = canon(start)
            example = example or state
            record = codec.record(state)
            fp = (sum(record) & MASK) or 1
            if fp in seen:
                continue
            gid = seen[fp] = len(seen)
            parent.append(-1)
            action.append(number)
            seeds[owner(record, workers)].append((gid, record, fp))
            for prop in state_props:
                if not prop.check(state):
                    found.setdefault(prop.id, (0, gid, (0, gid, 0, 1, order[prop.id]),
                                               "state"))
    count = initial_count = len(seen)

    def make(index: int) -> Worker:
        return Worker(index, workers, model, properties, symmetry, options)

    pool = (_Inline(make, workers) if backend == "inline" else
            _Processes(make, workers) if backend == "processes" else
            _Ray(recipe, workers, symmetry, options))
    transitions = 0
    bound_hit = None
    stop = bool(found) and stop_at_first
    depth = 0
    try:
        seed_payloads = []
        for w in range(workers):
            codes = sorted({(part, code) for _, record, _ in seeds[w]
                            for part, code in enumerate(record)})
            values = [(part, code, codec.values[part][code]) for part, code in codes]
            gids = array("I", [gid for gid, _, _ in seeds[w]])
            flat = array("Q", [code for _, record, _ in seeds[w] for code in record])
            fps = array("Q", [fp for _, _, fp in seeds[w]])
            seed_payloads.append((example, [(gids.tobytes(), flat.tobytes(), fps.tobytes(),
                                             _pickled(values))]))
        pool.call("seed", seed_payloads)
        payloads: list[list] = [[] for _ in range(workers)]
        level_start, level_end = 0, count
        last = None  # the last parent whose steps count, when the last level was cut
        while level_end > level_start and not stop and bound_hit is None:
            if bounds.max_depth is not None and depth >= bounds.max_depth:
                bound_hit = "depth"
                break
            if bounds.max_states is not None and count >= bounds.max_states:
                bound_hit = "states"
                break
            known = frozenset(found)
            expanded = pool.call("expand", [(payloads[w], known) for w in range(workers)])
            resolved = pool.call("resolve", [([expanded[s]["batches"][o]
                                                for s in range(workers)],)
                                              for o in range(workers)])
            merged = np.sort(np.concatenate([np.frombuffer(w, np.uint64) for w, _ in resolved]))
            merged_bytes = merged.tobytes()
            settled = pool.call("settle", [(merged_bytes, [resolved[o][1][s]
                                                           for o in range(workers)],
                                            level_end) for s in range(workers)])
            payloads = [[settled[s]["payloads"][o] for s in range(workers)]
                        for o in range(workers)]
            transitions += sum(x["transitions"] for x in settled)
            # where the one-process run would have stopped in this level
            cut_reason = None
            if bounds.max_states is not None and count + len(merged) >= bounds.max_states:
                last = int(merged[bounds.max_states - count - 1]) >> STEP_BITS
                if last + 1 < level_end:
                    cut_reason = "states"
                else:
                    last = None
            stopped = [e["stopped_at"] for e in expanded if e["stopped_at"] is not None]
            if stopped:
                time_last = min(stopped) - 1
                if last is None or time_last < last:
                    last, cut_reason = time_last, "time"
            notes = []  # (order key, property position, kind, data)
            for e in expanded:
                for position, (gid, number) in e["step_notes"].items():
                    notes.append(((gid, number, 0, position), position, "transition",
                                  (gid, number)))
            for x in settled:
                for position, key in x["state_notes"].items():
                    notes.append(((key >> STEP_BITS, key & STEP_MASK, 1, position), position,
                                  "state", key))
            notes.sort()
            if stop_at_first and notes:
                first_parent = notes[0][0][0]
                if last is None or first_parent <= last:
                    last, cut_reason = first_parent, "stop"
            if cut_reason is None:
                last = None
            raised = min((e["raised"] for e in expanded if e["raised"]), default=None)
            if raised is not None and (last is None or raised[0] <= last):
                raise raised_at(model, canon, initial_list, parent, action, *raised)
            kept = len(merged) if last is None else \
                int(np.searchsorted(merged, (last + 1) << STEP_BITS))
            for key_order, position, kind, data in notes:
                prop_id = properties[position].id
                if (last is not None and key_order[0] > last) or prop_id in found:
                    continue
                ident = data[0] if kind == "transition" else \
                    level_end + int(np.searchsorted(merged, data))
                found[prop_id] = (depth + 1, ident, (depth + 1,) + key_order, kind, data)
            parent.frombytes((merged[:kept] >> np.uint64(STEP_BITS)).astype(np.int32).tobytes())
            action.frombytes((merged[:kept] & np.uint64(STEP_MASK)).astype(np.uint16).tobytes())
            count += kept
            if kept:
                depth += 1
            level_start, level_end = level_end, count
            if cut_reason == "stop":
                stop = True
            elif cut_reason is not None:
                bound_hit = cut_reason
            if progress is not None:
                progress(Progress(depth, count, transitions, level_end - level_start,
                                  time.perf_counter() - started))
        finished = pool.call("finish", [(last,) for _ in range(workers)])
        if last is not None:
            transitions = sum(f["transitions"] for f in finished) + transitions - sum(
                x["transitions"] for x in settled)
    finally:
        pool.close()
    label_counts = None
    if count_labels:
        label_counts = {}
        for f in finished:
            for label, n in f["label_counts"].items():
                label_counts[label] = label_counts.get(label, 0) + n
    exhaustive = bound_hit is None and not stop
    if exhaustive and goal_props:
        sources, targets = array("I"), array("I")
        for f in finished:
            sources.frombytes(f["edges"][0])
            targets.frombytes(f["edges"][1])
        for g, prop in enumerate(goal_props):
            flags = np.zeros(count, np.uint8)
            for f in finished:
                flags[np.frombuffer(f["goal_gids"], np.uint32)] = np.frombuffer(
                    f["goal_flags"][g], np.uint8)
            if prop.kind == "reachable":
                stuck = first_start_without_goal(model, prop, initial_list, parent, action,
                                                 flags, initial_count, symmetry, True)
            else:
                stuck = first_stuck_state(count, sources, targets, flags)
            if stuck is not None and prop.id not in found:
                found[prop.id] = (_depth(parent, stuck), stuck, (float("inf"),), "state", None)
    elapsed = time.perf_counter() - started
    violations = {}
    for prop_id, (_, ident, _, kind, data) in sorted(
            found.items(), key=lambda kv: (kv[1][0], kv[1][1], kv[1][2])):
        prop = properties[order[prop_id]]
        nxt = None
        if kind == "transition":
            gid, number = data
            path = canonical_path(model, canon, initial_list, parent, action, gid)
            nxt = list(model.successors(path[-1][1]))[number][1]
            path_to = path
        else:
            path_to = canonical_path(model, canon, initial_list, parent, action, ident)
        trace = concrete_trace(model, canon, initial_list, path_to, prop, nxt)
        violations[prop_id] = Violation(prop_id, len(trace), trace)
    verdict = FAIL if violations else (INCONCLUSIVE if bound_hit else PASS)
    seen_bytes = sum(f["seen_bytes"] for f in finished) + 4 * len(parent) + 2 * len(action)
    return ExplorationResult(verdict, violations, count, transitions, depth, elapsed, bound_hit,
                             symmetry, tuple(p.id for p in properties), None, label_counts,
                             True, seen_bytes, sum(f["spilled"] for f in finished), workers,
                             sum(f["forgotten"] for f in finished))


def _pickled(values: list) -> bytes:
    """Part values as bytes: the coordinator passes them on without unpickling them."""
    return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)


def _depth(parent: array, ident: int) -> int:
    depth = 0
    while parent[ident] >= 0:
        ident = parent[ident]
        depth += 1
    return depth

