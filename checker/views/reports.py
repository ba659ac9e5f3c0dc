"""Reports of a `verify` run: text for people; JSON, JUnit XML and SARIF 2.1.0 for machines.

Every renderer is a pure function of the results and the baseline comparison, and the output
is deterministic (checks sorted by id, JSON keys sorted, no timestamps), so two runs with the
same verdicts give comparable files. How each format shows the baseline:

- text: a summary line, one line per check, the changes against the baseline, then each
  regressed failure with its trace (`counterexample["text"]` when the engine wrote one).
- json: schema-versioned (`checker/schemas/report.schema.json`); every check with its status,
  its outcome against the baseline and its transition, if any.
- junit: one testcase per check, classname = profile. A failure matching the baseline is *not*
  a JUnit failure (it is the expected catch of a broken profile; its trace goes to
  system-out). Inconclusive checks are `skipped`. Gate changes without a failing check
  (an expected failure that now passes, a removed check) are JUnit failures.
- sarif: one result per failing check, ruleId = invariant id, located at
  `CheckResult.location` (relative URIs against the repository root, uriBaseId `%SRCROOT%`).
  A failure expected by the baseline is kept, for the record, with `level: "note"`,
  `baselineState: "unchanged"` and an accepted external suppression, so viewers that honour
  suppressions hide it and the others show a note, never an error. New failures are
  `level: "error"`, `baselineState: "new"` (no baselineState without a baseline). Errors,
  inconclusive checks and gate changes that have no failing result go to
  `invocations[0].toolExecutionNotifications`.
"""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from checker.engines.coverage import Coverage
from checker.gate.baseline import (
    BASELINE_SCHEMA_VERSION,
    CHECK_REMOVED,
    NOT_RUN,
    OUTCOME_EXPECTED_FAIL,
    OUTCOME_INCONCLUSIVE,
    OUTCOME_PASS,
    OUTCOME_REGRESSION,
    REGRESSION,
    Comparison,
    compare,
)
from checker.gate.results import ERROR, FAIL, INCONCLUSIVE, PASS, CheckResult, Location
from checker.views.html_report import render_html
from checker.views.trace import step_text

FORMATS = ("text", "json", "junit", "sarif", "html")
REPORT_SCHEMA_VERSION = 1
TOOL_NAME = "tdx-host-checker"
SRCROOT = "%SRCROOT%"
SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
REPO_ROOT = Path(__file__).resolve().parents[2]
TEXT_WIDTH = 100  # columns of the text report when it does not go to a terminal


