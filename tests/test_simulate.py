"""Random walks (checker.engines.simulate): on toy models what they check, count and shrink; on
bug profiles that they find the bug, shrink the walk and hand over a trace that replays."""

from __future__ import annotations

import json
import pickle

import pytest
from toy_models import Counters, Faulty, IdleCounters, Ladder, Line, Move, Prop

from checker.engines.explorer import FAIL, INCONCLUSIVE
from checker.engines.simulate import WalkBounds, _Walker, shrink, simulate
from checker.gate.corpus import document, with_recorded_result
from checker.gate.flowcheck import checked_invariants
from checker.gate.replay import parse_document, replay_document
from checker.inputs.platforms import flow_model
from checker.views.trace import replay, trace_to_json


def _is_walk(model, trace) -> bool:
    state = trace.initial
    for step in trace.steps:
        if step not in model.successors(state):
            return False
        state = step[1]
    return True


def test_a_state_violation_is_found_shrunk_and_a_real_walk():
    model = IdleCounters()
    result = simulate(model, [Prop("SUM<5", "state", lambda s: sum(s) < 5)],
                      WalkBounds(walks=200, length=60), seed=1)
    assert result.verdict == FAIL and result.violated == "SUM<5"
    assert result.bound_hit == "violation" and result.walk == result.walks - 1
    trace = result.trace
    assert _is_walk(model, trace) and sum(trace.states[-1]) == 5
    assert all(sum(s) < 5 for s in trace.states[:-1])
    assert len(trace) <= result.found_length
    assert len(trace) == 5  # five increments, nothing else: loops, resets and idles are gone
    assert trace.model == model.describe() and trace.invariant == "SUM<5"


def test_a_transition_violation_ends_with_the_bad_step():
    no_reset_at_3 = Prop("NO-RESET-AT-3", "transition",
                         lambda s, lab, t: not (lab.action == "reset" and 3 in s))
    result = simulate(IdleCounters(), [no_reset_at_3], WalkBounds(walks=500, length=60))
    trace = result.trace
    assert result.violated == "NO-RESET-AT-3" and _is_walk(IdleCounters(), trace)
    assert trace.steps[-1][0].action == "reset" and 3 in trace.states[-2]
    assert len(trace) == 4  # three increments of one counter, then the reset


def test_walks_without_a_violation_are_inconclusive_and_count_what_they_covered():
    prop = Prop("SMALL", "state", lambda s: max(s) <= 3)
    goal = Prop("CAN-RESET", "eventually", lambda s: s == (0, 0))
    unreachable = Prop("NEVER", "reachable", lambda s: False)  # no walk can judge it
    result = simulate(IdleCounters(), [prop, goal, unreachable], WalkBounds(walks=40, length=25))
    assert result.verdict == INCONCLUSIVE and result.violation is None
    assert (result.walks, result.steps, result.longest) == (40, 40 * 25, 25)
    assert result.bound_hit == "walks"
    assert result.distinct_states == 10  # every unordered pair over 0..3
    assert result.properties == ("SMALL",) and result.judged_at_ends == ("CAN-RESET",)
    assert result.not_judged == ("NEVER",)
    assert 0 < result.ends_searched <= 40 and result.ends_unsettled == 0  # reset is near
    no_symmetry = simulate(IdleCounters(), [prop], WalkBounds(walks=40, length=25), symmetry=False)
    assert no_symmetry.distinct_states == 16


def test_an_eventually_property_is_judged_where_a_walk_ends():
    """No goal anywhere: the search from the first walk's end covers the 10 canonical states
    and finds none, a violation; the shrunk walk is empty, as the start is stuck already."""
    never = Prop("NEVER", "eventually", lambda s: False)
    result = simulate(IdleCounters(), [never], WalkBounds(walks=5, length=10))
    assert result.verdict == FAIL and result.violated == "NEVER" and result.walk == 0
    assert result.found_length == 10 and len(result.trace) == 0
    assert (result.ends_searched, result.ends_unsettled) == (1, 0)


def test_the_end_search_settles_a_goal_found_as_the_bound_is_reached():
    """From 0 the goal 5 is the sixth state the search meets: a bound of 6 states settles
    it, a bound of 5 does not."""
    goal = Prop("FIVE", "eventually", lambda s: s == (5,))
    assert _Walker(Line(9), [goal], True, 0, 1, end_budget=6).goal_unreachable((0,)) == ()
    assert _Walker(Line(9), [goal], True, 0, 1, end_budget=5).goal_unreachable((0,)) is None
    never = Prop("TEN", "eventually", lambda s: s == (10,))
    assert _Walker(Line(9), [never], True, 0, 1).goal_unreachable((3,)) == ("TEN",)


