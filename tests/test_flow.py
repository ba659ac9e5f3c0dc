"""The flow model: real scenarios as traces, the default configuration, symmetry."""

import pytest

from checker.engines.explorer import FAIL, PASS, explore
from checker.inputs.platforms import CONFIGS, configure, flow_model, get_config
from checker.views.trace import trace_to_text
from invariants.flow import flow_invariants
from spec import flow as F
from spec import flow_state as S
from spec import module as M
from spec.errno import EINVAL, ENODEV
from spec.profiles import PROFILES, V6_8
from spec.seamcall import SUCCESS, TDH_SYS_INIT, TDH_SYS_LP_INIT


def drive(model, *wanted):
    """Follow the model, at each point taking the first step matching the next predicate."""
    state = model.initial_states()[0]
    steps = []
    for want in wanted:
        label, state = next((lab, s) for lab, s in model.successors(state) if want(lab))
        steps.append((label, state))
    return steps, state


def is_(action, actor=None, **fields):
    def match(step):
        if step.action != action or (actor is not None and step.actor != actor):
            return False
        return all(getattr(step, k) == v for k, v in fields.items())
    return match


def enable_all(caller, cpus):
    """Predicates for one caller taking the lock and enabling `cpus` CPUs in order."""
    out = [is_("cpus_read_lock", caller)]
    for cpu in range(cpus):
        out += [is_("tdx_cpu_enable", caller, cpu=cpu, injected=False),
                is_("tdx_cpu_enable", caller, cpu=cpu, seamcall=TDH_SYS_LP_INIT,
                    result=SUCCESS)]
    return out


QUIET = configure("quiet-2x2")


def test_key_config_failing_on_second_package_unwinds_to_error_and_stays_there():
    model = F.TdxFlow(V6_8, QUIET)
    steps, state = drive(
        model, is_("tdx_init"), *enable_all("caller 0", 4),
        is_("tdx_enable", "caller 0"), is_("build_tdx_memlist", injected=False),
        is_("get_tdx_tdmr_sysinfo", result=SUCCESS), is_("alloc_tdmr_list", injected=False),
        is_("construct_tdmrs", injected=False), is_("config_tdx_module", result=SUCCESS),
        is_("config_global_keyid", injected=False),
        is_("do_global_key_config", cpu=0, result=SUCCESS),
        is_("do_global_key_config", cpu=2, result="error", injected=True),
        is_("err_reset_pamts"), is_("tdmrs_reset_pamt_all"), is_("err_free_pamts"),
        is_("err_free_tdmrs"), is_("err_free_tdxmem"),
        is_("init_tdx_module"), is_("hardware_disable_all", "caller 0"),
        *enable_all("caller 1", 0), is_("tdx_cpu_enable", "caller 1", cpu=0))
    names = [lab.action for lab, _ in steps]
    failure = names.index("do_global_key_config") + 1
    assert names[failure + 1:failure + 8] == ["err_reset_pamts", "tdmrs_reset_pamt_all",
                                              "err_free_pamts", "err_free_tdmrs",
                                              "err_free_tdxmem", "init_tdx_module",
                                              "hardware_disable_all"]
    returned = steps[failure + 6]
    assert returned[0].result == "-5" and returned[1].status == F.ERROR
    assert all(c & F.PAMT_FREED and not c & F.PAMT_WRITTEN for c in state.pamt)
    assert state.resources == 0 and state.snapshot == -1
    # One package has its key, the other not: the module stays configured, never ready.
    assert state.module == M.SYSCONFIG_DONE and [p.keyed for p in state.packages] == [True, False]
    # Caller 1 finishes its CPUs (LP flags already set) and calls tdx_enable: -EINVAL, and
    # that step issues no SEAMCALL and changes nothing of the module.
    while state.callers[1].pc == F.ENABLING and model._ipi_targets(state, 1):
        state = next(s for lab, s in model.successors(state)
                     if lab.actor == "caller 1" and lab.action == "tdx_cpu_enable")
    enable = [(lab, s) for lab, s in model.successors(state) if lab.action == "tdx_enable"]
    assert len(enable) == 1
    label, after = enable[0]
    assert label.result == str(-EINVAL) and label.seamcall is None
    assert after.status == F.ERROR and after.init_runs == 1 and after.module == state.module


