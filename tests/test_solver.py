"""Worst-case PAMT placement and explanations of infeasible layouts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import z3

from checker.engines.solver import (
    ANY_NODE,
    PREFERRED_NODE,
    UNKNOWN,
    UNSAT,
    explain_construction,
    explain_layout,
    solve,
    worst_case_placement,
)
from checker.inputs.readers import read_input
from spec.errno import ENOSPC
from spec.memory import SZ_1G, SZ_1M, SZ_4G, MemRange, build_tdx_memlist
from spec.placement import ExplicitPlacement
from spec.sysinfo import TdxSysinfo
from spec.tdmr import construct_tdmrs

LOGS = Path(__file__).resolve().parent.parent / "checker" / "data" / "boot-logs"


def cmr_map(name: str) -> tuple[MemRange, ...]:
    text = (LOGS / name).read_text()
    return build_tdx_memlist(MemRange(int(a, 16), int(b, 16)) for a, b in
                             re.findall(r"CMR: \[(0x[0-9a-f]+), (0x[0-9a-f]+)\)", text))


def crafted_map() -> tuple[MemRange, ...]:
    """TDMR [0, 1G): a 63 MiB region then 13 small ones = 15 holes; TDMR [4G, 5G): all memory.
    First-fit puts both chunks above 4 GiB; the 63 MiB region could take both."""
    small = [MemRange(64 * SZ_1M + 8 * SZ_1M * j, 64 * SZ_1M + 8 * SZ_1M * j + 4 * SZ_1M)
             for j in range(1, 14)]
    return build_tdx_memlist([MemRange(SZ_1M, 64 * SZ_1M), *small, MemRange(SZ_4G, 5 * SZ_1G)])


@pytest.mark.parametrize("mode", [ANY_NODE, PREFERRED_NODE])
def test_worst_case_on_emr_cmr_map_is_proved_safe(mode):
    worst = worst_case_placement(cmr_map("emr-fcp-6.8.0-1006-intel.log"), mode=mode)
    assert worst.first_fit.ok
    assert worst.status == "safe"  # unsat: no legal placement exhausts any TDMR
    assert worst.witness is None
    assert "succeeds for every legal placement (proved)" in worst.describe()


@pytest.mark.parametrize("mode", [ANY_NODE, PREFERRED_NODE])
def test_worst_case_witness_rebuilds_to_enospc(mode):
    memlist = crafted_map()
    worst = worst_case_placement(memlist, mode=mode)
    assert worst.first_fit.ok
    assert worst.status == "breaks"
    sizes = [t.pamt_size for t in worst.first_fit.tdmrs]
    for index, base in worst.witness.items():  # legal: aligned, inside one entry, disjoint
        assert base % sizes[index] == 0
        assert any(e.start <= base and base + sizes[index] <= e.end for e in memlist)
    rebuilt = construct_tdmrs(memlist, TdxSysinfo(), ExplicitPlacement(worst.witness))
    assert rebuilt.error.errno == -ENOSPC
    assert rebuilt.failed_tdmr == 0
    assert "reserved areas exhausted" in rebuilt.error.message
    assert "PAMT chunks of TDMRs 0, 1 land in TDMR 0" in worst.describe()


def test_preferred_node_mode_is_narrower_than_any_node():
    """A one-page node-0 entry first, then the low memory on node 1 (16 holes in TDMR 0), the
    high memory on node 0. Both TDMRs prefer node 0, so only a fallback to node 1 puts a chunk
    into TDMR 0 and overfills it."""
    low = [MemRange(SZ_1M, SZ_1M + 4096, 0)]
    low += [MemRange(r.start + SZ_1M, r.end, 1) for r in crafted_map() if r.end <= SZ_1G]
    memlist = (*low, MemRange(SZ_4G, 5 * SZ_1G, 0))
    assert construct_tdmrs(memlist).ok
    assert worst_case_placement(memlist, mode=PREFERRED_NODE).status == "safe"
    worst = worst_case_placement(memlist, mode=ANY_NODE)
    assert worst.status == "breaks"
    assert construct_tdmrs(memlist, placement=ExplicitPlacement(worst.witness)).failed_tdmr == 0


def test_timeout_is_unknown_never_a_pass():
    x, y, z = z3.Ints("x y z")
    solver = z3.Solver()
    solver.add(x > 0, y > 0, z > 0, x * x * x + y * y * y == z * z * z)
    assert solve(solver, 1) == UNKNOWN


def test_explanation_of_the_emr_e820_failure_names_the_conflict():
    machine = read_input(LOGS / "emr-fcp-e820-first-2g.log")
    memlist = build_tdx_memlist(machine.regions)
    result = construct_tdmrs(memlist)
    assert result.error.errno == -ENOSPC
    explanation = explain_construction(result, memlist)
    assert explanation.status == UNSAT and explanation.minimal
    assert set(explanation.core) == {("RSVD-COUNT", 0), ("RSVD-COVERS-HOLES", 0),
                                     ("RSVD-NO-MEMORY", 0)}
    assert explanation.describe().startswith(
        "TDMR [0x0, 2G): 18 reserved areas needed: 1 leading hole, 15 gaps, 1 trailing hole, "
        "1 own PAMT, limit 16")


def test_explanation_of_a_valid_layout_is_sat():
    memlist = crafted_map()
    result = construct_tdmrs(memlist)
    assert explain_layout(result.tdmrs, memlist).status == "sat"


def test_explanation_when_tdmrs_run_out_names_the_count():
    memlist = build_tdx_memlist([MemRange(i * SZ_1G + SZ_1M, i * SZ_1G + 64 * SZ_1M)
                                 for i in range(3)])
    sysinfo = TdxSysinfo(max_tdmrs=2)
    result = construct_tdmrs(memlist, sysinfo)
    explanation = explain_construction(result, memlist, sysinfo)
    assert explanation.core == (("TDMR-COUNT", None),)
    assert explanation.describe() == "3 TDMRs, limit 2 (conflicting: TDMR-COUNT)"
