"""Mutation benchmark of `spec/` (issue 10, part 4b): how many one-rule changes the gate catches.

Our own AST mutator rather than a tool: mutmut needs pytest as its runner and trampolines every
function, and cosmic-ray mutates files in place and needs a session database; we want
`python -m checker verify` as the judge and the working tree left alone.

Operators, each a one-rule change a kernel developer could make:
  compare             < <=, > >=, == !=, in / not in, is / is not (both ways)
  remove-not          `not x` -> `x`
  and-or              `and` <-> `or`
  constant            integer constants +1 and -1; True <-> False (the 0/1 swaps of flags)
  plus-minus          + <-> - (also += -=), unless an operand is a string, tuple or list
  drop-statement      an assignment, an expression call (or yield), `continue`, or a `return`
                      inside an `if` becomes `pass`
  swap-statements     two adjacent statements of a block change order
  neighbour-constant  a member of a constant group (consecutive module-level constants, or one
                      tuple assignment such as the `S_*` steps) becomes the member before or after
                      it, among those the module can name (`spec.seamcall` outcomes, errnos, ...)
  negate-if           `if c:` -> `if not (c):`
Drops and swaps stay inside functions. Never mutated: docstrings, annotations, imports,
decorators, argument defaults, f-strings and exception arguments, `if` blocks that only raise
(preconditions of the model, not kernel rules), memo tables (`v = table.get(k)`, its
`v is None` test, the store back, `self._t = {}` in `__init__`), and the functions in SKIPPED
below. Not generated either: swaps of two statements that provably commute (bindings of
distinct names, neither reading what the other writes, no calls but pure builtins), and drops
or swaps that leave a name unbound (the first assignment of a variable dropped, or a use moved
above it): such a mutant cannot run at all, as in C it would not compile.

A mutant's id is `file:function:operator:digest#n`, the digest taken over the original and new
text of the node and n counting identical changes earlier in the function: no line numbers.

Each mutant runs in a private copy of spec/, invariants/ and checker/ (one per worker), never in
the working tree. The judge is `verify` on fast suites (benchmarks/mutation-suite-*.toml), with
a baseline recorded first from the unmutated copy; a mutant's second suite runs only when the
first did not kill it. Seconds are for one run on this 2-core machine, idle / shared:
  layout    spec/tdmr.py, spec/placement.py: v6.8 on every map check (shipped maps, the map
            search, the stored map counterexamples) and its flow on default and rsvd-exhausted
            (the flow builds its TDMRs with spec/tdmr.py). About 7 / 12 s, the map search most.
  variants  then: cmr-holes and the TDMR bug profiles on the shipped and stored maps, without
            the map search (the bugs' searched maps are in the corpus). About 1 s.
  flow      spec/flow.py: v6.8 on default, rsvd-exhausted, unchecked-callers and too-few-keyids.
            About 3 / 5 s.
  bugs      then: every flow bug profile (v7.2's four update hazards too) on the default
            configuration and on rsvd-exhausted, each stopping at its first violation.
            About 10 s.
  later     then: the later kernels (v6.14, v6.18, v7.1, v7.2) on the six flow
            configurations of the default suite, which alone take their rules' steps.
            About 15 / 20 s.
  Any other file gets all five.
Outcome of a mutant, from the regressions of its reports:
  KILLED        a check regressed with a FAIL of a real invariant (not CHECKER-ERROR or INPUT)
  LOST-STEPS    no invariant failed, but a kernel profile's check no longer reaches a step
                (action: outcome) or an invariant the baseline records it reaching (the gate's
                coverage-lost): the mutant removed behaviour, and the gate says which
  NEW-STEPS     no invariant failed, but such a check takes a step or applies an invariant
                the baseline does not record (coverage-gained): the mutant added behaviour
  NEW-SPACE     no invariant failed and the steps are the same, but such a check explores
                another number of states or transitions (state-space-changed): the mutant
                tells states apart, or merges them, otherwise (a lost or unsound reduction);
                or a bug profile's check, still caught by the same invariant, explores
                another number up to its violation (a rule only that bug reaches changed)
  HIDES-BUG     no invariant failed, but a bug profile's recorded failure now passes (the
                gate's expected-failure-passes): the mutant changed what the model does so
                that a known bug no longer shows, and the gate says which
  CRASHED       a check errored or verify itself crashed, and nothing above happened
  MASKED        the gate failed only because checks came or went
  TIMEOUT       the per-mutant timeout was hit
  INCONCLUSIVE  verify exited 3 (a bound was hit)
  SURVIVED      the gate passed; EQUIVALENT if benchmarks/mutation_equivalents.toml says why it
                cannot change behaviour (equivalents leave the denominator)
KILLED, LOST-STEPS, NEW-STEPS, NEW-SPACE and HIDES-BUG count as killed (the gate fails, naming
a behaviour the mutant changed), reported apart; a crash never counts.

Usage: python benchmarks/bench_mutation.py [--quick [--sample N] [--seed N]] [--list]
           [--files F ...] [--match TEXT] [--rev REV] [--jobs N] [--timeout S] [--json FILE]
       python benchmarks/bench_mutation.py --rescore FILE  (a saved run, current equivalents)
"""

from __future__ import annotations

import argparse
import ast
import builtins
import compileall
import contextlib
import copy
import hashlib
import io
import json
import os
import py_compile
import queue
import random
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
DEFAULT_FILES = ("spec/tdmr.py", "spec/flow.py")
EQUIVALENTS = BENCH / "mutation_equivalents.toml"
# Suites in the order they run; a mutant's later suites run only while no earlier one killed it.
ALL_SUITES = ("layout", "variants", "flow", "bugs", "later")
SUITES = {name: BENCH / f"mutation-suite-{name}.toml" for name in ALL_SUITES}
SUITES_FOR = {"spec/tdmr.py": ("layout", "variants"), "spec/placement.py": ("layout", "variants"),
              "spec/flow.py": ("flow", "bugs", "later"),
              # the layout suite reads boot logs, whose diagnosis names the module's statuses
              "spec/module.py": ("layout", "flow", "bugs", "later"),
              # only v7.2 and its update hazards run the runtime update
              "spec/seamldr.py": ("bugs", "later")}
# What `verify` needs: the packages it imports and the corpus its replay checks read.
COPIED = ("spec", "invariants", "checker", "counterexamples")

