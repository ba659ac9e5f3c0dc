"""What each TDX line of a boot log means, why it was printed and what to do about it.

Every line the TDX host code prints (v6.8's, later mainline kernels' and the out-of-tree kernels'
that the public logs come from), KVM's TDX line and the machine-check line about TDX memory is
matched to a message we know: the init stage that prints it, the SEAMCALL leaf, the TDX module's
status code decoded, the kernel errno, and the known causes and actions, each under a stable key
(`CAUSES`, `ACTIONS`). This needs no memory map: a log that only says why TDX failed is diagnosed
all the same. Where the model has rebuilt the TDMRs, `failed_tdmr_holes` names the e820 entries
behind every hole of the TDMR that ran out of reserved areas.

Leaf names and the status codes the module model answers come from `spec.seamcall` and
`spec.module`; the other status names and numbers here are those of the TDX module's public
error-code list (its 1.5 source). A status is 64 bits: bit 63 error, bit 62 non-recoverable,
bits 47:40 the class, 39:32 the code within it, 31:0 details (for operand errors, the operand).
The class descriptions are our summary of the codes each class holds in that list.
"""

from __future__ import annotations

import re
import textwrap
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from checker.inputs.readers import FirmwareEntry, LoggedFacts, LogLine, MachineInput
from spec.errno import (
    EACCES,
    EBUSY,
    EINVAL,
    EIO,
    ENODEV,
    ENOMEM,
    ENOSPC,
    EOPNOTSUPP,
    ERRNO_NAMES,
)
from spec.memory import SZ_1M
from spec.module import OTHER_STATUS_CODES, STATUS_CODES
from spec.seamcall import (
    LEAF_NUMBERS,
    TDH_PHYMEM_PAGE_RDMD,
    TDH_SYS_CONFIG,
    TDH_SYS_INIT,
    TDH_SYS_KEY_CONFIG,
    TDH_SYS_LP_INIT,
    TDH_SYS_RD,
    TDH_SYS_TDMR_INIT,
    TDX_RND_NO_ENTROPY,
    TDX_SEAMCALL_GP,
    TDX_SEAMCALL_UD,
    TDX_SEAMCALL_VMFAILINVALID,
)

FAILURE, WARNING, INFO = "failure", "warning", "info"

# --- causes and actions, by key -----------------------------------------------------------------

CAUSES = {
    "tdx-initialized": "The TDX module initialised: it took the TDMRs and their PAMTs, and TDs "
    "can run.",
    "module-not-loaded": "No TDX module is loaded: the first SEAMCALL ended in VMfailInvalid. "
    "The BIOS loads the module at boot through its SEAM loader; here it did not, because the "
    "SEAM loader option is off or the BIOS image carries no module.",
    "seam-not-enabled": "SEAMCALL raised #GP: the CPU's SEAM range is not enabled, so the BIOS "
    "did not finish enabling TDX (TDX or an option it needs is off, or the BIOS's own TDX checks "
    "failed), although it did set TDX KeyIDs aside.",
    "firmware-bug-seam": "The kernel had found TDX enabled by the BIOS before calling the "
    "module, yet SEAMCALL raised #GP: the BIOS enabled TDX inconsistently.",
    "silent-gp": "A SEAMCALL #GP at TDH.SYS.INIT (SEAM not enabled) makes v6.8 fail with "
    "-EOPNOTSUPP without printing a line of its own.",
    "not-vmx": "SEAMCALL raised #UD: the CPU was not in VMX operation (no VMXON) when the kernel "
    "called the module.",
    "module-1.0": "The module is TDX 1.0, which has no TDH.SYS.RD. v6.8 reads the module's "
    "metadata with it and compares no version, so its first read fails: v6.8 needs a TDX 1.5 "
    "module or later.",
    "module-too-old-for-cpu": "At TDH.SYS.INIT the module refused a CPUID value of this CPU: "
    "the module (or the BIOS that loads it) is older than this CPU and its microcode, or a BIOS "
    "setting changes what CPUID reports.",
    "platform-config-rejected": "The module's checks of the platform at TDH.SYS.INIT failed "
    "(CPUID, MSRs or the SMM range registers as the BIOS set them up).",
    "module-too-old-for-kernel": "The module does not know a metadata field this kernel reads: "
    "the module is older than the kernel needs.",
    "module-without-no-rbp-mod": "The module does not report NO_RBP_MOD (bit 18 of "
    "TDX_FEATURES0): it may clobber the frame pointer (RBP) across SEAMCALLs, so v6.14 and later "
    "refuse it.",
    "module-already-initialised": "TDH.SYS.INIT found the module already initialised: an "
    "earlier kernel of this boot (kexec) used it.",
    "module-shut-down": "The module has been shut down (for a runtime update or a kexec) and "
    "takes no more calls until one is installed again.",
    "memblock-holes": "v6.8 makes one reserved area for every gap between usable memory ranges "
    "inside a TDMR, plus one for each PAMT in it; the firmware map splits this TDMR into more "
    "pieces than the module allows reserved areas.",
    "too-many-tdmrs": "The memory map needs more TDMRs than the module supports: one 1 "
    "GiB-aligned TDMR for every memory range the previous TDMR does not cover.",
    "tdmrs-near-limit": "The memory map uses nearly all the TDMRs the module supports: a few "
    "more separate memory ranges would exhaust them.",
    "no-local-node": "No memory of this TDMR lies above its base on any node, so its PAMT is "
    "allocated on node 0.",
    "too-few-keyids": "The BIOS gave TDX fewer than 2 private KeyIDs: the module takes one as "
    "its global KeyID and TDs need the others.",
    "hibernation-enabled": "The kernel supports hibernation, which TDX memory cannot survive, "
    "so v6.8 turns TDX off.",
    "memory-notifier-failed": "The kernel could not register its memory-hotplug notifier, so it "
    "turns TDX off.",
    "pamt-alloc-failed": "An allocation failed, most likely the contiguous PAMT chunk of a TDMR "
    "(about 4 MiB per GiB of the TDMR); v6.8 prints no line of its own for it.",
    "cpus-offline-at-init": "A logical CPU the firmware enumerated was offline when the module "
    "was configured (maxcpus=, nr_cpus=, nosmt, or a CPU taken offline): TDH.SYS.CONFIG needs "
    "every one of them past TDH.SYS.LP.INIT, and none can join afterwards.",
    "package-offline-at-key-config": "A package had no online CPU when the global key was "
    "configured, so the module never became ready.",
    "tdmr-list-rejected": "The module refused the TDMR list the kernel built: a TDMR, PAMT or "
    "reserved area is outside convertible memory (the CMRs), misaligned, out of order or "
    "overlapping.",
    "entropy-exhausted": "The CPU's random number generator had no entropy (for a key or for "
    "the module's own use); this is transient.",
    "kernel-bug": "The kernel called the module out of order or concurrently: a kernel bug (the "
    "checker's flow invariants are about these).",
    "earlier-failure": "TDX was asked again after a failure in this boot: v6.8 does not retry "
    "and answers -EINVAL.",
    "machine-check-tdx-memory": "A machine check hit memory that belongs to TDX (a PAMT or TD "
    "page). On Sapphire and Emerald Rapids, a partial write by the kernel to such memory causes "
    "this.",
    "offline-last-cpu-of-package": "v7.1 and later refuse to take the last CPU of a package "
    "offline while TDs hold KeyIDs: the package's key must stay usable.",
    "kexec-erratum": "kexec and kdump are refused on CPUs with the TDX partial-write erratum "
    "(Sapphire and Emerald Rapids).",
    "init-not-requested": "Nothing asked for the module: v6.8 initialises it only when its user "
    "calls tdx_enable (KVM's TDX support: Ubuntu's 6.8-intel kvm_intel with tdx=1; mainline KVM "
    "from v6.16); v7.1 and later initialise it at boot.",
    "log-incomplete": "The log may stop before TDX was initialised (it was saved early, or "
    "filtered).",
    "unknown-status": "A status this checker does not know; its class says what kind of "
    "problem it is.",
    "failure-line-missing": "A SEAMCALL failed, but the line saying which is not in this log "
    "(it was cut or filtered, e.g. by grep).",
    "unknown-line": "A TDX line this checker does not know.",
}

