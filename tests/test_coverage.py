"""Coverage of the flow: every step and unwinding label is taken, every invariant applies
somewhere, and each injected error of init_tdx_module unwinds through the kernel's labels."""

from __future__ import annotations

import json
from dataclasses import replace

import jsonschema
import pytest

from checker.engines.coverage import (
    Coverage,
    counting_properties,
    explore_with_coverage,
    model_actions,
)
from checker.engines.explorer import FAIL, explore
from checker.gate.flowcheck import run_flow
from checker.gate.suite import Bounds, CheckSpec
from checker.inputs.platforms import configure, flow_model
from checker.views.reports import REPO_ROOT, render
from invariants.flow import flow_invariants
from spec import flow_state as S

UNWINDING = ("err_reset_pamts", "tdmrs_reset_pamt_all", "err_free_pamts", "err_free_tdmrs",
             "err_free_tdxmem")


@pytest.fixture(scope="module")
def default_coverage():
    model = flow_model("v6.8", "default")
    return explore_with_coverage(model, flow_invariants(model))


def test_the_model_names_every_init_step_and_unwinding_label():
    actions = set(model_actions())
    assert set(UNWINDING) | {"build_tdx_memlist", "get_tdx_tdmr_sysinfo", "alloc_tdmr_list",
                             "construct_tdmrs", "config_tdx_module", "config_global_keyid",
                             "do_global_key_config", "init_tdmr", "init_tdx_module",
                             "machine_check"} <= actions


def test_counts_add_up_to_the_exploration(default_coverage):
    result, coverage = default_coverage
    assert result.verdict == "pass"
    assert sum(coverage.actions.values()) == result.transitions
    assert all(sum(coverage.outcomes[a].values()) == n for a, n in coverage.actions.items())


def test_v6_8_takes_every_step_but_later_kernels_and_exercises_every_invariant(
        default_coverage):
    _, v6_8 = default_coverage
    merged = v6_8
    for profile, config in (("v6.14", "old-module"), ("v6.18", "no-erratum"), ("v7.1", "2x2"),
                            ("v7.2", "2x2")):
        later = flow_model(profile, config)
        merged = merged.merged(explore_with_coverage(later, flow_invariants(later))[1])
    assert merged.unexercised_actions == [] and merged.vacuous_invariants == []
    # what v6.8 misses, later kernels take (their own steps and properties)
    later_only = set(merged.actions) - set(v6_8.actions)
    assert set(v6_8.unexercised_actions) == later_only
    assert {"check_features", "kexec", "cpuhp_setup_state"} <= later_only
    assert "KEXEC-SAFE" in v6_8.vacuous_invariants
    for label in UNWINDING:
        assert v6_8.actions[label] > 0


@pytest.mark.parametrize(("action", "outcome"), [
    ("build_tdx_memlist", "-12 (injected)"), ("alloc_tdmr_list", "-12 (injected)"),
    ("construct_tdmrs", "-12 (injected)"), ("config_tdx_module", "-12 (injected)"),
    ("config_global_keyid", "-12 (injected)"), ("get_tdx_tdmr_sysinfo", "#GP (injected)"),
    ("init_tdx_module", "-95"), ("init_tdx_module", "-19"), ("init_tdx_module", "-12"),
    ("init_tdx_module", "-5"), ("init_tdx_module", "0"),
])
def test_every_error_exit_of_init_tdx_module_is_reached(default_coverage, action, outcome):
    assert default_coverage[1].outcomes[action].get(outcome, 0) > 0


class _Reached:
    """A "violation" at the first step matching `match`: the explorer's shortest trace to it."""

    kind = "transition"

    def __init__(self, match):
        self.id = "REACHED"
        self.check = lambda _s, label, _t: not match(label)


