"""What each flow invariant catches that no other does (not a test): the guide's yardstick for an
invariant, measured on one-rule changes of `spec/` and on the bug zoo.

    python benchmarks/bench_invariants.py                       # 40 mutants of spec/flow.py
    python benchmarks/bench_invariants.py --sample 80 --seed 3 --files spec/flow.py spec/module.py
    python benchmarks/bench_invariants.py --json worth.json     # every mutant's and profile's sets

`bench_mutation.py` stops a mutant at the gate's first failure, which says that the gate caught
it, not which invariants would have. Here each mutant (drawn as `bench_mutation.py --quick`
draws them, the listed equivalents left out) runs the explorations of the flow mutation suites
(`--suites`: `benchmarks/mutation-suite-flow.toml`, v6.8 on seven configurations, and
`mutation-suite-later.toml`, the four later kernels on eight; their bounds; and each suite
kernel on every machine the platform search draws, none shrunk: run "<kernel>/searched") with
every invariant and without stopping at the first violation, in a private copy of the code; so does
every bug profile (`bug-...`, `mutant-...`) on the default configuration and on
`rsvd-exhausted`. An invariant catches a
mutant when it fails there and not on the unmutated code. Reported per invariant: the mutants
it catches, those it alone catches, and the same for the bug profiles. An invariant that never
catches anything alone is a candidate to merge into the ones that catch the same, or to drop;
one that catches only its own bug profile restates that profile's rule. Mutants that make the
model raise count for no invariant.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_mutation import (  # noqa: E402 (the repository root first)
    EQUIVALENTS,
    MEMORY_LIMIT,
    SUITES,
    Snapshot,
    format_rows,
    load_equivalents,
    mutants_of,
    sample,
)

# Run in a copy of the code: every (profile, configuration) asked for, every invariant, no stop;
# under an address-space limit, as bench_mutation's runs: a mutant that loops while it appends
# must not take the shared machine's memory with it.
SEARCHED = "searched"  # the platform search's machines, as a run's configuration
DRIVER = """
import json, resource, sys
SEARCHED = sys.argv.pop(1)
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
from checker.engines.explorer import Bounds, explore
from checker.gate.flowcheck import flow_recipe
runs, max_states, seconds = json.loads(sys.argv[1])
out = {}

for profile, config in runs:
    try:
        if config == SEARCHED:  # what any of the platform search's machines breaks
            from checker.engines.platformsearch import broken_anywhere
            from spec.profiles import get_profile
            out[profile + "/" + config] = sorted(broken_anywhere(get_profile(profile)))
            continue
        model, props = flow_recipe(profile, config)
        result = explore(model, props, Bounds(max_states=max_states, max_seconds=seconds),
                         stop_at_first=False)
        out[profile + "/" + config] = sorted(result.violations)
    except Exception as error:  # a mutant that makes the model raise (or run out of memory)
        # counts for none
        out[profile + "/" + config] = {"error": type(error).__name__ + ": " + str(error)}
