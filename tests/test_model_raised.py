"""A model that raises is a defect of the model, never a verdict: every search engine ends with
`ModelRaised`, naming the error, the line that raised and the shortest trace to the state whose
steps raised (a walk's steps, for a simulation); the command line and the gate show it so."""

from __future__ import annotations

import dataclasses

import pytest

from checker.cli import main
from checker.engines.bfs import describe_raise
from checker.engines.explorer import FAIL, ModelRaised, explore
from checker.engines.simulate import WalkBounds, simulate
from checker.gate.baseline import compare
from checker.gate.flowcheck import flow_recipe
from checker.gate.runners import run_check
from checker.gate.suite import Bounds, CheckSpec
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


def test_the_place_named_is_the_models_own_line_not_pythons_library():
    @dataclasses.dataclass
    class Point:
        x: int

    try:
        dataclasses.replace(Point(1), y=2)  # raises inside dataclasses.py
    except TypeError as exc:
        error, (file, line, function) = describe_raise(exc)
    assert error.startswith("TypeError: ") and "'y'" in error
    assert file == "tests/test_model_raised.py" or file.endswith("/tests/test_model_raised.py")
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
    result = run_check(CheckSpec("flow/v6.8/1x1", "flow", "v6.8", "1x1", Bounds()))
    assert result.status == "error" and result.invariant == "CHECKER-ERROR"
    assert result.location.function == "raising"
    assert result.location.file.endswith("test_model_raised.py")
    assert "\n" not in result.detail and PLANTED in result.detail
    assert "traceback" not in result.extra  # not a crash of the checker
    text = render_text([result], compare([result], None))
    assert "ERROR CHECKER-ERROR" in text and "init_tdx_module [caller 0] -> 0" in text
