"""The verify gate: every baseline transition, every exit code, and the baseline file."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

import jsonschema
import pytest

from checker.gate.baseline import (
    BECAME_INCONCLUSIVE,
    CHECK_ADDED,
    CHECK_REMOVED,
    COVERAGE_GAINED,
    COVERAGE_LOST,
    DIFFERENT_INVARIANT,
    EXIT_INCONCLUSIVE,
    EXIT_OK,
    EXIT_REGRESSION,
    EXPECTED_FAILURE_PASSES,
    INCONCLUSIVE_NOW_PASSES,
    INCONCLUSIVE_SEVERITY,
    NEW_ERROR,
    NEW_FAILURE,
    NOT_RUN,
    REGRESSION,
    STATE_SPACE_CHANGED,
    TRANSITIONS,
    Baseline,
    BaselineError,
    BaselineMissing,
    Expected,
    Reached,
    baseline_from_results,
    compare,
    dump_baseline,
    is_new_failure,
    load_baseline,
    parse_baseline,
    write_baseline,
)
from checker.gate.results import CheckResult

SCHEMA = Path(__file__).resolve().parents[1] / "checker" / "schemas" / "baseline.schema.json"


def check(check_id: str, status: str, invariant: str = "SYSINIT-ONCE", **kw) -> CheckResult:
    kw.setdefault("profile", "v6.8")
    kw.setdefault("config", "2x2")
    return CheckResult(id=check_id, invariant=invariant, status=status, **kw)


def base(**entries: tuple[str, str]) -> Baseline:
    """base(a=("fail", "RSVD-COUNT")) -> a baseline expecting check "a" to fail RSVD-COUNT."""
    return Baseline(
        {k: Expected(status, inv, "v6.8", "2x2") for k, (status, inv) in entries.items()},
        "checker-baseline.json",
    )


def only_transition(comparison):
    assert len(comparison.transitions) == 1, comparison.transitions
    return comparison.transitions[0]


# --- matches -------------------------------------------------------------------------------------


def test_everything_matching_the_baseline_exits_0_even_with_expected_failures():
    results = [check("a", "pass"), check("b", "fail", "RSVD-COUNT")]
    comparison = compare(results, base(a=("pass", "SYSINIT-ONCE"), b=("fail", "RSVD-COUNT")))
    assert comparison.transitions == ()
    assert comparison.exit_code == EXIT_OK
    assert comparison.verdict == "pass"
    assert comparison.outcomes == {"a": "pass", "b": "expected-fail"}


def test_a_passing_check_may_change_its_invariant_name_without_a_transition():
    # Only failures record *which* invariant is expected; a pass has nothing to compare.
    comparison = compare([check("a", "pass", "NEW-NAME")], base(a=("pass", "SYSINIT-ONCE")))
    assert comparison.exit_code == EXIT_OK


# --- each transition -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expected", "result", "name", "severity", "words"),
    [
        (("pass", "SYSINIT-ONCE"), check("a", "fail", "SYSINIT-ONCE"), NEW_FAILURE, REGRESSION,
         "expected pass, now a failure of SYSINIT-ONCE"),
        (("inconclusive", "SYSINIT-ONCE"), check("a", "fail", "SYSINIT-ONCE"), NEW_FAILURE,
         REGRESSION, "expected inconclusive, now a failure of SYSINIT-ONCE"),
        (("fail", "RSVD-COUNT"), check("a", "pass", "RSVD-COUNT"), EXPECTED_FAILURE_PASSES,
         REGRESSION, "no longer caught"),
        (("fail", "RSVD-COUNT"), check("a", "fail", "PAMT-COVERAGE"), DIFFERENT_INVARIANT,
         REGRESSION, "expected to be caught by RSVD-COUNT, now caught by PAMT-COVERAGE"),
        (("inconclusive", "SYSINIT-ONCE"), check("a", "pass"), INCONCLUSIVE_NOW_PASSES,
         REGRESSION, "now passes"),
        (("pass", "SYSINIT-ONCE"), check("a", "inconclusive", bound="depth 12"),
         BECAME_INCONCLUSIVE, INCONCLUSIVE_SEVERITY, "(depth 12)"),
        (("fail", "RSVD-COUNT"), check("a", "inconclusive", "RSVD-COUNT"), BECAME_INCONCLUSIVE,
         INCONCLUSIVE_SEVERITY, "expected a failure of RSVD-COUNT, now inconclusive"),
        (("pass", "SYSINIT-ONCE"), check("a", "error", detail="ZeroDivisionError"), NEW_ERROR,
         REGRESSION, "ZeroDivisionError"),
        (("fail", "RSVD-COUNT"), check("a", "error", "RSVD-COUNT", detail="boom"), NEW_ERROR,
         REGRESSION, "expected a failure of RSVD-COUNT; the check errored: boom"),
    ],
)  # fmt: skip
def test_each_transition_is_named_and_explained(expected, result, name, severity, words):
    t = only_transition(compare([result], base(a=expected)))
    assert (t.check_id, t.name, t.severity) == ("a", name, severity)
    assert words in t.explanation
    assert "\n" not in t.explanation
    assert t.expected == Expected(expected[0], expected[1], "v6.8", "2x2")
    assert (t.actual_status, t.actual_invariant) == (result.status, result.invariant)


def test_check_added():
    comparison = compare([check("a", "pass"), check("new", "pass")], base(a=("pass", "X")))
    t = only_transition(comparison)
    assert (t.check_id, t.name, t.expected) == ("new", CHECK_ADDED, None)
    assert "--update-baseline" in t.explanation
    assert comparison.exit_code == EXIT_REGRESSION


def test_check_removed():
    comparison = compare([check("a", "pass")], base(a=("pass", "X"), gone=("fail", "RSVD-COUNT")))
    t = only_transition(comparison)
    assert (t.check_id, t.name, t.actual_status) == ("gone", CHECK_REMOVED, None)
    assert "a failure of RSVD-COUNT" in t.explanation
    assert comparison.exit_code == EXIT_REGRESSION
    assert "gone" not in comparison.outcomes


def test_a_check_not_run_is_inconclusive_not_removed():
    comparison = compare([check("nf", "fail")], base(nf=("pass", "X"), later=("pass", "X")),
                         not_run=["later"])
    names = {t.check_id: (t.name, t.severity) for t in comparison.transitions}
    assert names == {"nf": (NEW_FAILURE, REGRESSION),
                     "later": (NOT_RUN, INCONCLUSIVE_SEVERITY)}
    assert comparison.exit_code == EXIT_REGRESSION
    alone = compare([check("a", "pass")], base(a=("pass", "X"), later=("pass", "X")),
                    not_run=["later"])
    assert alone.exit_code == EXIT_OK  # a check not run is no regression on its own


def test_is_new_failure_is_what_fail_fast_stops_at():
    baseline = base(nf=("pass", "X"), efp=("fail", "X"), di=("fail", "Y"))
    assert is_new_failure(check("nf", "fail", "X"), baseline)
    assert not is_new_failure(check("efp", "fail", "X"), baseline)
    assert is_new_failure(check("di", "fail", "X"), baseline)
    assert is_new_failure(check("added", "fail", "X"), baseline)
    assert not is_new_failure(check("nf", "error"), baseline)  # an error is not a failure
    assert not is_new_failure(check("nf", "pass"), baseline)
    assert is_new_failure(check("nf", "fail", "X"), None)


def test_every_transition_name_is_reachable_and_listed():
    results = [
        check("nf", "fail"),
        check("efp", "pass", "RSVD-COUNT"),
        check("di", "fail", "PAMT-COVERAGE"),
        check("inp", "pass"),
        check("bi", "inconclusive"),
        check("ne", "error"),
        check("added", "pass"),
        covered("lost", steps={"init_tdx_module": {"0": 3}}),
        covered("gained", steps={**FULL_STEPS, "err_reset_pamts": {"-": 1}}),
        covered("resized", states=121),
    ]
    baseline = base(
        nf=("pass", "SYSINIT-ONCE"),
        efp=("fail", "RSVD-COUNT"),
        di=("fail", "RSVD-COUNT"),
        inp=("inconclusive", "SYSINIT-ONCE"),
        bi=("pass", "SYSINIT-ONCE"),
        ne=("pass", "SYSINIT-ONCE"),
        removed=("pass", "SYSINIT-ONCE"),
        skipped=("pass", "SYSINIT-ONCE"),
    )
    baseline.checks["lost"] = recorded(covered("lost"))
    baseline.checks["gained"] = recorded(covered("gained"))
    baseline.checks["resized"] = recorded(covered("resized"))
    comparison = compare(results, baseline, not_run=["skipped"])
    assert sorted(t.name for t in comparison.transitions) == sorted(TRANSITIONS)
    ids = [t.check_id for t in comparison.transitions]
    assert ids == sorted(ids)


# --- coverage: what a passing flow check reached --------------------------------------------

FULL_STEPS = {"init_tdx_module": {"0": 3, "-ENOMEM": 1},
              "err_free_tdmrs": {"-": 1},
              "build_tdx_memlist": {"-ENOMEM (injected)": 1, "0": 2}}


def covered(check_id, steps=FULL_STEPS, invariants=("FREE-ONCE", "SYSINIT-ONCE"), states=120,
            transitions=None):
    """A passing flow check with a coverage report and the size of its space (as run_flow
    attaches them)."""
    actions = {a: {"transitions": sum(o.values()), "outcomes": dict(o)} for a, o in steps.items()}
    actions["never_taken"] = {"transitions": 0, "outcomes": {}}
    applies = {i: {"applies": 5 if i in invariants else 0, "in": "states"}
               for i in ("FREE-ONCE", "SYSINIT-ONCE")}
    if transitions is None:
        transitions = sum(a["transitions"] for a in actions.values())
    return check(check_id, "pass", "FLOW", states=states,
                 extra={"coverage": {"actions": actions, "invariants": applies},
                        "transitions": transitions})


def recorded(result):
    return baseline_from_results([result]).checks[result.id]


def test_a_passing_flow_check_records_what_it_reached():
    expected = recorded(covered("a"))
    counts = {"init_tdx_module: 0": 3, "init_tdx_module: -ENOMEM": 1, "err_free_tdmrs: -": 1,
              "build_tdx_memlist: -ENOMEM (injected)": 1, "build_tdx_memlist: 0": 2}
    assert expected.reached == Reached(frozenset(counts), frozenset({"FREE-ONCE", "SYSINIT-ONCE"}),
                                       120, 8, counts)
    assert recorded(check("b", "pass")).reached is None  # no coverage report, nothing recorded
    assert recorded(replace(covered("c"), status="inconclusive")).reached is None


def test_a_check_that_stops_taking_an_error_path_loses_coverage():
    """A model change that makes the injected memlist allocation failure unreachable: the
    check still passes (no invariant can fail on a path never taken), and the gate says so."""
    steps = {a: dict(o) for a, o in FULL_STEPS.items()}
    del steps["build_tdx_memlist"]["-ENOMEM (injected)"]
    baseline = Baseline({"a": recorded(covered("a"))}, "checker-baseline.json")
    t = only_transition(compare([covered("a", steps=steps)], baseline))
    assert (t.name, t.severity) == (COVERAGE_LOST, REGRESSION)
    assert "1 step(s) no longer taken: build_tdx_memlist: -ENOMEM (injected)" in t.explanation
    assert "--update-baseline" in t.explanation


def test_an_invariant_that_stops_applying_loses_coverage():
    baseline = Baseline({"a": recorded(covered("a"))}, "checker-baseline.json")
    t = only_transition(compare([covered("a", invariants=("SYSINIT-ONCE",))], baseline))
    assert t.name == COVERAGE_LOST and "no longer applying: FREE-ONCE" in t.explanation


def test_a_check_that_takes_a_step_never_taken_gains_coverage():
    """A model change that lets a step happen where it never did (here the PAMT reset on a
    configuration whose recording never reset them): every invariant may hold there, but the
    model's behaviour changed, and the gate says which step."""
    steps = {**FULL_STEPS, "err_reset_pamts": {"-": 2}}
    baseline = Baseline({"a": recorded(covered("a"))}, "checker-baseline.json")
    t = only_transition(compare([covered("a", steps=steps)], baseline))
    assert (t.name, t.severity) == (COVERAGE_GAINED, REGRESSION)
    assert "1 step(s) never taken before: err_reset_pamts: -" in t.explanation
    assert compare([covered("a")], baseline).exit_code == EXIT_OK


