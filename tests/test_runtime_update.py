"""v7.2's runtime update of the TDX module: what an update does, what a failed one leaves, and
the one-rule hazards of its design, each caught by the invariant that guards the rule."""

from __future__ import annotations

import json

import pytest

from checker.engines.explorer import FAIL, PASS, Bounds, explore
from checker.inputs.platforms import configure, flow_model
from checker.views.trace import replay, trace_to_json
from invariants.flow import flow_invariants
from spec import flow_state as S
from spec import module as M
from spec.flow import TdxFlow
from spec.profiles import PROFILES, UPDATE_HAZARDS, V7_2

QUIET = configure("2x1", cpu_hotplug=False, memory_hotplug=False, sleep_requests=False,
                  machine_checks=False, boot_hibernation=(False,), caller_loads=(1, 1))


def _edges(model: TdxFlow):
    graph = explore(model, [], keep_graph=True).graph
    return [(graph.states[a], label, graph.states[b]) for a, label, b in graph.edges]


def test_a_successful_update_reinitialises_every_cpu_and_keeps_the_pamts():
    edges = _edges(TdxFlow(V7_2, QUIET))
    requested = [s for s, label, _ in edges if label.action == "seamldr_install_module"]
    done = [(s, t) for s, label, t in edges if label.action == "tdx_module_run_update"
            and t.update == S.UPDATE_DONE]
    assert requested and done
    for before in requested:  # the update starts from an initialised module only
        assert before.status == S.INITIALIZED and before.module == M.SYS_READY
    kept = {before.pamt for before in requested}
    for _, after in done:
        assert after.status == S.INITIALIZED and after.module == M.SYS_READY
        assert after.pamt in kept and after.sysinit_issues == 1
        cpus = [c for p in after.packages for c in p.cpus]
        assert all(c.lp_flag and c.lp_done for c in cpus)
    actions = [label.action for s, label, _ in edges if s.update in S.UPDATE_RUNNING]
    assert {"tdx_module_shutdown", "seamldr_install", "tdx_cpu_enable",
            "tdx_module_run_update"} <= set(actions)
    assert not {"init_tdx_module", "config_tdx_module", "init_tdmr"} & set(actions)


def test_a_failed_update_leaves_the_module_unusable_and_says_so():
    edges = _edges(TdxFlow(V7_2, QUIET))
    failed = [(label, t) for _, label, t in edges if t.update == S.UPDATE_FAILED
              and label.injected]
    steps = {label.action for label, _ in failed}
    assert steps == {"tdx_module_shutdown", "seamldr_install", "tdx_cpu_enable",
                     "tdx_module_run_update"}
    for label, after in failed:
        if label.action == "tdx_module_shutdown":  # nothing changed: the old module serves
            assert after.status == S.INITIALIZED
            continue
        assert after.status == S.UNINITIALIZED and after.module != M.SYS_READY
        assert after.snapshot >= 0 and all(c & S.PAMT_ALLOCATED and not c & S.PAMT_FREED
                                           for c in after.pamt)
    # KVM then finds no module, and nothing brings one back
    asked = [label.result for s, label, _ in edges if label.action == "tdx_get_sysinfo"
             and s.update == S.UPDATE_FAILED and s.status != S.INITIALIZED]
    assert asked and set(asked) == {"NULL"}
    assert not any(s.update == S.UPDATE_FAILED and t.status == S.INITIALIZED
                   and s.status != S.INITIALIZED for s, _, t in edges)


def test_a_cpu_offline_during_the_update_fails_it_at_tdh_sys_init():
    """v7.2 runs the install on the online CPUs only; the P-SEAMLDR then never finishes, the
    old module stays shut down and refuses TDH.SYS.INIT, and the update fails cleanly."""
    model = TdxFlow(V7_2, configure("2x1", memory_hotplug=False, sleep_requests=False,
                                    machine_checks=False, boot_hibernation=(False,),
                                    caller_loads=(1,), fault_budget=0))
    sysinits = [(s, label.result, t) for s, label, t in _edges(model)
                if s.update == S.UPDATE_CPU_INIT and label.seamcall == "TDH.SYS.INIT"]
    assert {result for _, result, _ in sysinits} == {"success", M.TDX_SYS_SHUTDOWN}
    for before, result, after in sysinits:
        offline = any(not c.online for p in before.packages for c in p.cpus)
        assert offline == (result == M.TDX_SYS_SHUTDOWN)
        if offline:
            assert before.module == M.SYS_SHUTDOWN and after.update == S.UPDATE_FAILED
    assert explore(model, flow_invariants(model)).verdict == PASS


# --- the hazards: v7.2 with one rule of the update switched ------------------------------------

CAUGHT_BY = {
    "mutant-update-keeps-initialized": "INITIALIZED-ONLY-WHILE-READY",
    "mutant-update-keeps-lp-flags": "SEAMCALL-ACCEPTED",
    "mutant-update-hangs-on-failure": "DEADLOCK-FREE",
    "mutant-update-failure-frees-pamts": "RESOURCES-AT-REST",
}


def test_every_hazard_is_listed_and_is_v7_2_with_one_rule_switched():
    assert set(CAUGHT_BY) == {p.name for p in UPDATE_HAZARDS}
    for hazard in UPDATE_HAZARDS:
        assert PROFILES[hazard.name] is hazard and hazard.kind == "bug"
        switched = [f for f in vars(V7_2) if getattr(hazard, f) != getattr(V7_2, f)
                    and f not in ("name", "summary", "source", "kind")]
        assert len(switched) == 1


def _only(model: TdxFlow, invariant: str):
    return [p for p in flow_invariants(model) if p.id == invariant]


@pytest.mark.parametrize("hazard", sorted(CAUGHT_BY))
def test_hazard_is_caught_by_its_invariant_with_a_shortest_replayable_trace(hazard):
    invariant = CAUGHT_BY[hazard]
    model = flow_model(hazard, "2x1")
    # with every invariant, this one is the first to fail
    assert explore(model, flow_invariants(model)).violated == invariant
    props = _only(model, invariant)
    result = explore(model, props)
    assert result.verdict == FAIL and result.violated == invariant
    trace = result.trace
    assert any(label.actor == "module update" for label, _ in trace.steps)
    if invariant != "DEADLOCK-FREE":
        assert explore(model, props, Bounds(max_depth=len(trace) - 1)).verdict != FAIL
    data = json.loads(json.dumps(trace_to_json(trace, model)))
    assert replay(flow_model(hazard, "2x1"), data).steps == trace.steps
    clean = flow_model("v7.2", "2x1")
    assert explore(clean, _only(clean, invariant)).verdict == PASS


def test_initialized_only_while_ready_holds_where_there_is_no_update():
    for profile in ("v6.8", "v7.1"):
        model = flow_model(profile, "2x1")
        result = explore(model, _only(model, "INITIALIZED-ONLY-WHILE-READY"))
        assert result.verdict == PASS
