"""Random walks against the bug zoo on a configuration beyond exhaustive reach (not a test).

    python benchmarks/bench_simulate.py                  # every bug profile on 4x4
    python benchmarks/bench_simulate.py --quick          # 10 s per profile instead of 30
    python benchmarks/bench_simulate.py --config 2x2 --walks 5000 --time 60 --workers 2
    python benchmarks/bench_simulate.py --swarm          # swarm walks (explore --swarm)

For each bug profile of `spec.profiles.BUGS` (real bugs `bug-*`, design hazards `mutant-*`):
whether `explore --simulate` met the violation within the walk and time budget, the invariant,
the walks and steps it took to get there, the seconds (searching, then shrinking), and the
violating walk's length before and after shrinking. A profile whose violation no walk met
says "no" with the walks it ran: uniform random walks are a sample, not a proof. The seed is
fixed, so the table is the same on every run but for the seconds and for how many walks a
time bound allows.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def measure(profile: str, config: str, walks: int, length: int, seconds: float,
            workers: int, seed: int, swarm: bool) -> dict:
    from checker.engines.simulate import WalkBounds, simulate
    from checker.gate.flowcheck import checked_invariants
    from checker.inputs.platforms import flow_model

    flow = flow_model(profile, config)
    result = simulate(flow, checked_invariants(flow, config),
                      WalkBounds(walks, length, seconds), seed, workers=workers, swarm=swarm)
    return {"profile": profile, "found": result.violation is not None,
            "invariant": result.violated or "-", "walks": result.walks, "steps": result.steps,
            "states": result.distinct_states, "seconds": result.seconds,
            "shrink_seconds": result.shrink_seconds, "bound": result.bound_hit,
            "before": result.found_length, "after": result.shrunk_length}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s per profile")
    parser.add_argument("--config", default="4x4", help="flow configuration (default 4x4)")
    parser.add_argument("--walks", type=int, default=5000, help="walks per profile at most")
    parser.add_argument("--walk-length", type=int, default=200, help="steps per walk at most")
    parser.add_argument("--time", type=float, help="seconds per profile for the walks "
                        "(default 30, 10 with --quick; shrinking comes on top)")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="append", help="only these (repeatable)")
    parser.add_argument("--swarm", action="store_true", help="swarm walks instead of uniform")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from spec.profiles import BUGS

    limit = args.time if args.time is not None else (10.0 if args.quick else 30.0)
    names = args.profile or [bug.name for bug in BUGS]
    print(f"config {args.config}, seed {args.seed}, up to {args.walks:,} walks of "
          f"{args.walk_length} steps and {limit:g} s of walking per profile, "
          f"{args.workers} workers, {'swarm' if args.swarm else 'uniform'} walks\n")
    header = (f"{'profile':38} {'found':5} {'invariant':28} {'walks':>6} {'steps':>9} "
              f"{'states':>8} {'seconds':>13} {'length':>9}")
    print(header)
    print("-" * len(header))
    found = 0
    for name in names:
        row = measure(name, args.config, args.walks, args.walk_length, limit, args.workers,
                      args.seed, args.swarm)
        found += row["found"]
        if row["found"]:
            length = f"{row['before']} -> {row['after']}"
            timing = f"{row['seconds'] - row['shrink_seconds']:.1f} + {row['shrink_seconds']:.1f}"
        else:
            length, timing = f"({row['bound']})", f"{row['seconds']:.1f}"
        print(f"{name:38} {'yes' if row['found'] else 'no':5} {row['invariant']:28} "
              f"{row['walks']:>6,} {row['steps']:>9,} {row['states']:>8,} {timing:>13} "
              f"{length:>9}", flush=True)
    print(f"\n{found} of {len(names)} violations met; seconds are walking + shrinking; "
          "length is the violating walk's steps before -> after shrinking")


if __name__ == "__main__":
    main()
