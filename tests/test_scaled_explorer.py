"""Fingerprint mode and the multi-worker explorer: the plain explorer's verdicts, counts and
shortest traces, in a fraction of the memory."""

import functools
import gc
import os
import pickle
import resource
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from checker.engines import fingerprints
from checker.engines.explorer import FAIL, INCONCLUSIVE, PASS, Bounds, explore
from checker.engines.fingerprints import (
    MIN_DEFAULT_BUDGET,
    FingerprintTable,
    StateCodec,
    collision_probability,
    default_memory_budget,
    fingerprint,
    serialise,
)
from checker.gate.flowcheck import flow_recipe
from spec.statespace import Shared


def summary(result) -> tuple:
    """What must not depend on the mode: verdict, counts, and each violation's trace."""
    traces = {inv: ([str(label) for label, _ in v.trace.steps], v.trace.states)
              for inv, v in result.violations.items()}
    return (result.verdict, result.distinct_states, result.transitions, result.max_depth,
            result.bound_hit, traces)


MODES = {
    "fingerprints": {"fingerprints": True},
    "2 workers inline": {"workers": 2, "backend": "inline"},
    "3 workers inline": {"workers": 3, "backend": "inline"},
    "2 worker processes": {"workers": 2},
}

# A passing kernel, bugs caught at various depths by state and transition invariants, a
# later kernel with its own events.
CASES = [("v6.8", "1x1"), ("v6.8", "2x1"), ("bug-lp-init-irq-reentry", "default"),
         ("mutant-pamt-double-free", "1x1"), ("bug-pamt-freed-without-reset", "1x1"),
         ("v7.1", "1x1")]


@pytest.mark.parametrize("profile,config", CASES)
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_gives_the_plain_explorers_answer(profile, config, mode):
    model, properties = flow_recipe(profile, config)
    plain = explore(model, properties)
    other = explore(model, properties, **MODES[mode])
    assert summary(other) == summary(plain)
    assert other.fingerprints and other.collision_probability is not None
    assert plain.collision_probability is None


@pytest.mark.parametrize("mode", MODES)
def test_all_violations_and_bounds_match_in_every_mode(mode):
    model, properties = flow_recipe("bug-pamt-freed-without-reset", "1x1")
    for kwargs in ({"stop_at_first": False}, {"bounds": Bounds(max_states=700)},
                   {"bounds": Bounds(max_depth=6)}):
        plain = explore(model, properties, **kwargs)
        assert summary(explore(model, properties, **kwargs, **MODES[mode])) == summary(plain)
    carried_on = explore(model, properties, stop_at_first=False)
    assert carried_on.distinct_states > explore(model, properties).distinct_states
    assert explore(model, properties, Bounds(max_states=700)).verdict in (FAIL, INCONCLUSIVE)


def test_a_tiny_memory_budget_spills_the_frontier_to_disk_and_changes_nothing(tmp_path):
    model, properties = flow_recipe("v6.8", "2x1")
    plain = explore(model, properties)
    spilled = explore(model, properties, fingerprints=True, memory_budget=4096,
                      spill_dir=str(tmp_path))
    assert spilled.spilled_bytes > 0
    assert summary(spilled) == summary(plain) and plain.verdict == PASS
    assert list(tmp_path.iterdir()) == []  # the spill files are gone after the run


@pytest.mark.parametrize("profile,config", [("v6.8", "2x1"),
                                            ("bug-pamt-freed-without-reset", "1x1")])
@pytest.mark.parametrize("mode", ["fingerprints", "2 workers inline"])
def test_a_tiny_memory_budget_empties_the_models_memo_tables_and_changes_nothing(
        profile, config, mode):
    """With a budget of a few entries the model forgets everything it worked out every 1,024
    expansions and between levels (and the codec the values the frontier does not need);
    states made before and after compare by value, so nothing else changes."""
    plain = explore(*flow_recipe(profile, config))
    model, properties = flow_recipe(profile, config)
    tight = explore(model, properties, memory_budget=4096, **MODES[mode])
    assert tight.forgotten > 0 and summary(tight) == summary(plain)
    roomy = explore(*flow_recipe(profile, config), **MODES[mode])
    assert roomy.forgotten == 0 and summary(roomy) == summary(plain)


def test_forget_empties_every_memo_table():
    """What the budget counts is what `forget` frees: a model that kept a table through it
    would be emptied again and again without ever getting under the budget."""
    model, properties = flow_recipe("v6.8", "2x1")
    explore(model, properties)
    assert model.memo_entries() > 1000
    model.forget()
    assert model.memo_entries() == 0


def test_emptying_the_memo_tables_leaves_no_cycles_behind():
    """The collector is paused during a run and `forget` does not run it: what the model lets
    go must be freed by reference counting. After a first run (whose one-time objects hold
    cycles of their own), a run that empties its tables at every chance leaves none."""
    def cyclic_garbage(budget: int) -> tuple[int, int]:
        gc.collect()
        gc.disable()
        try:
            model, properties = flow_recipe("v6.8", "2x1")
            result = explore(model, properties, fingerprints=True, memory_budget=budget)
            model.forget()
            return result.forgotten, gc.collect()
        finally:
            gc.enable()

    cyclic_garbage(1 << 40)
    never, roomy = cyclic_garbage(1 << 40)
    forgotten, tight = cyclic_garbage(4096)
    assert never == 0 and forgotten > 0
    assert roomy == tight == 0


