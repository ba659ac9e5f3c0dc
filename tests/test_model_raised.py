"""A model that raises is a defect of the model, never a verdict: every search engine ends with
`ModelRaised`, naming the error, the line that raised and the shortest trace to the state whose
steps raised (a walk's steps, for a simulation); the command line and the gate show it so."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from checker.cli import main
from checker.engines.bfs import describe_raise
from checker.engines.explorer import FAIL, INCONCLUSIVE, Bounds, ModelRaised, explore
from checker.engines.simulate import WalkBounds, simulate
from checker.gate.baseline import compare
from checker.gate.flowcheck import flow_recipe
from checker.gate.runners import run_check
from checker.gate.suite import Bounds as CheckBounds
from checker.gate.suite import CheckSpec
from checker.views.reports import render_text
from spec.flow import TdxFlow
from spec.flow_state import INITIALIZED

MODES = {
    "exact": {},
    "fingerprints": {"fingerprints": True},
    "2 workers inline": {"workers": 2, "backend": "inline"},
    "3 workers inline": {"workers": 3, "backend": "inline"},
    "2 worker processes": {"workers": 2},
}
PLANTED = "a planted defect"


def initialised(state) -> bool:
    return state.status == INITIALIZED


class NeverInitialised:
    """A state property that fails where the planted defect raises."""

    id, kind = "NEVER-INITIALISED", "state"

    @staticmethod
    def check(state) -> bool:
        return not initialised(state)


class RaisesOnceInitialised:
    """The flow model, but taking the steps of an initialised state raises."""

    def __init__(self, model) -> None:
        self.model = model

    def successors(self, state):
        if initialised(state):
            raise IndexError(PLANTED)
        return self.model.successors(state)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


def _planted(monkeypatch) -> None:
    """The same defect in the flow model itself, for the command line and the gate."""
    successors = TdxFlow.successors

    def raising(self, state):
        if initialised(state):
            raise IndexError(PLANTED)
        return successors(self, state)

    monkeypatch.setattr(TdxFlow, "successors", raising)


def test_code_generated_at_run_time_is_not_the_place_named():
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int

    try:
        Point(1).x = 2  # raises in the dataclass's generated __setattr__ ("<string>")
    except dataclasses.FrozenInstanceError as exc:
        _, (file, _, function) = describe_raise(exc)
    assert file.endswith("test_model_raised.py")
    assert function == "test_code_generated_at_run_time_is_not_the_place_named"


def test_the_place_named_is_the_models_own_line_not_pythons_library():
    @dataclasses.dataclass
    class Point:
        x: int

    try:
        dataclasses.replace(Point(1), y=2)  # raises inside dataclasses.py
    except TypeError as exc:
        error, (file, line, function) = describe_raise(exc)
    assert error.startswith("TypeError: ") and "'y'" in error
    assert file.endswith("/tests/test_model_raised.py")
    assert function == "test_the_place_named_is_the_models_own_line_not_pythons_library"


def _labels(trace) -> list[str]:
    return [str(label) for label, _ in trace.steps]


@pytest.fixture(scope="module")
def flow_2x1():
    return flow_recipe("v6.8", "2x1")


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_traces_the_first_state_in_search_order_whose_steps_raise(flow_2x1, mode):
    """The state whose steps raise is the first initialised state in breadth-first order:
    the one the property "never initialised" is first broken by, with the same trace."""
    model, properties = flow_2x1
    shortest = explore(model, [NeverInitialised]).trace
    with pytest.raises(ModelRaised) as raised:
        explore(RaisesOnceInitialised(model), properties, **MODES[mode])
    trace = raised.value.trace
    assert _labels(trace) == _labels(shortest) and trace.states == shortest.states
    assert trace.invariant is None
    assert raised.value.error == f"IndexError: {PLANTED}"
    file, line, function = raised.value.where
    assert file.endswith("test_model_raised.py") and function == "successors"
    assert f"{len(trace)} steps from the start" in str(raised.value)


@pytest.mark.parametrize("mode", MODES)
def test_a_violation_the_search_stops_at_first_comes_before_the_raise(flow_2x1, mode):
    """A run that stops at its first violation never takes the steps of the state beyond
    it; one that goes on does, and raises there, in every mode alike."""
    model, _ = flow_2x1
    planted = RaisesOnceInitialised(model)
    result = explore(planted, [NeverInitialised], **MODES[mode])
    assert result.verdict == FAIL and result.violated == "NEVER-INITIALISED"
    with pytest.raises(ModelRaised):
        explore(planted, [NeverInitialised], stop_at_first=False, **MODES[mode])


class RaisesOnInitialisedState:
    """A state property that raises on an initialised state (checked when it is found)."""

    id, kind = "RAISES-ON-STATE", "state"

    @staticmethod
    def check(state) -> bool:
        if initialised(state):
            raise KeyError(PLANTED)
        return True


class RaisesOnStepIntoInitialised:
    """A transition property that raises on a step into an initialised state."""

    id, kind = "RAISES-ON-STEP", "transition"

    @staticmethod
    def check(state, label, nxt) -> bool:
        if initialised(nxt):
            raise KeyError(PLANTED)
        return True


class RaisesOnEveryState(RaisesOnInitialisedState):
    id = "RAISES-EVERYWHERE"

    @staticmethod
    def check(state) -> bool:
        raise KeyError(PLANTED)


@pytest.mark.parametrize("prop", [RaisesOnInitialisedState, RaisesOnStepIntoInitialised])
@pytest.mark.parametrize("mode", MODES)
def test_a_property_that_raises_is_traced_to_the_state_whose_steps_it_judged(flow_2x1, mode,
                                                                               prop):
    """Found where the first initialised state is first met: taking its parent's steps."""
    model, _ = flow_2x1
    shortest = explore(model, [NeverInitialised]).trace
    with pytest.raises(ModelRaised) as raised:
        explore(model, [prop], **MODES[mode])
    trace = raised.value.trace
    assert _labels(trace) == _labels(shortest)[:-1] and trace.states == shortest.states[:-1]
    assert raised.value.where[2] == "check" and PLANTED in raised.value.error


