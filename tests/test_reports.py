"""Every report format, parsed back and validated: JSON against our schema, JUnit against the
Jenkins XSD, SARIF against the official OASIS 2.1.0 schema."""

from __future__ import annotations

import json
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
import xmlschema

from checker.gate.baseline import Baseline, Expected, compare
from checker.gate.results import CheckResult, Location
from checker.views.reports import FORMATS, REPO_ROOT, render, summary_line, trace_text

HERE = Path(__file__).resolve().parent
REPORT_SCHEMA = REPO_ROOT / "checker" / "schemas" / "report.schema.json"
SARIF_SCHEMA = HERE / "schemas" / "sarif-schema-2.1.0.json"
JUNIT_XSD = HERE / "schemas" / "jenkins-junit-10.xsd"

TRACE = (
    "1 boot: tdx_init -> platform enabled, S3 disabled\n"
    "9 config_global_keyid: TDH.SYS.KEY.CONFIG on cpu 2 (package 1) -> error   [injected]\n"
    "10 init_tdx_module: err_reset_pamts skipped -> tdmrs_free_pamt_all"
)


def results() -> list[CheckResult]:
    """One check of every kind the gate distinguishes."""
    return [
        CheckResult(
            id="sysinit-once/v6.8/2x2",
            invariant="SYSINIT-ONCE",
            profile="v6.8",
            config="2x2",
            status="pass",
            duration_s=0.25,
            states=1200,
            statement="TDH.SYS.INIT is called once per boot.",
            source="tdx.c: try_init_module_global",
        ),
        CheckResult(
            id="pamt-reset/v6.8/2x2-fault",
            invariant="PAMT-RESET-BEFORE-FREE",
            profile="v6.8",
            config="2x2, 1 fault",
            status="fail",
            detail="pamt[0] freed while written by the module",
            counterexample={"text": TRACE, "trace": [{"step": i} for i in range(12)]},
            duration_s=0.4,
            states=18402,
            location=Location("spec", "spec/flow.py", 211, "init_tdx_module"),
            statement="PAMTs the module wrote are reset before they are freed.",
            source="commit 0e0a1b2 x86/virt/tdx: reset PAMTs on the error path",
        ),
        CheckResult(
            id="rsvd-count/broken-rsvd/map17",
            invariant="RSVD-COUNT",
            profile="broken-rsvd",
            config="17 holes",
            status="fail",
            counterexample={"regions": [[0, 4096], [8192, 65536]]},
            location=Location("input", str(REPO_ROOT / "counterexamples" / "map17.json"), 3),
            statement="No TDMR needs more reserved areas than the module allows.",
            source="tdx.c: tdmr_add_rsvd_area",
        ),
        CheckResult(
            id="sysinit-once/v6.8/4x4",
            invariant="SYSINIT-ONCE",
            profile="v6.8",
            config="4x4",
            status="inconclusive",
            bound="depth 40 reached",
            duration_s=60.0,
            states=10**6,
        ),
        CheckResult(
            id="tdmr/v6.8/bad-input",
            invariant="TDMR-ALIGN",
            profile="v6.8",
            config="map 3",
            status="error",
            detail="KeyError: 'nid'\x00 in reader",
        ),
    ]


BASELINE = Baseline(
    {
        "sysinit-once/v6.8/2x2": Expected("pass", "SYSINIT-ONCE"),
        "pamt-reset/v6.8/2x2-fault": Expected("pass", "PAMT-RESET-BEFORE-FREE"),
        "rsvd-count/broken-rsvd/map17": Expected("fail", "RSVD-COUNT", "broken-rsvd"),
        "sysinit-once/v6.8/4x4": Expected("inconclusive", "SYSINIT-ONCE"),
        "tdmr/v6.8/bad-input": Expected("pass", "TDMR-ALIGN"),
        "keyid/broken-keyid/1": Expected("fail", "KEYID-GLOBAL-FIRST", "broken-keyid"),
    },
    "checker-baseline.json",
)


def comparison():
    return compare(results(), BASELINE)


def clean_comparison():
    """Nothing changed: the only failure is the expected one."""
    rs = [r for r in results() if r.id in ("sysinit-once/v6.8/2x2", "rsvd-count/broken-rsvd/map17")]
    baseline = Baseline({r.id: BASELINE.checks[r.id] for r in rs}, "checker-baseline.json")
    return rs, compare(rs, baseline)


# --- all formats -----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_output_is_deterministic_whatever_the_order_of_the_results(fmt):
    shuffled = results()
    random.Random(7).shuffle(shuffled)
    assert render(fmt, shuffled, compare(shuffled, BASELINE)) == render(
        fmt, results(), comparison()
    )


