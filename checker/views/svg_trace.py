"""A counterexample trace as a sequence diagram (`replay FILE --format svg`).

One lane for boot, each caller, the environment (hotplug, sleep, machine checks) when it acts,
each CPU of the platform and the TDX module. Each step is a row: on the left its number, the
kernel function and what it did; in the lanes, the actor, an arrow to the CPU it runs on and,
for a SEAMCALL, the call to the module and the status it answered (an error in red, an injected
fault marked); on the right, the state fields the step changed. The step that breaks the
invariant is drawn in red, the invariant's statement is at the top, and the state it leaves is
listed at the bottom with the fields that step changed picked out.

The input is a trace as `checker.views.trace.trace_to_json` writes it (the `trace` of a flow
counterexample), so any stored or fresh counterexample can be drawn without the model.
"""

from __future__ import annotations

import re
import textwrap
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

from checker.inputs.platforms import model_from_description
from checker.views.svgdoc import FAIL_COLOUR, PAMT_COLOUR, Svg, text_width
from checker.views.trace import replay
from invariants.flow import flow_invariants

MARGIN = 16
STEP_W = 300  # the left column: step number, function, detail
LANE_W = 80
CHANGES_W = 470
LINE_H = 13
MODULE = "TDX module"

STYLE = f"""
text {{ fill: #222; }}
.tdx-title {{ font-size: 15px; font-weight: bold; }}
.tdx-note {{ font-size: 11px; fill: #444; }}
.tdx-bad {{ fill: {FAIL_COLOUR}; font-weight: bold; }}
.tdx-step {{ font-size: 12px; font-weight: bold; }}
.tdx-detail {{ font-size: 10px; fill: #555; }}
.tdx-change {{ font-size: 10px; }}
.tdx-change.last {{ fill: {FAIL_COLOUR}; font-weight: bold; }}
.tdx-call {{ font-size: 10px; paint-order: stroke; stroke: #fff; stroke-width: 3px; }}
.lane-head {{ fill: #eef2f7; stroke: #567; stroke-width: 1; }}
.lane-name {{ font-size: 10px; font-weight: bold; }}
.lifeline {{ stroke: #9aa; stroke-width: 1; stroke-dasharray: 3 3; }}
.step {{ fill: #fff; }}
.step.alt {{ fill: #f7f7f7; }}
.step.violating {{ fill: #fde3d8; stroke: {FAIL_COLOUR}; stroke-width: 2; }}
.actor {{ fill: #345; }}
.arrow {{ stroke: #345; stroke-width: 1.3; fill: none; }}
.reply {{ stroke: #345; stroke-width: 1.1; stroke-dasharray: 4 2; fill: none; }}
.reply.error {{ stroke: {FAIL_COLOUR}; }}
.tdx-call.error {{ fill: {FAIL_COLOUR}; font-weight: bold; }}
.injected {{ fill: {PAMT_COLOUR}; stroke: #7a5200; stroke-width: 0.8; }}
.touched {{ fill: #fff; stroke: #345; stroke-width: 1.2; }}
.module-state {{ fill: #eef2f7; stroke: #567; stroke-width: 0.8; }}
.state-box {{ fill: #fffaf5; stroke: {FAIL_COLOUR}; stroke-width: 1.5; }}
"""

_CPU = re.compile(r"^cpu (\d+)$")
_CALLER = re.compile(r"^caller (\d+)$")


def lanes(trace: dict[str, Any]) -> list[str]:
    """Boot, the callers, the environment, the CPUs, the module: those the trace names, and
    every CPU of the platform it was recorded on."""
    actors = {s["step"].get("actor") for s in trace["steps"]} - {None}
    callers = sorted((a for a in actors if _CALLER.match(a)), key=lambda a: int(a.split()[1]))
    others = sorted(actors - set(callers) - {"boot", "environment"})
    cpus = {s["step"]["cpu"] for s in trace["steps"] if s["step"].get("cpu") is not None}
    cpus |= {int(m[1]) for s in trace["steps"] for k in s["changed"] if (m := _CPU.match(k))}
    shape = re.match(r"^(\d+)x(\d+)$", str(trace.get("model", {}).get("platform", "")))
    if shape:
        cpus |= set(range(int(shape[1]) * int(shape[2])))
    return (["boot"] + callers + (["environment"] if "environment" in actors else []) + others
            + [f"cpu {c}" for c in sorted(cpus)] + [MODULE])


def replay_facts(trace: dict[str, Any]) -> tuple[dict[str, str] | None, str]:
    """Every field of the state the trace ends in, and the statement of the invariant it
    breaks, by running it again on the model it names; (None, "") when this checker no
    longer has that model or the trace does not run on it."""
    try:
        flow = model_from_description(trace["model"])
        run = replay(flow, trace)
    except (KeyError, ValueError):
        return None, ""
    statements = {inv.id: inv.statement for inv in flow_invariants(flow)}
    return flow.state_fields(run.states[-1]), statements.get(trace.get("invariant"), "")


