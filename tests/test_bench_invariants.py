"""The scoring of benchmarks/bench_invariants.py: what counts as an invariant catching a mutant,
the per-invariant table, its driver's memory limit and its searched machines. One hand-made
mutant runs here; the sampled ones are the benchmark's work."""

from __future__ import annotations

import shutil

from checkout import benchmark

bench = benchmark("bench_invariants")

REFERENCE = {"v6.8/default": [], "v6.8/unchecked-callers": ["KEXEC-SAFE"]}


def test_an_invariant_catches_only_what_the_unmutated_code_does_not_fail():
    mutated = {"v6.8/default": ["FREE-ONCE", "KEXEC-SAFE"],
               "v6.8/unchecked-callers": ["KEXEC-SAFE", "SYSINIT-ONCE"]}
    assert bench.caught(REFERENCE, mutated) == {"FREE-ONCE", "KEXEC-SAFE", "SYSINIT-ONCE"}
    same = {"v6.8/default": [], "v6.8/unchecked-callers": ["KEXEC-SAFE"]}
    assert bench.caught(REFERENCE, same) == set()


def test_a_mutant_that_makes_the_model_raise_counts_for_no_invariant():
    one_run_raised = {"v6.8/default": ["FREE-ONCE"],
                      "v6.8/unchecked-callers": {"error": "IndexError: tuple index"}}
    assert bench.caught(REFERENCE, one_run_raised) is None
    assert bench.caught(REFERENCE, {"error": "timeout"}) is None


def test_the_table_counts_catches_and_lone_catches_per_invariant():
    mutants = {"m1": {"A"}, "m2": {"A", "B"}, "m3": {"B", "C"}}
    profiles = {"bug-x": {"C"}, "bug-y": {"A", "C"}}
    rows = bench.worth(mutants, profiles, ["A", "B", "C", "D"])
    assert rows[0] == ["invariant", "mutants", "alone", "bug profiles", "alone"]
    assert rows[1:] == [["A", "2", "1", "1", "0"], ["B", "2", "0", "0", "0"],
                        ["C", "1", "0", "2", "1"], ["D", "0", "0", "0", "0"]]


def test_the_driver_runs_each_exploration_under_an_address_space_limit():
    """A driver that runs out of address space counts as raising, never as catching (64 MB
    is too little for it even to load its libraries; 4 GB, the default, is plenty)."""
    runs = [("v6.8", "1x1")]
    assert bench.run_driver(bench.ROOT, runs, 10_000, 30.0, 120) == {"v6.8/1x1": []}
    starved = bench.run_driver(bench.ROOT, runs, 10_000, 30.0, 120, memory=64 << 20)
    assert "error" in starved
    assert bench.caught({"v6.8/1x1": []}, starved) is None


def test_the_suites_that_search_machines_add_a_searched_run_per_profile():
    runs, _, _ = bench.suite_runs(["flow", "later"])
    searched = [profile for profile, config in runs if config == bench.SEARCHED]
    assert searched == ["v6.8", "v6.14", "v6.18", "v7.1", "v7.2"]


def test_the_driver_reports_what_the_searched_machines_break(tmp_path):
    """Run in a copy whose tdx_init refuses two KeyIDs: TDX-USABLE breaks on a machine with
    two KeyIDs (on the unmutated code no searched machine breaks anything: the platform
    search's own tests)."""
    for package in ("spec", "invariants", "checker"):
        shutil.copytree(bench.ROOT / package, tmp_path / package)
    flow = tmp_path / "spec" / "flow.py"
    text = flow.read_text()
    assert text.count("if keyids < 2:") == 1
    flow.write_text(text.replace("if keyids < 2:", "if keyids < 3:"))
    out = bench.run_driver(tmp_path, [("v6.8", bench.SEARCHED)], 40_000, 30.0, 300)
    assert "TDX-USABLE" in out["v6.8/searched"]
