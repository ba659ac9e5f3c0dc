"""HTML pages: the `verify` report (`--format html`), and one picture with its text for `tdmr`
and `replay`.

Every page is one self-contained file: styles, script and pictures (inline SVG) are in it, and
nothing is fetched, so it opens offline, from a CI artefact or a mail attachment. The verify
report is drawn from the JSON report (`checker.views.reports.report_json`, whose shape is
`checker/schemas/report.schema.json`) plus the text report: the summary, the changes against
the baseline, every check with a filter by status, each failure with its trace or map
picture, each machine's TDMR layout, and the text report itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from html import escape
from pathlib import Path
from typing import Any

from checker.gate.replay import ReplayError, load_document
from checker.gate.suite import builtin_maps
from checker.inputs.readers import InputError, read_input, read_json_map
from checker.views.svg_layout import layout_svg, report_layouts
from checker.views.svg_trace import replay_facts, trace_svg
from checker.views.svgdoc import Svg
from checker.views.tdmr_report import TdmrOptions, analyse
from spec.profiles import PROFILES, V6_8

MAP_CHECKS = ("log", "layout", "worst-case", "plan")

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto;
       padding: 0 24px 48px; max-width: 1800px; color: #222; }
h1 { font-size: 22px; margin: 20px 0 6px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
code, pre, .mono { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12px; }
pre { background: #f6f6f6; padding: 10px; overflow-x: auto; border: 1px solid #e2e2e2; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #f3f3f3; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 4px; font-weight: bold; }
.verdict.pass { background: #d9f2e3; color: #145a32; }
.verdict.fail { background: #fde3d8; color: #8a2c00; }
.verdict.inconclusive { background: #fff3c4; color: #6b5300; }
.label { font-weight: bold; font-family: monospace; }
.label.FAIL, .label.ERROR { color: #b03a00; }
.label.XFAIL, .label.FINDING { color: #6b4e00; }
.label.PASS { color: #1d6b3a; }
.label.INCONCLUSIVE { color: #8a6d00; }
nav a { margin-right: 14px; }
.filter label { margin-right: 14px; white-space: nowrap; }
.counts span { margin-right: 18px; }
.picture { overflow-x: auto; border: 1px solid #e2e2e2; margin: 8px 0; background: #fff; }
.picture svg { display: block; max-width: 100%; height: auto; }
details.failure { border-left: 4px solid #e0a080; padding: 2px 12px; margin: 10px 0; }
details.failure[data-status="FAIL"], details.failure[data-status="ERROR"] {
    border-left-color: #d55e00; }
details summary { cursor: pointer; }
.muted { color: #666; }
td.cost { white-space: nowrap; }
[hidden] { display: none !important; }
"""

FILTER_JS = """
(function () {
  var boxes = Array.prototype.slice.call(document.querySelectorAll('input[data-filter]'));
  function apply() {
    var shown = {};
    boxes.forEach(function (box) { shown[box.getAttribute('data-filter')] = box.checked; });
    var visible = 0;
    document.querySelectorAll('[data-status]').forEach(function (el) {
      el.hidden = !shown[el.getAttribute('data-status')];
      if (!el.hidden && el.tagName === 'TR') { visible += 1; }
    });
    var count = document.getElementById('shown-count');
    if (count) { count.textContent = visible + ' shown'; }
  }
  boxes.forEach(function (box) { box.addEventListener('change', apply); });
  apply();
})();
"""


def page(title: str, body: str, script: str = "") -> str:
    """A whole HTML document: `body` (HTML) with the styles, and `script` inline."""
    tail = f"<script>{script}</script>\n" if script else ""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"{body}\n{tail}</body>\n</html>\n")


def picture_page(title: str, svg: str, text: str) -> str:
    """One picture above the text it draws (`tdmr` and `replay` with `--format html`)."""
    return page(title, f"<h1>{escape(title)}</h1>\n<div class=\"picture\">{svg}</div>\n"
                f"<pre>{escape(text)}</pre>")


# --- pictures of counterexamples ------------------------------------------------------------