# Functions never mutated, by name: speed machinery first, whose results the tests show equal
# to computing afresh (replay records, hash-consing, interned labels, symmetry reduction),
# then text for people that no verdict reads.
SKIPPED = {
    "_replayed": "speed: replays recorded steps (TdxFlow(replay=False) computes them afresh)",
    "_init_reads": "speed: the replay key of init_tdx_module steps",
    "_changes": "speed: the replay recorder",
    "_label": "speed: interns Step labels",
    "_share": "speed: hash-consing of packages values",
    "_shared_callers": "speed: hash-consing of callers values",
    "_callers_with": "speed: memoised caller updates",
    "packages_facts": "speed: facts found by the shared tuple's id",
    "cpu_facts": "speed: the last facts asked for",
    "canonical": "speed: symmetry reduction (an exact reduction)",
    "Shared": "speed: tuples hashed by identity",
    "state_fields": "text: trace and graph views",
    "_cpu_text": "text: trace and graph views",
    "describe": "text: explanations and counterexample headers",
    "pamt_describe": "text: trace views",
}
PURE_BUILTINS = frozenset({"abs", "all", "any", "bool", "divmod", "enumerate", "frozenset",
                           "int", "len", "list", "max", "min", "range", "set", "sorted", "sum",
                           "tuple", "zip"})
COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
                 ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
                 ast.Is: ast.IsNot, ast.IsNot: ast.Is}
NEGATION_IS_SWAP = (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot)
OPERATORS = ("compare", "remove-not", "and-or", "constant", "plus-minus", "drop-statement",
             "swap-statements", "neighbour-constant", "negate-if")

KILLED, CRASHED, MASKED, TIMEOUT, INCONCLUSIVE = \
    "KILLED", "CRASHED", "MASKED", "TIMEOUT", "INCONCLUSIVE"
LOST_STEPS, NEW_STEPS, NEW_SPACE, HIDES_BUG = "LOST-STEPS", "NEW-STEPS", "NEW-SPACE", "HIDES-BUG"
SURVIVED, EQUIVALENT = "SURVIVED", "EQUIVALENT"
OUTCOMES = (KILLED, LOST_STEPS, NEW_STEPS, NEW_SPACE, HIDES_BUG, SURVIVED, EQUIVALENT, CRASHED,
            MASKED, TIMEOUT, INCONCLUSIVE)
CAUGHT = (KILLED, LOST_STEPS, NEW_STEPS, NEW_SPACE, HIDES_BUG)  # the gate failed naming a change
# When a mutant runs several suites, the outcome that says most wins.
PRECEDENCE = (KILLED, LOST_STEPS, NEW_STEPS, NEW_SPACE, HIDES_BUG, CRASHED, MASKED, TIMEOUT,
              INCONCLUSIVE, SURVIVED)
NOT_INVARIANTS = frozenset({"CHECKER-ERROR", "INPUT"})


# ----- the mutator ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mutant:
    """One change to one file: byte-range edits of the original text, and how to name it."""

    id: str
    file: str
    line: int
    function: str
    operator: str
    old: str
    new: str
    edits: tuple[tuple[int, int, str], ...]

    def apply(self, original: bytes) -> bytes:
        out, last = [], 0
        for start, end, text in sorted(self.edits):
            out += [original[last:start], text.encode()]
            last = end
        return b"".join(out + [original[last:]])

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def change(self) -> str:
        """`old -> new` cut down to the part that changed (a swap: `first <-> second`)."""
        if self.operator == "swap-statements":
            first, second = self.old.split("\n")
            return f"{short(first, 36)} <-> {short(second, 36)}"
        if self.operator == "drop-statement":
            return f"{short(self.old)} -> pass"
        old, new = self.old, self.new
        if max(len(old), len(new)) > 48:
            same = len(os.path.commonprefix([old, new]))
            tail = len(os.path.commonprefix([old[same:][::-1], new[same:][::-1]]))
            start = max(0, same - 16)

            def cut(text: str) -> str:
                end = min(len(text), len(text) - tail + 16)
                return ("..." if start else "") + text[start:end] + \
                    ("..." if end < len(text) else "")

            old, new = cut(old), cut(new)
        return f"{short(old, 64)} -> {short(new, 64)}"


def one_line(node: ast.AST) -> str:
    return " ".join(ast.unparse(node).split())


def short(text: str, width: int = 48) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def is_const_expr(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, str)) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp):
        return is_const_expr(node.operand)
    if isinstance(node, ast.BinOp):
        return is_const_expr(node.left) and is_const_expr(node.right)
    return False


def constant_groups(tree: ast.Module) -> list[list[str]]:
    """Groups of constants a module defines: runs of consecutive `NAME = constant` lines, and
    each tuple assignment of constants (`A, B = 0, 1` or `= range(n)`), merged with the one
    before when their names start alike (`S_NONE, ... = range(8)`, `S_ERR_WBINVD, ... = ...`)."""
    groups: list[list[str]] = []
    run: list[str] = []
    last_tuple_prefix = None
    for stmt in tree.body:
        names = _constant_names(stmt)
        if names is None:
            run, last_tuple_prefix = [], None
            continue
        if len(names) == 1:
            if not run:
                groups.append(run)
            run.append(names[0])
            last_tuple_prefix = None
            continue
        prefix = names[0].split("_")[0]
        if prefix == last_tuple_prefix:
            groups[-1].extend(names)
        else:
            groups.append(list(names))
        run, last_tuple_prefix = [], prefix
    return [g for g in groups if len(g) > 1]


def _constant_names(stmt: ast.stmt) -> list[str] | None:
    """The names an upper-case constant assignment defines, else None."""
    if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
        return None
    target, value = stmt.targets[0], stmt.value
    if isinstance(target, ast.Name) and target.id.isupper() and is_const_expr(value):
        return [target.id]
    if not (isinstance(target, ast.Tuple)
            and all(isinstance(e, ast.Name) and e.id.isupper() for e in target.elts)):
        return None
    names = [e.id for e in target.elts]
    if isinstance(value, ast.Tuple) and len(value.elts) == len(names) \
            and all(is_const_expr(v) for v in value.elts):
        return names
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) \
            and value.func.id == "range" and all(is_const_expr(a) for a in value.args):
        return names
    return None


