"""The checks `verify` runs by default."""

from __future__ import annotations

import time
from pathlib import Path

from checker.readers import InputError, read_input
from checker.results import ERROR, FAIL, PASS, CheckResult
from checker.tdmr_report import TdmrOptions, analyse
from spec.profiles import V6_8

DATA = Path(__file__).parent / "data"
BOOT_LOGS = DATA / "boot-logs"


def builtin_maps() -> list[Path]:
    """The boot logs shipped with the checker that carry a memory map."""
    maps = []
    for path in sorted(BOOT_LOGS.glob("*.log")):
        try:
            read_input(path)
        except InputError:
            continue
        maps.append(path)
    return maps


def reproduce_log_check(path: Path, profile=V6_8) -> CheckResult:
    """LOG-REPRODUCED: the model gives the PAMT figure or failure the machine logged."""
    started = time.perf_counter()
    report = analyse(read_input(path), TdmrOptions(profile))
    same = report["reproduces_log"]
    verdicts = [v for v in same.values() if v is not None]
    status = PASS if verdicts and all(verdicts) else FAIL
    if not verdicts:
        status, detail = ERROR, "the log records no PAMT figure or failure to compare with"
    elif status == PASS:
        detail = (f"reproduces {report['logged_pamt_kb']} KB of PAMT" if same["pamt_kb"]
                  else f"reproduces the logged failure ({report['logged_error']['errno']})")
    else:
        detail = (f"model: pamt_kb={report['pamt_kb']} error={report['error']}; log: "
                  f"pamt_kb={report['logged_pamt_kb']} error={report['logged_error']}")
    return CheckResult(id=f"log/{profile.name}/{path.stem}", invariant="LOG-REPRODUCED",
                       profile=profile.name, config=path.name, status=status, detail=detail,
                       duration_s=time.perf_counter() - started,
                       statement="the model computes what the machine's kernel logged")


def run_default_suite(args) -> int:
    results = [reproduce_log_check(path) for path in builtin_maps()]
    for r in results:
        print(f"{r.status.upper():<5} {r.id:<45} {r.detail}")
    failed = [r for r in results if r.status != PASS]
    print(f"checks: {len(results)}   pass {len(results) - len(failed)}   fail {len(failed)}")
    return 1 if failed else 0
