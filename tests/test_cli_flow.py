"""`explore` on the command line: the figures it prints, the exit codes, the trace."""

import json
import subprocess

from checkout import run_module

from checker.cli import main


def test_explore_v6_8_small_config_is_exhaustive_and_passes(capsys):
    assert main(["explore", "--config", "2x1", "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["verdict"] == "pass" and summary["bound_hit"] is None
    assert summary["distinct_states"] > 1000 and summary["transitions"] > summary["distinct_states"]
    assert summary["depth"] > 10 and summary["states_per_second"] > 0 and summary["trace"] is None


def test_explore_a_bug_gives_the_shortest_trace_and_exit_1(capsys):
    assert main(["explore", "--profile", "bug-lp-init-irq-reentry", "--config", "2x1"]) == 1
    out = capsys.readouterr().out
    assert "FAIL (stopped at the first violation)" in out
    assert "violates SEAMCALL-ACCEPTED after" in out
    assert "TDH.SYS.LP.INIT -> TDX_SYS_LP_INIT_DONE" in out


def test_explore_hitting_a_bound_is_inconclusive(capsys):
    assert main(["explore", "--max-states", "50"]) == 3
    assert "bounded, not exhaustive (states bound hit)" in capsys.readouterr().out


def test_explore_unknown_config_is_a_usage_error(capsys):
    assert main(["explore", "--config", "nope"]) == 2
    assert "unknown flow configuration" in capsys.readouterr().err


def test_explore_with_coverage_lists_steps_and_invariants(capsys):
    assert main(["explore", "--config", "1x1", "--coverage"]) == 0
    out = capsys.readouterr().out
    assert "coverage: transitions per step" in out and "cpu_down" in out and "never taken" in out
    assert "SEAMCALL-ACCEPTED" in out and "KEXEC-SAFE" in out
    assert main(["explore", "--config", "1x1", "--coverage", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"cpu_down", "cpu_up"} <= set(data["coverage"]["unexercised_actions"])
    assert data["coverage"]["actions"]["err_free_tdxmem"]["transitions"] > 0


def test_a_trace_step_that_changes_nothing_says_so(capsys):
    # The #MC handler's report changes no state: the violating step is a self-loop.
    assert main(["explore", "--profile", "bug-tdmr-list-freed", "--config", "2x1"]) == 1
    out = capsys.readouterr().out.splitlines()
    last = max(i for i, line in enumerate(out) if "machine_check [environment]" in line)
    assert out[last + 1] == "      (changes nothing)"


def test_the_process_ends_with_its_output_complete_and_its_exit_code():
    """`python -m checker` skips the interpreter's teardown (`os._exit`): what it printed is
    still all there, and the exit code is the command's."""
    def run(*args: str) -> subprocess.CompletedProcess:
        return run_module("explore", "--format", "json", *args)

    passing = run("--config", "1x1")
    assert passing.returncode == 0 and json.loads(passing.stdout)["verdict"] == "pass"
    failing = run("--profile", "bug-enodev-retried", "--workers", "2")
    assert failing.returncode == 1
    assert json.loads(failing.stdout)["violated"] == "INIT-AT-MOST-ONCE"
    walked = run("--simulate", "--profile", "bug-enodev-retried", "--config", "1x1",
                 "--workers", "2")
    assert walked.returncode == 1 and json.loads(walked.stdout)["trace"]["length"] > 0
    usage = run("--config", "9z9")
    assert usage.returncode == 2 and "error:" in usage.stderr