ACTIONS = {
    "none": "Nothing to do: TDX is ready for TDs.",
    "bios-enable-tdx": "In the BIOS setup, enable Memory Encryption (TME), TME-MT "
    "(multi-tenant), a TME-MT/TDX key split that gives TDX KeyIDs, Trust Domain Extension (TDX) "
    "and the TDX SEAM loader (names vary by vendor).",
    "bios-enable-seam-loader": "Enable the TDX Secure Arbitration Mode loader (SEAM loader) in "
    "the BIOS: it loads the TDX module at boot.",
    "update-bios": "Update the BIOS, and with it the microcode and the TDX module it carries, to "
    "the vendor's latest release with TDX support.",
    "ask-vendor": "Ask the server vendor whether this BIOS carries a TDX module and supports TDX "
    "on this model.",
    "module-1.5": "Install a TDX 1.5 module or later (v6.8 needs 1.5), usually with a BIOS "
    "update that carries one.",
    "update-module": "Update the TDX module to a newer release, usually by updating the BIOS "
    "that loads it.",
    "kernel-cmr-holes": "Use a kernel that takes holes from the CMRs instead of every memblock "
    "gap: the patches 'x86/virt/tdx: Reduce TDMR's reserved areas by using CMRs to find memory "
    "holes' are in Ubuntu 24.04's linux-intel 6.8 kernels (canonical/tdx#415); they are not in "
    "mainline (dropped at v9 of the series, December 2024) nor in Ubuntu's 6.14-intel.",
    "bios-fewer-holes": "Ask the vendor for a BIOS whose memory map has fewer reserved or ACPI "
    "ranges between usable memory in this TDMR.",
    "bios-fewer-ranges": "A BIOS memory configuration with fewer, larger memory ranges needs "
    "fewer TDMRs; ask the vendor.",
    "collect-cmrs": "To see what CMR-derived holes would give: add the machine's `virt/tdx: CMR:` "
    "lines to this log (Ubuntu's linux-intel 6.8 kernels print them as TDX initialises, even when "
    "it then fails), or a `cmrs` list to a JSON map, and run `tdmr` again.",
    "collect-e820": "Save the boot log from its first line (`journalctl -k -b`, or `dmesg` soon "
    "after boot) with the BIOS-e820 and SRAT lines, and run `tdmr` on it: it rebuilds the TDMRs "
    "and names the e820 entries behind each hole.",
    "bios-keyid-split": "Raise the TME-MT/TDX key split in the BIOS so that TDX gets at least 2 "
    "KeyIDs.",
    "nohibernate": "Boot with `nohibernate` on the kernel command line (or use a kernel built "
    "without CONFIG_HIBERNATION).",
    "all-cpus-online": "Boot without maxcpus=, nr_cpus= or nosmt, and keep every CPU online "
    "until TDX has initialised.",
    "init-early": "Initialise TDX early, while large free chunks remain (kvm_intel with tdx=1 "
    "loaded at boot), and check with `tdmr` how much PAMT the machine needs.",
    "check-vmx": "Make sure Intel VT-x (VMX) is enabled in the BIOS; kvm_intel must do VMXON on "
    "every CPU before TDX is initialised.",
    "check-tdmr-layout": "Run `tdmr` on this machine's boot log: it checks the TDMR list against "
    "the layout invariants. Options such as memmap= or mem= can put memory outside the CMRs.",
    "report-kernel-bug": "Report it to the kernel's x86 TDX host maintainers with the whole log.",
    "reboot": "Reboot (cold, not kexec): the kernel does not retry within a boot.",
    "first-failure": "Look for the first failure earlier in the log: it is the cause.",
    "kvm-tdx-param": "On a kernel whose KVM supports TDX, load kvm_intel with tdx=1 "
    "(`kvm_intel.tdx=1` on the kernel command line).",
    "whole-log": "Look at the whole log around this line (`journalctl -k -b`).",
    "delete-tds-first": "Delete the TDs, or keep one CPU of the package online.",
    "no-kexec-on-erratum": "Reboot instead of using kexec on these CPUs.",
}

# --- SEAMCALL leaves and status codes ---------------------------------------------------------

LEAF_NAMES = {number: name for name, number in LEAF_NUMBERS.items()}

_LEAF_STAGES = {
    TDH_SYS_INIT: "tdx_cpu_enable -> try_init_module_global: TDH.SYS.INIT, the first SEAMCALL "
    "of the boot (its result is kept and never retried)",
    TDH_SYS_LP_INIT: "tdx_cpu_enable: TDH.SYS.LP.INIT on one CPU",
    TDH_SYS_RD: "init_tdx_module -> get_tdx_tdmr_sysinfo: TDH.SYS.RD of the module's TDMR "
    "limits (v6.14+: get_tdx_sys_info, before any memory work)",
    TDH_SYS_CONFIG: "init_tdx_module -> config_tdx_module: TDH.SYS.CONFIG with the TDMR list "
    "and the global KeyID",
    TDH_SYS_KEY_CONFIG: "init_tdx_module -> config_global_keyid: TDH.SYS.KEY.CONFIG on one CPU "
    "of each package",
    TDH_SYS_TDMR_INIT: "init_tdx_module -> init_tdmrs: TDH.SYS.TDMR.INIT",
    TDH_PHYMEM_PAGE_RDMD: "machine-check handling: TDH.PHYMEM.PAGE.RDMD",
}


_SOFTWARE_CODES = {"TDX_SEAMCALL_VMFAILINVALID": TDX_SEAMCALL_VMFAILINVALID,
                   "TDX_SEAMCALL_GP": TDX_SEAMCALL_GP, "TDX_SEAMCALL_UD": TDX_SEAMCALL_UD}
_STATUS_MASK = 0xFFFF_FFFF_0000_0000
_MODULE_CODES = STATUS_CODES | OTHER_STATUS_CODES | {"TDX_RND_NO_ENTROPY": TDX_RND_NO_ENTROPY}
_BY_CODE = {code & _STATUS_MASK: name for name, code in _MODULE_CODES.items()}
_BY_SOFTWARE_CODE = {code: name for name, code in _SOFTWARE_CODES.items()}

