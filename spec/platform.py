"""The machine the flow runs on: packages and CPUs, memory, module metadata, the erratum flag.

The TDMR layout is not recomputed per state: `tdx_layout` runs the TDMR engine once for each
memblock content the flow can snapshot (boot memory plus the hot-added blocks onlined so far)
and caches the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from spec.errno import ENOMEM
from spec.memory import SZ_1G, SZ_1M, MemRange, build_tdx_memlist, round_up
from spec.placement import FirstFit
from spec.profiles import Profile
from spec.sysinfo import TdxSysinfo
from spec.tdmr import ConstructResult, construct_tdmrs

SZ_128M = 128 * SZ_1M

# Two nodes, one TDMR each: node 0 below 2 GiB, node 1 from 2 to 3 GiB.
DEFAULT_REGIONS = (MemRange(0, 2 * SZ_1G, 0), MemRange(2 * SZ_1G, 3 * SZ_1G, 1))
# A block that ends past node 1's boot memory: onlined before the snapshot it becomes TDX memory,
# onlined after a successful init it must be refused.
DEFAULT_HOT_BLOCKS = (MemRange(3 * SZ_1G - SZ_128M, 3 * SZ_1G + SZ_128M, 1),)


@dataclass(frozen=True)
class Platform:
    """Topology and memory of one machine. CPU `i` sits in package `i // cpus_per_package`."""

    packages: int = 2
    cpus_per_package: int = 2
    regions: tuple[MemRange, ...] = DEFAULT_REGIONS
    hot_blocks: tuple[MemRange, ...] = DEFAULT_HOT_BLOCKS
    sysinfo: TdxSysinfo = field(default_factory=TdxSysinfo)
    placement: object = field(default_factory=FirstFit)
    cmrs: tuple[MemRange, ...] = ()  # only read by profiles that take holes from CMRs
    erratum: bool = True  # X86_BUG_TDX_PW_MCE
    module_no_rbp_mod: bool = True  # the module reports NO_RBP_MOD (bit 18 of TDX_FEATURES0)
    private_keyids: int = 63  # TDX KeyIDs the BIOS partitioned off (MSR 0x87, high half)
    tdmr_init_chunk: int = SZ_1G  # how much one TDH.SYS.TDMR.INIT call initialises

    def __post_init__(self) -> None:
        if self.packages < 1 or self.cpus_per_package < 1:
            raise ValueError("a platform needs at least one package with one CPU")
        if len(self.hot_blocks) > 8:
            raise ValueError("at most 8 hot-pluggable blocks (the model keeps them in a bitmask)")

    @property
    def cpus(self) -> int:
        return self.packages * self.cpus_per_package

    @property
    def shape(self) -> str:
        return f"{self.packages}x{self.cpus_per_package}"


def memblock_regions(regions: tuple[MemRange, ...],
                     added: tuple[MemRange, ...]) -> tuple[MemRange, ...]:
    """memblock after hot-adding `added` to the boot `regions`: overlapping ranges and touching
    ranges of one node merge, as `memblock_add_node` leaves them."""
    merged: list[MemRange] = []
    for r in sorted(regions + added):
        if merged and (r.start < merged[-1].end
                       or (r.start == merged[-1].end and r.nid == merged[-1].nid)):
            last = merged[-1]
            merged[-1] = MemRange(last.start, max(last.end, r.end), last.nid)
        else:
            merged.append(r)
    return tuple(merged)


@dataclass(frozen=True)
class TdmrLayout:
    """What `init_tdx_module` would build from one memblock content.

    `chunks_allocated` is how many PAMT chunks `construct_tdmrs` allocated before it failed
    (and then freed again); `tdmr_init_calls` is how many TDH.SYS.TDMR.INIT calls each TDMR takes;
    `first_pamt_page` is where the first page of TDMR 0's PAMT chunk lies for the module: the
    TDMR holding it and how many TDH.SYS.TDMR.INIT calls on that TDMR initialise its part
    (None without a PAMT).
    """

    memlist: tuple[MemRange, ...]
    result: ConstructResult
    chunks_allocated: int
    tdmr_init_calls: tuple[int, ...]
    first_pamt_page: tuple[int, int] | None


@lru_cache(maxsize=256)
def tdx_layout(platform: Platform, profile: Profile, added_mask: int) -> TdmrLayout:
    """The snapshot and TDMRs for boot memory plus the hot blocks in `added_mask`."""
    added = tuple(b for i, b in enumerate(platform.hot_blocks) if added_mask >> i & 1)
    memlist = build_tdx_memlist(memblock_regions(platform.regions, added))
    cmrs = platform.cmrs or memblock_regions(platform.regions, platform.hot_blocks)
    result = construct_tdmrs(memlist, platform.sysinfo, platform.placement, cmrs, profile)
    if result.ok or result.failed_tdmr is not None:
        allocated = len(result.tdmrs)
    elif result.error.errno == -ENOMEM:
        allocated = result.failed_pamt
    else:
        allocated = 0
    chunk = platform.tdmr_init_chunk
    calls = tuple(max(1, round_up(t.size, chunk) // chunk) for t in result.tdmrs)
    return TdmrLayout(memlist, result, allocated, calls, _first_pamt_page(result, chunk))


def _first_pamt_page(result: ConstructResult, chunk: int) -> tuple[int, int] | None:
    if not result.tdmrs or not result.tdmrs[0].pamt_size:
        return None
    page = result.tdmrs[0].pamt_base
    for index, tdmr in enumerate(result.tdmrs):
        if tdmr.base <= page < tdmr.end:
            return index, (page - tdmr.base) // chunk + 1
    return None
