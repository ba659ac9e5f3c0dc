"""Counterexamples the model gives as it is now, for tests that edit them: a stored trace stops
replaying as soon as the flow model's steps or invariants change, an edit of a fresh one keeps
testing what it was written for."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from checker.gate.corpus import document, with_recorded_result
from checker.gate.runners import run_check
from checker.gate.suite import Bounds, CheckSpec


@cache
def _fresh_trace(profile: str) -> dict[str, Any]:
    result = run_check(CheckSpec(f"flow/{profile}/default", "flow", profile, "default",
                                 Bounds()))
    assert result.status == "fail", f"{profile} no longer fails on the default configuration"
    return with_recorded_result(document(result.id, result.profile, result.config,
                                         result.invariant, dict(result.counterexample)))


def fresh_trace(profile: str) -> dict[str, Any]:
    """The counterexample file `verify` would store for `profile` on the default flow
    configuration (a copy: edit it at will)."""
    return copy.deepcopy(_fresh_trace(profile))


def edited(doc: dict[str, Any], edits: list[tuple[str, Any]]) -> dict[str, Any]:
    """`doc` with each `path = value` applied; a path is keys and list indexes joined by dots
    (`counterexample.trace.steps.0.step`)."""
    for path, value in edits:
        *parents, last = (int(p) if p.isdigit() else p for p in path.split("."))
        node = doc
        for key in parents:
            node = node[key]
        node[last] = value
    return doc
