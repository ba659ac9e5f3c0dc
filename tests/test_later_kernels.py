"""Profiles of later kernels: each is v6.8 with the rules that kernel changed. What each does,
step by step; that their new invariants catch a one-rule change is in test_flow_invariants."""

from __future__ import annotations

import pytest

from checker.engines.explorer import FAIL, PASS, explore
from checker.inputs.platforms import configure, flow_model
from invariants.flow import flow_invariants
from spec import flow_state as S
from spec.flow import TdxFlow
from spec.profiles import PROFILES, V6_8, V6_14, V6_18, base_kernel, rule_changes

OLD_MODULE = configure("2x1", module_no_rbp_mod=False, caller_loads=(1,))


def _init_actions(model: TdxFlow) -> list[str]:
    """The init_tdx_module steps of the first run, following the first successor each time
    that is not a fault."""
    state = model.initial_states()[0]
    actions = []
    while True:
        steps = [(lab, s) for lab, s in model.successors(state) if not lab.injected
                 and lab.actor in ("boot", "caller 0")]
        if not steps:
            return actions
        label, state = steps[0]
        if state.mutex >= 0 or label.action == "init_tdx_module":
            actions.append(f"{label.action} {label.result or ''}".strip())
        if label.action == "init_tdx_module":
            return actions


def test_v6_14_refuses_a_module_without_no_rbp_mod_before_any_memory_work():
    actions = _init_actions(TdxFlow(V6_14, OLD_MODULE))
    assert actions == ["tdx_enable init_tdx_module", "get_tdx_tdmr_sysinfo success",
                       "check_features -22", "init_tdx_module -22"]


def test_v6_14_with_a_current_module_reads_the_metadata_first_then_builds_as_v6_8():
    config = configure("2x1", caller_loads=(1,))
    actions = _init_actions(TdxFlow(V6_14, config))
    assert actions[:5] == ["tdx_enable init_tdx_module", "get_tdx_tdmr_sysinfo success",
                           "check_features 0", "build_tdx_memlist 0", "alloc_tdmr_list 0"]
    assert actions[-1] == "init_tdx_module 0"


# Each later kernel on the configurations that take its new rules (v7.2's update too).
@pytest.mark.parametrize(("profile", "config"), [
    ("v6.14", "default"), ("v6.14", "old-module"), ("v6.18", "default"), ("v6.18", "no-erratum"),
    ("v7.1", "default"), ("v7.1", "no-erratum"), ("v7.1", "2x2"),
    ("v7.2", "default"), ("v7.2", "no-erratum"), ("v7.2", "rsvd-exhausted")])
def test_later_kernel_keeps_every_invariant(profile, config):
    model = flow_model(profile, config)
    result = explore(model, flow_invariants(model))
    assert result.verdict == PASS and result.bound_hit is None


def test_v6_14_without_the_feature_check_is_caught_initialising_a_bad_module():
    """The invariants judge the kernel's reliance on NO_RBP_MOD, not the check that keeps it:
    with the check dropped, its own invariants catch the bad module initialised."""
    broken = TdxFlow(PROFILES["mutant-feature-check-dropped"], OLD_MODULE)
    for only in ("READY-AGREES", "TDX-ONLY-WHERE-POSSIBLE"):
        result = explore(broken, [p for p in flow_invariants(broken) if p.id == only])
        assert result.verdict == FAIL and result.violated == only


def test_each_hazard_of_a_later_kernel_is_that_kernel_with_one_rule_switched():
    for name, rule in (("mutant-feature-check-dropped", "checks_features"),
                       ("mutant-early-failure-unwinds", "early_failures_return"),
                       ("mutant-update-keeps-lp-flags", "shutdown_clears_lp_flags")):
        hazard = PROFILES[name]
        assert rule_changes(hazard, base_kernel(hazard)) == {rule}
    assert base_kernel(PROFILES["mutant-feature-check-dropped"]) is V6_14
    assert base_kernel(PROFILES["bug-lp-init-irq-reentry"]) is V6_8


def _rerouted(steps: tuple[int, ...], old: int, new: int) -> type[TdxFlow]:
    """A mutant model: a failure at one of `steps` bound for the unwinding label `old` goes
    to `new` instead."""

    class Rerouted(TdxFlow):
        def _fail(self, state, errno, unwind):
            if state.step in steps and unwind == old:
                unwind = new
            return super()._fail(state, errno, unwind)

    return Rerouted


REROUTED = [
    # v6.14: a failure before get_online_mems goes to err_free_tdmrs, as if it came after
    # alloc_tdmr_list (the TDMR list freed without having been allocated)
    ((S.S_SYSINFO, S.S_FEATURES), S.S_RETURN, S.S_ERR_FREE_TDMRS, V6_14, OLD_MODULE,
     "FREE-ONCE"),
    # v6.8: a failed build_tdx_memlist returns at once instead of via out_put_tdxmem, keeping
    # the memory-hotplug read lock (memory can never be onlined again)
    ((S.S_MEMLIST,), S.S_OUT, S.S_RETURN, V6_8, configure("2x1", faults=1),
     "RESOURCES-AT-REST"),
]


