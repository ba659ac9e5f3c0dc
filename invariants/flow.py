"""Flow invariants: what must hold in every reachable state and step of `spec.flow`, and what
must stay possible (the callers can always finish; the module can be initialised and used).

Each is a general rule of the TDX host design (behaviour notes, section 7), stated without
reference to any particular bug. Where the TDX module itself enforces an order (TDH.SYS.LP.INIT
once per CPU and before anything else there, TDH.SYS.CONFIG once, KEY.CONFIG once per package
and one at a time, TDMR.INIT only once every package has its key, ...), one property covers them
all: the kernel never issues a SEAMCALL the CPU or the module refuses (`SEAMCALL-ACCEPTED`).
The others say what no module can check: what the kernel returns, frees, flushes, reports and
allows. A model that never gets anywhere breaks none of those, so two more ask that the
kernel's success stays reachable where the platform allows it (`TDX-USABLE`,
`UPDATE-CAN-FINISH`), and one that it stays out of reach where the platform forbids it
(`TDX-ONLY-WHERE-POSSIBLE`). `flow_invariants(flow)` binds them to one model, since some rules
need its layout.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from invariants.base import Invariant
from invariants.tdmr_reference import reference_construct
from spec import flow as F
from spec import flow_state as S
from spec import module as M
from spec.memory import build_tdx_memlist
from spec.platform import memblock_regions
from spec.profiles import TDMR_RULES, rule_changes
from spec.seamcall import (
    CPU_FAULTS,
    GP,
    P_SEAMLDR_INSTALL,
    SUCCESS,
    TDH_PHYMEM_PAGE_RDMD,
    TDH_SYS_CONFIG,
    TDH_SYS_INIT,
    TDH_SYS_KEY_CONFIG,
    TDH_SYS_LP_INIT,
    TDH_SYS_SHUTDOWN,
    TDH_SYS_TDMR_INIT,
    UD,
    VMFAIL_INVALID,
)
from spec.seamldr import ModuleUpdate

TDX_C = "arch/x86/virt/vmx/tdx/tdx.c"


@dataclass(frozen=True)
class FlowInvariant(Invariant):
    """An invariant with its check over the flow. `kind` is "state", "transition",
    "eventually" or "reachable" (see `checker.engines.bfs`); `spec_function` is the model
    function whose rule it guards, so a report can point at its file and line.

    `applies` says where the property has something to check (its antecedent): a state
    property's `applies(state)`, a transition property's `applies(state, step, next)`; coverage
    counts the states and steps where it is true, so a property that never applies is seen to
    be vacuous. A transition property that looks only at some steps says which in
    `concerns(step)`; the explorer then skips the others (its `check` passes them anyway).
    Likewise a transition property that passes every step that keeps one `State` field's
    object names that field in `watches`, and a state property names the `State` fields its
    check reads in `reads`, so the explorer need not check a state again when those fields are
    the ones its parent had (the check itself stays complete)."""

    kind: str
    spec_function: Callable
    check: Callable
    applies: Callable
    concerns: Callable | None = None
    reads: tuple[str, ...] | None = None
    watches: str | None = None


def _covered(memlist, start: int, end: int) -> bool:
    """[start, end) lies inside the union of the snapshot entries."""
    position = start
    for entry in memlist:
        if entry.start <= position < entry.end:
            position = entry.end
            if position >= end:
                return True
    return position >= end


def _issues_seamcall(step: S.Step) -> bool:
    """A SEAMCALL the kernel issues expecting it to run (the #MC handler's RDMD is a probe
    whose failure it expects)."""
    return step.seamcall is not None and step.seamcall != TDH_PHYMEM_PAGE_RDMD


def _refused(step: S.Step) -> bool:
    return step.result == UD or M.is_refusal(step.result)


def _init_returns(step: S.Step) -> bool:
    return step.action == "init_tdx_module"


def _step_failed(step: S.Step) -> bool:
    """The step's function returned an error (an errno, or a SEAMCALL's failure)."""
    return F.step_errno(step) != 0


def _machine_check(step: S.Step) -> bool:
    return step.action == "machine_check"


def _memory_online(step: S.Step) -> bool:
    return step.action == "memory_online"


def _module_shut_down(step: S.Step) -> bool:
    """The runtime update's TDH.SYS.SHUTDOWN succeeded (v7.2)."""
    return step.seamcall == TDH_SYS_SHUTDOWN and step.result == SUCCESS


def _in_init(s: S.State) -> bool:
    return s.mutex >= 0 and s.callers[s.mutex].pc == S.IN_TDX


def platform_can_run_tdx(flow: F.TdxFlow) -> bool | None:
    """Whether the flow's platform lets a kernel initialise TDX at all, judged without the
    flow model: at least two private KeyIDs (the global one and one for a guest), a module
    with the features the profile's kernel relies on (whether or not it checks them), and
    memory whose TDMRs fit the module's limits by the plain v6.8 construction: boot memory, or
    boot memory with some of the hot blocks onlined before init (which may close holes) where
    init waits for a caller (v7.1 initialises at boot, before any can be onlined). None where
    no such memory
    fits for a profile with TDMR rules of its own (CMR holes, a smaller PAMT, a bug): the
    plain reading cannot say."""
    platform = flow.platform
    if platform.private_keyids < 2:
        return False
    if flow.profile.requires_no_rbp_mod and not platform.module_no_rbp_mod:
        return False
    onlined_first = flow.config.memory_hotplug and not flow.profile.init_at_boot
    blocks = platform.hot_blocks if onlined_first else ()
    for count in range(len(blocks) + 1):
        for added in itertools.combinations(blocks, count):
            memlist = build_tdx_memlist(memblock_regions(platform.regions, added))
            if reference_construct(memlist, platform.sysinfo, platform.placement).ok:
                return True
    return None if rule_changes(flow.profile) & TDMR_RULES else False


