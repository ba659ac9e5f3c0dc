"""`python -m checker counterexample` and `replay` end to end (the issue's acceptance), and
`tdmr --worst-case` / `--plan` on the maps they give.

The kernel results claimed by the synthesiser are recounted here by hand: PAMT chunk sizes from
the entry sizes, TDMRs from 1 GiB rounding, reserved areas from holes, gaps and chunks.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest
from checkout import REPO, run_module

from checker.cli import main
from spec.memory import SZ_1G, SZ_1M, SZ_4G, MemRange, build_tdx_memlist, round_down, round_up
from spec.placement import ExplicitPlacement, FirstFit
from spec.sysinfo import TdxSysinfo
from spec.tdmr import construct_tdmrs

LOGS = REPO / "checker" / "data" / "boot-logs"
KINDS = ("kernel-fails-plan-exists", "placement-breaks", "rsvd-exhausted", "tdmrs-exhausted")
SMALL_ARGS = ("--max-tdmrs", "2", "--max-reserved", "2")
SMALL = TdxSysinfo(max_tdmrs=2, max_reserved_per_tdmr=2)
PAGE = 4096

# PAMT chunk of a TDMR of G GiB with 16-byte entries, each PAMT rounded up to 4 KiB:
# 4K: G * 2^18 entries * 16 B = G * 4 MiB; 2M: G * 512 * 16 B = G * 8 KiB; 1G: G * 16 B -> 4 KiB
CHUNK_1G = 1 * (1 << 22) + 1 * 8192 + 4096  # 0x403000
CHUNK_2G = 2 * (1 << 22) + 2 * 8192 + 4096  # 0x805000
assert (CHUNK_1G, CHUNK_2G) == (0x403000, 0x805000)

EXHAUSTED = "initialization failed: TDMR [0x0, 0x40000000): reserved areas exhausted."


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def counterexample(capsys, kind: str, *args) -> tuple[int, dict]:
    code = main(["counterexample", kind, "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def tdmr_json(capsys, path: Path, *args) -> tuple[int, dict]:
    code = main(["tdmr", str(path), "--format", "json", *args])
    return code, json.loads(capsys.readouterr().out)


def regions_of(doc: dict) -> list[MemRange]:
    return [MemRange(int(r["start"], 16), int(r["end"], 16), r["nid"]) for r in doc["regions"]]


@pytest.fixture(scope="module")
def small_reports():
    """Every kind with 2 TDMRs and 2 reserved areas per TDMR (each well under a second)."""
    out = {}
    for kind in KINDS:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main(["counterexample", kind, "--format", "json", *SMALL_ARGS])
        assert code == 0, kind
        out[kind] = json.loads(buffer.getvalue())
    return out


# --- default limits (64 TDMRs, 16 reserved areas) --------------------------------------------


def test_rsvd_exhausted_with_default_limits_is_15_regions_proved_minimal(work, capsys):
    code, report = counterexample(capsys, "rsvd-exhausted")
    assert code == 0
    assert report["kind"] == "rsvd-exhausted"
    assert report["proved_minimal"] is True
    regions = regions_of(report["map"])
    assert len(regions) == report["region_count"] == 15
    assert report["map"]["metadata"] == {"max_tdmrs": 64, "max_reserved_per_tdmr": 16,
                                         "pamt_entry_size": [16, 16, 16]}
    assert report["kernel"]["error"] == {"errno": -28, "message": EXHAUSTED}
    assert report["kernel"]["failed_tdmr"] == 0
    # By hand: all 15 regions in [0, 1G), one TDMR. The first region is exactly one 1 GiB PAMT
    # chunk; 14 one-page regions follow. Areas: 1 leading hole + 14 gaps + 1 trailing hole +
    # 1 own PAMT = 17 > 16. With one region fewer it would be 16: fits, hence minimal.
    assert all(r.end <= SZ_1G for r in regions)
    assert regions[0].size == CHUNK_1G
    assert all(r.size == PAGE for r in regions[1:])
    result = construct_tdmrs(build_tdx_memlist(regions), TdxSysinfo(), FirstFit())
    assert len(result.tdmrs) == 1 and result.failed_tdmr == 0
    demand = result.demand[0]
    assert (demand.leading_holes, demand.gaps, demand.trailing_holes, demand.own_pamt) == (
        1, 14, 1, 1)
    assert demand.total == 17
    fewer = construct_tdmrs(build_tdx_memlist(regions[:-1]), TdxSysinfo(), FirstFit())
    assert fewer.ok and fewer.demand[0].total == 16


def test_tdmrs_exhausted_with_default_limits_is_65_regions_proved_minimal(work, capsys):
    code, report = counterexample(capsys, "tdmrs-exhausted")
    assert code == 0
    assert report["kind"] == "tdmrs-exhausted"
    assert report["proved_minimal"] is True
    regions = regions_of(report["map"])
    assert len(regions) == 65
    assert report["kernel"]["error"] == {"errno": -28,
                                         "message": "initialization failed: TDMRs exhausted."}
    assert report["kernel"]["failed_tdmr"] is None
    # By hand: one region per GiB, 65 consecutive GiBs -> 65 TDMRs > 64.
    gibs = [(round_down(r.start, SZ_1G), round_up(r.end, SZ_1G)) for r in regions]
    assert all(end - start == SZ_1G for start, end in gibs)
    assert len({start for start, _ in gibs}) == 65


# --- small limits: every kind, checked by hand ------------------------------------------------


def test_small_rsvd_exhausted_is_one_region_holding_its_own_chunk(small_reports):
    report = small_reports["rsvd-exhausted"]
    (region,) = regions_of(report["map"])
    # One chunk-long region at the first chunk-aligned address above 1 MiB: TDMR [0, 1G) with
    # a leading hole, its own PAMT filling the region, a trailing hole: 3 areas > 2.
    assert region.start == round_up(SZ_1M, CHUNK_1G) == 0x403000
    assert region.size == CHUNK_1G
    assert report["proved_minimal"] is True
    result = construct_tdmrs(build_tdx_memlist([region]), SMALL, FirstFit())
    assert result.failed_tdmr == 0 and result.error.errno == -28
    (tdmr,) = result.tdmrs
    assert (tdmr.base, tdmr.size) == (0, SZ_1G)
    assert tdmr.pamt_size == CHUNK_1G and tdmr.pamt_base == region.start
    assert result.demand[0].total == 3 > SMALL.max_reserved_per_tdmr
    assert report["kernel"]["error"] == {"errno": -28, "message": EXHAUSTED}


def test_small_tdmrs_exhausted_needs_three_tdmrs(small_reports):
    report = small_reports["tdmrs-exhausted"]
    regions = regions_of(report["map"])
    assert len(regions) == 3 and report["proved_minimal"] is True
    # Each region in another GiB (the first two on either side of 1 GiB): TDMRs [0, 1G),
    # [1G, 2G), [2G, 3G) -> 3 > 2.
    tdmrs = sorted({(round_down(r.start, SZ_1G), round_up(r.end, SZ_1G)) for r in regions})
    assert tdmrs == [(0, SZ_1G), (SZ_1G, 2 * SZ_1G), (2 * SZ_1G, 3 * SZ_1G)]
    result = construct_tdmrs(build_tdx_memlist(regions), SMALL, FirstFit())
    assert result.error.errno == -28 and result.failed_tdmr is None
    assert result.error.message == "initialization failed: TDMRs exhausted."
    assert report["kernel"]["error"]["message"] == result.error.message


def test_small_kernel_fails_plan_exists_is_one_region_across_1g(small_reports):
    report = small_reports["kernel-fails-plan-exists"]
    (region,) = regions_of(report["map"])
    assert report["proved_minimal"] is True
    # The region crosses 1 GiB, so v6.8 opens one TDMR [0, 2G): leading hole, trailing hole
    # and its own 2 GiB chunk inside the region: 3 areas > 2.
    assert region.start < SZ_1G < region.end <= 2 * SZ_1G
    half = max(2 * CHUNK_2G, 2 * CHUNK_1G)
    assert (region.start, region.end) == (SZ_1G - half, SZ_1G + half)
    result = construct_tdmrs(build_tdx_memlist([region]), SMALL, FirstFit())
    assert result.failed_tdmr == 0 and result.error.errno == -28
    assert (result.tdmrs[0].base, result.tdmrs[0].size) == (0, 2 * SZ_1G)
    assert result.tdmrs[0].pamt_size == CHUNK_2G
    assert result.demand[0].total == 3
    # A planner cuts at 1 GiB instead: 2 TDMRs of 2 areas each (a hole and a 1 GiB chunk).
    plan = report["plan"]
    assert plan["status"] == "found" and plan["tdmr_count"] == 2
    assert [(int(t["base"], 16), int(t["size"], 16)) for t in plan["tdmrs"]] == [
        (0, SZ_1G), (SZ_1G, SZ_1G)]
    assert [len(t["reserved"]) for t in plan["tdmrs"]] == [2, 2]
    for t in plan["tdmrs"]:
        assert sorted(a["kind"] for a in t["reserved"]) == ["hole", "pamt"]
        assert [int(s, 16) for s in t["pamt_sizes"]] == [1 << 22, 8192, 4096]
    assert report["kernel"]["error"]["errno"] == -28


def test_small_placement_breaks_first_fit_succeeds_the_witness_fails(small_reports):
    report = small_reports["placement-breaks"]
    regions = regions_of(report["map"])
    assert len(regions) == 2 and report["proved_minimal"] is True
    low, high = regions
    # Low region: exactly two 1 GiB chunks; high region: all of [4G, 5G).
    assert (low.start, low.size) == (0x403000, 2 * CHUNK_1G)
    assert (high.start, high.end) == (SZ_4G, SZ_4G + SZ_1G)
    memlist = build_tdx_memlist(regions)
    first_fit = construct_tdmrs(memlist, SMALL, FirstFit())
    assert first_fit.ok and report["kernel"]["error"] is None
    # first-fit puts both chunks above 4 GiB: TDMR 0 keeps its 2 holes, TDMR 1 has 2 chunks
    assert all(t.pamt_base >= SZ_4G for t in first_fit.tdmrs)
    assert [d.total for d in first_fit.demand] == [2, 2]
    # The witness puts both chunks in the low region: TDMR 0 needs 2 holes + 2 chunks = 4 > 2
    worst = report["worst_case"]
    assert worst["status"] == "breaks"
    bases = {int(i): int(b, 16) for i, b in worst["witness"].items()}
    assert sorted(bases.values()) == [low.start, low.start + CHUNK_1G]
    broken = construct_tdmrs(memlist, SMALL, ExplicitPlacement(bases))
    assert broken.error.errno == -28
    assert broken.failed_tdmr == 0 and broken.demand[0].total == 4


@pytest.mark.parametrize("kind", KINDS)
def test_the_map_loads_through_tdmr_with_the_same_result(work, capsys, small_reports, kind):
    report = small_reports[kind]
    path = work / f"{kind}.json"
    path.write_text(json.dumps(report["map"]))
    code, tdmr = tdmr_json(capsys, path)
    assert tdmr["error"] == report["kernel"]["error"]
    assert tdmr["metadata"] == {"max_tdmrs": 2, "max_reserved_per_tdmr": 2,
                                "pamt_entry_size": [16, 16, 16],
                                "pamt_page_bitmap_entry_bits": 0}
    if kind == "placement-breaks":
        assert code == 0 and tdmr["error"] is None
        assert tdmr["pamt_kb"] == report["kernel"]["pamt_kb"] == 2 * CHUNK_1G // 1024
    else:
        assert code == 1 and tdmr["error"]["errno"] == -28


def test_kernel_fails_plan_exists_through_tdmr_plan(work, capsys, small_reports):
    path = work / "kfpe.json"
    path.write_text(json.dumps(small_reports["kernel-fails-plan-exists"]["map"]))
    code, plain = tdmr_json(capsys, path)
    assert code == 1 and plain["error"]["errno"] == -28
    code, planned = tdmr_json(capsys, path, "--plan")
    assert code == 1  # the kernel still fails; the plan shows it need not
    assert planned["plan"]["status"] == "found"


def test_placement_breaks_through_tdmr_worst_case(work, capsys, small_reports):
    path = work / "pb.json"
    path.write_text(json.dumps(small_reports["placement-breaks"]["map"]))
    code, report = tdmr_json(capsys, path, "--worst-case")
    assert code == 1  # first-fit builds, but some legal placement makes it fail
    any_node = next(w for w in report["worst_case"] if w["mode"] == "any-node")
    assert any_node["status"] == "breaks"
    bases = {int(i): int(b, 16) for i, b in any_node["witness"].items()}
    regions = regions_of(small_reports["placement-breaks"]["map"])
    result = construct_tdmrs(build_tdx_memlist(regions), SMALL, ExplicitPlacement(bases))
    assert result.error.errno == -28


@pytest.mark.parametrize("kind", ["rsvd-exhausted", "placement-breaks"])
def test_save_writes_a_file_that_replay_replays_with_exit_1(work, capsys, kind):
    code = main(["counterexample", kind, *SMALL_ARGS, "--save", "--counterexamples", "saved"])
    captured = capsys.readouterr()
    assert code == 0
    (path,) = (work / "saved").iterdir()
    assert path.name.startswith(f"{kind}-") and path.suffix == ".json"
    assert f"counterexample saved: {Path('saved') / path.name}" in captured.err
    assert captured.out.startswith(f"{kind}: smallest map has ")  # the text format by default
    code = main(["replay", str(path)])
    out = capsys.readouterr().out
    assert code == 1
    assert out.splitlines()[0].startswith(f"counterexample/{kind}: ")
    assert "still violates (profile v6.8)" in out.splitlines()[0]
    assert "construction fails:" in out and "(-28)" in out
    assert out.rstrip().endswith("same result as recorded")

    # saving again writes no second file
    if kind == "rsvd-exhausted":
        main(["counterexample", kind, *SMALL_ARGS, "--save", "--counterexamples", "saved"])
        capsys.readouterr()
        assert list((work / "saved").iterdir()) == [path]


def test_saving_placement_breaks_again_and_again_keeps_one_file(work, capsys):
    for _ in range(30):
        main(["counterexample", "placement-breaks", *SMALL_ARGS, "--save",
              "--counterexamples", "saved"])
    capsys.readouterr()
    assert len(list((work / "saved").iterdir())) == 1


def test_worst_case_on_a_real_log_answers_for_both_modes(work, capsys):
    code, report = tdmr_json(capsys, LOGS / "emr-fcp-6.8.0-1006-intel.log", "--worst-case")
    assert code == 0
    answers = {w["mode"]: w for w in report["worst_case"]}
    assert set(answers) == {"any-node", "preferred-node"}
    for answer in answers.values():
        assert answer["status"] in {"safe", "breaks"}
        if answer["status"] == "breaks":
            assert answer["witness"]
        else:
            assert answer["witness"] is None and "(proved)" in answer["text"]


# --- replay ------------------------------------------------------------------------------------


def _plan_counterexample(work: Path, capsys) -> Path:
    """The counterexample verify stores for the plan finding on the EMR e820 log."""
    shutil.copy(LOGS / "emr-fcp-e820-first-2g.log", work / "emr.log")
    (work / "suite.toml").write_text('profiles = ["v6.8"]\nmaps = ["emr.log"]\n'
                                     'checks = ["plan"]\ncounterexamples = "cex"\n')
    assert main(["verify", "--suite", "suite.toml"]) == 0  # a finding, stored beside the corpus
    capsys.readouterr()
    (path,) = (work / "cex.new").iterdir()
    return path


def test_replay_exits_1_while_it_still_violates(work, capsys):
    path = _plan_counterexample(work, capsys)
    code = main(["replay", str(path)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines == [
        "plan/v6.8/emr: INIT-WHEN-LAYOUT-EXISTS still violates (profile v6.8)",
        "construction fails: initialization failed: TDMR [0x0, 0x80000000): reserved areas "
        "exhausted. (-28)",
        "same result as recorded",
    ]


def test_replay_exits_0_once_the_map_no_longer_violates(work, capsys):
    path = _plan_counterexample(work, capsys)
    doc = json.loads(path.read_text())
    doc["counterexample"]["map"]["regions"] = [{"start": "0x100000", "end": "0x80000000",
                                                "nid": 0}]
    path.write_text(json.dumps(doc))
    code = main(["replay", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines()[0] == ("plan/v6.8/emr: INIT-WHEN-LAYOUT-EXISTS no longer violates "
                                   "(profile v6.8)")
    assert "construction now succeeds" in out
    assert "DIFFERENT from the recorded result:" in out


@pytest.mark.parametrize("content", ["not json at all", "{}", '{"schema_version": 1}',
                                     '{"schema_version": 2, "counterexample": {}}'])
def test_replay_of_a_non_counterexample_file_is_exit_2_one_line(work, content):
    (work / "x.json").write_text(content)
    proc = run_module("replay", "x.json", cwd=work)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: x.json: not a counterexample file")


def test_replay_of_a_counterexample_with_an_unknown_profile_is_exit_2(work, capsys):
    path = _plan_counterexample(work, capsys)
    doc = json.loads(path.read_text())
    doc["profile"] = "v9.9"
    path.write_text(json.dumps(doc))
    assert main(["replay", str(path)]) == 2
    assert "unknown profile 'v9.9'" in capsys.readouterr().err