def trace_picture(trace: dict[str, Any], statement: str = "",
                  sites: list[dict[str, Any]] | None = None, title: str = "") -> Svg:
    """The sequence diagram of a flow trace, with the full state it ends in and the
    invariant's statement when the model can run it again."""
    state, known = replay_facts(trace)
    return trace_svg(trace, statement or known, state, sites, title)


def map_picture(the_map: dict[str, Any], profile: str, placement: str | None) -> Svg | None:
    """The layout the profile builds on a counterexample's memory map, or None when it cannot
    be drawn (an unknown profile)."""
    if profile not in PROFILES:
        return None
    machine = read_json_map(json.dumps(the_map), "<counterexample map>")
    chosen = None if machine.pamt_bases is not None or placement not in ("first-fit",
                                                                         "last-fit") \
        else placement
    report = analyse(machine, TdmrOptions(PROFILES[profile], chosen, explain=False))
    return layout_svg(report)


def document_picture(doc: dict[str, Any], name: str) -> Svg | None:
    """The picture of a counterexample file (`replay FILE --format svg`): its trace, or the
    layout its map gets."""
    body = doc["counterexample"]
    if body["kind"] == "trace":
        return trace_picture(body["trace"], sites=body.get("sites"),
                             title=f"{name}: {doc['profile']} on {doc['config']}")
    return map_picture(body["map"], doc["profile"], body.get("placement"))


def _counterexample_picture(check: dict[str, Any]) -> tuple[str, str | None]:
    """(key, picture) for a failing check: the trace or map it holds, or the stored file it
    replayed. The key is the same for the same trace, so a picture is drawn once."""
    cex = check.get("counterexample") or {}
    statement = check.get("statement") or ""
    if cex.get("kind") == "replay":
        try:
            stored = load_document(cex["file"])
        except (ReplayError, KeyError):
            return "", None
        cex = stored["counterexample"]
    if isinstance(cex.get("trace"), dict):
        key = _digest(cex["trace"])
        return key, trace_picture(cex["trace"], statement, cex.get("sites")).element()
    if isinstance(cex.get("map"), dict):
        key = _digest([cex["map"], check["profile"]])
        try:
            picture = map_picture(cex["map"], check["profile"], cex.get("placement"))
        except InputError:
            return key, None
        return key, None if picture is None else picture.element()
    if isinstance(cex.get("report"), dict) and cex["report"].get("modelled"):
        return _digest(cex["report"]["input"]), layout_svg(cex["report"]).element()
    return "", None


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


# --- machines ------------------------------------------------------------------------------


def _machine_files(checks: Iterable[dict[str, Any]]) -> dict[str, tuple[Path | None, bool]]:
    """Each map the map checks ran on, by file name: its path (a shipped map, or a file of that
    name in the current folder; None if neither) and whether a plan check found a layout the
    kernel missed there."""
    shipped = {p.name: p for p in builtin_maps()}
    found: dict[str, tuple[Path | None, bool]] = {}
    for check in checks:
        if check["id"].split("/")[0] not in MAP_CHECKS:
            continue
        name = check["config"]
        path = shipped.get(name) or (Path(name) if Path(name).is_file() else None)
        missed = found.get(name, (None, False))[1] or (
            check["id"].startswith("plan/") and check["status"] == "fail")
        found[name] = (path, missed)
    return dict(sorted(found.items()))


def _machine_section(name: str, path: Path | None, plan: bool) -> str:
    anchor = f"machine-{_slug(name)}"
    head = f"<h3 id=\"{anchor}\">{escape(name)}</h3>\n"
    if path is None:
        return head + ("<p class=\"muted\">not drawn: no shipped map and no file of this name "
                       "in the current folder (draw it with <code>tdmr FILE --format svg</code>)"
                       "</p>\n")
    try:  # named as the reader of the report would name it, from where it was written
        machine = read_input(os.path.relpath(path) if path.is_absolute() else path)
    except InputError as exc:
        return head + f"<p class=\"muted\">not drawn: {escape(str(exc))}</p>\n"
    options = TdmrOptions(V6_8, explain=False, plan=plan)
    report = analyse(machine, options)
    svg = layout_svg(report, report_layouts(report, machine, options)).element()
    what = " (with the plan v6.8 missed)" if plan else ""
    return head + f"<p class=\"muted\">v6.8, first-fit placement{what}</p>\n" \
        f"<div class=\"picture layout-picture\">{svg}</div>\n"