def render(
    fmt: str,
    results: Sequence[CheckResult],
    comparison: Comparison | None = None,
    *,
    root: str | Path | None = None,
    verbose: bool = False,
    notes: Sequence[str] = (),
    width: int = TEXT_WIDTH,
) -> str:
    """Render one report. `comparison` defaults to the no-baseline gate ("all must pass");
    `root` (default: this repository) makes absolute locations relative; `verbose` lists every
    check and the traces of expected failures in the text report; `notes` are lines the text
    report prints before its verdict (where the run wrote files); `width` is its line width."""
    if comparison is None:
        comparison = compare(results, None)
    ordered = sorted(results, key=lambda r: r.id)
    base = Path(root) if root is not None else REPO_ROOT
    if fmt == "text":
        return render_text(ordered, comparison, verbose=verbose, notes=notes, width=width)
    if fmt == "json":
        return _dump_json(report_json(ordered, comparison, root=base))
    if fmt == "junit":
        return render_junit(ordered, comparison)
    if fmt == "sarif":
        return _dump_json(report_sarif(ordered, comparison, root=base))
    if fmt == "html":  # drawn from the JSON report, with the text report kept inside
        return render_html(report_json(ordered, comparison, root=base),
                           render_text(ordered, comparison, verbose=verbose, notes=notes))
    raise ValueError(f"unknown report format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _dump_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# --- shared pieces ---------------------------------------------------------------------------


def summary(results: Sequence[CheckResult], comparison: Comparison) -> dict[str, Any]:
    """Counts for the summary line and the JSON `summary`; outcomes are exclusive per check,
    `regressions` counts transitions (so a removed check counts though it did not run)."""
    outcomes = [comparison.outcomes.get(r.id, OUTCOME_REGRESSION) for r in results]
    return {
        "checks": len(results),
        "pass": outcomes.count(OUTCOME_PASS),
        "expected_fail": outcomes.count(OUTCOME_EXPECTED_FAIL),
        "inconclusive": outcomes.count(OUTCOME_INCONCLUSIVE),
        "errors": sum(r.status == ERROR for r in results),
        "regressions": len(comparison.regressions),
        "states": sum(r.states or 0 for r in results),
        "duration_s": round(sum(r.duration_s for r in results), 3),
    }


def summary_line(results: Sequence[CheckResult], comparison: Comparison) -> str:
    """`checks: 48   pass 33   expected-fail 15   regressions 1` (+ inconclusive when any)."""
    s = summary(results, comparison)
    parts = [
        f"checks: {s['checks']}",
        f"pass {s['pass']}",
        f"expected-fail {s['expected_fail']}",
        f"regressions {s['regressions']}",
    ]
    if s["inconclusive"]:
        parts.append(f"inconclusive {s['inconclusive']}")
    return "   ".join(parts)


def suite_coverage(results: Sequence[CheckResult]) -> tuple[Coverage, int] | None:
    """The coverage of the flow checks that counted it (real kernels' profiles), added up,
    and how many they were; None when no check counted coverage."""
    runs = [Coverage.from_json(r.extra["coverage"]) for r in results if "coverage" in r.extra]
    if not runs:
        return None
    total = runs[0]
    for run in runs[1:]:
        total = total.merged(run)
    return total, len(runs)


def coverage_lines(results: Sequence[CheckResult], verbose: bool = False) -> list[str]:
    """What the suite never exercised of the model: steps no flow check took and invariants
    that never had anything to check (the whole table with `verbose`)."""
    found = suite_coverage(results)
    if found is None:
        return []
    coverage, runs = found
    never = coverage.unexercised_actions
    vacuous = coverage.vacuous_invariants
    lines = [f"coverage ({runs} flow checks of kernel profiles): {len(coverage.actions)} kinds "
             f"of step taken, {len(coverage.invariants) - len(vacuous)} of "
             f"{len(coverage.invariants)} invariants exercised"]
    if never:
        lines.append("  steps never taken: " + ", ".join(never))
    if vacuous:
        lines.append("  invariants that never applied: " + ", ".join(vacuous))
    if verbose:
        lines += ["  " + line for line in coverage.render_text(outcomes=False).splitlines()]
    return lines


def trace_text(result: CheckResult) -> str:
    """The human trace or map: the engine's precomputed `text`, else the counterexample JSON."""
    cex = result.counterexample
    if not cex:
        return ""
    text = cex.get("text")
    if isinstance(text, str) and text.strip():
        return text.rstrip("\n")
    return json.dumps(cex, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def _steps(result: CheckResult) -> int | None:
    cex = result.counterexample or {}
    for key in ("trace", "steps"):
        value = cex.get(key)
        if isinstance(value, list):
            return len(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _stats(result: CheckResult) -> str:
    parts = []
    steps = _steps(result)
    if result.status == FAIL and steps is not None:
        parts.append(f"{steps} steps")
    if result.states is not None:
        parts.append(f"{result.states:,} states")
    parts.append(f"{result.duration_s:.1f} s")
    return "(" + ", ".join(parts) + ")"


def _label(result: CheckResult, outcome: str) -> str:
    """XFAIL for a broken profile caught as the baseline expects; FINDING for an expected
    failure that is a kernel limitation on a real map rather than a broken rule."""
    if result.status == FAIL:
        if outcome != OUTCOME_EXPECTED_FAIL:
            return "FAIL"
        return "FINDING" if result.extra.get("finding") else "XFAIL"
    return {PASS: "PASS", INCONCLUSIVE: "INCONCLUSIVE", ERROR: "ERROR"}[result.status]


def _location_text(loc: Location | None) -> str:
    if loc is None:
        return ""
    where = f"{loc.file}:{loc.line}"
    return f"{where} ({loc.function})" if loc.function else where


# --- text --------------------------------------------------------------------------------------


def render_text(
    results: Sequence[CheckResult],
    comparison: Comparison,
    *,
    verbose: bool = False,
    notes: Sequence[str] = (),
    width: int = TEXT_WIDTH,
) -> str:
    """For people, as pytest reports: the summary, what changed against the baseline, each
    failure with its invariant, location and trace, the coverage, the verdict. Passing checks
    and expected failures are listed only with `verbose`. Every line fits `width` columns."""
    lines = [summary_line(results, comparison)]
    if comparison.has_baseline:
        lines.append(f"baseline: {comparison.baseline_path or '(given)'}")
    else:
        lines.append("baseline: none (every check must pass)")
    listed = [r for r in results if verbose or _needs_a_look(r, comparison)]
    if listed:
        lines.append("")
        labels = {r.id: _label(r, comparison.outcomes.get(r.id, OUTCOME_REGRESSION))
                  for r in listed}
        label_width = max(map(len, labels.values()))
        id_width = max(len(r.id) for r in listed)
        widest = label_width + id_width + max(len(r.invariant) + len(_stats(r)) for r in listed)
        if widest + 5 > width:  # aligned ids would push the lines past the width
            id_width = 0
        for r in listed:
            line = f"{labels[r.id]:<{label_width}} {r.id:<{id_width}}  {r.invariant}  {_stats(r)}"
            if r.status == INCONCLUSIVE and r.bound:
                line += f"  bound: {r.bound}"
            transition = comparison.transition_for(r.id)
            if transition is not None:
                line += f"  <- {transition.name}"
            lines.append(line.rstrip())
    changes = [t for t in comparison.transitions if t.name != NOT_RUN]
    if changes:
        lines += ["", "changes against the baseline:"]
        name_width = max(len(t.name) for t in changes)
        for t in changes:
            lines.append(f"  {t.name:<{name_width}}  {t.check_id}: {t.explanation}")
    not_run = len(comparison.transitions) - len(changes)
    if not_run:
        lines += ["", f"stopped at the first new failure (--fail-fast): {not_run} "
                  f"check{'s' if not_run != 1 else ''} not run"]
    for r in results:
        outcome = comparison.outcomes.get(r.id, OUTCOME_REGRESSION)
        wanted = r.status in (FAIL, ERROR) and (
            outcome == OUTCOME_REGRESSION or (verbose and outcome == OUTCOME_EXPECTED_FAIL)
        )
        if wanted:
            lines += [""] + _failure_block(r, outcome)
    covered = coverage_lines(results, verbose)
    if covered:
        lines += ["", *covered]
    if notes:
        lines += ["", *notes]
    lines += ["", f"verdict: {verdict_words(results, comparison)} (exit {comparison.exit_code})"]
    return "\n".join(fitted(lines, width)) + "\n"


def _needs_a_look(result: CheckResult, comparison: Comparison) -> bool:
    """Not a pass nor an expected failure, changed against the baseline, or a finding (what
    the kernel cannot do on a real or minimal map is news however often it is seen)."""
    outcome = comparison.outcomes.get(result.id, OUTCOME_REGRESSION)
    return outcome not in (OUTCOME_PASS, OUTCOME_EXPECTED_FAIL) \
        or comparison.transition_for(result.id) is not None \
        or (result.status == FAIL and bool(result.extra.get("finding")))


def fitted(lines: Sequence[str], width: int) -> list[str]:
    """Each line cut at word boundaries into lines of at most `width` columns; a cut line goes
    on under its own indent plus four."""
    out = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip()) + 4)
        # a closing "(figures)" group stays whole
        kept = _TAIL_GROUP.sub(lambda m: m[0].replace(" ", "\0"), line)
        out += [piece.replace("\0", " ") for piece in textwrap.wrap(
            kept, width, subsequent_indent=indent, break_long_words=True,
            break_on_hyphens=False)] or [""]
    return out


_TAIL_GROUP = re.compile(r"\([^()]{1,40}\)$")


def verdict_words(results: Sequence[CheckResult], comparison: Comparison) -> str:
    """pass, fail or inconclusive; a pass that allowed inconclusive checks says how many, so
    a bounded run never reads as a plain pass."""
    inconclusive = summary(results, comparison)["inconclusive"]
    if comparison.verdict == PASS and inconclusive:
        return f"pass with {inconclusive} inconclusive"
    return comparison.verdict


def _failure_block(r: CheckResult, outcome: str) -> list[str]:
    head = "ERROR" if r.status == ERROR else _label(r, outcome)
    block = [f"{head} {r.invariant}  profile {r.profile}  config {r.config}   {_stats(r)}"]
    block.append(f"  check {r.id}" + (f"   at {_location_text(r.location)}" if r.location else ""))
    if r.statement and r.status == FAIL:
        block.append(f"  {r.invariant}: {r.statement}")
    if r.detail:
        block.append(f"  {r.detail}")
    trace = trace_text(r)
    if trace:
        block += ["  " + line if line else "" for line in trace.splitlines()]
    return block


# --- json --------------------------------------------------------------------------------------


def report_json(
    results: Sequence[CheckResult], comparison: Comparison, *, root: Path = REPO_ROOT
) -> dict[str, Any]:
    """The machine-readable report; its shape is `checker/schemas/report.schema.json`."""
    checks = []
    for r in results:
        transition = comparison.transition_for(r.id)
        expected = comparison.expected.get(r.id)
        checks.append(
            {
                "id": r.id,
                "invariant": r.invariant,
                "profile": r.profile,
                "config": r.config,
                "status": r.status,
                "outcome": comparison.outcomes.get(r.id, OUTCOME_REGRESSION),
                "expected": None
                if expected is None
                else {"status": expected.status, "invariant": expected.invariant},
                "transition": None if transition is None else transition.name,
                "detail": r.detail,
                "counterexample": r.counterexample,
                "duration_s": round(r.duration_s, 3),
                "states": r.states,
                "bound": r.bound,
                "location": _location_json(r.location, root),
                "statement": r.statement,
                "source": r.source,
                "extra": r.extra,
            }
        )
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "tool": TOOL_NAME,
        "verdict": comparison.verdict,
        "exit_code": comparison.exit_code,
        "summary": summary(results, comparison),
        "baseline": {
            "path": comparison.baseline_path if comparison.has_baseline else None,
            "schema_version": BASELINE_SCHEMA_VERSION if comparison.has_baseline else None,
            "allow_inconclusive": comparison.allow_inconclusive,
            "transitions": [t.to_json() for t in comparison.transitions],
        },
        "checks": checks,
        "coverage": None if (found := suite_coverage(results)) is None
        else {"flow_checks": found[1], **found[0].to_json()},
    }


