"""How each kind of check runs: one function per kind, from a `CheckSpec` to a `CheckResult`.

Runners are top-level functions of picklable inputs, so `--jobs` can run them anywhere.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import replace
from pathlib import Path

from checker.readers import InputError, read_input
from checker.results import ERROR, FAIL, PASS, CheckResult, Location
from checker.suite import CheckSpec
from checker.tdmr_report import TdmrOptions, analyse
from spec.profiles import get_profile


def run_log(spec: CheckSpec) -> CheckResult:
    """LOG-REPRODUCED: the model computes the PAMT figure or the failure the machine logged."""
    machine = read_input(spec.config)
    report = analyse(machine, TdmrOptions(get_profile(spec.profile)))
    same = {k: v for k, v in report["reproduces_log"].items() if v is not None}
    result = CheckResult(spec.id, "LOG-REPRODUCED", spec.profile, Path(spec.config).name,
                         PASS, statement="the model computes what the machine's kernel logged",
                         source="boot log of a real TDX host")
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
                   counterexample={"kind": "map", "file": spec.config, "report": report},
                   location=Location("input", spec.config, 1))


RUNNERS = {"log": run_log}


def run_check(spec: CheckSpec) -> CheckResult:
    """Run one check; a crash or unreadable input becomes an `error` verdict, never a pass."""
    started = time.perf_counter()
    try:
        runner = RUNNERS.get(spec.kind)
        if runner is None:
            raise NotImplementedError(f"no runner for check kind {spec.kind!r}")
        result = runner(spec)
    except InputError as exc:
        result = CheckResult(spec.id, "INPUT", spec.profile, spec.config, ERROR, str(exc))
    except Exception as exc:  # a checker defect: report it, keep the other checks going
        detail = f"{type(exc).__name__}: {exc}"
        result = CheckResult(spec.id, "CHECKER-ERROR", spec.profile, spec.config, ERROR,
                             detail, extra={"traceback": traceback.format_exc()})
    return replace(result, duration_s=round(time.perf_counter() - started, 3))
