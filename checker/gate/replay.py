"""Replaying a stored counterexample: a map (rebuild the TDMRs and test a property of the
result) or a flow trace (re-run it on the model it names). Replaying gives the same text as the
run that found it and says whether it still violates.

A file is checked in two steps, each a `ReplayError` that names it. `load_document` checks the
file itself: its structure against `checker/schemas/counterexample.schema.json`, then what a
schema cannot say (the trace agrees with the document, the map is one `tdmr` reads, no platform
is too large to build). `replay_document` checks it against the model as it is now (the
profile, configuration and invariant exist, the trace runs). A corrupt file stops `verify`
before any work; a sound one the model has moved away from is an error of its replay check.
`replay FILE` exits 2 on either, so "still violates" (exit 1) and "no longer violates" (exit 0)
are only ever said of a counterexample that is what it claims to be.
"""

from __future__ import annotations

import functools
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from checker import schemas
from checker.engines.bfs import goal_reachable
from checker.gate.suite import flow_config_problem, shape_problem
from checker.inputs.platforms import config_from_json, model_from_description
from checker.inputs.readers import InputError, read_json_map
from checker.views.tdmr_report import TdmrOptions, analyse, build, placement_for
from checker.views.trace import ReplayError as TraceReplayError
from checker.views.trace import replay, trace_to_text
from invariants.flow import FlowInvariant, flow_invariants
from invariants.layout import LAYOUT_INVARIANTS
from invariants.machine import MACHINE_INVARIANTS, differs_from_v6_8
from invariants.tdmr_reference import reference_construct
from spec.flow import TdxFlow
from spec.memory import build_tdx_memlist
from spec.profiles import PROFILES, Profile

SCHEMA_VERSION = 1
MAX_BYTES = 16 << 20  # the largest stored counterexample is some 25 KB
# What a map counterexample shows, and so what "still violates" means on replay.
LAYOUT_VIOLATED = "layout-violated"  # construction succeeds with a layout breaking invariants
CONSTRUCT_FAILS = "construct-fails"  # construction fails with the recorded errno
DIFFERS = "differs-from-v6.8"  # the profile builds other TDMRs than v6.8 (SAME-AS-V6.8)
MAP_INVARIANTS = frozenset(MACHINE_INVARIANTS) | {inv.id for inv in LAYOUT_INVARIANTS}
REPLAYABLE = ("map", "trace")  # the counterexample kinds replay re-runs (a boot log is not one)


@dataclass(frozen=True)
class Replay:
    """What replaying found: does the counterexample still violate, the result in words, and
    whether that is word for word the result recorded when it was found. A trace that no
    longer runs on the model (`runs` false) cannot violate, and says why in `text`."""

    still_violates: bool
    text: str
    invariant: str
    same_as_recorded: bool | None = None
    runs: bool = True


class ReplayError(ValueError):
    """A counterexample file that cannot be replayed (exit 2)."""