_CLASSES = {
    0x00: "general: TD and vCPU fatal states, interrupted calls",
    0x01: "operands: an input operand is invalid (the details name it)",
    0x02: "busy resources and entropy (may succeed when retried)",
    0x03: "page metadata (PAMT entries)",
    0x04: "TD private pages",
    0x05: "TDX module state: a host-init call out of order, or refused in this state",
    0x06: "TD life cycle",
    0x07: "vCPU state",
    0x08: "keys and KeyIDs",
    0x09: "platform checks at module init: CPUID, MSRs, SMM range registers",
    0x0A: "TDMR, PAMT and CMR configuration",
    0x0B: "Secure EPT",
    0x0C: "metadata fields",
    0x0D: "service TDs",
    0x0E: "TD migration",
    0x10: "attestation (CPUSVN, reports)",
    0x11: "TD partitioning (L2 VMs)",
    0xFF: "reserved for the OS: the kernel's own codes for a SEAMCALL that faulted (#GP, #UD) "
    "or found no module (VMfailInvalid)",
}
_OPERANDS = {0: "RAX", 1: "RCX", 2: "RDX", 3: "RBX", 5: "RBP", 6: "RSI", 7: "RDI",
             **{n: f"R{n}" for n in range(8, 16)}}

_STATUS_MEANINGS = {
    "TDX_SYS_BUSY": "another host-init call holds the module's lock (the module never waits)",
    "TDX_SYS_INIT_NOT_PENDING": "TDH.SYS.INIT was done already in this module's lifetime",
    "TDX_SYS_LP_INIT_NOT_DONE": "this CPU has not done TDH.SYS.LP.INIT",
    "TDX_SYS_LP_INIT_DONE": "this CPU did TDH.SYS.LP.INIT already",
    "TDX_SYS_NOT_READY": "the module lets only its init calls through until every package has "
    "its key; a TDX 1.0 module, which has no TDH.SYS.RD, answers this to it",
    "TDX_SYS_KEY_CONFIG_NOT_PENDING": "no key configuration is expected now (before "
    "TDH.SYS.CONFIG, or after every package has its key)",
    "TDX_SYS_LP_INIT_NOT_PENDING": "TDH.SYS.LP.INIT is taken only between TDH.SYS.INIT and "
    "TDH.SYS.CONFIG",
    "TDX_SYS_CONFIG_NOT_PENDING": "TDH.SYS.CONFIG needs TDH.SYS.INIT done, no earlier "
    "TDH.SYS.CONFIG, and every logical CPU of the platform past TDH.SYS.LP.INIT",
    "TDX_KEY_CONFIGURED": "this package's key is configured already",
    "TDX_TDMR_ALREADY_INITIALIZED": "this TDMR is fully initialised already",
    "TDX_OPERAND_ADDR_RANGE_ERROR": "an address operand is outside what the call accepts",
    "TDX_OPERAND_INVALID": "an input operand is invalid",
    "TDX_OPERAND_BUSY": "something the call needs is in use by another call",
    "TDX_RND_NO_ENTROPY": "the CPU's random number generator had no entropy, 10 times over",
    "TDX_KEY_GENERATION_FAILED": "the CPU could not generate the key (no entropy)",
    "TDX_SYS_SHUTDOWN": "the module has been shut down",
    "TDX_INCORRECT_CPUID_VALUE": "a CPUID value of this CPU is not one the module accepts",
    "TDX_INCONSISTENT_CPUID_FIELD": "CPUID differs between CPUs",
    "TDX_INCONSISTENT_MSR": "an MSR differs between CPUs",
    "TDX_INCORRECT_MSR_VALUE": "an MSR does not hold the value the module needs",
    "TDX_SMRR_NOT_LOCKED": "the SMM range registers are not locked",
    "TDX_SMRR_OVERLAPS_CMR": "SMM memory overlaps convertible memory",
    "TDX_INVALID_TDMR": "a TDMR is invalid (not 1 GiB aligned or sized)",
    "TDX_NON_ORDERED_TDMR": "the TDMRs are not in ascending order",
    "TDX_TDMR_OUTSIDE_CMRS": "a TDMR's memory is not all convertible (outside the CMRs)",
    "TDX_INVALID_PAMT": "a PAMT is misaligned or of the wrong size",
    "TDX_PAMT_OUTSIDE_CMRS": "a PAMT lies outside convertible memory",
    "TDX_PAMT_OVERLAP": "a PAMT overlaps another PAMT, or TDMR memory not reserved for it",
    "TDX_INVALID_RESERVED_IN_TDMR": "a reserved area of a TDMR is invalid",
    "TDX_NON_ORDERED_RESERVED_IN_TDMR": "a TDMR's reserved areas are not in ascending order",
    "TDX_CMR_LIST_INVALID": "the CMR list is invalid",
    "TDX_METADATA_FIELD_ID_INCORRECT": "the metadata field is unknown to this module",
    "TDX_METADATA_FIELD_NOT_READABLE": "the metadata field cannot be read",
    "TDX_SEAMCALL_VMFAILINVALID": "no module is loaded (the SEAMCALL ended in VMfailInvalid)",
    "TDX_SEAMCALL_GP": "SEAMCALL raised #GP: SEAM is not enabled",
    "TDX_SEAMCALL_UD": "SEAMCALL raised #UD: the CPU is not in VMX operation",
}

_KERNEL_BUG = (("kernel-bug",), ("report-kernel-bug",))
_STATUS_ADVICE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "TDX_SYS_CONFIG_NOT_PENDING": (("cpus-offline-at-init",), ("all-cpus-online",)),
    "TDX_SYS_LP_INIT_NOT_PENDING": (("cpus-offline-at-init",), ("all-cpus-online",)),
    "TDX_SYS_INIT_NOT_PENDING": (("module-already-initialised",), ("reboot",)),
    "TDX_RND_NO_ENTROPY": (("entropy-exhausted",), ("reboot",)),
    "TDX_KEY_GENERATION_FAILED": (("entropy-exhausted",), ("reboot",)),
    "TDX_INCORRECT_CPUID_VALUE": (("module-too-old-for-cpu",), ("update-bios",)),
    "TDX_SYS_SHUTDOWN": (("module-shut-down",), ("reboot",)),
    "TDX_SEAMCALL_VMFAILINVALID": (("module-not-loaded",), ("bios-enable-seam-loader",
                                                            "update-bios", "ask-vendor")),
    "TDX_SEAMCALL_GP": (("seam-not-enabled",), ("bios-enable-tdx", "update-bios")),
    "TDX_SEAMCALL_UD": (("not-vmx",), ("check-vmx",)),
}
_CLASS_ADVICE = {
    0x02: (("entropy-exhausted",), ("reboot",)),
    0x05: _KERNEL_BUG,
    0x09: (("platform-config-rejected",), ("update-bios", "ask-vendor")),
    0x0A: (("tdmr-list-rejected",), ("check-tdmr-layout", "report-kernel-bug")),
    0x0C: (("module-too-old-for-kernel",), ("update-module",)),
}
_METADATA_FIELDS = {0x9100000100000008: "MAX_TDMRS", 0x9100000100000009: "MAX_RESERVED_PER_TDMR",
                    0x9100000100000010: "PAMT_4K_ENTRY_SIZE",
                    0x9100000100000011: "PAMT_2M_ENTRY_SIZE",
                    0x9100000100000012: "PAMT_1G_ENTRY_SIZE", 0x0A00000300000008: "TDX_FEATURES0"}


