"""Properties of whole machines rather than of one layout or one flow state: what a real or
synthesised memory map must give under a kernel profile."""

from __future__ import annotations

from invariants.base import Invariant

LOG_REPRODUCED = Invariant(
    "LOG-REPRODUCED", "the model computes the PAMT figure or the failure the machine logged",
    "boot logs of real TDX hosts (checker/data/boot-logs/README.md)")
LAYOUT = Invariant(
    "LAYOUT", "the TDMR list handed to TDH.SYS.CONFIG satisfies every layout invariant",
    "invariants/layout.py (a failing check names the constraint)")
INIT_PLACEMENT_INDEPENDENT = Invariant(
    "INIT-PLACEMENT-INDEPENDENT", "when TDMR construction succeeds with first-fit PAMT "
    "placement it succeeds with every placement the page allocator may return",
    "tdmr_set_up_pamt: alloc_contig_pages may return any free range of the right size")
INIT_WHEN_LAYOUT_EXISTS = Invariant(
    "INIT-WHEN-LAYOUT-EXISTS", "the kernel builds TDMRs whenever a valid layout exists for the "
    "machine (a failure is a kernel limitation on that map, a finding)",
    "canonical/tdx#135; LKML v8 2024-11-13 'Reduce TDMR's reserved areas by using CMRs'")
LIMIT_RSVD_EXHAUSTED = Invariant(
    "LIMIT-RSVD-EXHAUSTED", "the kernel still refuses the smallest map that needs more "
    "reserved areas in one TDMR than the module allows", "tdmr_add_rsvd_area")
LIMIT_TDMRS_EXHAUSTED = Invariant(
    "LIMIT-TDMRS-EXHAUSTED", "the kernel still refuses the smallest map that needs more TDMRs "
    "than the module allows", "fill_out_tdmrs")

MACHINE_INVARIANTS = {i.id: i for i in (LOG_REPRODUCED, LAYOUT, INIT_PLACEMENT_INDEPENDENT,
                                         INIT_WHEN_LAYOUT_EXISTS, LIMIT_RSVD_EXHAUSTED,
                                         LIMIT_TDMRS_EXHAUSTED)}
