"""The mutator of benchmarks/bench_mutation.py: each operator makes the change it names, and
nothing else; ids do not move with line numbers. Mutants are never run here (that is the
benchmark's work)."""

from __future__ import annotations

import ast

import pytest
from checkout import REPO, benchmark

bench = benchmark("bench_mutation")

SOURCE = '''\
"""A module."""
from spec.errno import ENOMEM, ENOSPC

A, B, C = 0, 1, 2


def f(x: int, items: list, flag: bool = True) -> int:
    """Doc."""
    y = x + 1
    if x < y and not items:
        return A
    items.append(y)
    return -ENOMEM


def g(x):
    if x is None:
        raise ValueError("x")
    a = x
    b = 2
    a = a * b
    return a == b
'''


def mutated(source: str, operator: str) -> set[str]:
    """The mutated modules one operator makes, each as its AST dump."""
    data = source.encode()
    return {ast.dump(ast.parse(m.apply(data))) for m in bench.mutants_of("t.py", data)
            if m.operator == operator}


def edit(*pairs: tuple[str, str]) -> str:
    """The dump of SOURCE after replacing each old text by the new one."""
    text = SOURCE
    for old, new in pairs:
        assert old in text
        text = text.replace(old, new, 1)
    return ast.dump(ast.parse(text))


@pytest.mark.parametrize(("operator", "expected"), [
    ("compare", [edit(("x < y", "x <= y")), edit(("a == b", "a != b"))]),
    ("remove-not", [edit(("not items", "items"))]),
    ("and-or", [edit(("x < y and not items", "x < y or not items"))]),
    ("plus-minus", [edit(("x + 1", "x - 1"))]),
    ("constant", [edit(("x + 1", "x + 2")), edit(("x + 1", "x + 0")),
                  edit(("0, 1, 2", "1, 1, 2")), edit(("0, 1, 2", "-1, 1, 2")),
                  edit(("0, 1, 2", "0, 2, 2")), edit(("0, 1, 2", "0, 0, 2")),
                  edit(("0, 1, 2", "0, 1, 3")), edit(("0, 1, 2", "0, 1, 1")),
                  edit(("b = 2", "b = 3")), edit(("b = 2", "b = 1"))]),
    ("drop-statement", [edit(("return A", "pass")), edit(("items.append(y)", "pass")),
                        edit(("a = a * b", "pass"))]),
    ("swap-statements", [
        edit(("    if x < y and not items:\n        return A\n    items.append(y)\n",
              "    items.append(y)\n    if x < y and not items:\n        return A\n")),
        edit(("    items.append(y)\n    return -ENOMEM\n",
              "    return -ENOMEM\n    items.append(y)\n")),
        edit(("    a = a * b\n    return a == b\n", "    return a == b\n    a = a * b\n"))]),
    ("neighbour-constant", [edit(("return A", "return B")), edit(("-ENOMEM", "-ENOSPC"))]),
    ("negate-if", [edit(("if x < y and not items", "if not (x < y and not items)"))]),
])
def test_each_operator_makes_its_change_and_no_other(operator, expected):
    # Untouched: the docstrings, the import, the annotations, the default `True`, the `if`
    # that only raises, the swap of `a = x` / `b = 2`, which commute, and the changes that
    # leave a name unbound (dropping `y = x + 1`, `a = x` or `b = 2`; moving `b = 2` below
    # `a = a * b`): those mutants could not run.
    assert mutated(SOURCE, operator) == set(expected)


def test_memo_tables_are_not_mutated():
    source = '''\
class M:
    def __init__(self):
        self._memo = {}

    def get(self, key):
        value = self._memo.get(key)
        if value is None:
            value = self._memo[key] = key * 3
        return value
'''
    changes = {(m.operator, m.old) for m in bench.mutants_of("t.py", source.encode())}
    assert changes == {("constant", "key * 3")}


def test_no_drop_or_swap_leaves_a_name_unbound_on_some_path():
    source = '''\
def f(c, items):
    if c:
        x = 1
    else:
        x = 2
    total = 0
    for item in items:
        item = item * x
        total += item
    return total
'''
    changes = {(m.operator, m.old) for m in bench.mutants_of("t.py", source.encode())
               if m.operator in ("drop-statement", "swap-statements")}
    # Not made: `x = 1` or `x = 2` dropped, `total = 0` dropped or moved below the loop that
    # adds to it (a name unbound on some path). Rebinding the loop variable is a mutant like any.
    assert changes == {("drop-statement", "item = item * x"),
                       ("drop-statement", "total += item"),
                       ("swap-statements", "if c: x = 1 else: x = 2\ntotal = 0"),
                       ("swap-statements", "item = item * x\ntotal += item"),
                       ("swap-statements", "for item in items: item = item * x total += item"
                                           "\nreturn total")}


