"""Every flow invariant catches a profile with one rule broken: shortest trace, and it replays."""

import json

import pytest

from checker.engines.explorer import FAIL, Bounds, explore
from checker.inputs.platforms import configure
from checker.views.trace import replay, trace_to_json
from invariants.flow import flow_invariants
from spec.flow import TdxFlow
from spec.profiles import V6_8
from spec.sysinfo import TdxSysinfo

# (invariant, profile switch turned off, configuration flags on top of 2 packages x 1 CPU)
CASES = [
    ("SYSINIT-ONCE", "cache_sysinit_failure", {}),
    ("NO-LP-INIT-AFTER-SYSINIT-FAILURE", "cpu_enable_checks_global_result", {}),
    ("LP-ONCE", "cpu_enable_irqs_off", {}),
    ("LP-ONCE", "lp_flag_survives_offline", {"caller_loads": (2,)}),
    ("NO-SEAMCALL-BEFORE-LP-INIT", "callers_enable_all_cpus", {}),
    ("VMX-BEFORE-SEAMCALL", "vmx_refcounted", {}),
    ("STATUS-MONOTONE", "error_is_final", {}),
    ("INIT-AT-MOST-ONCE", "enodev_marks_error", {}),
    ("CONFIG-ONCE", "enodev_marks_error", {}),
    ("KEY-ONCE-PER-PACKAGE", "key_config_once_per_package",
     {"packages": 1, "cpus_per_package": 2}),
    ("KEY-SERIAL", "key_config_serial", {}),
    ("KEYS-BEFORE-TDMR-INIT", "unkeyed_package_fails_init", {"callers_check_packages": False}),
    ("READY-IMPLIES-ALL-TDMRS", "init_tdmrs_until_done", {}),
    ("FLUSH-BEFORE-KEY", "wbinvd_before_key_config", {}),
    ("PAMT-RESET-BEFORE-FREE", "reset_pamts_on_late_failure", {}),
    ("PAMT-FREE-ONCE", "construct_failure_skips_pamt_free",
     {"sysinfo": TdxSysinfo(max_reserved_per_tdmr=1)}),
    ("PAMT-NO-LEAK", "config_failure_frees_pamts", {}),
    ("MEMORY-STATIC-WHEN-READY", "notifier_checks_whole_range", {}),
    ("ONLINE-VETO-ONLY-WHEN-READY", "notifier_allows_when_empty", {}),
    ("CPUS-FROZEN-DURING-ENABLE", "caller_holds_cpus_lock", {}),
    ("PACKAGES-ONLINE-FOR-KEYS", "package_check_under_hotplug_lock", {}),
    ("NO-S3-OR-HIBERNATE-WITH-TDX", "tdx_init_disables_s3", {}),
    ("NO-S3-OR-HIBERNATE-WITH-TDX", "tdx_init_refuses_hibernation", {}),
    ("MC-BLAMES-MODULE-PAGES", "keep_tdmr_list", {}),
    ("DEADLOCK-FREE", "release_mutex_on_failure", {}),
]


def _model(switch: str | None, flags: dict) -> TdxFlow:
    config = configure("2x1", **{"caller_loads": (1, 1), **flags})
    if switch is None:
        return TdxFlow(V6_8, config)
    return TdxFlow(V6_8.but(f"no-{switch}", f"v6.8 without {switch}", "test", **{switch: False}),
                   config)


def _only(model: TdxFlow, invariant: str):
    return [p for p in flow_invariants(model) if p.id == invariant]


def test_every_invariant_has_a_case():
    ids = {p.id for p in flow_invariants(_model(None, {}))}
    assert ids == {case[0] for case in CASES}


@pytest.mark.parametrize(("invariant", "switch", "flags"), CASES,
                         ids=[f"{c[0]}:{c[1]}" for c in CASES])
def test_broken_profile_is_caught_with_shortest_replayable_trace(invariant, switch, flags):
    model = _model(switch, flags)
    props = _only(model, invariant)
    result = explore(model, props)
    assert result.verdict == FAIL and result.violated == invariant
    trace = result.trace
    assert trace.invariant == invariant and len(trace) == result.violation.depth
    # Shortest: the same search cut one step earlier finds nothing.
    if invariant != "DEADLOCK-FREE":
        shorter = explore(model, props, Bounds(max_depth=len(trace) - 1))
        assert shorter.verdict != FAIL
    # Replays through JSON to the same final state.
    data = json.loads(json.dumps(trace_to_json(trace, model)))
    again = replay(_model(switch, flags), data)
    assert again.steps == trace.steps
    # The v6.8 profile on the same configuration is clean for this invariant.
    clean = _model(None, flags)
    assert explore(clean, _only(clean, invariant)).verdict != FAIL


def test_deadlock_trace_ends_where_a_caller_is_stuck():
    model = _model("release_mutex_on_failure", {})
    trace = explore(model, _only(model, "DEADLOCK-FREE")).trace
    final = trace.steps[-1][1]
    assert final.mutex >= 0 and any(c.pc != 0 for c in final.callers)
