"""`python -m checker tdmr` end to end: the real logs' figures, exit codes and error lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from checker.cli import main

LOGS = Path(__file__).parent.parent / "checker" / "data" / "boot-logs"
RSVD_EXHAUSTED = "initialization failed: TDMR [0x0, 0x80000000): reserved areas exhausted."


def run_json(capsys, *args) -> tuple[int, dict]:
    code = main(["tdmr", *map(str, args), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("log", sorted(p.name for p in LOGS.glob("*.log")
                                       if "allocated for PAMT" in p.read_text()
                                       and "CMR:" in p.read_text()))
def test_pamt_figure_equals_the_logged_one(capsys, log):
    code, report = run_json(capsys, LOGS / log)
    assert code == 0
    assert report["logged_pamt_kb"] is not None
    assert report["pamt_kb"] == report["logged_pamt_kb"]
    assert report["reproduces_log"] == {"pamt_kb": True, "error": True}


def test_json_has_the_documented_keys_and_plain_integers(capsys):
    _, report = run_json(capsys, LOGS / "spr-8480c-256g.log")
    for key in ("memory", "tdmrs", "pamt_kb", "error", "logged_pamt_kb", "logged_error"):
        assert key in report
    assert report["memory"][0] == {"start": 0x100000, "end": 0x77800000, "nid": 0}
    tdmr = report["tdmrs"][1]
    for key in ("base", "size", "pamt_4k_base", "pamt_4k_size", "pamt_2m_base",
                "pamt_2m_size", "pamt_1g_base", "pamt_1g_size", "reserved"):
        assert isinstance(tdmr[key], (int, list))
    assert tdmr["base"] == 4 << 30 and tdmr["size"] == 126 << 30
    # 126 GiB: 4K PAMT = 126 * 2^18 entries * 16 B; 2M = 126 * 512 * 16 B; 1G = one page
    assert (tdmr["pamt_4k_size"], tdmr["pamt_2m_size"], tdmr["pamt_1g_size"]) == (
        126 * (1 << 22), 126 * 8192, 4096)
    assert tdmr["pamt_2m_base"] == tdmr["pamt_4k_base"] + tdmr["pamt_4k_size"]


def test_emr_e820_log_fails_with_exactly_the_logged_message(capsys):
    code, report = run_json(capsys, LOGS / "emr-fcp-e820-first-2g.log")
    assert code == 1
    assert report["error"] == {"errno": -28, "message": RSVD_EXHAUSTED}
    assert report["logged_error"] == report["error"]
    assert report["reproduces_log"]["error"] is True
    assert report["pamt_kb"] is None
    assert "1 leading hole, 15 gaps, 1 trailing hole" in report["explanation"]


def test_emr_with_its_cmr_and_cmr_holes_succeeds_with_three_areas(tmp_path, capsys):
    log = tmp_path / "emr-with-cmr.log"
    log.write_text((LOGS / "emr-fcp-e820-first-2g.log").read_text().replace(
        "virt/tdx: initialization failed", "virt/tdx: CMR: [0x100000, 0x6f800000)\n"
        "virt/tdx: initialization failed", 1))
    code, report = run_json(capsys, log, "--holes", "cmr")
    assert code == 0 and report["error"] is None
    tdmr = report["tdmrs"][0]
    assert (tdmr["base"], tdmr["size"]) == (0, 2 << 30)
    chunk = tdmr["pamt_4k_size"] + tdmr["pamt_2m_size"] + tdmr["pamt_1g_size"]
    assert tdmr["reserved"] == [
        {"offset": 0, "size": 0x100000, "kind": "hole"},
        {"offset": tdmr["pamt_4k_base"], "size": chunk, "kind": "pamt"},
        {"offset": 0x6F800000, "size": 0x80000000 - 0x6F800000, "kind": "hole"},
    ]
    # and the memblock run on the same file points at the CMR fix
    main(["tdmr", str(log)])
    assert "with CMR-derived holes (--holes cmr): succeeds" in capsys.readouterr().out


def test_tdx_1_0_module_fails_at_the_first_metadata_read(capsys):
    code = main(["tdmr", str(LOGS / "tdx-1.0-module-fail.log")])
    text = capsys.readouterr().out
    assert code == 1
    assert "module: TDX 1.0" in text
    assert "fails at the first metadata read (TDH.SYS.RD)" in text and "(-5)" in text
    assert "matches the failure in the log" in text
    assert "TDMR 3" in text  # the TDMRs the CMRs would give are still shown
    _, report = run_json(capsys, LOGS / "tdx-1.0-module-fail.log")
    assert report["error"]["errno"] == -5 and report["failed_stage"] == "metadata"
    assert len(report["tdmrs"]) == 4


def test_limits_from_the_command_line(tmp_path, capsys):
    regions = [{"start": (2 * i + 1) << 30, "end": ((2 * i + 1) << 30) + (1 << 29)}
               for i in range(5)]
    path = tmp_path / "five.json"
    path.write_text(json.dumps({"regions": regions}))
    code, report = run_json(capsys, path, "--max-tdmrs", "4")
    assert code == 1
    assert report["error"] == {"errno": -28, "message": "initialization failed: TDMRs exhausted."}
    code, report = run_json(capsys, path, "--max-tdmrs", "5", "--pamt-entry-size", "8,8,8")
    assert code == 0 and report["metadata"]["pamt_entry_size"] == [8, 8, 8]
    assert "consumed TDMRs reaching limit: 5 used out of 5" in report["messages"]


def test_explicit_pamt_bases_from_the_map(tmp_path, capsys):
    """A what-if: TDMR 1's PAMT placed inside TDMR 0 costs TDMR 0 one more area."""
    doc = {"regions": [{"start": "0x100000", "end": "0x40000000"},
                       {"start": "0x80000000", "end": "0xc0000000"}],
           "pamt_bases": ["0x80000000", "0x10000000"]}
    path = tmp_path / "what-if.json"
    path.write_text(json.dumps(doc))
    code, report = run_json(capsys, path)
    assert code == 0 and report["placement"] == "explicit"
    assert [a["kind"] for a in report["tdmrs"][0]["reserved"]] == ["hole", "pamt"]
    assert [a["kind"] for a in report["tdmrs"][1]["reserved"]] == ["pamt"]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "checker", *args], capture_output=True,
                          text=True, cwd=Path(__file__).parent.parent)


