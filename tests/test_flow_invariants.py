"""Every flow invariant catches a model with one rule broken (a profile switch or a mutant):
shortest trace, and it replays."""

import json
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import memory_maps, sysinfos

from checker.engines.explorer import FAIL, PASS, Bounds, explore
from checker.inputs.platforms import configure, flow_model
from checker.views.trace import replay, trace_to_json
from invariants.flow import flow_invariants, platform_can_run_tdx
from spec import flow_state as S
from spec import memory
from spec import module as M
from spec.flow import UPDATER, FlowConfig, TdxFlow, step_errno
from spec.memory import SZ_1G, SZ_1M, SZ_4K, MemRange
from spec.platform import SZ_128M, Platform
from spec.profiles import V6_8, V6_14, V6_18, V7_1, V7_2
from spec.seamcall import SUCCESS, TDH_SYS_INIT
from spec.statespace import set_fields
from spec.sysinfo import TdxSysinfo


class _ErrorLostAtErrFreePamts(TdxFlow):
    """A mutant: the errno is lost on the way to err_free_pamts (ret overwritten by 0)."""

    def _fail(self, state, errno, unwind):
        return super()._fail(state, 0 if unwind == S.S_ERR_FREE_PAMTS else errno, unwind)


def _patching(name: str, rule: str, transform, doc: str) -> type[TdxFlow]:
    """A mutant model: the steps `rule` (a TdxFlow method that appends its steps to the one
    list among its arguments) takes, replaced by `transform(model, state, steps, rule_args)`
    (`rule_args` without that list)."""

    def patched(self, state, *args):
        out = next(arg for arg in args if isinstance(arg, list))
        start = len(out)
        getattr(TdxFlow, rule)(self, state, *args)
        out[start:] = transform(self, state, out[start:], [a for a in args if a is not out])

    return type(name, (TdxFlow,), {rule: patched, "__doc__": doc})


def _rewriting(name: str, rule: str, rewrite, doc: str) -> type[TdxFlow]:
    """A mutant model whose steps of `rule` each go to the state
    `rewrite(model, state, label, after, *rule_args)` instead."""
    return _patching(name, rule, lambda model, state, steps, args: [
        (label, rewrite(model, state, label, after, *args)) for label, after in steps], doc)


def _relabelling(name: str, rule: str, relabel, doc: str) -> type[TdxFlow]:
    """A mutant model whose steps of `rule` reach the same states under `relabel(label)`."""
    return _patching(name, rule, lambda model, state, steps, args: [
        (relabel(label), after) for label, after in steps], doc)


def _buffer_kept(model, state, label, after, name):
    if label.seamcall is None:
        return after
    return after._replace(resources=after.resources | S.RES_CONFIG_BUF)


def _looks_loaded(model, state, label, after):
    looks = after
    for actor, caller in enumerate(after.callers):
        if caller.pc == S.FAILED and state.callers[actor].pc != S.FAILED:
            looks = model._with_caller(after, actor, pc=S.LOADED)
    return looks


def _retried(model, state, label, after, name):
    if label.result == SUCCESS:
        return after
    return set_fields(state, faults=state.faults + label.injected)


def _kept_online(model, state, label, after, index, cpu, loaded):
    if not step_errno(label) or after.hotplug_busy:
        return after
    return model._with_cpu(after, index, set_fields(model.cpu(after, index), online=True))


_ConfigBufferKept = _rewriting(
    "_ConfigBufferKept", "_config_tdx_module", _buffer_kept,
    "A mutant: config_tdx_module forgets to free its array of TDMR addresses.")
_FailedLpInitLooksLoaded = _rewriting(
    "_FailedLpInitLooksLoaded", "_frame_steps", _looks_loaded,
    "A mutant: when TDH.SYS.LP.INIT fails in KVM's IPI, KVM is left believing TDX loaded "
    "(the error is swallowed on its way back).")
_TdmrInitRetriedAfterFailure = _rewriting(
    "_TdmrInitRetriedAfterFailure", "_init_tdmr", _retried,
    "A mutant: init_tdmrs drops a failed TDH.SYS.TDMR.INIT's error and calls it again.")
_FailedOnlineKeepsTheCpu = _rewriting(
    "_FailedOnlineKeepsTheCpu", "_cpu_up", _kept_online,
    "A mutant: a CPU whose online callback failed stays online (the rollback is lost).")


def _uncounted(model, state, label, after, name):
    return set_fields(after, faults=state.faults) if label.injected else after