def test_failed_sysinit_is_cached_for_every_later_tdx_cpu_enable():
    model = F.TdxFlow(V6_8, QUIET)
    steps, state = drive(model, is_("tdx_init"), is_("cpus_read_lock", "caller 0"),
                         is_("tdx_cpu_enable", "caller 0", cpu=0, seamcall=TDH_SYS_INIT,
                             result="VMfailInvalid"),
                         is_("hardware_disable_all", "caller 0"),
                         is_("cpus_read_lock", "caller 1"))
    assert steps[2][0].result == "VMfailInvalid" and state.sysinit_ret == -ENODEV
    later = [lab for lab, _ in model.successors(state) if lab.action == "tdx_cpu_enable"]
    assert later and all(lab.seamcall is None and lab.result == str(-ENODEV) for lab in later)
    # Exhaustively: TDH.SYS.INIT is never issued twice and no LP.INIT follows a failure (the
    # module would refuse it).
    ids = {"SYSINIT-ONCE", "SEAMCALL-ACCEPTED"}
    props = [p for p in flow_invariants(model) if p.id in ids]
    assert explore(model, props).verdict == PASS


def test_default_configuration_explores_exhaustively_and_holds():
    model = flow_model("v6.8", "default")
    result = explore(model, flow_invariants(model))
    assert result.verdict == PASS, result.trace and trace_to_text(result.trace, model)
    assert result.bound_hit is None and result.distinct_states > 10_000
    assert result.transitions > result.distinct_states and result.max_depth > 20
    assert result.states_per_second > 0


def test_default_configuration_reaches_both_module_outcomes():
    model = F.TdxFlow(V6_8, configure("2x1", caller_loads=(1,)))
    statuses = set()
    result = explore(model, [_Observer("status", lambda s: statuses.add(s.status) or True)])
    assert result.verdict == PASS
    assert statuses == {F.UNINITIALIZED, F.INITIALIZED, F.ERROR}


class _Observer:
    """A state "invariant" that always holds, used to collect facts about reachable states."""

    kind = "state"

    def __init__(self, ident, check):
        self.id, self.check = ident, check


@pytest.mark.parametrize("switch", ["reset_pamts_on_late_failure", "key_config_once_per_package",
                                    "cpu_enable_irqs_off", "release_mutex_on_failure"])
def test_symmetry_reduction_finds_the_same_violations(switch):
    config = configure("quiet-2x2", cpu_hotplug=True)
    model = F.TdxFlow(V6_8.but("bug", "bug", "test", **{switch: False}), config)
    props = flow_invariants(model)
    reduced = explore(model, props, symmetry=True, stop_at_first=False)
    full = explore(model, props, symmetry=False, stop_at_first=False)
    assert reduced.verdict == full.verdict == FAIL
    assert set(reduced.violations) == set(full.violations)
    assert {k: v.depth for k, v in reduced.violations.items()} == \
        {k: v.depth for k, v in full.violations.items()}
    assert reduced.distinct_states < full.distinct_states


def test_boot_outcomes():
    few = F.TdxFlow(V6_8, configure("2x1", private_keyids=1))
    label, state = few.successors(few.initial_states()[0])[0]
    assert not state.tdx_on and "too few private KeyIDs" in label.result
    model = F.TdxFlow(V6_8, get_config("default"))
    on, hibernating = model.initial_states()
    assert model.tdx_init(on)[1].tdx_on and model.tdx_init(on)[1].s3_off
    label, off = model.tdx_init(hibernating)
    assert not off.tdx_on and "Hibernation" in label.result


def test_memory_online_is_vetoed_only_after_a_successful_init():
    model = F.TdxFlow(V6_8, QUIET)
    block = model.platform.hot_blocks[0]
    memlist = model.layout(model.initial_states()[0], 0).memlist
    assert F.memory_notifier(V6_8, (), True, block.start, block.end)
    assert not F.memory_notifier(V6_8, memlist, True, block.start, block.end)
    assert F.memory_notifier(V6_8, memlist, False, block.start, block.end)


def test_named_configurations_and_flags():
    assert get_config("4x2").platform.cpus == 8
    assert get_config("3x1").platform.shape == "3x1"
    tuned = configure("default", faults=0, cpu_hotplug=False, erratum=False)
    assert tuned.fault_budget == 0 and not tuned.cpu_hotplug and not tuned.platform.erratum
    assert tuned.name == "default,cpu_hotplug=False,erratum=False,fault_budget=0"
    assert "default" in CONFIGS
    with pytest.raises(KeyError):
        get_config("nonsense")


def test_canonical_form_ignores_cpu_and_package_numbering():
    model = flow_model("v6.8", "quiet-2x2")
    _, state = drive(model, is_("tdx_init"), is_("cpus_read_lock", "caller 0"),
                     is_("tdx_cpu_enable", "caller 0", cpu=3, injected=False))
    swapped = state._replace(packages=tuple(
        p._replace(cpus=p.cpus[::-1]) for p in state.packages[::-1]))
    assert swapped != state
    assert model.canonical(swapped) == model.canonical(state)
    assert model.canonical(model.canonical(state)) == model.canonical(state)


