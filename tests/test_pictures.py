"""The pictures: TDMR layouts and counterexample traces as SVG, and the state graph's marks.
Every SVG is parsed as XML; the tests count its elements by class, as a reader would count the
bands, holes and PAMT areas on the screen."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import networkx as nx
import pytest

from checker.cli import main
from checker.inputs.platforms import flow_model, model_from_description
from checker.views.graph import graphml_text, state_graph, to_dot, trace_graph
from checker.views.svg_trace import trace_svg
from checker.views.trace import replay
from invariants.flow import flow_invariants

ROOT = Path(__file__).parent.parent
LOGS = ROOT / "checker" / "data" / "boot-logs"
FAILING_LOG = LOGS / "emr-fcp-e820-first-2g.log"  # one 2 GiB TDMR, 17 holes in 300 MiB
WITH_CMR = ROOT / "checker" / "data" / "maps" / "emr-fcp-e820-first-2g-with-cmr.log"
BIG = ROOT / "docs" / "pictures" / "3tib-4node.json"  # 3 TiB, four 767 GiB TDMRs
CORPUS = ROOT / "counterexamples"
LP_INIT = CORPUS / "flow--bug-lp-init-irq-reentry--default-400376b39d.json"
PAMT_RESET = CORPUS / "flow--bug-pamt-freed-without-reset--default-acc57e3b8c.json"
SVG = "{http://www.w3.org/2000/svg}"


def classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def find(root: ET.Element, cls: str) -> list[ET.Element]:
    return [e for e in root.iter() if cls in classes(e)]


def texts(root: ET.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{SVG}text")]


def tdmr_svg(capsys, tmp_path, *args) -> tuple[int, ET.Element, dict]:
    """`tdmr ... --format svg --output FILE`, parsed, with the same run's JSON report."""
    out = tmp_path / "layout.svg"
    code = main(["tdmr", *map(str, args), "--format", "svg", "--output", str(out)])
    assert capsys.readouterr().out == ""  # the picture went to the file
    assert main(["tdmr", *map(str, args), "--format", "json"]) == code
    report = json.loads(capsys.readouterr().out)
    root = ET.parse(out).getroot()
    assert root.tag == f"{SVG}svg"
    return code, root, report


def layouts(root: ET.Element) -> list[ET.Element]:
    return find(root, "layout")


def band_widths(layout: ET.Element, cls: str) -> list[tuple[float, float]]:
    return [(float(r.get("x")), float(r.get("width"))) for r in find(layout, cls)]


def test_the_failing_tdmr_is_one_red_band_with_a_mark_per_hole_and_pamt_area(capsys, tmp_path):
    code, root, report = tdmr_svg(capsys, tmp_path, FAILING_LOG)
    assert code == 1
    [kernel] = layouts(root)
    tdmr = report["tdmrs"][0]
    kinds = [a["kind"] for a in tdmr["reserved"]]
    assert len(find(kernel, "band")) == len(report["tdmrs"]) == 1
    assert len(find(kernel, "hole")) == kinds.count("hole") == 17
    assert len(find(kernel, "pamt-area")) == kinds.count("pamt") == 1
    [failed] = find(kernel, "failed-band")
    assert failed.get("data-tdmr") == "0"
    assert len(find(failed, "failed")) == 1  # the TDMR's bar itself, drawn red
    assert any("reserved 18 of 16" in t and "fails here" in t for t in texts(failed))
    words = " ".join(texts(root))
    assert "axis: piecewise, not to scale" in words
    assert "reserved areas exhausted" in words


def test_seventeen_holes_within_300_mib_of_a_2_gib_tdmr_are_each_visible(capsys, tmp_path):
    _, root, _ = tdmr_svg(capsys, tmp_path, FAILING_LOG)
    marks = sorted(band_widths(layouts(root)[0], "hole") + band_widths(layouts(root)[0],
                                                                        "pamt-area"))
    assert all(width >= 1.5 for _, width in marks)
    # side by side, never on top of each other: a reader can count them
    assert all(x1 + w1 <= x2 + 0.1 for (x1, w1), (x2, _) in zip(marks, marks[1:], strict=False))
    [bar] = find(layouts(root)[0], "tdmr")
    smallest = min(width for _, width in marks)
    assert smallest >= float(bar.get("width")) / 200  # a 32 KiB hole of 2 GiB: 1/65536 linear


