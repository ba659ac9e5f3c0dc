"""The TDMR layout of a machine as an SVG picture (`tdmr INPUT --format svg`).

At the top, the physical address space: the usable memory coloured by NUMA node, and under it,
for each layout drawn (the kernel's, and with `--worst-case` or `--plan` the witness or the
planned one), its TDMRs as numbered spans and its PAMT chunks where they were placed. Below,
each layout in a column of bands, one band per TDMR: its index, span, node and size, its memory,
its reserved areas split into holes and PAMT areas, and how many areas it needs against the
module's limit. The TDMR that ran out of areas is drawn in red.

Sizes on one machine run from a 4 KiB gap to a 767 GiB TDMR, so no linear axis shows both.
Every axis here is piecewise: each stretch between two boundaries (of memory, TDMRs, reserved
areas, PAMT chunks) gets a width that grows with the logarithm of its size, linear inside it,
and stretches of the address space with no memory and no TDMR are cut out as breaks labelled
with their size. The picture says so in its header.
"""

from __future__ import annotations

import math
import textwrap
import xml.etree.ElementTree as ET
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from checker.views.svgdoc import (
    FAIL_COLOUR,
    HOLE_COLOUR,
    NODE_COLOURS,
    PAMT_COLOUR,
    Svg,
    size_text,
    text_width,
)
from checker.views.tdmr_report import TdmrOptions, build
from invariants.layout import layout_from_json
from spec.memory import MemRange
from spec.tdmr import Tdmr, tdmr_get_nid

MAX_BANDS = 256  # bands drawn per layout; a longer list says how many it left out
MARGIN = 16
ROW_LABEL_W = 170  # the overview's row names
COLUMN_W = 780  # one layout's bands
BAND_LABEL_W = 250
BAND_H = 62
BREAK_WEIGHT = 2.5  # an empty stretch of address space, however large

AXIS_NOTE = ("axis: piecewise, not to scale. Each stretch between two boundaries (of memory and "
             "TDMRs; in a TDMR's band also of reserved areas and PAMT chunks) is drawn linearly, "
             "with a width that grows with the logarithm of its size; address space without "
             "memory or TDMRs is cut out (a break, //, labelled with its size on hover). The "
             "addresses printed are exact.")

STYLE = f"""
text {{ fill: #222; }}
.tdx-title {{ font-size: 15px; font-weight: bold; }}
.tdx-note {{ font-size: 11px; fill: #444; }}
.tdx-fail-text {{ fill: {FAIL_COLOUR}; font-weight: bold; }}
.tdx-small {{ font-size: 9px; fill: #555; }}
.tdx-label {{ font-size: 11px; }}
.tdx-head {{ font-size: 12px; font-weight: bold; }}
.tdmr {{ fill: #fff; stroke: #333; stroke-width: 1; }}
.tdmr.failed {{ fill: #fde3d8; stroke: {FAIL_COLOUR}; stroke-width: 2.5; }}
.tdmr-span {{ fill: #f4f4f4; stroke: #333; stroke-width: 1; }}
.tdmr-span.failed {{ fill: #fde3d8; stroke: {FAIL_COLOUR}; stroke-width: 2; }}
.hole {{ fill: {HOLE_COLOUR}; stroke: #666; stroke-width: 0.6; }}
.pamt-area {{ fill: {PAMT_COLOUR}; stroke: #7a5200; stroke-width: 0.6; }}
.pamt-chunk {{ fill: {PAMT_COLOUR}; stroke: #7a5200; stroke-width: 0.6; }}
.break {{ fill: none; stroke: #777; stroke-width: 1.2; }}
.tick {{ stroke: #999; stroke-width: 0.7; }}
"""


@dataclass(frozen=True)
class Layout:
    """One TDMR list to draw: who built it, what each TDMR asks of the module, and where the
    list failed, if it did."""

    name: str
    tdmrs: tuple[Tdmr, ...]
    needed: tuple[int, ...]
    failed: int | None = None
    summary: str = ""


# --- the layouts a report holds ----------------------------------------------------------------