def flow_invariants(flow: F.TdxFlow) -> list[FlowInvariant]:
    """The flow invariants of `flow`, in the order of the behaviour notes."""
    facts_of = flow.packages_facts

    def cache(check):
        """`functools.cache`, kept with the model's memo tables (`forget` empties it too)."""
        return flow.memoised(functools.cache(check))

    def sysinit_once(s: S.State) -> bool:
        return s.sysinit_issues <= 1

    def sysinit_issued(s: S.State) -> bool:
        return s.sysinit_issues > 0

    # --- the calls -----------------------------------------------------------------------

    @cache
    def environment_refusal(step: S.Step, module_state: int, packages: tuple[S.Package, ...],
                            update: int) -> bool:
        """A refusal the environment caused, which v6.8 meets by failing cleanly: the module
        needs every CPU the firmware enumerated to do LP.INIT before TDH.SYS.CONFIG, so one
        that was offline then makes TDH.SYS.CONFIG fail, and cannot join later (its LP.INIT is
        refused once the module is configured); a package that is wholly offline during
        config_global_keyid (a caller broke the tdx_enable contract) keeps the module from
        becoming ready, so TDH.SYS.TDMR.INIT is refused. A runtime update (v7.2) whose new
        module was never installed everywhere (a CPU offline during it, which v7.2 does not
        check, or an install failed) leaves the old module shut down: the next TDH.SYS.INIT,
        in the update or when a CPU comes online after it failed, is refused and fails
        cleanly (the update, or that CPU's online)."""
        facts = facts_of(packages)
        if step.seamcall == TDH_SYS_INIT:
            return step.result == M.TDX_SYS_SHUTDOWN and (
                update == S.UPDATE_FAILED or any(not c.online for _, c in facts.cpus))
        if step.seamcall == TDH_SYS_CONFIG:
            return step.result == M.TDX_SYS_CONFIG_NOT_PENDING and any(
                not c.online and not c.lp_done for _, c in facts.cpus)
        if step.seamcall == TDH_SYS_LP_INIT:
            cpu = facts.cpus[step.cpu][1]
            return step.result == M.TDX_SYS_LP_INIT_NOT_PENDING and not cpu.lp_done \
                and module_state in (M.SYSCONFIG_DONE, M.SYS_READY)
        if step.seamcall == TDH_SYS_TDMR_INIT:
            return step.result == M.TDX_SYS_NOT_READY and any(
                not p.keyed and not any(c.online for c in p.cpus) for p in packages)
        return False

    def seamcall_accepted(s: S.State, step: S.Step, _t: S.State) -> bool:
        return not (_issues_seamcall(step) and _refused(step)) \
            or environment_refusal(step, s.module, s.packages, s.update)

    def seamcall_applies(_s: S.State, step: S.Step, _t: S.State) -> bool:
        return _issues_seamcall(step)

    @cache
    def module_view(packages: tuple[S.Package, ...]) -> tuple[int, int]:
        """The module's per-CPU and per-package facts as masks: (CPUs whose LP.INIT succeeded,
        by the flat CPU index steps use; packages with their key)."""
        lps = sum(1 << i for i, cpu in facts_of(packages).cpus if cpu.lp_done)
        keyed = sum(1 << p for p, package in enumerate(packages) if package.keyed)
        return lps, keyed

    def module_explained(s: S.State, step: S.Step, t: S.State) -> bool:
        if s.module == t.module and s.packages is t.packages and s.tdmr_done is t.tdmr_done:
            return True
        lps, keyed = module_view(s.packages)
        lps_after, keyed_after = module_view(t.packages)
        ran = step.seamcall if step.result == SUCCESS and not step.injected else None
        if ran in (TDH_SYS_LP_INIT, TDH_SYS_KEY_CONFIG) and step.cpu is None:
            return False  # a per-CPU call the trace does not place
        if ran == P_SEAMLDR_INSTALL and last_install(s, step.cpu):  # the new module starts
            return t.module == M.SYSINIT_PENDING and not lps_after and keyed_after == keyed \
                and t.tdmr_done == s.tdmr_done
        if step.injected and step.result in (VMFAIL_INVALID, GP):
            module = M.lose(step.result)
        elif ran is not None:
            module = M.state_after(ran, s.module, all_keyed=facts_of(t.packages).all_keyed)
        else:
            module = s.module
        if ran == TDH_SYS_LP_INIT:
            lps |= 1 << step.cpu
        if ran == TDH_SYS_KEY_CONFIG:
            keyed |= 1 << step.cpu // flow.cpp
        return t.module == module and lps_after == lps and keyed_after == keyed \
            and tdmr_progress(s, step, ran, t)

    update_bit = 1 << flow.update_actor

    def last_install(s: S.State, cpu: int) -> bool:
        """The P-SEAMLDR's install on `cpu` completes the new module: every other CPU the
        firmware enumerated, online or not, has installed it already."""
        return all(c.visited & update_bit for i, c in facts_of(s.packages).cpus if i != cpu)

    def tdmr_progress(s: S.State, step: S.Step, ran: str | None, t: S.State) -> bool:
        """The module's TDMR.INIT counts follow the step: one more for the TDMR worked on, or
        none yet for each TDMR a construction just built."""
        if step.action == "construct_tdmrs":
            return not any(t.tdmr_done)
        if ran != TDH_SYS_TDMR_INIT:
            return t.tdmr_done == s.tdmr_done
        k = s.tdmr_cursor
        return t.tdmr_done == s.tdmr_done[:k] + (s.tdmr_done[k] + 1,) + s.tdmr_done[k + 1:]

    def module_changed(s: S.State, _step: S.Step, t: S.State) -> bool:
        return s.module != t.module or s.tdmr_done != t.tdmr_done \
            or module_view(s.packages) != module_view(t.packages)

    def callers_move_themselves(s: S.State, step: S.Step, t: S.State) -> bool:
        return all(before == after or step.actor == flow.actor_name(i)
                   for i, (before, after) in enumerate(zip(s.callers, t.callers, strict=True)))

    def callers_moved(s: S.State, _step: S.Step, t: S.State) -> bool:
        return s.callers != t.callers

    def returns_first_error(s: S.State, step: S.Step, t: S.State) -> bool:
        if not _init_returns(step):
            return True
        ret = int(step.result)
        pc = t.callers[s.mutex].pc
        return ret == s.first_err and pc == (S.FAILED if ret else S.LOADED)

    def init_returns(_s: S.State, step: S.Step, _t: S.State) -> bool:
        return _init_returns(step)

    def stops_at_first_error(s: S.State, step: S.Step, t: S.State) -> bool:
        return not (after_failure(s, step, t) and _issues_seamcall(step))

    def after_failure(s: S.State, step: S.Step, _t: S.State) -> bool:
        """A step of init_tdx_module in a run where a step has failed already."""
        return bool(s.first_err) and s.mutex >= 0 and step.actor == flow.actor_name(s.mutex)

    def callers_see_results(s: S.State, step: S.Step, t: S.State) -> bool:
        for before, after in zip(s.callers, t.callers, strict=True):
            if after.pc == before.pc:
                continue
            if after.pc == S.LOADED and (t.status != S.INITIALIZED or _step_failed(step)):
                return False
            if after.pc == S.FAILED and not _step_failed(step):
                return False
        return True

    hotplug = flow.actor_name(flow.hotplug_actor)

    def online_callback(step: S.Step) -> bool:
        return step.actor == hotplug and step.action in ("cpu_up", "tdx_cpu_enable") \
            and step.cpu is not None

    def online_sees_result(_s: S.State, step: S.Step, t: S.State) -> bool:
        return not online_callback(step) or t.hotplug_busy \
            or flow.cpu(t, step.cpu).online != _step_failed(step)

    def online_callback_ended(_s: S.State, step: S.Step, t: S.State) -> bool:
        return online_callback(step) and not t.hotplug_busy

    @cache
    def idle_mask(callers: tuple[S.Caller, ...]) -> int:
        return sum(1 << a for a, c in enumerate(callers) if c.pc == S.IDLE)

    @cache
    def vmx_of(packages: tuple[S.Package, ...]) -> tuple[int, int]:
        """The VMX bits of the online CPUs, and of the offline ones."""
        online = offline = 0
        for package in packages:
            for cpu in package.cpus:
                if cpu.online:
                    online |= cpu.vmx
                else:
                    offline |= cpu.vmx
        return online, offline

    @cache
    def some_cpu_offline(packages: tuple[S.Package, ...]) -> bool:
        return any(not c.online for p in packages for c in p.cpus)

    def vmx_only_while_used(s: S.State) -> bool:
        online, offline = vmx_of(s.packages)
        return not (idle_mask(s.callers) & online or offline)

    def vmx_can_be_idle(s: S.State) -> bool:
        return idle_mask(s.callers) != 0 or some_cpu_offline(s.packages)

    def fault_counted(s: S.State, step: S.Step, t: S.State) -> bool:
        return t.faults - s.faults == step.injected and t.faults <= flow.config.fault_budget

    def fault_injected(_s: S.State, step: S.Step, _t: S.State) -> bool:
        return step.injected

    def caller_outcome(s: S.State, _step: S.Step, t: S.State) -> bool:
        return any(after.pc != before.pc and after.pc in (S.LOADED, S.FAILED)
                   for before, after in zip(s.callers, t.callers, strict=True))

    # --- the kernel's own state machine ----------------------------------------------------

    def status_monotone(s: S.State, step: S.Step, t: S.State) -> bool:
        return s.status == t.status or s.status == S.UNINITIALIZED or (
            _module_shut_down(step) and t.status == S.UNINITIALIZED)

    def status_changes(s: S.State, _step: S.Step, t: S.State) -> bool:
        return s.status != t.status

    def init_at_most_once(s: S.State) -> bool:
        return s.init_runs <= 1

    def init_ran(s: S.State) -> bool:
        return s.init_runs > 0

    required_features = not flow.profile.requires_no_rbp_mod or flow.platform.module_no_rbp_mod

    def ready_agrees(s: S.State, _step: S.Step, t: S.State) -> bool:
        if t.status != S.INITIALIZED or s.status == S.INITIALIZED:
            return True
        calls = flow.layout(t).tdmr_init_calls
        return t.module == M.SYS_READY and required_features and len(t.tdmr_done) == len(
            calls) and all(done >= need for done, need in zip(t.tdmr_done, calls, strict=True))

    def becomes_initialized(s: S.State, _step: S.Step, t: S.State) -> bool:
        return t.status == S.INITIALIZED and s.status != S.INITIALIZED

    serving = frozenset((M.SYS_READY, M.LOST_VMFAIL, M.LOST_GP))

    def initialized_only_while_ready(s: S.State) -> bool:
        if s.status != S.INITIALIZED:  # nor may an update end in success (v7.2)
            return s.update != S.UPDATE_DONE
        return s.module in serving

    def reported_ready(s: S.State) -> bool:
        return s.status == S.INITIALIZED or s.update == S.UPDATE_DONE

    # --- memory the kernel hands out and takes back ---------------------------------------

    @cache
    def flushed_before_key(pamt: tuple[int, ...]) -> bool:
        both = S.PAMT_WRITTEN | S.PAMT_KERNEL_DIRTY
        return all(c & both != both for c in pamt)

    # Module data left in freed memory is harmful only on parts with the partial-write erratum
    # (a partial write machine-checks); its dirty cache lines, written back later over the
    # page's new owner, are harmful everywhere.
    harmful = S.PAMT_GLOBAL_DIRTY | (S.PAMT_WRITTEN if flow.platform.erratum else 0)

    @cache
    def reset_before_free(pamt: tuple[int, ...]) -> bool:
        return all(not (c & S.PAMT_FREED and c & harmful) for c in pamt)

    def flush_before_key(s: S.State) -> bool:
        return flushed_before_key(s.pamt)

    def module_may_write(s: S.State) -> bool:
        return any(c & S.PAMT_WRITTEN for c in s.pamt)

    def pamt_reset_before_free(s: S.State) -> bool:
        return reset_before_free(s.pamt)

    def pamt_freed(s: S.State) -> bool:
        return any(c & S.PAMT_FREED for c in s.pamt)

    def free_once(s: S.State) -> bool:
        return not s.resources & S.RES_BAD_FREE \
            and all(not c & S.PAMT_FREED_TWICE for c in s.pamt)

    def something_freed(s: S.State) -> bool:
        return pamt_freed(s) or s.status == S.ERROR or s.step >= S.S_ERR_FREE_MEMLIST

    @cache
    def kept_by_module(pamt: tuple[int, ...]) -> bool:
        kept = S.PAMT_ALLOCATED | S.PAMT_HANDED
        return all(c & kept == kept and not c & S.PAMT_FREED for c in pamt)

    @cache
    def all_freed(pamt: tuple[int, ...]) -> bool:
        return all(not c & S.PAMT_ALLOCATED for c in pamt)

    def resources_at_rest(s: S.State) -> bool:
        if _in_init(s):
            return True
        if s.resources & S.TRANSIENT_RESOURCES:
            return False
        if s.status == S.INITIALIZED or s.update != S.UPDATE_NONE:
            return s.snapshot >= 0 and kept_by_module(s.pamt)
        return s.snapshot < 0 and not s.resources & S.RES_TDMR_LIST and all_freed(s.pamt)

    def at_rest_after_init(s: S.State) -> bool:
        return s.init_runs > 0 and not _in_init(s)

    # --- memory hotplug, CPU hotplug, sleep ---------------------------------------------------

    @cache
    def online_memory_in_snapshot(snapshot: int, hot: tuple[bool, ...]) -> bool:
        memlist = flow.snapshot_memlist(snapshot)
        return all(_covered(memlist, start, end) for start, end in flow.online_memory(hot))

    def memory_static_when_ready(s: S.State) -> bool:
        return s.status != S.INITIALIZED or online_memory_in_snapshot(s.snapshot, s.hot)

    def initialized(s: S.State) -> bool:
        return s.status == S.INITIALIZED

    def online_veto_only_when_ready(s: S.State, step: S.Step, t: S.State) -> bool:
        if not (_memory_online(step) and s.hot == t.hot):
            return True
        # memblock held the block when the snapshot was taken: it is TDX memory
        in_snapshot = s.snapshot >= 0 and s.snapshot >> F.memory_block(step) & 1
        return not in_snapshot and (s.status == S.INITIALIZED or s.update != S.UPDATE_NONE)

    def memory_onlined(_s: S.State, step: S.Step, _t: S.State) -> bool:
        return _memory_online(step)

    def cpus_frozen_during_enable(s: S.State, _step: S.Step, t: S.State) -> bool:
        return not _in_init(s) or flow.online_cpus(s) == flow.online_cpus(t)

    def step_during_init(s: S.State, _step: S.Step, _t: S.State) -> bool:
        return _in_init(s)

    def packages_online_for_keys(s: S.State) -> bool:
        if not configuring_keys(s):
            return True
        return all(any(c.online for c in p.cpus) for p in s.packages)

    def configuring_keys(s: S.State) -> bool:
        return s.step == S.S_KEYS and s.mutex >= 0

    @cache
    def online_cpus_ready(packages: tuple[S.Package, ...]) -> bool:
        return all(c.lp_done and c.vmx for p in packages for c in p.cpus if c.online)

    def online_cpus_tdx_ready(s: S.State) -> bool:
        return not kept_enabled(s) or online_cpus_ready(s.packages)

    def kept_enabled(s: S.State) -> bool:
        return flow.profile.init_at_boot and s.status == S.INITIALIZED and not s.hotplug_busy

    @cache
    def every_package_online(packages: tuple[S.Package, ...]) -> bool:
        return all(any(c.online for c in p.cpus) for p in packages)

    def packages_keep_a_cpu(s: S.State) -> bool:
        return not s.guest_keyids or every_package_online(s.packages)

    def keyids_in_use(s: S.State) -> bool:
        return bool(s.guest_keyids)

    kvm = flow.kvm_callers

    def keyids_held_by_kvm(s: S.State) -> bool:
        return not s.guest_keyids or any(s.callers[a].pc == S.LOADED for a in kvm)

    def no_sleep_with_tdx(s: S.State) -> bool:
        return not (s.tdx_on and (s.s3_entered or s.hibernated))

    def tdx_on(s: S.State) -> bool:
        return s.tdx_on

    # --- machine checks ---------------------------------------------------------------------

    def machine_check_probed(step: S.Step) -> bool:
        """A machine check the kernel probed with RDMD (on parts with the erratum)."""
        return _machine_check(step) and step.seamcall == TDH_PHYMEM_PAGE_RDMD

    @cache
    def blamed_right(step: S.Step, pamt: tuple[int, ...], module_state: int, vmx: bool) -> bool:
        in_use = bool(pamt) and pamt[0] & (S.PAMT_HANDED | S.PAMT_FREED) == S.PAMT_HANDED
        # a module that serves answers RDMD on a CPU in VMX operation; nowhere else can the
        # kernel tell its pages from others
        answerable = vmx and module_state == M.SYS_READY
        truth = F.machine_check_page(step) == S.MC_PAMT_PAGE and in_use and answerable
        return F.machine_check_reported(step) == truth

    def machine_check_blames_module_pages(s: S.State, step: S.Step, _t: S.State) -> bool:
        # while init runs the PAMTs are handed over or taken back step by step; the kernel
        # answers "not private" then and says a rare wrong answer is acceptable
        return not machine_check_probed(step) or _in_init(s) \
            or blamed_right(step, s.pamt, s.module, bool(flow.cpu(s, step.cpu).vmx))

    def rdmd_ran(_s: S.State, step: S.Step, _t: S.State) -> bool:
        return machine_check_probed(step)

    # --- liveness -----------------------------------------------------------------------------

    @cache
    def all_at_rest(callers: tuple[S.Caller, ...]) -> bool:
        """Every caller unloaded, but v7.1's initcall, which never unloads: it may rest
        loaded."""
        return all(caller.pc == S.IDLE or (caller.pc == S.LOADED and actor not in kvm)
                   for actor, caller in enumerate(callers))

    def callers_at_rest(s: S.State) -> bool:
        return s.kexeced or (not s.hotplug_busy and all_at_rest(s.callers)
                             and s.update not in S.UPDATE_RUNNING)

    @cache
    def caches_clean(packages: tuple[S.Package, ...]) -> bool:
        return not any(c.online and c.lines for p in packages for c in p.cpus)

    def kexec_safe(s: S.State) -> bool:
        if not s.kexeced:
            return True
        private = flow.platform.erratum and any(c & S.PAMT_WRITTEN for c in s.pamt)
        return caches_clean(s.packages) and not private

    def kexeced(s: S.State) -> bool:
        return s.kexeced

    @cache
    def lines_marked(packages: tuple[S.Package, ...]) -> bool:
        return all(c.incoherent for p in packages for c in p.cpus if c.lines)

    marks, tracks = flow.profile.marks_cache_incoherent, flow.tracks_caches

    def seamcall_cpus(step: S.Step, t: S.State):
        """The CPUs a SEAMCALL may have run on: its own, or any online one for a call made
        in process context."""
        return (step.cpu,) if step.cpu is not None else flow.cpu_facts(t).online

    def cache_marked(_s: S.State, step: S.Step, t: S.State) -> bool:
        if not lines_marked(t.packages):
            return False
        if not (tracks and _issues_seamcall(step)):
            return True
        # a CPU taken down in the step wrote its cache back
        ran_on = [c for c in (flow.cpu(t, i) for i in seamcall_cpus(step, t)) if c.online]
        entered = step.result not in CPU_FAULTS  # the call reached the module
        return all((c.incoherent or not marks) and (c.lines or not entered) for c in ran_on)

    @cache
    def lines_held(packages: tuple[S.Package, ...]) -> bool:
        return any(c.lines for p in packages for c in p.cpus)

    def marking_matters(_s: S.State, step: S.Step, t: S.State) -> bool:
        return lines_held(t.packages) or (tracks and _issues_seamcall(step))

    @cache
    def lines_only_in_vmx(packages: tuple[S.Package, ...]) -> bool:
        return all(c.vmx for p in packages for c in p.cpus if c.lines)

    def flushed_out_of_vmx(s: S.State) -> bool:
        return lines_only_in_vmx(s.packages)

    def lines_in_a_cache(s: S.State) -> bool:
        return lines_held(s.packages)

    def callers_busy(s: S.State) -> bool:
        return not callers_at_rest(s)

    # --- what must stay possible --------------------------------------------------------------

    can_work = platform_can_run_tdx(flow)
    refuses_hibernation = flow.profile.tdx_init_refuses_hibernation

    def boot_may_use_tdx(s: S.State) -> bool:
        """Nothing stops this boot from using TDX: the platform can, and hibernation (which
        makes tdx_init leave TDX off, where the kernel refuses it) is not available."""
        return can_work is True and not (s.hibernation and refuses_hibernation)

    def boot_cannot_use_tdx(s: S.State) -> bool:
        """The platform cannot run TDX, or hibernation is available where the kernel refuses
        it: this boot must never get the module initialised."""
        return can_work is False or (s.hibernation and refuses_hibernation)

    def initialised_only_where_possible(s: S.State) -> bool:
        return not boot_cannot_use_tdx(s) or (
            s.status != S.INITIALIZED and s.module != M.SYS_READY
            and not any(c.pc == S.LOADED for c in s.callers))

    td_needed = flow.profile.init_at_boot and bool(kvm)  # a KVM besides the initcall
    loaders = sum(1 for loads in flow.config.caller_loads if loads)  # callers that may load

    def tdx_in_use(s: S.State) -> bool:
        """Every caller that may load has TDX working at once (the second tdx_enable finds
        the module initialised) and, where KVM creates TDs itself (v7.1), a TD holds a guest
        KeyID. Counted, not matched by place: symmetry renames the callers."""
        return not boot_may_use_tdx(s) or (
            sum(1 for c in s.callers if c.pc == S.LOADED) >= loaders
            and (s.guest_keyids or not td_needed))

    update_offered = flow.profile.runtime_update and flow.config.module_update

    def boot_may_update(s: S.State) -> bool:
        return update_offered and boot_may_use_tdx(s)

    def update_done(s: S.State) -> bool:
        return not boot_may_update(s) or s.update == S.UPDATE_DONE

    T = FlowInvariant
    return [
        T("SYSINIT-ONCE", "TDH.SYS.INIT is issued at most once per boot, and at most once "
          "more after each runtime update's TDH.SYS.SHUTDOWN (for the new module).",
          f"{TDX_C}: try_init_module_global (sysinit_done caches the result, failure too; "
          "v7.2's tdx_module_shutdown clears it for the next module)",
          "state", F.TdxFlow._tdx_cpu_enable, sysinit_once, sysinit_issued,
          reads=("sysinit_issues",)),
        T("SEAMCALL-ACCEPTED",
          "The kernel issues no SEAMCALL that the CPU (outside VMX operation) or the TDX module "
          "(in its present state) refuses, except where the environment causes the refusal "
          "and the kernel fails cleanly: a CPU that missed TDH.SYS.LP.INIT while offline, a "
          "package wholly offline during key configuration, a module a runtime update shut "
          "down and could not replace (a CPU offline during it, an install that failed).",
          f"{TDX_C}: the order of init_tdx_module and tdx_cpu_enable; the TDX module's "
          "SEAMCALL state checks (TDH.SYS.INIT, LP.INIT, CONFIG, KEY.CONFIG, TDMR.INIT)",
          "transition", F.TdxFlow._answer, seamcall_accepted, seamcall_applies,
          _issues_seamcall),
        T("MODULE-FOLLOWS-SEAMCALLS",
          "The TDX module's state (its global state, each CPU's LP.INIT, each package's key, "
          "each TDMR's initialisation) changes only through the SEAMCALL the step names, "
          "when it succeeded, as the module's own rules say; an injected VMfailInvalid or "
          "#GP takes the module away, and the P-SEAMLDR's last install starts a new one. "
          "A trace therefore shows every call that moved the module, on the CPU it ran on.",
          "the TDX module's SEAMCALL effects (TDH.SYS.INIT, LP.INIT, CONFIG, KEY.CONFIG, "
          "TDMR.INIT, SHUTDOWN, UPDATE; spec.module), against every step of the kernel flow",
          "transition", F.TdxFlow._seamcall_changes, module_explained, module_changed),
        T("CALLER-MOVES-ITSELF",
          "A caller's progress (where it is in its load, how many loads it has left) changes "
          "only in a step that caller takes: no other caller, CPU-hotplug callback or runtime "
          "update moves it.",
          "threads: each caller (KVM's module load, v7.1's initcall) runs on its own; the "
          "kernel shares state between them only through the locks and globals the model "
          "keeps outside the callers", "transition", F.TdxFlow._with_caller,
          callers_move_themselves, callers_moved, watches="callers"),
        T("INIT-RETURNS-FIRST-ERROR",
          "init_tdx_module returns the error of the step that failed first (0 only when none "
          "did), and tdx_enable passes it to its caller.",
          f"{TDX_C}: init_tdx_module (every failure goes to an unwinding label with its ret)",
          "transition", F.TdxFlow._init_failed, returns_first_error, init_returns,
          _init_returns),
        T("INIT-STOPS-AT-FIRST-ERROR",
          "Once a step of init_tdx_module has failed, the run issues no further SEAMCALL: it "
          "only unwinds (frees, flushes, resets) and returns.",
          f"{TDX_C}: init_tdx_module (every failure jumps to its unwinding label; "
          "config_global_keyid stops at the first package whose KEY.CONFIG fails)",
          "transition", F.TdxFlow._config_global_keyid, stops_at_first_error,
          after_failure),
        T("CALLERS-SEE-RESULTS",
          "A caller (KVM) goes on as loaded only after a call that returned 0 with the "
          "module initialised, and unwinds as failed only after a call that returned an "
          "error: no failure is reported as success to the caller, nor success as failure.",
          f"{TDX_C}: tdx_cpu_enable and tdx_enable return values (KVM enables TDX on every "
          "CPU, then calls tdx_enable, and uses TDX only when both returned 0; v7.1: "
          "tdx_get_sysinfo)", "transition", F.TdxFlow._tdx_enable, callers_see_results,
          caller_outcome, watches="callers"),
        T("VMX-ONLY-WHILE-USED",
          "A caller that is idle (never loaded, unloaded, or its load unwound) keeps no CPU in "
          "VMX operation, and no offline CPU is in VMX operation: each VMX user turns VMX off "
          "on every CPU when it leaves and on a CPU going offline (a failed bring-up too), "
          "and a CPU coming online turns it on only for the callers loaded.",
          f"{TDX_C}: the tdx_enable caller contract (KVM's hardware_enable_all / "
          "hardware_disable_all, refcounted per CPU; its CPU-offline callback)", "state",
          F.TdxFlow._release_vmx, vmx_only_while_used, vmx_can_be_idle,
          reads=("callers", "packages")),
        T("CPU-ONLINE-SEES-RESULT",
          "A CPU that comes online with its online callback (VMX and tdx_cpu_enable) stays "
          "online only when the callback returned 0, and goes back offline when it returned "
          "an error.", f"{TDX_C}: tdx_cpu_enable's return value in the CPU-online callback "
          "(KVM's in v6.8, TDX's own from v7.1; the hotplug core rolls a failed online back)",
          "transition", F.TdxFlow._cpu_up, online_sees_result, online_callback_ended,
          concerns=online_callback),
        T("FAULT-BUDGET",
          "Every injected failure (a SEAMCALL error, a failed allocation) counts once against "
          "the configuration's fault budget, none is injected once the budget is spent, and "
          "no other step counts: the faults explored are exactly those the configuration "
          "allows.",
          "the model's contract for injected failures (FlowConfig.fault_budget), not a kernel "
          "rule: a site that injects without counting explores more failures than the "
          "configuration says, one that counts without injecting fewer", "transition",
          F.TdxFlow._alloc_fault_allowed, fault_counted, fault_injected),
        T("STATUS-MONOTONE",
          "The module status only moves UNINITIALIZED -> INITIALIZED or UNINITIALIZED -> ERROR, "
          "and back to UNINITIALIZED when a runtime update has shut the module down.",
          f"{TDX_C}: __tdx_enable (no way back from ERROR); v7.2 tdx_module_shutdown",
          "transition",
          F.TdxFlow._tdx_enable, status_monotone, status_changes, watches="status"),
        T("INIT-AT-MOST-ONCE", "init_tdx_module runs at most once per boot.",
          f"{TDX_C}: __tdx_enable switch on tdx_module_status", "state",
          F.TdxFlow._init_failed, init_at_most_once, init_ran, reads=("init_runs",)),
        T("READY-AGREES",
          "The kernel marks the module INITIALIZED only when the module is ready (every "
          "package has its key), has every feature the kernel requires of it (v6.14: "
          "NO_RBP_MOD) and every TDMR is fully initialised.",
          f"{TDX_C}: init_tdx_module (config_global_keyid, then init_tdmr until "
          "next-to-initialize reaches the TDMR end; check_features)", "transition",
          F.TdxFlow._init_succeeded, ready_agrees, becomes_initialized, watches="status"),
        T("INITIALIZED-ONLY-WHILE-READY",
          "The kernel reports the module initialised (tdx_get_sysinfo answers, KVM may use "
          "it) only while the module is ready to serve, or was taken away by a fault the "
          "kernel cannot see: a runtime update withdraws the report when it shuts the module "
          "down and gives it back only once TDH.SYS.UPDATE succeeded, so a failed update "
          "leaves the module reported uninitialised, and an update ends in success only "
          "with the report given back.",
          f"{TDX_C} (v7.2): tdx_module_shutdown (memset of tdx_module_state), "
          "tdx_module_run_update (initialized = true after TDH.SYS.UPDATE)", "state",
          F.TdxFlow._tdx_module_shutdown, initialized_only_while_ready, reported_ready,
          reads=("status", "module", "update")),
        T("FLUSH-BEFORE-KEY",
          "Kernel cache lines of PAMT memory are written back before the module may write it "
          "with the global KeyID.", f"{TDX_C}: config_global_keyid (wbinvd_on_all_cpus)",
          "state", F.TdxFlow._config_global_keyid_begin, flush_before_key, module_may_write,
          reads=("pamt",)),
        T("PAMT-RESET-BEFORE-FREE",
          "PAMT memory goes back to the page allocator only with none of the module's data "
          "left in the caches, nor (on parts with the partial-write erratum) in memory.",
          f"{TDX_C}: init_tdx_module err_reset_pamts "
          "(wbinvd_on_all_cpus, tdmrs_reset_pamt_all)", "state", F.TdxFlow._late_unwind,
          pamt_reset_before_free, pamt_freed, reads=("pamt",)),
        T("FREE-ONCE", "Nothing init_tdx_module takes (a PAMT chunk, the TDMR list, the "
          "memory-hotplug read lock) is given back twice, or without having been taken.",
          f"{TDX_C}: construct_tdmrs / init_tdx_module unwinding labels (out_put_tdxmem: "
          "put_online_mems)", "state",
          F.TdxFlow._construct_failed, free_once, something_freed,
          reads=("pamt", "resources")),
        T("RESOURCES-AT-REST",
          "Outside init_tdx_module, what it allocated is either kept by the initialised module "
          "(the snapshot and every PAMT chunk, handed to the module; through a runtime update "
          "too, whatever its outcome, as the new module imports them and nothing is rolled "
          "back) or, after a failure, all freed (snapshot, TDMR list, every PAMT chunk); its "
          "buffers and the memory-hotplug read lock never outlive it.",
          f"{TDX_C}: init_tdx_module unwinding (err_free_pamts, err_free_tdmrs, "
          "err_free_tdxmem), config_tdx_module, config_global_keyid; v7.2 seamldr.c (no "
          "rollback)", "state", F.TdxFlow._init_failed, resources_at_rest, at_rest_after_init,
          reads=("mutex", "callers", "resources", "status", "snapshot", "pamt", "update")),
        T("MEMORY-STATIC-WHEN-READY",
          "While the module is INITIALIZED, all online memory lies in the TDX memory snapshot.",
          f"{TDX_C}: tdx_memory_notifier / is_tdx_memory", "state", F.memory_notifier,
          memory_static_when_ready, initialized, reads=("status", "snapshot", "memblock", "hot")),
        T("ONLINE-VETO-ONLY-WHEN-READY",
          "Memory onlining is vetoed only while an initialised module holds the snapshot (or "
          "a runtime update has shut it down: the snapshot stays, TDX memory cannot grow), "
          "and never for a block memblock held when the snapshot was taken (TDX memory "
          "offlined and onlined again).",
          f"{TDX_C}: tdx_memory_notifier (empty tdx_memlist allows everything), "
          "is_tdx_memory", "transition", F.memory_notifier, online_veto_only_when_ready,
          memory_onlined, _memory_online),
        T("CPUS-FROZEN-DURING-ENABLE",
          "No CPU comes or goes while init_tdx_module runs.",
          f"{TDX_C}: tdx_enable caller contract (cpus_read_lock)", "transition",
          F.TdxFlow.cpus_read_locked, cpus_frozen_during_enable, step_during_init,
          watches="packages"),
        T("PACKAGES-ONLINE-FOR-KEYS",
          "Every package has an online CPU while the global key is being configured.",
          f"{TDX_C}: config_global_keyid (a package without online CPU is skipped)", "state",
          F.TdxFlow._packages_online, packages_online_for_keys, configuring_keys,
          reads=("step", "mutex", "packages")),
        T("ONLINE-CPUS-TDX-READY",
          "Where the kernel keeps TDX enabled on every CPU (v7.1: initialised at boot, with a "
          "CPU-online callback), every online CPU is in VMX operation and has done "
          "TDH.SYS.LP.INIT once its online callbacks have run.",
          f"{TDX_C} (v7.1): tdx_online_cpu (x86_virt_get_ref, tdx_cpu_enable; a failure fails "
          "the online)", "state", F.TdxFlow._cpu_up, online_cpus_tdx_ready, kept_enabled,
          reads=("status", "hotplug_busy", "packages")),
        T("PACKAGES-KEEP-A-CPU",
          "While a guest KeyID is allocated, every package has an online CPU.",
          f"{TDX_C} (v7.1): tdx_offline_cpu (reclaiming a KeyID needs TDH.PHYMEM.PAGE.WBINVD "
          "on every package)", "state", F.TdxFlow._offline_refused, packages_keep_a_cpu,
          keyids_in_use, reads=("guest_keyids", "packages")),
        T("KEYIDS-FREED-BEFORE-UNLOAD",
          "A guest KeyID is held only while KVM is loaded: KVM destroys its TDs, and so frees "
          "their KeyIDs, before it unloads.",
          f"{TDX_C} (v7.1): tdx_guest_keyid_alloc / tdx_guest_keyid_free; KVM holds a "
          "reference on the module while a TD lives", "state", F.TdxFlow._kvm_uses_tdx,
          keyids_held_by_kvm, keyids_in_use, reads=("guest_keyids", "callers")),
        T("NO-S3-OR-HIBERNATE-WITH-TDX",
          "A boot with TDX enabled never enters ACPI S3 nor hibernates.",
          f"{TDX_C}: tdx_init (acpi_suspend_lowlevel = NULL, hibernation check)", "state",
          F.TdxFlow.tdx_init, no_sleep_with_tdx, tdx_on,
          reads=("tdx_on", "s3_entered", "hibernated")),
        T("MC-BLAMES-MODULE-PAGES",
          "On erratum parts a machine check is blamed on TDX private memory exactly when the "
          "page is PAMT memory the module uses and the module can say so: it is ready and "
          "the CPU that probes the page is in VMX operation, so its RDMD runs (while "
          "init_tdx_module runs, either answer is accepted).",
          f"{TDX_C}: tdx_dump_mce_info / paddr_is_tdx_private / is_pamt_page", "transition",
          F.TdxFlow.machine_checks, machine_check_blames_module_pages, rdmd_ran,
          machine_check_probed),
        T("KEXEC-SAFE",
          "kexec starts the next kernel only with no TDX lines left in any CPU's cache and, on "
          "parts with the partial-write erratum, none of the module's data left in memory.",
          f"{TDX_C} (v6.18): sc_retry marks the cache incoherent, stop_this_cpu and "
          "tdx_cpu_flush_cache_for_kexec write it back; machine_kexec_prepare refuses on "
          "erratum parts", "state", F.TdxFlow._kexec, kexec_safe, kexeced,
          reads=("kexeced", "packages", "pamt")),
        T("CACHE-MARKED",
          "Every SEAMCALL that reaches the module leaves TDX lines in the cache of the CPU it "
          "ran on, and every SEAMCALL leaves that CPU marked incoherent where the kernel marks "
          "(v6.18 on), unless the same step took the CPU down and wrote its cache back; every "
          "CPU whose cache may hold TDX lines is marked until it writes its cache back: each "
          "flush kexec and VMX-off do is decided by that mark (the model follows caches only "
          "in kernels that can kexec or mark).",
          f"{TDX_C} (v6.18): sc_retry (mark before the SEAMCALL), "
          "tdx_cpu_flush_cache_for_kexec and stop_this_cpu (write back, then clear)",
          "transition", F.TdxFlow._note_cache_lines, cache_marked, marking_matters),
        T("VMXOFF-FLUSHED",
          "A CPU's cache holds TDX lines only while the CPU is in VMX operation: once no "
          "SEAMCALL can run on it, KVM has written its cache back, so a kexec that stops the "
          "CPU (a crash kexec too) finds no TDX lines left there (the model follows caches "
          "only in kernels that can kexec, v6.18 on).",
          f"{TDX_C} (v6.18): tdx_cpu_flush_cache_for_kexec from KVM's "
          "vmx_disable_virtualization_cpu ('KVM: TDX: Explicitly do WBINVD when no more TDX "
          "SEAMCALLs'); play_dead", "state", F.TdxFlow._release_vmx, flushed_out_of_vmx,
          lines_in_a_cache, reads=("packages",)),
        T("DEADLOCK-FREE",
          "From every reachable state all callers and a runtime update can still finish and "
          "every caller can unload (v7.1's initcall, which never unloads, may rest loaded), or "
          "the machine kexecs into the next kernel.",
          f"{TDX_C}: tdx_enable mutex, cpus_read_lock, try_init_module_global spinlock; v7.2 "
          "seamldr.c (a failed step stops every CPU)",
          "eventually", F.TdxFlow._tdx_enable, callers_at_rest, callers_busy),
        T("TDX-ONLY-WHERE-POSSIBLE",
          "Where the platform cannot run TDX (too few KeyIDs, a module without a feature the "
          "kernel needs, boot memory whose TDMRs exceed the module's limits) or hibernation "
          "is available, the module is never initialised (neither the kernel's status nor the "
          "module's own state says so, and no caller is told TDX works).",
          f"{TDX_C}: tdx_init (KeyIDs, hibernation), check_features (v6.14), construct_tdmrs "
          "(-ENOSPC)", "state", F.TdxFlow.tdx_init, initialised_only_where_possible,
          boot_cannot_use_tdx, reads=("status", "module", "callers", "hibernation")),
        T("TDX-USABLE",
          "Where the platform can run TDX (enough KeyIDs, a module with the features the "
          "kernel needs, boot memory that fits the TDMR limits) and hibernation is not "
          "available, some run of the boot initialises the module and has every caller "
          "loaded with TDX working at once (v7.1: with a TD created, where KVM loads).",
          f"{TDX_C}: tdx_init, tdx_enable, init_tdx_module (the path that returns 0); v7.1 "
          "KVM's tdx_get_sysinfo and tdx_guest_keyid_alloc", "reachable",
          F.TdxFlow._init_succeeded, tdx_in_use, boot_may_use_tdx),
        T("UPDATE-CAN-FINISH",
          "Where userspace may ask for a runtime module update (v7.2) and the boot may use "
          "TDX, some run of the boot ends an update done.",
          "arch/x86/virt/vmx/tdx/seamldr.c (v7.2): seamldr_install_module and its "
          "stop_machine steps", "reachable", ModuleUpdate._tdx_module_run_update, update_done,
          boot_may_update),
    ]
