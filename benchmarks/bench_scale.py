"""The explorer on larger machines (issue 15): memory per state, workers, symmetry (not a test).

    python benchmarks/bench_scale.py                  # 3x3 and 2x5 in every mode, 4x4 bounded
    python benchmarks/bench_scale.py --quick          # 2x4 only
    python benchmarks/bench_scale.py --configs 3x3 --modes exact fingerprints
    python benchmarks/bench_scale.py --limit 600      # seconds per run before it is cut off
                                                      # (default 150)

Each row runs in its own process, so peak memory figures do not mix. Modes: `exact` keeps every
state (the default explorer), `fingerprints` keeps a 64-bit fingerprint per state (`explore
--fingerprints`), `2 workers` splits the frontier over two processes (`explore --workers 2`),
`no symmetry` turns every symmetry reduction off; `, 128 MB` gives the run a memory budget
(`--memory-budget`: the model's memo tables are emptied when they outgrow it, per worker with
workers), and `, 4 GB` (2 GB each) one roomy enough that nothing is emptied, which measures
what the workers gain apart from what the budget costs them. Reported: distinct states,
transitions, depth, wall seconds, states per wall second, peak resident memory (this process;
with workers, the coordinator's plus the largest worker's times the workers), bytes per state
of the seen set (the fingerprint table and the parent links) and TLC's estimate of the chance
that a fingerprint collision hid a state. A run cut off by the limit says "bounded"; for it the
last column projects what the whole space would cost from its per-worker rate. Compare rows of
one run (the speed-up of `2 workers` is against `fingerprints` of the same run). Rows are
printed as they finish, `|`-separated.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUDGET, ROOMY = 128 << 20, 4 << 30
MODES = {"exact": {}, "fingerprints": {"fingerprints": True},
         "fingerprints, 128 MB": {"fingerprints": True, "memory_budget": BUDGET},
         "fingerprints, 4 GB": {"fingerprints": True, "memory_budget": ROOMY},
         "2 workers": {"workers": 2},
         "2 workers, 128 MB each": {"workers": 2, "memory_budget": 2 * BUDGET},
         "2 workers, 2 GB each": {"workers": 2, "memory_budget": ROOMY},
         "no symmetry": {"fingerprints": True, "symmetry": False}}
FULL = (("3x3", tuple(MODES)),
        ("2x5", ("exact", "fingerprints", "fingerprints, 128 MB", "2 workers",
                 "fingerprints, 4 GB", "2 workers, 2 GB each")),
        ("4x4", ("2 workers, 128 MB each",)))
QUICK = (("2x4", tuple(MODES)),)


def measure(config: str, mode: str, limit: float) -> dict:
    sys.path.insert(0, ROOT)
    from checker.engines.explorer import Bounds, explore
    from checker.gate.flowcheck import flow_recipe

    model, properties = flow_recipe("v6.8", config)
    levels = []
    started = time.perf_counter()
    result = explore(model, properties, Bounds(max_seconds=limit), progress=levels.append,
                     **MODES[mode])
    wall = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    workers = MODES[mode].get("workers", 1)
    return {"config": config, "mode": mode, "verdict": result.verdict,
            "bound_hit": result.bound_hit, "states": result.distinct_states,
            "transitions": result.transitions, "depth": result.max_depth, "wall": wall,
            "rss": own + (child * workers if workers > 1 else 0),
            "seen_bytes": result.seen_bytes, "collision": result.collision_probability,
            "workers": workers, "frontier": levels[-1].frontier if levels else 0}


def run_row(config: str, mode: str, limit: float) -> dict:
    """One row in a fresh interpreter (its own peak memory)."""
    code = (f"import json, sys; sys.path.insert(0, {ROOT!r}); "
            "sys.argv = ['bench_scale']; "
            "from benchmarks.bench_scale import measure; "
            f"print(json.dumps(measure({config!r}, {mode!r}, {limit!r})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=False, cwd=ROOT)
    if out.returncode:  # the row says why (a worker killed for memory, ...); the others run
        last = (out.stderr.strip().splitlines() or [f"exit {out.returncode}"])[-1]
        return {"config": config, "mode": mode, "error": last}
    return json.loads(out.stdout.strip().splitlines()[-1])


def row_text(r: dict) -> list[str]:
    if "error" in r:
        return [r["config"], r["mode"], "error", *[""] * 8, r["error"]]
    scope = "exhaustive" if r["bound_hit"] is None else f"bounded ({r['bound_hit']})"
    per_state = f"{r['seen_bytes'] / r['states']:.0f}" if r["seen_bytes"] else "-"
    collision = f"{r['collision']:.1e}" if r["collision"] is not None else "-"
    projection = ""
    if r["bound_hit"] is not None:
        per_worker = r["states"] / r["wall"] / r["workers"]
        projection = (f"{per_worker:,.0f} states/s per worker; frontier {r['frontier']:,} at "
                      f"depth {r['depth']}")
    return [r["config"], r["mode"], f"{r['verdict']} {scope}", f"{r['states']:,}",
            f"{r['transitions']:,}", str(r["depth"]), f"{r['wall']:.1f}",
            f"{r['states'] / r['wall']:,.0f}", f"{r['rss'] / 2**20:,.0f}", per_state, collision,
            projection]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--configs", nargs="+", metavar="PxC")
    parser.add_argument("--modes", nargs="+", choices=tuple(MODES))
    parser.add_argument("--limit", type=float, default=150.0, metavar="S")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.configs:
        plan = tuple((c, tuple(args.modes or MODES)) for c in args.configs)
    elif args.modes:
        plan = tuple((c, tuple(m for m in modes if m in args.modes)) for c, modes in plan)
    header = ["config", "mode", "verdict", "states", "transitions", "depth", "wall s",
              "states/s", "peak MB", "B/state seen", "collision", "bounded runs"]
    print(" | ".join(header), flush=True)
    for config, modes in plan:
        for mode in modes:
            print(f"{config} {mode} ...", file=sys.stderr, flush=True)
            print(" | ".join(row_text(run_row(config, mode, args.limit))), flush=True)


if __name__ == "__main__":
    main()
