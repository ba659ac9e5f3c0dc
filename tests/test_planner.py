"""The planner: valid layouts where the kernel's one-TDMR-per-region rule fails."""

from __future__ import annotations

from pathlib import Path

from checker.engines.planner import hole_lower_bound, plan_layout
from checker.inputs.readers import read_input
from invariants.layout import LayoutContext, check_layout
from spec.errno import ENOSPC
from spec.memory import SZ_1G, SZ_1M, MemRange, build_tdx_memlist
from spec.profiles import get_profile
from spec.sysinfo import TdxSysinfo

LOGS = Path(__file__).resolve().parent.parent / "checker" / "data" / "boot-logs"


def test_65_regions_over_1g_apart_fit_in_5_tdmrs():
    memlist = build_tdx_memlist(MemRange(2 * i * SZ_1G + SZ_1M, 2 * i * SZ_1G + 513 * SZ_1M)
                                for i in range(65))
    plan = plan_layout(memlist)
    assert plan.kernel.error.errno == -ENOSPC and "TDMRs exhausted" in plan.kernel.error.message
    assert plan.status == "found" and plan.fewest_tdmrs_proved
    # 65 regions need 65 gaps-or-edges plus one PAMT area per TDMR: 4 x 16 < 65 + 4 + 4
    assert len(plan.tdmrs) == 5
    assert plan.max_areas <= 16
    assert check_layout(plan.tdmrs, memlist) == [] and plan.violations == ()


def test_emr_e820_map_splits_the_failing_tdmr():
    memlist = build_tdx_memlist(read_input(LOGS / "emr-fcp-e820-first-2g.log").regions)
    plan = plan_layout(memlist)
    assert not plan.kernel.ok
    assert [(t.base, t.end) for t in plan.tdmrs] == [(0, SZ_1G), (SZ_1G, 2 * SZ_1G)]
    assert check_layout(plan.tdmrs, memlist) == []
    assert plan.describe().startswith("plan: 2 TDMRs")


def test_with_cmr_knowledge_one_tdmr_is_enough():
    """The same memory with holes taken from the CMR: only the two edges are holes."""
    memlist = build_tdx_memlist(read_input(LOGS / "emr-fcp-e820-first-2g.log").regions)
    cmrs = (MemRange(SZ_1M, 0x6F800000),)
    plan = plan_layout(memlist, cmrs=cmrs, profile=get_profile("cmr-holes"))
    assert [(t.base, t.end) for t in plan.tdmrs] == [(0, 2 * SZ_1G)]
    assert plan.areas == 3  # leading hole, trailing hole, PAMT
    assert check_layout(plan.tdmrs, memlist, hole_ranges=cmrs) == []


def test_no_layout_within_the_limits_is_proved_infeasible():
    memlist = build_tdx_memlist([MemRange(SZ_1M, 64 * SZ_1M)])
    plan = plan_layout(memlist, TdxSysinfo(max_tdmrs=2, max_reserved_per_tdmr=1))
    assert plan.status == "infeasible" and plan.tdmrs == ()


def test_plan_json_has_the_layout_and_the_proofs():
    memlist = build_tdx_memlist([MemRange(SZ_1M, 64 * SZ_1M)])
    data = plan_layout(memlist).to_json()
    assert data["status"] == "found" and data["tdmr_count"] == 1
    assert data["fewest_tdmrs_proved"] and data["fewest_areas_proved"]
    assert data["tdmrs"][0]["base"] == "0x0"


def test_hole_lower_bound_matches_hand_count():
    """65 regions one per odd GiB: k TDMRs meet 65 + k hole pieces at best (each TDMR one more
    than the regions it holds); 65 TDMRs, one per region, meet 2 each."""
    memlist = build_tdx_memlist(MemRange(2 * i * SZ_1G + SZ_1M, 2 * i * SZ_1G + 513 * SZ_1M)
                                for i in range(65))
    holes = LayoutContext.of(memlist).holes
    assert [hole_lower_bound(k, memlist, holes) for k in (1, 5, 65)] == [66, 70, 130]
