"""How each kind of check runs: one function per kind, from a `CheckSpec` to a `CheckResult`.

Runners are top-level functions of picklable inputs, so `--jobs` can run them anywhere.
"""

from __future__ import annotations

import inspect
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from checker.engines.mapsearch import (
    EXAMPLES,
    describe_case,
    describe_placement,
    smallest_violating_map,
)
from checker.engines.mapstrategies import MAX_REGIONS
from checker.engines.planner import plan_layout
from checker.engines.solver import ANY_NODE, worst_case_placement
from checker.gate.flowcheck import run_flow, run_platforms
from checker.gate.replay import (
    CONSTRUCT_FAILS,
    DIFFERS,
    LAYOUT_VIOLATED,
    ReplayError,
    load_document,
    replay_document,
)
from checker.gate.results import ERROR, FAIL, INCONCLUSIVE, PASS, CheckResult, Location
from checker.gate.suite import CheckSpec
from checker.inputs.readers import InputError, MachineInput, memory_map_json, read_input
from checker.views.tdmr_report import TdmrOptions, analyse, build, effective_sysinfo
from invariants.base import Invariant
from invariants.layout import CONSTRAINTS_BY_ID
from invariants.machine import (
    INIT_PLACEMENT_INDEPENDENT,
    INIT_WHEN_LAYOUT_EXISTS,
    LAYOUT,
    LOG_REPRODUCED,
    MACHINE_INVARIANTS,
)
from spec.memory import build_tdx_memlist
from spec.placement import NearestPlacement
from spec.profiles import HOLES_CMR, get_profile
from spec.sysinfo import TdxSysinfo


def run_log(spec: CheckSpec) -> CheckResult:
    """LOG-REPRODUCED: the model computes the PAMT figure or the failure the machine logged."""
    machine = read_input(spec.config)
    report = analyse(machine, TdmrOptions(get_profile(spec.profile)))
    same = {k: v for k, v in report["reproduces_log"].items() if v is not None}
    result = _result(spec, LOG_REPRODUCED)
    if not same:
        return replace(result, detail="the log records no PAMT figure or failure: nothing to "
                       "compare")
    if all(same.values()):
        detail = (f"reproduces {report['logged_pamt_kb']} KB of PAMT" if "pamt_kb" in same
                  and same["pamt_kb"] else
                  f"reproduces the logged failure ({report['logged_error']['errno']})")
        return replace(result, detail=detail)
    return replace(result, status=FAIL,
                   detail=f"model: pamt_kb={report['pamt_kb']} error={report['error']}; log: "
                          f"pamt_kb={report['logged_pamt_kb']} error={report['logged_error']}",
                   counterexample={"kind": "log", "file": spec.config, "report": report},
                   location=Location("input", spec.config, 1))


# The Dynamic PAMT bits of the module a profile with that rule is checked on when the map's
# module has none (no shipped log's has): the series' module. On a module without it such a
# profile builds v6.8's layouts, as the maps search (SAME-AS-V6.8) checks.
DPAMT_MODULE_BITS = 1


def _map_options(spec: CheckSpec) -> tuple[MachineInput, TdmrOptions]:
    machine = read_input(spec.config)
    profile = get_profile(spec.profile)
    module = machine.sysinfo or TdxSysinfo()
    if profile.pamt_4k_bitmap and not module.pamt_page_bitmap_entry_bits:
        # on the machine itself, so that a counterexample's map records that module
        machine = replace(machine, sysinfo=replace(
            module, pamt_page_bitmap_entry_bits=DPAMT_MODULE_BITS))
    return machine, TdmrOptions(profile, explain=False,
                                timeout_ms=int(spec.bounds.solver_timeout_s * 1000))


def _map_counterexample(machine: MachineInput, prop: str, text: str, errno: int | None = None,
                        placement: str = "first-fit", bases: dict[int, int] | None = None
                        ) -> dict[str, Any]:
    """A replayable map counterexample: the map in our JSON format plus what to test."""
    doc = memory_map_json(machine.regions, machine.cmrs, machine.sysinfo, bases)
    return {"kind": "map", "map": doc, "placement": placement, "property": prop,
            "errno": errno, "text": text}


def _input_location(machine: MachineInput, line: int | None = None) -> Location:
    return Location("input", machine.source, line or (machine.lines[0] if machine.lines else 1))


def run_layout(spec: CheckSpec) -> CheckResult:
    """The layout invariants on the TDMR list the profile's kernel hands to TDH.SYS.CONFIG."""
    machine, options = _map_options(spec)
    report = analyse(machine, options)
    result = _result(spec, LAYOUT)
    check = report["layout_check"]
    if check["status"] == "not-built":
        return replace(result, detail=f"not built: the kernel refuses the map "
                       f"({report['error']['errno']}), nothing reaches the module")
    if check["status"] == "valid":
        return replace(result, detail=f"{len(report['tdmrs'])} TDMRs, every layout "
                       "invariant holds")
    first = check["violations"][0]
    text = "\n".join(v["text"] for v in check["violations"])
    invariant = CONSTRAINTS_BY_ID[first["constraint"]].invariant
    return replace(result, status=FAIL, invariant=invariant.id, detail=first["text"],
                   statement=invariant.statement, source=invariant.source,
                   counterexample=_map_counterexample(machine, LAYOUT_VIOLATED, text),
                   location=_input_location(machine))