def test_end_searches_start_from_the_canonical_state_so_mirror_images_agree():
    """(a, b) and (b, a) are one canonical state: the search from either gives one answer,
    whichever is met first, so how many ends stay unsettled does not depend on the
    workers."""
    goal = Prop("FAR", "eventually", lambda s: s == (30, 0))
    for a, b in [(3, 7), (12, 1), (0, 20)]:
        first = _Walker(Counters(limit=30), [goal], True, 0, 1, end_budget=60)
        second = _Walker(Counters(limit=30), [goal], True, 0, 1, end_budget=60)
        assert first.goal_unreachable((a, b)) == second.goal_unreachable((b, a))
    bounds = WalkBounds(walks=200, length=20)
    runs = [simulate(Counters(limit=30), [goal], bounds, seed=1, workers=w, end_budget=60)
            for w in (1, 2)]
    assert runs[0].ends_unsettled > 0
    assert (runs[0].ends_searched, runs[0].ends_unsettled) == \
        (runs[1].ends_searched, runs[1].ends_unsettled)


def test_the_model_memo_tables_are_emptied_between_walks_and_nothing_changes():
    flow = flow_model("bug-enodev-retried", "1x1")
    invariants = checked_invariants(flow, "1x1")
    bounds = WalkBounds(walks=300, length=60)
    roomy = simulate(flow, invariants, bounds, seed=4)
    tight = _Walker(flow_model("bug-enodev-retried", "1x1"), invariants, True, 4, 60,
                    memory_budget=4096)
    assert tight.memo.limit == 4
    walked = [tight.run(tight.key(i)) for i in range(roomy.walk + 1)]
    assert tight.model.memo_entries() < 10_000  # emptied before each walk past 4 entries
    assert [w[:3] for w in walked][-1][2] == (roomy.violated, roomy.found_length)
    assert sum(w[0] for w in walked) == roomy.steps


def test_a_goal_reachable_only_past_the_search_bound_leaves_the_end_unsettled():
    """Counters up to 1,000: from a walk's end the goal (both at 1,000) lies past a search of
    50 states, so nothing is proved there and the result says so."""
    far = Prop("BOTH-FULL", "eventually", lambda s: s == (1000, 1000))
    result = simulate(Counters(limit=1000), [far], WalkBounds(walks=4, length=10),
                      end_budget=50)
    assert result.verdict == INCONCLUSIVE and result.violation is None
    assert (result.ends_searched, result.ends_unsettled) == (4, 4)
    near = Prop("BOTH-FULL", "eventually", lambda s: s == (3, 3))
    settled = simulate(Counters(limit=3), [near], WalkBounds(walks=4, length=10),
                       end_budget=50)
    assert settled.verdict == INCONCLUSIVE and settled.ends_unsettled == 0


def test_a_walk_ends_in_a_state_with_no_successors():
    result = simulate(Line(2), [], WalkBounds(walks=3, length=50))
    assert (result.steps, result.longest, result.distinct_states) == (6, 2, 3)


def test_the_same_seed_gives_the_same_run_and_another_seed_other_walks():
    prop = [Prop("SUM<6", "state", lambda s: sum(s) < 6)]
    bounds = WalkBounds(walks=300, length=40)
    first = simulate(IdleCounters(), prop, bounds, seed=7)
    again = simulate(IdleCounters(), prop, bounds, seed=7)
    assert (first.walk, first.steps, first.found_length, first.trace.steps) == \
        (again.walk, again.steps, again.found_length, again.trace.steps)
    others = {simulate(IdleCounters(), prop, bounds, seed=s).steps for s in range(8, 12)}
    assert len(others | {first.steps}) > 1


def test_workers_do_not_change_the_result():
    prop = [Prop("SUM<6", "state", lambda s: sum(s) < 6)]
    bounds = WalkBounds(walks=300, length=40)
    one = simulate(IdleCounters(), prop, bounds, seed=3)
    two = simulate(IdleCounters(), prop, bounds, seed=3, workers=2)
    assert two.workers == 2
    assert (one.walk, one.walks, one.steps, one.distinct_states, one.found_length,
            one.trace.steps) == (two.walk, two.walks, two.steps, two.distinct_states,
                                 two.found_length, two.trace.steps)
    clean = [Prop("SMALL", "state", lambda s: max(s) <= 3)]
    assert simulate(IdleCounters(), clean, bounds, workers=2).steps == 300 * 40