_AllocFaultUncounted = _rewriting(
    "_AllocFaultUncounted", "_build_tdx_memlist", _uncounted,
    "A mutant: a failed allocation in build_tdx_memlist does not count against the fault "
    "budget.")


_KeyConfigNamedSysInit = _relabelling(
    "_KeyConfigNamedSysInit", "_key_config_result",
    lambda label: label._replace(seamcall=TDH_SYS_INIT),
    "A mutant: a package's key configuration is traced as a TDH.SYS.INIT.")
_InitcallNamedUpdater = _relabelling(
    "_InitcallNamedUpdater", "_initcall", lambda label: label._replace(actor=UPDATER),
    "A mutant of v7.1: the boot-time initcall's steps are traced as the runtime update's.")


def _keyed_anyway(model, state, label, after, name, index):
    if label.result == SUCCESS:
        return after
    p = index // model.cpp
    return model._with_package(after, p, set_fields(after.packages[p], keyed=True))


_FailedKeyConfigKeys = _rewriting(
    "_FailedKeyConfigKeys", "_key_config_result", _keyed_anyway,
    "A mutant: a package whose TDH.SYS.KEY.CONFIG failed is taken as keyed all the same.")


class _FaultPastBudget(TdxFlow):
    """A mutant: SEAMCALL failures are injected until one more than the budget was spent."""

    def _with_faults(self, state, answers):
        return super()._with_faults(state._replace(faults=state.faults - 1), answers)


def _module_replaced(model, state, label, after):
    if label.result != SUCCESS:
        return after
    fresh = model._mapped_packages(after, ("test: new module",),
                                   lambda c: set_fields(c, lp_done=False))
    return model._update(after, module=M.SYSINIT_PENDING, packages=fresh)


_NewModuleAtFirstInstall = _rewriting(
    "_NewModuleAtFirstInstall", "_seamldr_install", _module_replaced,
    "A mutant of v7.2: the new module starts at the first CPU's install, not the last.")
_UnloadLost = _patching(
    "_UnloadLost", "_load_or_unload", lambda model, state, steps, args: [
        (label, after) for label, after in steps if label.detail != "unload: VMXOFF"],
    "A mutant: a loaded caller (KVM) can no longer unload.")


class _RdmdAnswersNothing(TdxFlow):
    """A mutant module: TDH.PHYMEM.PAGE.RDMD on a PAMT page answers as if its part of the
    TDMR were never initialised, even once the module is ready."""

    def _mc_block_initialised(self, state, page):
        return False


class _SnapshotEndRefused(TdxFlow):
    """A mutant notifier: the range test wants the block to end before its snapshot entry
    ends, so the hot block, which ends where its entry ends, cannot come back online."""

    def _notifier_allows(self, snapshot, block):
        if snapshot < 0:
            return True
        hot = self.platform.hot_blocks[block]
        return any(e.start <= hot.start and hot.end < e.end
                   for e in self.snapshot_memlist(snapshot))


class _FailedUpdateReportsSuccess(TdxFlow):
    """A mutant of v7.2: an update step that fails stops every CPU, but the update ends as if
    it had succeeded (the module stays shut down and reported uninitialised)."""

    def _update_failed(self, state):
        stopped = super()._update_failed(state)
        return set_fields(stopped, update=S.UPDATE_DONE)


class _LinesNotNoted(TdxFlow):
    """A mutant of the model's bookkeeping (v6.18): SEAMCALLs leave no TDX lines in any
    cache, so every flush looks needless and KEXEC-SAFE and VMXOFF-FLUSHED hold vacuously."""

    def _note_cache_lines(self, out):
        super()._note_cache_lines(out)
        for i, (label, after) in enumerate(out):
            for index, cpu in self.cpus(after):
                if cpu.lines:
                    after = self._with_cpu(after, index, set_fields(cpu, lines=False))
            out[i] = (label, after)


class _UnloadWithTdAlive(TdxFlow):
    """A mutant of v7.1: KVM may unload while its TD still holds a guest KeyID."""

    def _kvm_uses_tdx(self, state, out, actor):
        super()._kvm_uses_tdx(state, out, actor)
        if state.callers[actor].pc == S.LOADED and state.guest_keyids:
            out.append((self._label("kvm_exit", self.actor_name(actor), detail="unload"),
                        self._with_caller(state, actor, pc=S.IDLE)))