class Snapshot:
    """The code mutated and copied: the working tree, or a git revision (`--rev`), which lets a
    run measure a commit while the tree is being edited."""

    def __init__(self, rev: str | None = None) -> None:
        self.rev = rev
        self._trees: dict[str, ast.Module | None] = {}

    def read(self, path: str) -> bytes | None:
        if self.rev is None:
            return (ROOT / path).read_bytes() if (ROOT / path).is_file() else None
        shown = subprocess.run(["git", "show", f"{self.rev}:{path}"], cwd=ROOT,
                               capture_output=True)
        return shown.stdout if shown.returncode == 0 else None

    def module_tree(self, module: str) -> ast.Module | None:
        """The parsed source of one of our modules (`spec.seamcall`), or None."""
        if module not in self._trees:
            source = self.read(module.replace(".", "/") + ".py")
            self._trees[module] = None if source is None else ast.parse(source)
        return self._trees[module]

    def copy_packages(self, folder: Path) -> None:
        if self.rev is None:
            for name in (n for n in COPIED if (ROOT / n).is_dir()):
                shutil.copytree(ROOT / name, folder / name,
                                ignore=shutil.ignore_patterns("__pycache__"))
            return
        archive = subprocess.run(["git", "archive", self.rev, *COPIED], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(folder, filter="data")


def neighbours(tree: ast.Module, snapshot: Snapshot) -> dict[str, list[str]]:
    """For each group constant the module can name (defined or imported), the members before
    and after it among the names it can use."""
    groups = constant_groups(tree)
    bound: dict[str, str] = {}  # name in the defining module -> name here
    for name in (n for g in groups for n in g):
        bound[name] = name
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
            other = snapshot.module_tree(stmt.module)
            if other is None:
                continue
            imported = {a.name: a.asname or a.name for a in stmt.names}
            for group in constant_groups(other):
                groups.append([imported[n] for n in group if n in imported])
    out: dict[str, list[str]] = {}
    for group in groups:
        for i, name in enumerate(group):
            out.setdefault(name, []).extend(group[j] for j in (i - 1, i + 1)
                                            if 0 <= j < len(group))
    return {name: list(dict.fromkeys(others)) for name, others in out.items()}


def _keys(node: ast.AST) -> set[str]:
    """Names and `name.attribute`s a piece of code reads (an augmented assignment reads its
    target too)."""
    keys = set()
    for n in ast.walk(node):
        target = n.target if isinstance(n, ast.AugAssign) else None
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) \
                or isinstance(target, ast.Name):
            keys.add((target or n).id)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Load) \
                and isinstance(n.value, ast.Name):
            keys.add(f"{n.value.id}.{n.attr}")
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
            keys.add(f"{target.value.id}.{target.attr}")
    return keys


def _simple_effects(stmt: ast.stmt) -> tuple[set[str], set[str]] | None:
    """(names written, names read) of a statement whose only effect is binding names or
    `name.attribute`s; None when it may do anything else (a call other than a pure builtin, an
    item store, a walrus, a yield)."""
    if isinstance(stmt, ast.FunctionDef):
        if stmt.decorator_list or stmt.args.defaults or stmt.args.kw_defaults:
            return None
        return {stmt.name}, set()
    if isinstance(stmt, ast.Assign):
        targets, value = stmt.targets, stmt.value
    elif isinstance(stmt, (ast.AugAssign, ast.AnnAssign)) and stmt.value is not None:
        targets, value = [stmt.target], stmt.value
    else:
        return None
    written: set[str] = set()
    for target in targets:
        for e in target.elts if isinstance(target, ast.Tuple) else [target]:
            if isinstance(e, ast.Name):
                written.add(e.id)
            elif isinstance(e, ast.Attribute) and isinstance(e.value, ast.Name):
                written.add(f"{e.value.id}.{e.attr}")
            else:
                return None
    for node in ast.walk(value):
        if isinstance(node, (ast.NamedExpr, ast.Yield, ast.YieldFrom, ast.Await)):
            return None
        if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in PURE_BUILTINS
                and hasattr(builtins, node.func.id)):
            return None
    read = _keys(value)
    if isinstance(stmt, ast.AugAssign):
        read |= written
    return written, read


def commute(a: ast.stmt, b: ast.stmt) -> bool:
    """The two statements can run in either order with the same effect."""
    ea, eb = _simple_effects(a), _simple_effects(b)
    if ea is None or eb is None:
        return False
    (wa, ra), (wb, rb) = ea, eb
    return not (wa & wb or wa & rb or wb & ra)


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp,
           ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _bindings(node: ast.AST, attributes: bool) -> set[str]:
    """Every key bound in `node`'s own scope: names, and with `attributes` the `self.x`
    stores (an `__init__` defines them)."""
    out, todo = set(), [node]
    while todo:
        n = todo.pop()
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and n is not node:
            out.add(n.name)
        elif attributes and isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store) \
                and isinstance(n.value, ast.Name) and n.value.id == "self":
            out.add(f"self.{n.attr}")
        if n is node or not isinstance(n, _SCOPES):
            todo.extend(ast.iter_child_nodes(n))
    return out


def _definite(stmts: list[ast.stmt], attributes: bool) -> set[str]:
    """Keys bound on every path through `stmts` (a loop body may not run; an `if` binds what
    both of its branches bind)."""
    out: set[str] = set()
    for stmt in stmts:
        if isinstance(stmt, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.FunctionDef,
                             ast.AsyncFunctionDef, ast.ClassDef)):
            out |= _bindings(stmt, attributes)
        elif isinstance(stmt, ast.If) and stmt.orelse:
            out |= _definite(stmt.body, attributes) & _definite(stmt.orelse, attributes)
        elif isinstance(stmt, ast.With):
            out |= _definite(stmt.body, attributes) | {
                k for item in stmt.items if item.optional_vars
                for k in _bindings(item.optional_vars, attributes)}
    return out


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
        and isinstance(stmt.value.value, str)


def _only_raises(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.If) and not stmt.orelse and len(stmt.body) == 1 \
        and isinstance(stmt.body[0], ast.Raise)