def _location_json(loc: Location | None, root: Path) -> dict[str, Any] | None:
    if loc is None:
        return None
    uri, _ = _relative_uri(loc.file, root)
    return {"kind": loc.kind, "file": uri, "line": loc.line, "function": loc.function}


def _relative_uri(file: str, root: Path) -> tuple[str, bool]:
    """(uri, relative?): a POSIX path relative to the repository root when the file is in it,
    else an absolute file URI; never machine-specific for files inside the repository."""
    path = Path(file)
    if not path.is_absolute():
        return PurePosixPath(*path.parts).as_posix(), True
    try:
        return path.resolve().relative_to(root.resolve()).as_posix(), True
    except ValueError:
        return path.as_uri(), False


# --- junit -------------------------------------------------------------------------------------

_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """XML 1.0 cannot carry most control characters; a trace must never make the file invalid."""
    return _XML_INVALID.sub("\ufffd", text)


def render_junit(results: Sequence[CheckResult], comparison: Comparison) -> str:
    """JUnit XML in the Jenkins/Surefire dialect (validated against its XSD in the tests)."""
    by_profile: dict[str, list[ET.Element]] = {}
    counts: dict[str, dict[str, float]] = {}

    def add(profile: str, case: ET.Element, kind: str, seconds: float) -> None:
        by_profile.setdefault(profile, []).append(case)
        c = counts.setdefault(
            profile, {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
        )
        c["tests"] += 1
        c["time"] += seconds
        if kind:
            c[kind] += 1

    for r in results:
        case, kind = _junit_case(r, comparison)
        add(r.profile, case, kind, r.duration_s)
    for t in comparison.transitions:
        if t.name in (CHECK_REMOVED, NOT_RUN):
            profile = t.expected.profile if t.expected and t.expected.profile else \
                "(removed)" if t.name == CHECK_REMOVED else "(not run)"
            case = ET.Element("testcase", name=t.check_id, classname=profile, time="0.000")
            kind = "failure" if t.name == CHECK_REMOVED else "skipped"
            ET.SubElement(case, kind, message=_xml_text(t.explanation), type=t.name)
            add(profile, case, "failures" if kind == "failure" else "skipped", 0.0)

    root = ET.Element("testsuites", name=TOOL_NAME)
    total = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
    for profile in sorted(by_profile):
        c = counts[profile]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=profile,
            tests=str(int(c["tests"])),
            failures=str(int(c["failures"])),
            errors=str(int(c["errors"])),
            skipped=str(int(c["skipped"])),
            time=f"{c['time']:.3f}",
        )
        suite.extend(sorted(by_profile[profile], key=lambda e: e.get("name", "")))
        for key in total:
            total[key] += c[key]
    root.set("tests", str(int(total["tests"])))
    root.set("failures", str(int(total["failures"])))
    root.set("errors", str(int(total["errors"])))
    root.set("time", f"{total['time']:.3f}")
    ET.indent(root)
    body = ET.tostring(root, encoding="unicode")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _junit_case(r: CheckResult, comparison: Comparison) -> tuple[ET.Element, str]:
    """One testcase and what it counts as: "failures", "errors", "skipped" or "" (passed)."""
    case = ET.Element("testcase", name=r.id, classname=r.profile, time=f"{r.duration_s:.3f}")
    outcome = comparison.outcomes.get(r.id, OUTCOME_REGRESSION)
    transition = comparison.transition_for(r.id)
    trace = _xml_text(trace_text(r))
    if r.status == ERROR:
        error = ET.SubElement(case, "error", message=_xml_text(r.detail or "error"), type="error")
        error.text = _xml_text(r.detail)
        return case, "errors"
    if outcome == OUTCOME_REGRESSION:
        assert transition is not None
        failure = ET.SubElement(
            case, "failure", message=_xml_text(transition.explanation), type=transition.name
        )
        failure.text = "\n".join(x for x in (_xml_text(r.detail), trace) if x) or None
        return case, "failures"
    if r.status == INCONCLUSIVE:
        why = f"inconclusive: {r.bound}" if r.bound else "inconclusive"
        ET.SubElement(case, "skipped", message=_xml_text(why))
        return case, "skipped"
    if outcome == OUTCOME_EXPECTED_FAIL:
        out = ET.SubElement(case, "system-out")
        out.text = (
            f"expected failure: {r.invariant} caught it, as recorded in the baseline\n{trace}"
        ).rstrip("\n")
    return case, ""