class _KeyIdsNotCounted(TdxFlow):
    """A mutant: tdx_init turns TDX on however few private KeyIDs the BIOS left."""

    def tdx_init(self, state):
        label, after = super().tdx_init(state)
        if self.platform.private_keyids < 2 and not state.hibernation:
            return label, set_fields(after, tdx_on=True, s3_off=True)
        return label, after


class _PackagesNeverOnline(TdxFlow):
    """A mutant: the callers' package check finds a package without online CPU even when
    every CPU is online, so no load ever reaches tdx_enable."""

    def _packages_online(self, state):
        return False, "package 0 has no online CPU"


class _InitialisedNeverServed(TdxFlow):
    """A mutant: tdx_enable on an initialised module returns -EINVAL as if it were in ERROR
    (the caller whose init succeeded is loaded, every later one fails)."""

    def _tdx_enable(self, state, actor, out):
        if state.tdx_on and state.mutex < 0 and state.status == S.INITIALIZED:
            out.append((self._label("tdx_enable", self.actor_name(actor), result="-22"),
                        self._caller_failed(state, actor)))
            return
        super()._tdx_enable(state, actor, out)


class _UpdateRunMarkedFailed(TdxFlow):
    """A mutant of v7.2: TDH.SYS.UPDATE's success ends the update as failed."""

    def _tdx_module_run_update(self, state, out):
        start = len(out)
        super()._tdx_module_run_update(state, out)
        out[start:] = [(label, self._update_failed(after) if after.update == S.UPDATE_DONE
                        else after) for label, after in out[start:]]


class _NoOnlineCallback(TdxFlow):
    """A mutant of v7.1: the CPU-online callback is not registered (a CPU coming online gets
    neither VMX nor tdx_cpu_enable)."""

    def _vmx_holders(self, callers):
        return ()


class _VmxLeftOnAtUnload(TdxFlow):
    """A mutant: a caller unloading (or unwinding a failed load) leaves VMX on its CPUs."""

    def _release_vmx(self, state, actor, pc):
        return self._with_caller(state, actor, pc=pc)


class _RolledBackInVmx(TdxFlow):
    """A mutant: a CPU whose bring-up failed goes back offline with VMX still on."""

    def _rolled_back(self, cpu):
        return set_fields(super()._rolled_back(cpu), vmx=cpu.vmx)


RSVD_1 = {"sysinfo": TdxSysinfo(max_reserved_per_tdmr=1)}
NO_ERRATUM = {"erratum": False}
TWO_BY_TWO = {"cpus_per_package": 2}

