"""The counterexample corpus under `verify`: a failing run writes beside it, never into it, so
the gate returns to green when the change that broke it is reverted; the corpus grows only when
asked, and then a recorded baseline covers the new files at once."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from checker.cli import main
from checker.gate.runners import RUNNERS
from spec.profiles import PROFILES

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "checker" / "data" / "boot-logs"
EMR = "emr-fcp-e820-first-2g.log"  # v6.8 fails with -28 although a valid layout exists
SPR = "spr-8480c-256g.log"  # v6.8 builds a valid layout
SUITE = (f'profiles = ["v6.8"]\nmaps = ["{EMR}", "{SPR}"]\nchecks = ["layout", "plan", '
         '"replay"]\ncounterexamples = "cex"\n')


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in (EMR, SPR):
        shutil.copy(LOGS / name, tmp_path / name)
    (tmp_path / "suite.toml").write_text(SUITE)
    return tmp_path


def verify(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["verify", "--suite", "suite.toml", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_update_baseline_stores_and_records_the_counterexample_in_one_run(work, capsys):
    code, out, err = verify(capsys, "--update-baseline")
    assert code == 0
    (stored,) = (work / "cex").iterdir()
    assert err.splitlines() == [f"counterexample saved: {Path('cex') / stored.name}",
                                "baseline written: checker-baseline.json (5 checks)"]
    assert "counterexamples: 1 new, added to the corpus cex/\n\nverdict: pass (exit 0)" in out
    recorded = json.loads((work / "checker-baseline.json").read_text())["checks"]
    assert recorded[f"replay/{stored.stem}"]["status"] == "fail"
    # the next run is green without another update
    code, out, err = verify(capsys)
    assert (code, err) == (0, "")
    assert "counterexamples:" not in out and not (work / "cex.new").exists()


def test_a_failing_change_leaves_the_corpus_alone_and_reverting_it_is_green(work, capsys,
                                                                           monkeypatch):
    assert verify(capsys, "--update-baseline")[0] == 0
    corpus, baseline = snapshot(work / "cex"), (work / "checker-baseline.json").read_bytes()

    # the change: v6.8 stops sorting reserved areas, as the mutant does
    with monkeypatch.context() as change:
        change.setitem(PROFILES, "v6.8", replace(PROFILES["mutant-rsvd-unsorted"], name="v6.8",
                                                 kind=PROFILES["v6.8"].kind))
        code, out, err = verify(capsys)
        assert code == 1
        assert "new-failure  layout/v6.8/spr-8480c-256g: expected pass, now a failure of " \
            "RSVD-ORDER" in out
        (new,) = (work / "cex.new").iterdir()
        assert new.name.startswith("layout--v6.8--spr-8480c-256g-")
        assert err == f"counterexample saved: {Path('cex.new') / new.name}\n"
        assert "new counterexamples: 1 in cex.new/, not in the corpus cex/" in out
        assert snapshot(work / "cex") == corpus

    # reverted: green again, with the corpus and the baseline as they were
    code, out, _ = verify(capsys)
    assert code == 0
    assert out.rstrip().endswith("verdict: pass (exit 0)")
    assert snapshot(work / "cex") == corpus
    assert (work / "checker-baseline.json").read_bytes() == baseline


def test_the_corpus_grows_only_with_save_counterexamples(work, capsys):
    code, out, _ = verify(capsys)
    assert code == 0  # the plan finding is reported, and stored beside the corpus
    assert not (work / "cex").exists()
    code, out, _ = verify(capsys, "--save-counterexamples", "--format", "json")
    report = json.loads(out)
    (stored,) = (work / "cex").iterdir()
    assert stored.name == next((work / "cex.new").iterdir()).name  # the same content, same name
    assert {c["id"]: (c["status"], c["outcome"]) for c in report["checks"]
            if c["status"] == "fail"} == {
        "plan/v6.8/emr-fcp-e820-first-2g": ("fail", "expected-fail"),
        f"replay/{stored.stem}": ("fail", "expected-fail")}


def test_a_counterexample_the_baseline_does_not_list_says_to_remove_it_or_record_it(work,
                                                                                  capsys):
    assert verify(capsys, "--update-baseline")[0] == 0
    (stored,) = (work / "cex").iterdir()
    copy = work / "cex" / "stray.json"
    copy.write_bytes(stored.read_bytes())
    code, out, _ = verify(capsys)
    assert code == 1
    assert squash("check-added  replay/stray: a counterexample file in the corpus that the "
                  "baseline does not list; now a failure of INIT-WHEN-LAYOUT-EXISTS; remove "
                  "stray.json from the corpus, or, if it was added on purpose, record it with "
                  "--update-baseline") in squash(out)


def test_a_new_failing_check_is_not_advised_to_be_recorded_blindly(work, capsys):
    (work / "suite.toml").write_text(SUITE.replace(', "replay"', ""))
    (work / "b.json").write_text(json.dumps({"schema_version": 1, "checks": {
        f"layout/v6.8/{Path(name).stem}": {"status": "pass", "invariant": "LAYOUT"}
        for name in (EMR, SPR)}}))
    code, out, _ = verify(capsys, "--baseline", "b.json")
    assert code == 1
    assert squash("check-added  plan/v6.8/emr-fcp-e820-first-2g: not in the baseline; now a "
                  "failure of INIT-WHEN-LAYOUT-EXISTS; fix the cause, or record the failure as "
                  "expected with --update-baseline if it is a known bug") in squash(out)
    assert squash("check-added  plan/v6.8/spr-8480c-256g: not in the baseline; now pass; record "
                  "it with --update-baseline") in squash(out)


@pytest.mark.parametrize("args,message", [
    (("--new-counterexamples", "cex"), "error: --new-counterexamples cex is the corpus; add to "
     "the corpus with --save-counterexamples\n"),
    (("--new-counterexamples", "x", "--save-counterexamples"), "error: --new-counterexamples "
     "has no use with --save-counterexamples or --update-baseline, which add new "
     "counterexamples to the corpus\n"),
    (("--counterexamples", ""), "error: --counterexamples needs a folder name\n"),
])
def test_contradictory_counterexample_options(work, capsys, args, message):
    assert verify(capsys, *args) == (2, "", message)


def test_a_run_with_an_error_records_nothing_and_adds_nothing(work, capsys, monkeypatch):
    def broken_runner(spec):
        raise RuntimeError("the layout engine fell over")

    monkeypatch.setitem(RUNNERS, "layout", broken_runner)
    code, _, err = verify(capsys, "--update-baseline")
    assert code == 2
    assert err.startswith("error: cannot write the baseline: cannot record a baseline while "
                          "checks error: layout/v6.8/")
    assert not (work / "cex").exists() and not (work / "checker-baseline.json").exists()


def squash(text: str) -> str:
    """`text` with every run of whitespace as one space: the report wraps long lines."""
    return " ".join(text.split())