def test_an_invariant_that_starts_applying_gains_coverage():
    baseline = Baseline({"a": recorded(covered("a", invariants=("SYSINIT-ONCE",)))},
                        "checker-baseline.json")
    t = only_transition(compare([covered("a")], baseline))
    assert t.name == COVERAGE_GAINED and "applying for the first time: FREE-ONCE" in t.explanation
    assert "an invariant now has something to check" in t.explanation


@pytest.mark.parametrize(("states", "transitions", "says"), [
    (240, 8, "states 120 -> 240"), (60, 8, "states 120 -> 60"),
    (120, 9, "transitions 8 -> 9"), (1200, 80, "states 120 -> 1,200; transitions 8 -> 80")])
def test_the_same_steps_over_a_space_of_another_size_is_a_change(states, transitions, says):
    """A model change that keeps every step but tells states apart, or merges them, otherwise
    (a symmetry reduction lost doubles the states; an unsound one merges states that differ):
    every invariant may still hold, but what was explored is not what was recorded."""
    baseline = Baseline({"a": recorded(covered("a"))}, "checker-baseline.json")
    t = only_transition(compare([covered("a", states=states, transitions=transitions)],
                                baseline))
    assert (t.name, t.severity) == (STATE_SPACE_CHANGED, REGRESSION)
    assert says in t.explanation and "--update-baseline" in t.explanation
    assert compare([covered("a")], baseline).exit_code == EXIT_OK


