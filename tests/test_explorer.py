"""The generic explorer, trace and graph code on small toy models."""

import json
from typing import NamedTuple

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from toy_models import Counters, Forks, Move, Prop

from checker.engines.bfs import first_stuck_state
from checker.engines.explorer import FAIL, INCONCLUSIVE, PASS, Bounds, explore
from checker.views.graph import state_graph, to_dot, to_graphml
from checker.views.trace import ReplayError, replay, trace_to_json, trace_to_text


def test_exhaustive_run_counts_states_and_transitions():
    result = explore(Counters(), [Prop("SUM", "state", lambda s: sum(s) <= 6)])
    assert result.verdict == PASS and result.bound_hit is None
    assert result.distinct_states == 10  # unordered pairs over 0..3
    assert result.max_depth == 6
    assert result.transitions > result.distinct_states
    full = explore(Counters(), [], symmetry=False)
    assert full.distinct_states == 16


def test_state_violation_trace_is_shortest_and_concrete():
    result = explore(Counters(), [Prop("SUM<4", "state", lambda s: sum(s) < 4)])
    assert result.verdict == FAIL and result.violated == "SUM<4"
    trace = result.trace
    assert len(trace) == 4 == result.violation.depth
    assert sum(trace.steps[-1][1]) == 4
    # every step is a real successor of the previous concrete state
    state = trace.initial
    for label, nxt in trace.steps:
        assert (label, nxt) in Counters().successors(state)
        state = nxt


def test_transition_violation_includes_the_bad_step():
    never_reset_from_3 = Prop("NO-RESET-AT-3", "transition",
                              lambda s, lab, t: not (lab.action == "reset" and 3 in s))
    result = explore(Counters(), [never_reset_from_3])
    assert result.violated == "NO-RESET-AT-3"
    assert result.trace.steps[-1][0].action == "reset" and len(result.trace) == 4


def test_transition_property_is_checked_only_on_the_labels_it_concerns():
    seen = []

    def no_reset_from_3(s, lab, t):
        seen.append(lab.action)
        return not (lab.action == "reset" and 3 in s)

    prop = Prop("NO-RESET-AT-3", "transition", no_reset_from_3)
    prop.concerns = lambda lab: lab.action == "reset"
    result = explore(Counters(), [prop])
    plain = explore(Counters(), [Prop("NO-RESET-AT-3", "transition",
                                      lambda s, lab, t: not (lab.action == "reset" and 3 in s))])
    assert seen and set(seen) == {"reset"}
    assert (result.trace.steps, result.transitions) == (plain.trace.steps, plain.transitions)
    prop.concerns = lambda lab: False  # a property that concerns nothing is never violated
    assert explore(Counters(), [prop]).verdict == PASS


def test_eventually_property_and_stuck_states():
    class Trap(Counters):
        def successors(self, state):
            if state[0] == self.limit:
                return [(Move("spin", "env"), state)]
            return super().successors(state)

    goal = Prop("CAN-RETURN", "eventually", lambda s: s == (0, 0))
    assert explore(Counters(), [goal], symmetry=False).verdict == PASS
    result = explore(Trap(), [goal], symmetry=False)
    assert result.verdict == FAIL and result.trace.steps[-1][1][0] == 3
    assert len(result.trace) == 3


@pytest.mark.parametrize(("bounds", "hit"), [(Bounds(max_depth=2), "depth"),
                                            (Bounds(max_states=3), "states"),
                                            (Bounds(max_seconds=0.0000001), "time")])
def test_bounds_make_a_clean_run_inconclusive(bounds, hit):
    result = explore(Counters(limit=50), [], bounds)
    assert result.verdict == INCONCLUSIVE and result.bound_hit == hit
    assert "bounded, not exhaustive" in result.summary()


def test_same_run_gives_the_same_trace():
    prop = [Prop("SUM<5", "state", lambda s: sum(s) < 5)]
    first, second = explore(Counters(), prop), explore(Counters(), prop)
    assert first.trace.steps == second.trace.steps


def test_trace_json_replays_and_rejects_tampering():
    model = Counters()
    trace = explore(model, [Prop("SUM<3", "state", lambda s: sum(s) < 3)]).trace
    data = json.loads(json.dumps(trace_to_json(trace, model)))
    assert data["version"] == 1 and data["model"] == {"model": "counters", "limit": 3}
    assert replay(model, data).steps == trace.steps
    data["steps"][0]["step"]["cpu"] = 7
    with pytest.raises(ReplayError):
        replay(model, data)
    text = trace_to_text(trace, model)
    assert "violates SUM<3 after 3 steps" in text and "inc [counter" in text and "->" in text


