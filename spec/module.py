"""The TDX module as its own state machine: which host-init SEAMCALL it accepts in which state,
what a successful call changes, and the status it answers otherwise.

Written from the public TDX module 1.5 source (its SEAMCALL dispatcher and the TDH.SYS.*
handlers). The kernel flow (`spec.flow`) asks the module for every SEAMCALL it issues; the
module answers from its own state, never from the kernel's bookkeeping, so a kernel that calls
out of order gets the refusal the real module would give. Its state is small:

- the global state: SYSINIT_PENDING -> SYSINIT_DONE (TDH.SYS.INIT) -> SYSCONFIG_DONE
  (TDH.SYS.CONFIG) -> SYS_READY (the last package's TDH.SYS.KEY.CONFIG); or LOST once the
  module is gone (no module loaded: VMfailInvalid; SEAM not enabled: #GP);
- per logical CPU, whether TDH.SYS.LP.INIT succeeded there (`Cpu.lp_done` in the flow);
- per package, whether its global key is configured (`Package.keyed`);
- per TDMR, how many TDH.SYS.TDMR.INIT calls succeeded (`State.tdmr_done`).

A runtime update (v7.2) adds SYS_SHUTDOWN: TDH.SYS.SHUTDOWN takes a ready module there, where
it answers every leaf with TDX_SYS_SHUTDOWN. Once the P-SEAMLDR has installed a new module on
every CPU, the new one starts in SYSINIT_PENDING with no CPU initialised; after TDH.SYS.INIT and
LP.INIT on every CPU, TDH.SYS.UPDATE imports the old module's handoff (TDMRs, PAMTs, keys) and
makes it ready with no CONFIG, KEY.CONFIG or TDMR.INIT. The P-SEAMLDR's own checks are not
modelled: the kernel asks it to install only after a successful shutdown.

A failed call (a transient error, or a refusal) changes nothing: the module keeps its state, so
for instance a failed TDH.SYS.INIT may be retried as far as the module is concerned. Locks are
tried once and never waited for, so a second TDH.SYS.KEY.CONFIG while one runs is refused busy.
"""

from __future__ import annotations

from spec.seamcall import (
    GP,
    P_SEAMLDR_INSTALL,
    TDH_PHYMEM_PAGE_RDMD,
    TDH_SYS_CONFIG,
    TDH_SYS_INIT,
    TDH_SYS_KEY_CONFIG,
    TDH_SYS_LP_INIT,
    TDH_SYS_RD,
    TDH_SYS_SHUTDOWN,
    TDH_SYS_TDMR_INIT,
    TDH_SYS_UPDATE,
    VMFAIL_INVALID,
)

SYSINIT_PENDING, SYSINIT_DONE, SYSCONFIG_DONE, SYS_READY, LOST_VMFAIL, LOST_GP, SYS_SHUTDOWN \
    = range(7)
STATE_NAMES = ("SYSINIT_PENDING", "SYSINIT_DONE", "SYSCONFIG_DONE", "SYS_READY",
               "lost (VMfailInvalid)", "lost (#GP)", "SYS_SHUTDOWN")
_LOST = {LOST_VMFAIL: VMFAIL_INVALID, LOST_GP: GP}

# Refusal statuses, with the codes the module returns.
TDX_SYS_BUSY = "TDX_SYS_BUSY"
TDX_SYS_INIT_NOT_PENDING = "TDX_SYS_INIT_NOT_PENDING"
TDX_SYS_LP_INIT_NOT_DONE = "TDX_SYS_LP_INIT_NOT_DONE"
TDX_SYS_LP_INIT_DONE = "TDX_SYS_LP_INIT_DONE"
TDX_SYS_NOT_READY = "TDX_SYS_NOT_READY"
TDX_SYS_KEY_CONFIG_NOT_PENDING = "TDX_SYS_KEY_CONFIG_NOT_PENDING"
TDX_SYS_LP_INIT_NOT_PENDING = "TDX_SYS_LP_INIT_NOT_PENDING"
TDX_SYS_CONFIG_NOT_PENDING = "TDX_SYS_CONFIG_NOT_PENDING"
TDX_KEY_CONFIGURED = "TDX_KEY_CONFIGURED"
TDX_TDMR_ALREADY_INITIALIZED = "TDX_TDMR_ALREADY_INITIALIZED"
TDX_OPERAND_ADDR_RANGE_ERROR = "TDX_OPERAND_ADDR_RANGE_ERROR"
TDX_SYS_SHUTDOWN = "TDX_SYS_SHUTDOWN"
TDX_SYS_STATE_INCORRECT = "TDX_SYS_STATE_INCORRECT"