@pytest.mark.parametrize(("profile", "config"), [
    ("v6.8", "default"), ("v6.8", "rsvd-exhausted"), ("v6.8", "unchecked-callers"),
    ("v6.18", "no-erratum"), ("v6.14", "old-module"), ("v7.1", "2x2")]
    + [(name, "2x1") for name in PROFILES if name != "v6.8"])
def test_replayed_steps_are_the_steps_computed_afresh(profile, config):
    """`TdxFlow` replays recorded steps onto states with the same key; out of every reachable
    state the replayed steps are exactly those computed without replaying."""
    flow = flow_model(profile, config)
    fresh = F.TdxFlow(flow.profile, flow.config, replay=False)
    graph = explore(flow, [], keep_graph=True).graph
    assert graph is not None and len(graph.states) > 100
    for state in graph.states:
        replayed, computed = flow.successors(state), fresh.successors(state)
        assert replayed == computed
        assert [n is state for _, n in replayed] == [n is state for _, n in computed]


@pytest.mark.parametrize(("profile", "config"), [
    ("v6.8", "2x1"), ("bug-enodev-retried", "1x1"), ("mutant-no-wbinvd-before-key-config", "1x1"),
    ("mutant-notifier-checks-start-only", "1x1"), ("mutant-initialized-after-first-chunk", "1x1")])
def test_invariant_shortcuts_do_not_change_results(profile, config):
    """`reads` and `watches` only save work: without them every figure and trace of a
    run is the same."""
    from dataclasses import replace

    flow = flow_model(profile, config)
    declared = flow_invariants(flow)
    plain = [replace(inv, reads=None, watches=None) for inv in declared]
    assert any(inv.reads for inv in declared) and any(inv.watches for inv in declared)
    for stop in (True, False):
        a = explore(flow, declared, stop_at_first=stop)
        b = explore(flow_model(profile, config), plain, stop_at_first=stop)
        assert (a.verdict, a.distinct_states, a.transitions, a.max_depth) == \
            (b.verdict, b.distinct_states, b.transitions, b.max_depth)
        assert {k: (v.depth, v.trace.steps) for k, v in a.violations.items()} == \
            {k: (v.depth, v.trace.steps) for k, v in b.violations.items()}


def test_machine_checks_blame_pamt_pages_only_once_the_module_is_initialized():
    """is_pamt_page reads the TDMR list only when the module is INITIALIZED: a machine check on
    a PAMT page during TDMR init (RDMD already answers) is never blamed on TDX; one after a
    successful init is, on every CPU whose RDMD answers."""
    model = flow_model("v6.8", "1x1")
    graph = explore(model, keep_graph=True, symmetry=False).graph
    reported = {}
    for src, label, _dst in graph.edges:
        if label.action == "machine_check" and label.result == SUCCESS:
            state = graph.states[src]
            blamed = F.machine_check_reported(label)
            reported.setdefault(state.status, set()).add(blamed)
            if blamed:
                assert state.status == F.INITIALIZED
    assert reported[F.UNINITIALIZED] == {False}  # RDMD answers during TDMR init
    assert True in reported[F.INITIALIZED]


def test_traces_show_every_fact_the_state_keeps_under_a_name_of_its_own():
    """A trace shows each PAMT chunk's bits, what init_tdx_module holds and each caller's place
    by name: every bit alone reads as one name of its own, and the callers' places are
    distinct values, each named. Two facts under one bit or one name would make a trace say
    one thing where the model did another (a chunk freed once shown as freed twice)."""
    for describe, prefix, unnamed in ((S.pamt_describe, "PAMT_", set()),
                                      (S.resources_describe, "RES_",
                                       {S.RES_MEMS_LOCK})):  # shown by the steps that take it
        bits = sorted(v for k, v in vars(S).items()
                      if k.startswith(prefix) and isinstance(v, int) and v not in unnamed)
        assert all(bit & (bit - 1) == 0 for bit in bits), bits  # one bit each
        names = [describe(bit) for bit in bits]
        assert all("+" not in name and name != "none" for name in names), names
        assert len(set(names)) == len(names) == len(set(bits)) == len(bits), names
    places = (S.IDLE, S.CHECKED, S.ENABLING, S.IN_IPI, S.IN_TDX, S.LOADED, S.FAILED)
    assert sorted(places) == list(range(len(S.CALLER_PC_NAMES))) == list(range(len(places)))