@pytest.mark.parametrize("mode", MODES)
def test_a_property_that_raises_on_an_initial_state_gives_a_trace_of_no_steps(flow_2x1, mode):
    model, _ = flow_2x1
    with pytest.raises(ModelRaised, match="taking the steps of an initial state") as raised:
        explore(model, [RaisesOnEveryState], **MODES[mode])
    assert raised.value.trace.steps == []
    assert raised.value.trace.initial in list(model.initial_states())


def test_the_error_crosses_a_process_boundary_without_its_model(flow_2x1):
    model, properties = flow_2x1
    with pytest.raises(ModelRaised) as raised:
        explore(RaisesOnceInitialised(model), properties)
    copy = pickle.loads(pickle.dumps(raised.value))
    assert str(copy) == str(raised.value) and copy.where == raised.value.where
    assert copy.trace.states == raised.value.trace.states and copy.model is None


def test_an_interrupt_is_no_model_defect(flow_2x1):
    model, properties = flow_2x1

    class Interrupted(RaisesOnceInitialised):
        def successors(self, state):
            if initialised(state):
                raise KeyboardInterrupt
            return self.model.successors(state)

    for mode in ("exact", "2 workers inline"):
        with pytest.raises(KeyboardInterrupt):
            explore(Interrupted(model), properties, **MODES[mode])


def _search_order(model):
    """Each state's parent and depth in breadth-first order (ids as the explorer numbers
    them), from the exact explorer's graph: a state's parent is the first to reach it."""
    graph = explore(model, [], keep_graph=True).graph
    parent = {i: -1 for i in graph.initial}
    for source, _, target in graph.edges:
        parent.setdefault(target, source)
    depth = {}
    for ident in range(len(graph.states)):
        depth[ident] = 0 if parent[ident] < 0 else depth[parent[ident]] + 1
    return graph.states, parent, depth