@pytest.mark.parametrize("strategy", ["uniform", "swarm"])
def test_swarm_walks_leave_out_kinds_of_step_that_uniform_walks_always_take(strategy):
    """`reset` is enabled in every state; a uniform walk of 30 steps takes it almost surely
    ((2/3)^30 it does not), while a swarm walk that switches `reset` off and `inc` on (a
    quarter of them) never takes it; one that switches both off draws among all again."""
    walker = _Walker(Counters(limit=100), [], True, seed=5, length=30, strategy=strategy)
    paths = [walker.replay_walk(i, 30)[1] for i in range(200)]
    without_reset = sum(all(label.action != "reset" for label, _ in p) for p in paths)
    assert (30 < without_reset < 75) if strategy == "swarm" else without_reset == 0
    assert all(len(p) == 30 for p in paths)


def test_weighted_walks_differ_in_how_often_they_take_each_kind_of_step():
    """Uniform walks reset in about a third of their steps, every one of them; weighted
    walks each weigh the counters and `reset` their own way, so some walks reset in most of
    their steps and others almost never."""
    def reset_shares(strategy):
        walker = _Walker(Counters(limit=10**6), [], False, seed=2, length=60,
                         strategy=strategy)
        return [sum(label.action == "reset" for label, _ in walker.replay_walk(i, 60)[1]) / 60
                for i in range(100)]

    uniform, weighted = reset_shares("uniform"), reset_shares("weighted")
    assert 0.15 < min(uniform) and max(uniform) < 0.55
    assert min(weighted) < 0.05 and max(weighted) > 0.8


def test_weighted_walks_inject_faults_early_late_or_never_as_each_walk_draws():
    """A uniform walk fails at its first step half the time and never goes 30 steps without
    failing; weighted walks each have a fault rate of their own (1/256 to 1), so some fail
    at once and many never do."""
    def first_fault(strategy):
        walker = _Walker(Faulty(), [], False, seed=4, length=30, strategy=strategy)
        return [next((at for at, (label, _) in enumerate(walker.replay_walk(i, 30)[1])
                      if label.injected), None) for i in range(300)]

    uniform, weighted = first_fault("uniform"), first_fault("weighted")
    assert 0.4 < uniform.count(0) / 300 < 0.6 and None not in uniform
    assert 0.08 < weighted.count(0) / 300 < 0.35
    assert 0.15 < weighted.count(None) / 300 < 0.6


def test_swarm_walks_are_the_same_on_any_number_of_workers():
    prop = [Prop("SUM<6", "state", lambda s: sum(s) < 6)]
    bounds = WalkBounds(walks=300, length=40)
    one = simulate(IdleCounters(), prop, bounds, seed=3, strategy="swarm")
    two = simulate(IdleCounters(), prop, bounds, seed=3, workers=2, strategy="swarm")
    assert (one.walk, one.walks, one.steps, one.trace.steps) == \
        (two.walk, two.walks, two.steps, two.trace.steps)


LOW = [Prop("BELOW-12", "state", lambda s: s[0] < 12)]


def test_restarts_climb_where_fresh_walks_of_the_same_budget_never_get():
    bounds = WalkBounds(walks=2000, length=30)
    fresh = simulate(Ladder(), LOW, bounds, seed=1, strategy="uniform")
    assert fresh.verdict == INCONCLUSIVE and not fresh.restarts and fresh.restarted == 0
    climbed = simulate(Ladder(), LOW, bounds, seed=1, strategy="uniform", restarts=True)
    assert climbed.verdict == FAIL and climbed.violated == "BELOW-12"
    assert climbed.restarts and 0 < climbed.restarted < climbed.walks and climbed.cells >= 12
    # the trace is a real walk from the initial state, through the walks it restarted from
    trace = climbed.trace
    assert trace.initial == (0,) and [label.action for label, _ in trace.steps] == ["up"] * 12
    assert climbed.found_length >= 12 and climbed.walk >= 64  # not in the first generation


def test_restarts_are_the_same_on_any_number_of_workers():
    bounds = WalkBounds(walks=2000, length=30)
    one = simulate(Ladder(), LOW, bounds, seed=2, strategy="uniform", restarts=True)
    two = simulate(Ladder(), LOW, bounds, seed=2, strategy="uniform", restarts=True, workers=2)
    assert one.verdict == FAIL
    assert (one.walk, one.walks, one.steps, one.distinct_states, one.found_length,
            one.restarted, one.cells, one.trace.steps) == \
        (two.walk, two.walks, two.steps, two.distinct_states, two.found_length,
         two.restarted, two.cells, two.trace.steps)