def load_document(path: str | Path) -> dict[str, Any]:
    """Read and validate a counterexample file; a ReplayError names the file and the problem."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise ReplayError(f"{path}: not a counterexample file: {kind}")
        if info.st_size > MAX_BYTES:
            raise ReplayError(f"{path}: not a counterexample file: {info.st_size:,} bytes "
                              f"(at most {MAX_BYTES:,})")
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        what = "a dangling symlink" if Path(path).is_symlink() else "no such file"
        raise ReplayError(f"{path}: {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReplayError(f"{path}: not a counterexample file: {exc}") from None
    return parse_document(text, str(path))


def parse_document(text: str, name: str) -> dict[str, Any]:
    """The counterexample in `text`, validated (see `validate_document`)."""
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys,
                         parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ReplayError(f"{name}: not a counterexample file: line {exc.lineno}: not valid "
                          f"JSON: {exc.msg}") from None
    except (ValueError, RecursionError) as exc:  # huge integers, nesting beyond the parser
        raise ReplayError(f"{name}: not a counterexample file: {_short(str(exc))}") from None
    validate_document(doc, name)
    return doc


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """JSON keeps the last of two equal keys; a counterexample file must not have any."""
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"key {key!r} appears twice in one object")
        doc[key] = value
    return doc


def _no_constant(word: str) -> Any:
    raise ValueError(f"{word} is not a JSON number")


def validate_document(doc: Any, name: str) -> None:
    """The whole document against the schema, then the facts a schema cannot check."""
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION \
            or not isinstance(doc.get("counterexample"), dict):
        raise ReplayError(f"{name}: not a counterexample file (schema_version "
                          f"{SCHEMA_VERSION} with a 'counterexample' object expected)")
    error = jsonschema.exceptions.best_match(schemas.validator("counterexample")
                                              .iter_errors(doc))
    if error is not None:
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}"
                        for p in error.absolute_path)
        raise ReplayError(f"{name}: invalid counterexample: {where.lstrip('.') or 'top level'}"
                          f": {_short(error.message)}")
    body = doc["counterexample"]
    if body["kind"] == "map":
        _validate_map(body["map"], name)
    else:
        _validate_trace(doc, body["trace"], name)


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _validate_map(the_map: dict[str, Any], name: str) -> None:
    try:
        read_json_map(json.dumps(the_map), name)
    except InputError as exc:
        raise ReplayError(f"{name}: invalid counterexample: counterexample.map: "
                          f"{exc.problem}") from None


def _validate_trace(doc: dict[str, Any], trace: dict[str, Any], name: str) -> None:
    """The trace must say what the document says, and name no platform too large to build."""
    model = trace["model"]
    for field, recorded in (("profile", model["profile"]), ("config", model["config"]),
                            ("invariant", trace["invariant"])):
        if recorded != doc[field]:
            raise ReplayError(f"{name}: the trace's {field} {recorded!r} is not the "
                              f"document's {field} {doc[field]!r}")
    if trace["length"] != len(trace["steps"]):
        raise ReplayError(f"{name}: the trace says it has {trace['length']} steps but lists "
                          f"{len(trace['steps'])}")
    kind = _flow_property_kinds().get(doc["invariant"])
    if not trace["steps"] and kind == "transition":
        raise ReplayError(f"{name}: a trace of no steps cannot break {doc['invariant']}, a "
                          "property of steps")
    if trace["steps"] and kind == "reachable":
        raise ReplayError(f"{name}: {doc['invariant']} is broken by an initial state: its "
                          "trace has no steps")
    for value in (model["config"], model.get("platform")):
        problem = shape_problem(value) if isinstance(value, str) else None
        if problem:
            raise ReplayError(f"{name}: {problem}")
    if "configuration" in model:  # a searched machine, written out: it must build
        try:
            config_from_json(model["configuration"], name)
        except InputError as exc:
            raise ReplayError(str(exc)) from None


@functools.cache
def _flow_property_kinds() -> dict[str, str]:
    """Each flow invariant's kind (the same on every model)."""
    return {inv.id: inv.kind for inv in flow_invariants(model_from_description(
        {"profile": "v6.8", "config": "default"}))}


def replay_document(doc: dict[str, Any], name: str = "<counterexample>") -> Replay:
    """Replay a valid document on the model as it is now. A ReplayError says the document
    names what this model does not have (a profile, configuration or invariant), or that it
    contradicts itself: the result recorded when it was found, yet no violation (an edited
    errno). A trace whose steps no longer run comes back with `runs` false."""
    body = doc["counterexample"]
    if doc["profile"] not in PROFILES:
        raise ReplayError(f"{name}: unknown profile {doc['profile']!r} (see `python -m checker "
                          "profiles`)")
    if body["kind"] == "map":
        if doc["invariant"] not in MAP_INVARIANTS:
            raise ReplayError(f"{name}: unknown invariant {doc['invariant']!r} for a map")
        outcome = _replay_map(doc, body, PROFILES[doc["profile"]], name)
    else:
        outcome = _replay_trace(body, name)
    if outcome.same_as_recorded and not outcome.still_violates:
        raise ReplayError(f"{name}: replaying gives the result recorded when it was found, "
                          "yet says it no longer violates: the file contradicts itself "
                          "(was it edited?)")
    return outcome