# --- sarif -------------------------------------------------------------------------------------


def report_sarif(
    results: Sequence[CheckResult], comparison: Comparison, *, root: Path = REPO_ROOT
) -> dict[str, Any]:
    """SARIF 2.1.0: a rule per invariant that ran, a result per failing check."""
    rules = _sarif_rules(results)
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    sarif_results = [_sarif_result(r, comparison, index, root) for r in results if r.status == FAIL]
    notifications = _sarif_notifications(results, comparison)
    return {
        "$schema": SARIF_SCHEMA_URI,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": TOOL_NAME, "rules": rules}},
                "originalUriBaseIds": {
                    SRCROOT: {"description": {"text": "The root of the repository."}}
                },
                "invocations": [
                    {
                        "executionSuccessful": not any(r.status == ERROR for r in results),
                        "exitCode": comparison.exit_code,
                        "toolExecutionNotifications": notifications,
                    }
                ],
                "results": sarif_results,
            }
        ],
    }


def _sarif_rules(results: Sequence[CheckResult]) -> list[dict[str, Any]]:
    """Every invariant that ran (not only those that failed), so a viewer can tell "checked and
    held" from "not checked". The first check (by id) with a statement supplies the text."""
    found: dict[str, CheckResult] = {}
    for r in results:
        if r.status == ERROR:
            continue
        known = found.get(r.invariant)
        if known is None or (not known.statement and r.statement):
            found[r.invariant] = r
    rules = []
    for invariant in sorted(found):
        r = found[invariant]
        statement = r.statement or invariant
        rule: dict[str, Any] = {
            "id": invariant,
            "shortDescription": {"text": statement},
            "fullDescription": {
                "text": f"{statement} Guards: {r.source}." if r.source else statement
            },
            "defaultConfiguration": {"level": "error"},
        }
        if r.source:
            rule["help"] = {"text": f"Kernel rule or bug this invariant guards: {r.source}"}
            rule["properties"] = {"source": r.source}
        rules.append(rule)
    return rules