def _failed(result: Any, seamcall: bool) -> bool:
    """An error: a SEAMCALL that did not answer success, or a step returning an errno."""
    if result is None:
        return False
    return str(result) != "success" if seamcall else bool(re.match(r"^-\d", str(result)))


def _change_lines(changed: dict[str, list[str]], width: float) -> list[tuple[str, str]]:
    """(field, line) pairs: `field: old -> new`, cut over two lines or more when long."""
    chars = int(width / text_width("x", 10))
    out = []
    for name, (old, new) in changed.items():
        whole = f"{name}: {old} -> {new}"
        if len(whole) <= chars:
            out.append((name, whole))
            continue
        for part in textwrap.wrap(f"{name}: {old}", chars, subsequent_indent="    "):
            out.append((name, part))
        for part in textwrap.wrap(f"-> {new}", chars - 2, subsequent_indent="     "):
            out.append((name, "  " + part))
    return out


def _arrow(svg: Svg, parent: ET.Element, x1: float, x2: float, y: float, cls: str) -> None:
    svg.line(parent, x1, y, x2, y, class_=cls)
    tip = 5 if x2 > x1 else -5
    svg.path(parent, f"M{x2 - tip:.1f},{y - 3.5:.1f} L{x2:.1f},{y:.1f} L{x2 - tip:.1f},"
             f"{y + 3.5:.1f}", class_=cls)


def trace_svg(trace: dict[str, Any], statement: str = "", final_state: dict[str, str] | None
              = None, sites: Sequence[dict[str, Any]] | None = None, title: str = "") -> Svg:
    """The sequence diagram of `trace` (JSON, as `trace_to_json` writes it). `statement` is the
    broken invariant's; `final_state` the fields of the state after the last step (all of them,
    as `state_fields` gives them), listed at the bottom; `sites` the `spec/` line of each step."""
    names = lanes(trace)
    lane_x = {name: MARGIN + STEP_W + LANE_W * (i + 0.5) for i, name in enumerate(names)}
    changes_x = MARGIN + STEP_W + LANE_W * len(names) + 24
    width = changes_x + CHANGES_W + MARGIN
    steps = trace["steps"]
    invariant = trace.get("invariant")
    svg = Svg(title or f"trace: {invariant or 'run'}", STYLE)
    head = svg.group(class_="header")
    model = trace.get("model", {})
    svg.text(head, MARGIN, 24, title or f"{model.get('profile', '?')} on "
             f"{model.get('config', '?')}: {len(steps)} steps", class_="tdx-title")
    y = 42.0
    if invariant:
        where = f"at step {len(steps)}" if steps else "from the start: no run reaches its goal"
        words = f"violates {invariant} {where}" + (f": {statement}" if statement else "")
        for line in textwrap.wrap(words, int((width - 2 * MARGIN) / text_width("x", 12))):
            svg.text(head, MARGIN, y, line, class_="tdx-step tdx-bad")
            y += 16
    svg.text(head, MARGIN, y, "arrows: the actor runs on a CPU, the CPU calls the module "
             "(SEAMCALL), the dashed arrow is the status it answers; red: an error status or "
             "the violating step; orange: an injected fault", class_="tdx-note")
    y += 14
    lanes_top = y + 4
    heads = svg.group(class_="lanes")
    for name, x in lane_x.items():
        svg.rect(heads, x - LANE_W / 2 + 4, lanes_top, LANE_W - 8, 22, class_="lane-head")
        svg.text(heads, x, lanes_top + 15, name, class_="lane-name", text_anchor="middle")
    svg.text(heads, changes_x, lanes_top + 15, "state fields changed", class_="lane-name")
    y = lanes_top + 30
    backs = svg.group(class_="step-backgrounds")
    lifelines = svg.group(class_="lifelines")
    rows = svg.group(class_="steps")
    for number, entry in enumerate(steps, 1):
        y = _row(svg, (backs, rows), entry, number, number == len(steps) and bool(invariant),
                 lane_x, changes_x, width, y, sites[number - 1] if sites and
                 number - 1 < len(sites) else None)
    for x in lane_x.values():
        svg.line(lifelines, x, lanes_top + 22, x, y, class_="lifeline")
    if final_state is not None or steps:
        y = _final_state(svg, steps[-1]["changed"] if steps else {}, final_state, len(steps),
                         invariant, width, y + 14)
    svg.finish(width, y + MARGIN)
    return svg


