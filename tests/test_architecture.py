"""The layering the architecture promises: `checker -> invariants -> spec`, no import circles,
and inside `checker/` views depend on engines, never the other way."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spec", "invariants", "checker")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> nx.DiGraph:
    """Every import between our modules, lazy ones inside functions included."""
    graph = nx.DiGraph()
    modules = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    for name, path in modules.items():
        graph.add_node(name)
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph.add_edge(name, target)
    return graph


def test_no_import_circles():
    graph = _imports()
    cycles = list(nx.simple_cycles(graph))
    assert cycles == []


def test_layers_point_one_way():
    rank = {"spec": 0, "invariants": 1, "checker": 2}
    wrong = [(a, b) for a, b in _imports().edges if rank[a.split(".")[0]] < rank[b.split(".")[0]]]
    assert wrong == []


def test_engines_and_inputs_never_import_views_or_the_gate():
    lower = ("checker.engines", "checker.inputs")
    upper = ("checker.views", "checker.gate", "checker.cli")
    wrong = [(a, b) for a, b in _imports().edges if a.startswith(lower) and b.startswith(upper)]
    assert wrong == []
