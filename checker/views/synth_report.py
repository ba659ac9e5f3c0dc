"""`python -m checker counterexample KIND`: the smallest map of a kind, with the kernel's
result on it and the firmware table it stands for."""

from __future__ import annotations

import json
from typing import Any

from checker.engines.synth import Counterexample, synthesise
from checker.inputs.readers import read_json_map
from checker.views.tdmr_report import TdmrOptions, analyse
from spec.memory import MemRange
from spec.profiles import V6_8
from spec.sysinfo import TdxSysinfo

SCHEMA_VERSION = 1  # of the JSON report: checker/schemas/synthesis.schema.json


def e820_lines(regions: tuple[MemRange, ...] | list[MemRange]) -> list[str]:
    """The map as the firmware table a kernel would print: usable ranges, reserved gaps."""
    lines, prev = [], 0
    for r in regions:
        if r.start > prev:
            lines.append(f"BIOS-e820: [mem 0x{prev:016x}-0x{r.start - 1:016x}] reserved")
        lines.append(f"BIOS-e820: [mem 0x{r.start:016x}-0x{r.end - 1:016x}] usable")
        prev = r.end
    return lines


def synthesise_report(kind: str, max_tdmrs: int | None, max_reserved: int | None,
                      entry_sizes: tuple[int, int, int] | None,
                      timeout_ms: int) -> tuple[dict[str, Any], Counterexample]:
    """`counterexample KIND`: the map, the `tdmr --format json` result on it, the proof."""
    defaults = TdxSysinfo()
    sysinfo = TdxSysinfo(max_tdmrs or defaults.max_tdmrs,
                         max_reserved or defaults.max_reserved_per_tdmr,
                         entry_sizes or defaults.pamt_entry_size)
    cex = synthesise(kind, sysinfo, V6_8, timeout_ms)
    report = {"schema_version": SCHEMA_VERSION, **cex.to_json()}
    report["e820"] = e820_lines(cex.regions)
    report["kernel"] = None
    if cex.status == "found":
        machine = read_json_map(json.dumps(cex.map_json()), f"<{kind} map>")
        report["kernel"] = analyse(machine, TdmrOptions(V6_8))
        report["text"] = "\n".join([cex.describe(), "  as e820 lines:",
                                    *("    " + line for line in report["e820"])])
    return report, cex