def status_name(code: int) -> str | None:
    """The name of a 64-bit SEAMCALL status, from its class and code (bits 63:32), or of one of
    the kernel's own codes (matched whole)."""
    return _BY_SOFTWARE_CODE.get(code) or _BY_CODE.get(code & _STATUS_MASK)


def decode_status(code: int) -> dict[str, Any]:
    """A status split into its fields, with its name and meaning where known."""
    name = status_name(code)
    cls, details_l2 = (code >> 40) & 0xFF, code & 0xFFFF_FFFF
    out: dict[str, Any] = {
        "code": f"0x{code:016x}", "name": name,
        "meaning": _STATUS_MEANINGS.get(name or "", "not a status this checker knows"),
        "error": bool(code >> 63 & 1), "non_recoverable": bool(code >> 62 & 1),
        "class": cls, "class_meaning": _CLASSES.get(cls, "a class this checker does not know"),
        "details_l1": (code >> 32) & 0xFF, "details_l2": details_l2, "operand": None}
    if cls == 0x01 and details_l2 in _OPERANDS:
        out["operand"] = _OPERANDS[details_l2]
    return out


def _status_advice(code: int, leaf: int | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    name = status_name(code) or ""
    if name == "TDX_SYS_NOT_READY" and leaf == LEAF_NUMBERS[TDH_SYS_RD]:
        return ("module-1.0",), ("module-1.5",)
    if name == "TDX_SYS_NOT_READY" and leaf == LEAF_NUMBERS[TDH_SYS_TDMR_INIT]:
        return ("package-offline-at-key-config",), ("all-cpus-online",)
    if name in _STATUS_ADVICE:
        return _STATUS_ADVICE[name]
    if name in STATUS_CODES or name.startswith("TDX_OPERAND"):
        return _KERNEL_BUG
    return _CLASS_ADVICE.get((code >> 40) & 0xFF, (("unknown-status",),
                                                   ("whole-log", "report-kernel-bug")))


# --- kernel errnos -----------------------------------------------------------------------------

_ERRNO_MEANINGS = {
    EIO: "a SEAMCALL returned an error status of the module",
    ENODEV: "no TDX module is loaded (VMfailInvalid), or TDX is not enabled",
    EOPNOTSUPP: "SEAMCALL raised #GP: SEAM is not enabled",
    EACCES: "SEAMCALL raised #UD: the CPU was not in VMX operation",
    ENOSPC: "TDMRs or reserved areas exhausted",
    ENOMEM: "an allocation failed (the TDMR list, a PAMT chunk or a CPU mask)",
    EINVAL: "TDX already failed in this boot, or (v6.14+) the module lacks NO_RBP_MOD",
    EBUSY: "refused while in use",
}
_ERRNO_ADVICE = {
    EIO: (("failure-line-missing",), ("whole-log",)),
    ENODEV: (("module-not-loaded",), ("bios-enable-seam-loader", "update-bios")),
    EOPNOTSUPP: (("silent-gp",), ("bios-enable-tdx", "update-bios")),
    EACCES: (("not-vmx",), ("check-vmx",)),
    ENOSPC: (("memblock-holes", "too-many-tdmrs"), ("collect-e820",)),
    ENOMEM: (("pamt-alloc-failed",), ("init-early",)),
    EINVAL: (("earlier-failure",), ("first-failure",)),
}


def errno_json(errno: int, meaning: str | None = None) -> dict[str, Any]:
    """A negative errno with its name and what it means in TDX host init (or, for a line
    outside host init, what the line says it means)."""
    return {"value": errno, "name": ERRNO_NAMES.get(-errno),
            "meaning": meaning or _ERRNO_MEANINGS.get(-errno,
                                                      "an errno TDX host init does not return")}


# --- the messages -------------------------------------------------------------------------------

V6_8, V6_14, V7_1 = "mainline v6.8 and later", "mainline v6.14 and later", "mainline v7.1 and later"
UBUNTU_6_8 = "Ubuntu's linux-intel 6.8 and Intel's earlier TDX kernels (out of tree)"
UBUNTU_6_14 = "Ubuntu's linux-intel 6.14 (out of tree)"
INTEL_OLD = "Intel's TDX host kernels before v6.8, e.g. the 6.5-based ones (out of tree)"
PRE_MERGE = "the TDX host series before it was merged, e.g. td-partitioning kernels (out of tree)"
KVM_OLD = "KVM's TDX support in Ubuntu's linux-intel and Intel's kernels (out of tree)"
OLD_PREFIX = "a kernel before v6.8 (out of tree: the `tdx:` prefix)"
GUEST = "a TD guest's kernel (mainline arch/x86/coco/tdx, `tdx:` prefix)"


@dataclass(frozen=True)
class Context:
    """What the input holds besides the lines: whether the diagnosis may point at the e820 map
    or the CMRs, and the kernel command line."""

    has_e820: bool = False
    has_cmrs: bool = False
    command_line: str | None = None


@dataclass(frozen=True)
class Message:
    """A line we know: its pattern, where it comes from and what it says. `explain` computes
    what depends on the line's numbers and on the lines before it."""

    key: str
    pattern: re.Pattern
    kernels: str
    stage: str
    severity: str
    meaning: str
    causes: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    errno: int | None = None
    leaf: int | None = None
    status: int | None = None
    errno_meaning: str | None = None
    explain: Callable[[re.Match, dict, list, Context], dict] | None = None


_P = r"(?:^|[\s\]])(?:virt/)?tdx: "
_SUCCESS_KEYS = ("module-initialized", "pamt-allocated")


def _keyids(m: re.Match, entry: dict, before: list, ctx: Context) -> dict:
    first, end = int(m[1]), int(m[2])
    count = end - first
    if count >= 2:
        return {"meaning": f"The BIOS gave TDX the private KeyIDs {first} to {end - 1} "
                f"({count}): KeyID {first} becomes the module's global KeyID and {count - 1} "
                "are left for TDs. TME-MT and a TDX key split are set in the BIOS; whether a "
                "TDX module is there shows at the first SEAMCALL."}
    return {"severity": WARNING, "meaning": f"The BIOS gave TDX {count} private KeyID(s): "
            "fewer than the 2 it needs.", "causes": ("too-few-keyids",),
            "actions": ("bios-keyid-split",)}


def _module_version(m: re.Match, entry: dict, before: list, ctx: Context) -> dict:
    major, minor = int(m["major"]), int(m["minor"])
    out = {"meaning": f"The TDX module is version {major}.{minor}"
           + (f" (build {m['build']}, date {m['date']})" if m.groupdict().get("build") else "")
           + "."}
    if (major, minor) < (1, 5):
        out |= {"severity": WARNING, "causes": ("module-1.0",), "actions": ("module-1.5",),
                "meaning": out["meaning"] + " v6.8 needs 1.5 or later."}
    return out


def _seamcall(m: re.Match, entry: dict, before: list, ctx: Context) -> dict:
    leaf = int(m["leaf"], 16 if m["leaf"].startswith("0x") else 10)
    code = int(m["code"], 16)
    name = LEAF_NAMES.get(leaf)
    causes, actions = _status_advice(code, leaf)
    stage = _LEAF_STAGES.get(name or "", f"a SEAMCALL of leaf {leaf}" + (
        f" ({name})" if name else " (not a leaf of host init)"))
    return {"leaf": leaf, "status": code, "stage": stage, "causes": causes, "actions": actions,
            "meaning": f"{name or f'Leaf {leaf}'} failed: {decode_status(code)['meaning']}."}


def _registers(m: re.Match, entry: dict, before: list, ctx: Context) -> dict:
    field = int(m["rdx"], 16) if m.groupdict().get("rdx") else None
    last = next((e["leaf"]["number"] for e in reversed(before) if e["leaf"]), None)
    if last == LEAF_NUMBERS[TDH_SYS_RD] and field in _METADATA_FIELDS:
        return {"leaf": last, "meaning": "The registers after the failed TDH.SYS.RD: "
                f"RDX 0x{field:016x} is the metadata field asked for, "
                f"{_METADATA_FIELDS[field]}"
                + (", the first v6.8 reads." if _METADATA_FIELDS[field] == "MAX_TDMRS" else ".")}
    return {}


def _errno_line(m: re.Match, entry: dict, before: list, ctx: Context) -> dict:
    errno = -int(m["errno"])
    cause = next((e for e in before if e["severity"] == FAILURE and e["causes"]), None)
    if cause:
        return {"errno": errno, "meaning": f"Init failed with {errno} "
                f"({errno_json(errno)['name'] or 'unknown errno'}): the failure on line "
                f"{cause['line']}."}
    causes, actions = _ERRNO_ADVICE.get(-errno, ((), ("whole-log",)))
    return {"errno": errno, "causes": causes, "actions": actions,
            "meaning": f"Init failed with {errno}: {errno_json(errno)['meaning']}; no line of "
            "this log says more."}


def _rsvd_exhausted(m: re.Match, entry: dict, before: list, ctx: Context) -> dict:
    actions = ["kernel-cmr-holes", "bios-fewer-holes"]
    if not ctx.has_cmrs:
        actions.append("collect-cmrs")
    if not ctx.has_e820:
        actions.append("collect-e820")
    return {"actions": tuple(actions), "meaning": f"TDMR [{m[1]}, {m[2]}) needs more reserved "
            "areas (holes and PAMTs in it) than the module allows per TDMR."}


def _tdmrs_exhausted(m: re.Match, entry: dict, before: list, ctx: Context) -> dict:
    return {} if ctx.has_e820 else {"actions": ("bios-fewer-ranges", "collect-e820")}


def _kvm_failed(m: re.Match, entry: dict, before: list, ctx: Context) -> dict:
    cause = next((e for e in before if e["severity"] == FAILURE), None)
    return {"meaning": "KVM gives up TDX for this boot: TDs cannot start"
            + (f"; the cause is the failure on line {cause['line']}." if cause else ".")}


def _m(pattern: str, **fields) -> Message:
    return Message(pattern=re.compile(pattern), **fields)


MESSAGES: tuple[Message, ...] = (
    _m(_P + r"BIOS enabled: private KeyID range \[([0-9]+), ([0-9]+)\)", key="keyid-range",
       kernels=V6_8, stage="tdx_init -> record_keyid_partitioning (MSR 0x87)", severity=INFO,
       meaning="", explain=_keyids),
    _m(_P + r"Guest detected", key="guest-log", kernels=GUEST, stage="TD guest boot",
       severity=INFO, meaning="This log is a TD guest's: the host's TDX init is not in it; "
       "run `tdmr` on the host's log."),
    _m(_P + r"Disable ACPI S3", key="acpi-s3-off", kernels=V6_8, stage="tdx_init",
       severity=INFO, meaning="TDX is enabled, so ACPI S3 (suspend to RAM) is off for this "
       "boot; the BIOS can turn TDX off to get S3 back."),
    _m(_P + r"initialization failed: too few private KeyIDs available \(([0-9]+)\)",
       key="too-few-keyids", kernels=V6_8, stage="tdx_init", severity=FAILURE,
       meaning="TDX stays off: too few TDX KeyIDs.", causes=("too-few-keyids",),
       actions=("bios-keyid-split",)),
    _m(_P + r"initialization failed: Hibernation support is enabled", key="hibernation",
       kernels=V6_8, stage="tdx_init", severity=FAILURE, meaning="TDX stays off: hibernation is "
       "possible on this boot.", causes=("hibernation-enabled",), actions=("nohibernate",)),
    _m(_P + r"initialization failed: register_memory_notifier\(\) failed",
       key="memory-notifier", kernels=V6_8, stage="tdx_init", severity=FAILURE,
       meaning="TDX stays off.", causes=("memory-notifier-failed",),
       actions=("report-kernel-bug",)),
    _m(_P + r"TDX module: .*major_version (?P<major>[0-9]+), minor_version (?P<minor>[0-9]+)"
       r"(?:, build_date (?P<date>[0-9]+), build_num (?P<build>[0-9]+))?", key="module-info",
       kernels=UBUNTU_6_8, stage="init_tdx_module: TDH.SYS.INFO, before the TDMRs are built",
       severity=INFO, meaning="", explain=_module_version),
    _m(_P + r"TDX module (?P<major>[0-9]+)\.(?P<minor>[0-9]+)\.[0-9.]+, build number "
       r"(?P<build>[0-9]+), build date (?P<date>\S+)", key="module-info", kernels=UBUNTU_6_14,
       stage="init_tdx_module: the module's version, before the TDMRs are built", severity=INFO,
       meaning="", explain=_module_version),
    _m(_P + r"Module version: (?P<major>[0-9]+)\.(?P<minor>[0-9]+)\.[0-9]+",
       key="module-info", kernels=V7_1, stage="init_tdx_module -> get_tdx_sys_info (TDH.SYS.RD "
       "of the version fields)", severity=INFO, meaning="", explain=_module_version),
    _m(_P + r"CMR(?:\[[0-9]+\])?: \[", key="cmr", kernels=UBUNTU_6_8,
       stage="init_tdx_module: TDH.SYS.INFO", severity=INFO, meaning="A convertible memory "
       "range (CMR) the module reports: memory that TDX can protect."),
    _m(_P + r"frame pointer \(RBP\) clobber bug present, upgrade TDX module",
       key="no-rbp-mod", kernels=V6_14, stage="init_tdx_module -> check_features", errno=-EINVAL,
       severity=FAILURE, meaning="The module lacks the NO_RBP_MOD fix; init stops before any "
       "memory work.", causes=("module-without-no-rbp-mod",), actions=("update-module",)),
    _m(_P + r"SEAMCALL \((?P<leaf>0x[0-9a-fA-F]+)\) failed: (?P<code>0x[0-9a-fA-F]+)",
       key="seamcall-failed", kernels=V6_8, stage="", severity=FAILURE, meaning="",
       errno=-EIO, explain=_seamcall),
    _m(_P + r"SEAMCALL failed: (?:CPU [0-9]+: )?leaf (?P<leaf>[0-9]+), error "
       r"(?P<code>0x[0-9a-fA-F]+)", key="seamcall-failed", kernels=INTEL_OLD, stage="",
       severity=FAILURE, meaning="", errno=-EIO, explain=_seamcall),
    _m(_P + r"RCX 0x[0-9a-fA-F]+ RDX (?P<rdx>0x[0-9a-fA-F]+) R08", key="registers",
       kernels=V6_8, stage="seamcall_err_ret", severity=INFO,
       meaning="The registers after the failed SEAMCALL above.", explain=_registers),
    _m(_P + r"(?:R09 0x|additional output: )", key="registers", kernels=V6_8,
       stage="seamcall_err_ret", severity=INFO,
       meaning="The registers after the failed SEAMCALL above."),
    _m(_P + r"module not loaded", key="module-not-loaded", kernels=V6_8,
       stage=_LEAF_STAGES[TDH_SYS_INIT], leaf=LEAF_NUMBERS[TDH_SYS_INIT],
       status=TDX_SEAMCALL_VMFAILINVALID, errno=-ENODEV, severity=FAILURE,
       meaning="The first SEAMCALL found no TDX module.",
       causes=("module-not-loaded",), actions=("bios-enable-seam-loader", "update-bios",
                                               "ask-vendor")),
    _m(_P + r"(?:TDX )?module is not loaded\.", key="module-not-loaded", kernels=INTEL_OLD,
       stage="seamcall(): a SEAMCALL of TDX init", status=TDX_SEAMCALL_VMFAILINVALID,
       errno=-ENODEV, severity=FAILURE, meaning="A SEAMCALL found no TDX module.",
       causes=("module-not-loaded",), actions=("bios-enable-seam-loader", "update-bios",
                                               "ask-vendor")),
    _m(_P + r"\[firmware bug\]: TDX is not enabled by BIOS\.", key="seamcall-gp",
       kernels=PRE_MERGE, stage="tdx_enable -> seamcall(): a SEAMCALL of module init, after "
       "the kernel found TDX enabled", status=TDX_SEAMCALL_GP, errno=-ENODEV, severity=FAILURE,
       meaning="A SEAMCALL raised #GP.", causes=("firmware-bug-seam", "seam-not-enabled"),
       actions=("update-bios", "bios-enable-tdx")),
    _m(_P + r"not enabled by BIOS\.", key="seamcall-gp", kernels=INTEL_OLD,
       stage="seamcall(): a SEAMCALL to the module or its loader", status=TDX_SEAMCALL_GP,
       errno=-ENODEV, severity=FAILURE, meaning="A SEAMCALL raised #GP.",
       causes=("seam-not-enabled",), actions=("bios-enable-tdx", "update-bios")),
    _m(_P + r"(?:SEAMCALL failed: )?(?:CPU (?:[0-9]+ )?is )?not in VMX operation",
       key="seamcall-ud", errno_meaning="what these kernels return for a SEAMCALL #UD",
       kernels=INTEL_OLD, stage="seamcall(): a SEAMCALL of TDX init", status=TDX_SEAMCALL_UD,
       errno=-EINVAL, severity=FAILURE, meaning="A SEAMCALL raised #UD.", causes=("not-vmx",),
       actions=("check-vmx",)),
    _m(_P + r"TDX module is outdated\.", key="module-outdated", kernels=INTEL_OLD,
       stage=_LEAF_STAGES[TDH_SYS_INIT], leaf=LEAF_NUMBERS[TDH_SYS_INIT],
       status=OTHER_STATUS_CODES["TDX_INCORRECT_CPUID_VALUE"], errno=-ENODEV, severity=FAILURE,
       meaning="TDH.SYS.INIT refused a CPUID value.", causes=("module-too-old-for-cpu",),
       actions=("update-bios",)),
    _m(_P + r"initialization failed: TDMRs exhausted\.", key="tdmrs-exhausted", kernels=V6_8,
       stage="init_tdx_module -> construct_tdmrs -> fill_out_tdmrs", errno=-ENOSPC,
       severity=FAILURE, meaning="The memory needs more TDMRs than the module supports.",
       causes=("too-many-tdmrs",), actions=("bios-fewer-ranges",), explain=_tdmrs_exhausted),
    _m(_P + r"initialization failed: TDMR \[(0x[0-9a-fA-F]+), (0x[0-9a-fA-F]+)\): reserved "
       r"areas exhausted\.", key="rsvd-exhausted", kernels=V6_8,
       stage="init_tdx_module -> construct_tdmrs -> tdmrs_populate_rsvd_areas_all -> "
       "tdmr_add_rsvd_area", errno=-ENOSPC, severity=FAILURE, meaning="",
       causes=("memblock-holes",), explain=_rsvd_exhausted),
    _m(_P + r"consumed TDMRs reaching limit: ([0-9]+) used out of ([0-9]+)",
       key="tdmrs-near-limit", kernels=V6_8, stage="init_tdx_module -> construct_tdmrs -> "
       "fill_out_tdmrs", severity=WARNING, meaning="Fewer than 4 TDMRs are left unused.",
       causes=("tdmrs-near-limit",)),
    _m(_P + r"TDMR \[.*\): unable to find local NUMA node for PAMT allocation",
       key="pamt-node-fallback", kernels=V6_8, stage="init_tdx_module -> construct_tdmrs -> "
       "tdmr_get_nid", severity=WARNING, meaning="This TDMR's PAMT goes to node 0.",
       causes=("no-local-node",)),
    _m(_P + r"([0-9]+) KBs? allocated for PAMT", key="pamt-allocated", kernels=V6_8,
       stage="init_tdx_module, its last step", severity=INFO,
       meaning="Every TDMR is initialised; this much memory holds the PAMTs for good."),
    _m(_P + r"(?:TDX-Module|module) initialized", key="module-initialized", kernels=V6_8,
       stage="tdx_enable (v7.1+: at boot)", severity=INFO, meaning="TDX is ready for TDs."),
    _m(_P + r"(?:module |TDX-Module )?initialization failed \(-(?P<errno>[0-9]+)\)",
       key="init-failed", kernels=V6_8, stage="tdx_enable: init_tdx_module returned an error",
       severity=FAILURE, meaning="", explain=_errno_line),
    _m(_P + r"TDX requires all packages to have an online CPU", key="offline-refused",
       kernels=V7_1, stage="CPU hotplug: tdx_offline_cpu", errno=-EBUSY, severity=WARNING,
       errno_meaning="the CPU offline request fails with it",
       meaning="A CPU stayed online.", causes=("offline-last-cpu-of-package",),
       actions=("delete-tds-first",)),
    _m(r"Machine check: TDX private memory error", key="machine-check", kernels=V6_8,
       stage="machine check: mce_panic -> tdx_dump_mce_info (TDH.PHYMEM.PAGE.RDMD)",
       leaf=LEAF_NUMBERS[TDH_PHYMEM_PAGE_RDMD], severity=FAILURE, meaning="The machine "
       "panicked on a memory error in TDX private memory.",
       causes=("machine-check-tdx-memory",), actions=("report-kernel-bug",)),
    _m(r"Not allowed on platform with tdx_pw_mce bug", key="kexec-refused",
       kernels="mainline v6.18 and later", stage="kexec load: machine_kexec_prepare",
       errno=-EOPNOTSUPP, severity=WARNING, meaning="kexec was refused.",
       errno_meaning="the kexec load fails with it",
       causes=("kexec-erratum",), actions=("no-kexec-on-erratum",)),
    _m(r"kvm_intel: Failed to initialize TDX module", key="kvm-gave-up", kernels=KVM_OLD,
       stage="KVM (kvm_intel) TDX setup, after tdx_enable failed", severity=FAILURE,
       meaning="", explain=_kvm_failed),
)

_OLD_PREFIX = re.compile(r"(?:^|[\s\]])tdx: ")  # before v6.8, the TDX code printed `tdx: `


def diagnose_lines(logged: LoggedFacts, ctx: Context) -> list[dict[str, Any]]:
    """Every TDX line of the log, explained, in log order."""
    entries: list[dict[str, Any]] = []
    for line in logged.lines:
        entries.append(_entry(line, entries, ctx))
    return entries


def _entry(line: LogLine, before: list, ctx: Context) -> dict[str, Any]:
    for message in MESSAGES:
        found = message.pattern.search(line.text)
        if found:
            break
    else:
        return _json(line, key="unknown", kernels="", stage="", severity=INFO,
                     meaning="Not a line this checker knows.", causes=("unknown-line",),
                     actions=("whole-log",), errno=None, leaf=None, status=None,
                     errno_meaning=None)
    fields = {"key": message.key, "kernels": message.kernels, "stage": message.stage,
              "severity": message.severity, "meaning": message.meaning,
              "causes": message.causes, "actions": message.actions, "errno": message.errno,
              "leaf": message.leaf, "status": message.status,
              "errno_meaning": message.errno_meaning}
    if message.kernels not in (INTEL_OLD, PRE_MERGE, GUEST) and _OLD_PREFIX.search(line.text):
        fields["kernels"] = OLD_PREFIX
    if message.explain:
        fields |= message.explain(found, fields, before, ctx)
    return _json(line, **fields)


def _json(line: LogLine, *, key, kernels, stage, severity, meaning, causes, actions, errno, leaf,
          status, errno_meaning) -> dict[str, Any]:
    return {"line": line.line, "text": line.text, "message": key, "kernels": kernels,
            "out_of_tree": "out of tree" in kernels, "stage": stage, "severity": severity,
            "meaning": meaning,
            "leaf": None if leaf is None else {"number": leaf, "hex": f"0x{leaf:x}",
                                               "name": LEAF_NAMES.get(leaf)},
            "status": None if status is None else decode_status(status),
            "errno": None if errno is None else errno_json(errno, errno_meaning),
            "causes": [{"key": k, "text": CAUSES[k]} for k in causes],
            "actions": [{"key": k, "text": ACTIONS[k]} for k in actions]}


def log_outcome(entries: list[dict[str, Any]], ctx: Context) -> dict[str, Any]:
    """What the log says happened to TDX, and the causes and actions that matter most: those of
    its first failure (the one the later lines follow from), or of its success, or, when it
    shows TDX enabled by the BIOS but no result, why none may have been logged. A log with
    neither (say a memory map with CMR lines only) has no outcome: "none"."""
    failures = [e for e in entries if e["severity"] == FAILURE]
    if failures:
        first = next((e for e in failures if e["causes"]), failures[0])
        return {"outcome": "failed", "line": first["line"], "causes": first["causes"],
                "actions": first["actions"]}
    done = next((e for e in entries if e["message"] in _SUCCESS_KEYS), None)
    if done:
        return {"outcome": "initialized", "line": done["line"],
                "causes": _advice(CAUSES, ("tdx-initialized",)),
                "actions": _advice(ACTIONS, ("none",))}
    if not any(e["message"] == "keyid-range" for e in entries):
        return {"outcome": "none", "line": None, "causes": [], "actions": []}
    asked = ctx.command_line is not None and "tdx=1" in ctx.command_line
    causes = ("silent-gp", "log-incomplete") if asked else (
        "init-not-requested", "silent-gp", "log-incomplete")
    return {"outcome": "no-result", "line": None, "causes": _advice(CAUSES, causes),
            "actions": _advice(ACTIONS, ("kvm-tdx-param", "bios-enable-tdx", "whole-log"))}


def _advice(table: dict[str, str], keys) -> list[dict[str, str]]:
    return [{"key": k, "text": table[k]} for k in keys]


# --- the holes of a TDMR that ran out of reserved areas ----------------------------------------

def failed_tdmr_holes(machine: MachineInput, report: dict[str, Any],
                      cmr_needed: int | None) -> dict[str, Any] | None:
    """For the TDMR whose reserved areas ran out: each hole, with the e820 entries (line and
    type) it is made of; what CMR-derived holes would need in that TDMR (`cmr_needed`), or that
    the CMRs are unknown and how to get them."""
    failed = report["failed_tdmr"]
    if failed is None:
        return None
    tdmr = report["tdmrs"][failed]
    base = tdmr["base"]
    table = machine.firmware_map
    ends = [entry.end for entry in table]
    holes = [{"start": base + a["offset"], "end": base + a["offset"] + a["size"],
              "made_of": _made_of(base + a["offset"], base + a["offset"] + a["size"],
                                  table, ends)}
             for a in tdmr["reserved"] if a["kind"] == "hole"]
    known = bool(machine.cmrs) and not machine.memory_from_cmrs
    return {"tdmr": failed, "base": base, "end": base + tdmr["size"],
            "limit": report["metadata"]["max_reserved_per_tdmr"],
            "reserved_needed": tdmr.get("reserved_needed"), "holes": holes,
            "source": "e820" if machine.firmware_map else (
                "cmrs" if machine.memory_from_cmrs else machine.kind),
            "cmr": {"known": known, "reserved_needed": cmr_needed,
                    "collect": None if known else "collect-cmrs"}}


def _made_of(start: int, end: int, table: tuple[FirmwareEntry, ...],
             ends: list[int]) -> list[dict[str, Any]]:
    """The e820 entries (clipped) and the unlisted gaps that make up [start, end). The table
    is sorted and disjoint (`ends`: its entries' ends), so the walk starts at the first entry
    ending after `start`."""
    pieces: list[dict[str, Any]] = []
    pos = start
    first = bisect_right(ends, start)
    for entry in table[first:]:
        if entry.start >= end:
            break
        if entry.end <= pos:
            continue
        if entry.start > pos:
            pieces.append(_piece(pos, entry.start, None, "not in the e820 map"))
        stop = min(entry.end, end)
        pieces.append(_piece(max(entry.start, pos), stop, entry, entry.kind))
        pos = stop
    if table and pos < end:
        pieces.append(_piece(pos, end, None, "not in the e820 map"))
    return pieces


def _piece(start: int, end: int, entry: FirmwareEntry | None, kind: str) -> dict[str, Any]:
    why = None
    if entry is not None and kind in ("usable", "reserved-kern"):
        why = "below 1 MiB, never TDX memory" if end <= SZ_1M else "no whole 4 KiB page"
    return {"start": start, "end": end, "type": kind, "why": why,
            "line": None if entry is None else entry.line,
            "updated_at": None if entry is None else entry.updated_at}


# --- text ------------------------------------------------------------------------------------

WIDTH = 100


def _wrap(text: str, first: str, rest: str) -> list[str]:
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False, break_long_words=False)