def run_worst_case(spec: CheckSpec) -> CheckResult:
    """INIT-PLACEMENT-INDEPENDENT: if first-fit placement builds, every legal placement does."""
    machine, options = _map_options(spec)
    result = _result(spec, INIT_PLACEMENT_INDEPENDENT)
    worst = worst_case_placement(build_tdx_memlist(machine.regions),
                                 effective_sysinfo(machine, options), ANY_NODE, machine.cmrs,
                                 options.profile, options.timeout_ms)
    if worst.status == "unknown":
        return replace(result, status=INCONCLUSIVE, detail=worst.describe(),
                       bound=f"solver timeout {options.timeout_ms} ms")
    if worst.status == "breaks" and worst.first_fit.ok:
        err = worst.witness_result.error
        return replace(result, status=FAIL, detail=worst.describe(),
                       counterexample=_map_counterexample(
                           machine, CONSTRUCT_FAILS, worst.describe(), err.errno,
                           "explicit", worst.witness), location=_input_location(machine))
    return replace(result, detail=worst.describe())


def run_plan(spec: CheckSpec) -> CheckResult:
    """INIT-WHEN-LAYOUT-EXISTS: the kernel builds TDMRs whenever a valid layout exists. A
    failure is a kernel limitation on that map (a finding), not a broken safety rule."""
    machine, options = _map_options(spec)
    result = _result(spec, INIT_WHEN_LAYOUT_EXISTS)
    kernel, sysinfo = build(machine, options)
    if kernel.ok:
        return replace(result, detail=f"the kernel builds {len(kernel.tdmrs)} TDMRs")
    plan = plan_layout(build_tdx_memlist(machine.regions), sysinfo, machine.cmrs,
                       options.profile, options.timeout_ms)
    if plan.status == "found":
        text = (f"finding: {spec.profile} fails ({kernel.error.errno}: {kernel.error.message})"
                f" although a valid layout exists\n{plan.describe()}")
        return replace(result, status=FAIL, detail=text.splitlines()[0],
                       counterexample=_map_counterexample(machine, CONSTRUCT_FAILS, text,
                                                          kernel.error.errno),
                       location=_input_location(machine), extra={"finding": True})
    if plan.status == "unknown":
        return replace(result, status=INCONCLUSIVE, detail=plan.describe(),
                       bound=f"solver timeout {options.timeout_ms} ms")
    return replace(result, detail=f"the kernel fails ({kernel.error.errno}) and no valid "
                   "layout exists either")


def run_maps(spec: CheckSpec) -> CheckResult:
    """The layout invariants and SAME-AS-V6.8 on boundary-biased maps and PAMT placements; the
    smallest case found is the counterexample."""
    profile = get_profile(spec.profile)
    outcome = smallest_violating_map(profile, time_s=spec.bounds.time_s)
    result = replace(_result(spec, LAYOUT), states=outcome.examples)
    if outcome.witness is None:
        if not outcome.complete:
            return replace(result, status=INCONCLUSIVE, bound=f"time {spec.bounds.time_s} s",
                           detail=f"no violation in the {outcome.examples} cases examined "
                           "before the time bound; bounded, not exhaustive")
        return replace(result, detail=f"no layout violation or departure from v6.8 in "
                       f"{EXAMPLES} cases of up to {MAX_REGIONS} regions, each with first-fit, "
                       "last-fit and boundary-seeking PAMT placement (a fixed sample, not a proof)")
    case, finding = outcome.witness.case, outcome.witness.finding
    invariant = (CONSTRAINTS_BY_ID[finding.invariant].invariant if finding.layout
                 else MACHINE_INVARIANTS[finding.invariant])
    text = "\n".join(finding.texts)
    nearest = isinstance(finding.placement, NearestPlacement)
    machine = MachineInput("<searched map>", "json", case.regions,
                           tuple(range(1, len(case.regions) + 1)),
                           case.cmrs if profile.holes == HOLES_CMR else (),
                           None if case.sysinfo == TdxSysinfo() else case.sysinfo)
    placement, bases = ("explicit", finding.bases) if nearest else (finding.placement.name, None)
    if finding.layout:
        counterexample = _map_counterexample(machine, LAYOUT_VIOLATED, text, None, placement,
                                             bases)
    elif not finding.result.ok:  # fails where v6.8 does not, or fails another way
        counterexample = _map_counterexample(machine, CONSTRUCT_FAILS, text,
                                             finding.result.error.errno, placement, bases)
    else:  # builds another TDMR list than v6.8
        counterexample = _map_counterexample(machine, DIFFERS, text, None, placement, bases)
    return replace(result, status=FAIL, invariant=invariant.id, statement=invariant.statement,
                   source=invariant.source, detail=f"{describe_case(case)}, placement "
                   f"{describe_placement(finding)}: {finding.texts[0]}"
                   + ("" if outcome.complete else " (shrinking cut short by the time bound)"),
                   counterexample=counterexample,
                   location=Location("spec", *_spec_location(
                       _SPEC_FUNCTION[invariant.id.split("-")[0]])))