def test_state_graph_exports(tmp_path):
    graph = state_graph(Counters(limit=2), symmetry=False)
    assert isinstance(graph, nx.DiGraph) and graph.graph["exhaustive"]
    assert graph.number_of_nodes() == 9
    assert graph.nodes[0]["initial"]
    path = tmp_path / "g.graphml"
    to_graphml(graph, path)
    assert nx.read_graphml(path).number_of_nodes() == 9
    dot = to_dot(graph)
    assert dot.startswith("digraph") and "->" in dot and "style=bold" in dot
    assert not state_graph(Counters(limit=20), Bounds(max_states=5)).graph["exhaustive"]


class Pair(NamedTuple):
    a: int
    b: int


class PairCounters(Counters):
    """`Counters` with NamedTuple states and a step that changes nothing."""

    def initial_states(self):
        return [Pair(0, 0)]

    def successors(self, state):
        out = [(lab, Pair(*nxt)) for lab, nxt in super().successors(state)]
        return out + [(Move("idle", "env"), state)]

    def canonical(self, state):
        return Pair(*sorted(state))


def test_state_property_is_not_checked_again_when_the_fields_it_reads_are_unchanged():
    calls = []

    def small_a(s):
        calls.append(s)
        return s.a < 2

    prop = Prop("A<2", "state", small_a)
    prop.reads = ("a",)
    for stop in (True, False):
        calls.clear()
        result = explore(PairCounters(), [prop], stop_at_first=stop)
        plain = explore(PairCounters(), [Prop("A<2", "state", lambda s: s.a < 2)],
                        stop_at_first=stop)
        assert (result.trace.steps, result.distinct_states, result.transitions) == \
            (plain.trace.steps, plain.distinct_states, plain.transitions)
        assert len(calls) < plain.distinct_states  # (1, 1) comes from (0, 1): `a` unchanged


def test_transition_property_is_not_called_on_steps_that_keep_the_fields_it_watches():
    def b_small_steps(calls):
        def check(s, lab, t):
            calls.append((s, t))
            return abs(t.b - s.b) <= 1 or lab.action == "reset"
        return check

    watched_calls, plain_calls = [], []
    prop = Prop("B-SMALL-STEPS", "transition", b_small_steps(watched_calls))
    prop.watches = "b"
    result = explore(PairCounters(), [prop])
    plain = explore(PairCounters(), [Prop("B-SMALL-STEPS", "transition",
                                          b_small_steps(plain_calls))])
    assert result.verdict == plain.verdict == PASS
    assert result.transitions == plain.transitions == len(plain_calls)
    assert watched_calls and all(s.b != t.b for s, t in watched_calls)
    assert len(watched_calls) == sum(1 for s, t in plain_calls if s.b is not t.b)


def test_eventually_property_ignores_edges_out_of_goal_states():
    class OneWay(PairCounters):
        """Once `a` reaches the limit nothing leads back: every such state is stuck."""

        def successors(self, state):
            if state.a == self.limit:
                return [(Move("spin", "env"), state)]
            return super().successors(state)

    goal = Prop("LOW", "eventually", lambda s: s.a < 3)
    result = explore(OneWay(), [goal], symmetry=False)
    assert result.verdict == FAIL and result.trace.states[-1].a == 3
    assert explore(PairCounters(), [goal], symmetry=False).verdict == PASS


def _at_top(state) -> bool:
    return state[1] == 2


@pytest.mark.parametrize("mode", [{}, {"fingerprints": True},
                                  {"workers": 2, "backend": "inline"},
                                  {"workers": 3, "backend": "inline"}, {"workers": 2}],
                         ids=["exact", "fingerprints", "2 inline", "3 inline", "2 processes"])
def test_reachable_is_judged_from_each_initial_state_only(mode):
    """A "reachable" goal must be reachable from every initial state, not from every state:
    the trap beside the climb breaks "eventually" but not "reachable"; the start that never
    climbs breaks both, and a "reachable" violation's trace is that start, with no steps."""
    reach, ever = Prop("TOP-REACHABLE", "reachable", _at_top), Prop("TOP-EVER", "eventually",
                                                                     _at_top)
    one = explore(Forks("a"), [reach, ever], stop_at_first=False, **mode)
    assert one.verdict == FAIL and set(one.violations) == {"TOP-EVER"}
    assert one.violations["TOP-EVER"].trace.states[-1] == ("trap", 0)
    both = explore(Forks("ab"), [reach], **mode)
    assert both.verdict == FAIL and both.violated == "TOP-REACHABLE"
    assert both.trace.initial == ("b", 0) and len(both.trace) == 0 and both.trace
    assert explore(Forks("ba"), [reach], **mode).trace.initial == ("b", 0)