def test_an_unknown_format_is_refused():
    with pytest.raises(ValueError, match="unknown report format 'pdf'"):
        render("pdf", results(), comparison())


# --- text ------------------------------------------------------------------------------------


def test_text_summary_line_counts_each_outcome():
    rs, comp = clean_comparison()
    assert summary_line(rs, comp) == "checks: 2   pass 1   expected-fail 1   regressions 0"
    text = render("text", results(), comparison())
    assert text.splitlines()[0] == (
        "checks: 5   pass 1   expected-fail 1   regressions 3   inconclusive 1"
    )


def test_text_lists_only_what_needs_a_look_unless_verbose():
    lines = render("text", results(), comparison()).splitlines()
    listed = {r.id for r in results() if any(f" {r.id} " in line for line in lines)}
    # the pass and the expected failure are left out; the new failure, the error and the
    # inconclusive check are listed
    assert listed == {"pamt-reset/v6.8/2x2-fault", "sysinit-once/v6.8/4x4", "tdmr/v6.8/bad-input"}
    rs, comp = clean_comparison()
    assert render("text", rs, comp).splitlines() == [
        "checks: 2   pass 1   expected-fail 1   regressions 0", "baseline: checker-baseline.json",
        "", "verdict: pass (exit 0)"]


def test_text_failure_block_states_the_invariant():
    text = render("text", results(), comparison())
    assert "  PAMT-RESET-BEFORE-FREE: PAMTs the module wrote are reset before they are freed." \
        in text


def test_text_lines_fit_the_width_and_none_is_printed_twice():
    long = results()[1]
    long = CheckResult(**{**long.__dict__, "detail": " ".join(f"word{i}" for i in range(60))})
    rs = [long] + results()[2:]
    for width in (100, 60):
        lines = render("text", rs, compare(rs, BASELINE), verbose=True, width=width).splitlines()
        assert max(map(len, lines)) <= width
        words = [line for line in lines if len(re.findall("[a-z]", line)) > 2]
        assert len(words) == len(set(words))


def test_text_has_one_line_per_check_with_its_label_and_transition():
    lines = render("text", results(), comparison(), verbose=True, width=200).splitlines()
    by_id = {
        check_id: next(line for line in lines if f" {check_id} " in line)
        for check_id in (r.id for r in results())
    }
    assert by_id["sysinit-once/v6.8/2x2"].startswith("PASS ")
    assert by_id["pamt-reset/v6.8/2x2-fault"].startswith("FAIL ")
    assert "(12 steps, 18,402 states, 0.4 s)" in by_id["pamt-reset/v6.8/2x2-fault"]
    assert by_id["pamt-reset/v6.8/2x2-fault"].endswith("<- new-failure")
    assert by_id["rsvd-count/broken-rsvd/map17"].startswith("XFAIL ")
    assert by_id["sysinit-once/v6.8/4x4"].startswith("INCONCLUSIVE ")
    assert "bound: depth 40 reached" in by_id["sysinit-once/v6.8/4x4"]
    assert by_id["tdmr/v6.8/bad-input"].startswith("ERROR ")


def test_text_lists_every_transition_and_prints_the_regressed_trace():
    text = render("text", results(), comparison())
    assert "changes against the baseline:" in text
    assert re.search(r"\n  new-failure +pamt-reset/v6.8/2x2-fault: expected pass, now a fail", text)
    assert re.search(r"\n  check-removed +keyid/broken-keyid/1: in the baseline", text)
    assert re.search(r"\n  new-error +tdmr/v6.8/bad-input: expected pass; the check errored", text)
    assert "  9 config_global_keyid: TDH.SYS.KEY.CONFIG on cpu 2" in text  # the engine's text
    assert "at spec/flow.py:211 (init_tdx_module)" in text
    assert '"regions"' not in text  # the expected failure's map is only shown with verbose
    assert '"regions"' in render("text", results(), comparison(), verbose=True)
    assert text.rstrip().endswith("verdict: fail (exit 1)")


def test_text_without_a_baseline_says_so():
    rs = [r for r in results() if r.status == "pass"]
    text = render("text", rs)
    assert "baseline: none (every check must pass)" in text
    assert text.rstrip().endswith("verdict: pass (exit 0)")


def test_trace_text_falls_back_to_the_counterexample_json():
    rsvd = results()[2]
    assert json.loads(trace_text(rsvd)) == rsvd.counterexample
    assert trace_text(results()[0]) == ""


# --- json ------------------------------------------------------------------------------------