def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"regions": [\n {"start": "0x100000", "end": "0x90000"}\n]}')
    proc = run_cli("tdmr", str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {bad}:2: regions: end 0x90000 is not above start 0x100000"]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_usage_errors_exit_2(tmp_path):
    assert run_cli("tdmr").returncode == 2
    assert run_cli("tdmr", str(LOGS / "spr-8480c-256g.log"), "--max-tdmrs", "0").returncode == 2
    proc = run_cli("tdmr", str(LOGS / "emr-fcp-e820-first-2g.log"), "--holes", "cmr")
    assert proc.returncode == 2 and "needs CMRs" in proc.stderr
    proc = run_cli("tdmr", str(LOGS / "spr-8480c-256g.log"), "--profile", "v9.9")
    assert proc.returncode == 2 and "unknown profile" in proc.stderr


def test_check_layout_of_a_user_tdmr_list(tmp_path, capsys):
    """The engine's own list passes; the same list with one PAMT area dropped is caught by
    name, TDMR and area."""
    log = LOGS / "spr-8480c-256g.log"
    _, report = run_json(capsys, log)
    mine = tmp_path / "mine.json"
    mine.write_text(json.dumps({"tdmrs": report["tdmrs"]}))
    assert main(["tdmr", str(log), "--check-layout", str(mine)]) == 0
    assert "layout invariants: all hold" in capsys.readouterr().out
    report["tdmrs"][1]["reserved"] = [a for a in report["tdmrs"][1]["reserved"]
                                      if a["offset"] != report["tdmrs"][0]["pamt_4k_base"]
                                      - report["tdmrs"][1]["base"]]
    mine.write_text(json.dumps({"tdmrs": report["tdmrs"]}))
    assert main(["tdmr", str(log), "--check-layout", str(mine), "--format", "json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert not result["valid"]
    assert [(v["constraint"], v["tdmr"], v["item"]) for v in result["violations"]] == [
        ("RSVD-COVERS-PAMT", 1, "PAMT of TDMR 0")]


def test_check_layout_with_a_bad_file_is_an_input_error(tmp_path):
    bad = tmp_path / "tdmrs.json"
    bad.write_text('{"tdmrs": [{"size": 1}]}')
    proc = run_cli("tdmr", str(LOGS / "spr-8480c-256g.log"), "--check-layout", str(bad))
    assert proc.returncode == 2 and "not a TDMR list" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_layout_check_is_part_of_every_tdmr_report(capsys):
    _, report = run_json(capsys, LOGS / "2s-512g.log")
    assert report["layout_check"] == {"status": "valid", "violations": []}
    _, report = run_json(capsys, LOGS / "emr-fcp-e820-first-2g.log")
    assert report["layout_check"]["status"] == "not-built"
    core = report["layout_check"]["explanation"]
    assert core["status"] == "unsat" and {"constraint": "RSVD-COUNT", "tdmr": 0} in core["core"]
    assert "17 reserved areas needed" in core["text"] or "18 reserved areas needed" in core["text"]


def test_graph_and_configs_commands(tmp_path, capsys):
    assert main(["configs"]) == 0
    assert "unchecked-callers" in capsys.readouterr().out
    out = tmp_path / "g.graphml"
    assert main(["graph", "--config", "1x1", "--faults", "0", "--format", "graphml",
                 "--output", str(out)]) == 0
    import networkx as nx

    graph = nx.read_graphml(out)
    assert graph.number_of_nodes() > 10
    assert "exhaustive" in capsys.readouterr().err
    assert main(["graph", "--config", "1x1", "--faults", "0"]) == 0
    assert capsys.readouterr().out.startswith("digraph")
    assert run_cli("graph", "--config", "9z9").returncode == 2


def test_enomem_names_the_tdmr_whose_pamt_found_no_room(tmp_path, capsys):
    """Room for one 4 MiB + 12 KiB chunk (at a multiple of its size) in [1M, 9M), none in the
    1 MiB at 1 GiB: TDMR 1's allocation fails. The kernel prints nothing there, so the TDMR is
    named in the explanation, and no kernel line is made up."""
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"regions": [{"start": "0x100000", "end": "0x900000"},
                                            {"start": "0x40000000", "end": "0x40100000"}]}))
    code, report = run_json(capsys, path)
    assert code == 1
    assert report["error"] == {"errno": -12, "message": None} and report["messages"] == []
    assert report["failed_pamt_tdmr"] == 1 and report["failed_tdmr"] is None
    assert report["explanation"] == (
        "no room for the PAMT of TDMR 1 [0x40000000, 0x80000000): alloc_contig_pages() "
        "returned no 4108 KB chunk on any node (node 0 preferred); v6.8 prints no line for this")
    assert report["layout_check"]["explanation"] is None  # no PAMTs, no layout to explain
    main(["tdmr", str(path)])
    text = capsys.readouterr().out.splitlines()
    result = text.index("result: v6.8 fails: (-12)")
    assert text[result + 1] == "        " + report["explanation"]


def test_an_explanation_cut_short_is_marked_partial(monkeypatch):
    """A spent solver budget leaves the counted conflict on screen, with what was cut."""
    from checker.inputs.readers import read_input
    from checker.views.tdmr_report import TdmrOptions, analyse, render_text
    from spec.profiles import V6_8

    monkeypatch.setattr("checker.engines.solver.RLIMIT_PER_SECOND", 10)
    report = analyse(read_input(LOGS / "emr-fcp-e820-first-2g.log"), TdmrOptions(V6_8))
    text = render_text(report).splitlines()
    start = text.index("why no layout with these TDMRs can work (counted, not proved by the "
                       "solver):")
    assert text[start:start + 3] == [
        "why no layout with these TDMRs can work (counted, not proved by the solver):",
        "  TDMR [0x0, 2G): 18 reserved areas needed: 1 leading hole, 15 gaps, 1 trailing hole, "
        "1 own PAMT, limit 16 (conflicting: RSVD-COUNT, RSVD-COVERS-HOLES, RSVD-NO-MEMORY)",
        "  partial: Z3's proof of the conflict was cut: the solver budget of 30 s (--timeout) "
        "ran out"]
