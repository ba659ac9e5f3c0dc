"""`python -m checker verify` end to end: small suites in a temporary directory, every exit code,
every baseline transition through the command line, reports, `--jobs`, counterexample storage
(beside the corpus unless asked) and replay.

Every test runs with the temporary directory as working directory, so nothing is written into
the repository's `counterexamples/` or `checker-baseline.json`.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from checkout import REPO, run_module

from checker.cli import main
from checker.gate import runners
from checker.gate.runners import RUNNERS
from checker.gate.verify import add_arguments

LOGS = REPO / "checker" / "data" / "boot-logs"
REPORT_SCHEMA = REPO / "checker" / "schemas" / "report.schema.json"
SARIF_SCHEMA = REPO / "tests" / "schemas" / "sarif-schema-2.1.0.json"

EMR = "emr-fcp-e820-first-2g.log"  # v6.8 fails with -28 although a valid layout exists
SPR = "spr-8480c-256g.log"  # v6.8 builds; 1050636 KB of PAMT
PLAN_EMR = "plan/v6.8/emr-fcp-e820-first-2g"
PLAN_SPR = "plan/v6.8/spr-8480c-256g"
PLAN = "INIT-WHEN-LAYOUT-EXISTS"
# A profile with a broken TDMR rule: its layout on the SPR machine breaks RSVD-ORDER (a real
# failure, unlike the finding above); on the EMR machine v6.8 builds nothing, so it passes.
BROKEN = "mutant-rsvd-unsorted"
BROKEN_SPR = "layout/mutant-rsvd-unsorted/spr-8480c-256g"
BROKEN_EMR = "layout/mutant-rsvd-unsorted/emr-fcp-e820-first-2g"
ORDER = "RSVD-ORDER"

# The baseline a plan-only run on both maps records (written out by hand, not by the checker).
PLAN_BASELINE = {
    "schema_version": 1,
    "checks": {
        PLAN_EMR: {"status": "fail", "invariant": PLAN, "profile": "v6.8", "config": EMR},
        PLAN_SPR: {"status": "pass", "invariant": PLAN, "profile": "v6.8", "config": SPR},
    },
}


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def work(tmp_path, monkeypatch):
    """A working directory holding copies of two boot logs; the repository stays untouched."""
    monkeypatch.chdir(tmp_path)
    for name in (EMR, SPR):
        shutil.copy(LOGS / name, tmp_path / name)
    return tmp_path


def _toml_list(values) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def write_suite(folder: Path, *, name: str = "suite.toml", profiles=("v6.8",),
                maps=(EMR, SPR), checks=("log", "layout"), counterexamples: str = "cex",
                bounds: dict | None = None) -> Path:
    lines = [f"profiles = {_toml_list(profiles)}", f"maps = {_toml_list(maps)}",
             f"checks = {_toml_list(checks)}", f"counterexamples = {json.dumps(counterexamples)}"]
    if bounds:
        lines.append("[bounds]")
        lines += [f"{key} = {value!r}" for key, value in bounds.items()]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def verify(capsys, *args) -> tuple[int, str, str]:
    code = main(["verify", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def verify_json(capsys, *args) -> tuple[int, dict]:
    code, out, _ = verify(capsys, *args, "--format", "json")
    return code, json.loads(out)


def checks_by_id(report: dict) -> dict[str, dict]:
    return {c["id"]: c for c in report["checks"]}


def write_baseline(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path


def without_durations(report: dict) -> dict:
    doc = copy.deepcopy(report)
    doc["summary"].pop("duration_s")
    for check in doc["checks"]:
        check.pop("duration_s")
    return doc


# --- exit 0 and 1 without a baseline -----------------------------------------------------------


def test_all_pass_without_baseline_exits_0_and_writes_nothing(work, capsys):
    suite = write_suite(work)
    code, out, _ = verify(capsys, "--suite", suite, "--verbose")
    assert code == 0
    assert out.splitlines()[0].startswith("checks: 4   pass 4   expected-fail 0   regressions 0")
    assert "baseline: none (every check must pass)" in out
    assert out.rstrip().endswith("verdict: pass (exit 0)")
    for check_id in ("log/v6.8/emr-fcp-e820-first-2g", "log/v6.8/spr-8480c-256g",
                     "layout/v6.8/emr-fcp-e820-first-2g", "layout/v6.8/spr-8480c-256g"):
        assert re.search(rf"^PASS {re.escape(check_id)} ", out, re.MULTILINE), check_id
    # nothing failed: no counterexample folder, and no baseline appears on its own
    assert not (work / "cex").exists()
    assert not (work / "checker-baseline.json").exists()


def test_the_log_checks_reproduce_what_the_machines_logged(work, capsys):
    code, report = verify_json(capsys, "--suite", write_suite(work, checks=("log",)))
    assert code == 0
    checks = checks_by_id(report)
    assert checks["log/v6.8/spr-8480c-256g"]["detail"] == "reproduces 1050636 KB of PAMT"
    assert checks["log/v6.8/emr-fcp-e820-first-2g"]["detail"] == \
        "reproduces the logged failure (-28)"


def test_a_known_finding_is_reported_but_does_not_fail_the_gate_without_a_baseline(work,
                                                                                  capsys):
    """A finding is a kernel limitation shown on a real map, not a broken rule: without a
    baseline it is expected, and the text report still shows it."""
    suite = write_suite(work, checks=("plan",))
    code, report = verify_json(capsys, "--suite", suite)
    assert code == 0
    assert (report["verdict"], report["exit_code"]) == ("pass", 0)
    checks = checks_by_id(report)
    assert set(checks) == {PLAN_EMR, PLAN_SPR}
    emr = checks[PLAN_EMR]
    assert (emr["status"], emr["invariant"], emr["outcome"], emr["transition"]) == (
        "fail", PLAN, "expected-fail", None)
    assert emr["detail"].startswith("finding: v6.8 fails (-28: initialization failed: TDMR "
                                    "[0x0, 0x80000000): reserved areas exhausted.)")
    assert emr["extra"] == {"finding": True}
    assert (checks[PLAN_SPR]["status"], checks[PLAN_SPR]["outcome"]) == ("pass", "pass")
    assert report["baseline"]["transitions"] == [] and report["summary"]["regressions"] == 0
    code, out, _ = verify(capsys, "--suite", suite)
    assert re.search(rf"^FINDING +{re.escape(PLAN_EMR)} ", out, re.MULTILINE)


def test_a_broken_profile_fails_the_gate_without_a_baseline(work, capsys):
    code, report = verify_json(capsys, "--suite", write_suite(work, profiles=(BROKEN,),
                                                              checks=("layout",)))
    assert code == 1
    checks = checks_by_id(report)
    broken = checks[BROKEN_SPR]
    assert (broken["status"], broken["invariant"], broken["outcome"], broken["transition"]) == (
        "fail", ORDER, "regression", "new-failure")
    assert (checks[BROKEN_EMR]["status"], checks[BROKEN_EMR]["outcome"]) == ("pass", "pass")
    assert [t["transition"] for t in report["baseline"]["transitions"]] == ["new-failure"]


def test_update_baseline_records_the_failure_and_it_becomes_expected(work, capsys):
    suite = write_suite(work, checks=("plan",))
    # The update itself goes through a subprocess whose exit status is checked by
    # test_update_baseline_exits_with_the_gate_of_the_new_baseline below.
    run_module("verify", "--suite", suite, "--update-baseline", cwd=work)
    written = json.loads((work / "checker-baseline.json").read_text())
    assert written == PLAN_BASELINE
    # the default baseline in the working directory is picked up without --baseline
    code, report = verify_json(capsys, "--suite", suite)
    assert code == 0
    emr = checks_by_id(report)[PLAN_EMR]
    assert (emr["status"], emr["outcome"], emr["transition"]) == ("fail", "expected-fail", None)
    assert emr["expected"] == {"status": "fail", "invariant": PLAN}
    assert report["baseline"]["path"] == "checker-baseline.json"
    assert report["summary"]["expected_fail"] == 1 and report["summary"]["regressions"] == 0
    # and the text report marks it as expected (XFAIL, or FINDING for a kernel limitation)
    code, out, _ = verify(capsys, "--suite", suite, "--verbose")
    assert code == 0
    assert re.search(rf"^(XFAIL|FINDING) +{re.escape(PLAN_EMR)} ", out, re.MULTILINE)
    assert "verdict: pass (exit 0)" in out


def test_update_baseline_is_byte_identical_on_an_unchanged_run(work):
    suite = write_suite(work, checks=("plan",))
    run_module("verify", "--suite", suite, "--update-baseline", "--baseline", "b.json", cwd=work)
    first = (work / "b.json").read_bytes()
    run_module("verify", "--suite", suite, "--update-baseline", "--baseline", "b.json", cwd=work)
    assert (work / "b.json").read_bytes() == first


def test_update_baseline_exits_with_the_gate_of_the_new_baseline(work, capsys):
    suite = write_suite(work, checks=("plan",))
    code, out, err = verify(capsys, "--suite", suite, "--update-baseline", "--baseline", "b.json",
                            "--verbose")
    assert code == 0
    assert "baseline written: b.json (2 checks)" in err
    assert "counterexample saved: cex/plan--v6.8--emr-fcp-e820-first-2g-" in err
    assert re.search(rf"^(XFAIL|FINDING) +{re.escape(PLAN_EMR)} ", out, re.MULTILINE)


def test_update_baseline_through_the_module_has_no_traceback(work):
    suite = write_suite(work, checks=("plan",))
    proc = run_module("verify", "--suite", suite, "--update-baseline", "--baseline", "b.json",
                      cwd=work)
    assert "baseline written: b.json (2 checks)" in proc.stderr
    assert json.loads((work / "b.json").read_text()) == PLAN_BASELINE
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0


def test_update_baseline_report_names_the_written_file(work, capsys):
    suite = write_suite(work, checks=("plan",))
    code, _, _ = verify(capsys, "--suite", suite, "--update-baseline", "--baseline", "b.json",
                        "--format", "json", "--output", "report.json")
    report = json.loads((work / "report.json").read_text())
    assert report["baseline"]["path"] == "b.json"
    assert code == 0


# --- every transition through the command line -------------------------------------------------


def test_the_hand_written_baseline_matches_the_run(work, capsys):
    suite = write_suite(work, checks=("plan",))
    write_baseline(work / "b.json", PLAN_BASELINE)
    code, report = verify_json(capsys, "--suite", suite, "--baseline", "b.json")
    assert code == 0
    assert report["baseline"]["transitions"] == []
    assert report["baseline"]["path"] == "b.json"


def _edit(doc: dict, transition: str) -> tuple[dict, str]:
    """Edit the plan baseline so the run shows `transition`; returns it and the check id."""
    checks = doc["checks"]
    if transition == "expected-failure-passes":
        checks[PLAN_SPR]["status"] = "fail"
        return doc, PLAN_SPR
    if transition == "new-failure":
        checks[PLAN_EMR]["status"] = "pass"
        return doc, PLAN_EMR
    if transition == "check-added":
        del checks[PLAN_SPR]
        return doc, PLAN_SPR
    if transition == "check-removed":
        checks["plan/v6.8/gone"] = {"status": "pass", "invariant": PLAN, "profile": "v6.8",
                                    "config": "gone.log"}
        return doc, "plan/v6.8/gone"
    if transition == "different-invariant":
        checks[PLAN_EMR]["invariant"] = "LAYOUT"
        return doc, PLAN_EMR
    if transition == "inconclusive-now-passes":
        checks[PLAN_SPR]["status"] = "inconclusive"
        return doc, PLAN_SPR
    raise AssertionError(transition)


@pytest.mark.parametrize("transition", ["expected-failure-passes", "new-failure", "check-added",
                                        "check-removed", "different-invariant",
                                        "inconclusive-now-passes"])
def test_each_regression_transition_fails_the_gate(work, capsys, transition):
    suite = write_suite(work, checks=("plan",))
    doc, check_id = _edit(copy.deepcopy(PLAN_BASELINE), transition)
    baseline = write_baseline(work / "b.json", doc)
    code, out, _ = verify(capsys, "--suite", suite, "--baseline", baseline,
                          "--format", "json", "--output", "report.json", "--format", "text")
    assert code == 1
    report = json.loads((work / "report.json").read_text())
    assert report["exit_code"] == 1 and report["verdict"] == "fail"
    transitions = report["baseline"]["transitions"]
    assert [(t["check_id"], t["transition"], t["severity"]) for t in transitions] == [
        (check_id, transition, "regression")]
    assert "changes against the baseline:" in out
    assert f"{transition}  {check_id}: " in out
    assert "verdict: fail (exit 1)" in out
    if transition != "check-removed":
        assert checks_by_id(report)[check_id]["outcome"] == "regression"
    else:
        assert check_id not in checks_by_id(report)
        assert report["summary"]["regressions"] == 1


def test_different_invariant_names_both_invariants(work, capsys):
    suite = write_suite(work, checks=("plan",))
    doc, _ = _edit(copy.deepcopy(PLAN_BASELINE), "different-invariant")
    code, report = verify_json(capsys, "--suite", suite, "--baseline",
                               write_baseline(work / "b.json", doc))
    assert code == 1
    (t,) = report["baseline"]["transitions"]
    assert t["expected"] == {"status": "fail", "invariant": "LAYOUT"}
    assert t["actual"] == {"status": "fail", "invariant": PLAN}
    assert t["explanation"] == f"expected to be caught by LAYOUT, now caught by {PLAN} instead"


def test_a_check_that_errors_is_a_new_error_and_cannot_be_recorded(work, capsys, monkeypatch):
    def broken_runner(spec):
        raise RuntimeError("the layout engine fell over")

    monkeypatch.setitem(RUNNERS, "layout", broken_runner)
    suite = write_suite(work, maps=(SPR,), checks=("layout",))
    baseline = write_baseline(work / "b.json", {"schema_version": 1, "checks": {
        "layout/v6.8/spr-8480c-256g": {"status": "pass", "invariant": "LAYOUT"}}})
    code, report = verify_json(capsys, "--suite", suite, "--baseline", baseline)
    assert code == 1
    check = checks_by_id(report)["layout/v6.8/spr-8480c-256g"]
    assert (check["status"], check["transition"]) == ("error", "new-error")
    assert check["detail"] == "RuntimeError: the layout engine fell over"
    before = (work / "b.json").read_text()
    code, _, err = verify(capsys, "--suite", suite, "--baseline", baseline, "--update-baseline")
    assert code == 2
    assert "cannot record a baseline while checks error: layout/v6.8/spr-8480c-256g" in err
    assert (work / "b.json").read_text() == before


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_check_that_never_ends_is_stopped_as_an_error_and_the_others_run(work, capsys,
                                                                          monkeypatch, jobs):
    """A model that loops for good (a mutant's cursor that never moves) would hold the gate
    forever: past its time limit the check is stopped and reported as an error, never a
    pass, and the checks after it still run."""
    def looping_runner(spec):
        while True:
            pass

    monkeypatch.setitem(RUNNERS, "layout", looping_runner)
    monkeypatch.setattr(runners, "CHECK_TIME_LIMIT", 0.1)
    suite = write_suite(work, checks=("layout", "log"), bounds={"time_s": 0.05,
                                                                 "solver_timeout_s": 0.05})
    code, report = verify_json(capsys, "--suite", suite, "--jobs", jobs)
    assert code == 1
    checks = checks_by_id(report)
    for check_id in ("layout/v6.8/spr-8480c-256g", "layout/v6.8/emr-fcp-e820-first-2g"):
        assert (checks[check_id]["status"], checks[check_id]["transition"]) == (
            "error", "new-error")
        assert checks[check_id]["detail"].startswith("stopped after 0.5 s")
    assert checks["log/v6.8/spr-8480c-256g"]["status"] == "pass"


def test_a_malformed_map_in_the_suite_is_an_input_error_before_any_check(work, capsys):
    (work / "broken.json").write_text('{"regions": [\n')
    suite = write_suite(work, maps=(SPR, "broken.json"), checks=("layout",))
    code, out, err = verify(capsys, "--suite", suite)
    assert code == 2 and out == ""
    assert err == (f"error: {suite}:2: map 'broken.json' cannot be read: "
                   f"{work / 'broken.json'}:2: invalid JSON: Expecting value\n")


# --- inconclusive --------------------------------------------------------------------------------


def _bounded_suite(work: Path) -> Path:
    # 1 ms for the grid search of every map up to 3 regions (thousands of constructions)
    return write_suite(work, checks=("maps",), bounds={"time_s": 0.001})


def test_a_bounded_grid_search_is_inconclusive_exit_3(work, capsys):
    code, report = verify_json(capsys, "--suite", _bounded_suite(work))
    assert code == 3
    assert (report["verdict"], report["exit_code"]) == ("inconclusive", 3)
    (check,) = report["checks"]
    assert check["id"] == "maps/v6.8/grid"
    assert check["status"] == "inconclusive"
    assert check["bound"] == "time 0.001 s"
    assert "bounded, not exhaustive" in check["detail"]
    assert report["summary"]["inconclusive"] == 1
    # without a baseline the expectation is "pass": the change is named but not a regression
    (t,) = report["baseline"]["transitions"]
    assert (t["transition"], t["severity"]) == ("became-inconclusive", "inconclusive")


def test_allow_inconclusive_turns_exit_3_into_0(work, capsys):
    code, out, _ = verify(capsys, "--suite", _bounded_suite(work), "--allow-inconclusive")
    assert code == 0
    assert "INCONCLUSIVE maps/v6.8/grid" in out
    assert "bound: time 0.001 s" in out
    assert out.rstrip().endswith("verdict: pass with 1 inconclusive (exit 0)")


def test_a_baseline_expecting_inconclusive_still_exits_3(work, capsys):
    suite = _bounded_suite(work)
    baseline = write_baseline(work / "b.json", {"schema_version": 1, "checks": {
        "maps/v6.8/grid": {"status": "inconclusive", "invariant": "LAYOUT"}}})
    code, report = verify_json(capsys, "--suite", suite, "--baseline", baseline)
    assert code == 3  # a bounded run is never a silent pass
    assert report["baseline"]["transitions"] == []
    assert report["checks"][0]["outcome"] == "inconclusive"
    code, _, _ = verify(capsys, "--suite", suite, "--baseline", baseline, "--allow-inconclusive")
    assert code == 0


def test_a_pass_that_became_inconclusive_exits_3_not_1(work, capsys):
    suite = _bounded_suite(work)
    baseline = write_baseline(work / "b.json", {"schema_version": 1, "checks": {
        "maps/v6.8/grid": {"status": "pass", "invariant": "LAYOUT"}}})
    code, report = verify_json(capsys, "--suite", suite, "--baseline", baseline)
    assert code == 3
    (t,) = report["baseline"]["transitions"]
    assert t["transition"] == "became-inconclusive"
    assert "(time 0.001 s)" in t["explanation"]


def test_a_bounded_check_together_with_a_regression_exits_1(work, capsys):
    suite = write_suite(work, profiles=(BROKEN,), checks=("maps", "layout"),
                        bounds={"time_s": 0.001})
    code, report = verify_json(capsys, "--suite", suite, "--allow-inconclusive")
    assert code == 1
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses == {f"maps/{BROKEN}/grid": "inconclusive", BROKEN_SPR: "fail",
                        BROKEN_EMR: "pass"}


# --- exit 2: usage and input errors ------------------------------------------------------------


def test_toml_syntax_error_names_the_file_and_line(work, capsys):
    (work / "bad.toml").write_text('profiles = ["v6.8"]\ncounterexamples = \n')
    code, out, err = verify(capsys, "--suite", "bad.toml")
    assert code == 2
    assert out == ""
    assert err.startswith("error: bad.toml:2: invalid TOML")


def test_unknown_suite_key_names_its_line(work, capsys):
    (work / "bad.toml").write_text('profiles = ["v6.8"]\n\nfrobnicate = 1\n')
    code, _, err = verify(capsys, "--suite", "bad.toml")
    assert code == 2
    assert err.startswith("error: bad.toml:3: unknown key 'frobnicate'")


def test_unknown_profile_in_the_suite_names_its_line(work, capsys):
    (work / "bad.toml").write_text('checks = ["log"]\nprofiles = ["v6.8", "v6.9"]\n')
    code, _, err = verify(capsys, "--suite", "bad.toml")
    assert code == 2
    assert err.strip() == "error: bad.toml:2: unknown profile 'v6.9'"


def test_a_missing_map_in_the_suite_is_a_usage_error(work, capsys):
    write_suite(work, maps=(EMR, "nowhere.log"))
    code, _, err = verify(capsys, "--suite", "suite.toml")
    assert code == 2
    assert "suite.toml:2: map 'nowhere.log' not found" in err


def test_a_malformed_baseline_is_a_usage_error(work, capsys):
    (work / "b.json").write_text('{"checks": \n')
    code, out, err = verify(capsys, "--suite", write_suite(work), "--baseline", "b.json")
    assert code == 2
    assert out == ""
    assert err.startswith("error: b.json: line 2 column 1: not valid JSON")


def test_a_baseline_with_a_bad_status_is_a_usage_error(work, capsys):
    write_baseline(work / "b.json", {"schema_version": 1, "checks": {
        "log/v6.8/spr-8480c-256g": {"status": "error", "invariant": "LOG-REPRODUCED"}}})
    code, _, err = verify(capsys, "--suite", write_suite(work), "--baseline", "b.json")
    assert code == 2
    assert "b.json: check 'log/v6.8/spr-8480c-256g': status 'error'" in err


def test_a_malformed_default_baseline_is_a_usage_error_too(work, capsys):
    (work / "checker-baseline.json").write_text("[]")
    code, _, err = verify(capsys, "--suite", write_suite(work))
    assert code == 2
    assert "checker-baseline.json: expected a JSON object at the top level" in err


def test_a_missing_baseline_file_named_on_the_command_line(work, capsys):
    code, _, err = verify(capsys, "--suite", write_suite(work), "--baseline", "nope.json")
    assert code == 2
    assert err.strip() == "error: nope.json: no such baseline file"


def test_unknown_profile_on_the_command_line(work, capsys):
    code, _, err = verify(capsys, "--suite", write_suite(work), "--profile", "nope")
    assert code == 2
    assert "unknown profile 'nope'" in err


def test_output_without_format(work, capsys):
    code, _, err = verify(capsys, "--suite", write_suite(work), "--output", "r.json")
    assert code == 2
    assert err.strip() == "error: each --output needs a --format before it"
    assert not (work / "r.json").exists()


def test_two_reports_on_standard_output(work, capsys):
    code, _, err = verify(capsys, "--suite", write_suite(work), "--format", "json",
                          "--format", "junit")
    assert code == 2
    assert "only one report can go to standard output" in err


def test_a_suite_that_selects_nothing(work, capsys):
    # a TDMR-rule profile has no log checks
    suite = write_suite(work, profiles=("mutant-rsvd-unsorted",), checks=("log",))
    code, _, err = verify(capsys, "--suite", suite)
    assert code == 2
    assert "the suite selects no checks" in err


@pytest.mark.parametrize("case", ["toml", "baseline", "profile"])
def test_usage_errors_through_the_module_are_one_line_without_traceback(work, case):
    suite = write_suite(work)
    (work / "bad.toml").write_text('profiles = ["v6.8"]\ncounterexamples = \n')
    (work / "b.json").write_text("{")
    args = {"toml": ("--suite", "bad.toml"),
            "baseline": ("--suite", suite, "--baseline", "b.json"),
            "profile": ("--suite", suite, "--profile", "v6.9")}[case]
    proc = run_module("verify", *args, cwd=work)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith("error: ")


@pytest.mark.parametrize("profiles,checks,bounds,expected", [
    (("v6.8",), ("log", "layout"), None, 0),
    (("v6.8",), ("plan",), None, 0),
    ((BROKEN,), ("layout",), None, 1),
    (("v6.8",), ("maps",), {"time_s": 0.001}, 3),
])
def test_exit_codes_through_the_module(work, profiles, checks, bounds, expected):
    suite = write_suite(work, profiles=profiles, checks=checks, bounds=bounds)
    proc = run_module("verify", "--suite", suite, cwd=work)
    assert proc.returncode == expected
    assert "Traceback" not in proc.stderr
    assert f"(exit {expected})" in proc.stdout


# --- --jobs --------------------------------------------------------------------------------------


def test_jobs_2_gives_the_same_report_as_jobs_1(work, capsys):
    suite = write_suite(work, profiles=("v6.8", BROKEN), checks=("log", "layout", "plan"))
    code1, _, _ = verify(capsys, "--suite", suite, "--jobs", "1", "--format", "json",
                         "--output", "one.json")
    code2, _, _ = verify(capsys, "--suite", suite, "--jobs", "2", "--format", "json",
                         "--output", "two.json")
    assert code1 == code2 == 1
    one = json.loads((work / "one.json").read_text())
    two = json.loads((work / "two.json").read_text())
    assert len(one["checks"]) == 8  # v6.8: 2 log, 2 layout, 2 plan; the broken one: 2 layout
    assert without_durations(one) == without_durations(two)


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_fail_fast_stops_at_the_first_new_failure_and_reports_the_rest_not_run(work, capsys,
                                                                                jobs):
    """The broken profile's checks come first: with one job nothing after its failure on SPR
    runs; with two, what had not finished is ended. Either way every check either ran or is
    reported as not run (inconclusive, never removed), and the gate fails."""
    suite = write_suite(work, profiles=(BROKEN, "v6.8"), maps=(SPR, EMR),
                        checks=("layout", "log", "plan"))
    code, out, _ = verify(capsys, "--suite", suite, "--fail-fast", "--jobs", jobs,
                          "--format", "json", "--output", "r.json",
                          "--format", "junit", "--output", "r.xml")
    assert code == 1
    report = json.loads((work / "r.json").read_text())
    jsonschema.Draft202012Validator(json.loads(REPORT_SCHEMA.read_text())).validate(report)
    ran = set(checks_by_id(report))
    assert BROKEN_SPR in ran and report["exit_code"] == 1
    transitions = report["baseline"]["transitions"]
    not_run = {t["check_id"] for t in transitions if t["transition"] == "not-run"}
    assert all(t["severity"] == "inconclusive" for t in transitions
               if t["transition"] == "not-run")
    assert not ran & not_run and len(ran | not_run) == 8  # v6.8: 6 checks; broken: 2 layout
    if jobs == "1":
        assert ran <= {BROKEN_SPR, BROKEN_EMR} and len(not_run) >= 6
        assert f"{len(not_run)} checks not run" in out
    assert not any(t["transition"] == "check-removed" for t in transitions)
    skipped = [c.get("name") for c in ET.parse(work / "r.xml").getroot().iter("testcase")
               if c.find("skipped") is not None]
    assert set(skipped) >= not_run


def test_fail_fast_runs_everything_when_nothing_newly_fails(work, capsys):
    suite = write_suite(work, checks=("log", "layout"))
    code, report = verify_json(capsys, "--suite", suite, "--fail-fast", "--jobs", "1")
    assert code == 0 and len(report["checks"]) == 4
    assert report["baseline"]["transitions"] == []


def test_fail_fast_cannot_write_a_baseline(work, capsys):
    code, _, err = verify(capsys, "--suite", write_suite(work), "--fail-fast",
                          "--update-baseline")
    assert code == 2 and "a baseline needs every check run" in err
    assert not (work / "checker-baseline.json").exists()


def test_jobs_default_to_one_per_cpu_this_process_may_use():
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).jobs == len(os.sched_getaffinity(0))


# --- reports -------------------------------------------------------------------------------------


def test_every_format_written_to_a_file_parses(work, capsys):
    suite = write_suite(work, profiles=("v6.8", BROKEN), checks=("log", "layout"))
    code, out, _ = verify(capsys, "--suite", suite,
                          "--format", "text", "--output", "r.txt",
                          "--format", "json", "--output", "r.json",
                          "--format", "junit", "--output", "r.xml",
                          "--format", "sarif", "--output", "r.sarif")
    assert code == 1
    # every report went to a file, so the text report also goes to standard output
    assert out == (work / "r.txt").read_text()
    assert out.rstrip().endswith("verdict: fail (exit 1)")

    report = json.loads((work / "r.json").read_text())
    jsonschema.Draft202012Validator(json.loads(REPORT_SCHEMA.read_text())).validate(report)
    assert [c["id"] for c in report["checks"]] == sorted(c["id"] for c in report["checks"])
    assert report["summary"]["checks"] == 6

    root = ET.parse(work / "r.xml").getroot()
    assert root.tag == "testsuites"
    cases = root.findall("./testsuite/testcase")
    assert sorted(c.get("name") for c in cases) == sorted(c["id"] for c in report["checks"])
    failed = [c.get("name") for c in cases if c.find("failure") is not None]
    assert failed == [BROKEN_SPR]

    sarif = json.loads((work / "r.sarif").read_text())
    schema = json.loads(SARIF_SCHEMA.read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(sarif)
    results = sarif["runs"][0]["results"]
    assert [(r["ruleId"], r["level"]) for r in results] == [(ORDER, "error")]


def test_an_expected_failure_is_not_a_junit_failure_and_a_sarif_note(work, capsys):
    suite = write_suite(work, checks=("plan",))
    baseline = write_baseline(work / "b.json", PLAN_BASELINE)
    code, _, _ = verify(capsys, "--suite", suite, "--baseline", baseline,
                        "--format", "junit", "--output", "r.xml",
                        "--format", "sarif", "--output", "r.sarif")
    assert code == 0
    cases = ET.parse(work / "r.xml").getroot().findall("./testsuite/testcase")
    assert all(c.find("failure") is None and c.find("error") is None for c in cases)
    (result,) = json.loads((work / "r.sarif").read_text())["runs"][0]["results"]
    assert (result["level"], result["baselineState"]) == ("note", "unchanged")


# --- counterexamples -----------------------------------------------------------------------------


def test_counterexamples_are_stored_under_content_hash_names_once(work, capsys):
    suite = write_suite(work, profiles=(BROKEN,), checks=("layout",))
    code, out, err = verify(capsys, "--suite", suite)
    assert code == 1
    # beside the corpus, not in it
    assert not (work / "cex").exists()
    files = sorted((work / "cex.new").iterdir())
    assert len(files) == 1
    path = files[0]
    body = path.read_bytes()
    # the hash covers what was found, not its wording: the document without the words
    found = json.loads(body)
    found["counterexample"] = {k: v for k, v in found["counterexample"].items()
                               if k not in ("text", "result", "sites", "minimality")}
    digest = hashlib.sha256(json.dumps(found, sort_keys=True).encode()).hexdigest()[:10]
    assert path.name == f"layout--{BROKEN}--spr-8480c-256g-{digest}.json"
    assert err.strip() == f"counterexample saved: {Path('cex.new') / path.name}"
    assert ("new counterexamples: 1 in cex.new/, not in the corpus cex/ (replay one with "
            "`python -m checker replay FILE`; --save-counterexamples adds them to the corpus) "
            "verdict: fail (exit 1)") in " ".join(out.split())
    doc = json.loads(body)
    assert (doc["schema_version"], doc["check"], doc["profile"], doc["invariant"]) == (
        1, BROKEN_SPR, BROKEN, ORDER)
    cex = doc["counterexample"]
    assert (cex["kind"], cex["property"], cex["errno"]) == ("map", "layout-violated", None)
    assert cex["result"].startswith("RSVD-ORDER: TDMR 1 [0x100000000, 0x2080000000): area 1: "
                                    "violates")
    # a second run finds the same counterexample and writes nothing new
    mtime = path.stat().st_mtime_ns
    code, _, err = verify(capsys, "--suite", suite)
    assert code == 1
    assert "counterexample saved" not in err
    assert sorted((work / "cex.new").iterdir()) == [path]
    assert path.stat().st_mtime_ns == mtime and path.read_bytes() == body


def test_the_counterexamples_options_override_the_suite(work, capsys):
    suite = write_suite(work, checks=("plan",))
    verify(capsys, "--suite", suite, "--counterexamples", "elsewhere")
    assert not (work / "cex").exists() and not (work / "cex.new").exists()
    assert not (work / "elsewhere").exists()
    assert len(list((work / "elsewhere.new").glob("plan--v6.8--*.json"))) == 1
    verify(capsys, "--suite", suite, "--new-counterexamples", "found/here")
    assert len(list((work / "found" / "here").glob("plan--v6.8--*.json"))) == 1


def test_saved_counterexamples_become_replay_checks_in_the_same_run(work, capsys):
    suite = write_suite(work, profiles=(BROKEN,), checks=("layout", "replay"))
    code, first = verify_json(capsys, "--suite", suite, "--save-counterexamples")
    assert code == 1
    assert not (work / "cex.new").exists()
    (path,) = (work / "cex").iterdir()
    for report in (first, verify_json(capsys, "--suite", suite)[1]):
        replay = checks_by_id(report)[f"replay/{path.stem}"]
        assert (replay["status"], replay["invariant"], replay["profile"]) == (
            "fail", ORDER, BROKEN)
        assert replay["detail"].startswith("still violates: RSVD-ORDER: TDMR 1 [0x100000000, "
                                           "0x2080000000): area 1: violates")
        assert replay["config"] == path.name
    # replays are never stored again as counterexamples of their own, nor is what the corpus
    # already holds
    assert sorted(p.name for p in (work / "cex").iterdir()) == [path.name]
    assert not (work / "cex.new").exists()


def test_a_replay_that_no_longer_violates_passes(work, capsys):
    suite = write_suite(work, checks=("plan", "replay"), maps=(SPR,))
    (work / "cex").mkdir()
    shutil.copy(_stored_plan_counterexample(work, capsys), work / "cex" / "fixed.json")
    doc = json.loads((work / "cex" / "fixed.json").read_text())
    doc["counterexample"]["map"]["regions"] = [{"start": "0x100000", "end": "0x80000000",
                                                "nid": 0}]
    (work / "cex" / "fixed.json").write_text(json.dumps(doc))
    code, report = verify_json(capsys, "--suite", suite)
    assert code == 0
    replay = checks_by_id(report)["replay/fixed"]
    assert replay["status"] == "pass"
    assert replay["detail"].startswith("no longer violates: construction now succeeds")


def test_counterexamples_of_other_profiles_are_not_replayed(work, capsys):
    suite = write_suite(work, checks=("layout", "replay"), maps=(SPR,))
    (work / "cex").mkdir()
    doc = json.loads(_stored_plan_counterexample(work, capsys).read_text())
    doc["profile"] = "cmr-holes"
    (work / "cex" / "other.json").write_text(json.dumps(doc))
    code, report = verify_json(capsys, "--suite", suite)
    assert code == 0
    assert set(checks_by_id(report)) == {"layout/v6.8/spr-8480c-256g"}


def test_an_unreadable_file_in_the_corpus_is_an_input_error_before_any_check(work, capsys):
    suite = write_suite(work, checks=("layout", "replay"), maps=(SPR,))
    (work / "cex").mkdir()
    (work / "cex" / "garbage.json").write_text("not json")
    code, out, err = verify(capsys, "--suite", suite)
    assert (code, out) == (2, "")
    assert err == ("error: counterexample corpus: cex/garbage.json: not a counterexample "
                   "file: line 1: not valid JSON: Expecting value\n")


def _stored_plan_counterexample(work: Path, capsys) -> Path:
    """The counterexample a plan run on the EMR log stores, in a folder of its own."""
    suite = write_suite(work, name="plan.toml", checks=("plan",), maps=(EMR,),
                        counterexamples="stored")
    verify(capsys, "--suite", suite)
    (path,) = (work / "stored.new").iterdir()
    return path


PB_MAP = {  # two 1 GiB TDMRs, 2 areas each: first-fit builds, another placement does not
    "regions": [{"start": "0x403000", "end": "0xc09000", "nid": 0},
                {"start": "0x100000000", "end": "0x140000000", "nid": 0}],
    "metadata": {"max_tdmrs": 2, "max_reserved_per_tdmr": 2, "pamt_entry_size": [16, 16, 16]},
}


def test_a_placement_dependent_map_fails_the_worst_case_check(work, capsys):
    (work / "pb.json").write_text(json.dumps(PB_MAP))
    suite = write_suite(work, maps=("pb.json",), checks=("worst-case", "replay"))
    code, report = verify_json(capsys, "--suite", suite)
    assert code == 1
    (check,) = report["checks"]
    assert (check["id"], check["status"], check["invariant"]) == (
        "worst-case/v6.8/pb", "fail", "INIT-PLACEMENT-INDEPENDENT")
    cex = check["counterexample"]
    assert (cex["property"], cex["errno"], cex["placement"]) == ("construct-fails", -28,
                                                                 "explicit")
    # both chunks in the low region, which holds exactly two 1 GiB chunks (0x403000 each)
    assert sorted(int(b, 16) for b in cex["map"]["pamt_bases"]) == [0x403000, 0x806000]
    (stored,) = (work / "cex.new").iterdir()
    proc = run_module("replay", stored, cwd=work)
    assert proc.returncode == 1
    assert "still violates" in proc.stdout and "same result as recorded" in proc.stdout
    # moved into the corpus by hand, it is replayed from there
    (work / "cex").mkdir()
    stored.rename(work / "cex" / stored.name)
    code, report = verify_json(capsys, "--suite", suite)
    assert checks_by_id(report)[f"replay/{stored.stem}"]["status"] == "fail"


def test_repeated_runs_in_one_process_store_one_worst_case_counterexample(work, capsys):
    (work / "pb.json").write_text(json.dumps(PB_MAP))
    suite = write_suite(work, maps=("pb.json",), checks=("worst-case",))
    for _ in range(40):
        code, _, _ = verify(capsys, "--suite", suite)
        assert code == 1
    assert len(list((work / "cex.new").iterdir())) == 1


# --- coverage against the baseline ---------------------------------------------------------------


def test_a_model_that_stops_taking_an_error_path_fails_the_gate(work, capsys, monkeypatch):
    """The baseline records what v6.8's flow check on 1x1 reached. A change of the model that
    makes the TDMR-list allocation failure unreachable leaves every invariant holding (no
    safety property can fail on a path never taken); the gate fails with coverage-lost."""
    suite = work / "suite.toml"
    suite.write_text('profiles = ["v6.8"]\nmaps = []\nflow_configs = ["1x1"]\n'
                     'checks = ["flow"]\ncounterexamples = "cex"\n')
    code, _, _ = verify(capsys, "--suite", suite, "--update-baseline")
    assert code == 0
    reached = json.loads((work / "checker-baseline.json").read_text())["checks"][
        "flow/v6.8/1x1"]["reached"]
    assert "alloc_tdmr_list: -12 (injected)" in reached["steps"]

    from spec.flow import TdxFlow

    def never_fails(self, state, name, out):
        start = len(out)
        original(self, state, name, out)
        out[start:] = [(label, after) for label, after in out[start:] if not label.injected]

    original = TdxFlow._alloc_tdmr_list
    monkeypatch.setattr(TdxFlow, "_alloc_tdmr_list", never_fails)
    code, out, _ = verify(capsys, "--suite", suite)
    assert code == 1
    assert ("coverage-lost flow/v6.8/1x1: passes, but 1 step(s) no longer taken: "
            "alloc_tdmr_list: -12 (injected)") in " ".join(out.split())


@pytest.mark.parametrize("change", ["symmetry lost", "states merged", "step relabelled"])
def test_a_model_that_explores_another_space_fails_the_gate(work, capsys, monkeypatch, change):
    """One-rule changes that every invariant and every step survive: the caller renaming made
    the identity (caller symmetry lost: more states, the same verdicts, as seed-23 mutants of
    `_caller_plan` did); a reduction that merges states that differ (every caller's progress
    forgotten in the canonical form: fewer states, bugs could hide in those merged); and a
    machine check's RDMD probe of a PAMT page answering VMfailInvalid where it got #GP (both
    mean "not private", so states and transitions stay as they were and only how often each
    step is taken moves). The baseline records the space's size and how often each step was taken;
    the gate fails with state-space-changed and says how."""
    suite = work / "suite.toml"
    suite.write_text('profiles = ["v6.8"]\nmaps = []\nflow_configs = ["1x1"]\n'
                     'checks = ["flow"]\ncounterexamples = "cex"\n')
    assert verify(capsys, "--suite", suite, "--update-baseline")[0] == 0
    reached = json.loads((work / "checker-baseline.json").read_text())["checks"][
        "flow/v6.8/1x1"]["reached"]

    from spec.flow import TdxFlow
    from spec.flow_state import INITIALIZED, MC_PAMT_PAGE
    from spec.seamcall import GP, VMFAIL_INVALID
    from spec.statespace import StateSpace

    if change == "symmetry lost":
        monkeypatch.setattr(StateSpace, "alike_callers", lambda self: ())
    elif change == "states merged":
        canonical = StateSpace.canonical

        def merging(self, state):
            ahead = canonical(self, state)
            return ahead._replace(faults=0) if ahead.status == INITIALIZED else ahead

        monkeypatch.setattr(StateSpace, "canonical", merging)
    else:
        probes = TdxFlow.machine_checks

        def relabelled(self, state, page):
            return [label._replace(result=VMFAIL_INVALID)
                    if label.result == GP and page == MC_PAMT_PAGE else label
                    for label in probes(self, state, page)]

        monkeypatch.setattr(TdxFlow, "machine_checks", relabelled)
    code, out, _ = verify(capsys, "--suite", suite)
    text = " ".join(out.split())
    assert code == 1
    assert "state-space-changed flow/v6.8/1x1: passes and takes the same steps, but explores " \
        in text
    if change == "step relabelled":
        assert "states" not in text.split("state-space-changed")[1].split("(")[0]
        assert "step(s) taken a different number of times: machine_check: " in text
        return
    assert f"explores states {reached['states']:,} -> " in text
    now = int(re.search(r"states [\d,]+ -> ([\d,]+)", text).group(1).replace(",", ""))
    assert (now > reached["states"]) == (change == "symmetry lost")


def test_a_bug_still_caught_over_another_space_fails_the_gate(work, capsys, monkeypatch):
    """A change to a rule only a bug profile takes (the seed-33 mutant of the runtime update:
    where failures do not stop the CPUs, the update is marked failed instead of hung): the
    hazard is still caught by DEADLOCK-FREE on 2x1, over more states. The baseline records
    the size of a bug's exploration up to its violation, so the gate fails."""
    suite = work / "suite.toml"
    suite.write_text('profiles = ["mutant-update-hangs-on-failure"]\nmaps = []\n'
                     'flow_configs = ["2x1"]\nchecks = ["flow"]\ncounterexamples = "cex"\n')
    assert verify(capsys, "--suite", suite, "--update-baseline")[0] == 0
    check_id = "flow/mutant-update-hangs-on-failure/2x1"
    recorded = json.loads((work / "checker-baseline.json").read_text())["checks"][check_id]
    assert recorded["invariant"] == "DEADLOCK-FREE" and recorded["reached"]["states"] > 0

    from spec.flow_state import UPDATE_FAILED
    from spec.seamldr import ModuleUpdate
    from spec.statespace import set_fields

    hangs = ModuleUpdate._update_failed

    def marked_failed(self, state):
        if self.profile.update_aborts_on_failure:
            return hangs(self, state)
        return set_fields(state, update=UPDATE_FAILED)

    monkeypatch.setattr(ModuleUpdate, "_update_failed", marked_failed)
    code, out, _ = verify(capsys, "--suite", suite)
    text = " ".join(out.split())
    assert code == 1
    assert (f"state-space-changed {check_id}: is still caught by DEADLOCK-FREE, but explores "
            f"states {recorded['reached']['states']:,} -> ") in text


def test_a_log_no_longer_reproduced_fails_naming_the_log_and_stores_nothing(work, capsys,
                                                                             monkeypatch):
    """A model change that alters the PAMT figure fails LOG-REPRODUCED on the log's first
    line; the log itself is the case, so no counterexample file is written (replay re-runs
    maps and traces only), and the gate does not crash trying."""
    suite = write_suite(work, maps=(SPR,), checks=("log",))
    code, _, _ = verify(capsys, "--suite", suite, "--update-baseline")
    assert code == 0

    from spec.tdmr import ConstructResult

    monkeypatch.setattr(ConstructResult, "pamt_kb",
                        property(lambda self: sum(t.pamt_size for t in self.tdmrs) // 1025))
    code, out, err = verify(capsys, "--suite", suite, "--format", "json")
    assert code == 1 and "Traceback" not in err
    failed = [c for c in json.loads(out)["checks"] if c["status"] == "fail"]
    assert [c["id"] for c in failed] == [f"log/v6.8/{SPR.removesuffix('.log')}"]
    assert failed[0]["invariant"] == "LOG-REPRODUCED"
    assert not (work / "cex").exists() and "counterexample saved" not in err