# (invariant, what breaks the profile: a switch turned off or a mutant model, configuration
# flags on top of 2 packages x 1 CPU[, the profile: v6.8 unless a later kernel's rule is meant])
CASES = [
    ("SYSINIT-ONCE", "cache_sysinit_failure", {}),
    ("SEAMCALL-ACCEPTED", "cpu_enable_checks_global_result", {}),
    ("SEAMCALL-ACCEPTED", "cpu_enable_irqs_off", {}),
    ("SEAMCALL-ACCEPTED", "lp_flag_survives_offline", {"caller_loads": (2,)}),
    ("SEAMCALL-ACCEPTED", "callers_enable_all_cpus", {}),
    ("SEAMCALL-ACCEPTED", "vmx_refcounted", {}),
    ("SEAMCALL-ACCEPTED", "key_config_once_per_package", {"packages": 1, "cpus_per_package": 2}),
    ("SEAMCALL-ACCEPTED", "key_config_serial", {}),
    ("INIT-RETURNS-FIRST-ERROR", _ErrorLostAtErrFreePamts, {}),
    ("CALLERS-SEE-RESULTS", _FailedLpInitLooksLoaded, {}),
    ("INIT-STOPS-AT-FIRST-ERROR", _TdmrInitRetriedAfterFailure, {}),
    ("STATUS-MONOTONE", "error_is_final", {}),
    ("INIT-AT-MOST-ONCE", "enodev_marks_error", {}),
    ("READY-AGREES", "init_tdmrs_until_done", {}),
    ("FLUSH-BEFORE-KEY", "wbinvd_before_key_config", {}),
    ("PAMT-RESET-BEFORE-FREE", "reset_pamts_on_late_failure", {}),
    ("FREE-ONCE", "construct_failure_skips_pamt_free", RSVD_1),
    ("RESOURCES-AT-REST", "config_failure_frees_pamts", {}),
    ("RESOURCES-AT-REST", "memlist_failure_frees_partial", {}),
    ("RESOURCES-AT-REST", "pamt_alloc_failure_frees_pamts", {}),
    ("RESOURCES-AT-REST", "rsvd_failure_frees_pamts", RSVD_1),
    ("RESOURCES-AT-REST", _ConfigBufferKept, {}),
    ("MEMORY-STATIC-WHEN-READY", "notifier_checks_whole_range", {}),
    ("ONLINE-VETO-ONLY-WHEN-READY", "notifier_allows_when_empty", {}),
    ("ONLINE-VETO-ONLY-WHEN-READY", _SnapshotEndRefused, {}),
    ("CPUS-FROZEN-DURING-ENABLE", "caller_holds_cpus_lock", {}),
    ("PACKAGES-ONLINE-FOR-KEYS", "package_check_under_hotplug_lock", {}),
    ("NO-S3-OR-HIBERNATE-WITH-TDX", "tdx_init_disables_s3", {}),
    ("NO-S3-OR-HIBERNATE-WITH-TDX", "tdx_init_refuses_hibernation", {}),
    ("MC-BLAMES-MODULE-PAGES", "keep_tdmr_list", {}),
    ("MC-BLAMES-MODULE-PAGES", _RdmdAnswersNothing, {}),
    ("DEADLOCK-FREE", "release_mutex_on_failure", {}),
    ("DEADLOCK-FREE", _UnloadLost, {}),
    ("KEXEC-SAFE", "marks_cache_incoherent", NO_ERRATUM, V6_18),
    ("KEXEC-SAFE", "kexec_refused_on_erratum", {}, V6_18),
    ("CACHE-MARKED", "marks_cache_incoherent", NO_ERRATUM, V6_18),
    ("CACHE-MARKED", _LinesNotNoted, NO_ERRATUM, V6_18),
    ("VMXOFF-FLUSHED", "flushes_cache_on_vmx_off", NO_ERRATUM, V6_18),
    ("CPU-ONLINE-SEES-RESULT", _FailedOnlineKeepsTheCpu, TWO_BY_TWO, V7_2),
    ("VMX-ONLY-WHILE-USED", _VmxLeftOnAtUnload, {}),
    ("VMX-ONLY-WHILE-USED", _RolledBackInVmx, TWO_BY_TWO, V7_2),
    ("FAULT-BUDGET", _AllocFaultUncounted, {}),
    ("FAULT-BUDGET", _FaultPastBudget, {}),
    ("MODULE-FOLLOWS-SEAMCALLS", _KeyConfigNamedSysInit, {}),
    ("MODULE-FOLLOWS-SEAMCALLS", _FailedKeyConfigKeys, {}),
    ("MODULE-FOLLOWS-SEAMCALLS", _NewModuleAtFirstInstall, {}, V7_2),
    ("CALLER-MOVES-ITSELF", _InitcallNamedUpdater, {}, V7_1),
    ("ONLINE-CPUS-TDX-READY", _NoOnlineCallback, TWO_BY_TWO, V7_1),
    ("PACKAGES-KEEP-A-CPU", "offline_veto_with_keyids", TWO_BY_TWO, V7_1),
    ("KEYIDS-FREED-BEFORE-UNLOAD", _UnloadWithTdAlive, {}, V7_1),
    ("INITIALIZED-ONLY-WHILE-READY", "shutdown_resets_module_state", {}, V7_2),
    ("INITIALIZED-ONLY-WHILE-READY", _FailedUpdateReportsSuccess, {}, V7_2),
    ("TDX-ONLY-WHERE-POSSIBLE", _KeyIdsNotCounted, {"private_keyids": 1}),
    ("TDX-USABLE", _PackagesNeverOnline, {}),
    ("TDX-USABLE", _InitialisedNeverServed, {}),
    ("UPDATE-CAN-FINISH", _UpdateRunMarkedFailed, {}, V7_2),
]


def _model(breaker, flags: dict, profile=V6_8) -> TdxFlow:
    config = configure("2x1", **{"caller_loads": (1, 1), **flags})
    if breaker is None:
        return TdxFlow(profile, config)
    if isinstance(breaker, type):
        return breaker(profile, config)
    return TdxFlow(profile.but(f"no-{breaker}", f"{profile.name} without {breaker}", "test",
                               **{breaker: False}), config)


def _case_id(case) -> str:
    breaker = case[1] if isinstance(case[1], str) else case[1].__name__
    profile = f"@{case[3].name}" if len(case) > 3 else ""
    return f"{case[0]}:{breaker}{profile}"


CASES = [(*case, V6_8) if len(case) == 3 else case for case in CASES]


