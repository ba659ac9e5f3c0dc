"""The reachable state graph as a networkx DiGraph, written as GraphML or DOT."""

from __future__ import annotations

import networkx as nx

from checker.engines.explorer import Bounds, explore
from checker.files import write_text_atomic
from checker.views.trace import step_text

GRAPH_BOUNDS = Bounds(max_states=20_000)  # graphs beyond this are unreadable anyway


def state_graph(model, bounds: Bounds = GRAPH_BOUNDS, symmetry: bool = True,
                properties=()) -> nx.DiGraph:
    """Explore `model` and return its graph: node ids in BFS order with a `label` (the state's
    fields, one per line) and `initial` flag; edges carry the step text as `label`.

    The graph attribute `exhaustive` says whether the bounds cut the exploration short.
    """
    result = explore(model, properties, bounds, symmetry, stop_at_first=False, keep_graph=True)
    graph = nx.DiGraph(model=getattr(model, "name", type(model).__name__),
                       exhaustive=result.bound_hit is None)
    fields = getattr(model, "state_fields", None)
    initial = set(result.graph.initial)
    for ident, state in enumerate(result.graph.states):
        text = "\n".join(f"{k}: {v}" for k, v in fields(state).items()) if fields else str(state)
        graph.add_node(ident, label=text, initial=ident in initial)
    for src, label, dst in result.graph.edges:
        text = step_text(label)
        if graph.has_edge(src, dst):
            graph.edges[src, dst]["label"] += "\n" + text
        else:
            graph.add_edge(src, dst, label=text)
    return graph


def graphml_text(graph: nx.DiGraph) -> str:
    return '<?xml version="1.0" encoding="utf-8"?>\n' + "\n".join(nx.generate_graphml(graph)) \
        + "\n"


def to_graphml(graph: nx.DiGraph, path) -> None:
    """Write the graph as GraphML, in one rename (see `checker.files`)."""
    write_text_atomic(path, graphml_text(graph))


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\l") + '"'


def to_dot(graph: nx.DiGraph) -> str:
    """DOT text (no pydot needed); initial states are drawn bold."""
    lines = [f"digraph {_dot_quote(str(graph.graph.get('model', 'model')))} {{",
             "  node [shape=box, fontname=monospace];"]
    for node, data in graph.nodes(data=True):
        style = ", style=bold" if data.get("initial") else ""
        lines.append(f"  n{node} [label={_dot_quote(data.get('label', str(node)))}{style}];")
    for src, dst, data in graph.edges(data=True):
        lines.append(f"  n{src} -> n{dst} [label={_dot_quote(data.get('label', ''))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"