def load_report_schema():
    schema = json.loads(REPORT_SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def test_json_report_follows_its_schema_and_carries_each_check():
    doc = json.loads(render("json", results(), comparison()))
    jsonschema.Draft202012Validator(load_report_schema()).validate(doc)
    assert (doc["schema_version"], doc["verdict"], doc["exit_code"]) == (1, "fail", 1)
    checks = {c["id"]: c for c in doc["checks"]}
    assert [c["id"] for c in doc["checks"]] == sorted(checks)
    pamt = checks["pamt-reset/v6.8/2x2-fault"]
    assert pamt["status"] == "fail"
    assert pamt["outcome"] == "regression"
    assert pamt["transition"] == "new-failure"
    assert pamt["expected"] == {"invariant": "PAMT-RESET-BEFORE-FREE", "status": "pass"}
    assert pamt["counterexample"]["text"] == TRACE
    assert pamt["location"] == {
        "kind": "spec",
        "file": "spec/flow.py",
        "line": 211,
        "function": "init_tdx_module",
    }
    # an absolute path inside the repository becomes relative: no machine-specific paths
    assert (
        checks["rsvd-count/broken-rsvd/map17"]["location"]["file"] == "counterexamples/map17.json"
    )
    assert checks["rsvd-count/broken-rsvd/map17"]["outcome"] == "expected-fail"
    transitions = {t["check_id"]: t for t in doc["baseline"]["transitions"]}
    assert transitions["keyid/broken-keyid/1"]["transition"] == "check-removed"
    assert transitions["keyid/broken-keyid/1"]["actual"] is None
    assert doc["summary"]["regressions"] == 3
    assert doc["summary"]["errors"] == 1


def test_json_report_without_a_baseline_follows_the_schema():
    doc = json.loads(render("json", results()[:2]))
    jsonschema.Draft202012Validator(load_report_schema()).validate(doc)
    assert doc["baseline"]["path"] is None
    assert doc["checks"][0]["expected"] is None


def test_the_report_schema_rejects_what_it_must():
    doc = json.loads(render("json", results(), comparison()))
    doc["checks"][0]["status"] = "skipped"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(load_report_schema()).validate(doc)


# --- junit -----------------------------------------------------------------------------------


def junit_xsd():
    return xmlschema.XMLSchema(str(JUNIT_XSD))


def test_junit_validates_against_the_jenkins_xsd():
    xml = render("junit", results(), comparison())
    junit_xsd().validate(xml)
    rs, comp = clean_comparison()
    junit_xsd().validate(render("junit", rs, comp))
    junit_xsd().validate(render("junit", [], compare([], None)))


def test_junit_has_one_testcase_per_check_classed_by_profile():
    root = ET.fromstring(render("junit", results(), comparison()))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert set(cases) == {r.id for r in results()} | {"keyid/broken-keyid/1"}
    assert cases["rsvd-count/broken-rsvd/map17"].get("classname") == "broken-rsvd"
    assert cases["sysinit-once/v6.8/2x2"].get("classname") == "v6.8"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert sorted(suites) == ["broken-keyid", "broken-rsvd", "v6.8"]
    v68 = suites["v6.8"]
    assert (v68.get("tests"), v68.get("failures"), v68.get("errors"), v68.get("skipped")) == (
        "4",
        "1",
        "1",
        "1",
    )
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("6", "2", "1")


def test_junit_failures_carry_the_trace_and_expected_failures_are_not_failures():
    root = ET.fromstring(render("junit", results(), comparison()))
    cases = {c.get("name"): c for c in root.iter("testcase")}
    failure = cases["pamt-reset/v6.8/2x2-fault"].find("failure")
    assert failure.get("type") == "new-failure"
    assert "expected pass" in failure.get("message")
    assert "err_reset_pamts skipped" in failure.text
    expected = cases["rsvd-count/broken-rsvd/map17"]
    assert expected.find("failure") is None and expected.find("error") is None
    assert "RSVD-COUNT caught it" in expected.find("system-out").text
    assert cases["sysinit-once/v6.8/4x4"].find("skipped").get("message") == (
        "inconclusive: depth 40 reached"
    )
    error = cases["tdmr/v6.8/bad-input"].find("error")
    assert "KeyError" in error.get("message")
    assert "\x00" not in error.get("message")  # XML cannot carry it; replaced, still parses
    assert cases["keyid/broken-keyid/1"].find("failure").get("type") == "check-removed"
    assert list(cases["sysinit-once/v6.8/2x2"]) == []  # a pass is an empty testcase


def test_junit_of_a_clean_run_has_no_failures():
    rs, comp = clean_comparison()
    root = ET.fromstring(render("junit", rs, comp))
    assert (root.get("failures"), root.get("errors")) == ("0", "0")
    assert root.find(".//failure") is None


# --- sarif -----------------------------------------------------------------------------------


def sarif_validator():
    schema = json.loads(SARIF_SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_sarif_validates_against_the_official_schema():
    validator = sarif_validator()
    validator.validate(json.loads(render("sarif", results(), comparison())))
    validator.validate(json.loads(render("sarif", results())))  # no baseline
    validator.validate(json.loads(render("sarif", [], compare([], None))))


def test_the_sarif_schema_is_strict_enough_to_catch_a_mistake():
    doc = json.loads(render("sarif", results(), comparison()))
    doc["runs"][0]["results"][0]["level"] = "fatal"
    with pytest.raises(jsonschema.ValidationError):
        sarif_validator().validate(doc)


def test_sarif_has_one_result_per_failing_check_with_rule_and_location():
    run = json.loads(render("sarif", results(), comparison()))["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [
        "PAMT-RESET-BEFORE-FREE",
        "RSVD-COUNT",
        "SYSINIT-ONCE",
    ]  # every invariant that ran, not only the failing ones; not the one that errored
    assert rules[0]["shortDescription"]["text"] == (
        "PAMTs the module wrote are reset before they are freed."
    )
    assert "reset PAMTs on the error path" in rules[0]["fullDescription"]["text"]
    assert rules[0]["properties"]["source"].startswith("commit 0e0a1b2")
    by_rule = {r["ruleId"]: r for r in run["results"]}
    assert sorted(by_rule) == ["PAMT-RESET-BEFORE-FREE", "RSVD-COUNT"]
    new = by_rule["PAMT-RESET-BEFORE-FREE"]
    assert rules[new["ruleIndex"]]["id"] == "PAMT-RESET-BEFORE-FREE"
    assert (new["level"], new["baselineState"]) == ("error", "new")
    assert "suppressions" not in new
    assert "err_reset_pamts skipped" in new["message"]["text"]
    assert new["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "spec/flow.py", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 211},
    }
    assert new["locations"][0]["logicalLocations"] == [
        {"name": "init_tdx_module", "kind": "function"}
    ]
    assert new["partialFingerprints"] == {"checkId/v1": "pamt-reset/v6.8/2x2-fault"}
    assert "%SRCROOT%" in run["originalUriBaseIds"]


def test_sarif_keeps_expected_failures_as_suppressed_unchanged_notes():
    run = json.loads(render("sarif", results(), comparison()))["runs"][0]
    expected = next(r for r in run["results"] if r["ruleId"] == "RSVD-COUNT")
    assert (expected["level"], expected["baselineState"]) == ("note", "unchanged")
    assert expected["suppressions"][0]["kind"] == "external"
    assert expected["suppressions"][0]["status"] == "accepted"
    artifact = expected["locations"][0]["physicalLocation"]["artifactLocation"]
    assert artifact == {"uri": "counterexamples/map17.json", "uriBaseId": "%SRCROOT%"}


def test_sarif_without_a_baseline_has_no_baseline_state_and_every_failure_is_an_error():
    run = json.loads(render("sarif", results()))["runs"][0]
    assert {r["level"] for r in run["results"]} == {"error"}
    assert all("baselineState" not in r for r in run["results"])


def test_sarif_reports_what_is_not_a_failing_check_as_notifications():
    run = json.loads(render("sarif", results(), comparison()))["runs"][0]
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False  # a check errored
    assert invocation["exitCode"] == 1
    notes = {
        (n["properties"]["checkId"], n["descriptor"]["id"]): n["level"]
        for n in invocation["toolExecutionNotifications"]
    }
    assert notes == {
        ("tdmr/v6.8/bad-input", "error"): "error",
        ("sysinit-once/v6.8/4x4", "inconclusive"): "warning",
        ("keyid/broken-keyid/1", "check-removed"): "error",
    }


def test_sarif_location_outside_the_repository_is_an_absolute_uri(tmp_path):
    outside = CheckResult(
        id="x",
        invariant="RSVD-COUNT",
        profile="v6.8",
        config="user map",
        status="fail",
        location=Location("input", str(tmp_path / "mymap.json"), 7),
    )
    doc = json.loads(render("sarif", [outside]))
    sarif_validator().validate(doc)
    artifact = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert artifact["artifactLocation"] == {"uri": (tmp_path / "mymap.json").as_uri()}
    assert artifact["region"] == {"startLine": 7}


def test_the_junit_xsd_is_strict_enough_to_catch_a_mistake():
    root = ET.fromstring(render("junit", results(), comparison()))
    del root.find("testsuite").attrib["tests"]
    assert not junit_xsd().is_valid(ET.tostring(root, encoding="unicode"))