def test_a_3_tib_machine_with_767_gib_tdmrs_keeps_its_64_mib_holes_visible(capsys, tmp_path):
    code, root, report = tdmr_svg(capsys, tmp_path, BIG)
    assert code == 0
    [kernel] = layouts(root)
    assert [t["size"] >> 30 for t in report["tdmrs"]] == [2, 767, 767, 767, 767]
    assert len(find(kernel, "band")) == 5 and not find(kernel, "failed-band")
    holes = sum(a["kind"] == "hole" for t in report["tdmrs"] for a in t["reserved"])
    assert len(find(kernel, "hole")) == holes
    for band in find(kernel, "band")[1:]:  # a 64 MiB hole at the top of 767 GiB
        [bar] = find(band, "tdmr")
        [hole] = find(band, "hole")
        assert float(hole.get("width")) >= float(bar.get("width")) / 20
    # the overview: the four nodes' memory in four colours, every PAMT chunk marked
    overview = find(root, "overview")[0]
    assert len({r.get("fill") for r in find(overview, "memory")}) == 4
    assert len(find(overview, "pamt-chunk")) == 5


def test_plan_is_drawn_beside_the_kernels_layout(capsys, tmp_path):
    code, root, report = tdmr_svg(capsys, tmp_path, WITH_CMR, "--plan")
    assert code == 1
    kernel, plan = layouts(root)
    assert kernel.get("data-layout").startswith("kernel")
    assert plan.get("data-layout").startswith("plan")
    assert len(find(plan, "band")) == report["plan"]["tdmr_count"] == 2
    assert not find(plan, "failed-band") and find(kernel, "failed-band")
    assert float(find(plan, "tdmr")[0].get("x")) > float(find(kernel, "tdmr")[0].get("x"))
    assert len(find(root, "overview-row")) == 2  # both over the same address axis


def test_a_worst_case_witness_is_drawn_with_its_failing_tdmr(capsys, tmp_path):
    code, root, report = tdmr_svg(capsys, tmp_path, CORPUS / "placement-breaks-8889f40ada.json",
                                  "--worst-case")
    assert code == 1
    broken = [w for w in report["worst_case"] if w["status"] == "breaks"]
    assert broken
    drawn = layouts(root)
    assert len(drawn) == 1 + len(broken)
    for layout, worst in zip(drawn[1:], broken, strict=True):
        assert layout.get("data-layout").startswith(f"worst case ({worst['mode']})")
        [failed] = find(layout, "failed-band")
        assert failed.get("data-tdmr") == str(worst["failed_tdmr"])


def test_tdmr_html_is_the_picture_above_the_text(capsys, tmp_path):
    out = tmp_path / "layout.html"
    assert main(["tdmr", str(FAILING_LOG), "--format", "html", "--output", str(out)]) == 1
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.index("<svg") < page.index("result: v6.8 fails")
    assert "src=" not in page and "href=\"http" not in page


def test_names_with_markup_characters_keep_the_svg_well_formed(capsys, tmp_path):
    odd = tmp_path / "a&b<c>.json"
    shutil.copy(BIG, odd)
    _, root, _ = tdmr_svg(capsys, tmp_path, odd)
    assert any("a&b<c>.json" in t for t in texts(root))


def test_a_log_without_a_memory_map_has_no_layout_to_draw(capsys, tmp_path):
    out = tmp_path / "x.svg"
    assert main(["tdmr", str(LOGS / "r760-module-not-loaded.log"), "--format", "svg",
                 "--output", str(out)]) == 2
    assert "no memory map" in capsys.readouterr().err
    assert not out.exists()


# --- traces ----------------------------------------------------------------------------------


def stored_trace(path: Path) -> dict:
    return json.loads(path.read_text())["counterexample"]


def test_a_trace_is_a_row_per_step_across_lanes_with_the_violating_step_in_red(tmp_path,
                                                                               capsys):
    out = tmp_path / "trace.svg"
    assert main(["replay", str(LP_INIT), "--format", "svg", "--output", str(out)]) == 1
    root = ET.parse(out).getroot()
    trace = stored_trace(LP_INIT)["trace"]
    rows = find(root, "step-row")
    assert [r.get("data-step") for r in rows] == [str(i) for i in range(1, 8)]
    assert find(root, "violating-row") == [rows[-1]]
    lanes = [t.text for t in find(root, "lane-name")]
    assert lanes == ["boot", "caller 0", "caller 1", "cpu 0", "cpu 1", "cpu 2", "cpu 3",
                     "TDX module", "state fields changed"]
    last = texts(rows[-1])
    assert "TDH.SYS.LP.INIT" in last and "TDX_SYS_LP_INIT_DONE" in last
    assert any(t.startswith(" 7 tdx_cpu_enable") for t in last)
    for name in trace["steps"][-1]["changed"]:  # every changed field, beside its step
        assert any(t.startswith(f"{name}: ") for t in last)
    header = " ".join(texts(find(root, "header")[0]))
    assert "violates SEAMCALL-ACCEPTED at step 7" in header
    final = " ".join(texts(find(root, "final-state")[0]))
    assert "cpu 0: online vmx 0x3 lp-flag lp-init visited 0x3" in final
    assert "module: SYSINIT_DONE" in final  # every field, not only the changed ones


