"""The TDX module metadata that shapes TDMR construction (read with TDH.SYS.RD in v6.8)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from spec.errno import EIO, KernelError
from spec.module import STATUS_CODES, TDX_SYS_NOT_READY
from spec.profiles import Profile
from spec.seamcall import TDH_SYS_RD, seamcall_failed_message

PAGE_SIZE_SHIFTS = (12, 21, 30)
PAGE_SIZE_NAMES = ("4k", "2m", "1g")
BITMAP_BITS_MAX = 0xFF  # the bitmap's bits per page is an 8-bit field of the metadata


@dataclass(frozen=True)
class TdxSysinfo:
    """`struct tdx_tdmr_sysinfo`: the module's TDMR limits and PAMT entry sizes.

    Every public boot log reproduces with 64 TDMRs, 16 reserved areas and 16-byte entries.
    `pamt_page_bitmap_entry_bits` is what a module with Dynamic PAMT reports per 4K page of
    its bitmap (1 today); 0 stands for a module without Dynamic PAMT, the module of every
    shipped log, as the field is only read from a module that has the feature.
    """

    max_tdmrs: int = 64
    max_reserved_per_tdmr: int = 16
    pamt_entry_size: tuple[int, int, int] = (16, 16, 16)
    pamt_page_bitmap_entry_bits: int = 0

    def __post_init__(self) -> None:
        if self.max_tdmrs < 1 or self.max_reserved_per_tdmr < 0:
            raise ValueError("max_tdmrs must be >= 1 and max_reserved_per_tdmr >= 0")
        if len(self.pamt_entry_size) != 3 or min(self.pamt_entry_size) < 1:
            raise ValueError("pamt_entry_size needs three positive sizes (4K, 2M, 1G)")
        if not 0 <= self.pamt_page_bitmap_entry_bits <= BITMAP_BITS_MAX:
            raise ValueError(f"pamt_page_bitmap_entry_bits must be 0 to {BITMAP_BITS_MAX}")


def get_tdx_tdmr_sysinfo(module_major: int, module_minor: int,
                         metadata: TdxSysinfo) -> TdxSysinfo | KernelError:
    """`get_tdx_tdmr_sysinfo`: read the TDMR limits with TDH.SYS.RD.

    v6.8 compares no version: a TDX 1.0 module lacks TDH.SYS.RD, its dispatcher answers the
    unknown leaf TDX_SYS_NOT_READY, so the very first read fails and init fails with -EIO. That
    alone is how v6.8 comes to need module 1.5. Returns the metadata, or a KernelError.
    """
    if (module_major, module_minor) < (1, 5):
        code = STATUS_CODES[TDX_SYS_NOT_READY]
        return KernelError(-EIO, seamcall_failed_message(TDH_SYS_RD, code))
    return metadata


def kernel_sysinfo(module: TdxSysinfo, profile: Profile) -> TdxSysinfo:
    """The metadata as this kernel holds it. One without the Dynamic PAMT rule (v6.8) never
    reads the bitmap field, so to it every module is one without Dynamic PAMT; PAMT sizes and
    the layout invariants take the bitmap from here, never from the module directly."""
    if profile.pamt_4k_bitmap:
        return module
    return replace(module, pamt_page_bitmap_entry_bits=0)