def holes_text(holes: dict[str, Any], collect_below: bool) -> list[str]:
    """The failing TDMR's holes by e820 entry, and what CMR-derived holes would need there;
    the way to the CMRs is spelt out unless the diagnosis below carries it."""
    span = f"[0x{holes['base']:x}, 0x{holes['end']:x})"
    where = {"e820": "by e820 entry", "cmrs": "between the CMRs standing in for memory (1 GiB-"
             "granular: the e820 map would give the real holes)"}.get(
                 holes["source"], f"between the {holes['source']} input's memory ranges")
    lines = [f"holes of TDMR {holes['tdmr']} {span} {where}: {len(holes['holes'])} of the "
             f"{holes['reserved_needed']} reserved areas it needs (limit {holes['limit']})"]
    for hole in holes["holes"]:
        parts = []
        for piece in hole["made_of"]:
            what = piece["type"] + (f" ({piece['why']})" if piece["why"] else "")
            if piece["updated_at"]:
                what += f" (e820 update on line {piece['updated_at']})"
            parts.append(f"line {piece['line']} {what}" if piece["line"] else what)
        lines.append(f"  [0x{hole['start']:x}, 0x{hole['end']:x})".ljust(32)
                     + ", ".join(parts))
    cmr = holes["cmr"]
    if cmr["reserved_needed"] is not None:
        lines.append(f"with CMR-derived holes this TDMR would need {cmr['reserved_needed']} of "
                     f"{holes['limit']} reserved areas")
    elif cmr["known"]:  # the holes above are the CMRs' own (--holes cmr)
        pass
    elif collect_below:
        lines.append("with CMR-derived holes: unknown, the input has no CMRs (see "
                     "collect-cmrs below)")
    else:
        lines.extend(_wrap("with CMR-derived holes: unknown, the input has no CMRs. "
                           + ACTIONS["collect-cmrs"], "", "  "))
    return lines


