"""The state of the flow model (`spec.flow`) and the names of its values.

A state is an immutable tuple tree: `State` holds the kernel's globals, the module's state, the
resources init allocated and the environment; `Package` and `Cpu` hold what is per package and
per logical CPU; `Caller` is one KVM-like user. History that invariants need is kept as
saturating counters (0, 1, "2 or more") and flags, never as unbounded counts.
"""

from __future__ import annotations

from typing import NamedTuple

# Module status as the kernel keeps it (`enum tdx_module_status_t`).
UNINITIALIZED, INITIALIZED, ERROR = 0, 1, 2
STATUS_NAMES = ("UNINITIALIZED", "INITIALIZED", "ERROR")

# Where the profile runs `tdx_enable` at boot (`init_at_boot`, v7.1 on), this caller is the
# initcall; every other caller is KVM (`StateSpace.kvm_callers`).
INITCALL = 0

# Caller program counter.
IDLE = 0  # not loaded (or its load failed / it unloaded)
CHECKED = 1  # checked the packages, has not taken cpus_read_lock yet (only with that bug)
ENABLING = 2  # IPIs its CPUs; calls tdx_enable once no CPU is left to visit
IN_IPI = 3  # its tdx_cpu_enable is pending on some CPU (a frame on that CPU)
IN_TDX = 4  # holds the tdx_enable mutex and runs init_tdx_module
LOADED = 5  # tdx_enable returned 0; VMX stays on until unload
FAILED = 6  # tdx_cpu_enable or tdx_enable returned an error; the load unwinds next
HOLDING_CPUS_LOCK = frozenset((ENABLING, IN_IPI, IN_TDX, FAILED))
CALLER_PC_NAMES = ("idle", "checked", "enabling", "in-ipi", "in-tdx-enable", "loaded", "failed")

# Next step of init_tdx_module for the mutex owner, in the kernel's order, then the unwinding
# labels in fall-through order. S_RETURN: a failure with nothing to unwind returns at once
# (v6.14's metadata read and feature check, before get_online_mems).
(S_NONE, S_MEMLIST, S_SYSINFO, S_TDMR_LIST, S_CONSTRUCT, S_CONFIG, S_KEYS_BEGIN, S_KEYS,
 S_TDMRS, S_DONE, S_ERR_WBINVD, S_ERR_RESET, S_ERR_FREE_PAMTS, S_ERR_FREE_TDMRS,
 S_ERR_FREE_MEMLIST, S_OUT, S_FEATURES, S_RETURN) = range(18)
STEP_NAMES = ("-", "build_tdx_memlist", "get_tdx_tdmr_sysinfo", "alloc_tdmr_list",
              "construct_tdmrs", "config_tdx_module", "config_global_keyid: begin",
              "config_global_keyid", "init_tdmrs", "done", "err_reset_pamts: wbinvd",
              "tdmrs_reset_pamt_all", "err_free_pamts", "err_free_tdmrs", "err_free_tdxmem",
              "out_put_tdxmem", "check_features", "return")

# PAMT chunk facts, one bit each.
PAMT_ALLOCATED = 1  # allocated to hold a PAMT and not freed since
PAMT_HANDED = 2  # given to the module by TDH.SYS.CONFIG
PAMT_WRITTEN = 4  # may hold data the module wrote with the global KeyID (not reset since)
PAMT_KERNEL_DIRTY = 8  # caches may hold kernel (KeyID 0) lines of it, not written back
PAMT_GLOBAL_DIRTY = 16  # caches may hold global-KeyID lines of it, not written back
PAMT_FREED = 32  # returned to the page allocator
PAMT_FREED_TWICE = 64  # returned to the page allocator more than once
PAMT_BIT_NAMES = ((PAMT_ALLOCATED, "allocated"), (PAMT_HANDED, "handed"),
                  (PAMT_WRITTEN, "module-written"), (PAMT_KERNEL_DIRTY, "kernel-dirty"),
                  (PAMT_GLOBAL_DIRTY, "global-dirty"), (PAMT_FREED, "freed"),
                  (PAMT_FREED_TWICE, "freed-twice"))

# Other memory init_tdx_module allocates, one bit each while it is held (`State.resources`).
RES_TDMR_LIST = 1  # the TDMR array (alloc_tdmr_list)
RES_CONFIG_BUF = 2  # config_tdx_module's array of TDMR addresses
RES_CPUMASK = 4  # config_global_keyid's mask of packages done
RES_MEMLIST_PARTIAL = 8  # a partly built tdx_memlist left behind by a failed build
RES_BAD_FREE = 16  # something was freed (or unlocked) that was not held (a double free)
# The memory-hotplug read lock (get_online_mems), held by init_tdx_module. Traces show it
# through the steps that take and release it (build_tdx_memlist, init_tdx_module), so that
# the corpus's recorded traces stay what they were before the model tracked it.
RES_MEMS_LOCK = 32
RESOURCE_NAMES = ((RES_TDMR_LIST, "tdmr-list"), (RES_CONFIG_BUF, "config-buffer"),
                  (RES_CPUMASK, "cpumask"), (RES_MEMLIST_PARTIAL, "partial-memlist"),
                  (RES_BAD_FREE, "bad-free"))
