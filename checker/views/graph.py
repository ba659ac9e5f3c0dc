"""The reachable state graph as a networkx DiGraph, written as GraphML or DOT.

Two views: the whole graph of a small configuration (`state_graph`), or the states of one
trace and the states one step away from them (`trace_graph`), which stays small on any
configuration. In both, a state that breaks an invariant carries `violating` (true) and
`violates` (the invariants' ids, comma-separated): a state property false there, or a
transition property broken by a step into it, or, on a whole graph explored to the end, an
"eventually" property whose goal it can no longer reach (an initial state, for a "reachable"
one). The steps that break a transition property carry the same two attributes. DOT draws
them red.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import networkx as nx

from checker.engines.bfs import GOAL_KINDS
from checker.engines.explorer import Bounds, Trace, explore
from checker.files import write_text_atomic
from checker.views.trace import step_text

GRAPH_BOUNDS = Bounds(max_states=20_000)  # graphs beyond this are unreadable anyway


def _state_label(model, state) -> str:
    fields = getattr(model, "state_fields", None)
    return "\n".join(f"{k}: {v}" for k, v in fields(state).items()) if fields else str(state)


def state_graph(model, bounds: Bounds = GRAPH_BOUNDS, symmetry: bool = True,
                properties=()) -> nx.DiGraph:
    """Explore `model` and return its graph: node ids in BFS order with a `label` (the state's
    fields, one per line) and `initial` flag; edges carry the step text as `label`. States
    and steps that break one of `properties` are marked (see the module docstring).

    The graph attribute `exhaustive` says whether the bounds cut the exploration short.
    """
    result = explore(model, properties, bounds, symmetry, stop_at_first=False, keep_graph=True)
    exhaustive = result.bound_hit is None
    graph = nx.DiGraph(model=getattr(model, "name", type(model).__name__),
                       exhaustive=exhaustive)
    initial = set(result.graph.initial)
    states = result.graph.states
    for ident, state in enumerate(states):
        graph.add_node(ident, label=_state_label(model, state), initial=ident in initial)
    for src, label, dst in result.graph.edges:
        text = step_text(label)
        if graph.has_edge(src, dst):
            graph.edges[src, dst]["label"] += "\n" + text
        else:
            graph.add_edge(src, dst, label=text)
    canon = model.canonical if symmetry else _same
    index = {state: ident for ident, state in enumerate(states)}
    steps = ((src, label, nxt, index.get(canon(nxt))) for src, state in enumerate(states)
             for label, nxt in _successors(model, state, properties))
    _mark(graph, {i: s for i, s in enumerate(states)}, steps, properties)
    if exhaustive:
        _mark_stuck(graph, states, properties)
    return graph


def trace_graph(model, trace: Trace, properties=(), symmetry: bool = True) -> nx.DiGraph:
    """The states of `trace` (attribute `trace_step`: the step that reached it, 0 for the
    initial state) and every state one step from them, with the trace's own steps marked
    `on_trace`. Node 0 is the trace's initial state. The last state is marked as breaking the
    trace's invariant, whatever its kind."""
    canon = model.canonical if symmetry else _same
    ids: dict = {}
    concrete: dict[int, object] = {}
    graph = nx.DiGraph(model=getattr(model, "name", type(model).__name__), exhaustive=False,
                       trace_of=trace.invariant or "")

    def node(state) -> int:
        key = canon(state)
        if key not in ids:
            ids[key] = len(ids)
            concrete[ids[key]] = state
            graph.add_node(ids[key], label=_state_label(model, state), initial=False,
                           on_trace=False, trace_step=-1)
        return ids[key]

    path = trace.states
    for step, state in enumerate(path):
        ident = node(state)
        graph.nodes[ident].update(on_trace=True, initial=step == 0)
        if graph.nodes[ident]["trace_step"] < 0:
            graph.nodes[ident]["trace_step"] = step
    steps = []
    for position, state in enumerate(path):
        src = node(state)
        taken = trace.steps[position] if position < len(trace.steps) else None
        for label, nxt in model.successors(state):
            dst = node(nxt)
            on_trace = taken is not None and label == taken[0] and nxt == taken[1]
            text = step_text(label)
            if graph.has_edge(src, dst):
                edge = graph.edges[src, dst]
                edge["label"] += "\n" + text
                edge["on_trace"] = edge["on_trace"] or on_trace
            else:
                graph.add_edge(src, dst, label=text, on_trace=on_trace)
            steps.append((src, label, nxt, dst))
    _mark(graph, concrete, steps, properties)
    if trace.invariant:
        last = ids[canon(path[-1])]
        _add_violation(graph.nodes[last], trace.invariant)
        if trace.steps:
            _add_violation(graph.edges[ids[canon(path[-2])], last], trace.invariant)
    return graph


