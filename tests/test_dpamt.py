"""The `dpamt` variant: the TDMR part of the Dynamic PAMT series. On a module without the
feature it is v6.8; on one with it the 4K PAMT is a page bitmap, and every layout invariant
still holds; a wrongly sized bitmap is caught by PAMT-SIZE."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spec.tdmr
from checker.cli import main
from checker.engines.mapstrategies import map_cases
from checker.gate.results import FAIL, PASS
from checker.gate.runners import run_check
from checker.gate.suite import Bounds, CheckSpec, builtin_maps
from checker.inputs.readers import read_input
from checker.views.tdmr_report import TdmrOptions, build
from invariants.layout import check_layout
from spec.memory import SZ_1G, SZ_1M, SZ_4K, MemRange, build_tdx_memlist, round_up
from spec.placement import PLACEMENTS, ExplicitPlacement
from spec.profiles import PROFILES, TDMR_RULES, V6_8, rule_changes
from spec.sysinfo import TdxSysinfo, kernel_sysinfo
from spec.tdmr import construct_tdmrs
from tests.strategies import raw_regions

DPAMT = PROFILES["dpamt"]
LOGS = Path(__file__).resolve().parent.parent / "checker" / "data" / "boot-logs"
MAPS = [str(p) for p in builtin_maps()]
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _on_module(machine, bits: int):
    return replace(machine, sysinfo=replace(machine.sysinfo or TdxSysinfo(),
                                            pamt_page_bitmap_entry_bits=bits))


def _expected_sizes(tdmr_size: int, bits: int, entries: tuple[int, int, int] = (16, 16, 16)
                    ) -> tuple[int, int, int]:
    """Written out from the series' arithmetic: bits per 4K page in bytes, an entry per 2M
    and per 1G page, each rounded up to 4 KiB."""
    return (round_up(-(-(tdmr_size // 4096) * bits // 8), SZ_4K),
            round_up(tdmr_size // (2 * SZ_1M) * entries[1], SZ_4K),
            round_up(tdmr_size // SZ_1G * entries[2], SZ_4K))


def test_dpamt_is_a_listed_variant_of_one_tdmr_rule():
    assert DPAMT.kind == "variant"
    assert rule_changes(DPAMT) == {"pamt_4k_bitmap"} <= TDMR_RULES
    assert "Dynamic PAMT" in DPAMT.source and "2025-09-18" in DPAMT.source


def test_profiles_command_lists_dpamt(capsys):
    assert main(["profiles"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("dpamt "))
    assert "variant" in line and "Dynamic PAMT" in line


@pytest.mark.parametrize("path", MAPS, ids=lambda p: Path(p).stem)
def test_on_every_shipped_log_without_the_feature_dpamt_builds_v6_8s_list(path):
    machine = read_input(path)
    assert (machine.sysinfo or TdxSysinfo()).pamt_page_bitmap_entry_bits == 0
    ours, _ = build(machine, TdmrOptions(DPAMT))
    theirs, _ = build(machine, TdmrOptions(V6_8))
    assert ours == theirs


@pytest.mark.parametrize("path", MAPS, ids=lambda p: Path(p).stem)
def test_v6_8_ignores_the_modules_bitmap(path):
    machine = read_input(path)
    assert build(_on_module(machine, 1), TdmrOptions(V6_8))[0] == \
        build(machine, TdmrOptions(V6_8))[0]


@pytest.mark.parametrize("path", MAPS, ids=lambda p: Path(p).stem)
def test_with_one_bit_each_4k_pamt_is_the_bitmap_and_the_layout_holds(path):
    machine = _on_module(read_input(path), 1)
    result, sysinfo = build(machine, TdmrOptions(DPAMT))
    assert result.tdmrs and result.failed_pamt is None
    for t in result.tdmrs:
        assert t.pamt_sizes == _expected_sizes(t.size, 1)
        assert t.pamt_sizes[0] == t.size // 2**15  # a bit per 4K page: 32 KiB per GiB
    if result.ok:
        memlist = build_tdx_memlist(machine.regions)
        assert check_layout(result.tdmrs, memlist, kernel_sysinfo(sysinfo, DPAMT)) == []


def test_one_bit_gives_about_a_hundredth_of_the_logged_pamt():
    """spr-8480c-256g: TDMRs of 2, 126 and 128 GiB. Per GiB v6.8 needs 4 MiB + 8 KiB of 4K and
    2M PAMT, the bitmap 32 KiB + 8 KiB; each 1G PAMT is one 4 KiB page. So 84 + 5044 + 5124 KB
    against the logged 1050636 KB."""
    machine = read_input(str(LOGS / "spr-8480c-256g.log"))
    v68, _ = build(machine, TdmrOptions(V6_8))
    dpamt, _ = build(_on_module(machine, 1), TdmrOptions(DPAMT))
    assert [t.size // SZ_1G for t in dpamt.tdmrs] == [2, 126, 128]
    assert [t.pamt_size // 1024 for t in dpamt.tdmrs] == [64 + 16 + 4, 4032 + 1008 + 4,
                                                           4096 + 1024 + 4]
    assert v68.pamt_kb == machine.logged.pamt_kb == 1050636
    assert dpamt.pamt_kb == 10252
    assert 100 < v68.pamt_kb / dpamt.pamt_kb < 105


@PROPERTY
@given(map_cases(), st.integers(0, 255))
def test_dpamt_without_the_feature_equals_v6_8_and_v6_8_ignores_it(case, bits):
    on_module = replace(case.sysinfo, pamt_page_bitmap_entry_bits=bits)
    for placement in case.placements:
        reference = construct_tdmrs(case.memlist, case.sysinfo, placement)
        assert construct_tdmrs(case.memlist, case.sysinfo, placement, profile=DPAMT) == reference
        assert construct_tdmrs(case.memlist, on_module, placement) == reference


@PROPERTY
@given(map_cases(), st.one_of(st.just(1), st.integers(1, 255)))
def test_dpamt_with_the_feature_keeps_every_layout_invariant(case, bits):
    sysinfo = replace(case.sysinfo, pamt_page_bitmap_entry_bits=bits)
    for placement in case.placements:
        result = construct_tdmrs(case.memlist, sysinfo, placement, profile=DPAMT)
        if result.failed_pamt is None and result.tdmrs:
            for t in result.tdmrs:
                assert t.pamt_sizes == _expected_sizes(t.size, bits, sysinfo.pamt_entry_size)
                assert t.pamt_base >= SZ_1M
        if result.ok:
            assert check_layout(result.tdmrs, case.memlist, sysinfo) == []


@given(st.integers(1, 1 << 22), st.integers(1, 255))
def test_the_bitmap_roundings_are_exact_on_gib_aligned_tdmrs(gibs, bits):
    """Why a bitmap left unrounded would go unseen: a GiB holds 2^18 pages, so its bitmap is
    2^15 x bits bytes, already whole pages."""
    assert (gibs * SZ_1G // SZ_4K * bits) % (8 * SZ_4K) == 0


def _bytes_per_page(tdmr, bits):
    """The broken variant: the module's bits taken as bytes per 4K page."""
    return round_up((tdmr.size >> 12) * bits, SZ_4K)