def test_a_step_that_now_leads_elsewhere_is_a_change():
    """A model change that leaves every state and the number of transitions as they were but
    sends a step elsewhere (a re-onlined block now vetoed: the step that onlined it becomes a
    veto, so one outcome is taken less and another more): every invariant may hold, the same
    steps are taken, but how often each is taken says the graph changed."""
    steps = {a: dict(o) for a, o in FULL_STEPS.items()}
    steps["init_tdx_module"] = {"0": 2, "-ENOMEM": 2}
    baseline = Baseline({"a": recorded(covered("a"))}, "checker-baseline.json")
    t = only_transition(compare([covered("a", steps=steps)], baseline))
    assert (t.name, t.severity) == (STATE_SPACE_CHANGED, REGRESSION)
    assert ("2 step(s) taken a different number of times: init_tdx_module: -ENOMEM 1 -> 2, "
            "init_tdx_module: 0 3 -> 2") in t.explanation


def caught(check_id, states=40, transitions=90, invariant="FREE-ONCE"):
    """A bug profile's flow check: failing, with the size of the space explored up to its
    violation (as run_flow attaches it; no coverage)."""
    return check(check_id, "fail", invariant, states=states,
                 extra={"transitions": transitions, "depth": 6})


def test_a_bug_caught_after_another_number_of_states_is_a_change():
    """A model change in a rule only a bug profile reaches (how a failed update hangs, say):
    the bug is still caught by the same invariant, but over another space, and the gate says
    so; the same numbers match, and another invariant is its own transition."""
    expected = recorded(caught("a"))
    assert expected.reached == Reached(frozenset(), frozenset(), 40, 90)
    assert recorded(check("m", "fail")).reached is None  # a map check: nothing to record
    baseline = Baseline({"a": expected}, "checker-baseline.json")
    assert compare([caught("a")], baseline).exit_code == EXIT_OK
    t = only_transition(compare([caught("a", states=44, transitions=97)], baseline))
    assert (t.name, t.severity) == (STATE_SPACE_CHANGED, REGRESSION)
    assert "is still caught by FREE-ONCE, but explores states 40 -> 44; transitions 90 -> 97" \
        in t.explanation
    t = only_transition(compare([caught("a", states=44, invariant="SYSINIT-ONCE")], baseline))
    assert t.name == DIFFERENT_INVARIANT