def _unwinding_after(action: str, result: str) -> list[str]:
    """The init_tdx_module labels from the first `action` step with `result` to its return."""
    model = flow_model("v6.8", configure("2x1", caller_loads=(1,), cpu_hotplug=False,
                                         memory_hotplug=False, machine_checks=False))
    found = explore(model, [_Reached(lambda lab: lab.action == action and lab.result == result)])
    assert found.verdict == FAIL
    state = found.trace.steps[-1][1]
    labels = []
    while state.mutex >= 0 and state.callers[state.mutex].pc == S.IN_TDX:
        label, state = next((lab, s) for lab, s in model.successors(state)
                            if lab.actor == "caller 0" and lab.action not in
                            ("tdx_cpu_enable", "hardware_disable_all"))
        labels.append(label.action)
    return labels


@pytest.mark.parametrize(("action", "result", "unwinding"), [
    ("build_tdx_memlist", "-12", ["init_tdx_module"]),
    ("get_tdx_tdmr_sysinfo", "error", ["err_free_tdxmem", "init_tdx_module"]),
    ("alloc_tdmr_list", "-12", ["err_free_tdxmem", "init_tdx_module"]),
    ("construct_tdmrs", "-12", ["err_free_tdmrs", "err_free_tdxmem", "init_tdx_module"]),
    ("config_tdx_module", "-12", ["err_free_pamts", "err_free_tdmrs", "err_free_tdxmem",
                                  "init_tdx_module"]),
    ("config_tdx_module", "error", ["err_free_pamts", "err_free_tdmrs", "err_free_tdxmem",
                                    "init_tdx_module"]),
    ("config_global_keyid", "-12", [*UNWINDING, "init_tdx_module"]),
    ("do_global_key_config", "error", [*UNWINDING, "init_tdx_module"]),
    ("init_tdmr", "error", [*UNWINDING, "init_tdx_module"]),
])
def test_each_injected_error_unwinds_through_the_kernels_labels(action, result, unwinding):
    assert _unwinding_after(action, result) == unwinding


def test_a_property_that_never_applies_is_reported_vacuous():
    model = flow_model("v6.8", "1x1")
    never = [p for p in flow_invariants(model) if p.id == "SYSINIT-ONCE"][0]
    props, counts, _ = counting_properties([replace(never, applies=lambda s: False)])
    explore(model, props)
    assert counts == {"SYSINIT-ONCE": 0}
    _, coverage = explore_with_coverage(model, [replace(never, applies=lambda s: False)])
    assert coverage.vacuous_invariants == ["SYSINIT-ONCE"]


def test_coverage_merges_and_round_trips_through_json(default_coverage):
    _, coverage = default_coverage
    twice = coverage.merged(coverage)
    assert twice.actions == {a: 2 * n for a, n in coverage.actions.items()}
    assert twice.invariants == {i: 2 * n for i, n in coverage.invariants.items()}
    again = Coverage.from_json(coverage.to_json())
    assert again.to_json() == coverage.to_json()
    assert "never taken" in coverage.render_text() and "KEXEC-SAFE" in coverage.render_text()


def test_verify_reports_what_no_flow_check_exercised():
    """The 1x1 machine cannot take a CPU down or up: verify's report says so, in text and in
    JSON (valid against the report schema)."""
    results = [run_flow(CheckSpec("flow/v6.8/1x1", "flow", "v6.8", "1x1", Bounds())),
               run_flow(CheckSpec("flow/bug-lp-init-irq-reentry/1x1", "flow",
                                  "bug-lp-init-irq-reentry", "1x1", Bounds()))]
    assert "coverage" in results[0].extra and "coverage" not in results[1].extra
    text = render("text", results)
    assert "coverage (1 flow checks of kernel profiles)" in text
    never = next(line for line in text.splitlines() if "steps never taken:" in line)
    assert {"cpu_down", "cpu_up"} <= set(never.split(": ")[1].split(", "))
    report = json.loads(render("json", results))
    schema = json.loads((REPO_ROOT / "checker/schemas/report.schema.json").read_text())
    jsonschema.validate(report, schema)
    assert {"cpu_down", "cpu_up"} <= set(report["coverage"]["unexercised_actions"])
    assert report["coverage"]["flow_checks"] == 1
