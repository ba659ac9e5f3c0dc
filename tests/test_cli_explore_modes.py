"""`explore`'s other modes on the command line: --simulate (random walks, never a pass),
--fingerprints, --workers, --memory-budget and --progress, and the options each refuses."""

from __future__ import annotations

import json

import pytest

from checker.cli import main
from checker.gate.corpus import document, with_recorded_result

TIMINGS = ("seconds", "states_per_second")


def _json(capsys, *args) -> tuple[int, dict]:
    code = main(["explore", *args, "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def _untimed(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in TIMINGS}


def test_simulation_finds_a_bug_shrinks_it_and_says_it_is_no_proof(capsys):
    assert main(["explore", "--simulate", "--profile", "bug-lp-init-irq-reentry"]) == 1
    out = capsys.readouterr().out
    assert "FAIL (simulation: a random walk violated an invariant)" in out
    assert "random walks are a sample, NOT a proof:" in out
    assert "(seed 0, weighted, 1 worker)" in out
    assert "DEADLOCK-FREE judged where walks end: " in out
    assert "violated SEAMCALL-ACCEPTED after" in out and "; shrunk to" in out
    assert "TDH.SYS.LP.INIT -> TDX_SYS_LP_INIT_DONE" in out


def test_simulation_of_v6_8_is_inconclusive_never_a_pass(capsys):
    args = ["--simulate", "--config", "1x1", "--walks", "30", "--walk-length", "40"]
    assert main(["explore", *args]) == 3
    out = capsys.readouterr().out
    assert "INCONCLUSIVE (simulation, all walks run: no violation met, which proves nothing)" \
        in out
    assert "NOT a proof: 30 walks of up to 40 steps" in out and "1,200 steps" in out
    code, summary = _json(capsys, *args)
    assert code == 3 and summary["verdict"] == "inconclusive" and summary["mode"] == "simulation"
    assert summary["bound_hit"] == "walks" and summary["trace"] is None
    sim = summary["simulation"]
    assert (sim["proof"], sim["walks"], sim["steps"], sim["judged_at_ends"]) == \
        (False, 30, 1200, ["DEADLOCK-FREE"])
    assert sim["strategy"] == "weighted" and sim["ends_unsettled"] == 0
    assert f"{sim['ends_searched']:,} ends were no goal and were searched" in out
    assert summary["transitions"] == 1200 and 0 < summary["distinct_states"] < 1200


def test_simulation_is_deterministic_and_independent_of_the_workers(capsys):
    args = ["--simulate", "--profile", "bug-enodev-retried", "--config", "1x1"]
    code, first = _json(capsys, *args)
    assert code == 1 and first["violated"] == "INIT-AT-MOST-ONCE"
    _, again = _json(capsys, *args)
    _, two = _json(capsys, *args, "--workers", "2")
    _, tight = _json(capsys, *args, "--memory-budget", "1")  # tables emptied between walks
    assert _untimed(first) == _untimed(again) == _untimed(tight)
    assert two["workers"] == 2 and _untimed({**two, "workers": 1}) == _untimed(first)
    sim = first["simulation"]
    assert sim["length_shrunk"] == first["trace"]["length"] <= sim["length_found"]
    _, other = _json(capsys, *args, "--seed", "1")
    assert other["simulation"]["seed"] == 1
    assert (other["simulation"]["steps"], other["trace"]) != (sim["steps"], first["trace"])


def test_one_walk_is_one_walk(capsys):
    assert main(["explore", "--simulate", "--config", "1x1", "--walks", "1"]) == 3
    assert "NOT a proof: 1 walk of up to 200 steps" in capsys.readouterr().out


def test_restarts_are_reported_and_independent_of_the_workers(capsys):
    args = ["--simulate", "--profile", "bug-enodev-retried", "--config", "1x1", "--restarts",
            "--seed", "3"]
    code, first = _json(capsys, *args)
    assert code == 1 and first["violated"] == "INIT-AT-MOST-ONCE"
    sim = first["simulation"]
    assert sim["restarts"] is True and sim["cells"] > 0
    assert 0 <= sim["restarted_walks"] <= sim["walks"]
    _, two = _json(capsys, *args, "--workers", "2")
    assert _untimed({**two, "workers": 1}) == _untimed(first)
    _, fresh = _json(capsys, *args[:-3], "--seed", "3")
    assert fresh["simulation"]["restarts"] is False
    assert fresh["simulation"]["restarted_walks"] == fresh["simulation"]["cells"] == 0
    assert main(["explore", *args]) == 1
    out = capsys.readouterr().out
    assert f"{sim['restarted_walks']:,} restarted from {sim['cells']:,} cells met" in out


def test_a_simulated_trace_replays_from_a_counterexample_file(capsys, tmp_path):
    _, summary = _json(capsys, "--simulate", "--profile", "bug-lp-init-irq-reentry")
    trace = summary["trace"]
    doc = with_recorded_result(document("flow/bug-lp-init-irq-reentry/default",
                                        "bug-lp-init-irq-reentry", "default",
                                        summary["violated"], {"kind": "trace", "trace": trace,
                                                              "text": "random walks"}))
    path = tmp_path / "simulated.json"
    path.write_text(json.dumps(doc))
    assert main(["replay", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("flow/bug-lp-init-irq-reentry/default: SEAMCALL-ACCEPTED still "
                          "violates")
    assert f"violates SEAMCALL-ACCEPTED after {trace['length']} steps" in out


def test_the_simulation_time_bound_is_inconclusive(capsys):
    code, summary = _json(capsys, "--simulate", "--config", "1x1", "--walks", "1000000",
                          "--time", "1")
    assert code == 3 and summary["bound_hit"] == "time"
    assert 0 < summary["simulation"]["walks"] < 1000000


@pytest.mark.parametrize("config", ["1x1", "default"])
def test_fingerprints_and_workers_count_what_the_plain_run_counts(capsys, config):
    _, plain = _json(capsys, "--config", config)
    _, prints = _json(capsys, "--config", config, "--fingerprints")
    _, two = _json(capsys, "--config", config, "--workers", "2")
    # 1x1's memo tables need about 1 MB, the default configuration's far more than 4 MB
    budget = "4" if config == "1x1" else "1"
    _, tight = _json(capsys, "--config", config, "--fingerprints", "--memory-budget", budget)
    counts = [(s["verdict"], s["distinct_states"], s["transitions"], s["depth"])
              for s in (plain, prints, two, tight)]
    assert counts[0] == counts[1] == counts[2] == counts[3] and plain["verdict"] == "pass"
    assert prints["memo_forgotten"] == two["memo_forgotten"] == 0
    assert (tight["memo_forgotten"] > 0) == (config == "default")
    assert (plain["mode"], prints["mode"], two["mode"]) == \
        ("exhaustive", "fingerprints", "fingerprints")
    assert (plain["workers"], prints["workers"], two["workers"]) == (1, 1, 2)
    assert "collision_probability" not in plain
    for run in (prints, two):
        assert 0 < run["collision_probability"] < 1e-6 and 0 < run["bytes_per_state"] < 200
        assert run["spilled_bytes"] == 0


def test_fingerprint_runs_give_the_plain_trace_and_say_what_they_kept(capsys):
    bug = ["--profile", "bug-lp-init-irq-reentry", "--config", "1x1"]
    assert main(["explore", *bug]) == 1
    plain = capsys.readouterr().out.splitlines()
    assert main(["explore", *bug, "--workers", "2", "--memory-budget", "1"]) == 1
    two = capsys.readouterr().out.splitlines()
    assert two[0] == plain[0] and two[3:] == plain[2:]  # the same verdict and trace
    assert two[2].startswith("fingerprints: ") and "bytes per state, collision probability" \
        in two[2] and two[2].endswith(", 2 workers")


def test_progress_goes_to_stderr_and_leaves_the_report_alone(capsys):
    assert main(["explore", "--config", "1x1", "--format", "json", "--progress"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["verdict"] == "pass"
    assert captured.err.startswith("depth 1: ") and "states," in captured.err
    assert main(["explore", "--config", "1x1", "--simulate", "--walks", "20", "--progress"]) == 3
    assert capsys.readouterr().err.startswith("16 walks, ")  # after the first batch
    assert main(["explore", "--config", "1x1"]) == 0
    assert capsys.readouterr().err == ""  # not a terminal, not asked


@pytest.mark.parametrize(("args", "message"), [
    (["--simulate", "--walks", "0"], "argument --walks: 0 must be at least 1"),
    (["--simulate", "--walk-length", "x"], "argument --walk-length: 'x' is not an integer"),
    (["--simulate", "--seed", "-1"], "argument --seed: -1 must be 0 or more"),
    (["--workers", "0"], "argument --workers: 0 must be at least 1"),
    (["--simulate", "--coverage"], "--coverage is a breadth-first search option, not for "
                                   "--simulate"),
    (["--simulate", "--fingerprints", "--max-states", "9"],
     "--fingerprints, --max-states are breadth-first search options"),
    (["--simulate", "--workers", "2", "--backend", "processes"],
     "--backend is a breadth-first search option"),
    (["--seed", "3"], "--seed only with --simulate"),
    (["--walks", "3", "--walk-length", "4"], "--walks, --walk-length only with --simulate"),
    (["--restarts"], "--restarts only with --simulate"),
    (["--coverage", "--workers", "2"], "--coverage counts in the exact mode on one process"),
    (["--coverage", "--fingerprints"], "--coverage counts in the exact mode on one process"),
    (["--memory-budget", "64"], "--memory-budget bounds the frontier of --fingerprints or "
                                "--workers runs"),
    (["--backend", "ray"], "--backend chooses how --workers N (2 or more) run"),
    (["--backend", "threads", "--workers", "2"], "argument --backend: invalid choice"),
])
def test_bad_options_exit_2_with_a_message(capsys, args, message):
    try:
        code = main(["explore", *args])
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    assert code == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