# --- the verify report -----------------------------------------------------------------------


def check_label(check: dict[str, Any]) -> str:
    """What the text report prints before a check: PASS, FAIL (against the baseline), XFAIL
    (a broken profile caught as the baseline expects), FINDING (an expected failure that is a
    kernel limitation on a real map), INCONCLUSIVE or ERROR."""
    status = check["status"]
    if status == "fail":
        if check["outcome"] != "expected-fail":
            return "FAIL"
        return "FINDING" if (check.get("extra") or {}).get("finding") else "XFAIL"
    return status.upper()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)


def _summary(doc: dict[str, Any]) -> str:
    s = doc["summary"]
    baseline = doc["baseline"]["path"]
    verdict = doc["verdict"]
    against = escape(baseline) if baseline else "none (every check must pass)"
    counts = "".join(f"<span>{escape(name)} <b>{s[key]}</b></span>" for name, key in (
        ("checks", "checks"), ("pass", "pass"), ("expected-fail", "expected_fail"),
        ("regressions", "regressions"), ("inconclusive", "inconclusive"),
        ("errors", "errors")))
    return (f"<p>verdict: <span class=\"verdict {escape(verdict)}\" id=\"verdict\">"
            f"{escape(verdict)}</span> (exit {doc['exit_code']})</p>\n"
            f"<p class=\"counts\" id=\"summary\">{counts}</p>\n"
            f"<p class=\"muted\">baseline: {against}; {s['states']:,} states explored, "
            f"{s['duration_s']:.1f} s of checks</p>\n")


def _changes(doc: dict[str, Any]) -> str:
    transitions = doc["baseline"]["transitions"]
    if not transitions:
        return "<p id=\"changes\">no changes against the baseline</p>\n"
    rows = "".join(
        f"<tr><td class=\"label\">{escape(t['transition'])}</td><td><code>"
        f"{escape(t['check_id'])}</code></td><td>{escape(t['explanation'])}</td></tr>\n"
        for t in transitions)
    return ("<table id=\"changes\"><tr><th>change</th><th>check</th><th>what</th></tr>\n"
            f"{rows}</table>\n")


def _checks_table(doc: dict[str, Any], labels: dict[str, str], failures: set[str]) -> str:
    present = sorted(set(labels.values()))
    boxes = "".join(
        f"<label><input type=\"checkbox\" data-filter=\"{escape(label)}\" checked> "
        f"<span class=\"label {escape(label)}\">{escape(label)}</span> "
        f"({list(labels.values()).count(label)})</label>" for label in present)
    rows = []
    for check in doc["checks"]:
        label = labels[check["id"]]
        ident = escape(check["id"])
        if check["id"] in failures:
            ident = f"<a href=\"#check-{_slug(check['id'])}\">{ident}</a>"
        stats = f"{check['duration_s']:.1f} s"
        if check["states"] is not None:
            stats = f"{check['states']:,} states, {stats}"
        transition = f" &larr; {escape(check['transition'])}" if check["transition"] else ""
        rows.append(f"<tr data-status=\"{escape(label)}\"><td class=\"label {escape(label)}\">"
                    f"{escape(label)}</td><td class=\"mono\">{ident}</td>"
                    f"<td class=\"mono\">{escape(check['invariant'])}</td>"
                    f"<td>{escape(check['detail'] or '')}{transition}</td>"
                    f"<td class=\"muted cost\">{stats}</td></tr>\n")
    return (f"<p class=\"filter\" id=\"filter\">show: {boxes} <span class=\"muted\" "
            f"id=\"shown-count\"></span></p>\n<table id=\"checks\"><tr><th>status</th>"
            "<th>check</th><th>invariant</th><th>detail</th><th>cost</th></tr>\n"
            + "".join(rows) + "</table>\n")


