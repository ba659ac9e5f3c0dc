"""The words `tdmr` and the diagnosis use, explained for someone who runs the machine rather than
writes the kernel: `python -m checker glossary [TERM]`, and a pointer at the end of `tdmr`'s
text output to the terms it used."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """A glossary entry: its name, other spellings that find it, and the explanation."""

    name: str
    text: str
    aliases: tuple[str, ...] = ()
    pattern: str | None = None  # how the term shows in output, if not its name as a word


TERMS: tuple[Term, ...] = (
    Term("TDX", "Intel Trust Domain Extensions: hardware and firmware that run virtual machines "
         "(TDs) whose memory is encrypted and integrity-protected against the host. The host "
         "kernel prepares memory for it at init; this checker models that init.",
         ("Trust Domain Extensions",)),
    Term("TD", "Trust Domain: a virtual machine protected by TDX.", ("trust domain",),
         r"\bTDs?\b"),
    Term("TDX module", "The firmware that runs in the CPU's SEAM mode and enforces TDX. The BIOS "
         "loads it at boot (through its SEAM loader); the kernel talks to it with SEAMCALLs. Its "
         "version matters: Linux v6.8 needs 1.5 or later.", ("module",),
         r"\bTDX module\b|\bmodule (?:version|not loaded|initiali[sz])"),
    Term("SEAMCALL", "The instruction the kernel uses to call the TDX module. Each call names a "
         "leaf (a function number, e.g. TDH.SYS.INIT = 0x21) and returns a 64-bit status.",
         ("leaf", "SEAMCALL leaf"), r"\bSEAMCALLs?\b|\bleaf\b"),
    Term("status code", "The 64-bit result of a SEAMCALL. Bit 63 set means an error, bit 62 that "
         "it cannot be recovered from; bits 47:40 are the class (which part of TDX refused), "
         "bits 39:32 the code within it, the low 32 bits details. Codes with class 0xFF are the "
         "kernel's own (the call faulted or found no module).", ("status", "TDX status"),
         r"\bstatus:"),
    Term("errno", "The negative error number a kernel function returns, e.g. -5 (EIO: a "
         "SEAMCALL failed), -28 (ENOSPC: TDMRs or reserved areas exhausted), -19 (ENODEV: no "
         "module).", (), r"\berrno\b|\(-[0-9]+\)"),
    Term("TDMR", "Trust Domain Memory Region: a 1 GiB-aligned range of physical memory the "
         "kernel hands to the TDX module. Together the TDMRs cover all memory TDX may use; the "
         "module supports a limited number (64 on every public log).", ("TDMRs",),
         r"\bTDMRs?\b"),
    Term("PAMT", "Physical Address Metadata Table: the module's bookkeeping for every page of a "
         "TDMR, in memory the kernel gives up for good (about 4 MiB per GiB of TDMR, 0.4% of "
         "memory). Each TDMR's PAMT is one contiguous chunk.", ("PAMTs",), r"\bPAMTs?\b"),
    Term("reserved area", "A range inside a TDMR that TDX must not use: a hole (no usable "
         "memory there) or a PAMT. The module allows a limited number per TDMR (16 on every "
         "public log); v6.8 fails with 'reserved areas exhausted' when a TDMR needs more.",
         ("reserved areas", "hole", "holes"), r"\breserved areas?\b|\bholes?\b"),
    Term("CMR", "Convertible Memory Range: memory the BIOS and the CPU's MCHECK vouch TDX can "
         "protect, reported by the module. Ubuntu's linux-intel kernels print them ('CMR:' "
         "lines); mainline does not. TDMR memory must lie in CMRs. Taking holes from the CMRs "
         "instead of from every memblock gap needs far fewer reserved areas.", ("CMRs",),
         r"\bCMRs?\b"),
    Term("KeyID", "A memory-encryption key number. The BIOS splits them between TME-MT and TDX "
         "(MSR 0x87); the first TDX KeyID is the module's global KeyID, the others are for TDs "
         "(HKIDs).", ("KeyIDs", "HKID", "private KeyID", "global KeyID"), r"\bKeyIDs?\b"),
    Term("TME", "Total Memory Encryption, and TME-MT (multi-tenant, multi-key), its extension: "
         "BIOS options TDX builds on; both must be on, with a key split that gives TDX KeyIDs.",
         ("TME-MT", "MKTME"), r"\bTME(?:-MT)?\b"),
    Term("SEAM", "Secure Arbitration Mode: the CPU mode the TDX module runs in, in a memory "
         "range (SEAMRR) the BIOS sets up. The SEAM loader (P-SEAMLDR) is the BIOS part that "
         "loads the module; 'SEAM loader' is also the BIOS option's name.",
         ("SEAMRR", "SEAM loader", "P-SEAMLDR", "SEAMLDR"), r"\bSEAM\b"),
    Term("e820", "The firmware's memory map, printed at boot as 'BIOS-e820:' lines: each range "
         "is usable RAM or reserved, ACPI data, ACPI NVS and so on. Only usable ranges become "
         "memory; everything else is a hole for TDX.", ("BIOS-e820", "firmware map"),
         r"\be820\b"),
    Term("memblock", "The kernel's early list of usable memory ranges, built from the e820 map "
         "and split by NUMA node. v6.8 builds its TDX memory list from it and makes a hole for "
         "every gap between its ranges.", (), r"\bmemblock\b"),
    Term("SRAT", "The ACPI table that says which memory belongs to which NUMA node ('SRAT: "
         "Node' lines). TDMRs follow memory; each PAMT is allocated on its TDMR's node.",
         ("NUMA", "node", "NUMA node"), r"\bSRAT\b|\bnodes?\b"),
    Term("ACPI S3", "Suspend to RAM. TDX memory keys do not survive it, so a kernel with TDX on "
         "turns S3 off for the boot; hibernation must be off too (`nohibernate`).",
         ("S3", "hibernation", "nohibernate"), r"\bS3\b|\bnohibernate\b|\bhibernation\b"),
    Term("kvm_intel", "KVM's Intel module. It creates TDs and, in kernels where KVM supports "
         "TDX, asks for the TDX module's init (tdx=1). Mainline v7.1 and later initialise TDX "
         "at boot instead.", ("KVM",), r"\bkvm_intel\b|\bKVM\b"),
)

_BY_NAME = {alias.lower(): term for term in TERMS for alias in (term.name, *term.aliases)}


def find(name: str) -> Term | None:
    """A term by its name or another spelling, in any case."""
    return _BY_NAME.get(name.strip().lower())


def terms_used(text: str) -> list[str]:
    """The glossary terms a text uses, in glossary order."""
    return [term.name for term in TERMS
            if re.search(term.pattern or rf"\b{re.escape(term.name)}\b", text)]


def pointer(text: str, prog: str) -> str | None:
    """One line naming the terms a text used and the command that explains them."""
    used = terms_used(text)
    if not used:
        return None
    shown = ", ".join(used[:6]) + (f" and {len(used) - 6} more" if len(used) > 6 else "")
    return f"words used above ({shown}): `{prog} glossary TERM` explains each"


def render(terms: tuple[Term, ...] = TERMS) -> str:
    """The glossary (or some of its terms) for a terminal."""
    blocks = []
    for term in terms:
        also = f" (also: {', '.join(term.aliases)})" if term.aliases else ""
        blocks.append(f"{term.name}{also}\n" + textwrap.fill(
            term.text, 100, initial_indent="  ", subsequent_indent="  "))
    return "\n\n".join(blocks) + "\n"


def render_markdown() -> str:
    """The glossary as docs/glossary.md holds it."""
    lines = ["# Glossary", "", "The words `python -m checker tdmr` and its diagnosis use "
             "(`python -m checker glossary TERM` prints one). Generated from "
             "`checker/views/glossary.py`.", ""]
    for term in TERMS:
        also = f" (also: {', '.join(term.aliases)})" if term.aliases else ""
        lines += [f"**{term.name}**{also}: {term.text}", ""]
    return "\n".join(lines)
