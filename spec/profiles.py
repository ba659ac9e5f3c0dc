"""Profiles: a kernel version or variant as a set of rule switches over the one model.

`v6.8` is the reference. A variant (the CMR-hole fix, a historical bug, a mutant) changes one
switch; the model reads the switch at the single place the rule lives, so no profile is a copy
of the model.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

HOLES_MEMBLOCK = "memblock"
HOLES_CMR = "cmr"


@dataclass(frozen=True)
class Profile:
    """A named set of kernel rules. Every field defaults to what v6.8 does."""

    name: str
    summary: str
    source: str = "arch/x86/virt/vmx/tdx/tdx.c, Linux v6.8"
    # "kernel": a real kernel behaviour; "variant": a proposed change; "bug": a historical bug
    # or mutant that the checker must catch.
    kind: str = "kernel"
    # --- TDMR construction (spec.tdmr) ---
    holes: str = HOLES_MEMBLOCK  # where tdmr_populate_rsvd_holes finds holes
    pamt_entry_count_bits: int | None = None  # None: exact; 32: the v5 signed-int bug
    sort_reserved_areas: bool = True  # tdmr_populate_rsvd_areas ends with sort_rsvd_areas
    reserve_other_tdmrs_pamts: bool = True  # tdmr_populate_rsvd_pamts looks at every TDMR

    def but(self, name: str, summary: str, source: str, kind: str = "bug", **changes) -> Profile:
        """A profile that differs from this one in `changes` only."""
        return replace(self, name=name, summary=summary, source=source, kind=kind, **changes)


V6_8 = Profile(name="v6.8", summary="Linux v6.8 as merged (memblock holes)")

PROFILES: dict[str, Profile] = {p.name: p for p in (
    V6_8,
    V6_8.but("cmr-holes", "v6.8 with holes taken from CMRs instead of memblock",
             "LKML v8 2024-11-13 'x86/virt/tdx: Reduce TDMR's reserved areas by using CMRs to "
             "find memory holes'", kind="variant", holes=HOLES_CMR),
)}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        known = ", ".join(PROFILES)
        raise KeyError(f"unknown profile {name!r} (known: {known})") from None
