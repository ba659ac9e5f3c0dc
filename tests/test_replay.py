"""Replaying stored counterexamples in `verify`: a map that shows a departure from v6.8, and a
trace that no longer runs on the model."""

from __future__ import annotations

import json

import pytest
from fresh_counterexamples import edited, fresh_trace

from checker.gate.corpus import document, with_recorded_result
from checker.gate.replay import DIFFERS, load_document, replay_document
from checker.gate.runners import run_check
from checker.gate.suite import Bounds, CheckSpec
from checker.inputs.readers import memory_map_json
from spec.memory import MemRange

SZ_16T = 16 << 40


def _differs_document(profile: str) -> dict:
    regions = (MemRange(0, SZ_16T, 0),)
    body = {"kind": "map", "map": memory_map_json(regions), "placement": "first-fit",
            "property": DIFFERS, "errno": None, "text": "PAMT sizes differ"}
    return with_recorded_result(document(f"maps/{profile}/grid", profile, "grid",
                                         "SAME-AS-V6.8", body))


def test_a_departure_from_v6_8_still_violates_on_the_profile_that_departs():
    # 32-bit PAMT entry counts wrap on a 16 TiB TDMR: the PAMT sizes differ from v6.8's.
    outcome = replay_document(_differs_document("bug-pamt-entries-int32"))
    assert outcome.still_violates and "PAMT" in outcome.text and outcome.same_as_recorded


def test_a_departure_from_v6_8_no_longer_violates_once_the_profile_builds_what_v6_8_does():
    # The document recorded on the departing profile, replayed on a model where that profile
    # is v6.8 again (as after the change is reverted).
    doc = edited(_differs_document("bug-pamt-entries-int32"), [("profile", "v6.8")])
    outcome = replay_document(doc)
    assert not outcome.still_violates and outcome.text == "now builds what v6.8 builds"


def test_verify_reports_a_trace_that_no_longer_runs_as_an_error(tmp_path):
    doc = edited(fresh_trace("bug-lp-init-irq-reentry"),
                 [("counterexample.trace.steps.2.step.cpu", 1)])
    path = tmp_path / "stale.json"
    path.write_text(json.dumps(doc))
    load_document(path)  # a sound file: only the model has moved away from it
    result = run_check(CheckSpec("replay/stale", "replay", doc["profile"], str(path), Bounds()))
    assert result.status == "error" and "does not run on this model" in result.detail


def _packages_never_online(self, state):
    return False, "package 0 has no online CPU"


def test_a_reachable_property_broken_at_the_start_is_stored_and_replays(monkeypatch):
    """A "reachable" violation's counterexample is the initial state, with no steps: the gate
    writes it, the schema takes it, and replaying searches for the goal from that state again
    (still out of reach on the broken model, reached once the model is mended)."""
    from checker.gate.replay import parse_document
    from spec.flow import TdxFlow

    monkeypatch.setattr(TdxFlow, "_packages_online", _packages_never_online)
    spec = CheckSpec("flow/v6.8/1x1", "flow", "v6.8", "1x1", Bounds(max_states=10_000))
    result = run_check(spec)
    assert result.status == "fail" and result.invariant == "TDX-USABLE"
    assert result.counterexample["trace"]["steps"] == []
    doc = with_recorded_result(document(spec.id, "v6.8", "1x1", "TDX-USABLE",
                                        result.counterexample))
    broken = replay_document(parse_document(json.dumps(doc), "start.json"))
    assert broken.still_violates and broken.same_as_recorded
    monkeypatch.undo()
    assert not replay_document(parse_document(json.dumps(doc), "start.json")).still_violates


def test_a_reachable_property_with_steps_is_refused_when_read():
    """A reachable property is broken by an initial state; a trace of steps for one would be
    judged from its last state, which says nothing about the start."""
    from checker.gate.replay import ReplayError, parse_document

    doc = edited(fresh_trace("bug-lp-init-irq-reentry"),
                 [("invariant", "TDX-USABLE"), ("counterexample.trace.invariant", "TDX-USABLE")])
    assert doc["counterexample"]["trace"]["steps"]
    with pytest.raises(ReplayError, match="broken by an initial state"):
        parse_document(json.dumps(doc), "steps.json")
