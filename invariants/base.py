"""The record every named invariant shares: what it is called, what it says, where it comes from."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Invariant:
    """A named property: a KEBAB-CASE id, a one-line statement and the rule it guards."""

    id: str
    statement: str
    source: str
