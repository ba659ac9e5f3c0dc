"""Every JSON the checker reads or writes has a versioned schema in checker/schemas/, shipped in
the package; real outputs validate against it and a wrong one does not."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pytest

from checker import schemas
from checker.cli import main
from checker.engines.synth import KINDS
from checker.inputs.readers import memory_map_json
from spec.memory import MemRange

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", schemas.NAMES)
def test_each_schema_is_a_valid_draft_2020_12_schema_with_its_own_id(name):
    schema = schemas.load(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/{name}.schema.json") or name in (
        "counterexample", "report", "baseline")


def _errors(name: str, document) -> list[str]:
    return [e.message for e in schemas.validator(name).iter_errors(document)]


def _explore(capsys, *args) -> dict:
    main(["explore", *args, "--format", "json"])
    return json.loads(capsys.readouterr().out)


def test_explore_outputs_follow_their_schema(capsys):
    passing = _explore(capsys, "--config", "1x1", "--coverage")
    failing = _explore(capsys, "--profile", "bug-lp-init-irq-reentry", "--config", "1x1")
    bounded = _explore(capsys, "--max-states", "50")
    for output in (passing, failing, bounded):
        assert output["schema_version"] == 1
        assert _errors("explore", output) == []
    assert failing["trace"]["invariant"] == "SEAMCALL-ACCEPTED"
    assert _errors("explore", {**passing, "verdict": "maybe"}) != []
    broken = json.loads(json.dumps(failing))
    broken["trace"]["initial"] = 0.0  # a float is not an index, even through a $ref
    assert _errors("explore", broken) != []
    earlier = {k: v for k, v in failing.items() if k not in ("mode", "workers")}
    assert _errors("explore", earlier) == []  # a document from before the modes still is one


def test_explore_outputs_of_every_mode_follow_their_schema(capsys):
    prints = _explore(capsys, "--config", "1x1", "--fingerprints")
    workers = _explore(capsys, "--profile", "bug-lp-init-irq-reentry", "--config", "1x1",
                       "--workers", "2")
    walked = _explore(capsys, "--simulate", "--profile", "bug-lp-init-irq-reentry")
    clean = _explore(capsys, "--simulate", "--config", "1x1", "--walks", "100", "--restarts")
    for output in (prints, workers, walked, clean):
        assert _errors("explore", output) == []
    assert [o["mode"] for o in (prints, workers, walked, clean)] == \
        ["fingerprints", "fingerprints", "simulation", "simulation"]
    assert walked["trace"]["invariant"] == "SEAMCALL-ACCEPTED" and clean["trace"] is None
    # what each mode must and must not say
    assert _errors("explore", {**clean, "verdict": "pass"}) != []
    assert _errors("explore", {k: v for k, v in clean.items() if k != "simulation"}) != []
    assert _errors("explore", {**prints, "simulation": clean["simulation"]}) != []
    assert _errors("explore", {**prints, "bound_hit": "walks"}) != []
    assert clean["simulation"]["strategy"] == "weighted" and clean["simulation"]["restarts"]
    assert _errors("explore", {**clean, "simulation": {**clean["simulation"], "cells": -1}}) != []
    assert _errors("explore", {**clean, "simulation": {**clean["simulation"],
                                                       "strategy": "greedy"}}) != []
    older = {k: v for k, v in clean["simulation"].items()
             if k not in ("strategy", "judged_at_ends", "ends_searched", "ends_unsettled")}
    assert _errors("explore", {**clean, "simulation": {**older, "swarm": True,
                                                       "unjudged": ["DEADLOCK-FREE"]}}) == []
    # a document is of one generation or the other, never both, never neither
    assert _errors("explore", {**clean, "simulation": {**clean["simulation"],
                                                       "swarm": True}}) != []
    assert _errors("explore", {**clean, "simulation": older}) != []
    no_counts = {k: v for k, v in clean["simulation"].items() if k != "ends_unsettled"}
    assert _errors("explore", {**clean, "simulation": no_counts}) != []
    assert _errors("explore", {k: v for k, v in prints.items()
                               if k != "collision_probability"}) != []
    assert _errors("explore", {**clean, "bytes_per_state": 30.0}) != []
    assert _errors("explore", {**clean, "simulation": {**clean["simulation"],
                                                       "proof": True}}) != []


def test_replay_output_follows_its_schema(capsys):
    stored = sorted((REPO / "counterexamples").glob("flow--bug-lp-init-irq-reentry--default-*"))
    assert main(["replay", str(stored[0]), "--format", "json"]) == 1
    output = json.loads(capsys.readouterr().out)
    assert _errors("replay", output) == []
    assert (output["still_violates"], output["exit_code"]) == (True, 1)
    assert _errors("replay", {**output, "exit_code": 2}) != []


def test_every_stored_counterexample_follows_its_schema():
    files = sorted((REPO / "counterexamples").glob("*.json"))
    assert files
    for path in files:
        assert _errors("counterexample", json.loads(path.read_text())) == [], path.name


def test_the_map_the_readers_write_follows_the_map_schema():
    regions = (MemRange(0x100000, 0x80000000, 0), MemRange(0x80000000, 0xC0000000, 1))
    written = memory_map_json(regions, cmrs=regions)
    assert _errors("map", written) == []
    assert _errors("map", {**written, "regions": []}) != []
    assert _errors("map", {**written, "colour": "blue"}) != []


# --- tdmr --------------------------------------------------------------------------------------

LOGS = REPO / "checker" / "data" / "boot-logs"
SHIPPED = sorted(LOGS.glob("*.log")) + sorted((REPO / "checker" / "data" / "maps").iterdir())
WHAT_IF = ("--worst-case", "--plan")
IOMEM = ("00000000-00000fff : Reserved\n00001000-0009efff : System RAM\n"
         "00100000-5d168fff : System RAM\n  01000000-01ffffff : Kernel code\n"
         "100000000-107fffffff : System RAM\n")


def _tdmr(capsys, *args) -> dict:
    main(["tdmr", *map(str, args), "--format", "json"])
    return json.loads(capsys.readouterr().out)


def _json_map(tmp_path, name: str, doc: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("what_if", [(), WHAT_IF], ids=["plain", "worst-case-plan"])
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_tdmr_report_of_every_shipped_log_and_map_follows_its_schema(capsys, path, what_if):
    report = _tdmr(capsys, path, *what_if)
    assert report["schema_version"] == 1
    assert _errors("tdmr", report) == []
    if report["modelled"] and what_if:
        assert [w["mode"] for w in report["worst_case"]] == ["any-node", "preferred-node"]
        assert report["plan"]["status"] in ("found", "infeasible", "unknown")
    else:
        assert report["worst_case"] is None and report["plan"] is None


def test_shipped_logs_cover_the_shapes_of_the_tdmr_report(capsys):
    """What the test above validates includes a build, a reserved-area failure with its holes
    by e820 line, a metadata failure and a log with no memory map (nothing modelled)."""
    reports = {p.name: _tdmr(capsys, p) for p in SHIPPED}
    built = reports["spr-8480c-256g.log"]
    assert built["error"] is None and built["layout_check"]["status"] == "valid"
    failed = reports["emr-fcp-e820-first-2g.log"]
    assert failed["failed_tdmr_holes"]["source"] == "e820"
    assert failed["layout_check"]["explanation"]["status"] == "unsat"
    assert reports["tdx-1.0-module-fail.log"]["failed_stage"] == "metadata"
    unmodelled = reports["r760-module-not-loaded.log"]
    assert unmodelled["modelled"] is False and unmodelled["tdmrs"] == []
    assert unmodelled["log_outcome"]["outcome"] == "failed"


def test_tdmr_report_of_iomem_a_json_map_and_stdin_follows_its_schema(tmp_path, capsys,
                                                                       monkeypatch):
    iomem = tmp_path / "iomem"
    iomem.write_text(IOMEM)
    regions = [{"start": "0x100000", "end": "0x40000000", "nid": 0},
               {"start": "0x80000000", "end": "0xc0000000", "nid": 1}]
    two_nodes = _json_map(tmp_path, "two-nodes.json", {
        "regions": regions, "cmrs": [{k: r[k] for k in ("start", "end")} for r in regions],
        "metadata": {"max_tdmrs": 8, "max_reserved_per_tdmr": 4, "pamt_entry_size": [16] * 3},
        "pamt_bases": ["0x80000000", "0x10000000"]})
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(
        (LOGS / "emr-fcp-e820-first-2g.log").read_bytes())))
    runs = {"iomem": _tdmr(capsys, iomem, *WHAT_IF),
            "json": _tdmr(capsys, two_nodes, *WHAT_IF),
            "cmr-holes": _tdmr(capsys, two_nodes, "--holes", "cmr"),
            "stdin": _tdmr(capsys, "-")}
    for what, report in runs.items():
        assert _errors("tdmr", report) == [], what
    assert runs["iomem"]["input"]["kind"] == "iomem"
    assert runs["json"]["placement"] == "explicit" and runs["json"]["memory"][1]["nid"] == 1
    assert runs["cmr-holes"]["profile"] == "v6.8+cmr-holes" and runs["cmr-holes"]["cmrs"]
    assert runs["stdin"]["input"]["file"] == "<stdin>"


def test_tdmr_report_of_each_kind_of_failure_follows_its_schema(tmp_path, capsys):
    """Reserved areas exhausted with CMR-derived holes too (the alternative fails), a PAMT
    chunk with no room (-ENOMEM), TDMRs exhausted, a counterexample file as the map, and a
    profile whose layout breaks an invariant."""
    full = [{"start": "0x403000", "end": "0x806000"}] + [
        {"start": hex(0x807000 + 0x2000 * i), "end": hex(0x808000 + 0x2000 * i)}
        for i in range(5)]  # one PAMT chunk of a 1 GiB TDMR, then five pages, a page apart
    holes = _json_map(tmp_path, "holes.json", {"regions": full, "cmrs": full,
                                               "metadata": {"max_reserved_per_tdmr": 4}})
    no_room = _json_map(tmp_path, "no-room.json", {"regions": [
        {"start": "0x100000", "end": "0x900000"}, {"start": "0x40000000", "end": "0x40100000"}]})
    five = _json_map(tmp_path, "five.json", {"regions": [
        {"start": (2 * i + 1) << 30, "end": ((2 * i + 1) << 30) + (1 << 29)} for i in range(5)]})
    stored = next((REPO / "counterexamples").glob("kernel-fails-plan-exists-*.json"))
    runs = {"holes": _tdmr(capsys, holes),
            "no-room": _tdmr(capsys, no_room, "--worst-case"),
            "tdmrs": _tdmr(capsys, five, "--max-tdmrs", "4", *WHAT_IF),
            "stored": _tdmr(capsys, stored, *WHAT_IF),
            "violated": _tdmr(capsys, LOGS / "2s-512g.log", "--profile", "mutant-rsvd-unsorted")}
    for what, report in runs.items():
        assert _errors("tdmr", report) == [], what
    assert runs["holes"]["alternative"]["error"]["errno"] == -28
    assert runs["holes"]["failed_tdmr_holes"]["cmr"] == {"known": True, "reserved_needed": 8,
                                                         "collect": None}
    assert runs["no-room"]["failed_pamt_tdmr"] == 1
    assert runs["no-room"]["layout_check"] == {"status": "not-built", "violations": [],
                                               "explanation": None}
    assert {w["status"] for w in runs["tdmrs"]["worst_case"]} == {"not-applicable"}
    assert runs["stored"]["input"]["kind"] == "counterexample"
    assert runs["stored"]["failed_tdmr_holes"]["source"] == "counterexample"
    assert {w["status"] for w in runs["stored"]["worst_case"]} == {"breaks"}
    assert runs["violated"]["layout_check"]["status"] == "violated"


def test_check_layout_json_follows_the_tdmr_schema(tmp_path, capsys):
    """--check-layout prints its own document (`$defs/check_layout`), not the report."""
    log = LOGS / "spr-8480c-256g.log"
    tdmrs = _tdmr(capsys, log)["tdmrs"]
    mine = _json_map(tmp_path, "tdmrs.json", {"tdmrs": tdmrs})
    valid = _tdmr(capsys, log, "--check-layout", mine)
    tdmrs[0]["size"] = 1 << 29
    mine.write_text(json.dumps({"tdmrs": tdmrs}))
    broken = _tdmr(capsys, log, "--check-layout", mine)
    assert (valid["valid"], broken["valid"]) == (True, False)
    assert _errors("tdmr", valid) == [] and _errors("tdmr", broken) == []
    assert _errors("tdmr", {**broken, "violations": []}) != []
    assert _errors("tdmr", {**valid, "tdmrs": -1}) != []


def test_a_wrong_tdmr_report_is_rejected(capsys):
    failed = _tdmr(capsys, LOGS / "emr-fcp-e820-first-2g.log", *WHAT_IF)
    unmodelled = _tdmr(capsys, LOGS / "r760-module-not-loaded.log")
    assert _errors("tdmr", failed) == [] and _errors("tdmr", unmodelled) == []
    wrong = [{k: v for k, v in failed.items() if k != "schema_version"},
             {**failed, "schema_version": 2},
             {**failed, "pamt_kb": 8212.0},
             {**failed, "error": {"errno": 28, "message": None}},
             {**failed, "layout_check": None},
             {**failed, "worst_case": failed["worst_case"][::-1]},
             {**failed, "failed_stage": "somewhere"},
             {**unmodelled, "tdmrs": failed["tdmrs"]},
             {**unmodelled, "placement": "first-fit"}]
    entry = {**failed["diagnosis"][0], "severity": "fatal"}
    wrong.append({**failed, "diagnosis": [entry]})
    outcome = {**failed["log_outcome"], "causes": [{"key": "gremlins", "text": "x"}]}
    wrong.append({**failed, "log_outcome": outcome})
    memory = [{**failed["memory"][0], "start": "0x100000"}, *failed["memory"][1:]]
    wrong.append({**failed, "memory": memory})
    for i, doc in enumerate(wrong):
        assert _errors("tdmr", doc) != [], i


def test_the_tdmr_schema_names_every_key_the_code_can_print():
    """The fixed words of the schema are the code's own tables: a new cause, action, message
    or invariant fails here until the schema knows it."""
    from checker.views.diagnosis import ACTIONS, CAUSES, MESSAGES
    from invariants.layout import CONSTRAINTS_BY_ID
    from spec.placement import PLACEMENTS

    defs = schemas.load("tdmr")["$defs"]
    assert set(defs["cause"]["properties"]["key"]["enum"]) == set(CAUSES)
    assert set(defs["action"]["properties"]["key"]["enum"]) == set(ACTIONS)
    messages = defs["diagnosis_entry"]["properties"]["message"]["enum"]
    assert set(messages) == {m.key for m in MESSAGES} | {"unknown"}
    assert set(defs["constraint"]["enum"]) == set(CONSTRAINTS_BY_ID)
    placements = defs["report"]["properties"]["placement"]["enum"]
    assert set(placements) == {*PLACEMENTS, "explicit", None}


# --- counterexample KIND -----------------------------------------------------------------------

def _synthesis(capsys, *args) -> tuple[int, dict]:
    code = main(["counterexample", *args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("kind", KINDS)
def test_synthesis_output_of_each_kind_follows_its_schema(capsys, kind):
    code, report = _synthesis(capsys, kind)
    assert (code, report["status"], report["schema_version"]) == (0, "found", 1)
    assert _errors("synthesis", report) == []
    assert report["kernel"]["schema_version"] == 1 and report["kernel"]["input"]["kind"] == "json"
    assert _errors("map", report["map"]) == []


def test_synthesis_output_with_no_map_follows_its_schema(capsys):
    """One TDMR cannot show a placement breaking: no map, no report (exit 1)."""
    code, report = _synthesis(capsys, "placement-breaks", "--max-tdmrs", "1")
    assert (code, report["status"], report["kernel"]) == (1, "not-found", None)
    assert report["map"]["regions"] == []
    assert _errors("synthesis", report) == []
    assert _errors("synthesis", {**report, "status": "found"}) != []


def test_a_wrong_synthesis_output_is_rejected(capsys):
    _, report = _synthesis(capsys, "placement-breaks", "--max-tdmrs", "2", "--max-reserved", "2")
    assert _errors("synthesis", report) == []
    kernel = {k: v for k, v in report["kernel"].items() if k != "diagnosis"}
    wrong = [{k: v for k, v in report.items() if k != "worst_case"},
             {**report, "kernel": kernel},
             {**report, "kernel": None},
             {**report, "map": {**report["map"], "regions": []}},
             {**report, "kind": "everything-fails"},
             {**report, "smaller_query": ""},
             {**report, "e820": ["BIOS-e820: usable"]}]
    for i, doc in enumerate(wrong):
        assert _errors("synthesis", doc) != [], i