def _only(model: TdxFlow, invariant: str):
    return [p for p in flow_invariants(model) if p.id == invariant]


def test_every_invariant_has_a_case():
    ids = {p.id for p in flow_invariants(_model(None, {}))}
    assert ids == {case[0] for case in CASES}


@pytest.mark.parametrize(("invariant", "breaker", "flags", "profile"), CASES,
                         ids=map(_case_id, CASES))
def test_broken_profile_is_caught_with_shortest_replayable_trace(invariant, breaker, flags,
                                                                 profile):
    model = _model(breaker, flags, profile)
    props = _only(model, invariant)
    result = explore(model, props)
    assert result.verdict == FAIL and result.violated == invariant
    trace = result.trace
    assert trace.invariant == invariant and len(trace) == result.violation.depth
    # Shortest: the same search cut one step earlier finds nothing (a property judged on the
    # whole graph is not judged on a cut one).
    if props[0].kind == "state" or props[0].kind == "transition":
        shorter = explore(model, props, Bounds(max_depth=len(trace) - 1))
        assert shorter.verdict != FAIL
    # Replays through JSON to the same final state.
    data = json.loads(json.dumps(trace_to_json(trace, model)))
    again = replay(_model(breaker, flags, profile), data)
    assert again.steps == trace.steps
    # The profile itself on the same configuration is clean for this invariant.
    clean = _model(None, flags, profile)
    assert explore(clean, _only(clean, invariant)).verdict != FAIL


def test_deadlock_trace_ends_where_a_caller_is_stuck():
    model = _model("release_mutex_on_failure", {})
    trace = explore(model, _only(model, "DEADLOCK-FREE")).trace
    final = trace.steps[-1][1]
    assert final.mutex >= 0 and any(c.pc != 0 for c in final.callers)


@pytest.mark.parametrize("slip", ["start", "end"])
def test_either_end_of_the_notifiers_range_test_is_held_on_a_hot_node(monkeypatch, slip):
    """On `hot-node` the hot block is a snapshot entry by itself: an off-by-one at either end
    of `is_tdx_memory` refuses it when it comes back online."""
    def is_tdx_memory(memlist, start, end):
        return any((e.start < start if slip == "start" else e.start <= start)
                   and (end < e.end if slip == "end" else end <= e.end) for e in memlist)

    model = flow_model("v6.8", "hot-node")
    assert explore(model, _only(model, "ONLINE-VETO-ONLY-WHEN-READY")).verdict != FAIL
    monkeypatch.setattr(memory, "is_tdx_memory", is_tdx_memory)
    model = flow_model("v6.8", "hot-node")
    result = explore(model, _only(model, "ONLINE-VETO-ONLY-WHEN-READY"))
    assert result.verdict == FAIL and result.violated == "ONLINE-VETO-ONLY-WHEN-READY"
    assert result.trace.steps[-1][0].result == "vetoed by tdx_memory_notifier"


@pytest.mark.parametrize(("config", "profile", "can"), [
    ("default", V6_8, True), ("one-node", V6_8, True), ("rsvd-exhausted", V6_8, False),
    ("too-few-keyids", V6_8, False), ("old-module", V6_8, True), ("old-module", V6_14, False)])
def test_success_is_asked_for_where_the_platform_allows_it_and_refused_elsewhere(config,
                                                                                 profile, can):
    """Reserved areas that run out, one KeyID, a module without NO_RBP_MOD where the kernel
    needs it: no run can succeed, so TDX-USABLE has nothing to ask there and
    TDX-ONLY-WHERE-POSSIBLE asks that none does (both hold on the kernels)."""
    model = TdxFlow(profile, configure(config, caller_loads=(1, 1)))
    assert platform_can_run_tdx(model) is can
    usable, never = _only(model, "TDX-USABLE"), _only(model, "TDX-ONLY-WHERE-POSSIBLE")
    start = model.initial_states()[0]
    assert usable[0].applies(start) is can and never[0].applies(start) is not can
    assert explore(model, usable + never).verdict == PASS


def test_a_variant_whose_rules_fit_more_is_not_judged_by_the_plain_construction():
    """Where v6.8's TDMRs run out of reserved areas, CMR holes (fewer of them) may fit: the
    plain reading cannot say, so neither property asks anything there."""
    model = flow_model("cmr-holes", "rsvd-exhausted")
    assert platform_can_run_tdx(model) is None
    start = model.initial_states()[0]
    assert not any(p.applies(start) for p in flow_invariants(model)
                   if p.id in ("TDX-USABLE", "TDX-ONLY-WHERE-POSSIBLE"))


