"""Explorer speed and state-space size for the v6.8 flow (not a test).

    python benchmarks/bench_explorer.py                 # the full table
    python benchmarks/bench_explorer.py --quick         # default configuration only
    python benchmarks/bench_explorer.py --limit 120     # seconds per run before it is cut off
    python benchmarks/bench_explorer.py --repeat 3      # best of three runs (noisy machines)

Each configuration runs in its own process so memory figures do not mix. Reported: distinct
states, transitions, depth, wall and CPU seconds, states and transitions per CPU second, and
resident memory per stored state (growth of the peak RSS over the run, divided by the
states). Runs cut off by the time limit say "bounded". With `--repeat N` the process explores
N times, each on a fresh model, and the fastest run counts (the peak RSS is that of one run,
since each run's states are freed before the next).
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
SHAPES = ("1x1", "2x1", "2x2", "4x1", "2x4", "4x2")


def measure(config: str, symmetry: bool, limit: float, repeat: int = 1) -> dict:
    sys.path.insert(0, ROOT)
    from checker.engines.explorer import Bounds, explore
    from checker.inputs.platforms import flow_model
    from invariants.flow import flow_invariants

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    best = None
    for _ in range(repeat):
        model = flow_model("v6.8", config)
        cpu_before = time.process_time()
        result = explore(model, flow_invariants(model), Bounds(max_seconds=limit),
                         symmetry=symmetry)
        cpu = time.process_time() - cpu_before
        rate = result.distinct_states / cpu if cpu else 0.0
        if best is None or rate > best[0]:
            best = (rate, cpu, result)
        del model, result
    rate, cpu, result = best
    rss = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) * 1024
    return {"config": config, "symmetry": symmetry, "verdict": result.verdict,
            "bound": result.bound_hit, "states": result.distinct_states,
            "transitions": result.transitions, "depth": result.max_depth,
            "wall": result.seconds, "cpu": cpu, "states_per_cpu_s": rate,
            "transitions_per_cpu_s": result.transitions / cpu if cpu else 0.0,
            "bytes_per_state": rss / max(result.distinct_states, 1)}


def run_child(config: str, symmetry: bool, limit: float, repeat: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", config,
                          "--symmetry", str(int(symmetry)), "--limit", str(limit),
                          "--repeat", str(repeat)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--limit", type=float, default=90.0)
    parser.add_argument("--child")
    parser.add_argument("--symmetry", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, bool(args.symmetry), args.limit, args.repeat)))
        return
    runs = [("default", True)] if args.quick else (
        [("default", True), ("default", False)]
        + [(shape, sym) for shape in SHAPES if shape != "2x2" for sym in (True, False)])
    header = (f"{'config':8} {'sym':4} {'verdict':13} {'states':>10} {'transitions':>12} "
              f"{'depth':>5} {'wall s':>7} {'cpu s':>7} {'states/cpu-s':>12} "
              f"{'trans/cpu-s':>12} {'B/state':>8}")
    print(header)
    print("-" * len(header))
    for config, symmetry in runs:
        r = run_child(config, symmetry, args.limit, args.repeat)
        verdict = r["verdict"] + (" (bounded)" if r["bound"] else "")
        print(f"{r['config']:8} {'on' if symmetry else 'off':4} {verdict:13} {r['states']:>10,} "
              f"{r['transitions']:>12,} {r['depth']:>5} {r['wall']:>7.1f} {r['cpu']:>7.1f} "
              f"{r['states_per_cpu_s']:>12,.0f} {r['transitions_per_cpu_s']:>12,.0f} "
              f"{r['bytes_per_state']:>8,.0f}", flush=True)


if __name__ == "__main__":
    main()