def _sarif_result(
    r: CheckResult, comparison: Comparison, index: dict[str, int], root: Path
) -> dict[str, Any]:
    outcome = comparison.outcomes.get(r.id, OUTCOME_REGRESSION)
    transition = comparison.transition_for(r.id)
    expected = outcome == OUTCOME_EXPECTED_FAIL
    head = f"{r.invariant} fails on profile {r.profile}, config {r.config}"
    if r.detail:
        head += f": {r.detail}"
    if transition is not None:
        head += f" [{transition.name}: {transition.explanation}]"
    elif expected:
        head += " [expected failure recorded in the baseline]"
    trace = trace_text(r)
    result: dict[str, Any] = {
        "ruleId": r.invariant,
        "ruleIndex": index[r.invariant],
        "kind": "fail",
        "level": "note" if expected else "error",
        "message": {"text": f"{head}\n\n{trace}" if trace else head},
        "partialFingerprints": {"checkId/v1": r.id},
        "properties": {
            "checkId": r.id,
            "profile": r.profile,
            "config": r.config,
            "outcome": outcome,
            "transition": None if transition is None else transition.name,
        },
    }
    if comparison.has_baseline:
        result["baselineState"] = "unchanged" if expected else "new"
    if expected:
        result["suppressions"] = [
            {
                "kind": "external",
                "status": "accepted",
                "justification": "expected failure recorded in the verify baseline: a broken "
                "profile that must keep being caught",
            }
        ]
    if r.location is not None:
        result["locations"] = [_sarif_location(r.location, root)]
    flow = _sarif_code_flow(r, root)
    if flow is not None:
        result["codeFlows"] = [flow]
    return result