@pytest.mark.parametrize("steps,old,new,profile,config,invariant", REROUTED)
def test_an_early_failure_unwinding_the_wrong_way_is_caught(steps, old, new, profile, config,
                                                              invariant):
    model = _rerouted(steps, old, new)(profile, config)
    result = explore(model, [p for p in flow_invariants(model) if p.id == invariant])
    assert result.verdict == FAIL and result.violated == invariant
    failed_at = {S.STEP_NAMES[step] for step in steps}
    assert any(label.action in failed_at and label.result != "0"
               for label, _ in result.trace.steps)


def test_the_early_return_hazard_is_v6_14_with_one_rule_switched_and_caught():
    """v6.14's early failures unwinding through err_free_tdxmem, as v6.8's later ones do:
    out_put_tdxmem releases a memory-hotplug lock never taken (FREE-ONCE), on a failed feature
    check as on a failed metadata read."""
    hazard = PROFILES["mutant-early-failure-unwinds"]
    assert rule_changes(hazard) ^ rule_changes(V6_14) == {"early_failures_return"}
    assert hazard.kind == "bug"
    for config in (OLD_MODULE, configure("2x1", faults=1)):
        result = explore(TdxFlow(hazard, config), flow_invariants(TdxFlow(hazard, config)))
        assert result.violated == "FREE-ONCE"
        failed = [label for label, _ in result.trace.steps
                  if label.action in ("check_features", "get_tdx_tdmr_sysinfo")
                  and label.result != "0"]
        assert failed and result.trace.steps[-1][0].action == "init_tdx_module"
    assert explore(TdxFlow(V6_14, OLD_MODULE),
                   flow_invariants(TdxFlow(V6_14, OLD_MODULE))).verdict == PASS


def test_later_kernels_are_listed_with_the_commit_read():
    kernels = [p for p in PROFILES.values() if p.kind == "kernel"]
    assert [p.name for p in kernels][:2] == ["v6.8", "v6.14"]
    assert all("torvalds/linux" in p.source for p in kernels)


# --- v6.18: kexec -----------------------------------------------------------------------------

NO_ERRATUM = configure("2x1", erratum=False, caller_loads=(1,))


def _v6_18_without(switch: str) -> TdxFlow:
    return V6_18.but(f"v6.18-without-{switch}", f"v6.18 without {switch}", "test",
                     **{switch: False})


def _only(model: TdxFlow, invariant: str):
    return [p for p in flow_invariants(model) if p.id == invariant]


def test_v6_18_kexecs_only_without_the_erratum():
    on_erratum = flow_model("v6.18", configure("2x1", caller_loads=(1,)))
    booted = on_erratum.successors(on_erratum.initial_states()[0])[0][1]
    kexec = [lab for lab, _ in on_erratum.successors(booted) if lab.action == "kexec"]
    assert [lab.result for lab in kexec] == ["-95"]
    without = flow_model("v6.18", NO_ERRATUM)
    booted = without.successors(without.initial_states()[0])[0][1]
    (after,) = [s for lab, s in without.successors(booted) if lab.action == "kexec"]
    assert after.kexeced and without.successors(after) == []


def test_v6_18_still_flushes_the_caches_before_freeing_pamts_without_the_erratum():
    # v6.18 skips the MOVDIR64B reset on parts without the erratum, but not the WBINVD
    model = TdxFlow(_v6_18_without("reset_pamts_on_late_failure"), NO_ERRATUM)
    result = explore(model, _only(model, "PAMT-RESET-BEFORE-FREE"))
    assert result.verdict == FAIL and result.violated == "PAMT-RESET-BEFORE-FREE"
    reset_skipped = flow_model("v6.18", NO_ERRATUM)
    assert explore(reset_skipped, _only(reset_skipped, "PAMT-RESET-BEFORE-FREE")).verdict \
        == PASS


def test_a_cpu_whose_bring_up_failed_went_down_with_its_cache_written_back():
    """v7.2 (the online callback turns VMX on, then tdx_cpu_enable): its SEAMCALL fails after
    marking the CPU, whose cache may now hold TDX lines; the bring-up is rolled back (VMX off
    with v6.18's flush, then play_dead), so the CPU is offline with no lines and no mark, as
    after cpu_down."""
    model = flow_model("v7.2", "one-node")
    seen, frontier, failed = set(), list(model.initial_states()), []
    while frontier:
        state = frontier.pop()
        for label, nxt in model.successors(state):
            if label.seamcall and label.actor == "cpu hotplug" \
                    and not model.cpu(nxt, label.cpu).online:
                failed.append(model.cpu(nxt, label.cpu))
            if nxt not in seen:
                seen.add(nxt)
                frontier.append(nxt)
    assert failed  # the search met failed bring-ups
    assert all(not (cpu.lines or cpu.incoherent or cpu.vmx) for cpu in failed)


# --- v7.1: initialisation at boot, CPU-hotplug callbacks ------------------------------------------

def test_v7_1_initialises_at_boot_before_anything_else_happens():
    model = flow_model("v7.1", "default")
    state = model.successors(model.initial_states()[0])[0][1]  # tdx_init
    steps = model.successors(state)
    assert [lab.action for lab, _ in steps] == ["cpuhp_setup_state"]  # nothing else runs