TRANSIENT_RESOURCES = RES_CONFIG_BUF | RES_CPUMASK | RES_MEMLIST_PARTIAL | RES_MEMS_LOCK

# KEY.CONFIG progress of a CPU within one config_global_keyid run.
KEY_NONE, KEY_IN_FLIGHT, KEY_SENT = 0, 1, 2

MC_PAMT_PAGE, MC_KERNEL_PAGE = "PAMT page", "kernel page"

# A runtime module update (v7.2, `spec.seamldr`): none yet, the state stop_machine's CPUs are
# in (seamldr.c's module_update_state), then how it ended. UPDATE_HUNG: a step failed and the
# CPUs wait for the others for ever (only where failures do not stop every CPU).
(UPDATE_NONE, UPDATE_SHUTDOWN, UPDATE_CPU_INSTALL, UPDATE_CPU_INIT, UPDATE_RUN, UPDATE_DONE,
 UPDATE_FAILED, UPDATE_HUNG) = range(8)
UPDATE_NAMES = ("-", "SHUTDOWN", "CPU_INSTALL", "CPU_INIT", "RUN_UPDATE", "done", "failed",
                "hung")
UPDATE_RUNNING = frozenset((UPDATE_SHUTDOWN, UPDATE_CPU_INSTALL, UPDATE_CPU_INIT, UPDATE_RUN,
                            UPDATE_HUNG))


class Cpu(NamedTuple):
    online: bool
    vmx: int  # bitmask of actors that did VMXON here; the CPU is in VMX operation iff non-zero
    lp_flag: bool  # the kernel's per-CPU tdx_lp_initialized
    lp_done: bool  # TDH.SYS.LP.INIT has succeeded on this CPU (the module's view)
    frames: tuple[int, ...]  # actors whose tdx_cpu_enable awaits LP.INIT here, innermost last
    visited: int  # bitmask of callers whose enable IPI already ran here in their current load,
    # and of the module update whose stop_machine work of the present state is done here
    key: int  # KEY_NONE / KEY_IN_FLIGHT / KEY_SENT in the current config_global_keyid
    lines: bool  # its cache may hold lines of TDX memory: a SEAMCALL ran here, no WBINVD since
    incoherent: bool  # the kernel's per-CPU cache_state_incoherent flag (v6.18)


class Package(NamedTuple):
    keyed: bool  # the module has this package's global key (a TDH.SYS.KEY.CONFIG succeeded)
    cpus: tuple[Cpu, ...]


class Caller(NamedTuple):
    pc: int
    loads_left: int


class State(NamedTuple):
    booted: bool  # tdx_init has run
    hibernation: bool  # the kernel can hibernate (no `nohibernate`)
    tdx_on: bool  # platform_tdx_enabled()
    s3_off: bool  # ACPI S3 disabled by tdx_init
    s3_entered: bool  # the machine went to S3 this boot
    hibernated: bool  # the machine hibernated this boot
    sysinit_done: bool  # try_init_module_global's cached flag
    sysinit_ret: int  # its cached (or last) result
    sysinit_issues: int  # TDH.SYS.INIT issued (saturating at 2)
    module: int  # the module's global state (`spec.module`)
    status: int  # tdx_module_status
    mutex: int  # actor holding the tdx_enable mutex, -1 if free
    step: int  # next init_tdx_module step of the mutex owner
    init_err: int  # errno init_tdx_module will return while it unwinds
    first_err: int  # errno of the first step of this init run that failed (an observer's note)
    init_runs: int  # init_tdx_module started (saturating at 2)
    memblock: int  # bitmask of hot blocks that memblock holds
    snapshot: int  # memblock mask the kept tdx_memlist was built from, -1 if empty
    resources: int  # RES_* bits: other memory init holds
    tdmr_cursor: int  # TDMR that init_tdmrs works on
    tdmr_done: tuple[int, ...]  # successful TDH.SYS.TDMR.INIT calls per TDMR (the module's)
    pamt: tuple[int, ...]  # PAMT chunk facts per TDMR
    faults: int  # faults injected so far
    hot: tuple[bool, ...]  # hot block online
    hotplug_busy: bool  # a CPU coming online is running tdx_cpu_enable
    kexeced: bool  # the machine kexec'd into the next kernel: this boot is over
    guest_keyids: int  # guest KeyIDs allocated (a TD exists; saturating at 1, v7.1)
    update: int  # UPDATE_*: the runtime module update (v7.2)
    callers: tuple[Caller, ...]  # the last two fields: see `spec.statespace`
    packages: tuple[Package, ...]


class Step(NamedTuple):
    """One transition's label. `seamcall`/`result` are None for steps that issue none."""

    action: str
    actor: str
    cpu: int | None = None
    seamcall: str | None = None
    result: str | None = None
    injected: bool = False
    detail: str = ""


def pamt_describe(chunk: int) -> str:
    return "+".join(name for bit, name in PAMT_BIT_NAMES if chunk & bit) or "none"


def resources_describe(resources: int) -> str:
    return "+".join(name for bit, name in RESOURCE_NAMES if resources & bit) or "none"
