"""Toy models and properties for the generic search engines (explorer, simulation): small
enough to reason about by hand, with the protocol `checker.engines.bfs` describes."""

from __future__ import annotations

from typing import NamedTuple


class Move(NamedTuple):
    action: str
    actor: str
    cpu: int | None = None


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
