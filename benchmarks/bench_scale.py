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
import statistics
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
ALONE, COPIES, SPLIT = "fingerprints, 4 GB", "2 copies side by side", "2 workers, 2 GB each"
CHOICES = (*MODES, COPIES)
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


def _start(config: str, mode: str, limit: float) -> subprocess.Popen:
    """One run of `measure` in a fresh interpreter (its own peak memory)."""
    code = (f"import json, sys; sys.path.insert(0, {ROOT!r}); "
            "sys.argv = ['bench_scale']; "
            "from benchmarks.bench_scale import measure; "
            f"print(json.dumps(measure({config!r}, {mode!r}, {limit!r})))")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)


def _result(config: str, mode: str, run: subprocess.Popen) -> dict:
    out, err = run.communicate()
    if run.returncode:  # the row says why (a worker killed for memory, ...); the others run
        last = (err.strip().splitlines() or [f"exit {run.returncode}"])[-1]
        return {"config": config, "mode": mode, "error": last}
    return json.loads(out.strip().splitlines()[-1])


def run_row(config: str, mode: str, limit: float) -> dict:
    """One row; for `COPIES` the slower of two one-process runs started together, with the
    two processes' peak memory added."""
    if mode != COPIES:
        return _result(config, mode, _start(config, mode, limit))
    runs = [_start(config, ALONE, limit) for _ in range(2)]
    copies = [_result(config, ALONE, run) for run in runs]
    failed = [r for r in copies if "error" in r]
    if failed:
        return {**failed[0], "mode": mode}
    return {**max(copies, key=lambda r: r["wall"]), "mode": mode,
            "rss": sum(r["rss"] for r in copies)}


def speedups(rows: list[dict]) -> dict[str, list[tuple[float, float | None]]]:
    """Per configuration, per round (rows come round by round, each mode once): the speed-up
    of two workers and of two copies side by side over one process alone (None where the
    round lacks a mode or a run failed or was cut off)."""
    walls: dict[str, list[dict]] = {}  # per configuration, per round: mode -> wall or None
    for r in rows:
        rounds = walls.setdefault(r["config"], [])
        if not rounds or r["mode"] in rounds[-1]:
            rounds.append({})
        rounds[-1][r["mode"]] = r["wall"] if "error" not in r and r["bound_hit"] is None \
            else None
    out = {}
    for config, rounds in walls.items():
        pairs = []
        for wall in rounds:
            alone, split, copies = (wall.get(mode) for mode in (ALONE, SPLIT, COPIES))
            if alone is not None:
                pairs.append((alone / split if split else None,
                              2 * alone / copies if copies else None))
        out[config] = pairs
    return out


def speedup_text(config: str, pairs: list[tuple[float | None, float | None]]) -> str:
    """The summary line: the median over rounds (a lone run's wall time moves by 15-30% on a
    shared machine, and the rounds interleave the modes)."""
    parts = []
    for name, index in (("two workers", 0), ("two copies side by side (the ceiling)", 1)):
        values = [p[index] for p in pairs if p[index] is not None]
        if values:
            listed = ", ".join(f"{v:.2f}x" for v in values)
            parts.append(f"{name} {statistics.median(values):.2f}x (rounds: {listed})")
    return f"{config}: speed-up over one process, median of {len(pairs)} round(s): " + \
        "; ".join(parts)


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
    parser.add_argument("--modes", nargs="+", choices=CHOICES)
    parser.add_argument("--limit", type=float, default=150.0, metavar="S")
    parser.add_argument("--rounds", type=int, default=1, metavar="N",
                        help="run the modes N times, interleaved, and report median speed-ups")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    if args.configs:
        plan = tuple((c, tuple(args.modes or MODES)) for c in args.configs)
    elif args.modes:
        plan = tuple((c, tuple(m for m in modes if m in args.modes)) for c, modes in plan)
    header = ["config", "mode", "verdict", "states", "transitions", "depth", "wall s",
              "states/s", "peak MB", "B/state seen", "collision", "bounded runs"]
    print(" | ".join(header), flush=True)
    rows = []
    for config, modes in plan:
        for _ in range(args.rounds):
            for mode in modes:
                print(f"{config} {mode} ...", file=sys.stderr, flush=True)
                rows.append(run_row(config, mode, args.limit))
                print(" | ".join(row_text(rows[-1])), flush=True)
    for config, pairs in speedups(rows).items():
        if any(a is not None or b is not None for a, b in pairs):
            print(speedup_text(config, pairs), flush=True)


if __name__ == "__main__":
    main()
