"""The progress line: silent when it should be, accurate when it draws."""

from __future__ import annotations

import io

import pytest

from checker.gate.progress import Progress
from checker.gate.results import CheckResult


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    """The line is cut to the terminal width; make it independent of where pytest runs."""
    monkeypatch.setenv("COLUMNS", "200")


def result(states: int | None) -> CheckResult:
    return CheckResult("c", "SYSINIT-ONCE", "v6.8", "2x2", "pass", states=states)


def run(progress: Progress, clock: Clock) -> None:
    progress.start_check("first")
    clock.now += 1.5
    progress.update_states(400)
    progress.check_done(result(1000))
    clock.now += 0.5
    progress.start_check("second")
    progress.check_done(states=500)
    progress.close()


def test_draws_checks_states_rate_and_elapsed_on_a_terminal():
    clock, term = Clock(), Terminal()
    progress = Progress(2, stream=term, clock=clock)
    progress.start_check("pamt-reset/v6.8/2x2")
    clock.now += 2.0
    progress.update_states(3000)
    assert term.getvalue() == (
        "\rverify: 0/2 checks  3,000 states  1,500 states/s  2.0 s  pamt-reset/v6.8/2x2\x1b[K"
    )
    progress.check_done(result(4000))
    assert progress.line() == "verify: 1/2 checks  4,000 states  2,000 states/s  2.0 s"


def test_close_erases_the_line_so_the_report_starts_clean():
    clock, term = Clock(), Terminal()
    progress = Progress(2, stream=term, clock=clock)
    run(progress, clock)
    assert term.getvalue().endswith("\r\x1b[K")
    assert "verify: 2/2 checks  1,500 states" in term.getvalue()  # the last check is drawn
    assert progress.states == 1500
    assert progress.drawn is False


def test_silent_during_the_first_second():
    clock, term = Clock(), Terminal()
    with Progress(3, stream=term, clock=clock) as progress:
        progress.start_check("a")
        clock.now += 0.9
        progress.check_done(result(10))
    assert term.getvalue() == ""


def test_silent_when_not_a_terminal_or_quiet():
    for stream, quiet in ((io.StringIO(), False), (Terminal(), True)):
        clock = Clock()
        run(Progress(2, stream=stream, clock=clock, quiet=quiet), clock)
        assert stream.getvalue() == ""


def test_redraws_at_most_every_interval():
    clock, term = Clock(), Terminal()
    progress = Progress(100, stream=term, clock=clock, delay=0.0, interval=0.5)
    for _ in range(10):
        progress.update_states(progress.states + 1)
        clock.now += 0.1
    assert term.getvalue().count("\r") == 2  # at 0.0 s and at 0.5 s


def test_check_done_without_a_count_keeps_the_last_update():
    clock = Clock()
    progress = Progress(1, stream=io.StringIO(), clock=clock)
    progress.start_check("a")
    progress.update_states(77)
    progress.check_done(result(None))
    assert (progress.done, progress.states, progress.current) == (1, 77, None)


def test_the_line_is_cut_to_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "30")
    clock, term = Clock(), Terminal()
    progress = Progress(2, stream=term, clock=clock, delay=0.0)
    progress.start_check("a-very-long-check-id/v6.8/2x2-with-faults")
    assert term.getvalue() == "\r" + progress.line()[:29] + "\x1b[K"