def test_the_default_budget_is_an_eighth_of_the_memory_a_run_may_use(tmp_path, monkeypatch):
    """An eighth of the machine's memory, or of its container's limit or its address-space
    limit when lower (cgroup v2 `memory.max` says "max" when unlimited), never under the
    floor."""
    limit = tmp_path / "memory.max"
    monkeypatch.setattr(fingerprints, "CGROUP_LIMITS", (str(tmp_path / "absent"), str(limit)))
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    usable = physical if soft == resource.RLIM_INFINITY else min(physical, soft)
    limit.write_text("max\n")
    assert default_memory_budget() == max(usable // 8, MIN_DEFAULT_BUDGET)
    limit.write_text(f"{8 << 30}\n")
    assert default_memory_budget() == max(min(usable, 8 << 30) // 8, MIN_DEFAULT_BUDGET)
    limit.write_text(f"{512 << 20}\n")
    assert default_memory_budget() == MIN_DEFAULT_BUDGET
    fake = (4 << 30, resource.RLIM_INFINITY)
    monkeypatch.setattr(fingerprints.resource, "getrlimit", lambda _which: fake)
    limit.write_text("max\n")
    assert default_memory_budget() == (4 << 30) // 8


def test_the_seen_set_keeps_under_64_bytes_per_state():
    model, properties = flow_recipe("v6.8", "default")
    result = explore(model, properties, fingerprints=True)
    assert result.verdict == PASS
    assert result.seen_bytes / result.distinct_states < 64


def test_progress_is_reported_once_per_level_and_ends_at_the_totals():
    model, properties = flow_recipe("v6.8", "1x1")
    levels = []
    result = explore(model, properties, fingerprints=True, progress=levels.append)
    assert [p.depth for p in levels] == sorted(p.depth for p in levels)
    assert levels[-1].states == result.distinct_states
    assert levels[-1].transitions == result.transitions


def test_the_ray_backend_gives_the_same_answer():
    recipe = functools.partial(flow_recipe, "mutant-pamt-double-free", "1x1")
    model, properties = recipe()
    plain = explore(model, properties)
    distributed = explore(model, properties, workers=2, backend="ray", recipe=recipe)
    assert summary(distributed) == summary(plain) and plain.verdict == FAIL


def test_modes_that_cannot_work_are_refused():
    model, properties = flow_recipe("v6.8", "1x1")
    with pytest.raises(ValueError, match="at least 1"):
        explore(model, properties, workers=0)
    with pytest.raises(ValueError, match="state graph"):
        explore(model, properties, fingerprints=True, keep_graph=True)
    with pytest.raises(ValueError, match="unknown backend"):
        explore(model, properties, workers=2, backend="mpi")


# ----- the pieces -----------------------------------------------------------------------------

class Pair(NamedTuple):
    left: object
    right: object


scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.text(max_size=4))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=8)


@given(values, values)
def test_serialisation_is_equal_exactly_when_the_values_are(a, b):
    assert (serialise(a, {}) == serialise(b, {})) == (a == b)


@given(values, values)
def test_a_namedtuple_serialises_as_the_plain_tuple_of_its_items(a, b):
    assert serialise(Pair(a, b), {}) == serialise((a, b), {})


@given(st.lists(st.tuples(values, values), min_size=1, max_size=30))
def test_records_decode_to_the_state_and_fingerprints_follow_equality(pairs):
    states = [Pair(*p) for p in pairs]
    codec = StateCodec.for_state(states[0])
    for state in states:
        record = codec.record(state)
        assert codec.decode(record) == state
    for a in states:
        for b in states:
            assert (fingerprint(codec.record(a)) == fingerprint(codec.record(b))) == (a == b)


@given(st.lists(st.integers(1, 2**64 - 1), max_size=300))
def test_the_fingerprint_table_behaves_as_a_dict_through_growth(keys):
    table, reference = FingerprintTable(capacity=8), {}
    for n, key in enumerate(keys):
        assert table.setdefault(key, n) == reference.setdefault(key, n)
    assert len(table) == len(reference)
    assert dict(table.items()) == reference
    for key in keys:
        assert table.get(key) == reference[key]


# fingerprints that share a table's slot (same low bits), repeat within a batch, or sit at
# the ends of the range, besides any
crowded = st.one_of(st.integers(1, 2**64 - 1), st.integers(1, 40),
                    st.integers(1, 40).map(lambda i: i << 40 | 7),
                    st.sampled_from([1, 2**63, 2**64 - 1]))


@given(st.lists(st.lists(crowded, max_size=60), max_size=6))
def test_the_fingerprint_tables_batch_calls_match_one_call_per_fingerprint(batches):
    table, reference, number = FingerprintTable(capacity=8), FingerprintTable(capacity=8), 0
    for batch in batches:
        idents = list(range(number, number + len(batch)))
        number += len(batch)
        before = [reference.get(fp, 0) for fp in batch]
        assert list(table.get_many(batch, 0)) == before
        table.add_many(batch, idents)
        for fp, ident in zip(batch, idents, strict=True):
            reference.setdefault(fp, ident)
        assert dict(table.items()) == dict(reference.items())
    assert len(table) == len(reference)


def test_a_value_another_process_sent_is_adopted_as_the_models_own_object():
    """Workers receive `packages` and `callers` values pickled: the model must hand back its
    own shared object, or every look-up by identity misses the copy."""
    model, _ = flow_recipe("v6.8", "2x1")
    state = model.canonical(next(iter(model.initial_states())))
    for value in (state.packages, state.callers):
        copy = pickle.loads(pickle.dumps(value))
        assert copy == value and copy is not value
        assert model.adopt(copy) is value
    other = tuple.__new__(Shared, state.packages[:1])  # a value the model never made
    assert model.adopt(other) is other and model.adopt(pickle.loads(pickle.dumps(other))) is other
    assert model.adopt(state.hot) is state.hot  # not a shared value: passed through


def test_collision_probability_is_tlcs_optimistic_estimate():
    assert collision_probability(10, 10) == 0.0
    assert collision_probability(2**20, 2**20 + 2**12) == pytest.approx(2.0**-32)
