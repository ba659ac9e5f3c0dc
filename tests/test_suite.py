"""Suites: which checks `verify` runs (`checker.gate.suite`):
profile scopes, expansion, suite files."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from checker.cli import main
from checker.gate.suite import (
    BUILTIN,
    CHECK_KINDS,
    Bounds,
    Suite,
    SuiteError,
    builtin_maps,
    expand,
    load_suite,
    profile_scope,
    pyproject_has_suite,
)
from checker.inputs.readers import InputError
from spec.profiles import PROFILES, V6_8, rule_changes

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "checker" / "data"
LOGS = DATA / "boot-logs"
EMR = str(LOGS / "emr-fcp-e820-first-2g.log")  # e820 lines, a logged failure, no CMRs
EMR_CMR = str(DATA / "maps" / "emr-fcp-e820-first-2g-with-cmr.log")  # the same with CMRs
SPR = str(LOGS / "spr-8480c-256g.log")  # CMRs and the PAMT figure

LAYOUT_KINDS = frozenset({"layout", "worst-case", "plan", "maps"})


# --- profile_scope -------------------------------------------------------------------------------


def test_v6_8_gets_every_kind():
    assert rule_changes(V6_8) == frozenset()
    assert profile_scope(V6_8) == LAYOUT_KINDS | {"flow", "platforms", "log"}
    assert profile_scope(V6_8) == frozenset(CHECK_KINDS) - {"replay"}


def test_a_renamed_copy_of_v6_8_is_still_v6_8():
    same = V6_8.but("renamed", "another name, same rules", "tests", kind="variant")
    assert rule_changes(same) == frozenset()
    assert profile_scope(same) == profile_scope(V6_8)


def test_a_tdmr_rule_variant_gets_the_layout_kinds_only():
    assert PROFILES["cmr-holes"].kind == "variant"
    assert profile_scope(PROFILES["cmr-holes"]) == LAYOUT_KINDS


@pytest.mark.parametrize("name", ["mutant-rsvd-unsorted", "mutant-other-pamt-not-reserved",
                                  "bug-pamt-entries-int32"])
def test_a_tdmr_rule_bug_gets_the_layout_invariant_checks_only(name):
    # a broken profile is caught by the layout invariants; whether the kernel initialises
    # (worst-case, plan) is a question for real kernels only
    assert PROFILES[name].kind == "bug"
    assert profile_scope(PROFILES[name]) == {"layout", "maps"}


def test_the_same_rule_change_as_a_variant_also_gets_worst_case_and_plan():
    rule = {"sort_reserved_areas": False}
    assert profile_scope(V6_8.but("b", "s", "t", kind="bug", **rule)) == {"layout", "maps"}
    assert profile_scope(V6_8.but("v", "s", "t", kind="variant", **rule)) == LAYOUT_KINDS


@pytest.mark.parametrize("name", ["bug-enodev-retried", "mutant-no-wbinvd-before-key-config"])
def test_a_flow_rule_profile_gets_the_flow_only(name):
    assert profile_scope(PROFILES[name]) == {"flow"}


def test_a_profile_changing_both_kinds_of_rule_gets_both_but_no_log():
    both = V6_8.but("both", "two rules", "tests", kind="variant", sort_reserved_areas=False,
                    enodev_marks_error=False)
    assert rule_changes(both) == {"sort_reserved_areas", "enodev_marks_error"}
    assert profile_scope(both) == LAYOUT_KINDS | {"flow", "platforms"}


# --- expand --------------------------------------------------------------------------------------


def _ids(suite: Suite) -> list[str]:
    return [spec.id for spec in expand(suite)]


def test_expand_is_sorted_stable_and_unique():
    suite = Suite(profiles=("v6.8", "cmr-holes", "bug-enodev-retried"), maps=(EMR, SPR),
                  flow_configs=("default",), checks=CHECK_KINDS)
    first, second = expand(suite), expand(suite)
    assert first == second
    ids = [s.id for s in first]
    assert ids == sorted(ids)
    assert len(ids) == len(set(ids))
    # ordering of the suite's lists does not matter
    shuffled = replace(suite, profiles=tuple(reversed(suite.profiles)), maps=(SPR, EMR),
                       checks=tuple(reversed(CHECK_KINDS)))
    assert expand(shuffled) == first


def test_expand_gives_the_expected_checks():
    suite = Suite(profiles=("v6.8", "cmr-holes", "bug-enodev-retried"), maps=(EMR, SPR),
                  flow_configs=("default",), kernel_flow_configs=(), checks=CHECK_KINDS)
    assert _ids(suite) == sorted([
        "flow/bug-enodev-retried/default", "flow/v6.8/default",
        "layout/cmr-holes/spr-8480c-256g",
        "layout/v6.8/emr-fcp-e820-first-2g", "layout/v6.8/spr-8480c-256g",
        "log/v6.8/emr-fcp-e820-first-2g", "log/v6.8/spr-8480c-256g",
        "maps/cmr-holes/grid", "maps/v6.8/grid",
        "plan/cmr-holes/spr-8480c-256g", "platforms/v6.8/searched",
        "plan/v6.8/emr-fcp-e820-first-2g", "plan/v6.8/spr-8480c-256g",
        "worst-case/cmr-holes/spr-8480c-256g",
        "worst-case/v6.8/emr-fcp-e820-first-2g", "worst-case/v6.8/spr-8480c-256g",
    ])
    specs = {s.id: s for s in expand(suite)}
    assert specs["plan/v6.8/spr-8480c-256g"].config == SPR
    assert (specs["maps/v6.8/grid"].kind, specs["maps/v6.8/grid"].config) == ("maps", "grid")
    assert specs["flow/v6.8/default"].config == "default"
    # replay checks come from stored files, never from expand
    assert not any(i.startswith("replay/") for i in specs)


def test_cmr_holes_is_skipped_on_maps_without_cmrs():
    suite = Suite(profiles=("v6.8", "cmr-holes"), maps=(EMR, EMR_CMR), checks=("layout",))
    assert _ids(suite) == [
        "layout/cmr-holes/emr-fcp-e820-first-2g-with-cmr",
        "layout/v6.8/emr-fcp-e820-first-2g",
        "layout/v6.8/emr-fcp-e820-first-2g-with-cmr",
    ]


def test_log_checks_are_skipped_on_maps_without_logged_facts(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"regions": [{"start": "0x100000", "end": "0x80000000",
                                              "nid": 0}]}))
    suite = Suite(profiles=("v6.8",), maps=(str(plain), SPR), checks=("log", "layout"))
    assert _ids(suite) == ["layout/v6.8/plain", "layout/v6.8/spr-8480c-256g",
                           "log/v6.8/spr-8480c-256g"]


def test_an_unreadable_map_stops_the_expansion_with_the_readers_error(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    suite = Suite(profiles=("v6.8", "cmr-holes"), maps=(str(broken),), checks=("log", "layout"))
    with pytest.raises(InputError) as info:
        expand(suite)
    assert str(info.value).startswith(f"{broken}:1: invalid JSON")


def test_an_unreadable_map_in_a_suite_file_is_refused_when_the_suite_is_read(tmp_path):
    (tmp_path / "broken.json").write_text('{"regions": []}')
    path = tmp_path / "suite.toml"
    path.write_text('checks = ["layout"]\n\nmaps = ["broken.json"]\n')
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert info.value.line == 3
    assert info.value.problem.startswith("map 'broken.json' cannot be read: ")
    assert "'regions' is empty" in info.value.problem


def test_builtin_maps_are_the_logs_with_a_memory_map():
    names = {p.name for p in builtin_maps()}
    assert {"emr-fcp-e820-first-2g.log", "spr-8480c-256g.log",
            "emr-fcp-e820-first-2g-with-cmr.log"} <= names
    # logs without e820 or CMR lines are no maps
    assert not names & {"r760-module-not-loaded.log", "seamcall-0x21-fail.log",
                        "6.5-not-enabled-by-bios.log"}
    suite = Suite(profiles=("v6.8",), maps=(BUILTIN,), checks=("layout",))
    assert len(expand(suite)) == len(names)


# --- suite files ---------------------------------------------------------------------------------


def test_kernel_profiles_also_get_the_kernel_only_configurations():
    suite = Suite(profiles=("v6.8", "bug-enodev-retried"), maps=(), checks=("flow",),
                  flow_configs=("default",), kernel_flow_configs=("reload", "default"))
    assert _ids(suite) == ["flow/bug-enodev-retried/default", "flow/v6.8/default",
                           "flow/v6.8/reload"]


def test_a_suite_file_naming_its_flow_configurations_runs_those_alone(tmp_path):
    path = tmp_path / "suite.toml"
    path.write_text('flow_configs = ["1x1"]\n')
    assert load_suite(path).kernel_flow_configs == ()
    path.write_text('flow_configs = ["1x1"]\nkernel_flow_configs = ["2x1"]\n')
    assert load_suite(path).kernel_flow_configs == ("2x1",)
    path.write_text('kernel_flow_configs = ["9x9"]\n')
    with pytest.raises(SuiteError, match=r"suite.toml:1: flow configuration '9x9'"):
        load_suite(path)


def test_a_suite_file_with_every_key(tmp_path):
    shutil.copy(SPR, tmp_path / "spr.log")
    path = tmp_path / "suite.toml"
    path.write_text('profiles = ["v6.8", "cmr-holes"]\nmaps = ["builtin", "spr.log"]\n'
                    'flow_configs = ["default"]\nchecks = ["layout", "maps"]\n'
                    'counterexamples = "found"\n[bounds]\ntime_s = 5\nmax_states = 1000\n')
    suite = load_suite(path)
    assert suite.profiles == ("v6.8", "cmr-holes")
    # map paths are taken relative to the suite file, not the working directory
    assert suite.maps == (BUILTIN, str(tmp_path / "spr.log"))
    assert suite.flow_configs == ("default",)
    assert suite.checks == ("layout", "maps")
    assert suite.counterexamples == "found"
    assert suite.bounds == Bounds(max_states=1000, time_s=5)
    assert suite.source == str(path)


def test_an_empty_suite_file_is_the_default_suite(tmp_path):
    (tmp_path / "suite.toml").write_text("")
    suite = load_suite(tmp_path / "suite.toml")
    assert replace(suite, source="x") == replace(Suite(), source="x")


def test_load_suite_from_a_pyproject_table(tmp_path):
    shutil.copy(EMR, tmp_path / "emr.log")
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "demo"\nversion = "1"\n\n'
                    '[tool.tdx-checker]\nprofiles = ["v6.8"]\nmaps = ["emr.log"]\n'
                    'checks = ["plan"]\ncounterexamples = "cex"\n'
                    '\n[tool.tdx-checker.bounds]\nsolver_timeout_s = 10\n')
    suite = load_suite(path)
    assert suite.profiles == ("v6.8",)
    assert suite.maps == (str(tmp_path / "emr.log"),)
    assert suite.checks == ("plan",)
    assert suite.bounds == Bounds(solver_timeout_s=10)
    assert [s.id for s in expand(suite)] == ["plan/v6.8/emr"]


def test_a_pyproject_without_the_table(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "demo"\n')
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert str(info.value) == f"{path}: no [tool.tdx-checker] table"


def test_verify_reads_the_pyproject_of_the_working_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(SPR, tmp_path / "spr.log")
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "demo"\n\n[tool.tdx-checker]\nprofiles = ["v6.8"]\n'
        'maps = ["spr.log"]\nchecks = ["log"]\ncounterexamples = "cex"\n')
    code = main(["verify", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert [c["id"] for c in report["checks"]] == ["log/v6.8/spr"]


@pytest.mark.parametrize("text,line,problem", [
    ('profiles = "v6.8"\n', 1, "profiles must be a list of strings"),
    ('checks = ["log"]\nmaps = [1]\n', 2, "maps must be a list of strings"),
    ('checks = ["log", "fuzz"]\n', 1, "unknown check kind 'fuzz'"),
    ('checks = ["log"]\ncounterexamples = 3\n', 2, "counterexamples must be a directory name"),
    ('checks = ["log"]\nbounds = 3\n', 2, "bounds must be a table"),
    ('checks = ["log"]\ncounterexamples = ""\n', 2, "counterexamples must be a directory name"),
    ('[bounds]\ntime_s = 0\n', 2, "bound time_s must be a number of seconds above 0"),
    ('[bounds]\ntime_s = nan\n', 2, "bound time_s must be a number of seconds above 0"),
    ('[bounds]\nsolver_timeout_s = inf\n', 2, "bound solver_timeout_s must be a number of"),
    ('[bounds]\ntime_s = -inf\n', 2, "bound time_s must be a number of seconds above 0"),
    ('[bounds]\ntime_s = 1e9\n', 2, "and at most 1,000,000"),
    ('[bounds]\n\nmax_depth = true\n', 3, "bound max_depth must be a positive integer"),
    ('[bounds]\nmax_states = 1.5\n', 2, "bound max_states must be a positive integer"),
    ('[bounds]\nmax_states = inf\n', 2, "bound max_states must be a positive integer"),
    ('[bounds]\nsteps = 4\n', 2, "unknown bound 'steps'"),
    ('maps = ["missing.log"]\n', 1, "map 'missing.log' not found"),
    ('maps = ["."]\n', 1, "map '.' not found"),
    ('profiles = ["v6.8", "cmr-holes", "v6.8"]\n', 1, "profiles: 'v6.8' is listed twice"),
    ('checks = ["log", "log"]\n', 1, "checks: 'log' is listed twice"),
    ('\nflow_configs = ["1x1", "1x1"]\n', 2, "flow_configs: '1x1' is listed twice"),
    ('maps = ["builtin", "builtin"]\n', 1, "maps: 'builtin' is listed twice"),
    ('flow_configs = ["default", "nowhere"]\n', 1, "unknown flow configuration 'nowhere'"),
    ('flow_configs = ["100000x100000"]\n', 1,
     "flow configuration '100000x100000' has 10,000,000,000 CPUs; at most 16"),
    ('flow_configs = ["0x4"]\n', 1, "needs at least one package with one CPU"),
    ('flow_configs = ["9999999x1"]\n', 1, "is far beyond 16 CPUs"),
])
def test_suite_errors_name_the_line(tmp_path, text, line, problem):
    path = tmp_path / "suite.toml"
    path.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert (info.value.file, info.value.line) == (str(path), line)
    assert problem in info.value.problem
    assert str(info.value).startswith(f"{path}:{line}: ")


@pytest.mark.parametrize("make,problem", [
    (lambda p: None, "no such file"),
    (lambda p: p.mkdir(), "is a folder"),
    (lambda p: p.write_bytes(b"profiles = ['\xff']\n"), "cannot read"),
])
def test_an_unreadable_suite_file(tmp_path, make, problem):
    path = tmp_path / "suite.toml"
    make(path)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert info.value.line == 0 and problem in info.value.problem


def test_two_maps_with_one_file_stem_would_share_check_ids(tmp_path):
    (tmp_path / "a").mkdir()
    shutil.copy(SPR, tmp_path / "a" / "m.log")
    shutil.copy(EMR, tmp_path / "m.log")
    path = tmp_path / "suite.toml"
    path.write_text('checks = ["layout"]\nmaps = ["a/m.log", "m.log"]\n')
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert info.value.line == 2
    assert info.value.problem == (f"maps {str(tmp_path / 'a' / 'm.log')!r} and "
                                  f"{str(tmp_path / 'm.log')!r} are both named 'm' in check "
                                  "ids: rename one")


def test_a_map_named_like_a_shipped_log_collides_with_builtin(tmp_path):
    shutil.copy(SPR, tmp_path / "spr-8480c-256g.log")
    path = tmp_path / "suite.toml"
    path.write_text('maps = ["builtin", "spr-8480c-256g.log"]\n')
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert "are both named 'spr-8480c-256g' in check ids" in info.value.problem


@pytest.mark.parametrize("text,line,problem", [
    ('tool = 3\n', 1, "'tool' must be a table"),
    ('[tool]\nblack = {}\n\ntdx-checker = "all"\n', 4, "[tool.tdx-checker] must be a table"),
    ('tool = {tdx-checker = [1]}\n', 0, "[tool.tdx-checker] must be a table"),
])
def test_a_pyproject_whose_tool_table_has_the_wrong_type(tmp_path, text, line, problem):
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert (info.value.line, info.value.problem) == (line, problem)


def test_verify_reports_a_wrong_tool_table_of_the_working_directory(tmp_path, monkeypatch,
                                                                     capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool]\ntdx-checker = "all"\n')
    assert main(["verify"]) == 2
    assert capsys.readouterr().err == ("error: pyproject.toml:2: [tool.tdx-checker] must be a "
                                       "table\n")


def test_a_pyproject_without_our_table_leaves_verify_on_the_default_suite(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[project.scripts]\ntdx-checker = "checker.cli:main"\n[tool.ruff]\n')
    assert not pyproject_has_suite(path)
    path.write_text('[project]\nname = \n[tool.tdx-checker]\n')  # broken, but ours: report it
    assert pyproject_has_suite(path)


def test_pyproject_errors_name_the_line_inside_the_table(tmp_path):
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "demo"\nversion = "1"\n\n'
                    '[tool.tdx-checker]\nprofiles = ["v6.8"]\nname = "oops"\n')
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert "unknown key 'name'" in info.value.problem
    assert info.value.line == 7