def _failure(check: dict[str, Any], label: str, drawn: dict[str, str]) -> str:
    """One failing check: what broke, where, its picture (or a pointer to the same one drawn
    for an earlier check), and its trace in text."""
    anchor = f"check-{_slug(check['id'])}"
    opened = " open" if label in ("FAIL", "ERROR") else ""
    parts = [f"<details class=\"failure\" id=\"{anchor}\" data-status=\"{escape(label)}\""
             f"{opened}><summary><span class=\"label {escape(label)}\">{escape(label)}</span> "
             f"<code>{escape(check['id'])}</code> {escape(check['invariant'])}</summary>"]
    if check.get("statement"):
        parts.append(f"<p><b>{escape(check['invariant'])}</b>: {escape(check['statement'])}</p>")
    if check.get("detail"):
        parts.append(f"<p>{escape(check['detail'])}</p>")
    location = check.get("location")
    if location:
        where = f"{location['file']}:{location['line']}"
        if location.get("function"):
            where += f" ({location['function']})"
        parts.append(f"<p class=\"muted\">at <code>{escape(where)}</code></p>")
    if check["status"] == "fail":
        key, svg = _counterexample_picture(check)
        if key and key in drawn:
            parts.append(f"<p class=\"muted\">the same counterexample as <a href=\"#"
                         f"{drawn[key]}\">{escape(drawn[key].removeprefix('check-'))}</a></p>")
        elif svg:
            drawn[key] = anchor
            parts.append(f"<div class=\"picture trace-picture\">{svg}</div>")
    text = (check.get("counterexample") or {}).get("text")
    if isinstance(text, str) and text.strip():
        parts.append(f"<details><summary>as text</summary><pre>{escape(text)}</pre></details>")
    return "\n".join(parts) + "\n</details>\n"


def render_html(doc: dict[str, Any], text: str) -> str:
    """The verify report: `doc` is the JSON report, `text` the text report (kept at the end,
    for copying)."""
    labels = {c["id"]: check_label(c) for c in doc["checks"]}
    failing = [c for c in doc["checks"] if c["status"] in ("fail", "error")]
    failing.sort(key=lambda c: (labels[c["id"]] not in ("FAIL", "ERROR"), c["id"]))
    drawn: dict[str, str] = {}
    failures = "".join(_failure(c, labels[c["id"]], drawn) for c in failing) or \
        "<p>no failing checks</p>\n"
    machines = "".join(_machine_section(name, path, plan)
                       for name, (path, plan) in _machine_files(doc["checks"]).items()) or \
        "<p>no maps in this suite</p>\n"
    body = ("<h1>tdx-host-checker: verify report</h1>\n"
            "<nav><a href=\"#s-changes\">changes</a><a href=\"#s-checks\">checks</a>"
            "<a href=\"#s-failures\">failures</a><a href=\"#s-machines\">machines</a>"
            "<a href=\"#s-text\">text report</a></nav>\n" + _summary(doc)
            + "<h2 id=\"s-changes\">Changes against the baseline</h2>\n" + _changes(doc)
            + "<h2 id=\"s-checks\">Checks</h2>\n"
            + _checks_table(doc, labels, {c["id"] for c in failing})
            + "<h2 id=\"s-failures\">Failures</h2>\n<p class=\"muted\">new failures and errors "
            "first (open); expected failures and findings folded. Each picture is the "
            "counterexample: a trace as a sequence diagram, a map as its TDMR layout.</p>\n"
            + failures
            + "<h2 id=\"s-machines\">Machines</h2>\n<p class=\"muted\">the TDMR layout v6.8 "
            "builds on each map of the suite.</p>\n" + machines
            + "<h2 id=\"s-text\">Text report</h2>\n<details><summary>the same run as "
            f"<code>verify</code> prints it</summary><pre>{escape(text)}</pre></details>")
    return page("tdx-host-checker verify report", body, FILTER_JS)