def _row(svg: Svg, parents: tuple[ET.Element, ET.Element], entry: dict[str, Any],
         number: int, violating: bool, lane_x: dict[str, float], changes_x: float,
         width: float, y: float, site: dict[str, Any] | None) -> float:
    """One step: its background in the first of `parents` (under the lifelines), the rest in
    the second; returns the y below it."""
    step, changed = entry["step"], entry["changed"]
    left = [(f"{number:>2} {step.get('action')}", "tdx-step")]
    detail = step.get("detail") or ""
    for line in textwrap.wrap(detail, int((STEP_W - 16) / text_width("x", 10))):
        left.append((line, "tdx-detail"))
    if site:
        left.append((f"{site['file']}:{site['line']} ({site.get('function') or ''})",
                     "tdx-detail"))
    if violating:
        left.append(("violating step", "tdx-step tdx-bad"))
    changes = _change_lines(changed, CHANGES_W) or [("", "(changes nothing)")]
    height = max(44.0, LINE_H * max(len(left), len(changes)) + 12)
    cls = "step violating" if violating else ("step alt" if number % 2 else "step")
    svg.rect(parents[0], MARGIN - 4, y, width - 2 * MARGIN + 8, height, class_=cls)
    group = svg.group(parents[1], class_="step-row violating-row" if violating else "step-row",
                      data_step=str(number))
    for i, (line, style) in enumerate(left):
        svg.text(group, MARGIN, y + 15 + i * LINE_H, line, class_=style)
    for i, (name, line) in enumerate(changes):
        svg.text(group, changes_x, y + 15 + i * LINE_H, line,
                 class_="tdx-change last" if violating and name else "tdx-change")
    actor = step.get("actor")
    ax = lane_x.get(actor, lane_x["boot"])
    mid = y + 18
    cpu = step.get("cpu")
    cx = lane_x.get(f"cpu {cpu}") if cpu is not None else None
    if cx is not None and abs(cx - ax) > 1:
        _arrow(svg, group, ax, cx - (4 if cx > ax else -4), mid, "arrow")
    caller_x = cx if cx is not None else ax
    for name in changed:  # lanes whose state the step changed
        if name.startswith("cpu ") and name in lane_x:
            svg.rect(group, lane_x[name] - 4, mid + 10, 8, 8, class_="touched",
                     tip=f"{name}: {changed[name][1]}")
    seamcall, result = step.get("seamcall"), step.get("result")
    if seamcall:
        mx = lane_x[MODULE]
        error = _failed(result, True)
        _arrow(svg, group, caller_x, mx - 5, mid, "arrow")
        svg.text(group, mx - 10, mid - 4, seamcall, class_="tdx-call", text_anchor="end")
        _arrow(svg, group, mx, caller_x + 5, mid + 14, "reply error" if error else "reply")
        svg.text(group, mx - 10, mid + 26, str(result), class_="tdx-call error" if error
                 else "tdx-call", text_anchor="end")
    elif result is not None:
        svg.text(group, caller_x + 8, mid + 4, f"-> {result}",
                 class_="tdx-call error" if _failed(result, False) else "tdx-call")
    if "module" in changed:
        mx = lane_x[MODULE]
        new = changed["module"][1]
        w = text_width(new, 9) + 8
        svg.rect(group, mx - w / 2, y + height - 14, w, 12, class_="module-state",
                 tip=f"module: {changed['module'][0]} -> {new}")
        svg.text(group, mx, y + height - 5, new, text_anchor="middle", font_size=9)
    svg.rect(group, ax - 5, mid - 5, 10, 10, class_="actor", rx=2,
             tip=f"{actor}: {step.get('action')}")
    if step.get("injected"):
        svg.path(group, f"M{caller_x + 12:.1f},{mid - 12:.1f} l-5,9 h5 l-4,9 l10,-12 h-5 "
                 "l4,-6 z", class_="injected")
        svg.text(group, caller_x + 22, mid - 4, "injected fault", class_="tdx-call",
                 fill="#7a5200")
    return y + height + 2


def _final_state(svg: Svg, last: dict[str, list[str]], state: dict[str, str] | None,
                 count: int, invariant: str | None, width: float, y: float) -> float:
    """The state the trace ends in: every field when known, else what the last step changed;
    the fields that step changed in red."""
    group = svg.group(class_="final-state")
    fields = state if state is not None else {k: v[1] for k, v in last.items()}
    items = [f"{k}: {v}" for k, v in fields.items()]
    column_w = 360
    columns = max(int((width - 2 * MARGIN) // column_w), 1)
    per_column = -(-len(items) // columns) if items else 0
    height = 30 + LINE_H * per_column + 8
    svg.rect(group, MARGIN - 4, y, width - 2 * MARGIN + 8, height, class_="state-box")
    what = f"state after step {count}" + (f", where {invariant} fails" if invariant else "")
    if state is None:
        what += " (the fields the last step changed)"
    svg.text(group, MARGIN, y + 18, what, class_="tdx-step tdx-bad" if invariant
             else "tdx-step")
    chars = int((column_w - 10) / text_width("x", 10))
    for i, (name, item) in enumerate(zip(fields, items, strict=True)):
        column, row = divmod(i, per_column)
        shown = item if len(item) <= chars else item[:chars - 3] + "..."
        svg.text(group, MARGIN + column * column_w, y + 36 + row * LINE_H, shown,
                 class_="tdx-change last" if name in last else "tdx-change",
                 tip=item if shown != item else None)
    return y + height