class _Mutator(ast.NodeVisitor):
    """Walks one module in source order and records every mutant (see the module docstring)."""

    def __init__(self, path: str, source: bytes, tree: ast.Module, snapshot: Snapshot) -> None:
        self.path = path
        self.source = source
        self.line_starts = [0]
        for line in source.splitlines(keepends=True):
            self.line_starts.append(self.line_starts[-1] + len(line))
        self.neighbours = neighbours(tree, snapshot)
        self.scope: list[str] = []
        self.in_function = 0
        self.locals: list[set[str]] = [set()]
        self.definite: list[set[str]] = [set()]  # keys bound on every path to here
        self.memo_names: list[set[str]] = [set()]
        self.memo_tables: list[set[str]] = [set()]
        self.seen: Counter = Counter()
        self.found: list[tuple[int, int, int, Mutant]] = []
        self.parents: dict[ast.AST, ast.AST] = {}
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent

    # --- recording ---

    def span(self, node: ast.AST) -> tuple[int, int]:
        return (self.line_starts[node.lineno - 1] + node.col_offset,
                self.line_starts[node.end_lineno - 1] + node.end_col_offset)

    def add(self, node: ast.AST, operator: str, old: str, new: str,
            edits: list[tuple[int, int, str]]) -> None:
        function = ".".join(self.scope) or "<module>"
        key = (function, operator, old, new)
        occurrence = self.seen[key]
        self.seen[key] += 1
        digest = hashlib.sha1(f"{old}\n{new}".encode()).hexdigest()[:8]
        mutant = Mutant(f"{self.path}:{function}:{operator}:{digest}#{occurrence}", self.path,
                        node.lineno, function, operator, old, new, tuple(edits))
        self.found.append((node.lineno, node.col_offset, OPERATORS.index(operator), mutant))

    def replace_expr(self, node: ast.expr, new_node: ast.expr, operator: str,
                     shown: ast.expr | None = None) -> None:
        """Replace `node` by `new_node` (parenthesised unless an atom); `shown` is the
        expression to name the change by (default the node itself)."""
        text = ast.unparse(new_node)
        if not isinstance(new_node, (ast.Name, ast.Constant, ast.Attribute, ast.Call,
                                     ast.Subscript)) or text.startswith("-"):
            text = f"({text})"
        shown = shown or node
        old = one_line(shown)
        new = one_line(_substituted(shown, node, new_node))
        self.add(node, operator, old, new, [(*self.span(node), text)])

    def context(self, node: ast.expr) -> ast.expr:
        """The expression to show a constant or name change in: its parent, when short."""
        parent = self.parents.get(node)
        if isinstance(parent, ast.expr) and len(one_line(parent)) <= 60:
            return parent
        return node

    # --- scopes and skips ---

    def visit_Import(self, node: ast.Import) -> None:
        return

    visit_ImportFrom = visit_Import

    def visit_JoinedStr(self, node: ast.JoinedStr) -> None:
        return

    def visit_Raise(self, node: ast.Raise) -> None:
        return

    def visit_Assert(self, node: ast.Assert) -> None:
        return

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        if node.name in SKIPPED:
            return
        self.scope.append(node.name)
        self.visit_block(node.body, statements=False)
        self.scope.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.name in SKIPPED:
            return
        self.scope.append(node.name)
        self.in_function += 1
        args = node.args
        params = {a.arg for a in args.posonlyargs + args.args + args.kwonlyargs}
        params |= {a.arg for a in (args.vararg, args.kwarg) if a}
        self.locals.append(params | {n.id for s in node.body for n in ast.walk(s)
                                     if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)})
        self.definite.append(set(params))
        self.memo_names.append(set())
        self.memo_tables.append(set())
        for stmt in ast.walk(node):  # `v = table.get(k)`: a memo look-up
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 \
                    and isinstance(stmt.targets[0], ast.Name) \
                    and isinstance(stmt.value, ast.Call) \
                    and isinstance(stmt.value.func, ast.Attribute) \
                    and stmt.value.func.attr == "get":
                self.memo_names[-1].add(stmt.targets[0].id)
                self.memo_tables[-1].add(one_line(stmt.value.func.value))
        self.visit_block(node.body, statements=True)
        self.memo_tables.pop()
        self.memo_names.pop()
        self.definite.pop()
        self.locals.pop()
        self.in_function -= 1
        self.scope.pop()

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self.visit(node.body)

    def visit_arguments(self, node: ast.arguments) -> None:
        return  # defaults and annotations

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)

    def in_init(self) -> bool:
        return self.scope[-1:] == ["__init__"]

    def first_bindings(self, stmt: ast.stmt) -> set[str]:
        """Keys `stmt` binds that are not bound on every path to it: without it they may be
        unbound, so dropping it, or moving a use of them above it, makes a mutant that cannot
        run (in C it would not compile)."""
        return _bindings(stmt, self.in_init()) - self.definite[-1]

    def is_memo_guard(self, node: ast.expr) -> bool:
        """`v is None` / `v is not None` where v came from a memo table's `.get`."""
        return isinstance(node, ast.Compare) and len(node.ops) == 1 \
            and isinstance(node.ops[0], (ast.Is, ast.IsNot)) \
            and isinstance(node.left, ast.Name) and node.left.id in self.memo_names[-1] \
            and isinstance(node.comparators[0], ast.Constant) \
            and node.comparators[0].value is None

    def is_memo(self, stmt: ast.stmt) -> bool:
        """A statement of a memo table: the look-up `v = table.get(k)`, the test of `v`, a
        store into the table, or the table's creation in `__init__` (`self._t = {}`)."""
        if isinstance(stmt, ast.If):
            return self.is_memo_guard(stmt.test)
        if not isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            return False
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        if len(targets) == 1 and isinstance(targets[0], ast.Name) \
                and targets[0].id in self.memo_names[-1] and isinstance(stmt.value, ast.Call):
            return True
        if self.in_init() and isinstance(stmt.value, ast.Dict) \
                and not stmt.value.keys and all(isinstance(t, ast.Attribute)
                                                 and t.attr.startswith("_") for t in targets):
            return True
        return any(isinstance(t, ast.Subscript) and one_line(t.value) in self.memo_tables[-1]
                   for t in targets)

    # --- statements ---

    def visit_block(self, body: list[ast.stmt], statements: bool) -> None:
        """A list of statements: drop and swap mutants (inside functions), then each one."""
        body = [s for s in body if not _is_docstring(s)]
        self.definite.append(set(self.definite[-1]))
        for i, stmt in enumerate(body):
            if _only_raises(stmt):
                continue
            if statements:
                self.drop(stmt)
                if i + 1 < len(body):
                    self.swap(stmt, body[i + 1])
            self.visit(stmt)
            self.definite[-1] |= _definite([stmt], self.in_init())
        self.definite.pop()

    def drop(self, stmt: ast.stmt) -> None:
        parent = self.parents.get(stmt)
        droppable = isinstance(stmt, (ast.Assign, ast.AugAssign, ast.Continue)) \
            or (isinstance(stmt, ast.AnnAssign) and stmt.value is not None) \
            or (isinstance(stmt, ast.Expr)
                and isinstance(stmt.value, (ast.Call, ast.Yield, ast.YieldFrom))) \
            or (isinstance(stmt, ast.Return) and isinstance(parent, ast.If))
        if droppable and not self.is_memo(stmt) and not self.first_bindings(stmt):
            self.add(stmt, "drop-statement", one_line(stmt), "pass",
                     [(*self.span(stmt), "pass")])

    def swap(self, a: ast.stmt, b: ast.stmt) -> None:
        if _only_raises(b) or self.is_memo(a) or self.is_memo(b) or commute(a, b) \
                or self.first_bindings(a) & _keys(b):
            return
        ta, tb = one_line(a), one_line(b)
        if ta == tb:
            return
        (sa, ea), (sb, eb) = self.span(a), self.span(b)
        self.add(a, "swap-statements", f"{ta}\n{tb}", f"{tb}\n{ta}",
                 [(sa, ea, self.source[sb:eb].decode()), (sb, eb, self.source[sa:ea].decode())])

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        negation_is_other = (isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not)) \
            or (isinstance(test, ast.Compare) and len(test.ops) == 1
                and isinstance(test.ops[0], NEGATION_IS_SWAP))
        if not negation_is_other and not self.is_memo_guard(test):
            negated = ast.UnaryOp(ast.Not(), test)
            self.add(test, "negate-if", f"if {one_line(test)}", f"if {one_line(negated)}",
                     [(*self.span(test), f"not ({ast.unparse(test)})")])
        self.visit(test)
        self.visit_block(node.body, statements=self.in_function > 0)
        self.visit_block(node.orelse, statements=self.in_function > 0)

    def visit_For(self, node: ast.For) -> None:
        self.visit(node.iter)
        self.definite.append(self.definite[-1] | _bindings(node.target, False))
        self.visit_block(node.body, statements=self.in_function > 0)
        self.definite.pop()
        self.visit_block(node.orelse, statements=self.in_function > 0)

    def visit_While(self, node: ast.While) -> None:
        self.visit(node.test)
        self.visit_block(node.body, statements=self.in_function > 0)
        self.visit_block(node.orelse, statements=self.in_function > 0)

    def visit_With(self, node: ast.With) -> None:
        for item in node.items:
            self.visit(item.context_expr)
        self.definite.append(self.definite[-1] | {
            k for item in node.items if item.optional_vars
            for k in _bindings(item.optional_vars, False)})
        self.visit_block(node.body, statements=self.in_function > 0)
        self.definite.pop()

    def visit_Try(self, node: ast.Try) -> None:
        inside = self.in_function > 0
        self.visit_block(node.body, statements=inside)
        for handler in node.handlers:
            self.visit_block(handler.body, statements=inside)
        self.visit_block(node.orelse, statements=inside)
        self.visit_block(node.finalbody, statements=inside)

    def visit_Module(self, node: ast.Module) -> None:
        self.visit_block(node.body, statements=False)

    # --- expressions ---

    def visit_Compare(self, node: ast.Compare) -> None:
        if not self.is_memo_guard(node):
            for i, op in enumerate(node.ops):
                swapped = copy.copy(node)
                swapped.ops = list(node.ops)
                swapped.ops[i] = COMPARE_SWAPS[type(op)]()
                self.replace_expr(node, swapped, "compare")
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp) -> None:
        if isinstance(node.op, ast.Not):
            self.replace_expr(node, node.operand, "remove-not")
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp) -> None:
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self.replace_expr(node, ast.BoolOp(other, node.values), "and-or")
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, (ast.Add, ast.Sub)) and not (
                _sequence_like(node.left) or _sequence_like(node.right)):
            other = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
            self.replace_expr(node, ast.BinOp(node.left, other, node.right), "plus-minus")
        self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        if isinstance(node.op, (ast.Add, ast.Sub)) and not _sequence_like(node.value):
            other = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
            new = ast.AugAssign(node.target, other, node.value)
            start, end = self.span(node)
            self.add(node, "plus-minus", one_line(node), one_line(new),
                     [(start, end, ast.unparse(new))])
        self.visit(node.value)

    def visit_Constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            replacements = [not value]
        elif isinstance(value, int):
            replacements = [value + 1, value - 1]
        else:
            return
        shown = self.context(node)
        for replacement in replacements:
            self.replace_expr(node, ast.Constant(replacement), "constant", shown)

    def visit_Name(self, node: ast.Name) -> None:
        if not isinstance(node.ctx, ast.Load) or node.id in self.locals[-1]:
            return
        shown = self.context(node)
        for other in self.neighbours.get(node.id, ()):
            self.replace_expr(node, ast.Name(other, ast.Load()), "neighbour-constant", shown)