def test_a_baseline_without_the_space_sizes_compares_steps_only():
    """Baselines written before the sizes were recorded still load and gate on steps."""
    old = replace(recorded(covered("a")), reached=Reached(
        recorded(covered("a")).reached.steps, recorded(covered("a")).reached.invariants))
    baseline = Baseline({"a": old}, "checker-baseline.json")
    more = {a: {o: n * 2 for o, n in out.items()} for a, out in FULL_STEPS.items()}
    assert compare([covered("a", steps=more, states=999, transitions=999)],
                   baseline).exit_code == EXIT_OK
    doc = {"schema_version": 1, "checks": {"a": old.to_json()}}
    assert "states" not in doc["checks"]["a"]["reached"]
    assert isinstance(doc["checks"]["a"]["reached"]["steps"], list)
    assert parse_baseline(json.dumps(doc)).checks["a"] == old


def test_reached_survives_the_file_and_matches_the_schema(tmp_path):
    path = tmp_path / "b.json"
    written = write_baseline(path, [covered("a")])
    doc = json.loads(path.read_text())
    jsonschema.validate(doc, json.loads(SCHEMA.read_text()))
    assert load_baseline(path).checks == written.checks
    assert doc["checks"]["a"]["reached"]["invariants"] == ["FREE-ONCE", "SYSINIT-ONCE"]
    assert (doc["checks"]["a"]["reached"]["states"],
            doc["checks"]["a"]["reached"]["transitions"]) == (120, 8)
    assert doc["checks"]["a"]["reached"]["steps"]["init_tdx_module: 0"] == 3
    assert load_baseline(path).checks["a"].reached.counts == written.checks["a"].reached.counts


