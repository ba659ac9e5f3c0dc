"""SEAMCALL leaves, the outcomes a SEAMCALL can have, and the errno each becomes.

Section 5 of the behaviour notes: `sc_retry` repeats a call while the module is out of entropy
(at most ten attempts), and `seamcall_prerr` maps what is left to an errno. The model treats a
whole retried call as one outcome, so "entropy exhausted" means all ten attempts failed.

An outcome is SUCCESS, one of the CPU's own faults (#UD outside VMX operation, #GP where SEAM is
not enabled, VMfailInvalid where no module is loaded), a transient module error, or a status by
which the module refuses a call in its present state (`spec.module`). Every module status the
kernel does not retry becomes -EIO.
"""

from __future__ import annotations

from spec.errno import EACCES, EIO, ENODEV, EOPNOTSUPP

TDH_PHYMEM_PAGE_RDMD = "TDH.PHYMEM.PAGE.RDMD"
TDH_SYS_KEY_CONFIG = "TDH.SYS.KEY.CONFIG"
TDH_SYS_INIT = "TDH.SYS.INIT"
TDH_SYS_RD = "TDH.SYS.RD"
TDH_SYS_LP_INIT = "TDH.SYS.LP.INIT"
TDH_SYS_TDMR_INIT = "TDH.SYS.TDMR.INIT"
TDH_SYS_CONFIG = "TDH.SYS.CONFIG"
# Host leaves beyond init, which a log may name (the runtime update uses the last two).
TDH_SYS_INFO = "TDH.SYS.INFO"
TDH_SYS_LP_SHUTDOWN = "TDH.SYS.LP.SHUTDOWN"
TDH_SYS_SHUTDOWN = "TDH.SYS.SHUTDOWN"
TDH_SYS_UPDATE = "TDH.SYS.UPDATE"
# The P-SEAMLDR's leaf that installs a new module on one CPU (v7.2's runtime update).
P_SEAMLDR_INSTALL = "P-SEAMLDR.INSTALL"

LEAF_NUMBERS = {
    TDH_PHYMEM_PAGE_RDMD: 24,
    TDH_SYS_KEY_CONFIG: 31,
    TDH_SYS_INIT: 33,
    TDH_SYS_RD: 34,
    TDH_SYS_LP_INIT: 35,
    TDH_SYS_TDMR_INIT: 36,
    TDH_SYS_CONFIG: 45,
    TDH_SYS_INFO: 32,
    TDH_SYS_LP_SHUTDOWN: 44,
    TDH_SYS_SHUTDOWN: 52,
    TDH_SYS_UPDATE: 53,
    P_SEAMLDR_INSTALL: 0x8000000000000001,
}

SUCCESS = "success"
VMFAIL_INVALID = "VMfailInvalid"  # no module loaded (or it went away)
GP = "#GP"  # SEAMCALL itself faults: SEAM is not enabled
UD = "#UD"  # the CPU is not in VMX operation
NO_ENTROPY = "entropy exhausted"  # TDX_RND_NO_ENTROPY on all 10 attempts
MODULE_ERROR = "error"  # any other transient module error (key generation failed, ...)

# Faults a fault budget may inject. VMfailInvalid and #GP take the module away for the rest of
# the boot (`spec.module.LOST_*`); the other two fail one call and leave the module as it was.
# #UD is never injected: it follows from the CPU's VMX state.
INJECTABLE = (VMFAIL_INVALID, GP, NO_ENTROPY, MODULE_ERROR)
CPU_FAULTS = frozenset((VMFAIL_INVALID, GP, UD))

# The software codes the kernel's SEAMCALL entry code returns for the CPU's own faults.
TDX_SEAMCALL_VMFAILINVALID = 0x8000FF00FFFF0000
TDX_SEAMCALL_GP = 0x8000FF000000000D
TDX_SEAMCALL_UD = 0x8000FF0000000006
TDX_RND_NO_ENTROPY = 0x8000020300000000
TDX_MODULE_ERROR_CODE = 0xC000010000000000  # a representative non-retryable error code

_ERRNO = {SUCCESS: 0, VMFAIL_INVALID: -ENODEV, GP: -EOPNOTSUPP, UD: -EACCES}


def seamcall_errno(outcome: str) -> int:
    """`seamcall_prerr`: 0 on success, the CPU faults' own errnos, -EIO for any module error
    (transient or a refusal)."""
    return _ERRNO.get(outcome, -EIO)


def seamcall_failed_message(leaf: str, code: int) -> str:
    """The line `seamcall_err` prints for an unexpected SEAMCALL error (the kernel then returns
    -EIO): leaf number and error code as 16-digit hex."""
    return f"SEAMCALL (0x{LEAF_NUMBERS[leaf]:016x}) failed: 0x{code:016x}"