def test_the_flow_models_abstract_view_keeps_phases_and_counts_cpus_per_package():
    """A cell stands for the states that differ only in what a CPU holds beyond being online
    and having done LP.INIT; where the callers are and which packages have CPUs online tell
    cells apart, whatever the packages' order."""
    flow = flow_model("v6.8", "default")
    state = next(iter(flow.initial_states()))
    cell = flow.abstract(state)

    def with_cpu(s, p, c, **changes):
        package = s.packages[p]
        cpus = package.cpus[:c] + (package.cpus[c]._replace(**changes),) + package.cpus[c + 1:]
        return s._replace(packages=s.packages[:p] + (package._replace(cpus=cpus),)
                          + s.packages[p + 1:])

    assert flow.abstract(with_cpu(state, 0, 0, lines=True, visited=1)) == cell
    one_off = with_cpu(state, 0, 0, online=False)
    assert flow.abstract(one_off) != cell
    assert flow.abstract(with_cpu(state, 1, 0, online=False)) == flow.abstract(one_off)
    assert flow.abstract(with_cpu(one_off, 0, 1, online=False)) != flow.abstract(one_off)
    one_done = with_cpu(state, 0, 0, lp_done=True)
    assert flow.abstract(one_done) == cell  # counted by package: all done, or not
    assert flow.abstract(with_cpu(one_done, 0, 1, lp_done=True)) != cell
    moved = state._replace(callers=(state.callers[0]._replace(pc=1),) + state.callers[1:])
    assert flow.abstract(moved) != cell
    assert flow.abstract(state._replace(status=2)) != cell


def test_a_restarts_start_sent_to_a_worker_is_walked_on_the_models_own_values():
    """A start reaches a worker process pickled: its shared values are copies, on which
    every look-up by identity would miss, so the walker swaps in the model's own."""
    flow = flow_model("v6.8", "default")
    state = flow.canonical(next(iter(flow.initial_states())))
    walker = _Walker(flow, [], True, 0, 30, restarts=True)
    copy = pickle.loads(pickle.dumps(state))
    assert copy.packages is not state.packages
    adopted = walker.adopted(copy)
    assert adopted == state and adopted.packages is state.packages
    assert adopted.callers is state.callers
    assert walker.run("k", copy)[:4] == walker.run("k", state)[:4]
    assert _Walker(Ladder(), LOW, True, 0, 30).adopted((3,)) == (3,)  # no `adopt`: as it is


def test_a_long_chain_of_restarts_replays_from_the_initial_state_without_recursing():
    walker = _Walker(Ladder(), LOW, True, 0, 30, restarts=True)
    walker.fresh[0] = 0
    for index in range(1, 3000):  # each walk restarted where the one before took a step
        walker.starts[index] = (index - 1, 1)
    initial, path = walker.replay_walk(2999, 1)
    assert initial == (0,) and len(path) == 3000
    state = initial
    for label, nxt in path:
        assert (label, nxt) in Ladder().successors(state)
        state = nxt


def test_restarts_stop_at_the_time_bound():
    result = simulate(Ladder(), [], WalkBounds(walks=10**6, length=30, max_seconds=0.3),
                      restarts=True)
    assert result.bound_hit == "time" and 64 < result.walks < 10**6
    assert result.verdict == INCONCLUSIVE and result.restarted > 0


def test_restarts_need_a_model_with_an_abstract_view():
    with pytest.raises(ValueError, match="abstract"):
        simulate(Counters(), LOW, WalkBounds(walks=10), restarts=True)


def test_the_time_bound_stops_the_walks_early():
    result = simulate(IdleCounters(limit=50), [], WalkBounds(walks=10**6, length=50,
                                                         max_seconds=0.2))
    assert result.bound_hit == "time" and 0 < result.walks < 10**6
    assert result.verdict == INCONCLUSIVE


def test_shrinking_cuts_loops_and_detours_but_keeps_the_violation():
    model = IdleCounters()
    inc0, inc1 = Move("inc", "counter 0", 0), Move("inc", "counter 1", 1)
    labels = [inc0, Move("idle", "env"), inc1, Move("reset", "env"), inc0, inc0, inc1, inc0]
    state, path = (0, 0), []
    for wanted in labels:
        state = next(s for lab, s in model.successors(state) if lab == wanted)
        path.append((wanted, state))
    prop = Prop("A<3", "state", lambda s: s[0] < 3)
    shrunk = shrink(model, prop, (0, 0), path)
    assert [label for label, _ in shrunk] == [inc0, inc0, inc0]
    assert shrunk[-1][1] == (3, 0)