@pytest.mark.parametrize("reached", [[], {"steps": []}, {"steps": [1], "invariants": []},
                                     {"steps": [], "invariants": [""]},
                                     {"steps": [], "invariants": [], "states": -1},
                                     {"steps": [], "invariants": [], "transitions": "8"},
                                     {"steps": [], "invariants": [], "states": True},
                                     {"steps": [], "invariants": [], "edges": 3},
                                     {"steps": {"a: 0": 0}, "invariants": []},
                                     {"steps": {"a: 0": "3"}, "invariants": []},
                                     {"steps": [], "invariants": {"X": 1}}])
def test_a_malformed_reached_entry_is_refused_with_its_check(reached):
    doc = {"schema_version": 1, "checks": {"flow/x": {"status": "pass", "invariant": "FLOW",
                                                      "reached": reached}}}
    with pytest.raises(BaselineError, match="check 'flow/x': 'reached"):
        parse_baseline(json.dumps(doc))


# --- exit codes ------------------------------------------------------------------------------


def test_no_baseline_all_pass_exits_0():
    comparison = compare([check("a", "pass"), check("b", "pass")], None)
    assert (comparison.exit_code, comparison.transitions, comparison.has_baseline) == (0, (), False)


def test_no_baseline_a_failure_exits_1_as_new_failure():
    comparison = compare([check("a", "pass"), check("b", "fail", "RSVD-COUNT")], None)
    assert comparison.exit_code == EXIT_REGRESSION
    assert only_transition(comparison).name == NEW_FAILURE
    assert comparison.outcomes["b"] == "regression"