def _same(state):
    return state


def _successors(model, state, properties):
    """The steps out of a state, when some transition property needs to see them."""
    if any(p.kind == "transition" for p in properties):
        return model.successors(state)
    return ()


def _add_violation(data: dict, invariant: str) -> None:
    ids = [i for i in data.get("violates", "").split(",") if i]
    if invariant not in ids:
        ids.append(invariant)
    data["violates"] = ",".join(ids)
    data["violating"] = True


def _mark(graph: nx.DiGraph, states: dict[int, object], steps: Iterable[tuple],
          properties: Sequence) -> None:
    """`violating`/`violates` on every node and on the steps that break a transition
    property (`steps`: source id, label, next state, target id)."""
    for ident in graph.nodes:
        graph.nodes[ident].setdefault("violates", "")
        graph.nodes[ident].setdefault("violating", False)
    for prop in properties:
        if prop.kind != "state":
            continue
        for ident, state in states.items():
            if not prop.check(state):
                _add_violation(graph.nodes[ident], prop.id)
    moves = [p for p in properties if p.kind == "transition"]
    for src, label, nxt, dst in steps:
        for prop in moves:
            if dst is not None and not prop.check(states[src], label, nxt):
                _add_violation(graph.nodes[dst], prop.id)
                if graph.has_edge(src, dst):
                    _add_violation(graph.edges[src, dst], prop.id)


def _mark_stuck(graph: nx.DiGraph, states: Sequence, properties: Sequence) -> None:
    """On a whole graph: the states from which an "eventually" property's goal is
    unreachable, and the initial states from which a "reachable" property's is."""
    for prop in properties:
        if prop.kind not in GOAL_KINDS:
            continue
        goals = [i for i, state in enumerate(states) if prop.check(state)]
        reach = set(goals)
        for goal in goals:
            reach |= nx.ancestors(graph, goal)
        judged = [i for i in graph.nodes if prop.kind == "eventually" or graph.nodes[i]["initial"]]
        for ident in judged:
            if ident not in reach:
                _add_violation(graph.nodes[ident], prop.id)


def graphml_text(graph: nx.DiGraph) -> str:
    return '<?xml version="1.0" encoding="utf-8"?>\n' + "\n".join(nx.generate_graphml(graph)) \
        + "\n"


def to_graphml(graph: nx.DiGraph, path) -> None:
    """Write the graph as GraphML, in one rename (see `checker.files`)."""
    write_text_atomic(path, graphml_text(graph))


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\l") + '"'


def _dot_marks(data: dict) -> str:
    """DOT attributes of the marks: the trace in bold, what breaks an invariant in red."""
    marks = ""
    if data.get("on_trace"):
        marks += ", penwidth=2.5"
    if data.get("violating"):
        marks += (", color=red, fontcolor=red, violating=true, "
                  f"violates={_dot_quote(data['violates'])}")
    return marks


def to_dot(graph: nx.DiGraph) -> str:
    """DOT text (no pydot needed); initial states are drawn bold, a trace's states filled."""
    lines = [f"digraph {_dot_quote(str(graph.graph.get('model', 'model')))} {{",
             "  node [shape=box, fontname=monospace];"]
    for node, data in graph.nodes(data=True):
        style = ["bold"] if data.get("initial") else []
        if data.get("on_trace"):
            style.append("filled")
        attrs = ""
        if style:
            attrs = ", style=" + (style[0] if len(style) == 1 else _dot_quote(",".join(style)))
        if data.get("on_trace"):
            attrs += f', fillcolor="#fff3c4", trace_step={data["trace_step"]}'
        lines.append(f"  n{node} [label={_dot_quote(data.get('label', str(node)))}{attrs}"
                     f"{_dot_marks(data)}];")
    for src, dst, data in graph.edges(data=True):
        lines.append(f"  n{src} -> n{dst} [label={_dot_quote(data.get('label', ''))}"
                     f"{_dot_marks(data)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
