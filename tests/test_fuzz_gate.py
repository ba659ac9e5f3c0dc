"""Fuzzing the gate's inputs in process: suite files and counterexample files, 2,000 examples
each at a fixed seed. Whatever the input, reading it gives a usable value or the error that
names the problem (SuiteError, ReplayError: exit 2), and a counterexample that validates
replays without any other exception."""

from __future__ import annotations

import json
import math
import re
import shutil
from dataclasses import fields
from functools import cache
from pathlib import Path

import pytest
from fresh_counterexamples import fresh_trace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.gate.replay import ReplayError, parse_document, replay_document
from checker.gate.suite import CHECK_KINDS, Bounds, SuiteError, expand, parse_suite
from checker.inputs.platforms import CONFIGS
from spec.profiles import PROFILES

REPO = Path(__file__).resolve().parents[1]
MALFORMED = REPO / "tests" / "malformed" / "gate"
FUZZ = settings(max_examples=2000, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# --- suite files -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def suite_folder(tmp_path_factory) -> Path:
    """Where fuzzed suites live: one readable map, one broken map, a folder named like a map."""
    folder = tmp_path_factory.mktemp("suites")
    shutil.copy(REPO / "checker" / "data" / "boot-logs" / "spr-8480c-256g.log",
                folder / "spr.log")
    shutil.copy(MALFORMED / "maps" / "bad.json", folder / "bad.json")
    (folder / "dir.json").mkdir()
    return folder


def _toml(value) -> str:
    """A value as TOML (our own small writer: every type the suite reader may meet)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") \
            if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return "{" + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def _lines(key: str, *values) -> list[str]:
    return [f"{key} = {_toml(value)}" for value in values]


# Lines of suite files, right and wrong, drawn whole: drawing them value by value would cost
# Hypothesis more than reading them costs us.
TOP = [
    *_lines("profiles", [], ["v6.8"], ["v6.8", "cmr-holes"], ["v6.8", "v6.8"], ["v9"], "v6.8",
            [1], list(PROFILES)[:4]),
    *_lines("maps", [], ["builtin"], ["spr.log"], ["builtin", "spr.log"], ["bad.json"],
            ["dir.json"], ["missing.log"], ["spr.log", "spr.log"], [""], ["\x00"], "spr.log"),
    *_lines("flow_configs", [], ["default"], ["1x1", "2x1"], ["2x2", "0x1"], ["5x5"],
            ["100000x100000"], ["nowhere"], ["1x1", "1x1"], list(CONFIGS)),
    *_lines("checks", [], ["layout"], ["log", "layout", "plan"], ["flow"], ["maps"], ["fuzz"],
            ["log", "log"], list(CHECK_KINDS)),
    *_lines("counterexamples", "cex", "", "a/b", "\x00", 3, []),
    "bounds = 3", "[tool.tdx-checker]", "[[bounds]]", "frobnicate = 1", "é = 2",
]
BOUNDS = [
    *_lines("max_states", 1, 10**12, 0, -1, 1.5, math.inf, True, "10"),
    *_lines("max_depth", 500, 0, 2.0, -math.inf),
    *_lines("time_s", 90, 0.001, 0, -1, math.nan, math.inf, 1e9, 1e-300),
    *_lines("solver_timeout_s", 30, 0, math.inf, 1_000_000, 1_000_001),
    "steps = 4", "[bounds.inner]",
]
# Any value of any TOML type under a known key, from a catalogue for the same reason.
ANY = [True, 0, -1, 2**63 - 1, 1.5, -0.0, math.nan, 1e308, "", "x", "é", "\x00", "1x1", [],
       [1, "a"], [[]], {}, {"a": 1}]
TOP += [f"{key} = {_toml(value)}" for key in ("profiles", "maps", "flow_configs", "checks",
                                              "counterexamples", "bounds") for value in ANY]
BOUNDS += [f"{key} = {_toml(value)}" for key in ("time_s", "max_states") for value in ANY]


def _section(lines: list[str], size: int):
    """Some of `lines`, each key at most once (a key twice is only a TOML error)."""
    return st.lists(st.sampled_from(lines), max_size=size,
                    unique_by=lambda line: line.split(" = ")[0])


SECTIONS = st.tuples(_section(TOP, 5), st.booleans(), _section(BOUNDS, 3))
CUT = st.integers(0, 5)  # one in six: an edit of the text as well
MARKS = st.sampled_from(['"', "[", "]", "=", "\n", "{", "#", ""])


@st.composite
def suite_texts(draw) -> str:
    """A suite file: top-level lines and a [bounds] table, right and wrong, then sometimes an
    edit of the text itself (a character in, or some cut out)."""
    top, has_bounds, bounds = draw(SECTIONS)
    text = "\n".join(top + (["[bounds]", *bounds] if has_bounds else [])) + "\n"
    if draw(CUT) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(MARKS) + text[at + draw(st.integers(0, 2)):]
    return text


@FUZZ
@given(text=suite_texts())
def test_a_fuzzed_suite_file_is_read_or_refused_by_line(suite_folder, text):
    name = str(suite_folder / "suite.toml")
    try:
        suite = parse_suite(text, name)
    except SuiteError as exc:
        assert exc.file == name and exc.problem
        return
    assert all(isinstance(getattr(suite.bounds, f.name), (int, float))
               and math.isfinite(getattr(suite.bounds, f.name))
               and getattr(suite.bounds, f.name) > 0 for f in fields(Bounds))
    for entries in (suite.profiles, suite.maps, suite.flow_configs, suite.checks):
        assert len(set(entries)) == len(entries)
    ids = [spec.id for spec in expand(suite)]
    assert len(ids) == len(set(ids))


# --- counterexample files ----------------------------------------------------------------------

# Values an edit puts in: ones that mean something somewhere in a counterexample, and JSON
# values of every type, drawn whole from one list (drawing them piece by piece costs more).
VALUE = st.sampled_from([None, True, False, 0, 1, -1, -12, -28, 99, 2**63, 2**64, -2**64, 0.5,
                         -0.0, 1e308, "", "x", "é", "\x00", "0x0", "0x100000", "0x10_0000",
                         "v6.8", "default", "2x2", "100000x100000", "LP-ONCE", "DEADLOCK-FREE",
                         "map", "trace", "construct-fails", "layout-violated", "explicit", [],
                         {}, [0], [None], {"a": 1}, {"action": "tdx_init"}])


def _paths(value, prefix=()):
    """Every place in a document: the path of keys and indexes that leads to it."""
    yield prefix
    if isinstance(value, dict):
        for key in sorted(value):
            yield from _paths(value[key], (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*prefix, index))


@cache
def bases() -> list[tuple[str, st.SearchStrategy]]:
    """The documents edits start from, each with a strategy for a place in it: a small map
    (two regions, module limits, PAMT bases) and a fresh two-step trace."""
    texts = [(MALFORMED / "counterexamples" / "map-small-valid.json").read_text(),
             json.dumps(fresh_trace("mutant-notifier-rejects-when-empty"))]
    return [(text, st.sampled_from(list(_paths(json.loads(text)))[1:])) for text in texts]


# Strategies made once: making one per draw would cost more than the draw.
WHICH = st.integers(0, 1)
EDITS = st.sampled_from(["replace", "remove", "add"])
NEW_KEYS = st.sampled_from(["x", "kind", "result", "nid", "extra"])
TAILS = st.sampled_from(["", '"', "}", "[", "NaN", "1e999", "\\"])


@st.composite
def counterexample_texts(draw) -> str:
    """A stored counterexample with one edit anywhere in it (a value replaced, a key or item
    removed, a key added), then sometimes an edit of the text (a cut or a character in)."""
    text, places = bases()[draw(WHICH)]
    doc = json.loads(text)
    path = draw(places)
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    edit = draw(EDITS)
    if edit == "replace":
        parent[path[-1]] = draw(VALUE)
    elif edit == "remove":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(NEW_KEYS)] = draw(VALUE)
    else:
        parent.insert(path[-1], draw(VALUE))
    text = json.dumps(doc)
    if draw(CUT) == 0:
        text = text[:draw(st.integers(0, len(text)))] + draw(TAILS)
    return text


@FUZZ
@given(text=counterexample_texts())
def test_a_fuzzed_counterexample_is_replayed_or_refused(text):
    try:
        doc = parse_document(text, "x.json")
        outcome = replay_document(doc, "x.json")
    except ReplayError as exc:
        assert str(exc).startswith("x.json: ")
        return
    assert isinstance(outcome.still_violates, bool) and outcome.text


def test_the_fuzzing_starts_from_counterexamples_that_replay():
    for text, _ in bases():
        outcome = replay_document(parse_document(text, "x.json"))
        assert outcome.still_violates and outcome.same_as_recorded