def test_no_baseline_an_error_exits_1_even_when_inconclusive_is_allowed():
    comparison = compare([check("a", "error")], None, allow_inconclusive=True)
    assert comparison.exit_code == EXIT_REGRESSION


def test_no_baseline_inconclusive_exits_3_unless_allowed():
    results = [check("a", "pass"), check("b", "inconclusive")]
    assert compare(results, None).exit_code == EXIT_INCONCLUSIVE
    assert compare(results, None).verdict == "inconclusive"
    assert compare(results, None, allow_inconclusive=True).exit_code == EXIT_OK


def test_inconclusive_expected_by_the_baseline_still_exits_3_unless_allowed():
    # A bound hit is never a silent pass: the baseline cannot vouch for it.
    results = [check("a", "inconclusive")]
    baseline = base(a=("inconclusive", "SYSINIT-ONCE"))
    assert compare(results, baseline).transitions == ()
    assert compare(results, baseline).exit_code == EXIT_INCONCLUSIVE
    assert compare(results, baseline, allow_inconclusive=True).exit_code == EXIT_OK


def test_became_inconclusive_is_3_not_1_and_allowed_with_the_flag():
    results = [check("a", "inconclusive")]
    baseline = base(a=("pass", "SYSINIT-ONCE"))
    assert compare(results, baseline).exit_code == EXIT_INCONCLUSIVE
    allowed = compare(results, baseline, allow_inconclusive=True)
    assert allowed.exit_code == EXIT_OK
    assert only_transition(allowed).name == BECAME_INCONCLUSIVE  # still reported


def test_a_regression_wins_over_inconclusive():
    results = [check("a", "inconclusive"), check("b", "fail")]
    baseline = base(a=("pass", "SYSINIT-ONCE"), b=("pass", "SYSINIT-ONCE"))
    assert compare(results, baseline).exit_code == EXIT_REGRESSION


def test_duplicate_check_ids_are_an_input_error():
    with pytest.raises(ValueError, match="duplicate check id 'a'"):
        compare([check("a", "pass"), check("a", "fail")], None)


# --- the file --------------------------------------------------------------------------------


def test_write_then_load_round_trips_and_the_run_then_matches(tmp_path):
    results = [
        check("b", "fail", "RSVD-COUNT", profile="broken-rsvd", config="map 17 holes"),
        check("a", "pass", duration_s=3.2, states=100),
        check("c", "inconclusive", bound="states 1e6"),
    ]
    path = tmp_path / "checker-baseline.json"
    write_baseline(path, results)
    loaded = load_baseline(path)
    assert loaded.path == str(path)
    assert loaded.checks["b"] == Expected("fail", "RSVD-COUNT", "broken-rsvd", "map 17 holes")
    assert compare(results, loaded, allow_inconclusive=True).exit_code == EXIT_OK
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_rewriting_keeps_the_files_mode_and_replaces_a_symlink_without_following_it(tmp_path):
    path = tmp_path / "checker-baseline.json"
    write_baseline(path, [check("a", "pass")])
    path.chmod(0o600)
    write_baseline(path, [check("a", "fail", "X")])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_baseline(path).checks["a"].status == "fail"
    shared = tmp_path / "shared.json"
    shared.write_text("someone else's")
    link = tmp_path / "linked.json"
    link.symlink_to(shared)
    write_baseline(link, [check("a", "pass")])
    assert not link.is_symlink() and load_baseline(link).checks["a"].status == "pass"
    assert shared.read_text() == "someone else's"