@pytest.mark.parametrize("log", ["spr-8480c-256g", "2s-512g"])
def test_a_bitmap_sized_in_bytes_per_page_is_caught_by_pamt_size(monkeypatch, log):
    """The layout check the default gate runs on dpamt (on a 1-bit module) passes, and fails
    with PAMT-SIZE once the bitmap rule alone is broken."""
    path = str(LOGS / f"{log}.log")
    check = CheckSpec(f"layout/dpamt/{log}", "layout", "dpamt", path, Bounds())
    assert run_check(check).status == PASS
    monkeypatch.setattr(spec.tdmr, "tdmr_get_pamt_bitmap_sz", _bytes_per_page)
    result = run_check(check)
    assert result.status == FAIL and result.invariant == "PAMT-SIZE"
    assert "4k PAMT" in result.detail
    doc = result.counterexample["map"]
    assert doc["metadata"]["pamt_page_bitmap_entry_bits"] == 1  # replays on that module
    machine = _on_module(read_input(path), 1)
    broken, sysinfo = build(machine, TdmrOptions(DPAMT))
    found = check_layout(broken.tdmrs, build_tdx_memlist(machine.regions),
                         kernel_sysinfo(sysinfo, DPAMT))
    assert {v.constraint for v in found} == {"PAMT-SIZE"}
    assert {v.item for v in found} == {"4k PAMT"}