def kernel_layout(report: dict[str, Any]) -> Layout:
    """What the profile's kernel built, as `tdmr` reports it."""
    tdmrs = layout_from_json(report)
    needed = tuple(t.get("reserved_needed", len(t["reserved"])) for t in report["tdmrs"])
    error = report["error"]
    if error:
        summary = f"fails: {error['message'] or 'error'} ({error['errno']})"
    else:
        summary = f"succeeds: {report['pamt_kb']} KB of PAMT"
    return Layout(f"kernel: {report['profile']}, {report['placement']} placement", tdmrs,
                  needed, report["failed_tdmr"], summary)


def plan_layout(report: dict[str, Any]) -> Layout | None:
    """The planner's layout (`--plan`), when it found one."""
    plan = report.get("plan")
    if not plan or plan["status"] != "found":
        return None
    tdmrs = layout_from_json(plan)
    return Layout("plan: fewest TDMRs", tdmrs, tuple(len(t.reserved) for t in tdmrs), None,
                  plan["text"].splitlines()[0])


def witness_layouts(report: dict[str, Any], machine, options: TdmrOptions) -> list[Layout]:
    """The PAMT placements `--worst-case` found to break construction, rebuilt as the kernel
    would build them with its chunks there."""
    layouts = []
    for worst in report.get("worst_case") or ():
        if worst["status"] != "breaks":
            continue
        bases = {int(i): int(base, 16) for i, base in worst["witness"].items()}
        placed, _ = build(replace(machine, pamt_bases=bases), replace(options, placement=None))
        layouts.append(Layout(f"worst case ({worst['mode']}): chunks placed to break",
                              placed.tdmrs, tuple(d.total for d in placed.demand),
                              placed.failed_tdmr, worst["text"].split("): ", 1)[-1]))
    return layouts


def report_layouts(report: dict[str, Any], machine=None,
                   options: TdmrOptions | None = None) -> list[Layout]:
    """The kernel's layout, then any worst-case witness (needs the machine and options it was
    found with) and the plan the report holds."""
    layouts = [kernel_layout(report)]
    if machine is not None and options is not None:
        layouts += witness_layouts(report, machine, options)
    plan = plan_layout(report)
    if plan is not None:
        layouts.append(plan)
    return layouts


# --- the axis ----------------------------------------------------------------------------------


def _weight(size: int) -> float:
    """Drawn width of a stretch of `size` bytes, in units: 2 for 4 KiB, one more per doubling."""
    return 2.0 + math.log2(max(size, 4096) / 4096)


class Axis:
    """Addresses to x: stretch i, from `points[i]` to `points[i + 1]`, is drawn linearly over a
    width proportional to its weight (`_weight`, or `BREAK_WEIGHT` for the stretches in
    `cut`)."""

    def __init__(self, points: Iterable[int], x0: float, width: float,
                 cut: frozenset[int] = frozenset()) -> None:
        self.points = sorted(set(points))
        self.cut = cut
        pairs = list(pairwise(self.points))
        weights = [BREAK_WEIGHT if i in cut else _weight(b - a) for i, (a, b) in enumerate(pairs)]
        scale = width / sum(weights) if weights else 0.0
        self.xs = [x0]
        for weight in weights:
            self.xs.append(self.xs[-1] + weight * scale)

    def x(self, address: int) -> float:
        if len(self.points) < 2:
            return self.xs[0]
        i = min(max(bisect_right(self.points, address) - 1, 0), len(self.points) - 2)
        a, b = self.points[i], self.points[i + 1]
        share = min(max((address - a) / (b - a), 0.0), 1.0)
        return self.xs[i] + share * (self.xs[i + 1] - self.xs[i])

    def stretches(self) -> Iterable[tuple[int, int, int, float, float]]:
        """(index, start, end, x of start, x of end) of every stretch."""
        for i, (a, b) in enumerate(pairwise(self.points)):
            yield i, a, b, self.xs[i], self.xs[i + 1]