def test_concatenations_get_no_minus():
    source = 'def f(a, t):\n    return a + "x", t + (1,), a - 1\n'
    assert [m.new for m in bench.mutants_of("t.py", source.encode())
            if m.operator == "plus-minus"] == ["a + 1"]


def test_ids_are_stable_and_do_not_depend_on_line_numbers():
    first = [m.id for m in bench.mutants_of("t.py", SOURCE.encode())]
    again = [m.id for m in bench.mutants_of("t.py", SOURCE.encode())]
    moved = SOURCE.replace("A, B, C = 0, 1, 2\n", "# a comment\n\nA, B, C = 0, 1, 2\n")
    assert first == again == [m.id for m in bench.mutants_of("t.py", moved.encode())]
    assert len(set(first)) == len(first)
    assert any(i.startswith("t.py:f:plus-minus:") and i.endswith("#0") for i in first)


def test_description_names_place_function_and_change():
    mutant = next(m for m in bench.mutants_of("t.py", SOURCE.encode())
                  if m.operator == "compare" and m.function == "f")
    assert (mutant.where, mutant.function, mutant.change) == ("t.py:10", "f",
                                                              "x < y -> x <= y")


def test_every_mutant_of_the_tdmr_engine_compiles_and_changes_it():
    source = (REPO / "spec" / "tdmr.py").read_bytes()
    original = ast.dump(ast.parse(source))
    mutants = bench.mutants_of("spec/tdmr.py", source)
    assert len(mutants) > 100
    assert {m.operator for m in mutants} == set(bench.OPERATORS)
    for mutant in mutants:
        text = mutant.apply(source)
        compile(text, mutant.id, "exec")
        assert ast.dump(ast.parse(text)) != original, mutant.id


def _report(*transitions: tuple[str, str | None, str | None]) -> dict:
    """A verify report whose regressions are (transition, status, invariant) triples."""
    return {"baseline": {"transitions": [
        {"check_id": f"check-{n}", "severity": "regression", "transition": name,
         "explanation": "why", "actual": status and {"status": status, "invariant": inv}}
        for n, (name, status, inv) in enumerate(transitions)]}}


@pytest.mark.parametrize("transitions,outcome", [
    ([("coverage-lost", "pass", None), ("new-failure", "fail", "FREE-ONCE")], bench.KILLED),
    ([("expected-failure-passes", "pass", None), ("coverage-lost", "pass", None)],
     bench.LOST_STEPS),
    ([("new-error", "error", "CHECKER-ERROR"), ("expected-failure-passes", "pass", None)],
     bench.HIDES_BUG),
    ([("expected-failure-passes", "pass", None), ("state-space-changed", "pass", None)],
     bench.NEW_SPACE),
    ([("state-space-changed", "fail", "DEADLOCK-FREE")], bench.NEW_SPACE),  # a bug, as caught
    ([("new-error", "error", "CHECKER-ERROR")], bench.CRASHED),
    ([("new-failure", "fail", "CHECKER-ERROR")], bench.CRASHED),
    ([("check-added", None, None)], bench.MASKED),
])
def test_a_mutant_counts_as_caught_only_when_the_gate_names_a_changed_behaviour(transitions,
                                                                                outcome):
    assert bench.classify(1, _report(*transitions), "")[0] == outcome
    assert (outcome in bench.CAUGHT) == (outcome not in (bench.CRASHED, bench.MASKED))
    assert bench.classify(0, _report(), "")[0] == bench.SURVIVED
    assert bench.classify(1, None, "Traceback\nZeroDivisionError")[0] == bench.CRASHED


def test_every_listed_equivalent_names_a_mutant_the_benchmark_makes():
    """An equivalent whose code changed names no mutant any more: the list must follow the
    code, or it keeps reasons for changes nobody can make and hides nothing it claims to."""
    listed = bench.load_equivalents(bench.EQUIVALENTS)
    files = sorted({key.split(":")[0] for key in listed})
    made = {m.id for path in files for m in bench.mutants_of(path)}
    assert sorted(set(listed) - made) == []