# --- no PAMT chunk at address 0, so skipping by base is skipping by size ------------------------

@PROPERTY
@given(raw_regions(), st.sampled_from(sorted(PLACEMENTS)), st.integers(0, 2))
def test_no_policy_places_a_chunk_below_1_mib(regions, name, bits):
    memlist = build_tdx_memlist(regions)
    if not memlist:
        return
    sysinfo = TdxSysinfo(pamt_page_bitmap_entry_bits=bits)
    result = construct_tdmrs(memlist, sysinfo, PLACEMENTS[name], profile=DPAMT)
    placed = result.tdmrs if result.failed_pamt is None else ()
    assert all(t.pamt_base >= SZ_1M for t in placed)


def test_a_memory_list_reaching_below_1_mib_is_refused():
    with pytest.raises(ValueError, match="1 MiB"):
        construct_tdmrs((MemRange(0, SZ_1G),), profile=DPAMT)


def test_a_chunk_placed_at_0_by_hand_breaks_pamt_in_memory():
    memlist = build_tdx_memlist([MemRange(0, 2 * SZ_1G)])
    result = construct_tdmrs(memlist, placement=ExplicitPlacement({0: 0}), profile=DPAMT)
    assert result.ok and result.tdmrs[0].pamt_base == 0
    assert "PAMT-IN-MEMORY" in {v.constraint for v in check_layout(result.tdmrs, memlist)}


# --- the command line --------------------------------------------------------------------------

def test_tdmr_runs_dpamt_on_a_module_with_the_bitmap(capsys):
    log = str(LOGS / "spr-8480c-256g.log")
    code = main(["tdmr", log, "--profile", "dpamt", "--pamt-bitmap-bits", "1", "--format",
                 "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["pamt_kb"] == 10252
    assert report["metadata"]["pamt_page_bitmap_entry_bits"] == 1
    assert report["layout_check"]["status"] == "valid"
    assert main(["tdmr", log, "--pamt-bitmap-bits", "1", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["pamt_kb"] == 1050636  # v6.8 ignores it


@pytest.mark.parametrize("value,words", [("256", "8-bit"), ("-1", "0 or more"),
                                         ("one", "not an integer")])
def test_a_bad_bitmap_width_is_a_usage_error(capsys, value, words):
    with pytest.raises(SystemExit) as exit_:
        main(["tdmr", str(LOGS / "spr-8480c-256g.log"), "--pamt-bitmap-bits", value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and words in err and "Traceback" not in err


def test_a_json_map_gives_the_bitmap_width_and_bad_ones_are_refused(capsys, tmp_path):
    regions = [{"start": "0x100000", "end": hex(4 * SZ_1G), "nid": 0}]
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"regions": regions,
                                "metadata": {"pamt_page_bitmap_entry_bits": 1}}))
    assert main(["tdmr", str(path), "--profile", "dpamt", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["tdmrs"][0]["pamt_4k_size"] == 4 * 32 * 1024
    path.write_text(json.dumps({"regions": regions,
                                "metadata": {"pamt_page_bitmap_entry_bits": 256}}))
    assert main(["tdmr", str(path), "--profile", "dpamt"]) == 2
    assert "8-bit field" in capsys.readouterr().err
