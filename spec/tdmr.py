"""TDMR and PAMT construction: `construct_tdmrs()` of v6.8, rule by rule.

Phases, in the kernel's order: `fill_out_tdmrs` (one 1 GiB-aligned TDMR per memory region),
`tdmrs_set_up_pamt_all` (one PAMT chunk per TDMR, placed by a policy), and
`tdmrs_populate_rsvd_areas_all` (holes, then PAMTs, then sort). The first error stops
construction with the kernel's errno and message. The arithmetic is exact (Python integers);
the loops use ordered look-ups instead of the kernel's full scans so that 100k-region maps
build in near-linear time, with the same result.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field, replace

from spec.errno import ENOMEM, ENOSPC, KernelError
from spec.memory import SZ_1G, SZ_1M, SZ_4K, MemRange, round_down, round_up
from spec.placement import FirstFit
from spec.profiles import HOLES_CMR, V6_8, Profile
from spec.sysinfo import PAGE_SIZE_SHIFTS, TdxSysinfo, kernel_sysinfo

TDMR_NR_WARN = 4  # warn when fewer than this many TDMRs remain unused


@dataclass(frozen=True)
class ReservedArea:
    """`struct tdmr_reserved_area`; `kind` says why it exists ("hole" or "pamt")."""

    offset: int
    size: int
    kind: str = "hole"


@dataclass(frozen=True)
class Tdmr:
    """`struct tdmr_info`: a 1 GiB-aligned range, its three PAMTs and its reserved areas."""

    base: int
    size: int
    pamt_bases: tuple[int, int, int] = (0, 0, 0)
    pamt_sizes: tuple[int, int, int] = (0, 0, 0)
    reserved: tuple[ReservedArea, ...] = ()

    @property
    def end(self) -> int:
        return self.base + self.size

    @property
    def pamt_base(self) -> int:
        """Base of the one contiguous chunk holding the 4K, 2M and 1G PAMTs (`tdmr_get_pamt`)."""
        return self.pamt_bases[0]

    @property
    def pamt_size(self) -> int:
        return sum(self.pamt_sizes)

    @property
    def pamt_end(self) -> int:
        return self.pamt_base + self.pamt_size


@dataclass(frozen=True)
class AreaDemand:
    """How many reserved areas a TDMR asks for, counted out for explanations."""

    leading_holes: int = 0
    gaps: int = 0
    trailing_holes: int = 0
    own_pamt: int = 0
    other_pamts: int = 0

    @property
    def total(self) -> int:
        return (self.leading_holes + self.gaps + self.trailing_holes + self.own_pamt
                + self.other_pamts)

    def describe(self) -> str:
        parts = [(self.leading_holes, "leading hole", "leading holes"),
                 (self.gaps, "gap", "gaps"), (self.trailing_holes, "trailing hole",
                                              "trailing holes"),
                 (self.own_pamt, "own PAMT", "own PAMTs"),
                 (self.other_pamts, "PAMT of another TDMR", "PAMTs of other TDMRs")]
        words = [f"{n} {one if n == 1 else many}" for n, one, many in parts if n]
        return ", ".join(words) or "none"


@dataclass(frozen=True)
class ConstructResult:
    """What `construct_tdmrs` leaves behind, plus everything an explanation needs.

    On failure `tdmrs` still holds the TDMRs as far as construction got (the kernel frees the
    PAMTs, the model keeps their addresses for the report), `failed_tdmr` names the culprit and
    its `reserved` lists every area it would have needed, beyond the limit too.
    """

    tdmrs: tuple[Tdmr, ...]
    error: KernelError | None = None
    messages: tuple[str, ...] = ()
    failed_tdmr: int | None = None
    demand: tuple[AreaDemand, ...] = field(default=())
    failed_pamt: int | None = None  # -ENOMEM: the TDMR whose PAMT chunk was not allocated

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def pamt_kb(self) -> int | None:
        """`tdmrs_count_pamt_kb`: the figure of the `N KB allocated for PAMT` line."""
        if self.error is not None:
            return None
        return sum(t.pamt_size for t in self.tdmrs) // 1024


def tdmr_range(tdmr: Tdmr) -> str:
    return f"[0x{tdmr.base:x}, 0x{tdmr.end:x})"


def fill_out_tdmrs(memlist: tuple[MemRange, ...], sysinfo: TdxSysinfo,
                   messages: list[str]) -> list[Tdmr] | KernelError:
    """`fill_out_tdmrs`: cover each region with 1 GiB-aligned TDMRs, one new TDMR per region
    that reaches past the previous TDMR; adjacent TDMRs are never merged."""
    if not memlist:
        raise ValueError("no TDX memory: the model needs at least one region above 1 MiB")
    tdmrs: list[Tdmr] = []
    for entry in memlist:
        start, end = round_down(entry.start, SZ_1G), round_up(entry.end, SZ_1G)
        if tdmrs:
            last = tdmrs[-1]
            if end <= last.end:
                continue
            start = max(start, last.end)
            if len(tdmrs) >= sysinfo.max_tdmrs:
                message = "initialization failed: TDMRs exhausted."
                messages.append(message)
                return KernelError(-ENOSPC, message)
        tdmrs.append(Tdmr(start, end - start))
    if sysinfo.max_tdmrs - len(tdmrs) < TDMR_NR_WARN:
        messages.append(f"consumed TDMRs reaching limit: {len(tdmrs)} used out of "
                        f"{sysinfo.max_tdmrs}")
    return tdmrs


def tdmr_get_pamt_sz(tdmr: Tdmr, shift: int, entry_size: int, profile: Profile = V6_8) -> int:
    """`tdmr_get_pamt_sz`: one entry per page of this size, rounded up to 4 KiB."""
    entries = tdmr.size >> shift
    if profile.pamt_entry_count_bits is not None:
        # The entry count held in a signed int of that width: wraps for large TDMRs.
        bits = profile.pamt_entry_count_bits
        entries &= (1 << bits) - 1
        if entries >= 1 << (bits - 1):
            entries -= 1 << bits
        return round_up((entries * entry_size) % (1 << 64), SZ_4K)
    return round_up(entries * entry_size, SZ_4K)


def tdmr_get_pamt_bitmap_sz(tdmr: Tdmr, bits: int) -> int:
    """`tdmr_get_pamt_bitmap_sz` (Dynamic PAMT): `bits` per 4K page, whole bytes, rounded up to
    4 KiB. On a 1 GiB-aligned TDMR both roundings are exact, whatever `bits`."""
    return round_up(-(-(tdmr.size >> PAGE_SIZE_SHIFTS[0]) * bits // 8), SZ_4K)


def pamt_sizes(tdmr: Tdmr, sysinfo: TdxSysinfo, profile: Profile = V6_8
               ) -> tuple[int, int, int]:
    """The 4K, 2M and 1G PAMT sizes `tdmr_set_up_pamt` writes into the TDMR. With Dynamic
    PAMT (a kernel with the rule, a module with the feature) the 4K one is the page bitmap."""
    bits = kernel_sysinfo(sysinfo, profile).pamt_page_bitmap_entry_bits
    sizes = [tdmr_get_pamt_sz(tdmr, shift, entry, profile)
             for shift, entry in zip(PAGE_SIZE_SHIFTS, sysinfo.pamt_entry_size, strict=True)]
    if bits:
        sizes[0] = tdmr_get_pamt_bitmap_sz(tdmr, bits)
    return tuple(sizes)


def tdmr_get_nid(tdmr: Tdmr, memlist: tuple[MemRange, ...], messages: list[str],
                 ends: list[int] | None = None) -> int:
    """`tdmr_get_nid`: node of the first entry ending above the TDMR base (starts ignored).
    `ends` (the entries' end addresses) may be passed in by callers asking for many TDMRs."""
    if ends is None:
        ends = [e.end for e in memlist]
    i = bisect_left(ends, tdmr.base + 1)
    if i < len(memlist):
        return memlist[i].nid
    messages.append(f"TDMR {tdmr_range(tdmr)}: unable to find local NUMA node for PAMT "
                    "allocation, fallback to use node 0.")
    return 0


def tdmrs_set_up_pamt_all(tdmrs: list[Tdmr], memlist: tuple[MemRange, ...],
                          sysinfo: TdxSysinfo, placement, messages: list[str],
                          profile: Profile = V6_8) -> tuple[list[Tdmr], KernelError | None]:
    """`tdmr_set_up_pamt` for each TDMR: one chunk holding the 4K, 2M and 1G PAMTs in that
    order, on the TDMR's node if the allocator can. Any failure frees the earlier chunks; the
    TDMRs set up before it are returned with -ENOMEM, so the next one is the one that failed
    (the kernel prints no line there).

    The Dynamic PAMT series writes the sizes into the TDMR before allocating, zeroes the base
    when allocation fails, and has the free and reset helpers skip a TDMR whose PAMT base is
    0 where v6.8 skips one whose size is 0. No switch models that: TDX memory starts at 1 MiB
    (`build_tdx_memlist`; x86 also reserves the first 1 MiB, so `alloc_contig_pages` never
    returns page 0) and every chunk lies in TDX memory (the policies place inside the memory
    list, PAMT-IN-MEMORY refuses any other), so a base is 0 exactly when no chunk was
    allocated and both tests skip the same TDMRs. A chunk at 0 would be skipped, so leaked
    and never reset; `construct_tdmrs` refuses the one input that could put it there."""
    allocator = placement.allocator(memlist)
    ends = [e.end for e in memlist]
    out = []
    for index, tdmr in enumerate(tdmrs):
        sizes = pamt_sizes(tdmr, sysinfo, profile)
        nid = tdmr_get_nid(tdmr, memlist, messages, ends)
        base = allocator.alloc(index, sum(sizes), nid)
        if base is None:
            return out, KernelError(-ENOMEM)
        bases = (base, base + sizes[0], base + sizes[0] + sizes[1])
        out.append(replace(tdmr, pamt_bases=bases, pamt_sizes=sizes))
    return out, None


def tdmr_populate_rsvd_holes(tdmr: Tdmr, ranges: tuple[MemRange, ...],
                             ends: list[int]) -> tuple[list[ReservedArea], AreaDemand]:
    """`tdmr_populate_rsvd_holes`: every gap inside the TDMR between the given ranges (memblock
    entries in v6.8, CMRs in the fix) is one area, including before the first and after the
    last. `ends` is the ranges' end addresses, for the ordered look-up of the first one."""
    areas: list[ReservedArea] = []
    prev_end = tdmr.base
    i = bisect_left(ends, tdmr.base)  # entries ending strictly before the base are skipped
    while i < len(ranges) and ranges[i].start < tdmr.end:
        entry = ranges[i]
        if entry.start > prev_end:
            areas.append(ReservedArea(prev_end - tdmr.base, entry.start - prev_end))
        prev_end = entry.end
        i += 1
    if prev_end < tdmr.end:
        areas.append(ReservedArea(prev_end - tdmr.base, tdmr.end - prev_end))
    leading = sum(1 for a in areas if a.offset == 0)
    trailing = sum(1 for a in areas if a.offset + a.size == tdmr.size and a.offset != 0)
    return areas, AreaDemand(leading, len(areas) - leading - trailing, trailing)


def tdmr_populate_rsvd_pamts(index: int, tdmr: Tdmr, tdmrs: list[Tdmr],
                             by_base: list[tuple[int, int]], largest: int,
                             profile: Profile = V6_8) -> tuple[list[ReservedArea], int, int]:
    """`tdmr_populate_rsvd_pamts`: the part of every TDMR's PAMT chunk (this one's included)
    that falls inside this TDMR is one area, in TDMR order. Returns the areas and the counts
    of own and other chunks. `by_base` is (chunk base, TDMR index) sorted by base."""
    lo = bisect_left(by_base, (tdmr.base - largest + 1, -1))
    hi = bisect_left(by_base, (tdmr.end, -1))
    owners = sorted(j for _, j in by_base[lo:hi]
                    if tdmrs[j].pamt_end > tdmr.base and tdmrs[j].pamt_size)
    if not profile.reserve_other_tdmrs_pamts:
        owners = [j for j in owners if j == index]
    areas = []
    for j in owners:
        start, end = max(tdmrs[j].pamt_base, tdmr.base), min(tdmrs[j].pamt_end, tdmr.end)
        areas.append(ReservedArea(start - tdmr.base, end - start, "pamt"))
    own = sum(1 for j in owners if j == index)
    return areas, own, len(owners) - own


def rsvd_areas_exhausted(tdmr: Tdmr) -> str:
    """The line `tdmr_add_rsvd_area` prints when a TDMR has no reserved-area slot left."""
    return f"initialization failed: TDMR {tdmr_range(tdmr)}: reserved areas exhausted."


def tdmrs_populate_rsvd_areas_all(tdmrs: list[Tdmr], memlist: tuple[MemRange, ...],
                                  cmrs: tuple[MemRange, ...], sysinfo: TdxSysinfo,
                                  messages: list[str], profile: Profile = V6_8
                                  ) -> tuple[list[Tdmr], list[AreaDemand], int | None]:
    """`tdmrs_populate_rsvd_areas_all`: holes, then PAMTs, then sort, TDMR by TDMR.

    `tdmr_add_rsvd_area` refuses an area beyond `max_reserved_per_tdmr`; since the areas of a
    TDMR do not depend on the order they are added in, the first TDMR whose demand is over the
    limit is the one the kernel fails on. Demand is counted for every TDMR, for the headroom
    report. Returns the TDMRs, the demand per TDMR and the index of the failing TDMR (or None).
    """
    hole_ranges = cmrs if profile.holes == HOLES_CMR else memlist
    ends = [r.end for r in hole_ranges]
    by_base = sorted((t.pamt_base, j) for j, t in enumerate(tdmrs))
    largest = max((t.pamt_size for t in tdmrs), default=0)
    out, demands, failed = [], [], None
    for index, tdmr in enumerate(tdmrs):
        holes, demand = tdmr_populate_rsvd_holes(tdmr, hole_ranges, ends)
        pamts, own, other = tdmr_populate_rsvd_pamts(index, tdmr, tdmrs, by_base, largest,
                                                     profile)
        demand = replace(demand, own_pamt=own, other_pamts=other)
        areas = holes + pamts
        if profile.sort_reserved_areas:
            areas.sort(key=lambda a: a.offset)
        demands.append(demand)
        if failed is None and len(areas) > sysinfo.max_reserved_per_tdmr:
            failed = index
            messages.append(rsvd_areas_exhausted(tdmr))
        out.append(replace(tdmr, reserved=tuple(areas)))
    return out, demands, failed


def construct_tdmrs(memlist: tuple[MemRange, ...], sysinfo: TdxSysinfo = TdxSysinfo(),
                    placement=FirstFit(), cmrs: tuple[MemRange, ...] = (),
                    profile: Profile = V6_8) -> ConstructResult:
    """`construct_tdmrs`: the TDMR list the kernel hands to TDH.SYS.CONFIG, or its failure.

    `cmrs` is only used by profiles that take holes from CMRs; it must then be non-empty.
    """
    if profile.holes == HOLES_CMR and not cmrs:
        raise ValueError(f"profile {profile.name} takes holes from CMRs, but none were given")
    if any(e.start < SZ_1M for e in memlist):
        raise ValueError("TDX memory starts at 1 MiB: pass the memory list through "
                         "build_tdx_memlist (no PAMT chunk may land at address 0)")
    messages: list[str] = []
    filled = fill_out_tdmrs(memlist, sysinfo, messages)
    if isinstance(filled, KernelError):
        return ConstructResult((), filled, tuple(messages))
    with_pamt, error = tdmrs_set_up_pamt_all(filled, memlist, sysinfo, placement, messages,
                                             profile)
    if error is not None:
        return ConstructResult(tuple(filled), error, tuple(messages), failed_pamt=len(with_pamt))
    tdmrs, demands, failed = tdmrs_populate_rsvd_areas_all(with_pamt, memlist, tuple(cmrs),
                                                           sysinfo, messages, profile)
    error = None
    if failed is not None:
        error = KernelError(-ENOSPC, rsvd_areas_exhausted(tdmrs[failed]))
    return ConstructResult(tuple(tdmrs), error, tuple(messages), failed, tuple(demands))