def _sarif_code_flow(r: CheckResult, root: Path) -> dict[str, Any] | None:
    """A trace as a SARIF code flow: each step at the `spec/` line whose rule took it, with
    the step in words, the actor as the thread."""
    cex = r.counterexample or {}
    sites, trace = cex.get("sites"), cex.get("trace")
    if not sites or not isinstance(trace, dict):
        return None
    steps = []
    for order, (site, step) in enumerate(zip(sites, trace["steps"], strict=True)):
        location = _sarif_location(Location(**site), root)
        location["message"] = {"text": step_text(step["step"])}
        steps.append({"location": location, "executionOrder": order,
                      "properties": {"actor": step["step"].get("actor")}})
    return {"message": {"text": f"the shortest trace to a violation of {r.invariant}"},
            "threadFlows": [{"locations": steps}]}


def _sarif_location(loc: Location, root: Path) -> dict[str, Any]:
    uri, relative = _relative_uri(loc.file, root)
    artifact: dict[str, Any] = {"uri": uri}
    if relative:
        artifact["uriBaseId"] = SRCROOT
    physical: dict[str, Any] = {"artifactLocation": artifact}
    if loc.line >= 1:
        physical["region"] = {"startLine": loc.line}
    location: dict[str, Any] = {"physicalLocation": physical}
    if loc.function:
        location["logicalLocations"] = [{"name": loc.function, "kind": "function"}]
    return location


def _sarif_notifications(
    results: Sequence[CheckResult], comparison: Comparison
) -> list[dict[str, Any]]:
    """What the gate saw that is not a failing check: errors, inconclusive checks, and
    transitions of checks that no longer fail (or no longer exist)."""
    notes: list[dict[str, Any]] = []
    for r in results:
        transition = comparison.transition_for(r.id)
        if r.status == ERROR:
            notes.append(_notification("error", "error", r.id, r.detail or "the check errored"))
        elif r.status != FAIL and transition is not None:
            level = "error" if transition.severity == REGRESSION else "warning"
            notes.append(_notification(level, transition.name, r.id, transition.explanation))
        elif r.status == INCONCLUSIVE:
            why = f"inconclusive: {r.bound}" if r.bound else "inconclusive"
            notes.append(_notification("warning", "inconclusive", r.id, why))
    for t in comparison.transitions:
        if t.name == CHECK_REMOVED:
            notes.append(_notification("error", t.name, t.check_id, t.explanation))
        elif t.name == NOT_RUN:
            notes.append(_notification("warning", t.name, t.check_id, t.explanation))
    return notes


def _notification(level: str, descriptor: str, check_id: str, text: str) -> dict[str, Any]:
    return {
        "level": level,
        "descriptor": {"id": descriptor},
        "message": {"text": f"{check_id}: {text}"},
        "properties": {"checkId": check_id},
    }
