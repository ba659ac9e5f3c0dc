"""Digest every flow exploration, to show a change to the model or explorer changes no result.

    PYTHONPATH=. python scripts/flow_fingerprint.py before.json   # on the old code
    PYTHONPATH=. python scripts/flow_fingerprint.py after.json --compare before.json

Every profile runs on eight configurations (symmetry on; also off for the three small ones),
to the end (no stop at the first violation). A run's digest holds its verdict, distinct states,
transitions, depth and bound, and a hash of every violation's trace (labels and readable
state fields); on 1x1 also a hash of the whole state graph in BFS order. Speed work must keep
all of them equal. About three minutes on one core.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time

from checker.engines.explorer import Bounds, explore
from checker.inputs.platforms import flow_model
from invariants.flow import flow_invariants
from spec.profiles import PROFILES

CONFIGS = ("default", "1x1", "2x1", "reload", "quiet-2x2", "unchecked-callers",
           "rsvd-exhausted", "too-few-keyids")
BOTH_SYMMETRIES = ("1x1", "2x1", "quiet-2x2")


def _hash(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()


def digest(profile: str, config: str, symmetry: bool) -> dict:
    model = flow_model(profile, config)
    result = explore(model, flow_invariants(model), Bounds(max_seconds=300),
                     symmetry=symmetry, stop_at_first=False, keep_graph=config == "1x1")
    readable = flow_model(profile, config)  # state_fields only; a fresh model changes nothing
    traces = {ident: [v.depth, [list(label) for label, _ in v.trace.steps],
                      [sorted(readable.state_fields(s).items()) for s in v.trace.states]]
              for ident, v in result.violations.items()}
    out = {"verdict": result.verdict, "states": result.distinct_states,
           "transitions": result.transitions, "depth": result.max_depth,
           "bound": result.bound_hit, "violations": sorted(traces), "traces": _hash(traces)}
    if result.graph is not None:
        out["graph"] = _hash([[sorted(readable.state_fields(s).items())
                               for s in result.graph.states],
                              [[a, list(label), b] for a, label, b in result.graph.edges]])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="where to write the digests (JSON)")
    parser.add_argument("--compare", metavar="EARLIER", help="digests to compare against")
    args = parser.parse_args()
    started = time.perf_counter()
    digests = {}
    for profile in PROFILES:
        for config in CONFIGS:
            for symmetry in (True, False) if config in BOTH_SYMMETRIES else (True,):
                key = f"{profile} {config} symmetry={'on' if symmetry else 'off'}"
                digests[key] = digest(profile, config, symmetry)
                print(f"{time.perf_counter() - started:6.0f} s  {key}: "
                      f"{digests[key]['verdict']}, {digests[key]['states']:,} states",
                      file=sys.stderr, flush=True)
    with open(args.output, "w", encoding="utf-8") as handle:
        json.dump(digests, handle, indent=1, sort_keys=True)
    if not args.compare:
        return 0
    with open(args.compare, encoding="utf-8") as handle:
        earlier = json.load(handle)
    differing = sorted(k for k in earlier.keys() | digests.keys()
                       if earlier.get(k) != digests.get(k))
    print(f"{len(digests)} runs, {len(differing)} differ from {args.compare}")
    for key in differing:
        print(f"  {key}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
