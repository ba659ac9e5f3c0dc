"""Profiles: a kernel version or variant as a set of rule switches over the one model.

`v6.8` is the reference. A variant (the CMR-hole fix, a historical bug, a mutant) changes one
switch; the model reads the switch at the single place the rule lives, so no profile is a copy
of the model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

HOLES_MEMBLOCK = "memblock"
HOLES_CMR = "cmr"


@dataclass(frozen=True)
class Profile:
    """A named set of kernel rules. Every field defaults to what v6.8 does; `source` says
    which code was read, for a later kernel the repository and commit."""

    name: str
    summary: str
    source: str = ("arch/x86/virt/vmx/tdx/tdx.c, Linux v6.8 (torvalds/linux "
                   "1e536e10689700e006989dea33918cce348e04b6 with the #MC change 70060463cb2b)")
    # "kernel": a real kernel behaviour; "variant": a proposed change; "bug": a historical bug
    # or mutant that the checker must catch.
    kind: str = "kernel"
    # --- TDMR construction (spec.tdmr) ---
    holes: str = HOLES_MEMBLOCK  # where tdmr_populate_rsvd_holes finds holes
    pamt_entry_count_bits: int | None = None  # None: exact; 32: the v5 signed-int bug
    sort_reserved_areas: bool = True  # tdmr_populate_rsvd_areas ends with sort_rsvd_areas
    reserve_other_tdmrs_pamts: bool = True  # tdmr_populate_rsvd_pamts looks at every TDMR
    pamt_4k_bitmap: bool = False  # a module with Dynamic PAMT gets a page bitmap as 4K PAMT
    # --- flow --- (spec.flow; each switch is one rule, True is what v6.8 does)
    tdx_init_disables_s3: bool = True  # tdx_init turns ACPI S3 off for the whole boot
    tdx_init_refuses_hibernation: bool = True  # tdx_init fails when hibernation is available
    cpu_enable_irqs_off: bool = True  # tdx_cpu_enable runs with interrupts off (no re-entry)
    cache_sysinit_failure: bool = True  # try_init_module_global caches a failed TDH.SYS.INIT too
    cpu_enable_checks_global_result: bool = True  # no LP.INIT after TDH.SYS.INIT failed
    lp_flag_survives_offline: bool = True  # tdx_lp_initialized is never cleared
    callers_enable_all_cpus: bool = True  # callers run tdx_cpu_enable on every online CPU
    package_check_under_hotplug_lock: bool = True  # callers check packages after cpus_read_lock
    caller_holds_cpus_lock: bool = True  # cpus_read_lock held from tdx_cpu_enable to tdx_enable
    vmx_refcounted: bool = True  # VMXOFF only when the last VMX user of that CPU leaves
    error_is_final: bool = True  # tdx_enable in ERROR returns -EINVAL without retrying
    enodev_marks_error: bool = True  # an -ENODEV init failure also moves the module to ERROR
    release_mutex_on_failure: bool = True  # tdx_enable unlocks its mutex on the error path too
    memlist_failure_frees_partial: bool = True  # build_tdx_memlist frees what it added
    pamt_alloc_failure_frees_pamts: bool = True  # tdmrs_set_up_pamt_all frees earlier chunks
    rsvd_failure_frees_pamts: bool = True  # construct_tdmrs frees PAMTs when areas run out
    construct_failure_skips_pamt_free: bool = True  # construct_tdmrs freed its PAMTs already
    config_failure_frees_pamts: bool = True  # TDH.SYS.CONFIG failure unwinds via free PAMTs
    wbinvd_before_key_config: bool = True  # config_global_keyid flushes caches first
    key_config_once_per_package: bool = True  # one TDH.SYS.KEY.CONFIG per package, not per CPU
    key_config_serial: bool = True  # each KEY.CONFIG completes before the next is issued
    init_tdmrs_until_done: bool = True  # TDH.SYS.TDMR.INIT repeated until each TDMR is done
    reset_pamts_on_late_failure: bool = True  # failure after KEY.CONFIG: WBINVD and reset PAMTs
    keep_tdmr_list: bool = True  # TDMR list kept after success (the #MC handler reads it)
    notifier_checks_whole_range: bool = True  # is_tdx_memory needs the whole range in one entry
    notifier_allows_when_empty: bool = True  # an empty snapshot vetoes nothing
    # --- rules later kernels added (False: v6.8 has no such rule) ---
    metadata_before_memory: bool = False  # get_tdx_sys_info runs before get_online_mems
    requires_no_rbp_mod: bool = False  # a fact: the kernel relies on the module keeping RBP
    # (NO_RBP_MOD); one without it clobbers the frame pointer (what the invariants read)
    checks_features: bool = False  # the rule that keeps it: check_features refuses such a module
    early_failures_return: bool = False  # a failure before get_online_mems returns at once
    marks_cache_incoherent: bool = False  # each SEAMCALL marks its CPU's cache incoherent
    flushes_cache_on_vmx_off: bool = False  # WBINVD where marked when VMX goes off on a CPU
    kexec_enabled: bool = False  # the kernel can kexec (v6.8 cannot be built with kexec)
    kexec_refused_on_erratum: bool = False  # machine_kexec_prepare refuses on erratum parts
    reset_pamts_only_on_erratum: bool = False  # the PAMT reset does nothing without the erratum
    init_at_boot: bool = False  # tdx_enable is an initcall (caller 0) and KVM only uses TDX
    offline_veto_with_keyids: bool = False  # no package loses its last CPU while a TD lives
    runtime_update: bool = False  # userspace may replace the module through the P-SEAMLDR
    shutdown_resets_module_state: bool = False  # TDH.SYS.SHUTDOWN done: not initialised, and
    # TDH.SYS.INIT not cached any more
    shutdown_clears_lp_flags: bool = False  # ... and every CPU's tdx_lp_initialized cleared
    update_aborts_on_failure: bool = False  # a failed update step stops every CPU
    update_keeps_pamts: bool = False  # a failed update leaves the PAMTs to the module

    def but(self, name: str, summary: str, source: str, kind: str = "bug", **changes) -> Profile:
        """A profile that differs from this one in `changes` only."""
        return replace(self, name=name, summary=summary, source=source, kind=kind, **changes)


V6_8 = Profile(name="v6.8", summary="Linux v6.8 as merged (memblock holes)")

# The switches spec.tdmr reads; every other switch is a rule of spec.flow.
TDMR_RULES = frozenset({"holes", "pamt_entry_count_bits", "sort_reserved_areas",
                        "reserve_other_tdmrs_pamts", "pamt_4k_bitmap"})
_DESCRIPTIVE = frozenset({"name", "summary", "source", "kind"})


def rule_changes(profile: Profile, base: Profile = V6_8) -> frozenset[str]:
    """The rule switches in which `profile` differs from `base` (v6.8 unless named)."""
    return frozenset(f.name for f in fields(Profile)
                     if f.name not in _DESCRIPTIVE
                     and getattr(profile, f.name) != getattr(base, f.name))


def base_kernel(profile: Profile) -> Profile:
    """The kernel a profile was made from: the one whose rules it differs from least (a
    later kernel's hazard is that kernel with one rule switched, not v6.8 with many)."""
    return min((V6_8, *LATER_KERNELS), key=lambda kernel: len(rule_changes(profile, kernel)))

_SERIES = "TDX host series (LKML, 'TDX host kernel support')"

# The bug zoo: real bugs of the public history of the series, then design hazards the v6.8
# code guards against. Each is v6.8 with one rule switched.
BUGS: tuple[Profile, ...] = (
    V6_8.but("bug-lp-init-irq-reentry", "tdx_cpu_enable callable with interrupts on: an "
             "interrupt between the per-CPU flag test and set re-enters it, LP.INIT twice",
             f"{_SERIES} v12 review; fixed in v13 (IPI context required)",
             cpu_enable_irqs_off=False),
    V6_8.but("bug-sysinit-failure-not-cached", "a failed TDH.SYS.INIT is not cached: every "
             "later tdx_cpu_enable issues TDH.SYS.INIT again",
             f"{_SERIES} v13; fixed in v14", cache_sysinit_failure=False),
    V6_8.but("bug-enodev-retried", "module not loaded (-ENODEV) leaves the module state "
             "unchanged, so every later tdx_enable probes and initialises again",
             f"{_SERIES} v5; fixed in v6", enodev_marks_error=False),
    V6_8.but("bug-cpu-check-outside-hotplug-lock", "the 'every package has an online CPU' "
             "check made before taking the CPU-hotplug lock",
             f"{_SERIES} v3 review", package_check_under_hotplug_lock=False),
    V6_8.but("bug-pamt-entries-int32", "PAMT entry count held in a 32-bit signed int: wrong "
             "PAMT size for a TDMR of 8 TiB or more", f"{_SERIES} v5 review",
             pamt_entry_count_bits=32),
    V6_8.but("bug-pamt-freed-without-reset", "after a failure past TDH.SYS.CONFIG the PAMTs "
             "are freed without the MOVDIR64B reset", f"{_SERIES} before v11",
             reset_pamts_on_late_failure=False),
    V6_8.but("bug-tdmr-list-freed", "the TDMR list freed after a successful init, so the #MC "
             "path cannot tell PAMT pages from other reserved pages",
             f"{_SERIES} before v12", keep_tdmr_list=False),
    V6_8.but("mutant-no-wbinvd-before-key-config", "no WBINVD before the first "
             "TDH.SYS.KEY.CONFIG", "design hazard: config_global_keyid",
             wbinvd_before_key_config=False),
    V6_8.but("mutant-key-config-every-cpu", "TDH.SYS.KEY.CONFIG on every online CPU instead "
             "of once per package", "design hazard: config_global_keyid",
             key_config_once_per_package=False),
    V6_8.but("mutant-initialized-after-first-chunk", "module marked INITIALIZED after the "
             "first TDH.SYS.TDMR.INIT chunk instead of the whole TDMR",
             "design hazard: init_tdmr", init_tdmrs_until_done=False),
    V6_8.but("mutant-rsvd-unsorted", "reserved areas not sorted",
             "design hazard: tdmr_populate_rsvd_areas (sort_rsvd_areas)",
             sort_reserved_areas=False),
    V6_8.but("mutant-other-pamt-not-reserved", "a PAMT chunk that lands in another TDMR is "
             "not reserved there", "design hazard: tdmr_populate_rsvd_pamts",
             reserve_other_tdmrs_pamts=False),
    V6_8.but("mutant-pamt-double-free", "PAMTs freed twice when reserved-area population "
             "fails (the caller's unwinding frees again)",
             "design hazard: construct_tdmrs / init_tdx_module unwinding",
             construct_failure_skips_pamt_free=False),
    V6_8.but("mutant-notifier-checks-start-only", "the memory notifier checks only the start "
             "of the onlined range", "design hazard: tdx_memory_notifier",
             notifier_checks_whole_range=False),
    V6_8.but("mutant-notifier-rejects-when-empty", "an empty snapshot rejects every online",
             "design hazard: tdx_memory_notifier", notifier_allows_when_empty=False),
    V6_8.but("mutant-lp-flag-cleared-on-offline", "the per-CPU LP flag cleared on CPU "
             "offline, so the next online runs LP.INIT again",
             "design hazard: tdx_cpu_enable (tdx_lp_initialized)",
             lp_flag_survives_offline=False),
    # Every other rule v6.8 keeps, switched: the gate then runs both sides of each switch.
    V6_8.but("mutant-s3-left-enabled", "tdx_init leaves ACPI S3 possible with TDX on",
             "design hazard: tdx_init (acpi_suspend_lowlevel)", tdx_init_disables_s3=False),
    V6_8.but("mutant-hibernation-allowed", "tdx_init leaves hibernation possible with TDX on",
             "design hazard: tdx_init (hibernation check)", tdx_init_refuses_hibernation=False),
    V6_8.but("mutant-lp-init-after-failed-sysinit", "tdx_cpu_enable goes on to LP.INIT "
             "although TDH.SYS.INIT failed (its cached result is not checked)",
             "design hazard: try_init_module_global", cpu_enable_checks_global_result=False),
    V6_8.but("mutant-caller-skips-cpus", "a caller runs tdx_cpu_enable on some online CPUs "
             "only before tdx_enable", "design hazard: the tdx_enable caller contract",
             callers_enable_all_cpus=False),
    V6_8.but("mutant-cpus-unlocked-before-enable", "a caller drops cpus_read_lock between "
             "tdx_cpu_enable and tdx_enable", "design hazard: the tdx_enable caller contract",
             caller_holds_cpus_lock=False),
    V6_8.but("mutant-vmxoff-not-refcounted", "VMXOFF on a CPU when any VMX user leaves, not "
             "the last", "design hazard: VMX users of a CPU (KVM's hardware_disable)",
             vmx_refcounted=False),
    V6_8.but("mutant-error-retried", "tdx_enable retries init_tdx_module after a failure "
             "instead of returning -EINVAL", "design hazard: __tdx_enable (TDX_MODULE_ERROR)",
             error_is_final=False),
    V6_8.but("mutant-mutex-kept-on-failure", "tdx_enable keeps its mutex when init fails",
             "design hazard: tdx_enable (tdx_module_lock)", release_mutex_on_failure=False),
    V6_8.but("mutant-memlist-leaked-on-failure", "build_tdx_memlist keeps the entries it "
             "added when an allocation fails", "design hazard: build_tdx_memlist",
             memlist_failure_frees_partial=False),
    V6_8.but("mutant-pamts-leaked-on-alloc-failure", "tdmrs_set_up_pamt_all keeps the "
             "chunks it allocated when a later one fails",
             "design hazard: tdmrs_set_up_pamt_all", pamt_alloc_failure_frees_pamts=False),
    V6_8.but("mutant-pamts-leaked-on-rsvd-failure", "construct_tdmrs keeps the PAMTs when "
             "reserved areas run out", "design hazard: construct_tdmrs",
             rsvd_failure_frees_pamts=False),
    V6_8.but("mutant-pamts-leaked-on-config-failure", "a TDH.SYS.CONFIG failure unwinds "
             "past err_free_pamts", "design hazard: init_tdx_module unwinding labels",
             config_failure_frees_pamts=False),
    V6_8.but("mutant-key-config-in-parallel", "TDH.SYS.KEY.CONFIG issued on every package at "
             "once instead of one at a time", "design hazard: config_global_keyid",
             key_config_serial=False),
)

# Later kernels, each v6.8 with the rules it changed (the TDX host code read at the commit in
# `source`; the release is the first one that holds the change).
V6_14 = V6_8.but(
    "v6.14", "v6.14: the module's metadata read and check_features (NO_RBP_MOD required) come "
    "first, before any memory work, and return directly on failure",
    "arch/x86/virt/vmx/tdx/tdx.c at torvalds/linux 1260ed77798502de9c98020040d2995008de10cc "
    "(v6.15-rc1; the host code is v6.14's: x86_tdx_for_6.14-rc1)", kind="kernel",
    metadata_before_memory=True, requires_no_rbp_mod=True, checks_features=True,
    early_failures_return=True)
V6_18 = V6_14.but(
    "v6.18", "v6.18: kexec; each SEAMCALL marks its CPU's cache incoherent, KVM flushes a "
    "marked cache when it turns VMX off, kexec flushes what is marked and is refused on parts "
    "with the partial-write erratum, where alone the PAMTs are still reset on failure",
    "arch/x86/virt/vmx/tdx/tdx.c and arch/x86/include/asm/tdx.h at torvalds/linux "
    "a4a508df2aa34f8650afde54ea804321c618f45f (v6.18: x86_tdx_for_6.18-rc1)", kind="kernel",
    marks_cache_incoherent=True, flushes_cache_on_vmx_off=True, kexec_enabled=True,
    kexec_refused_on_erratum=True, reset_pamts_only_on_erratum=True)
V7_1 = V6_18.but(
    "v7.1", "v7.1: tdx_enable runs once, as an initcall at boot, after registering CPU-hotplug "
    "callbacks (online: VMX and tdx_cpu_enable; offline: refused while guest KeyIDs are in use "
    "and the CPU is its package's last); KVM only uses an initialised module",
    "arch/x86/virt/vmx/tdx/tdx.c at torvalds/linux 0eaed89c18aeedf0898baf2dbf5ff027c6795152 "
    "(v7.2-rc; the boot-time init is v7.1's: x86_tdx_for_7.1-rc1 and the 'KVM: x86/tdx: Do "
    "VMXON and TDX-Module initialization during subsys init' series)", kind="kernel",
    init_at_boot=True, offline_veto_with_keyids=True)
V7_2 = V7_1.but(
    "v7.2", "v7.2: runtime update of the TDX module through the P-SEAMLDR (seamldr.c): under "
    "stop_machine, TDH.SYS.SHUTDOWN (then not initialised, CPU flags cleared), the install on "
    "every CPU, tdx_cpu_enable again, TDH.SYS.UPDATE; the TDMRs and PAMTs are handed over; a "
    "failure stops every CPU and nothing is rolled back",
    "arch/x86/virt/vmx/tdx/seamldr.c at torvalds/linux b2128290c29902315e632ea59e0504d6bc9e9b42 "
    "and tdx.c at 0eaed89c18aeedf0898baf2dbf5ff027c6795152 (v7.2: merged by b0820861 "
    "'x86_tdx_for_7.2-rc1')", kind="kernel",
    runtime_update=True, shutdown_resets_module_state=True, shutdown_clears_lp_flags=True,
    update_aborts_on_failure=True, update_keeps_pamts=True)
LATER_KERNELS: tuple[Profile, ...] = (V6_14, V6_18, V7_1, V7_2)

# Design hazards of the runtime update, each v7.2 with one rule switched.
UPDATE_HAZARDS: tuple[Profile, ...] = (
    V7_2.but("mutant-update-keeps-initialized", "TDH.SYS.SHUTDOWN leaves the module marked "
             "initialised and TDH.SYS.INIT cached", "design hazard: tdx_module_shutdown",
             shutdown_resets_module_state=False),
    V7_2.but("mutant-update-keeps-lp-flags", "TDH.SYS.SHUTDOWN leaves every CPU's "
             "tdx_lp_initialized set, so no CPU runs LP.INIT for the new module",
             "design hazard: tdx_module_shutdown", shutdown_clears_lp_flags=False),
    V7_2.but("mutant-update-hangs-on-failure", "after a failed update step the other CPUs "
             "wait for a state that never comes", "design hazard: do_seamldr_install_module "
             "(the num_failed test of 'Abort updates after a failed step')",
             update_aborts_on_failure=False),
    V7_2.but("mutant-update-failure-frees-pamts", "a failed update unwinds as a failed init: "
             "WBINVD, PAMT reset and free", "design hazard: seamldr_install_module (no "
             "rollback: the PAMTs stay the module's)", update_keeps_pamts=False),
)

# The hazard of v6.14's early returns, v6.14 with that rule switched.
EARLY_RETURN_HAZARD = V6_14.but(
    "mutant-early-failure-unwinds", "a failed metadata read or feature check unwinds through "
    "err_free_tdxmem as a failure after get_online_mems does, so out_put_tdxmem releases a "
    "memory-hotplug lock never taken", "design hazard: init_tdx_module (v6.14's returns "
    "before get_online_mems)", early_failures_return=False)

# The hazard of v6.14 without its feature check (a backport that drops check_features keeps the
# kernel's reliance on NO_RBP_MOD): only a module without it, `old-module`, shows it.
FEATURE_CHECK_HAZARD = V6_14.but(
    "mutant-feature-check-dropped", "init_tdx_module without check_features: a module without "
    "NO_RBP_MOD, whose SEAMCALLs clobber the frame pointer this kernel relies on, is "
    "initialised and used", "design hazard: check_features (v6.14)", checks_features=False)

PROFILES: dict[str, Profile] = {p.name: p for p in (
    V6_8,
    *LATER_KERNELS,
    V6_8.but("cmr-holes", "v6.8 with holes taken from CMRs instead of memblock",
             "LKML v8 2024-11-13 'x86/virt/tdx: Reduce TDMR's reserved areas by using CMRs to "
             "find memory holes'", kind="variant", holes=HOLES_CMR),
    V6_8.but("dpamt", "v6.8 with the TDMR part of Dynamic PAMT: on a module that has it, the "
             "4K PAMT of each TDMR is a bitmap of the module's bits per 4K page, rounded up to "
             "4 KiB (1 bit: about 100x less PAMT); the 2M and 1G PAMTs are unchanged",
             "LKML 'TDX: Enable Dynamic PAMT' v3 2025-09-18 (Kirill Shutemov, Rick Edgecombe), "
             "patches 03 'Simplify tdmr_get_pamt_sz()' and 04 'Allocate page bitmap for "
             "Dynamic PAMT'; in no release up to v7.2", kind="variant", pamt_4k_bitmap=True),
    *BUGS,
    EARLY_RETURN_HAZARD,
    FEATURE_CHECK_HAZARD,
    *UPDATE_HAZARDS,
)}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise KeyError(f"unknown profile {name!r} (known: {known})") from None