def _sequence_like(node: ast.expr) -> bool:
    """An operand that makes + a concatenation: a string, tuple or list literal or builder,
    or a sum or choice of such."""
    if isinstance(node, ast.BinOp):
        return _sequence_like(node.left) or _sequence_like(node.right)
    if isinstance(node, ast.IfExp):
        return _sequence_like(node.body) or _sequence_like(node.orelse)
    return isinstance(node, (ast.JoinedStr, ast.Tuple, ast.List, ast.ListComp)) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str))


def _substituted(shown: ast.expr, node: ast.expr, new_node: ast.expr) -> ast.expr:
    """`shown` with its sub-expression `node` replaced by `new_node` (for the description)."""
    if shown is node:
        return new_node

    class Swap(ast.NodeTransformer):
        def visit(self, current: ast.AST) -> ast.AST:
            return new_node if current is node else super().visit(current)

    return Swap().visit(copy.deepcopy(shown, {id(node): node}))


def mutants_of(path: str, source: bytes | None = None,
               snapshot: Snapshot | None = None) -> list[Mutant]:
    """Every mutant of one file (relative to the repository root), in source order; `source`
    defaults to the file's text in `snapshot` (default: the working tree)."""
    snapshot = snapshot or Snapshot()
    if source is None:
        source = snapshot.read(path)
    tree = ast.parse(source)
    mutator = _Mutator(path, source, tree, snapshot)
    mutator.visit(tree)
    return [m for *_, m in sorted(mutator.found, key=lambda f: f[:3])]