class RaisesAt(RaisesOnceInitialised):
    """The flow model, but taking the steps of one given state raises."""

    def __init__(self, model, target) -> None:
        super().__init__(model)
        self.target = target

    def successors(self, state):
        if self.model.canonical(state) == self.target:
            raise IndexError(PLANTED)
        return self.model.successors(state)


@pytest.mark.parametrize("mode", MODES)
def test_a_cut_within_the_raising_states_level_is_where_one_process_makes_it(flow_2x1, mode):
    """A violation on the steps of an earlier state of the same level, with the search
    stopping at its first, and a state bound reached before the raising state's turn: no
    raise, as in one process; one more state allowed, or no stop, and the raise comes."""
    model, _ = flow_2x1
    states, parent, depth = _search_order(model)
    level = [i for i in range(len(states)) if depth[i] == 4]
    first, target = level[0], level[-1]
    assert target > first and list(model.successors(states[first]))

    class StepsOutOfFirst:
        id, kind = "NO-STEP-OUT-OF-FIRST", "transition"

        @staticmethod
        def check(state, label, nxt) -> bool:
            return model.canonical(state) != states[first]

    planted = RaisesAt(model, states[target])
    options = MODES[mode]
    result = explore(planted, [StepsOutOfFirst], **options)
    assert result.verdict == FAIL and result.violated == "NO-STEP-OUT-OF-FIRST"
    with pytest.raises(ModelRaised) as raised:
        explore(planted, [StepsOutOfFirst], stop_at_first=False, **options)
    assert raised.value.trace.states[-1] == states[target]
    before = sum(1 for i in range(len(states)) if parent[i] < target)  # initial ones too
    bounded = explore(planted, [], Bounds(max_states=before), **options)
    assert bounded.verdict == INCONCLUSIVE and bounded.bound_hit == "states"
    assert bounded.distinct_states == before
    with pytest.raises(ModelRaised):
        explore(planted, [], Bounds(max_states=before + 1), **options)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_walk_that_raises_is_traced_up_to_the_raise(flow_2x1, workers):
    model, properties = flow_2x1
    with pytest.raises(ModelRaised) as raised:
        simulate(RaisesOnceInitialised(model), properties, WalkBounds(200, 60), seed=3,
                 workers=workers)
    trace = raised.value.trace
    states = trace.states
    assert initialised(states[-1]) and not any(map(initialised, states[:-1]))
    current = trace.initial
    for label, state in trace.steps:  # a run of the model
        assert (label, state) in list(model.successors(current))
        current = state
    assert raised.value.where[2] == "successors"


@pytest.mark.parametrize("extra", [[], ["--workers", "2"], ["--simulate"], ["--coverage"],
                                   ["--format", "json"]])
def test_explore_shows_the_error_and_the_trace_and_exits_1(monkeypatch, capsys, extra):
    _planted(monkeypatch)
    code = main(["explore", "--config", "1x1", *extra])
    out, err = capsys.readouterr()
    assert code == 1 and out == ""
    first = err.splitlines()[0]
    assert first.startswith(f"error: the model raised IndexError: {PLANTED} at ")
    assert "test_model_raised.py:" in first and "in raising" in first
    assert "init_tdx_module [caller 0] -> 0" in err  # the step into the initialised state
    assert "Traceback" not in err


def test_verify_reports_an_error_at_the_line_that_raised_with_the_trace(monkeypatch):
    _planted(monkeypatch)
    result = run_check(CheckSpec("flow/v6.8/1x1", "flow", "v6.8", "1x1", CheckBounds()))
    assert result.status == "error" and result.invariant == "CHECKER-ERROR"
    assert result.location.function == "raising"
    assert result.location.file.endswith("test_model_raised.py")
    assert "\n" not in result.detail and PLANTED in result.detail
    assert "traceback" not in result.extra  # not a crash of the checker
    text = render_text([result], compare([result], None))
    assert "ERROR CHECKER-ERROR" in text and "init_tdx_module [caller 0] -> 0" in text
