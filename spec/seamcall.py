"""SEAMCALL leaves, the outcomes the model lets a SEAMCALL have, and the errno each becomes.

Section 5 of the behaviour notes: `sc_retry` repeats a call while the module is out of entropy
(at most ten attempts), and `seamcall_prerr` maps what is left to an errno. The model treats a
whole retried call as one outcome, so "entropy exhausted" means all ten attempts failed.
"""

from __future__ import annotations

from spec.errno import EACCES, EIO, ENODEV

TDH_PHYMEM_PAGE_RDMD = "TDH.PHYMEM.PAGE.RDMD"
TDH_SYS_KEY_CONFIG = "TDH.SYS.KEY.CONFIG"
TDH_SYS_INIT = "TDH.SYS.INIT"
TDH_SYS_RD = "TDH.SYS.RD"
TDH_SYS_LP_INIT = "TDH.SYS.LP.INIT"
TDH_SYS_TDMR_INIT = "TDH.SYS.TDMR.INIT"
TDH_SYS_CONFIG = "TDH.SYS.CONFIG"

LEAF_NUMBERS = {
    TDH_PHYMEM_PAGE_RDMD: 24,
    TDH_SYS_KEY_CONFIG: 31,
    TDH_SYS_INIT: 33,
    TDH_SYS_RD: 34,
    TDH_SYS_LP_INIT: 35,
    TDH_SYS_TDMR_INIT: 36,
    TDH_SYS_CONFIG: 45,
}

SUCCESS = "success"
VMFAIL_INVALID = "VMfailInvalid"  # no module loaded
UD = "#UD"  # the CPU is not in VMX operation
NO_ENTROPY = "entropy exhausted"  # TDX_RND_NO_ENTROPY on all 10 attempts
MODULE_ERROR = "error"  # any other module error code

# Outcomes a fault budget may inject; #UD is never injected, it follows from the VMX state.
INJECTABLE = (VMFAIL_INVALID, NO_ENTROPY, MODULE_ERROR)

TDX_RND_NO_ENTROPY = 0x8000020300000000
TDX_MODULE_ERROR_CODE = 0xC000010000000000  # a representative non-retryable error code

_ERRNO = {SUCCESS: 0, VMFAIL_INVALID: -ENODEV, UD: -EACCES, NO_ENTROPY: -EIO,
          MODULE_ERROR: -EIO}


def seamcall_errno(outcome: str) -> int:
    """`seamcall_prerr`: 0 on success, else the errno the kernel returns for this outcome."""
    return _ERRNO[outcome]


def seamcall_failed_message(leaf: str, code: int) -> str:
    """The line `seamcall_err` prints for an unexpected SEAMCALL error (the kernel then returns
    -EIO): leaf number and error code as 16-digit hex."""
    return f"SEAMCALL (0x{LEAF_NUMBERS[leaf]:016x}) failed: 0x{code:016x}"