def diagnosis_text(entries: list[dict[str, Any]], outcome: dict[str, Any],
                   verbose: bool) -> list[str]:
    """The diagnosis for people: the outcome, then each line. Lines that need no action take
    one line each (all of them only with --verbose when TDX initialised); a failure or warning
    gets its stage, leaf, status, errno, causes and actions."""
    if not entries:
        return []
    head = {"failed": f"TDX init failed (line {outcome['line']})",
            "initialized": f"TDX initialised (line {outcome['line']})",
            "no-result": "TDX enabled by the BIOS, but no init result in this log",
            "none": "no TDX outcome in this log"}
    lines = [f"diagnosis: {head[outcome['outcome']]}; {len(entries)} TDX "
             f"line{'s' if len(entries) != 1 else ''}"]
    quiet = outcome["outcome"] == "initialized" and not verbose and all(
        e["severity"] == INFO for e in entries)
    if quiet:
        origins = sorted({e["kernels"] for e in entries if e["out_of_tree"]})
        lines.extend(_wrap("every line as expected (--verbose explains each)" + "".join(
            f"; printed by {origin}" for origin in origins), "  ", "    "))
        return lines
    for entry in _collapsed(entries):
        lines.extend(_entry_text(entry, verbose))
    if outcome["outcome"] == "no-result":
        lines.extend(_advice_text(outcome, "  "))
    return lines