def test_bad_bounds_are_refused():
    with pytest.raises(ValueError):
        simulate(IdleCounters(), [], WalkBounds(walks=0))
    with pytest.raises(ValueError):
        simulate(IdleCounters(), [], workers=0)
    with pytest.raises(ValueError, match="unknown walk strategy 'greedy'"):
        simulate(IdleCounters(), [], strategy="greedy")


# --- the flow model --------------------------------------------------------------------------

# Bug profiles walks find on small configurations (1x1; double-free where reserved
# areas run out, as the bug zoo finds it), with the invariant that catches each (the bug zoo's).
FOUND = {
    "bug-lp-init-irq-reentry": ("1x1", "SEAMCALL-ACCEPTED"),
    "bug-sysinit-failure-not-cached": ("1x1", "SYSINIT-ONCE"),
    "bug-enodev-retried": ("1x1", "INIT-AT-MOST-ONCE"),
    "bug-tdmr-list-freed": ("1x1", "MC-BLAMES-MODULE-PAGES"),
    "mutant-no-wbinvd-before-key-config": ("1x1", "FLUSH-BEFORE-KEY"),
    "mutant-initialized-after-first-chunk": ("1x1", "READY-AGREES"),
    "mutant-notifier-checks-start-only": ("1x1", "MEMORY-STATIC-WHEN-READY"),
    "mutant-notifier-rejects-when-empty": ("1x1", "ONLINE-VETO-ONLY-WHEN-READY"),
    "mutant-pamt-double-free": ("rsvd-exhausted", "FREE-ONCE"),
    "mutant-mutex-kept-on-failure": ("1x1", "DEADLOCK-FREE"),
}


@pytest.mark.parametrize("profile", sorted(FOUND))
def test_walks_find_the_bug_and_the_shrunk_trace_replays_to_the_same_invariant(profile):
    config, invariant = FOUND[profile]
    flow = flow_model(profile, config)
    result = simulate(flow, checked_invariants(flow, config),
                      WalkBounds(walks=2000, length=100), seed=0)
    assert result.verdict == FAIL and result.violated == invariant
    trace = result.trace
    assert 0 < len(trace) <= result.found_length
    data = json.loads(json.dumps(trace_to_json(trace, flow)))
    assert replay(flow, data).steps == trace.steps
    doc = with_recorded_result(document(f"flow/{profile}/{config}", profile, config,
                                        invariant, {"kind": "trace", "trace": data,
                                                    "text": "found by random walks"}))
    outcome = replay_document(parse_document(json.dumps(doc), "simulated.json"))
    assert outcome.still_violates and outcome.invariant == invariant
    assert outcome.same_as_recorded


@pytest.mark.parametrize(("profile", "seed", "walks", "invariant"), [
    ("bug-enodev-retried", 5, 2000, "INIT-AT-MOST-ONCE"),
    ("mutant-mutex-kept-on-failure", 2, 400, "DEADLOCK-FREE"),  # met where a walk ends
])
def test_on_the_flow_model_workers_do_not_change_the_result(profile, seed, walks, invariant):
    flow = flow_model(profile, "1x1")
    invariants = checked_invariants(flow, "1x1")
    bounds = WalkBounds(walks=walks, length=100)
    one = simulate(flow, invariants, bounds, seed=seed)
    two = simulate(flow, invariants, bounds, seed=seed, workers=2)
    assert one.verdict == two.verdict == FAIL and one.violated == two.violated == invariant
    assert (one.walk, one.steps, one.distinct_states, one.found_length, one.ends_searched,
            one.ends_unsettled, one.trace.steps) == \
        (two.walk, two.steps, two.distinct_states, two.found_length, two.ends_searched,
         two.ends_unsettled, two.trace.steps)


def test_v6_8_walks_meet_no_violation_and_settle_deadlock_freedom_where_they_end():
    flow = flow_model("v6.8", "1x1")
    result = simulate(flow, checked_invariants(flow, "1x1"), WalkBounds(walks=100, length=100))
    assert result.verdict == INCONCLUSIVE and result.bound_hit == "walks"
    assert result.judged_at_ends == ("DEADLOCK-FREE",) and result.ends_unsettled == 0
    assert "SEAMCALL-ACCEPTED" in result.properties
    assert result.steps == 100 * 100 and 0 < result.distinct_states < result.steps
