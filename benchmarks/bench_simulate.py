"""Random walks against the bug zoo on a machine beyond exhaustive reach (not a test).

    python benchmarks/bench_simulate.py                      # every bug profile on 4x4
    python benchmarks/bench_simulate.py --quick              # 10 s per profile instead of 30
    python benchmarks/bench_simulate.py --shape 2x4 --walks 5000 --time 60 --workers 2
    python benchmarks/bench_simulate.py --strategy uniform   # or swarm (explore --strategy)
    python benchmarks/bench_simulate.py --restarts           # walks restart from rare cells

Each profile of the bug zoo (every bug profile: real bugs `bug-*`, design hazards
`mutant-*` of v6.8, v6.14 and v7.2's runtime update) runs
on the first of the gate's flow configurations where breadth-first search on its own small
machine (2 packages x 2 CPUs) meets the violation, resized to `--shape`: the flow bugs on
`default`, a double free where reserved areas run out on `rsvd-exhausted`, and so on. A
profile no configuration's flow meets is a layout bug the flow cannot show on these memory
maps (the gate's map search and layout checks catch those): it says "layout" and is not
walked. For the others: whether `explore --simulate` met the violation within the walk and
time budget, the invariant, the walks and steps it took, the seconds (searching, then
shrinking), and the violating walk's length before and after shrinking. A profile whose
violation no walk met says "no" with the walks it ran: walks are a sample, not a proof. The
seed is fixed, so the table is the same on every run but for the seconds and for how many
walks a time bound allows.
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def flow_config_of(profile: str) -> str | None:
    """The first of the gate's flow configurations whose breadth-first search (on its own
    small machine) meets a violation of `profile`, or None."""
    from checker.engines.explorer import explore
    from checker.gate.flowcheck import checked_invariants
    from checker.gate.suite import Suite
    from checker.inputs.platforms import flow_model

    for config in Suite().flow_configs:
        flow = flow_model(profile, config)
        if explore(flow, checked_invariants(flow, config), fingerprints=True).violation:
            return config
    return None


def measure(profile: str, config: str, shape: tuple[int, int], walks: int, length: int,
            seconds: float, workers: int, seed: int, strategy: str,
            restarts: bool = False) -> dict:
    from checker.engines.simulate import WalkBounds, simulate
    from checker.gate.flowcheck import flow_recipe

    packages, cpus = shape
    flow, invariants = flow_recipe(profile, config, packages=packages, cpus_per_package=cpus)
    result = simulate(flow, invariants, WalkBounds(walks, length, seconds), seed,
                      workers=workers, strategy=strategy, restarts=restarts)
    return {"found": result.violation is not None, "invariant": result.violated or "-",
            "walks": result.walks, "steps": result.steps, "states": result.distinct_states,
            "seconds": result.seconds, "shrink_seconds": result.shrink_seconds,
            "bound": result.bound_hit, "before": result.found_length,
            "after": result.shrunk_length, "restarted": result.restarted}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 s per profile")
    parser.add_argument("--shape", default="4x4", help="packages x CPUs (default 4x4)")
    parser.add_argument("--walks", type=int, default=100_000, help="walks per profile at most")
    parser.add_argument("--walk-length", type=int, default=200, help="steps per walk at most")
    parser.add_argument("--time", type=float, help="seconds per profile for the walks "
                        "(default 30, 10 with --quick; shrinking comes on top)")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 4))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="append", help="only these (repeatable)")
    parser.add_argument("--strategy", default="weighted",
                        help="weighted (default), swarm or uniform")
    parser.add_argument("--restarts", action="store_true",
                        help="walks restart where earlier walks met rare cells (explore "
                        "--restarts)")
    args = parser.parse_args()
    sys.path.insert(0, ROOT)
    from spec.profiles import PROFILES

    shape = tuple(int(n) for n in args.shape.lower().split("x"))
    limit = args.time if args.time is not None else (10.0 if args.quick else 30.0)
    names = args.profile or [name for name, p in PROFILES.items() if p.kind == "bug"]
    print(f"shape {args.shape}, seed {args.seed}, up to {args.walks:,} walks of "
          f"{args.walk_length} steps and {limit:g} s of walking per profile, "
          f"{args.workers} workers, {args.strategy} walks"
          f"{', with restarts' if args.restarts else ''}\n")
    header = (f"{'profile':38} {'config':15} {'found':6} {'invariant':28} {'walks':>7} "
              f"{'steps':>10} {'states':>8} {'seconds':>12} {'length':>9}")
    print(header)
    print("-" * len(header))
    found = walked = 0
    for name in names:
        config = flow_config_of(name)
        if config is None:
            print(f"{name:38} {'-':15} {'layout':6} (no flow configuration meets it)",
                  flush=True)
            continue
        walked += 1
        row = measure(name, config, shape, args.walks, args.walk_length, limit, args.workers,
                      args.seed, args.strategy, args.restarts)
        found += row["found"]
        if row["found"]:
            length = f"{row['before']} -> {row['after']}"
            timing = f"{row['seconds'] - row['shrink_seconds']:.1f} + {row['shrink_seconds']:.1f}"
        else:
            length, timing = f"({row['bound']})", f"{row['seconds']:.1f}"
        print(f"{name:38} {config:15} {'yes' if row['found'] else 'no':6} "
              f"{row['invariant']:28} {row['walks']:>7,} {row['steps']:>10,} "
              f"{row['states']:>8,} {timing:>12} {length:>9}", flush=True)
    print(f"\n{found} of {walked} flow violations met ({len(names) - walked} layout bugs not "
          "walked); seconds are walking + shrinking; length is the violating walk's steps "
          "before -> after shrinking")


if __name__ == "__main__":
    main()