def _collapsed(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs of the same informational message (the CMR lines) as one entry."""
    out: list[dict[str, Any]] = []
    for entry in entries:
        prev = out[-1] if out else None
        if (prev and entry["severity"] == INFO and prev["message"] == entry["message"]
                and prev["severity"] == INFO and prev["meaning"] == entry["meaning"]):
            out[-1] = prev | {"last_line": entry["line"]}
        else:
            out.append(entry)
    return out


def _entry_text(entry: dict[str, Any], verbose: bool) -> list[str]:
    where = f"line {entry['line']}" + (f"-{entry['last_line']}" if "last_line" in entry else "")
    lines = [f"  {where:<9} {entry['text']}"]
    pad = " " * 12
    origin = f" [{entry['kernels']}]" if entry["out_of_tree"] else ""
    if entry["severity"] == INFO and not verbose:
        lines.extend(_wrap(f"{entry['meaning']} ({entry['stage']}){origin}", pad, pad))
        return lines
    lines.extend(_wrap(f"{entry['severity']}: {entry['meaning']}", pad, pad + "  "))
    lines.extend(_wrap(f"stage: {entry['stage']}{origin}", pad, pad + "  "))
    if entry["leaf"]:
        leaf = entry["leaf"]
        lines.append(f"{pad}leaf: {leaf['name'] or 'unknown'} ({leaf['hex']} = {leaf['number']})")
    if entry["status"]:
        lines.extend(status_text(entry["status"], pad))
    if entry["errno"]:
        err = entry["errno"]
        lines.extend(_wrap(f"errno: {err['value']} ({err['name']}): {err['meaning']}", pad,
                           pad + "  "))
    lines.extend(_advice_text(entry, pad))
    return lines


def status_text(status: dict[str, Any], pad: str) -> list[str]:
    """A decoded status in two or three lines."""
    flags = ", ".join(f for f, on in (("error", status["error"]),
                                      ("non-recoverable", status["non_recoverable"])) if on)
    operand = f", operand {status['operand']}" if status["operand"] else ""
    return _wrap(f"status: {status['code']} {status['name'] or '(unknown)'}: "
                 f"{status['meaning']} ({flags or 'not an error'}; class 0x{status['class']:02x}, "
                 f"{status['class_meaning']}; details 0x{status['details_l1']:02x}/"
                 f"0x{status['details_l2']:08x}{operand})", pad, pad + "  ")


def _advice_text(item: dict[str, Any], pad: str) -> list[str]:
    lines = []
    for cause in item["causes"]:
        lines.extend(_wrap(f"cause [{cause['key']}]: {cause['text']}", pad, pad + "  "))
    for action in item["actions"]:
        lines.extend(_wrap(f"do [{action['key']}]: {action['text']}", pad, pad + "  "))
    return lines
