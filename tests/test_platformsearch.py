"""The platform search: small machines drawn at the boundaries, each explored with every flow
invariant; the gate's `platforms` check, and its counterexample replaying on the machine it
names."""

from __future__ import annotations

import json
from dataclasses import fields

import pytest
from hypothesis import given, settings

from checker.engines.platformsearch import (
    EXAMPLES,
    PlatformCrashed,
    describe_config,
    flow_cases,
    smallest_violating_platform,
)
from checker.gate.corpus import document, with_recorded_result
from checker.gate.replay import ReplayError, parse_document, replay_document
from checker.gate.runners import run_check
from checker.gate.suite import Bounds, CheckSpec, Suite, expand
from checker.inputs.platforms import CONFIGS, config_from_json, config_json
from checker.inputs.readers import InputError
from checker.views.trace import SCHEMA as TRACE_SCHEMA
from checker.views.trace import SCHEMA_VERSION as TRACE_VERSION
from spec.flow import FlowConfig, TdxFlow
from spec.platform import Platform
from spec.profiles import PROFILES, V6_8
from spec.statespace import set_fields

KERNELS = [name for name, profile in PROFILES.items() if profile.kind == "kernel"]


def _refuses_two_keyids(monkeypatch) -> None:
    """A one-rule slip no named configuration shows: TDX turned off with two KeyIDs, the
    least it needs (every named machine has 63 or 1)."""
    original = TdxFlow.tdx_init

    def tdx_init(self, state):
        if self.platform.private_keyids == 2:
            return (self._label("tdx_init", "boot", result="off: too few private KeyIDs "
                                "available"), set_fields(state, booted=True))
        return original(self, state)

    monkeypatch.setattr(TdxFlow, "tdx_init", tdx_init)


def test_a_slip_at_the_keyid_boundary_is_caught_on_the_smallest_machine(monkeypatch):
    assert {c.platform.private_keyids for c in CONFIGS.values()} == {63, 1}
    _refuses_two_keyids(monkeypatch)
    outcome = smallest_violating_platform(V6_8)
    witness = outcome.witness
    assert witness is not None and witness.violation.invariant == "TDX-USABLE"
    config = witness.config
    assert config.platform.private_keyids == 2
    # shrunk: one CPU, one region, one caller loading once, nothing else happening
    assert (config.platform.shape, len(config.platform.regions), config.caller_loads,
            config.fault_budget) == ("1x1", 1, (1,), 0)
    assert "events: none" in describe_config(config)


@pytest.mark.parametrize("name", ["v6.8", "v7.1"])
def test_the_kernels_break_no_invariant_on_any_searched_machine(name):
    """v6.8, and v7.1, whose boot-time init the search once caught TDX-USABLE misjudging (the
    other kernels' searches are `verify`'s, recorded as passing in the baseline)."""
    outcome = smallest_violating_platform(PROFILES[name])
    assert outcome.witness is None and outcome.complete
    assert outcome.bounded == 0 and outcome.examples >= EXAMPLES * 0.9


def test_a_search_past_its_time_bound_stops_incomplete():
    outcome = smallest_violating_platform(V6_8, time_s=0.0)
    assert not outcome.complete and outcome.witness is None


def test_a_model_that_raises_is_reported_with_its_machine_never_as_caught(monkeypatch):
    def raises(self, state):
        raise IndexError("list index out of range")

    monkeypatch.setattr(TdxFlow, "tdx_init", raises)
    with pytest.raises(PlatformCrashed, match=r"v6.8 flow on machine 1x1.*raised IndexError.*"
                       r"in raises, taking the steps of an initial state"):
        smallest_violating_platform(V6_8)
    result = run_check(CheckSpec("platforms/v6.8/searched", "platforms", "v6.8", "searched",
                                 Bounds()))
    assert result.status == "error" and result.invariant == "CHECKER-ERROR"
    assert "IndexError" in result.detail and "machine 1x1" in result.detail
    assert result.location.function == "raises"
    assert result.location.file.endswith("test_platformsearch.py")
    # the trace holds the machine in full, as a violation's does
    machine = result.counterexample["trace"]["model"]["configuration"]
    assert machine["caller_loads"] == [1] and machine["memory"]["regions"]


