"""Time and peak memory of `tdmr`'s failure explanation, `--check-layout` and `explore --time`
on large inputs (not a test).

Each row runs `python -m checker ...` in a child process of its own, so its peak RSS is its own
(`os.wait4`); a child still running after `--limit` seconds is stopped and its row says so.
Rows: the README example; e820 logs with N holes in one TDMR (2 x N lines: 32 KiB of memory
every 64 KiB from 1 MiB up, a 64 MiB range for the PAMT, reserved lines between); `--check-layout`
of N-TDMR lists (one 512 MiB region per GiB, first-fit, limits raised so it builds); `tdmr` on
the 4,000-TDMR map with v6.8's own limit of reserved areas (it fails: first-fit packs the PAMT
chunks into the first TDMR); and `explore --time 2` on a configuration it cannot finish, with
how far past the bound it stopped.

Usage: python benchmarks/bench_explain.py [--holes 1000 5000 10000] [--tdmrs 1000 2000 4000]
                                          [--limit S] [--root CHECKOUT]
`--root` runs another checkout (say `git archive REV | tar -x -C /tmp/old`) for before/after.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from invariants.layout import layout_to_json  # noqa: E402
from spec.memory import SZ_1G, SZ_1M, MemRange, build_tdx_memlist  # noqa: E402
from spec.sysinfo import TdxSysinfo  # noqa: E402
from spec.tdmr import construct_tdmrs  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
README_LOG = "checker/data/boot-logs/emr-fcp-e820-first-2g.log"
STRIDE = 0x8000  # memory and reserved ranges alternate every 32 KiB


def e820_line(start: int, end: int, kind: str) -> str:
    return f"BIOS-e820: [mem {start:#018x}-{end - 1:#018x}] {kind}"


def holes_log(holes: int) -> str:
    """2 x `holes` e820 lines whose memory leaves `holes` holes in TDMR [0, 1G): the leading
    one below 1 MiB, `holes - 2` gaps, the trailing one above the 64 MiB range."""
    lines = [e820_line(0, 0x9F000, "usable"), e820_line(0x9F000, SZ_1M, "reserved")]
    at = SZ_1M
    for _ in range(holes - 2):
        lines += [e820_line(at, at + STRIDE, "usable"),
                  e820_line(at + STRIDE, at + 2 * STRIDE, "reserved")]
        at += 2 * STRIDE
    lines += [e820_line(at, at + 64 * SZ_1M, "usable"),
              e820_line(at + 64 * SZ_1M, SZ_1G, "reserved")]
    return "\n".join(lines) + "\n"


def tdmrs_map(count: int) -> list[MemRange]:
    """One 512 MiB region in each GiB from 4 GiB up: `count` TDMRs."""
    return [MemRange(4 * SZ_1G + i * SZ_1G + SZ_1M, 4 * SZ_1G + i * SZ_1G + 513 * SZ_1M)
            for i in range(count)]


def tdmrs_files(count: int, folder: Path) -> tuple[Path, Path]:
    """The map as an e820 log and the TDMR list v6.8 builds for it with limits raised."""
    regions = tdmrs_map(count)
    log = folder / f"tdmrs-{count}.log"
    log.write_text("".join(e820_line(r.start, r.end, "usable") + "\n" for r in regions))
    built = construct_tdmrs(build_tdx_memlist(regions),
                            TdxSysinfo(max_tdmrs=count, max_reserved_per_tdmr=count + 16))
    assert built.ok, built.error
    layout = folder / f"tdmrs-{count}.json"
    layout.write_text(json.dumps(layout_to_json(built.tdmrs)))
    return log, layout


def run(args: list[str], root: Path, limit: float) -> tuple[float, float, int | None, str]:
    """`python -m checker ARGS` in `root`: seconds, peak RSS in MB, exit status (None when
    stopped at the limit) and its output."""
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "checker", *args], cwd=root,
                                 stdout=out, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > limit:
                os.kill(child.pid, signal.SIGKILL)
                _, status, usage = os.wait4(child.pid, 0)
                status = None
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - started
        child.returncode = -1  # reaped above; keeps Popen from waiting again
        out.seek(0)
        code = None if status is None else os.waitstatus_to_exitcode(status)
        return seconds, usage.ru_maxrss / 1024, code, out.read()


def verdict(text: str) -> str:
    """The line that says how the run ended, shortened."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("why no layout"):
            how = line[line.index("(") + 1:line.rindex(")")] if "(" in line else "unknown"
            core = lines[i + 1][lines[i + 1].rfind("(conflicting: ") + 14:-1]
            cut = [x.strip() for x in lines[i + 2:i + 3] if x.strip().startswith("partial")]
            return f"{how}: {core}" + (f"; {cut[0]}" if cut else "")
        if line.startswith(("layout invariants:", "reserved areas:")):
            return line
        if "distinct states" in line:
            return line.split(", depth")[0]
    return lines[-1] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--holes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--tdmrs", type=int, nargs="+", default=[1000, 2000, 4000])
    parser.add_argument("--limit", type=float, default=120.0,
                        help="seconds a row may take before it is stopped (default 120)")
    parser.add_argument("--root", type=Path, default=ROOT, help="checkout to run")
    args = parser.parse_args()
    print(f"{'run':<58} {'seconds':>8} {'peak MB':>8}  exit  result")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = [(f"tdmr README example ({README_LOG.rsplit('/', 1)[1]})",
                 ["tdmr", str(ROOT / README_LOG)])]
        for holes in args.holes:
            log = folder / f"holes-{holes}.log"
            log.write_text(holes_log(holes))
            rows.append((f"tdmr e820 log, {2 * holes:,} lines, {holes:,} holes in one TDMR",
                         ["tdmr", str(log)]))
        for count in args.tdmrs:
            log, layout = tdmrs_files(count, folder)
            rows.append((f"tdmr --check-layout, {count:,} TDMRs",
                         ["tdmr", str(log), "--max-tdmrs", str(count), "--max-reserved",
                          str(count + 16), "--check-layout", str(layout)]))
        count = max(args.tdmrs)
        rows.append((f"tdmr, {count:,} TDMRs, PAMTs packed into TDMR 0 (fails)",
                     ["tdmr", str(folder / f"tdmrs-{count}.log"), "--max-tdmrs", str(count)]))
        rows.append(("explore --config 4x2 --time 2", ["explore", "--config", "4x2",
                                                      "--time", "2"]))
        for name, argv in rows:
            seconds, peak, code, text = run(argv, args.root, args.limit)
            status = "cut" if code is None else str(code)
            result = (f"stopped at the {args.limit:g} s limit" if code is None
                      else verdict(text))
            print(f"{name:<58} {seconds:8.2f} {peak:8.0f}  {status:>4}  {result}", flush=True)


if __name__ == "__main__":
    main()
