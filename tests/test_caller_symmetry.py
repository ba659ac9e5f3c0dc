"""Caller symmetry: `canonical` also renames the callers the rules treat alike.

The reduction is exact only if renaming callers maps every step to a step and every
invariant's answer to the same answer. These tests check that on every reachable state of small
configurations, for every profile, by renaming states and steps outright (the renaming here is
written afresh, not taken from `spec.statespace`), and that the explorer then counts exactly
the classes of the unreduced state space.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from itertools import permutations

import pytest

from checker.engines.explorer import explore
from checker.inputs.platforms import configure, flow_model
from invariants.flow import flow_invariants
from spec.flow import TdxFlow
from spec.profiles import PROFILES, get_profile


def rename_bits(bits: int, renaming: tuple[int, ...]) -> int:
    count = len(renaming)
    out = bits >> count << count
    for old, new in enumerate(renaming):
        if bits >> old & 1:
            out |= 1 << new
    return out


def rename_state(state, renaming: tuple[int, ...]):
    """The state with caller `old` called `renaming[old]` everywhere it is named."""
    count = len(renaming)
    callers = [None] * count
    for old, new in enumerate(renaming):
        callers[new] = state.callers[old]
    packages = tuple(p._replace(cpus=tuple(
        c._replace(vmx=rename_bits(c.vmx, renaming), visited=rename_bits(c.visited, renaming),
                   frames=tuple(renaming[a] if a < count else a for a in c.frames))
        for c in p.cpus)) for p in state.packages)
    mutex = renaming[state.mutex] if 0 <= state.mutex < count else state.mutex
    return state._replace(callers=tuple(callers), packages=packages, mutex=mutex)


def rename_label(label, renaming: tuple[int, ...]):
    for old, new in enumerate(renaming):
        if label.actor == f"caller {old}":
            return label._replace(actor=f"caller {new}")
    return label


def renamings(callers: tuple[int, ...], count: int):
    """Every renaming of `callers` among themselves (the others keep their names), but the
    identity."""
    for order in permutations(callers):
        renaming = list(range(count))
        for old, new in zip(callers, order, strict=True):
            renaming[old] = new
        if renaming != list(range(count)):
            yield tuple(renaming)


def reachable(flow: TdxFlow) -> list:
    return explore(flow, [], symmetry=False, keep_graph=True).graph.states


def equivariance_breaks(flow: TdxFlow, renaming: tuple[int, ...], states,
                        every: int = 1) -> list[str]:
    """Where renaming the callers does not map steps to steps or keep invariants' answers.
    States are compared by their text, as the model's shared parts hash by identity; `every`
    takes every so many states (the rules' code paths repeat, and the suite has a time
    budget)."""
    invariants = flow_invariants(flow)
    problems = []
    for state in states[::every]:
        moved = rename_state(state, renaming)
        expected = Counter(repr((rename_label(label, renaming), rename_state(after, renaming)))
                           for label, after in flow.successors(state))
        if Counter(map(repr, flow.successors(moved))) != expected:
            problems.append(f"steps out of {state}")
        for inv in invariants:
            if inv.kind != "transition":  # a check of one state
                if inv.check(state) != inv.check(moved):
                    problems.append(f"{inv.id} on {state}")
            else:
                for label, after in flow.successors(state):
                    if inv.check(state, label, after) != inv.check(
                            moved, rename_label(label, renaming), rename_state(after, renaming)):
                        problems.append(f"{inv.id} on {label}")
        if len(problems) > 3:
            break
    return problems


@pytest.mark.parametrize("profile", list(PROFILES))
def test_alike_callers_are_interchangeable_in_every_rule_and_invariant(profile):
    flow = flow_model(profile, "1x1")
    alike = flow.alike_callers()
    states = reachable(flow)
    assert len(states) > 100
    for renaming in renamings(alike, flow.ncallers):
        assert equivariance_breaks(flow, renaming, states, every=7) == []


def test_three_callers_and_the_initcall():
    """With three callers, every renaming of alike callers keeps the rules; in v7.1 caller 0
    is the boot initcall, so only callers 1 and 2 are alike, and renaming caller 0 would not
    keep the rules (which is why `alike_callers` leaves it out)."""
    three = configure("1x1", caller_loads=(1, 1, 1), cpu_hotplug=False, memory_hotplug=False,
                      sleep_requests=False, machine_checks=False, boot_hibernation=(False,))
    v68 = TdxFlow(get_profile("v6.8"), three)
    assert v68.alike_callers() == (0, 1, 2)
    states = reachable(v68)
    for renaming in renamings((0, 1, 2), 3):
        assert equivariance_breaks(v68, renaming, states, every=11) == []
    v71 = TdxFlow(get_profile("v7.1"), three)
    assert v71.alike_callers() == (1, 2)
    states = reachable(v71)
    assert equivariance_breaks(v71, (0, 2, 1), states) == []
    assert equivariance_breaks(v71, (1, 0, 2), states) != []


@pytest.mark.parametrize(("profile", "config"), [
    ("v6.8", "1x1"), ("v6.8", "2x1"), ("v6.14", "2x1"), ("v6.18", "2x1"), ("v7.1", "2x1"),
    ("bug-lp-init-irq-reentry", "2x1"), ("v6.8", configure("2x1", caller_loads=(2, 1))),
    ("v6.8", configure("1x1", caller_loads=(1, 1, 1), fault_budget=0))])
def test_the_reduced_space_counts_exactly_the_classes_of_the_full_one(profile, config):
    """Every reachable state's class is reached, and no two states of one class are kept:
    the reduced run's states are exactly the canonical forms of the unreduced run's (also
    where the callers may load a different number of times, as in `reload`: each caller's
    loads left are in its record and move with it)."""
    flow = flow_model(profile, config)
    full = reachable(flow)
    reduced = explore(flow, [], keep_graph=True).graph.states  # one model: shared parts alike
    assert set(reduced) == {flow.canonical(s) for s in full}
    assert len(reduced) == len(set(reduced))
    for state in full[::7]:
        assert flow.canonical(flow.canonical(state)) == flow.canonical(state)
        for renaming in renamings(flow.alike_callers(), flow.ncallers):
            assert flow.canonical(rename_state(state, renaming)) == flow.canonical(state)


def test_caller_symmetry_can_be_turned_off_and_reduces_the_default_configuration():
    on, off = flow_model("v6.8", "default"), flow_model("v6.8", "default")
    off.caller_symmetry = False
    assert off.alike_callers() == ()
    with_callers = explore(on, flow_invariants(on))
    without = explore(off, flow_invariants(off))
    assert with_callers.verdict == without.verdict == "pass"
    assert with_callers.max_depth == without.max_depth
    assert 1.8 * with_callers.distinct_states < without.distinct_states


def test_shortest_violations_are_as_long_with_and_without_caller_symmetry():
    for profile in ("bug-lp-init-irq-reentry", "bug-sysinit-failure-not-cached",
                    "bug-enodev-retried"):
        on, off = flow_model(profile, "2x1"), flow_model(profile, "2x1")
        off.caller_symmetry = False
        reduced, plain = explore(on, flow_invariants(on)), explore(off, flow_invariants(off))
        assert reduced.violated == plain.violated
        assert len(reduced.trace) == len(plain.trace)
        assert reduced.trace.steps == plain.trace.steps  # caller 0 moves first in both


def test_flow_configs_without_alike_callers():
    one = TdxFlow(get_profile("v6.8"), replace(configure("1x1"), caller_loads=(1,)))
    assert one.alike_callers() == (0,)
    assert flow_model("v7.1", "1x1").alike_callers() == (1,)