# ----- running ----------------------------------------------------------------------------------

# `python -m checker` with an address-space limit: a mutant that loops while it appends must not
# take the shared machine's memory with it.
LIMITED_MAIN = ("import resource, runpy, sys; limit = int(sys.argv.pop(1)); "
                "resource.setrlimit(resource.RLIMIT_AS, (limit, limit)); "
                "runpy.run_module('checker', run_name='__main__', alter_sys=True)")
MEMORY_LIMIT = 4 << 30


@dataclass
class Result:
    mutant: Mutant
    outcome: str
    detail: str
    seconds: float
    reason: str = ""

    def to_json(self) -> dict:
        mutant = {k: v for k, v in asdict(self.mutant).items() if k != "edits"}
        return {**mutant, "outcome": self.outcome, "detail": self.detail,
                "reason": self.reason, "seconds": self.seconds}


def _profile_of(path: Path) -> str | None:
    """The profile a stored counterexample is for (None if it cannot be read)."""
    try:
        return json.loads(path.read_text()).get("profile")
    except (ValueError, AttributeError):
        return None


class Workspace:
    """Private copies of what `verify` needs, one per worker, the baselines, and the `verify`
    processes running (stopped all at once when the benchmark is interrupted)."""

    def __init__(self, root: Path, jobs: int, snapshot: Snapshot) -> None:
        self.root = root
        base = root / "base"
        snapshot.copy_packages(base)
        # Hash-checked byte code: a mutant written in the same second as the file it replaces
        # can never be mistaken for it; mutants themselves are never cached.
        compileall.compile_dir(base, quiet=1,
                               invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH)
        # Each suite replays the stored counterexamples of its own profiles (verify reads every
        # file of a corpus, so one of another profile that no longer loads would stop it), and
        # no run writes to them: the reference run, which records its new counterexamples with
        # the baseline, gets a copy of its own.
        self.corpora = {name: root / f"corpus-{name}" for name in SUITES}
        for name, corpus in self.corpora.items():
            corpus.mkdir()
            suite = tomllib.loads(SUITES[name].read_text())
            for path in sorted((base / "counterexamples").glob("*.json")):
                if "replay" in suite.get("checks", ()) \
                        and _profile_of(path) in suite.get("profiles", ()):
                    shutil.copy(path, corpus)
        self.workers: queue.Queue[Path] = queue.Queue()
        for i in range(jobs):
            shutil.copytree(base, root / f"worker-{i}", ignore=shutil.ignore_patterns(
                "counterexamples"))
            self.workers.put(root / f"worker-{i}")
        self.baselines = {name: root / f"baseline-{name}.json" for name in SUITES}
        self.running: set[subprocess.Popen] = set()
        self.stopping = False

    def verify(self, folder: Path, suite: str, timeout: float, update: bool = False):
        """Run the gate in `folder`; (exit code or None on timeout, report or None, stderr)."""
        report = folder / "report.json"
        report.unlink(missing_ok=True)
        corpus, new = self.corpora[suite], folder / "new-counterexamples"
        shutil.rmtree(new, ignore_errors=True)
        command = [sys.executable, "-c", LIMITED_MAIN, str(MEMORY_LIMIT), "verify",
                   "--suite", str(SUITES[suite]), "--baseline", str(self.baselines[suite]),
                   "--format", "json", "--output", str(report), "--quiet", "--jobs", "1"]
        if update:
            corpus = folder / "reference-corpus"
            shutil.rmtree(corpus, ignore_errors=True)
            shutil.copytree(self.corpora[suite], corpus)
            command.append("--update-baseline")
        else:  # a mutant: killed at its first new failure, not after the slow checks
            command += ["--new-counterexamples", str(new), "--fail-fast"]
        command += ["--counterexamples", str(corpus)]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        if self.stopping:
            raise KeyboardInterrupt
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        self.running.add(process)
        try:
            _, stderr = process.communicate(timeout=max(timeout, 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return None, None, ""
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            raise
        finally:
            self.running.discard(process)
        data = json.loads(report.read_text()) if report.is_file() else None
        return process.returncode, data, stderr

    def stop(self) -> None:
        """Start no more runs and kill the ones going (each is a process group of its own)."""
        self.stopping = True
        for process in list(self.running):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


def classify(code: int | None, report: dict | None, stderr: str) -> tuple[str, str]:
    """Outcome and a one-line detail of one `verify` run of a mutant."""
    if code is None:
        return TIMEOUT, "per-mutant timeout"
    if report is None:
        last = stderr.strip().splitlines()[-1:] or [f"exit {code}"]
        return CRASHED, f"verify crashed: {last[0]}"
    regressions = [t for t in report["baseline"]["transitions"]
                   if t["severity"] == "regression"]
    # an invariant that newly fails (a bug caught as recorded over another space is not one)
    failed = [t for t in regressions if t["transition"] in ("new-failure", "different-invariant")
              and t["actual"]["invariant"] not in NOT_INVARIANTS]
    if failed:
        return KILLED, f"{failed[0]['check_id']}: {failed[0]['actual']['invariant']}" + (
            f" (+{len(failed) - 1} more)" if len(failed) > 1 else "")
    for outcome, transition in ((LOST_STEPS, "coverage-lost"), (NEW_STEPS, "coverage-gained"),
                                (NEW_SPACE, "state-space-changed"),
                                (HIDES_BUG, "expected-failure-passes")):
        named = [t for t in regressions if t["transition"] == transition]
        if named:
            return outcome, f"{named[0]['check_id']}: {transition}" + (
                f" (+{len(named) - 1} more)" if len(named) > 1 else "")
    errors = [t for t in regressions if t["actual"] and (
        t["actual"]["status"] == "error" or t["actual"].get("invariant") in NOT_INVARIANTS)]
    if errors:
        return CRASHED, f"{errors[0]['check_id']}: {errors[0]['explanation']}"
    if regressions:
        return MASKED, f"{regressions[0]['check_id']}: {regressions[0]['transition']}"
    if code == 3:
        return INCONCLUSIVE, "a bound was hit"
    if code == 0:
        return SURVIVED, ""
    return CRASHED, f"verify exit {code}"


MIN_TIMEOUT = 40.0  # seconds a mutant may take at least (see --timeout)


def suites_for(path: str) -> tuple[str, ...]:
    return SUITES_FOR.get(path, ALL_SUITES)


def run_mutant(space: Workspace, mutant: Mutant, originals: dict[str, bytes],
               timeout: float) -> Result:
    """Write the mutant into a free worker's copy, run its suites until one kills it, restore."""
    folder = space.workers.get()
    target = folder / mutant.file
    started = time.monotonic()
    outcomes = []
    try:
        target.write_bytes(mutant.apply(originals[mutant.file]))
        for suite in suites_for(mutant.file):
            left = timeout - (time.monotonic() - started)
            outcome = classify(*space.verify(folder, suite, left))
            outcomes.append(outcome)
            if outcome[0] in (KILLED, TIMEOUT):
                break
    finally:
        target.write_bytes(originals[mutant.file])
        space.workers.put(folder)
    outcome, detail = min(outcomes, key=lambda o: PRECEDENCE.index(o[0]))
    return Result(mutant, outcome, detail, round(time.monotonic() - started, 2))


def judge(r: Result, equivalents: dict[str, str]) -> Result:
    """A survivor listed in the equivalents is EQUIVALENT; a listed mutant that did not survive
    is reported, as its reason must be wrong."""
    if r.outcome in (SURVIVED, EQUIVALENT):
        r.outcome, r.reason = SURVIVED, ""
        if r.mutant.id in equivalents:
            r.outcome, r.reason = EQUIVALENT, equivalents[r.mutant.id]
    elif r.mutant.id in equivalents:
        print(f"warning: {r.mutant.id} is listed as equivalent but {r.outcome}",
              file=sys.stderr)
    return r


def run_all(space: Workspace, mutants: list[Mutant], originals: dict[str, bytes], args,
            equivalents: dict[str, str], timeouts: dict[str, float]) -> list[Result]:
    """Run the mutants, `args.jobs` at a time (threads, each waiting on its own `verify`), and
    report each on stderr; results in the mutants' order. An interrupt (Ctrl-C or SIGTERM)
    kills the runs going and starts no more."""
    pool = ThreadPoolExecutor(max_workers=max(1, args.jobs))
    results: list[Result] = []
    try:
        futures = [pool.submit(run_mutant, space, m, originals, timeouts[m.file])
                   for m in mutants]
        for n, future in enumerate(futures, 1):
            r = judge(future.result(), equivalents)
            results.append(r)
            print(f"[{n}/{len(mutants)}] {r.outcome:<12} {r.mutant.where} "
                  f"{r.mutant.function}  {r.mutant.change}  ({r.seconds:.1f} s)",
                  file=sys.stderr, flush=True)
    except BaseException:
        space.stop()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def record_baselines(space: Workspace, suites: list[str], timeout: float) -> dict[str, float]:
    """Run each suite on the unmutated copy and keep its verdicts as that suite's baseline."""
    folder = space.workers.get()
    seconds = {}
    try:
        for suite in suites:
            started = time.monotonic()
            code, _, stderr = space.verify(folder, suite, timeout * 4, update=True)
            seconds[suite] = round(time.monotonic() - started, 2)
            if code != 0:
                raise SystemExit(f"the unmutated tree does not pass suite {suite} "
                                 f"(exit {code}):\n{stderr}")
    finally:
        space.workers.put(folder)
    return seconds


# ----- selection, equivalents, output -------------------------------------------------------

def load_equivalents(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    doc = tomllib.loads(path.read_text())
    bad = [k for k, v in doc.items() if not isinstance(v, str)]
    if bad:
        raise SystemExit(f"{path}: the reason for {bad[0]!r} must be a string")
    return doc


def sample(mutants: list[Mutant], files: list[str], size: int, seed: int) -> list[Mutant]:
    """`size` mutants drawn with `seed`, spread evenly over the files (a file with fewer
    mutants than its share gives the rest to the others), in the original order."""
    by_file = {f: [m for m in mutants if m.file == f] for f in files}
    quota = dict.fromkeys(files, 0)
    left = min(size, len(mutants))
    while left:
        open_files = [f for f in files if quota[f] < len(by_file[f])]
        for f in open_files[:left]:
            quota[f] += 1
            left -= 1
    rng = random.Random(seed)
    chosen = {m.id for f in files for m in rng.sample(by_file[f], quota[f])}
    return [m for m in mutants if m.id in chosen]


def format_rows(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def summary_rows(results: list[Result], key) -> list[list[str]]:
    counts: dict[str, Counter] = defaultdict(Counter)
    for r in results:
        counts[key(r)][r.outcome] += 1
    rows = [["", *(o.lower() for o in OUTCOMES), "score"]]
    for name, c in counts.items():
        scored = sum(c.values()) - c[EQUIVALENT]
        caught = sum(c[o] for o in CAUGHT)
        rows.append([name, *(str(c[o]) for o in OUTCOMES),
                     f"{caught}/{scored}" + (f" {100 * caught / scored:.0f}%" if scored else "")])
    return rows


def report(results: list[Result], files: list[str]) -> str:
    rows = [["id", "where", "function", "change", "outcome", "reason"]]
    rows += [[r.mutant.id, r.mutant.where, r.mutant.function, r.mutant.change, r.outcome,
              r.reason or r.detail] for r in results]
    by_file = summary_rows(results, lambda r: r.mutant.file)
    by_file[1:] = sorted(by_file[1:], key=lambda row: files.index(row[0]))
    by_operator = summary_rows(results, lambda r: r.mutant.operator)
    by_operator[1:] = sorted(by_operator[1:], key=lambda row: OPERATORS.index(row[0]))
    by_file[0][0], by_operator[0][0] = "file", "operator"
    return "\n\n".join([format_rows(rows), format_rows(by_file), format_rows(by_operator)])


def write_json(path: Path, doc: dict) -> None:
    """Write atomically: a temporary file in the same folder, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.",
                                     delete=False) as out:
        json.dump(doc, out, indent=1)
        out.write("\n")
    os.replace(out.name, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--files", nargs="+", default=list(DEFAULT_FILES), metavar="FILE",
                   help="spec files to mutate, relative to the repository root")
    p.add_argument("--quick", action="store_true", help="run a sample (see --sample, --seed)")
    p.add_argument("--sample", type=int, default=40, help="mutants --quick runs (default 40: "
                   "under 10 minutes here with 2 jobs)")
    p.add_argument("--seed", type=int, default=10, help="seed of the --quick sample")
    p.add_argument("--match", metavar="TEXT", nargs="+",
                   help="only mutants whose id contains one of these texts")
    p.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--timeout", type=float, help="seconds per mutant (default: twice what "
                   f"its suites take on the unmutated tree, at least {MIN_TIMEOUT:g})")
    p.add_argument("--equivalents", type=Path, default=EQUIVALENTS)
    p.add_argument("--json", type=Path, metavar="FILE", help="write the full result here")
    p.add_argument("--rev", help="mutate and run this git revision instead of the working tree")
    p.add_argument("--rescore", type=Path, metavar="FILE",
                   help="print the report of a run saved with --json, with the equivalents as "
                   "they are now (no run)")
    args = p.parse_args(argv)
    if args.rescore:
        return rescore(args.rescore, load_equivalents(args.equivalents))
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # clean up as for Ctrl-C
    snapshot = Snapshot(args.rev)
    for f in args.files:
        if not f.startswith("spec/") or snapshot.read(f) is None:
            p.error(f"{f}: not a file under spec/" + (f" at {args.rev}" if args.rev else ""))
    mutants = [m for f in args.files for m in mutants_of(f, snapshot=snapshot)]
    if args.match:
        mutants = [m for m in mutants if any(text in m.id for text in args.match)]
    if args.quick:
        mutants = sample(mutants, args.files, args.sample, args.seed)
    if args.list:
        print(format_rows([["id", "where", "function", "change"]]
                          + [[m.id, m.where, m.function, m.change] for m in mutants]))
        counts = Counter(m.file for m in mutants)
        print("\n" + ", ".join(f"{f}: {counts[f]}" for f in args.files)
              + f"; {len(mutants)} mutants")
        return 0
    equivalents = load_equivalents(args.equivalents)
    started = time.monotonic()
    originals = {f: snapshot.read(f) for f in args.files}
    suites = sorted({s for f in args.files for s in suites_for(f)}, key=ALL_SUITES.index)
    with tempfile.TemporaryDirectory(prefix="tdx-mutation-") as tmp:
        space = Workspace(Path(tmp), max(1, args.jobs), snapshot)
        reference = record_baselines(space, suites, args.timeout or MIN_TIMEOUT)
        print("reference runs (unmutated): " + ", ".join(f"{s} {t:.1f} s"
              for s, t in reference.items()), file=sys.stderr)
        # A mutant the first suites miss runs them all: a timeout under their sum would
        # report every survivor (and every mutant only a late suite kills) as a timeout.
        timeouts = {f: args.timeout or max(MIN_TIMEOUT, 2 * sum(reference[s]
                                                                for s in suites_for(f)))
                    for f in args.files}
        results = run_all(space, mutants, originals, args, equivalents, timeouts)
    wall = time.monotonic() - started
    if not args.quick and not args.match:
        known = {m.id for m in mutants}
        for stale in sorted(k for k in equivalents if k.split(":")[0] in args.files
                            and k not in known):
            print(f"note: equivalent {stale} matches no mutant now", file=sys.stderr)
    print(report(results, args.files))
    per_mutant = sum(r.seconds for r in results) / max(1, len(results))
    print(f"\n{len(results)} mutants in {wall:.0f} s with {args.jobs} jobs "
          f"({per_mutant:.1f} s per mutant); reference runs: "
          + ", ".join(f"{s} {t:.1f} s" for s, t in reference.items()))
    if args.json:
        write_json(args.json, {
            "files": args.files, "rev": args.rev, "quick": args.quick,
            "seed": args.seed if args.quick else None,
            "jobs": args.jobs, "timeout_s": timeouts, "wall_s": round(wall, 1),
            "suites": {s: str(SUITES[s].relative_to(ROOT)) for s in suites},
            "reference_s": reference, "mutants": [r.to_json() for r in results],
            **score(results)})
    print(score_line(results))
    return 0


def score(results: list[Result]) -> dict[str, int]:
    return {"killed": sum(r.outcome in CAUGHT for r in results),
            "by_invariant": sum(r.outcome == KILLED for r in results),
            "by_steps": sum(r.outcome in (LOST_STEPS, NEW_STEPS) for r in results),
            "by_space": sum(r.outcome == NEW_SPACE for r in results),
            "by_hidden_bug": sum(r.outcome == HIDES_BUG for r in results),
            "non_equivalent": sum(r.outcome != EQUIVALENT for r in results)}


def score_line(results: list[Result]) -> str:
    counts = score(results)
    return (f"mutation score: {counts['killed']} of {counts['non_equivalent']} non-equivalent "
            f"mutants killed ({counts['by_invariant']} by an invariant, "
            f"{counts['by_steps']} by steps reached differently, "
            f"{counts['by_space']} by a state space of another size, "
            f"{counts['by_hidden_bug']} by a bug profile no longer caught)")


def rescore(path: Path, equivalents: dict[str, str]) -> int:
    """The report of a run saved with --json, judged against the equivalents as they are now:
    editing the list needs no new run."""
    doc = json.loads(path.read_text())
    results = []
    for m in doc["mutants"]:
        mutant = Mutant(*(m[f] for f in ("id", "file", "line", "function", "operator", "old",
                                          "new")), edits=())
        results.append(judge(Result(mutant, m["outcome"], m["detail"], m["seconds"]),
                             equivalents))
    print(report(results, doc["files"]))
    print(f"\nsaved run: {path} ({doc['rev'] or 'working tree'}, {len(results)} mutants, "
          f"{doc['wall_s']:.0f} s with {doc['jobs']} jobs)")
    print(score_line(results))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("interrupted")
