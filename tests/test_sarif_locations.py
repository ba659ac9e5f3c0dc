"""SARIF results of flow checks point at the `spec/` line whose rule took the violating step,
carry the trace as a code flow, and move with the rule when the model is edited."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema

from checker.views.reports import REPO_ROOT

SARIF_SCHEMA = Path(__file__).resolve().parent / "schemas" / "sarif-schema-2.1.0.json"
SUITE = """profiles = ["bug-lp-init-irq-reentry"]
checks = ["flow"]
flow_configs = ["default"]
"""


def _sarif(tree: Path, tmp: Path) -> dict:
    """verify's SARIF report of the suite above, run on the model in `tree`."""
    (tmp / "suite.toml").write_text(SUITE)
    out = tmp / "out.sarif"
    proc = subprocess.run([sys.executable, "-m", "checker", "verify", "--suite",
                           str(tmp / "suite.toml"), "--format", "sarif", "--output", str(out)],
                          cwd=tree, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # no baseline: the caught bug is a failure
    report = json.loads(out.read_text())
    jsonschema.validate(report, json.loads(SARIF_SCHEMA.read_text()))
    return report


def _copy_of_the_model(tmp: Path) -> Path:
    tree = tmp / "tree"
    for package in ("spec", "invariants", "checker"):
        shutil.copytree(REPO_ROOT / package, tree / package,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return tree


def test_the_location_is_the_rules_line_and_moves_with_it(tmp_path):
    original = _sarif(REPO_ROOT, tmp_path)
    (result,) = original["runs"][0]["results"]
    where = result["locations"][0]["physicalLocation"]
    assert where["artifactLocation"] == {"uri": "spec/flow.py", "uriBaseId": "%SRCROOT%"}
    line = where["region"]["startLine"]
    source = (REPO_ROOT / "spec" / "flow.py").read_text().splitlines()
    assert "_label(" in source[line - 1]  # the rule that made the violating step
    steps = result["codeFlows"][0]["threadFlows"][0]["locations"]
    assert len(steps) == 7 and steps[-1]["location"]["physicalLocation"]["region"] == \
        {"startLine": line}
    assert "TDX_SYS_LP_INIT_DONE" in steps[-1]["location"]["message"]["text"]
    first = steps[0]["location"]["physicalLocation"]["region"]["startLine"]

    # The same model with three lines more in front of the violating rule (but after the
    # first step's rule): the result and the last step move by three, the first does not.
    tree = _copy_of_the_model(tmp_path)
    flow = tree / "spec" / "flow.py"
    text = flow.read_text().splitlines(keepends=True)
    indent = text[line - 1][:len(text[line - 1]) - len(text[line - 1].lstrip())]
    text[line - 1:line - 1] = [f"{indent}# moved\n"] * 3
    flow.write_text("".join(text))
    moved = _sarif(tree, tmp_path)["runs"][0]["results"][0]
    assert moved["locations"][0]["physicalLocation"]["region"]["startLine"] == line + 3
    moved_steps = moved["codeFlows"][0]["threadFlows"][0]["locations"]
    assert moved_steps[0]["location"]["physicalLocation"]["region"]["startLine"] == first
    assert first < line