STATUS_CODES = {
    TDX_SYS_BUSY: 0x8000020200000000,
    TDX_SYS_INIT_NOT_PENDING: 0xC000050000000000,
    TDX_SYS_LP_INIT_NOT_DONE: 0xC000050200000000,
    TDX_SYS_LP_INIT_DONE: 0xC000050300000000,
    TDX_SYS_NOT_READY: 0xC000050500000000,
    TDX_SYS_KEY_CONFIG_NOT_PENDING: 0xC000050700000000,
    TDX_SYS_LP_INIT_NOT_PENDING: 0xC000050B00000000,
    TDX_SYS_CONFIG_NOT_PENDING: 0xC000050C00000000,
    TDX_KEY_CONFIGURED: 0x0000081500000000,
    TDX_TDMR_ALREADY_INITIALIZED: 0x00000A0300000000,
    TDX_OPERAND_ADDR_RANGE_ERROR: 0xC000010100000001,
    TDX_SYS_SHUTDOWN: 0xC000050600000000,
    TDX_SYS_STATE_INCORRECT: 0xC000050800000000,
}
REFUSALS = frozenset(STATUS_CODES)

# Other host-side statuses of the module's public list: the model never answers them (they come
# from the platform checks of TDH.SYS.INIT and LP.INIT, the TDMR checks of TDH.SYS.CONFIG, ...),
# but a boot log may show them.
OTHER_STATUS_CODES = {
    "TDX_OPERAND_INVALID": 0xC000010000000000,
    "TDX_OPERAND_BUSY": 0x8000020000000000,
    "TDX_INCOMPATIBLE_SEAM_CAPABILITIES": 0xC000050D00000000,
    "TDX_KEY_GENERATION_FAILED": 0x8000080000000000,
    "TDX_KEY_STATE_INCORRECT": 0xC000081100000000,
    "TDX_INCORRECT_CPUID_VALUE": 0xC000090000000000,
    "TDX_BOOT_NT4_SET": 0xC000090100000000,
    "TDX_INCONSISTENT_CPUID_FIELD": 0xC000090200000000,
    "TDX_CPUID_MAX_SUBLEAVES_UNRECOGNIZED": 0xC000090300000000,
    "TDX_CPUID_LEAF_1F_FORMAT_UNRECOGNIZED": 0xC000090400000000,
    "TDX_INVALID_WBINVD_SCOPE": 0xC000090500000000,
    "TDX_INVALID_PKG_ID": 0xC000090600000000,
    "TDX_ENABLE_MONITOR_FSM_NOT_SET": 0xC000090700000000,
    "TDX_CPUID_LEAF_NOT_SUPPORTED": 0xC000090800000000,
    "TDX_SMRR_NOT_LOCKED": 0xC000091000000000,
    "TDX_INVALID_SMRR_CONFIGURATION": 0xC000091100000000,
    "TDX_SMRR_OVERLAPS_CMR": 0xC000091200000000,
    "TDX_SMRR_LOCK_NOT_SUPPORTED": 0xC000091300000000,
    "TDX_SMRR_NOT_SUPPORTED": 0xC000091400000000,
    "TDX_INCONSISTENT_MSR": 0xC000092000000000,
    "TDX_INCORRECT_MSR_VALUE": 0xC000092100000000,
    "TDX_SEAMREPORT_NOT_AVAILABLE": 0xC000093000000000,
    "TDX_INVALID_TDMR": 0xC0000A0000000000,
    "TDX_NON_ORDERED_TDMR": 0xC0000A0100000000,
    "TDX_TDMR_OUTSIDE_CMRS": 0xC0000A0200000000,
    "TDX_INVALID_PAMT": 0xC0000A1000000000,
    "TDX_PAMT_OUTSIDE_CMRS": 0xC0000A1100000000,
    "TDX_PAMT_OVERLAP": 0xC0000A1200000000,
    "TDX_INVALID_RESERVED_IN_TDMR": 0xC0000A2000000000,
    "TDX_NON_ORDERED_RESERVED_IN_TDMR": 0xC0000A2100000000,
    "TDX_CMR_LIST_INVALID": 0xC0000A2200000000,
    "TDX_METADATA_FIELD_ID_INCORRECT": 0xC0000C0000000000,
    "TDX_METADATA_FIELD_NOT_READABLE": 0xC0000C0200000000,
}