def test_the_file_is_deterministic_and_has_no_timing(tmp_path):
    one = [check("b", "fail", "RSVD-COUNT", duration_s=1.0), check("a", "pass", states=5)]
    two = [check("a", "pass", duration_s=9.9, states=7), check("b", "fail", "RSVD-COUNT")]
    text = dump_baseline(baseline_from_results(one))
    assert text == dump_baseline(baseline_from_results(two))
    assert text.endswith("\n")
    doc = json.loads(text)
    assert list(doc["checks"]) == ["a", "b"]
    assert doc["checks"]["b"] == {
        "config": "2x2",
        "invariant": "RSVD-COUNT",
        "profile": "v6.8",
        "status": "fail",
    }


def test_the_written_file_follows_its_schema(tmp_path):
    path = tmp_path / "b.json"
    write_baseline(path, [check("a", "pass"), check("b", "fail", "X"), check("c", "inconclusive")])
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(json.loads(path.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"schema_version": 1, "checks": {"a": {"status": "error"}}}, schema)


def test_an_error_cannot_be_recorded(tmp_path):
    path = tmp_path / "b.json"
    with pytest.raises(ValueError, match="checks error: x"):
        write_baseline(path, [check("a", "pass"), check("x", "error")])
    assert not path.exists()


def test_a_missing_file_is_its_own_error_naming_the_file(tmp_path):
    path = tmp_path / "nope.json"
    with pytest.raises(BaselineMissing, match="nope.json: baseline file not found") as info:
        load_baseline(path)
    assert isinstance(info.value, BaselineError)
    assert info.value.path == str(path)


GOOD_ENTRY = {"status": "pass", "invariant": "X"}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"schema_version": 1,\n "checks": {,}}', r"line 2 column \d+: not valid JSON"),
        ("[]", "expected a JSON object"),
        (json.dumps({"checks": {}}), "schema_version is None"),
        (json.dumps({"schema_version": 2, "checks": {}}), "schema_version is 2"),
        (json.dumps({"schema_version": 1}), "'checks' must be an object"),
        (json.dumps({"schema_version": 1, "checks": {}, "when": 1}), "unknown top-level key"),
        (json.dumps({"schema_version": 1, "checks": {"a": "pass"}}), "check 'a': expected an"),
        (
            json.dumps(
                {"schema_version": 1, "checks": {"a": {"status": "error", "invariant": "X"}}}
            ),
            "check 'a': status 'error' is not one of pass, fail, inconclusive",
        ),
        (
            json.dumps({"schema_version": 1, "checks": {"a": {"status": "fail"}}}),
            "check 'a': 'invariant' must be a non-empty string",
        ),
        (
            json.dumps({"schema_version": 1, "checks": {"a": {**GOOD_ENTRY, "stat": 1}}}),
            r"check 'a': unknown key\(s\): stat",
        ),
        (
            json.dumps({"schema_version": 1, "checks": {"a": {**GOOD_ENTRY, "profile": 6.8}}}),
            "check 'a': 'profile' must be a string",
        ),
        (json.dumps({"schema_version": 1, "checks": {"": GOOD_ENTRY}}), "empty check id"),
    ],
)
def test_a_malformed_baseline_names_the_file_and_the_problem(tmp_path, text, problem):
    path = tmp_path / "checker-baseline.json"
    path.write_text(text)
    with pytest.raises(BaselineError, match=problem) as info:
        load_baseline(path)
    assert str(info.value).startswith(f"{path}: ")
    assert not isinstance(info.value, BaselineMissing)


def test_parse_baseline_accepts_a_minimal_hand_written_file():
    loaded = parse_baseline('{"schema_version": 1, "checks": {"a": {"status": "fail", '
                            '"invariant": "RSVD-COUNT"}}}')  # fmt: skip
    assert loaded.checks == {"a": Expected("fail", "RSVD-COUNT")}
