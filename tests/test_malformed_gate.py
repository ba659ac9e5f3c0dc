"""Every case of tests/malformed/gate/cases.toml: malformed suites, counterexample files, maps
and options, each with the exit status and message it must give, and no work before it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fresh_counterexamples import edited, fresh_trace

import checker.gate.verify
from checker.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "tests" / "malformed" / "gate"
CASES = tomllib.loads((HERE / "cases.toml").read_text())["case"]


def _place(folder: Path, destination: str, source: str, edits=()) -> None:
    path = folder / destination
    path.parent.mkdir(parents=True, exist_ok=True)
    if source.startswith("fresh:"):
        doc = edited(fresh_trace(source.removeprefix("fresh:")), edits)
        path.write_text(json.dumps(doc, indent=2))
    elif source == "<folder>":
        path.mkdir()
    elif source == "<dangling symlink>":
        path.symlink_to(folder / "nowhere")
    elif source == "<fifo>":
        os.mkfifo(path)
    elif source.startswith("repo:"):
        shutil.copy(REPO / source.removeprefix("repo:"), path)
    else:
        shutil.copy(HERE / source, path)


def test_every_case_has_a_unique_name_and_its_files():
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names))
    for case in CASES:
        for source in case.get("files", {}).values():
            if not source.startswith(("<", "fresh:")):
                base = REPO if source.startswith("repo:") else HERE
                assert (base / source.removeprefix("repo:")).is_file(), source


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_malformed_input(case, tmp_path, monkeypatch, capsys):
    for destination, source in case.get("files", {}).items():
        _place(tmp_path, destination, source, case.get("edits", ()))
    monkeypatch.chdir(tmp_path)
    if not case.get("work", False):
        def no_work(*args, **kwargs):
            raise AssertionError("a check started before the error was reported")

        monkeypatch.setattr(checker.gate.verify, "run_specs", no_work)
    try:
        code = main(case["args"])
    except SystemExit as exc:  # argparse refuses the command line
        code = exc.code
    captured = capsys.readouterr()
    text = captured.out if case.get("stream", "stderr") == "stdout" else captured.err
    assert code == case["exit"], captured.err or captured.out
    assert case["message"] in text
    assert "Traceback" not in captured.err


def test_the_cases_look_the_same_through_the_module(tmp_path):
    """One case end to end: the message is the only line, and there is no traceback."""
    _place(tmp_path, "x.json", "counterexamples/trace-no-steps.json")
    proc = subprocess.run([sys.executable, "-m", "checker", "replay", "x.json"], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=120)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == ("error: x.json: a trace of no steps cannot break SEAMCALL-ACCEPTED, a "
                           "property of steps\n")