def _replay_map(doc, body, profile: Profile, name: str) -> Replay:
    machine = read_json_map(json.dumps(body["map"]), name)
    placement = None if machine.pamt_bases is not None else body["placement"]
    report = analyse(machine, TdmrOptions(profile, placement, explain=False))
    if body["property"] == LAYOUT_VIOLATED:
        found = report["layout_check"]["violations"]
        still = bool(found)
        text = "\n".join(v["text"] for v in found) or "the layout now satisfies every invariant"
    elif body["property"] == DIFFERS:
        options = TdmrOptions(profile, placement, explain=False)
        ours, sysinfo = build(machine, options)
        theirs = reference_construct(build_tdx_memlist(machine.regions), sysinfo,
                                     placement_for(machine, options))
        difference = differs_from_v6_8(profile, ours, theirs)
        still = difference is not None
        text = difference or "now builds what v6.8 builds"
    else:
        error = report["error"]
        still = error is not None and error["errno"] == body["errno"]
        text = (f"construction fails: {error['message']} ({error['errno']})" if error
                else f"construction now succeeds ({report['pamt_kb']} KB of PAMT)")
    return _outcome(still, text, doc["invariant"], body)


def _replay_trace(body: dict, name: str) -> Replay:
    """Re-run a stored trace on the model it names: still violating when the recorded
    invariant fails on its last step again. A step that matches no successor of the model (or
    changes the state otherwise than recorded) means the trace does not run on it."""
    data = body["trace"]
    flow, invariant = _flow_model(data, name)
    try:
        trace = replay(flow, data)
    except TraceReplayError as exc:
        return Replay(False, f"the trace does not run on this model: {exc}", invariant.id,
                      runs=False)
    still = not _holds_at_end(flow, invariant, trace)
    trace.invariant = invariant.id if still else None
    return _outcome(still, trace_to_text(trace, flow, invariant.kind), invariant.id, body)


def _flow_model(data: dict, name: str) -> tuple[TdxFlow, FlowInvariant]:
    """The model a trace names, if this checker still has it as recorded, and its invariant."""
    model = data["model"]
    problem = None if "configuration" in model else flow_config_problem(model["config"])
    if problem:
        raise ReplayError(f"{name}: {problem}")
    try:
        flow = model_from_description(model, name)
    except InputError as exc:
        raise ReplayError(str(exc)) from None
    now = flow.describe()
    differs = sorted(k for k in model.keys() & now.keys() if model[k] != now[k])
    if differs:
        raise ReplayError(f"{name}: the trace was recorded on a model with "
                          + ", ".join(f"{k} {model[k]!r}" for k in differs)
                          + f"; profile {model['profile']} config {model['config']} has "
                          + ", ".join(f"{k} {now[k]!r}" for k in differs))
    invariant = {inv.id: inv for inv in flow_invariants(flow)}.get(data["invariant"])
    if invariant is None:
        raise ReplayError(f"{name}: unknown flow invariant {data['invariant']!r}")
    return flow, invariant


def _outcome(still: bool, text: str, invariant: str, body: dict) -> Replay:
    recorded = body.get("result")
    return Replay(still, text, invariant, None if recorded is None else recorded == text)


def _holds_at_end(flow, invariant: FlowInvariant, trace) -> bool:
    """The invariant on the trace's last state or transition; for a liveness property
    ("eventually"), whether a goal state is still reachable from the last state (for a
    "reachable" one the trace is its initial state alone)."""
    last = trace.steps[-1][1] if trace.steps else trace.initial
    if invariant.kind == "state":
        return invariant.check(last)
    if invariant.kind == "transition":  # a trace of no steps was refused when it was read
        before = trace.steps[-2][1] if len(trace.steps) > 1 else trace.initial
        return invariant.check(before, trace.steps[-1][0], last)
    return goal_reachable(flow, last, invariant.check)
