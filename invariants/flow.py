"""Flow invariants: what must hold in every reachable state and step of `spec.flow`.

Each is a general rule of the TDX host design (behaviour notes, section 7), stated without
reference to any particular bug. `flow_invariants(flow)` binds them to one model, since some
rules need its layout (how many TDMR.INIT calls a TDMR takes, which memory is online).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

from invariants.base import Invariant
from spec import flow as F
from spec.seamcall import (
    TDH_PHYMEM_PAGE_RDMD,
    TDH_SYS_INIT,
    TDH_SYS_LP_INIT,
)

TDX_C = "arch/x86/virt/vmx/tdx/tdx.c"
AT_REST = frozenset((F.IDLE, F.LOADED))  # caller pcs of a caller that is not in a call


@dataclass(frozen=True)
class FlowInvariant(Invariant):
    """An invariant with its check over the flow. `kind` is "state", "transition" or
    "eventually" (see `checker.engines.explorer`); `spec_function` is the model function whose
    rule it guards, so a report can point at its file and line. A transition property that looks
    only at some steps says which in `concerns(step)`; the explorer then skips the others (its
    `check` passes them anyway). Likewise a transition property that passes every step
    that keeps one `State` field's object names that field in `watches`, and a state
    property names the `State` fields its check reads in `reads`, so the explorer need not
    check a state again when those fields are the ones its parent had (the check itself stays
    complete)."""

    kind: str
    spec_function: Callable
    check: Callable
    concerns: Callable | None = None
    reads: tuple[str, ...] | None = None
    watches: str | None = None


def _seamcall_cpus(facts: F.CpuFacts, cpu: int | None) -> tuple[F.Cpu, ...]:
    """The CPUs a SEAMCALL may run on: its own, or any online CPU for process context."""
    if cpu is not None:
        return (facts.cpus[cpu][1],)
    return facts.online_cpus


# Steps whose SEAMCALL (None: no SEAMCALL) runs on a CPU without LP.INIT, and without VMX
# operation: the #MC handler's RDMD is fault-tolerant.
LP_INIT_NOT_NEEDED = frozenset((None, TDH_SYS_INIT, TDH_SYS_LP_INIT, TDH_PHYMEM_PAGE_RDMD))
VMX_NOT_NEEDED = frozenset((None, TDH_PHYMEM_PAGE_RDMD))


def _issues_lp_init(step: F.Step) -> bool:
    return step.seamcall == TDH_SYS_LP_INIT


def _needs_lp_init(step: F.Step) -> bool:
    """A SEAMCALL the module refuses on a CPU without LP.INIT."""
    return step.seamcall not in LP_INIT_NOT_NEEDED


def _needs_vmx(step: F.Step) -> bool:
    """A SEAMCALL that needs VMX operation."""
    return step.seamcall not in VMX_NOT_NEEDED


def _memory_online(step: F.Step) -> bool:
    return step.action == "memory_online"


def _machine_check(step: F.Step) -> bool:
    return step.action == "machine_check"


def _covered(memlist, start: int, end: int) -> bool:
    """[start, end) lies inside the union of the snapshot entries."""
    position = start
    for entry in memlist:
        if entry.start <= position < entry.end:
            position = entry.end
            if position >= end:
                return True
    return position >= end


def flow_invariants(flow: F.TdxFlow) -> list[FlowInvariant]:
    """The flow invariants of `flow`, in the order of the behaviour notes."""
    cpus = flow.cpus

    def sysinit_once(s: F.State) -> bool:
        return s.sysinit_issues <= 1

    def no_lp_init_after_sysinit_failure(s: F.State, step: F.Step, _t: F.State) -> bool:
        failed = s.sysinit_issues and s.sysinit_ret != 0
        return not (failed and _issues_lp_init(step))

    def lp_once(s: F.State, step: F.Step, _t: F.State) -> bool:
        return not _issues_lp_init(step) or not flow.cpu(s, step.cpu).lp_done

    # The checks below depend on a few small values that most states share (the CPUs, the
    # PAMT chunk facts, the snapshot and hot blocks, the callers), so their verdicts are
    # cached on those values.
    facts_of = flow.packages_facts

    @cache
    def lp_initialised(packages: tuple[F.Package, ...], cpu: int | None) -> bool:
        return all(c.lp_done for c in _seamcall_cpus(facts_of(packages), cpu))

    @cache
    def in_vmx(before: tuple[F.Package, ...], after: tuple[F.Package, ...],
               cpu: int | None) -> bool:
        # An IPI's VMXON and its first SEAMCALL share one step, and a failed call's VMXOFF
        # shares the step of the call, so the CPU counts when it is in VMX operation on
        # either side of the step.
        return all(a.vmx or b.vmx for a, b in zip(_seamcall_cpus(facts_of(before), cpu),
                                                  _seamcall_cpus(facts_of(after), cpu),
                                                  strict=False))

    def no_seamcall_before_lp_init(s: F.State, step: F.Step, _t: F.State) -> bool:
        return step.seamcall in LP_INIT_NOT_NEEDED or lp_initialised(s.packages, step.cpu)

    def vmx_before_seamcall(s: F.State, step: F.Step, t: F.State) -> bool:
        return step.seamcall in VMX_NOT_NEEDED or in_vmx(s.packages, t.packages, step.cpu)

    def status_monotone(s: F.State, _step: F.Step, t: F.State) -> bool:
        return s.status == t.status or s.status == F.UNINITIALIZED

    def init_at_most_once(s: F.State) -> bool:
        return s.init_runs <= 1

    def config_once(s: F.State) -> bool:
        return s.config_issues <= 1

    @cache
    def keys_issued_once(packages: tuple[F.Package, ...]) -> bool:
        return all(p.key_issues <= 1 for p in packages)

    @cache
    def all_keyed(packages: tuple[F.Package, ...]) -> bool:
        return all(p.keyed for p in packages)

    def key_once_per_package(s: F.State) -> bool:
        return keys_issued_once(s.packages) and (s.status != F.INITIALIZED
                                                 or all_keyed(s.packages))

    def key_serial(s: F.State) -> bool:
        if s.step != F.S_KEYS:
            return True
        return sum(1 for _, c in cpus(s) if c.key == F.KEY_IN_FLIGHT) <= 1

    def keys_before_tdmr_init(s: F.State) -> bool:
        return not any(s.tdmr_done) or all_keyed(s.packages)

    def ready_implies_all_tdmrs(s: F.State) -> bool:
        if s.status != F.INITIALIZED:
            return True
        calls = flow.layout(s).tdmr_init_calls
        return len(s.tdmr_done) == len(calls) and all(
            done >= need for done, need in zip(s.tdmr_done, calls, strict=True))

    @cache
    def flushed_before_key(pamt: tuple[int, ...]) -> bool:
        both = F.PAMT_WRITTEN | F.PAMT_KERNEL_DIRTY
        return all(c & both != both for c in pamt)

    @cache
    def reset_before_free(pamt: tuple[int, ...]) -> bool:
        dirty = F.PAMT_WRITTEN | F.PAMT_GLOBAL_DIRTY
        return all(not (c & F.PAMT_FREED and c & dirty) for c in pamt)

    @cache
    def freed_once(pamt: tuple[int, ...]) -> bool:
        return all(not c & F.PAMT_FREED_TWICE for c in pamt)

    def flush_before_key(s: F.State) -> bool:
        return flushed_before_key(s.pamt)

    def pamt_reset_before_free(s: F.State) -> bool:
        return reset_before_free(s.pamt)

    def pamt_free_once(s: F.State) -> bool:
        return freed_once(s.pamt)

    def pamt_no_leak(s: F.State) -> bool:
        if s.mutex >= 0 and s.callers[s.mutex].pc == F.IN_TDX:
            return True  # not a quiescent point
        for chunk in s.pamt:
            if chunk & F.PAMT_OWNED:
                if s.status != F.INITIALIZED:
                    return False
            elif chunk & F.PAMT_ALLOCATED:
                return False
        return True

    @cache
    def online_memory_in_snapshot(snapshot: int, hot: tuple[bool, ...]) -> bool:
        memlist = flow.snapshot_memlist(snapshot)
        return all(_covered(memlist, start, end) for start, end in flow.online_memory(hot))

    def memory_static_when_ready(s: F.State) -> bool:
        return s.status != F.INITIALIZED or online_memory_in_snapshot(s.snapshot, s.hot)

    def online_veto_only_when_ready(s: F.State, step: F.Step, t: F.State) -> bool:
        vetoed = _memory_online(step) and s.hot == t.hot
        return not vetoed or s.status == F.INITIALIZED

    def cpus_frozen_during_enable(s: F.State, _step: F.Step, t: F.State) -> bool:
        if s.mutex < 0 or s.callers[s.mutex].pc != F.IN_TDX:
            return True
        return flow.online_cpus(s) == flow.online_cpus(t)

    def packages_online_for_keys(s: F.State) -> bool:
        if s.step != F.S_KEYS or s.mutex < 0:
            return True
        return all(any(c.online for c in p.cpus) for p in s.packages)

    def no_sleep_with_tdx(s: F.State) -> bool:
        return not (s.tdx_on and (s.s3_entered or s.hibernated))

    blame_facts: dict[F.Step, tuple[bool, bool]] = {}

    def machine_check_facts(step: F.Step) -> tuple[bool, bool]:
        """(RDMD ran on an erratum part for a PAMT page, the step blames TDX private memory),
        worked out once per label (there are two machine-check steps out of every state)."""
        facts = blame_facts.get(step)
        if facts is None:
            asked = step.seamcall == TDH_PHYMEM_PAGE_RDMD and flow.platform.erratum
            facts = blame_facts[step] = (
                asked and F.machine_check_page(step) == F.MC_PAMT_PAGE,
                F.machine_check_reported(step))
        return facts

    def machine_check_may_blame(step: F.Step) -> bool:
        """The machine checks whose verdict depends on the state: the others never blame TDX
        private memory, so they pass or fail alike everywhere (`concerns`)."""
        return _machine_check(step) and any(machine_check_facts(step))

    @cache
    def blamed_right(step: F.Step, pamt: tuple[int, ...]) -> bool:
        asked_about_pamt, reported = machine_check_facts(step)
        return reported == (asked_about_pamt
                            and flow.page_owned_by_module(pamt, F.MC_PAMT_PAGE))

    def machine_check_blames_module_pages(s: F.State, step: F.Step, _t: F.State) -> bool:
        return step.action != "machine_check" or blamed_right(step, s.pamt)

    @cache
    def all_at_rest(callers: tuple[F.Caller, ...]) -> bool:
        return all(caller.pc in AT_REST for caller in callers)

    def callers_at_rest(s: F.State) -> bool:
        return not s.hotplug_busy and all_at_rest(s.callers)

    T = FlowInvariant
    return [
        T("SYSINIT-ONCE", "TDH.SYS.INIT is issued at most once per boot.",
          f"{TDX_C}: try_init_module_global (sysinit_done caches the result)", "state",
          F.TdxFlow._tdx_cpu_enable, sysinit_once, reads=("sysinit_issues",)),
        T("NO-LP-INIT-AFTER-SYSINIT-FAILURE",
          "Once TDH.SYS.INIT has failed, no TDH.SYS.LP.INIT is issued.",
          f"{TDX_C}: tdx_cpu_enable returns the cached global error", "transition",
          F.TdxFlow._tdx_cpu_enable, no_lp_init_after_sysinit_failure, _issues_lp_init),
        T("LP-ONCE", "TDH.SYS.LP.INIT is never issued on a CPU where it already succeeded.",
          f"{TDX_C}: tdx_cpu_enable (per-CPU tdx_lp_initialized, interrupts off)",
          "transition", F.TdxFlow._frame_steps, lp_once, _issues_lp_init),
        T("NO-SEAMCALL-BEFORE-LP-INIT",
          "No SEAMCALL other than TDH.SYS.INIT/LP.INIT (and the #MC handler's RDMD) runs on a "
          "CPU before its TDH.SYS.LP.INIT succeeded.",
          f"{TDX_C}: tdx_enable caller contract (tdx_cpu_enable on every online CPU)",
          "transition", F.TdxFlow._ipi_targets, no_seamcall_before_lp_init, _needs_lp_init),
        T("VMX-BEFORE-SEAMCALL",
          "No SEAMCALL (but the #MC handler's fault-tolerant RDMD) runs on a CPU outside VMX "
          "operation.", f"{TDX_C}: seamcall callers must have done VMXON", "transition",
          F.TdxFlow._release_vmx, vmx_before_seamcall, _needs_vmx),
        T("STATUS-MONOTONE",
          "The module status only moves UNINITIALIZED -> INITIALIZED or UNINITIALIZED -> ERROR.",
          f"{TDX_C}: __tdx_enable (no way back from ERROR)", "transition",
          F.TdxFlow._tdx_enable, status_monotone, watches="status"),
        T("INIT-AT-MOST-ONCE", "init_tdx_module runs at most once per boot.",
          f"{TDX_C}: __tdx_enable switch on tdx_module_status", "state",
          F.TdxFlow._init_failed, init_at_most_once, reads=("init_runs",)),
        T("CONFIG-ONCE", "TDH.SYS.CONFIG is issued at most once per boot.",
          f"{TDX_C}: config_tdx_module", "state", F.TdxFlow._init_steps, config_once,
          reads=("config_issues",)),
        T("KEY-ONCE-PER-PACKAGE",
          "TDH.SYS.KEY.CONFIG is issued at most once per package, and an initialised module "
          "has every package's key configured.",
          f"{TDX_C}: config_global_keyid (per-package cpumask)", "state",
          F.TdxFlow._key_targets, key_once_per_package, reads=("packages", "status")),
        T("KEY-SERIAL", "At most one TDH.SYS.KEY.CONFIG is in flight at any time.",
          f"{TDX_C}: config_global_keyid (smp_call_on_cpu, one at a time)", "state",
          F.TdxFlow._config_global_keyid, key_serial, reads=("step", "packages")),
        T("KEYS-BEFORE-TDMR-INIT",
          "No TDMR is initialised while some package lacks its global key.",
          f"{TDX_C}: init_tdx_module (config_global_keyid before init_tdmrs)", "state",
          F.TdxFlow._init_tdmr, keys_before_tdmr_init, reads=("tdmr_done", "packages")),
        T("READY-IMPLIES-ALL-TDMRS",
          "The module is INITIALIZED only when every TDMR is fully initialised.",
          f"{TDX_C}: init_tdmr (loop until next-to-initialize reaches the TDMR end)", "state",
          F.TdxFlow._init_tdmr, ready_implies_all_tdmrs,
          reads=("status", "tdmr_done", "snapshot", "memblock")),
        T("FLUSH-BEFORE-KEY",
          "Kernel cache lines of PAMT memory are written back before the module may write it "
          "with the global KeyID.", f"{TDX_C}: config_global_keyid (wbinvd_on_all_cpus)",
          "state", F.TdxFlow._begin_key_config, flush_before_key, reads=("pamt",)),
        T("PAMT-RESET-BEFORE-FREE",
          "PAMT memory goes back to the page allocator only with no module data left in it or "
          "in the caches.", f"{TDX_C}: init_tdx_module err_reset_pamts "
          "(wbinvd_on_all_cpus, tdmrs_reset_pamt_all)", "state", F.TdxFlow._init_steps,
          pamt_reset_before_free, reads=("pamt",)),
        T("PAMT-FREE-ONCE", "No PAMT chunk is freed twice.",
          f"{TDX_C}: construct_tdmrs / init_tdx_module unwinding labels", "state",
          F.TdxFlow._construct_tdmrs, pamt_free_once, reads=("pamt",)),
        T("PAMT-NO-LEAK",
          "Outside init_tdx_module every PAMT chunk is either freed, never allocated, or owned "
          "by an INITIALIZED module.", f"{TDX_C}: init_tdx_module unwinding", "state",
          F.TdxFlow._init_failed, pamt_no_leak,
          reads=("mutex", "callers", "pamt", "status")),
        T("MEMORY-STATIC-WHEN-READY",
          "While the module is INITIALIZED, all online memory lies in the TDX memory snapshot.",
          f"{TDX_C}: tdx_memory_notifier / is_tdx_memory", "state", F.memory_notifier,
          memory_static_when_ready, reads=("status", "snapshot", "memblock", "hot")),
        T("ONLINE-VETO-ONLY-WHEN-READY",
          "Memory onlining is vetoed only while an initialised module holds the snapshot.",
          f"{TDX_C}: tdx_memory_notifier (empty tdx_memlist allows everything)", "transition",
          F.memory_notifier, online_veto_only_when_ready, _memory_online),
        T("CPUS-FROZEN-DURING-ENABLE",
          "No CPU comes or goes while init_tdx_module runs.",
          f"{TDX_C}: tdx_enable caller contract (cpus_read_lock)", "transition",
          F.TdxFlow.cpus_read_locked, cpus_frozen_during_enable, watches="packages"),
        T("PACKAGES-ONLINE-FOR-KEYS",
          "Every package has an online CPU while the global key is being configured.",
          f"{TDX_C}: config_global_keyid (a package without online CPU is skipped)", "state",
          F.TdxFlow._packages_online, packages_online_for_keys,
          reads=("step", "mutex", "packages")),
        T("NO-S3-OR-HIBERNATE-WITH-TDX",
          "A boot with TDX enabled never enters ACPI S3 nor hibernates.",
          f"{TDX_C}: tdx_init (acpi_suspend_lowlevel = NULL, hibernation check)", "state",
          F.TdxFlow.tdx_init, no_sleep_with_tdx, reads=("tdx_on", "s3_entered", "hibernated")),
        T("MC-BLAMES-MODULE-PAGES",
          "On erratum parts a machine check is blamed on TDX private memory exactly when RDMD "
          "can run and the page belongs to the initialised module.",
          f"{TDX_C}: tdx_dump_mce_info / paddr_is_tdx_private / is_pamt_page", "transition",
          F.TdxFlow.machine_check, machine_check_blames_module_pages, machine_check_may_blame),
        T("DEADLOCK-FREE",
          "From every reachable state all callers can still finish (come to rest).",
          f"{TDX_C}: tdx_enable mutex, cpus_read_lock, try_init_module_global spinlock",
          "eventually", F.TdxFlow._tdx_enable, callers_at_rest),
    ]