print(json.dumps(out))
"""


BUG_CONFIGS = ("default", "rsvd-exhausted")


def suite_runs(names: list[str]) -> tuple[list[tuple[str, str]], int, float]:
    """The (profile, configuration) pairs of the named mutation suites, and the widest of
    their bounds."""
    from checker.gate.suite import profile_scope
    from spec.profiles import get_profile

    runs, max_states, seconds = [], 0, 0.0
    for name in names:
        suite = tomllib.loads(SUITES[name].read_text())
        runs += [(p, c) for p in suite["profiles"] for c in suite["flow_configs"]]
        if "platforms" in suite["checks"]:  # as the gate searches machines: real kernels
            runs += [(p, SEARCHED) for p in suite["profiles"]
                     if "platforms" in profile_scope(get_profile(p))]
        max_states = max(max_states, suite["bounds"]["max_states"])
        seconds = max(seconds, suite["bounds"]["time_s"])
    return runs, max_states, seconds


def run_driver(folder: Path, runs, max_states: int, seconds: float, timeout: float,
               memory: int = MEMORY_LIMIT) -> dict:
    """The invariants each run violates ({"error": ...} for a run that raised), or
    {"error": ...} for the whole batch when it timed out or crashed; at most `memory` bytes
    of address space."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        done = subprocess.run([sys.executable, "-c", DRIVER, SEARCHED, str(memory),
                               json.dumps([runs, max_states, seconds])],
                              cwd=folder, env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["exit"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def caught(reference: dict, mutated: dict) -> set[str] | None:
    """The invariants that fail on the mutant and not on the unmutated code, run by run; None
    when any run raised (a crash never counts as catching)."""
    if "error" in mutated or any(isinstance(v, dict) for v in mutated.values()):
        return None
    out = set()
    for run, violated in mutated.items():
        out |= set(violated) - set(reference.get(run, ()))
    return out


def worth(mutant_sets: dict[str, set[str]], profile_sets: dict[str, set[str]],
          invariants: list[str]) -> list[list[str]]:
    """The report's table: per invariant, how many mutants and bug profiles it catches, and how
    many of those it alone catches."""
    rows = [["invariant", "mutants", "alone", "bug profiles", "alone"]]
    for inv in invariants:
        counts = []
        for sets in (mutant_sets, profile_sets):
            mine = [s for s in sets.values() if inv in s]
            counts += [str(len(mine)), str(sum(len(s) == 1 for s in mine))]
        rows.append([inv, *counts])
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=["spec/flow.py"])
    parser.add_argument("--suites", nargs="+", default=["flow", "later"],
                        choices=("flow", "later"))
    parser.add_argument("--sample", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=600.0, metavar="S",
                        help="seconds per mutant's runs")
    parser.add_argument("--json", type=Path, metavar="FILE")
    args = parser.parse_args(argv)

    from checker.gate.flowcheck import flow_recipe
    from spec.profiles import PROFILES

    runs, max_states, seconds = suite_runs(args.suites)
    _, props = flow_recipe(*runs[0])
    invariants = [p.id for p in props]
    equivalents = load_equivalents(EQUIVALENTS)
    snapshot = Snapshot()
    mutants = [m for f in args.files for m in mutants_of(f, snapshot=snapshot)
               if m.id not in equivalents]
    chosen = sample(mutants, args.files, args.sample, args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-invariants-") as tmp:
        folders: queue.Queue[Path] = queue.Queue()
        for i in range(max(1, args.jobs)):
            snapshot.copy_packages(Path(tmp) / f"worker-{i}")
            folders.put(Path(tmp) / f"worker-{i}")
        bug_runs = [(name, config) for name in sorted(PROFILES)
                    if name.startswith(("bug-", "mutant-")) for config in BUG_CONFIGS]

        def unmutated(batch: list) -> dict:
            folder = folders.get()
            try:
                return run_driver(folder, batch, max_states, seconds, args.timeout * 4)
            finally:
                folders.put(folder)

        with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # the bug runs split over the jobs
            jobs = max(1, args.jobs)
            reference, *parts = pool.map(unmutated, [runs] + [bug_runs[i::jobs]
                                                             for i in range(jobs)])
        profiles = {run: v for part in parts for run, v in part.items()}
        broken = [run for out in (reference, profiles) for run, v in out.items()
                  if run == "error" or isinstance(v, dict)]
        if broken:
            raise SystemExit(f"the unmutated code fails to run: {broken[0]}")

        def one(mutant) -> tuple[str, dict]:
            folder = folders.get()
            target = folder / mutant.file
            original = target.read_bytes()
            try:
                target.write_bytes(mutant.apply(original))
                return mutant.id, run_driver(folder, runs, max_states, seconds, args.timeout)
            finally:
                target.write_bytes(original)
                folders.put(folder)

        results: dict[str, dict] = {}
        found: dict[str, set[str] | None] = {}  # per mutant, what `caught` says
        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            for number, (mid, out) in enumerate(pool.map(one, chosen), 1):
                results[mid], found[mid] = out, caught(reference, out)
                said = "raised" if found[mid] is None else ", ".join(sorted(found[mid])) or "none"
                print(f"[{number}/{len(chosen)}] {mid}: {said}", file=sys.stderr, flush=True)
    mutant_sets = {m: s for m, s in found.items() if s}
    crashed = sum(s is None for s in found.values())
    profile_sets: dict[str, set[str]] = {}
    for run, violated in profiles.items():
        profile_sets.setdefault(run.split("/")[0], set()).update(violated)
    print(format_rows(worth(mutant_sets, profile_sets, invariants)))
    print(f"\n{len(chosen)} mutants of {', '.join(args.files)} (seed {args.seed}): "
          f"{len(mutant_sets)} caught by some invariant, {crashed} make the model raise, "
          f"{len(chosen) - len(mutant_sets) - crashed} caught by none; {len(profile_sets)} bug "
          f"profiles on {' and '.join(BUG_CONFIGS)}; {time.monotonic() - started:.0f} s")
    if args.json:
        doc = {"reference": reference, "profiles": profiles, "mutants": results}
        tmp_path = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp_path.write_text(json.dumps(doc, indent=1, sort_keys=True))
        os.replace(tmp_path, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