# Where in spec.tdmr each kind of broken invariant points: the phase that builds that part.
_SPEC_FUNCTION = {"TDMR": "fill_out_tdmrs", "PAMT": "tdmrs_set_up_pamt_all",
                  "RSVD": "tdmrs_populate_rsvd_areas_all", "SAME": "construct_tdmrs"}


def run_replay(spec: CheckSpec) -> CheckResult:
    """A stored counterexample, run again: fail while it still violates; a trace that no
    longer runs on the model is an error of this check (the file needs recording again)."""
    doc = load_document(spec.config)
    outcome = replay_document(doc, spec.config)
    if not outcome.runs:
        return CheckResult(spec.id, outcome.invariant, spec.profile, Path(spec.config).name,
                           ERROR, detail=outcome.text.splitlines()[0])
    known = MACHINE_INVARIANTS.get(outcome.invariant) or getattr(
        CONSTRAINTS_BY_ID.get(outcome.invariant), "invariant", None)
    return CheckResult(spec.id, outcome.invariant, spec.profile, Path(spec.config).name,
                       FAIL if outcome.still_violates else PASS,
                       statement=known.statement if known else "",
                       source=known.source if known else "",
                       extra={"finding": outcome.invariant == INIT_WHEN_LAYOUT_EXISTS.id},
                       detail=("still violates: " if outcome.still_violates
                               else "no longer violates: ") + outcome.text.splitlines()[0],
                       counterexample={"kind": "replay", "file": spec.config,
                                       "text": outcome.text} if outcome.still_violates
                       else None)


def _result(spec: CheckSpec, invariant: Invariant) -> CheckResult:
    """A passing result for the property a check stands for; failures narrow it down."""
    config = Path(spec.config).name if spec.config != "grid" else "grid"
    return CheckResult(spec.id, invariant.id, spec.profile, config, PASS,
                       statement=invariant.statement, source=invariant.source)


def _spec_location(function: str) -> tuple[str, int, str]:
    """File and line of a `spec.tdmr` function, for reports that point into the model."""
    import spec.tdmr

    target = getattr(spec.tdmr, function)
    return (inspect.getsourcefile(target), inspect.getsourcelines(target)[1], function)


RUNNERS = {"log": run_log, "layout": run_layout, "worst-case": run_worst_case,
           "plan": run_plan, "maps": run_maps, "flow": run_flow, "platforms": run_platforms,
           "replay": run_replay}


# Seconds a check may run, on top of four times its suite's time and solver bounds, before it
# is stopped as hung (a model that loops for good would otherwise hold the gate forever).
CHECK_TIME_LIMIT = 600.0


class CheckOverran(BaseException):
    """Raised in a check that ran past its time limit (a BaseException, so that no handler
    of the code under check takes it for one of its own errors)."""


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """Stop what runs inside after `seconds` of wall time (SIGALRM; only in a process's main
    thread, where a check runs under `verify`, in its worker processes too)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def overran(_signum, _frame):
        raise CheckOverran

    previous = signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_check(spec: CheckSpec) -> CheckResult:
    """Run one check; a crash, an unreadable input or a run past the time limit becomes an
    `error` verdict, never a pass."""
    started = time.perf_counter()
    limit = CHECK_TIME_LIMIT + 4 * (spec.bounds.time_s + spec.bounds.solver_timeout_s)
    try:
        runner = RUNNERS.get(spec.kind)
        if runner is None:
            raise NotImplementedError(f"no runner for check kind {spec.kind!r}")
        with _time_limit(limit):
            result = runner(spec)
    except CheckOverran:
        result = CheckResult(spec.id, "CHECKER-ERROR", spec.profile, spec.config, ERROR,
                             f"stopped after {limit:g} s: the check ran past its time limit "
                             "(does the model loop?)")
    except (InputError, ReplayError) as exc:
        result = CheckResult(spec.id, "INPUT", spec.profile, spec.config, ERROR, str(exc))
    except Exception as exc:  # a checker defect: report it, keep the other checks going
        detail = f"{type(exc).__name__}: {exc}"
        result = CheckResult(spec.id, "CHECKER-ERROR", spec.profile, spec.config, ERROR,
                             detail, extra={"traceback": traceback.format_exc()})
    return replace(result, duration_s=round(time.perf_counter() - started, 3))
