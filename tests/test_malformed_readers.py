"""Every case of tests/malformed/readers/cases.toml: malformed boot logs, /proc/iomem copies, JSON
maps and --check-layout files, each with the exit status and message `tdmr` must give (an
error naming the file and line, or a warning and the usual result), and never a traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checker.cli import main

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "tests" / "malformed" / "readers"
CASES = tomllib.loads((HERE / "cases.toml").read_text())["case"]


def _command(case) -> list[str]:
    layout = ["--check-layout", case["layout"]] if "layout" in case else []
    return ["tdmr", case["file"], *case.get("args", ()), *layout]


def _place(case, folder: Path) -> None:
    for key in ("file", "layout"):
        if key in case:
            shutil.copy(HERE / case[key], folder / case[key])


def test_every_case_has_a_unique_name_and_every_file_a_case():
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names))
    used = {case[key] for case in CASES for key in ("file", "layout") if key in case}
    on_disk = {p.name for p in HERE.iterdir()} - {"cases.toml", "README.md"}
    assert used == on_disk


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_malformed_input(case, tmp_path, monkeypatch, capsys):
    _place(case, tmp_path)
    monkeypatch.chdir(tmp_path)
    code = main(_command(case))
    captured = capsys.readouterr()
    text = captured.out if case.get("stream", "stderr") == "stdout" else captured.err
    assert code == case["exit"], captured.err or captured.out
    assert case["message"] in text
    assert case.get("result", "") in captured.out
    if "absent" in case:
        assert case["absent"] not in captured.out + captured.err
    if code == 2:
        assert captured.out == "" and captured.err.count("\n") == 1


@pytest.mark.parametrize("name", [
    "json: a 4,301-digit integer",
    "srat: blocks of two nodes overlap: the SRAT is rejected, all memory on node 0",
    "layout: a float base",
])
def test_the_cases_look_the_same_through_the_module(name, tmp_path):
    """`python -m checker tdmr FILE` end to end: the same status and line, no traceback."""
    case = next(case for case in CASES if case["name"] == name)
    _place(case, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "checker", *_command(case)], cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == case["exit"]
    assert case["message"] in (proc.stdout if case.get("stream") == "stdout" else proc.stderr)
    assert "Traceback" not in proc.stderr
