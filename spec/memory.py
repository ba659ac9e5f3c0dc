"""TDX memory: the snapshot of memblock memory that the kernel hands to the TDX module.

Mirrors `build_tdx_memlist()` and `tdx_memory_notifier()` of v6.8. Addresses are bytes and
ranges are half-open `[start, end)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

SZ_4K = 1 << 12
SZ_1M = 1 << 20
SZ_1G = 1 << 30
SZ_4G = 1 << 32


def round_up(value: int, align: int) -> int:
    return -(-value // align) * align


def round_down(value: int, align: int) -> int:
    return value // align * align


@dataclass(frozen=True, order=True)
class MemRange:
    """A physical range `[start, end)` on NUMA node `nid` (a memblock region or snapshot entry)."""

    start: int
    end: int
    nid: int = 0

    @property
    def size(self) -> int:
        return self.end - self.start


def build_tdx_memlist(regions: Iterable[MemRange]) -> tuple[MemRange, ...]:
    """`build_tdx_memlist`: one entry per memblock region, page-rounded, clipped below 1 MiB.

    TDX code merges nothing: memblock already merged same-node neighbours, and touching regions on
    different nodes stay separate entries (which matters to the hotplug notifier).
    """
    memlist = []
    for region in sorted(regions):
        start = max(round_up(region.start, SZ_4K), SZ_1M)
        end = round_down(region.end, SZ_4K)
        if start < end:
            memlist.append(MemRange(start, end, region.nid))
    return tuple(memlist)


def is_tdx_memory(memlist: tuple[MemRange, ...], start: int, end: int) -> bool:
    """`is_tdx_memory`: `[start, end)` lies entirely inside one single snapshot entry."""
    return any(e.start <= start and end <= e.end for e in memlist)


def tdx_memory_notifier(memlist: tuple[MemRange, ...], going_online: bool, start: int,
                        end: int) -> bool:
    """`tdx_memory_notifier`: may `[start, end)` change state? Only onlining is ever vetoed.

    An empty snapshot (module not initialised, failed, or being initialised) allows everything,
    because the snapshot is taken later under the memory-hotplug lock.
    """
    if not going_online or not memlist:
        return True
    return is_tdx_memory(memlist, start, end)