def test_a_hot_block_that_closes_a_hole_makes_the_platform_able():
    """Boot memory with a 128 MB hole needs one reserved area more than the module allows; the
    hot block that fills the hole merges the two regions. With memory hotplug some run onlines
    it before init and succeeds, so both properties ask that much; without, none can."""
    platform = Platform(packages=1, regions=(MemRange(0, SZ_1G, 0),
                                             MemRange(SZ_1G + SZ_128M, 2 * SZ_1G, 0)),
                        hot_blocks=(MemRange(SZ_1G, SZ_1G + SZ_128M, 0),),
                        sysinfo=TdxSysinfo(max_reserved_per_tdmr=2))
    for hotplug in (True, False):
        model = TdxFlow(V6_8, FlowConfig(name="hole", platform=platform, memory_hotplug=hotplug,
                                         sleep_requests=False, machine_checks=False))
        assert platform_can_run_tdx(model) is hotplug
        checked = [p for p in flow_invariants(model)
                   if p.id in ("TDX-USABLE", "TDX-ONLY-WHERE-POSSIBLE")]
        assert explore(model, checked).verdict == PASS


def test_memory_onlined_later_does_not_make_a_boot_time_init_able():
    """Found by the platform search: boot memory whose second node has one page needs a third
    reserved area (that node's PAMT lands on node 0) where the module allows two; a hot block
    on that node makes it fit. v6.8 waits for a caller, so some run onlines the block first
    and succeeds; v7.1 initialises at boot, before any memory can be onlined, so no run can."""
    platform = Platform(packages=2, cpus_per_package=1,
                        regions=(MemRange(SZ_1M, SZ_1G, 0), MemRange(SZ_1G, SZ_1G + SZ_4K, 1)),
                        hot_blocks=(MemRange(SZ_1G + SZ_4K, SZ_1G + SZ_4K + SZ_128M, 1),),
                        sysinfo=TdxSysinfo(max_reserved_per_tdmr=2))
    config = FlowConfig(name="late-block", platform=platform, caller_loads=(1,), fault_budget=0,
                        boot_hibernation=(False,), cpu_hotplug=False, sleep_requests=False,
                        machine_checks=False, alloc_faults=False, module_update=False)
    for profile, can in ((V6_8, True), (V7_1, False)):
        model = TdxFlow(profile, config)
        assert platform_can_run_tdx(model) is can
        checked = [p for p in flow_invariants(model)
                   if p.id in ("TDX-USABLE", "TDX-ONLY-WHERE-POSSIBLE")]
        assert explore(model, checked).verdict == PASS


@st.composite
def _small_platforms(draw) -> Platform:
    """One CPU, a random map of up to four regions on up to two nodes, tight module limits,
    and maybe a 128 MB hot block right after the last region or inside the first gap."""
    regions = tuple(draw(memory_maps(max_regions=4, max_nodes=2, max_first_gib=2)))
    spots = [MemRange(regions[-1].end, regions[-1].end + SZ_128M, regions[-1].nid)]
    spots += [MemRange(a.end, a.end + SZ_128M, a.nid) for a, b in pairwise(regions)
              if b.start - a.end >= SZ_128M][:1]
    hot = draw(st.sampled_from([(), *((spot,) for spot in spots)]))
    return Platform(packages=1, cpus_per_package=1, regions=regions, hot_blocks=hot,
                    sysinfo=draw(sysinfos()))


@settings(max_examples=40, deadline=None)
@given(_small_platforms())
def test_the_model_initialises_exactly_where_the_plain_reading_says_it_can(platform):
    """Searched, not picked: on random maps and limits, v6.8 with one caller and no faults
    initialises the module on some run exactly where `platform_can_run_tdx` says the platform
    can (TDX-USABLE one way, TDX-ONLY-WHERE-POSSIBLE the other)."""
    model = TdxFlow(V6_8, FlowConfig(name="searched", platform=platform, caller_loads=(1,),
                                     fault_budget=0, boot_hibernation=(False,),
                                     cpu_hotplug=False, sleep_requests=False,
                                     machine_checks=False,
                                     memory_hotplug=bool(platform.hot_blocks)))
    checked = [p for p in flow_invariants(model)
               if p.id in ("TDX-USABLE", "TDX-ONLY-WHERE-POSSIBLE")]
    result = explore(model, checked)
    assert result.verdict == PASS, (platform_can_run_tdx(model), result.violated)