def _covering(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _inside(merged: list[tuple[int, int]], address: int) -> bool:
    i = bisect_right(merged, (address, math.inf)) - 1
    return i >= 0 and merged[i][0] <= address < merged[i][1]


def overview_axis(memory: Sequence[MemRange], layouts: Sequence[Layout], x0: float,
                  width: float) -> Axis:
    """The whole address space: boundaries of memory and TDMRs (PAMT chunks are marked where
    they fall, not made boundaries, so TDMRs of a size get about the same width); the
    stretches with neither memory nor a TDMR of any layout are breaks."""
    spans = [(m.start, m.end) for m in memory]
    spans += [(t.base, t.end) for layout in layouts for t in layout.tdmrs]
    points = sorted({p for span in spans for p in span})
    merged = _covering(spans)
    cut = frozenset(i for i, a in enumerate(points[:-1]) if not _inside(merged, a))
    return Axis(points, x0, width, cut)


def band_axis(tdmr: Tdmr, memory: Sequence[MemRange], x0: float, width: float) -> Axis:
    """One TDMR: its edges, the memory and reserved areas inside it, its own PAMT chunk."""
    points = {tdmr.base, tdmr.end}
    for m in memory:
        points.update(p for p in (m.start, m.end) if tdmr.base < p < tdmr.end)
    for area in tdmr.reserved:
        start = tdmr.base + area.offset
        points.update(p for p in (start, start + area.size) if tdmr.base < p < tdmr.end)
    if tdmr.pamt_size:
        points.update(p for p in (tdmr.pamt_base, tdmr.pamt_end) if tdmr.base < p < tdmr.end)
    return Axis(points, x0, width)


# --- drawing -----------------------------------------------------------------------------------


def _span(start: int, end: int) -> str:
    return f"[{start:#x}, {end:#x})"


def _wrap(text: str, width: float, size: float) -> list[str]:
    return textwrap.wrap(text, max(int(width / text_width("x", size)), 20)) or [""]


def _ticks(svg: Svg, parent: ET.Element, axis: Axis, addresses: Iterable[int], y: float,
           tick_top: float) -> None:
    """Address labels at boundaries, left to right, each where it does not overlap the last;
    a tick line at every boundary."""
    placed_until = -math.inf
    wanted = sorted(set(addresses))
    last_x = axis.x(wanted[-1]) if wanted else 0.0
    for address in wanted:
        x = axis.x(address)
        svg.line(parent, x, tick_top, x, y - 8, class_="tick")
        label = f"{address:#x}"
        w = text_width(label, 8.5)
        left = x - w / 2
        if address == wanted[-1]:
            left = x - w
        elif left + w > last_x - text_width(f"{wanted[-1]:#x}", 8.5) - 4:
            continue  # keep room for the last boundary's label
        if left >= placed_until + 4:
            svg.text(parent, left, y, label, class_="tdx-small")
            placed_until = left + w


def _break_mark(svg: Svg, parent: ET.Element, x0: float, x1: float, y: float, h: float,
                size: int) -> None:
    mid = (x0 + x1) / 2
    svg.path(parent, f"M{mid - 4:.1f},{y + h:.1f} L{mid - 1:.1f},{y:.1f} "
             f"M{mid + 1:.1f},{y + h:.1f} L{mid + 4:.1f},{y:.1f}", class_="break")
    group = parent
    svg.rect(group, x0, y, x1 - x0, h, tip=f"break: {size_text(size)} without memory or TDMRs",
             fill="transparent")


def _legend(svg: Svg, parent: ET.Element, nodes: Sequence[int], y: float) -> None:
    x = MARGIN
    items = [(NODE_COLOURS[n % len(NODE_COLOURS)], f"memory, node {n}", None) for n in nodes]
    items += [(HOLE_COLOUR, "reserved: hole", "hole"), (PAMT_COLOUR, "reserved: PAMT area",
                                                        "pamt-area"),
              ("#fde3d8", "TDMR out of reserved areas", None)]
    for colour, words, _ in items:
        svg.rect(parent, x, y - 9, 12, 10, fill=colour, stroke="#555", stroke_width=0.6)
        svg.text(parent, x + 16, y, words, class_="tdx-label")
        x += 16 + text_width(words, 11) + 18


def _pamt_owner(layout: Layout, start: int, end: int) -> int | None:
    for j, other in enumerate(layout.tdmrs):
        if other.pamt_size and other.pamt_base < end and start < other.pamt_end:
            return j
    return None


def _tdmr_of(layout: Layout, address: int) -> int | None:
    for j, t in enumerate(layout.tdmrs):
        if t.base <= address < t.end:
            return j
    return None


def _band(svg: Svg, parent: ET.Element, layout: Layout, i: int, memory: Sequence[MemRange],
          limit: int, x0: float, y: float) -> None:
    """One TDMR: label on the left, its own piecewise axis on the right."""
    t = layout.tdmrs[i]
    failed = i == layout.failed
    group = svg.group(parent, class_="band failed-band" if failed else "band",
                      data_tdmr=str(i))
    nid = tdmr_get_nid(t, tuple(memory), []) if memory else 0
    needed = layout.needed[i] if i < len(layout.needed) else len(t.reserved)
    svg.text(group, x0, y + 16, f"TDMR {i}  node {nid}  {size_text(t.size)}", class_="tdx-head")
    svg.text(group, x0, y + 30, _span(t.base, t.end), class_="tdx-label")
    count = f"reserved {needed} of {limit}"
    if failed:
        svg.text(group, x0, y + 44, f"{count}  <- fails here", class_="tdx-label tdx-fail-text")
    else:
        svg.text(group, x0, y + 44, count, class_="tdx-label")
    if t.pamt_size:
        home = _tdmr_of(layout, t.pamt_base)
        where = "here" if home == i else (f"in TDMR {home}" if home is not None
                                          else "outside every TDMR")
        svg.text(group, x0, y + 57, f"PAMT {size_text(t.pamt_size)} {where}",
                 class_="tdx-small")
    bx = x0 + BAND_LABEL_W
    bw = COLUMN_W - BAND_LABEL_W - 24
    axis = band_axis(t, memory, bx, bw)
    svg.rect(group, bx, y + 6, bw, 32, class_="tdmr failed" if failed else "tdmr",
             tip=f"TDMR {i} {_span(t.base, t.end)}, {size_text(t.size)}: {count}"
             + (" (more than the module allows)" if needed > limit else ""))
    for m in memory:
        if m.end <= t.base or m.start >= t.end:
            continue
        a, b = max(m.start, t.base), min(m.end, t.end)
        svg.rect(group, axis.x(a), y + 7, axis.x(b) - axis.x(a), 8, class_="memory",
                 fill=NODE_COLOURS[m.nid % len(NODE_COLOURS)],
                 tip=f"memory {_span(m.start, m.end)} node {m.nid}, {size_text(m.size)}")
    for area in t.reserved:
        a = t.base + area.offset
        b = a + area.size
        x1, x2 = axis.x(a), axis.x(b)
        if area.kind == "pamt":
            owner = _pamt_owner(layout, a, b)
            tip = f"PAMT area {_span(a, b)}, {size_text(area.size)}" + (
                f": PAMT of TDMR {owner}" if owner is not None else "")
        else:
            tip = f"hole {_span(a, b)}, {size_text(area.size)}"
        svg.rect(group, x1, y + 17, max(x2 - x1, 1.5), 20,
                 class_="pamt-area" if area.kind == "pamt" else "hole", tip=tip)
    edges = [t.base, t.end] + [t.base + a.offset for a in t.reserved]
    _ticks(svg, group, axis, edges, y + 50, y + 38)


def _overview(svg: Svg, parent: ET.Element, memory: Sequence[MemRange],
              layouts: Sequence[Layout], limit: int, width: float, y: float) -> float:
    """The address space and, per layout, its TDMRs and PAMT chunks; returns the y below."""
    x0 = MARGIN + ROW_LABEL_W
    axis = overview_axis(memory, layouts, x0, width - x0 - MARGIN)
    group = svg.group(parent, class_="overview")
    svg.text(group, MARGIN, y + 15, "memory", class_="tdx-head")
    for index, a, b, xa, xb in axis.stretches():
        if index in axis.cut:
            _break_mark(svg, group, xa, xb, y, 20, b - a)
    for m in memory:
        svg.rect(group, axis.x(m.start), y, axis.x(m.end) - axis.x(m.start), 20,
                 class_="memory", fill=NODE_COLOURS[m.nid % len(NODE_COLOURS)],
                 tip=f"memory {_span(m.start, m.end)} node {m.nid}, {size_text(m.size)}")
    y += 28
    for layout in layouts:
        name = layout.name.split(":")[0]
        svg.text(group, MARGIN, y + 13, name, class_="tdx-head")
        row = svg.group(group, class_="overview-row")
        for i, t in enumerate(layout.tdmrs):
            xa, xb = axis.x(t.base), axis.x(t.end)
            failed = i == layout.failed
            needed = layout.needed[i] if i < len(layout.needed) else len(t.reserved)
            svg.rect(row, xa, y, xb - xa, 18, class_="tdmr-span failed" if failed
                     else "tdmr-span", tip=f"TDMR {i} {_span(t.base, t.end)}, "
                     f"{size_text(t.size)}, reserved {needed} of {limit}")
            if text_width(str(i), 10) + 4 < xb - xa:
                svg.text(row, (xa + xb) / 2, y + 13, str(i), text_anchor="middle",
                         class_="tdx-label")
            if t.pamt_size:
                pa, pb = axis.x(t.pamt_base), axis.x(t.pamt_end)
                svg.rect(row, pa, y + 19, max(pb - pa, 2.0), 6, class_="pamt-chunk",
                         tip=f"PAMT chunk of TDMR {i}: {_span(t.pamt_base, t.pamt_end)}, "
                         f"{size_text(t.pamt_size)}")
        y += 30
    edges = [m.start for m in memory] + [m.end for m in memory]
    edges += [p for t in layouts[0].tdmrs for p in (t.base, t.end)] if layouts else []
    _ticks(svg, group, axis, edges, y + 8, y - 4)
    return y + 20


def layout_svg(report: dict[str, Any], layouts: Sequence[Layout] | None = None) -> Svg:
    """The picture of a `tdmr` report (`checker.views.tdmr_report.analyse`), with the layouts
    given (default: the kernel's, and the plan when the report has one) in columns."""
    if layouts is None:
        layouts = report_layouts(report)
    memory = [MemRange(m["start"], m["end"], m["nid"]) for m in report["memory"]]
    meta = report["metadata"]
    limit = meta["max_reserved_per_tdmr"]
    width = 2 * MARGIN + max(len(layouts), 1) * COLUMN_W
    svg = Svg(f"TDMR layout of {report['input']['file']}", STYLE)
    top = svg.group(class_="header")
    svg.text(top, MARGIN, 24, f"TDMR layout of {report['input']['file']}", class_="tdx-title")
    lines = [f"profile {report['profile']} ({report['holes']} holes), {report['placement']} "
             f"placement; limits {meta['max_tdmrs']} TDMRs, {limit} reserved areas per TDMR"]
    y = 42
    for line in lines + _wrap(AXIS_NOTE, width - 2 * MARGIN, 11):
        svg.text(top, MARGIN, y, line, class_="tdx-note")
        y += 15
    kernel = layouts[0] if layouts else None
    if kernel is not None:
        verdict = kernel.summary
        if report.get("explanation"):
            verdict += f": {report['explanation']}"
        for line in _wrap(verdict, width - 2 * MARGIN, 12):
            svg.text(top, MARGIN, y + 2, line,
                     class_="tdx-head tdx-fail-text" if report["error"] else "tdx-head")
            y += 16
    y += 8
    _legend(svg, top, sorted({m.nid for m in memory}), y)
    y += 16
    if memory:
        y = _overview(svg, svg.root, memory, layouts, limit, width, y)
    bottom = y
    for c, layout in enumerate(layouts):
        x0 = MARGIN + c * COLUMN_W
        column = svg.group(class_="layout", data_layout=layout.name)
        cy = y + 10
        svg.text(column, x0, cy + 12, layout.name, class_="tdx-head")
        for line in _wrap(layout.summary, COLUMN_W - 24, 11):
            cy += 15
            svg.text(column, x0, cy + 12, line,
                     class_="tdx-note tdx-fail-text" if layout.failed is not None
                     else "tdx-note")
        cy += 22
        for i in range(min(len(layout.tdmrs), MAX_BANDS)):
            _band(svg, column, layout, i, memory, limit, x0, cy)
            cy += BAND_H
        if len(layout.tdmrs) > MAX_BANDS:
            svg.text(column, x0, cy + 14, f"... {len(layout.tdmrs) - MAX_BANDS} more TDMRs not "
                     "drawn", class_="tdx-note")
            cy += 24
        bottom = max(bottom, cy)
    svg.finish(width, bottom + MARGIN)
    return svg