@pytest.mark.parametrize("mode", [{}, {"workers": 2, "backend": "inline"}],
                         ids=["one process", "2 inline"])
def test_a_start_may_reach_its_goal_through_another_start_or_be_one_with_it(mode):
    """("b", 0) reaches the top only by crossing to the other start; and two starts that are
    one canonical state are judged once (with symmetry folding "b" into "a", the one start
    left reaches the top)."""
    reach = Prop("TOP-REACHABLE", "reachable", _at_top)
    assert explore(Forks("ba", bridge=True), [reach], **mode).verdict == PASS

    class Folded(Forks):
        def canonical(self, state):
            return ("a", state[1]) if state[0] == "b" else state

    folded = explore(Folded("ba"), [reach], **mode)
    assert folded.verdict == PASS and folded.distinct_states == 4  # a0 a1 a2 and the trap


def test_a_reachable_violation_reads_as_an_initial_state_and_draws_there():
    trace = explore(Forks("ab"), [Prop("TOP-REACHABLE", "reachable", _at_top)]).trace
    text = trace_to_text(trace, Forks(), "reachable")
    assert text.splitlines()[0].startswith("violates TOP-REACHABLE: no run from this initial")
    assert "('b', 0)" in text
    graph = state_graph(Forks("ab"), properties=[Prop("TOP-REACHABLE", "reachable", _at_top)])
    flagged = {graph.nodes[n]["label"] for n in graph.nodes if graph.nodes[n].get("violating")}
    assert flagged == {str(("b", 0))}  # not ("b", 1), nor the trap: neither is a start


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n),
    st.lists(st.booleans(), min_size=n, max_size=n))))
def test_the_first_stuck_state_is_the_least_that_reaches_no_goal(graph):
    """Against networkx: the least state with no path to a goal (edges out of goals are
    dropped, as the explorer never records them)."""
    count, edges, goals = graph
    edges = [(a, b) for a, b in edges if not goals[a]]
    reference = nx.DiGraph()
    reference.add_nodes_from(range(count))
    reference.add_edges_from(edges)
    reaching = set()
    for goal in (i for i in range(count) if goals[i]):
        reaching |= nx.ancestors(reference, goal) | {goal}
    stuck = [i for i in range(count) if i not in reaching]
    assert first_stuck_state(count, [a for a, _ in edges], [b for _, b in edges],
                             bytearray(goals)) == (stuck[0] if stuck else None)


class _Graph:
    """A model that is a directed graph: a state is (node number,), a step is an edge."""

    def __init__(self, count: int, edges: list, starts: list) -> None:
        self.starts = [(s,) for s in starts]
        self.out = {node: [b for a, b in edges if a == node] for node in range(count)}

    def initial_states(self):
        return self.starts

    def successors(self, state):
        return [(Move("go", "env", target), (target,)) for target in self.out[state[0]]]

    def canonical(self, state):
        return state


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 10).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=3 * n),
    st.lists(st.booleans(), min_size=n, max_size=n),
    st.lists(st.integers(0, n - 1), min_size=1, max_size=4, unique=True))))
def test_a_reachable_property_fails_at_the_first_start_that_reaches_no_goal(graph):
    """Against networkx, one process and two workers: whether each start reaches a goal
    (through states first found from another start, too), and which start is reported."""
    count, edges, goals, starts = graph
    reference = nx.DiGraph()
    reference.add_nodes_from(range(count))
    reference.add_edges_from(edges)
    lost = [s for s in starts if not any(goals[t] for t in nx.descendants(reference, s) | {s})]
    prop = Prop("GOAL", "reachable", lambda s: goals[s[0]])
    for mode in ({}, {"fingerprints": True}, {"workers": 2, "backend": "inline"}):
        result = explore(_Graph(count, edges, starts), [prop], **mode)
        assert result.verdict == (FAIL if lost else PASS)
        if lost:
            assert result.trace.initial == (lost[0],) and len(result.trace) == 0
