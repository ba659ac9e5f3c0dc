"""A generic bounded breadth-first explorer with shortest counterexamples: the front door.

It knows nothing of TDX; the model and property protocol, and why traces are shortest, are in
`checker.engines.bfs`, which runs the search in one process; `checker.engines.workers` runs it
on several. The names other modules use (bounds, verdicts, traces, results) are re-exported
here.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence

from checker.engines.bfs import (
    FAIL,
    INCONCLUSIVE,
    PASS,
    Bounds,
    ExplorationResult,
    ModelRaised,
    Progress,
    StateGraph,
    Trace,
    Violation,
    breadth_first,
    model_trace,
)
from checker.engines.fingerprints import spill_folder
from checker.engines.workers import explore_parallel

UNBOUNDED = Bounds()

__all__ = ["FAIL", "INCONCLUSIVE", "PASS", "Bounds", "ExplorationResult", "ModelRaised",
           "Progress", "StateGraph", "Trace", "Violation", "explore", "model_trace"]


def explore(model, properties: Sequence = (), bounds: Bounds = UNBOUNDED, symmetry: bool = True,
            stop_at_first: bool = True, keep_graph: bool = False,
            count_labels: bool = False, fingerprints: bool = False, workers: int = 1,
            memory_budget: int | None = None, spill_dir: str | None = None,
            progress: Callable[[Progress], None] | None = None,
            backend: str = "processes", recipe: Callable | None = None) -> ExplorationResult:
    """Breadth-first search of `model` checking `properties`.

    With `stop_at_first` the run ends at the first violation; otherwise it goes on and keeps
    the first (shortest) violation of every property. `keep_graph` records every edge with
    its label (for `checker.views.graph`); edges without labels are kept anyway when an
    "eventually" property needs them. `count_labels` counts the transitions of every distinct
    label (for coverage).

    `fingerprints` keeps a 64-bit fingerprint of each state met instead of the state
    (`checker.engines.fingerprints`), and the states still to expand as compact records that
    move to a temporary file (in `spill_dir`) past `memory_budget` bytes (split between
    workers; by default an eighth of the machine's memory, `default_memory_budget`); the
    model's memo tables (a model offering `memo_entries` and `forget`) are emptied when they
    would take more than that, and with them the part values the frontier does not need, so memory
    follows the frontier rather than the space; a trace is then rebuilt by replaying the
    recorded step numbers. Results are those of the exact mode but
    for the small chance of a fingerprint collision, which the result estimates
    (`collision_probability`). `workers` > 1 explores with that many processes
    (`checker.engines.workers`, fingerprint mode; `backend` "ray" runs them as Ray actors,
    built from `recipe`, a picklable callable returning `(model, properties)`), with the same
    verdict, counts and traces. `progress` is called after each level.

    The cyclic garbage collector is paused for the run: states are acyclic tuples, freed by
    reference counting, and scanning the hundreds of thousands kept alive cost a sixth of the
    run time on the default flow configuration (what a model's `forget` lets go is freed the
    same way: its memo tables hold no cycles).
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    if keep_graph and (fingerprints or workers > 1):
        raise ValueError("a state graph needs the states: use the exact mode, one worker")
    collecting = gc.isenabled()
    gc.disable()
    try:
        if workers > 1:
            return explore_parallel(model, properties, bounds, symmetry, stop_at_first,
                                    count_labels, workers, memory_budget, spill_dir, progress,
                                    backend, recipe)
        return breadth_first(model, properties, bounds, symmetry, stop_at_first, keep_graph,
                        count_labels, fingerprints, memory_budget, spill_folder(spill_dir),
                        progress)
    finally:
        if collecting:
            gc.enable()