def is_refusal(outcome: str | None) -> bool:
    """The outcome is the module refusing the call in its present state."""
    return outcome in REFUSALS


def lost_outcome(state: int) -> str | None:
    """What every SEAMCALL gets once the module is gone (None while it is there)."""
    return _LOST.get(state)


def lose(outcome: str) -> int:
    """The state after the module went away with this outcome (VMfailInvalid or #GP)."""
    return LOST_GP if outcome == GP else LOST_VMFAIL


def refusal(leaf: str, state: int, *, lp_done: bool, all_lps_done: bool = True,
            package_keyed: bool = False, key_busy: bool = False, tdmr_finished: bool = False,
            block_initialised: bool = True) -> str | None:
    """The status the module answers instead of running `leaf`, or None when it accepts it.

    `lp_done`: TDH.SYS.LP.INIT succeeded on the calling CPU; `all_lps_done`: on every CPU the
    firmware enumerated, online or not (TDH.SYS.CONFIG and TDH.SYS.UPDATE need them all);
    `package_keyed`: the calling CPU's package has its key; `key_busy`: another
    TDH.SYS.KEY.CONFIG is running; `tdmr_finished`: the TDMR named by TDH.SYS.TDMR.INIT is
    fully initialised;
    `block_initialised`: the page TDH.PHYMEM.PAGE.RDMD asks about lies in an initialised part
    of a TDMR. The module must not be lost (see `lost_outcome`).
    """
    if leaf == P_SEAMLDR_INSTALL:
        return None  # the loader's call, not the module's
    # A shut-down module's dispatcher refuses everything; before the module is ready it lets
    # only the init and update leaves through.
    if state == SYS_SHUTDOWN:
        return TDX_SYS_SHUTDOWN
    if state != SYS_READY and leaf in (TDH_SYS_TDMR_INIT, TDH_PHYMEM_PAGE_RDMD,
                                       TDH_SYS_SHUTDOWN):
        return TDX_SYS_NOT_READY
    if leaf == TDH_SYS_SHUTDOWN:
        return None
    if leaf == TDH_SYS_UPDATE:
        return None if state == SYSINIT_DONE and all_lps_done else TDX_SYS_STATE_INCORRECT
    if leaf == TDH_SYS_INIT:
        return None if state == SYSINIT_PENDING else TDX_SYS_INIT_NOT_PENDING
    if leaf == TDH_SYS_LP_INIT:
        if state != SYSINIT_DONE:
            return TDX_SYS_LP_INIT_NOT_PENDING
        return TDX_SYS_LP_INIT_DONE if lp_done else None
    if leaf == TDH_SYS_RD:
        return None if lp_done else TDX_SYS_LP_INIT_NOT_DONE
    if leaf == TDH_SYS_CONFIG:
        return None if state == SYSINIT_DONE and all_lps_done else TDX_SYS_CONFIG_NOT_PENDING
    if leaf == TDH_SYS_KEY_CONFIG:
        if key_busy:
            return TDX_SYS_BUSY
        if state != SYSCONFIG_DONE:
            return TDX_SYS_KEY_CONFIG_NOT_PENDING
        return TDX_KEY_CONFIGURED if package_keyed else None
    if leaf == TDH_SYS_TDMR_INIT:
        return TDX_TDMR_ALREADY_INITIALIZED if tdmr_finished else None
    if leaf == TDH_PHYMEM_PAGE_RDMD:
        return None if block_initialised else TDX_OPERAND_ADDR_RANGE_ERROR
    raise ValueError(f"the module model does not know {leaf}")


def state_after(leaf: str, state: int, *, all_keyed: bool = False) -> int:
    """The global state after `leaf` succeeded; `all_keyed`: every package has its key now."""
    if leaf == TDH_SYS_INIT:
        return SYSINIT_DONE
    if leaf == TDH_SYS_CONFIG:
        return SYSCONFIG_DONE
    if leaf == TDH_SYS_KEY_CONFIG and all_keyed:
        return SYS_READY
    if leaf == TDH_SYS_SHUTDOWN:
        return SYS_SHUTDOWN
    if leaf == TDH_SYS_UPDATE:
        return SYS_READY
    return state
