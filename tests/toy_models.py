"""Toy models and properties for the generic search engines (explorer, simulation): small
enough to reason about by hand, with the protocol `checker.engines.bfs` describes."""

from __future__ import annotations

from typing import NamedTuple


class Move(NamedTuple):
    action: str
    actor: str
    cpu: int | None = None
    injected: bool = False  # an injected fault (random walks weigh these apart)


class Counters:
    """Two counters 0..limit; either may step up; `reset` sends both back to 0.

    Symmetric in the two counters, so the canonical form sorts them."""

    def __init__(self, limit: int = 3) -> None:
        self.limit = limit

    def initial_states(self):
        return [(0, 0)]

    def successors(self, state):
        out = [(Move("inc", f"counter {i}", i), state[:i] + (state[i] + 1,) + state[i + 1:])
               for i in (0, 1) if state[i] < self.limit]
        return out + [(Move("reset", "env"), (0, 0))]

    def canonical(self, state):
        return tuple(sorted(state))

    def state_fields(self, state):
        return {"a": str(state[0]), "b": str(state[1])}

    def describe(self):
        return {"model": "counters", "limit": self.limit}


class IdleCounters(Counters):
    """Counters with one more step, `idle`, that changes nothing (a self-loop everywhere)."""

    def successors(self, state):
        return super().successors(state) + [(Move("idle", "env"), state)]


class Prop:
    def __init__(self, ident, kind, check):
        self.id, self.kind, self.check = ident, kind, check


class Line:
    """(0,) -> (1,) -> ... -> (end,), one step each and none after the last; each state its
    own canonical form."""

    def __init__(self, end: int) -> None:
        self.end = end

    def initial_states(self):
        return [(0,)]

    def successors(self, state):
        return [] if state[0] == self.end else [(Move("next", "env"), (state[0] + 1,))]

    def canonical(self, state):
        return state


class Faulty:
    """A counter that a fault can stop at any step: a step, or the same step failing; once
    failed, it waits for ever."""

    def initial_states(self):
        return [(0, False)]

    def successors(self, state):
        count, failed = state
        if failed:
            return [(Move("wait", "env"), state)]
        return [(Move("step", "caller"), (count + 1, False)),
                (Move("step", "caller", injected=True), (count, True))]

    def canonical(self, state):
        return state


class Ladder:
    """A climb (0,) -> (1,) -> ... where every rung offers one step up and `falls` steps back
    to the ground: a walk choosing evenly among them almost never climbs far, as a bug that
    needs several unlikely turns in a row. Its `abstract` view is the rung, so walks with
    restarts start again from the highest rungs met and climb on from there."""

    def __init__(self, falls: int = 9) -> None:
        self.falls = falls

    def initial_states(self):
        return [(0,)]

    def successors(self, state):
        return [(Move("up", "climber"), (state[0] + 1,))] + \
            [(Move("fall", "climber", i), (0,)) for i in range(self.falls)]

    def canonical(self, state):
        return state

    def abstract(self, state):
        return state[0]


class Forks:
    """Two starts. From ("a", 0) a climb to ("a", 2), with a trap beside ("a", 1): a step to
    ("trap", 0), which only spins. From ("b", 0) one step to ("b", 1), and nothing after, or
    with `bridge` a step on from there to ("a", 0), the other start."""

    def __init__(self, starts: str = "ab", bridge: bool = False) -> None:
        self.starts, self.bridge = starts, bridge

    def initial_states(self):
        return [(start, 0) for start in self.starts]

    def successors(self, state):
        where, height = state
        if where == "trap":
            return [(Move("spin", "env"), state)]
        out = []
        if height < (2 if where == "a" else 1):
            out.append((Move("up", "climber"), (where, height + 1)))
        if state == ("a", 1):
            out.append((Move("trip", "climber"), ("trap", 0)))
        if state == ("b", 1) and self.bridge:
            out.append((Move("cross", "climber"), ("a", 0)))
        return out

    def canonical(self, state):
        return state