def test_a_trace_of_no_steps_says_its_goal_is_out_of_reach_from_the_start():
    trace = {**stored_trace(PAMT_RESET)["trace"], "steps": [], "length": 0,
             "invariant": "TDX-USABLE"}
    header = " ".join(texts(find(ET.fromstring(trace_svg(trace).element()), "header")[0]))
    assert "violates TDX-USABLE from the start: no run reaches its goal" in header
    assert "at step" not in header


def test_an_injected_fault_is_marked_on_its_step():
    trace = stored_trace(PAMT_RESET)["trace"]
    root = ET.fromstring(trace_svg(trace).element())
    injected = [i for i, s in enumerate(trace["steps"], 1) if s["step"]["injected"]]
    assert injected
    rows = {r.get("data-step"): r for r in find(root, "step-row")}
    for number in injected:
        assert find(rows[str(number)], "injected")
        assert "injected fault" in texts(rows[str(number)])
    assert sum(len(find(r, "injected")) for r in rows.values()) == len(injected)


def test_replay_html_is_one_self_contained_page(tmp_path, capsys):
    out = tmp_path / "trace.html"
    assert main(["replay", str(LP_INIT), "--format", "html", "--output", str(out)]) == 1
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<svg" in page
    assert "violates SEAMCALL-ACCEPTED after 7 steps" in page  # the text, under the picture
    assert "src=" not in page and "href=\"http" not in page and "@import" not in page


# --- graphs -----------------------------------------------------------------------------------


def test_graph_of_a_trace_keeps_its_states_and_neighbours_and_marks_the_violation():
    data = stored_trace(LP_INIT)["trace"]
    flow = model_from_description(data["model"])
    run = replay(flow, data)
    graph = trace_graph(flow, run, flow_invariants(flow))
    on_trace = sorted(n for n, on in graph.nodes(data="on_trace") if on)
    assert graph.nodes[0]["initial"] and graph.nodes[0]["trace_step"] == 0
    assert len(on_trace) == len(run.steps) + 1
    assert sum(on for *_, on in graph.edges(data="on_trace")) == len(run.steps)
    last = max(on_trace, key=lambda n: graph.nodes[n]["trace_step"])
    assert graph.nodes[last]["violating"]
    assert "SEAMCALL-ACCEPTED" in graph.nodes[last]["violates"].split(",")
    assert graph.number_of_nodes() > len(on_trace)  # the neighbours
    dot = to_dot(graph)
    assert 'violates="SEAMCALL-ACCEPTED"' in dot and "violating=true" in dot
    parsed = nx.parse_graphml(graphml_text(graph))
    assert parsed.nodes[str(last)]["violating"] is True


def test_whole_graph_marks_exactly_the_states_that_break_an_invariant():
    flow = flow_model("bug-sysinit-failure-not-cached", "1x1")
    properties = flow_invariants(flow)
    graph = state_graph(flow, properties=properties)
    known = {p.id for p in properties}
    marked = [n for n, v in graph.nodes(data="violating") if v]
    assert marked
    for node in marked:
        assert set(graph.nodes[node]["violates"].split(",")) <= known
    assert all(graph.nodes[n]["violates"] == "" for n in graph.nodes if n not in marked)


def test_graph_cli_trace_takes_its_model_from_the_file(tmp_path, capsys):
    out = tmp_path / "g.graphml"
    assert main(["graph", "--trace", str(LP_INIT), "--format", "graphml", "--output",
                 str(out)]) == 0
    assert "1 break an invariant" in capsys.readouterr().err
    graph = nx.read_graphml(out)
    assert sum(v for _, v in graph.nodes(data="violating")) == 1
    assert main(["graph", "--trace", str(LP_INIT), "--config", "1x1"]) == 2
    assert "leave out --profile, --config" in capsys.readouterr().err
    assert main(["graph", "--trace", str(CORPUS / "rsvd-exhausted-fee18a4238.json")]) == 2
    assert "no states to graph" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["tdmr", str(BIG)], ["replay", str(LP_INIT)],
                                     ["graph", "--config", "1x1"]])
def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, capsys,
                                                                     command):
    assert main([*command, "--output", str(tmp_path / "missing" / "out")]) == 2
    assert "cannot write --output" in capsys.readouterr().err