def test_the_gate_stores_the_machine_with_its_trace_and_the_trace_replays(monkeypatch):
    """The counterexample names a machine no configuration name stands for, so its trace
    carries the machine in full: replay rebuilds it, the violation shows again, and once the
    model is mended it no longer does."""
    _refuses_two_keyids(monkeypatch)
    spec = CheckSpec("platforms/v6.8/searched", "platforms", "v6.8", "searched", Bounds())
    result = run_check(spec)
    assert result.status == "fail" and result.invariant == "TDX-USABLE"
    assert "2 KeyIDs" in result.detail and "searched" == result.config
    model = result.counterexample["trace"]["model"]
    assert config_from_json(model["configuration"], "t").platform.private_keyids == 2
    doc = with_recorded_result(document(spec.id, "v6.8", "searched", "TDX-USABLE",
                                        result.counterexample))
    text = json.dumps(doc)
    broken = replay_document(parse_document(text, "searched.json"))
    assert broken.still_violates and broken.same_as_recorded
    monkeypatch.undo()
    assert not replay_document(parse_document(text, "searched.json")).still_violates


@pytest.mark.parametrize(("path", "value", "message"), [
    ("private_keyids", "2", "'private_keyids' must be an integer"),
    ("packages", 100_000, "100000x1 has 100,000 CPUs; at most 16 are supported"),
    ("packages", True, "'packages' must be an integer"),
    ("caller_loads", [], "between one and four callers"),
    ("caller_loads", [1, 9], "each of 'caller_loads' must be 0 to 8"),
    ("hot_blocks", [{"start": "0x200000", "end": "0x100000", "nid": 0}],
     "end 0x100000 is not above start 0x200000"),
    ("hot_blocks", [{"start": "0x100000", "end": "0x1" + "0" * 20, "nid": 0}],
     "does not fit a 64-bit physical address"),
    ("hot_blocks", [{"start": "0x100000", "end": "0x200000", "nid": 10**30}],
     "is not a node number"),
    ("memory", {"regions": []}, "'regions' is empty"),
    ("memory", {"regions": [{"start": "0x0", "end": "0x1000"}], "pamt_bases": []},
     "'memory' must be a memory map with cmrs, metadata, regions only"),
    ("name", None, "'name' must be a string"),
    ("colour", "blue", "unknown key 'colour'"),
])
def test_a_damaged_machine_in_a_trace_is_refused_with_what_is_wrong(path, value, message):
    doc = config_json(CONFIGS["default"])
    doc["packages"], doc["cpus_per_package"] = 1, 1
    parse_document(json.dumps(_stored_on(doc)), "t.json")  # sound before the damage
    doc[path] = value
    with pytest.raises(InputError, match=message):
        config_from_json(doc, "t.json")
    with pytest.raises(ReplayError, match=message):
        parse_document(json.dumps(_stored_on(doc)), "t.json")


def _stored_on(machine: dict) -> dict:
    """A stored TDX-USABLE counterexample (an initial state, no steps) on `machine`."""
    model = {"model": "spec.flow.TdxFlow", "profile": "v6.8", "config": "searched",
             "platform": "1x1", "fault_budget": 1, "configuration": machine}
    trace = {"schema": TRACE_SCHEMA, "version": TRACE_VERSION, "model": model,
             "invariant": "TDX-USABLE", "initial": 0, "length": 0, "steps": []}
    return document("platforms/v6.8/searched", "v6.8", "searched", "TDX-USABLE",
                    {"kind": "trace", "trace": trace, "text": "-", "result": "-"})


@settings(max_examples=60, deadline=None)
@given(flow_cases())
def test_every_searched_machine_is_written_down_and_read_back_unchanged(config):
    assert config_from_json(json.loads(json.dumps(config_json(config))), "t") == config


def test_the_named_configurations_are_written_down_and_read_back_unchanged():
    for config in CONFIGS.values():
        assert config_from_json(config_json(config), config.name) == config


def test_the_default_suite_searches_machines_for_every_real_kernel_and_no_bug():
    searched = {s.profile for s in expand(Suite()) if s.kind == "platforms"}
    assert set(KERNELS) <= searched
    assert not any(PROFILES[p].kind == "bug" for p in searched)


def test_every_field_of_a_configuration_is_written_down():
    """A field added to Platform or FlowConfig later must reach the written machine, or a
    stored trace would replay on a machine with its default instead."""
    written = set(config_json(CONFIGS["default"]))
    in_memory = {"regions", "cmrs", "sysinfo"}  # the memory map; placement: first-fit only
    platform = {f.name for f in fields(Platform)} - in_memory - {"placement"}
    config = {f.name for f in fields(FlowConfig)} - {"platform"}
    assert platform | config <= written
