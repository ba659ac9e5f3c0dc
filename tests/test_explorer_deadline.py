"""`explore`'s time bound holds however slow each expansion is: the explorer reads the clock
before every expansion, so it stops at most one expansion past the deadline. A fake clock that
each expansion moves on by a tenth of a second makes this a count, not a timing."""

from types import SimpleNamespace

from checker.engines import bfs
from checker.engines.explorer import INCONCLUSIVE, PASS, Bounds, explore


class SlowFan:
    """State 0 leads to states 1..1000, which lead nowhere: one wide layer, where a deadline
    read only every so many states would be read late. Every expansion takes `step` seconds of
    the fake clock."""

    def __init__(self, clock: SimpleNamespace, step: float) -> None:
        self.clock, self.step, self.expanded = clock, step, 0

    def initial_states(self):
        return [0]

    def successors(self, state):
        self.expanded += 1
        self.clock.now += self.step
        return [("fan", n) for n in range(1, 1001)] if state == 0 else []

    def canonical(self, state):
        return state


def test_slow_expansions_stop_within_one_expansion_of_the_deadline(monkeypatch):
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(bfs, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    model = SlowFan(clock, step=0.1)
    result = explore(model, (), Bounds(max_seconds=1.0))
    assert result.verdict == INCONCLUSIVE and result.bound_hit == "time"
    assert model.expanded == 11  # the eleventh ends past 1.0 s; no twelfth starts
    assert 1.0 < result.seconds <= 1.0 + model.step + 1e-9


def test_without_a_time_bound_the_clock_does_not_stop_the_run(monkeypatch):
    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(bfs, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    model = SlowFan(clock, step=100.0)
    result = explore(model, (), Bounds())
    assert result.verdict == PASS and result.bound_hit is None and model.expanded == 1001
