"""A one-line progress display for `verify` on stderr.

Hand-written rather than tqdm or rich: the line we want counts explored *states* and their rate
as well as checks, must keep stdout (the report) untouched, and must stay silent in CI logs;
that is some sixty lines, not worth a runtime dependency.

It draws nothing unless the stream is a terminal (and not `--quiet`), and nothing during the
first second, so short runs and redirected output stay clean. It has no thread: it redraws when
the suite runner calls it (at least once per check; engines may call `states()` mid-check),
at most every `interval` seconds. Call it from one thread.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

from checker.gate.results import CheckResult

_CLEAR_TO_EOL = "\x1b[K"


class Progress:
    """`checks done/total, states, states/s, elapsed` on one self-overwriting stderr line."""

    def __init__(
        self,
        total: int,
        *,
        stream: TextIO | None = None,
        quiet: bool = False,
        enabled: bool | None = None,
        delay: float = 1.0,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled and not quiet
        self.delay = delay
        self.interval = interval
        self._clock = clock
        self._start = clock()
        self._last_draw: float | None = None
        self.done = 0
        self._done_states = 0
        self._current_states = 0
        self.current: str | None = None
        self.drawn = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def states(self) -> int:
        """States explored so far: finished checks plus the running one."""
        return self._done_states + self._current_states

    def start_check(self, check_id: str) -> None:
        """A check begins; its id is shown while it runs."""
        self.current = check_id
        self._current_states = 0
        self._maybe_draw()

    def update_states(self, count: int) -> None:
        """The running check has explored `count` states so far (for long checks)."""
        self._current_states = count
        self._maybe_draw()

    def check_done(self, result: CheckResult | None = None, *, states: int | None = None) -> None:
        """A check finished; its state count comes from the result, else from `states`, else
        from the last `update_states`."""
        if result is not None and result.states is not None:
            states = result.states
        self._done_states += states if states is not None else self._current_states
        self._current_states = 0
        self.current = None
        self.done += 1
        self._maybe_draw(force=self.done == self.total)

    def line(self) -> str:
        """The text of the progress line (without terminal control codes)."""
        elapsed = max(self._clock() - self._start, 0.0)
        rate = self.states / elapsed if elapsed > 0 else 0.0
        text = (
            f"verify: {self.done}/{self.total} checks  {self.states:,} states  "
            f"{rate:,.0f} states/s  {elapsed:.1f} s"
        )
        if self.current:
            text += f"  {self.current}"
        return text

    def close(self) -> None:
        """Erase the line, so the report or the next message starts on a clean line."""
        if self.drawn:
            self.stream.write("\r" + _CLEAR_TO_EOL)
            self.stream.flush()
            self.drawn = False

    def _maybe_draw(self, *, force: bool = False) -> None:
        if not self.enabled:
            return
        now = self._clock()
        if now - self._start < self.delay:
            return
        if not force and self._last_draw is not None and now - self._last_draw < self.interval:
            return
        width = shutil.get_terminal_size((80, 24)).columns
        self.stream.write("\r" + self.line()[: max(width - 1, 1)] + _CLEAR_TO_EOL)
        self.stream.flush()
        self._last_draw = now
        self.drawn = True
