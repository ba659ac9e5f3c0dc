"""`python -m checker tdmr`: what v6.8 builds for a machine, why it fails, whether that is what
the machine's log says happened, and what each TDX line of the log means (`checker.views.
diagnosis`), also for a log without a memory map (`analyse_log`)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from checker.engines.planner import plan_layout
from checker.engines.solver import (
    ANY_NODE,
    PREFERRED_NODE,
    explain_construction,
    worst_case_placement,
)
from checker.inputs.readers import LoggedFacts, MachineInput
from checker.views import glossary
from checker.views.diagnosis import (
    Context,
    diagnose_lines,
    diagnosis_text,
    failed_tdmr_holes,
    holes_text,
    log_outcome,
)
from invariants.layout import check_layout
from spec.errno import KernelError
from spec.memory import SZ_1G, MemRange, build_tdx_memlist
from spec.placement import PLACEMENTS, ExplicitPlacement
from spec.profiles import HOLES_CMR, HOLES_MEMBLOCK, Profile
from spec.sysinfo import PAGE_SIZE_NAMES, TdxSysinfo, get_tdx_tdmr_sysinfo, kernel_sysinfo
from spec.tdmr import (
    ConstructResult,
    Tdmr,
    construct_tdmrs,
    pamt_sizes,
    tdmr_get_nid,
    tdmr_range,
)

SCHEMA_VERSION = 1  # of the JSON report: checker/schemas/tdmr.schema.json


@dataclass(frozen=True)
class TdmrOptions:
    """What the user chose on the command line; None means "as the input says, else default"."""

    profile: Profile
    placement: str | None = None
    max_tdmrs: int | None = None
    max_reserved: int | None = None
    pamt_entry_size: tuple[int, int, int] | None = None
    pamt_bitmap_bits: int | None = None
    worst_case: bool = False
    plan: bool = False
    explain: bool = True  # a minimal conflict core when construction fails (a solver call)
    timeout_ms: int = 30_000


def effective_sysinfo(machine: MachineInput, options: TdmrOptions) -> TdxSysinfo:
    """The input's metadata (or the defaults), with the command line's overrides on top."""
    base = machine.sysinfo or TdxSysinfo()
    changes: dict[str, Any] = {}
    if options.max_tdmrs is not None:
        changes["max_tdmrs"] = options.max_tdmrs
    if options.max_reserved is not None:
        changes["max_reserved_per_tdmr"] = options.max_reserved
    if options.pamt_entry_size is not None:
        changes["pamt_entry_size"] = options.pamt_entry_size
    if options.pamt_bitmap_bits is not None:
        changes["pamt_page_bitmap_entry_bits"] = options.pamt_bitmap_bits
    return replace(base, **changes)


def placement_for(machine: MachineInput, options: TdmrOptions):
    if options.placement is None and machine.pamt_bases is not None:
        return ExplicitPlacement(machine.pamt_bases)
    return PLACEMENTS[options.placement or "first-fit"]


def build(machine: MachineInput, options: TdmrOptions) -> tuple[ConstructResult, TdxSysinfo]:
    """Run `construct_tdmrs` on the machine as the options say."""
    sysinfo = effective_sysinfo(machine, options)
    result = construct_tdmrs(build_tdx_memlist(machine.regions), sysinfo,
                             placement_for(machine, options), machine.cmrs, options.profile)
    return result, sysinfo


def analyse(machine: MachineInput, options: TdmrOptions) -> dict[str, Any]:
    """Everything `tdmr` reports, as one JSON-ready dict (the text output renders this)."""
    result, sysinfo = build(machine, options)
    memlist = build_tdx_memlist(machine.regions)
    logged = machine.logged
    module_error = None
    if logged.module is not None:
        read = get_tdx_tdmr_sysinfo(logged.module.major, logged.module.minor, sysinfo)
        if isinstance(read, KernelError):
            module_error = read
    error = module_error or result.error
    stage = "metadata" if module_error else ("construct_tdmrs" if result.error else None)
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "input": {"file": machine.source, "kind": machine.kind, "notes": list(machine.notes),
                  "memory_from_cmrs": machine.memory_from_cmrs},
        "profile": options.profile.name,
        "holes": options.profile.holes,
        "placement": placement_for(machine, options).name,
        "metadata": {"max_tdmrs": sysinfo.max_tdmrs,
                     "max_reserved_per_tdmr": sysinfo.max_reserved_per_tdmr,
                     "pamt_entry_size": list(sysinfo.pamt_entry_size),
                     "pamt_page_bitmap_entry_bits": sysinfo.pamt_page_bitmap_entry_bits},
        "module": _module_json(logged),
        "keyid_range": list(logged.keyid_range) if logged.keyid_range else None,
        "memory": [_range_json(e) | {"nid": e.nid} for e in memlist],
        "cmrs": [_range_json(c) for c in machine.cmrs],
        "tdmrs": [_tdmr_json(t, memlist, result, i) for i, t in enumerate(result.tdmrs)],
        "pamt_kb": None if error else result.pamt_kb,
        "error": _error_json(error),
        "failed_stage": stage,
        "failed_tdmr": result.failed_tdmr,
        "failed_pamt_tdmr": result.failed_pamt,
        "explanation": explain(result, sysinfo, memlist, options.profile)
        if result.error else None,
        "messages": list(result.messages),
        "headroom": _headroom(result, sysinfo),
        "logged_pamt_kb": logged.pamt_kb,
        "logged_error": _error_json(logged.error),
        "reproduces_log": _reproduces(error, None if error else result.pamt_kb, logged),
        "alternative": None,
        "layout_check": _layout_check(result, memlist, machine, sysinfo, options),
        "worst_case": None,
        "plan": None,
    }
    if options.worst_case:
        out["worst_case"] = [worst_case_placement(memlist, sysinfo, mode, machine.cmrs,
                                                  options.profile, options.timeout_ms).to_json()
                             for mode in (ANY_NODE, PREFERRED_NODE)]
    if options.plan:
        out["plan"] = plan_layout(memlist, sysinfo, machine.cmrs, options.profile,
                                  options.timeout_ms).to_json()
    cmr_needed = None
    if (error and not module_error and machine.cmrs and not machine.memory_from_cmrs
            and options.profile.holes == HOLES_MEMBLOCK):
        alt_options = replace(options, profile=replace(options.profile, holes=HOLES_CMR))
        alt, _ = build(machine, alt_options)
        out["alternative"] = {"holes": HOLES_CMR, "pamt_kb": alt.pamt_kb,
                              "error": _error_json(alt.error),
                              "headroom": _headroom(alt, sysinfo)}
        if result.failed_tdmr is not None and result.failed_tdmr < len(alt.demand):
            cmr_needed = alt.demand[result.failed_tdmr].total
    context = Context(bool(machine.firmware_map), bool(machine.cmrs), _command_line(logged))
    out |= _diagnosis(logged, context)
    out["failed_tdmr_holes"] = failed_tdmr_holes(machine, out, cmr_needed)
    out["modelled"] = True
    return out


NO_MAP_NOTE = ("no memory map in this log (no BIOS-e820, CMR or System RAM lines): the TDMRs "
               "are not modelled, the log's TDX lines are diagnosed")


def analyse_log(source: str, logged: LoggedFacts, options: TdmrOptions) -> dict[str, Any]:
    """The report for a boot log without a memory map: what it logged, diagnosed; every key of
    `analyse`, with those of the model empty (`modelled` false)."""
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "input": {"file": source, "kind": "boot-log", "notes": [NO_MAP_NOTE],
                  "memory_from_cmrs": False},
        "profile": options.profile.name, "holes": options.profile.holes, "placement": None,
        "metadata": None, "module": _module_json(logged),
        "keyid_range": list(logged.keyid_range) if logged.keyid_range else None,
        "memory": [], "cmrs": [], "tdmrs": [], "pamt_kb": None, "error": None,
        "failed_stage": None, "failed_tdmr": None, "failed_pamt_tdmr": None,
        "explanation": None, "messages": [],
        "headroom": None, "logged_pamt_kb": logged.pamt_kb,
        "logged_error": _error_json(logged.error),
        "reproduces_log": {"pamt_kb": None, "error": None}, "alternative": None,
        "layout_check": None, "worst_case": None, "plan": None, "failed_tdmr_holes": None}
    return out | _diagnosis(logged, Context(command_line=_command_line(logged))) | {
        "modelled": False}


def _diagnosis(logged: LoggedFacts, context: Context) -> dict[str, Any]:
    entries = diagnose_lines(logged, context)
    return {"diagnosis": entries, "log_outcome": log_outcome(entries, context)}


def _command_line(logged: LoggedFacts) -> str | None:
    return logged.command_line.text if logged.command_line else None


def _module_json(logged: LoggedFacts) -> dict[str, Any] | None:
    module = logged.module
    return None if module is None else {"version": module.version,
                                        "build_date": module.build_date,
                                        "build_num": module.build_num}


def _layout_check(result: ConstructResult, memlist, machine: MachineInput,
                  sysinfo: TdxSysinfo, options: TdmrOptions) -> dict[str, Any]:
    """The layout invariants on what construction built: on success, the list the module would
    get; on failure, why no valid reserved areas exist for these TDMRs (a minimal core)."""
    holes = machine.cmrs if options.profile.holes == HOLES_CMR else None
    if result.ok:
        found = check_layout(result.tdmrs, memlist, kernel_sysinfo(sysinfo, options.profile),
                             holes)
        return {"status": "violated" if found else "valid",
                "violations": [{"constraint": v.constraint, "tdmr": v.tdmr, "item": v.item,
                                "text": v.describe(result.tdmrs)} for v in found]}
    if not options.explain or result.failed_pamt is not None:
        # Without PAMTs there is no layout to explain: the failure is the allocation itself.
        return {"status": "not-built", "violations": [], "explanation": None}
    why = explain_construction(result, memlist, sysinfo, machine.cmrs, options.profile,
                               options.timeout_ms)
    return {"status": "not-built", "violations": [], "explanation": why.to_json()}


def explain(result: ConstructResult, sysinfo: TdxSysinfo, memlist: tuple[MemRange, ...],
            profile: Profile) -> str | None:
    """The failure counted out, in words. For -ENOMEM the kernel prints no line of its own
    (`tdmr_set_up_pamt` returns the errno, `alloc_contig_pages` fails quietly), so the TDMR
    whose chunk was not given is named here, in the model's words, not as a kernel message."""
    if result.failed_tdmr is not None:
        tdmr = result.tdmrs[result.failed_tdmr]
        demand = result.demand[result.failed_tdmr]
        return (f"{demand.total} reserved areas needed in TDMR {result.failed_tdmr} "
                f"{tdmr_range(tdmr)}: {demand.describe()}; limit "
                f"{sysinfo.max_reserved_per_tdmr}")
    if result.error and result.error.errno == -28:
        return (f"the memory map needs more than {sysinfo.max_tdmrs} TDMRs (one per region "
                "not covered by the previous TDMR)")
    if result.failed_pamt is not None:
        tdmr = result.tdmrs[result.failed_pamt]
        size = sum(pamt_sizes(tdmr, sysinfo, profile))
        return (f"no room for the PAMT of TDMR {result.failed_pamt} {tdmr_range(tdmr)}: "
                f"alloc_contig_pages() returned no {size // 1024} KB chunk on any node (node "
                f"{tdmr_get_nid(tdmr, memlist, [])} preferred); v6.8 prints no line for this")
    return None


def _range_json(r: MemRange) -> dict[str, int]:
    return {"start": r.start, "end": r.end}


def _error_json(error: KernelError | None) -> dict[str, Any] | None:
    return None if error is None else {"errno": error.errno, "message": error.message}


def _tdmr_json(t: Tdmr, memlist, result: ConstructResult, index: int) -> dict[str, Any]:
    out: dict[str, Any] = {"base": t.base, "size": t.size,
                           "nid": tdmr_get_nid(t, memlist, []) if memlist else 0}
    for name, base, size in zip(PAGE_SIZE_NAMES, t.pamt_bases, t.pamt_sizes, strict=True):
        out[f"pamt_{name}_base"], out[f"pamt_{name}_size"] = base, size
    out["reserved"] = [{"offset": a.offset, "size": a.size, "kind": a.kind} for a in t.reserved]
    if index < len(result.demand):
        out["reserved_needed"] = result.demand[index].total
    return out


def _headroom(result: ConstructResult, sysinfo: TdxSysinfo) -> dict[str, Any]:
    most = max(range(len(result.demand)), key=lambda i: result.demand[i].total, default=None)
    return {"tdmrs_used": len(result.tdmrs), "max_tdmrs": sysinfo.max_tdmrs,
            "most_reserved": None if most is None else result.demand[most].total,
            "most_reserved_tdmr": most,
            "max_reserved_per_tdmr": sysinfo.max_reserved_per_tdmr}


def _reproduces(error: KernelError | None, pamt_kb: int | None, logged) -> dict[str, Any]:
    """Whether the model says what the log says: None where the log is silent."""
    same_pamt = None if logged.pamt_kb is None else (pamt_kb == logged.pamt_kb)
    same_error = None
    if logged.error is not None:
        same_error = (error is not None and error.errno == logged.error.errno
                      and (logged.error.message is None
                           or error.message == logged.error.message))
    elif logged.initialized or logged.pamt_kb is not None:
        same_error = error is None
    return {"pamt_kb": same_pamt, "error": same_error}


# --- text -------------------------------------------------------------------------------------

def _gib(size: int) -> str:
    """A size for people: the largest binary unit that keeps it >= 1, one decimal at most."""
    for unit, scale in (("TiB", SZ_1G << 10), ("GiB", SZ_1G), ("MiB", 1 << 20)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size // 1024} KiB"


def _span(start: int, end: int) -> str:
    return f"[0x{start:x}, 0x{end:x})"


def render_text(report: dict[str, Any], verbose: bool = False,
                prog: str = "python -m checker") -> str:
    """For people: input, memory, TDMRs, verdict, how the verdict compares with the log, the
    log's TDX lines diagnosed, and a pointer to the glossary entries of the words used (`prog`
    is how the user runs the checker)."""
    lines = []
    src = report["input"]
    memory = report["memory"]
    nodes = sorted({m["nid"] for m in memory})
    total = sum(m["end"] - m["start"] for m in memory)
    lines.append(f"input: {src['file']} ({src['kind']})")
    for note in src["notes"]:
        lines.append(f"  note: {note}")
    meta = report["metadata"]
    if report["modelled"]:
        lines.append(f"model: profile {report['profile']} ({report['holes']} holes), placement "
                     f"{report['placement']}; limits {meta['max_tdmrs']} TDMRs, "
                     f"{meta['max_reserved_per_tdmr']} reserved areas per TDMR, PAMT entries "
                     f"{'/'.join(map(str, meta['pamt_entry_size']))} bytes")
        if meta["pamt_page_bitmap_entry_bits"]:
            lines.append(f"  Dynamic PAMT module: {meta['pamt_page_bitmap_entry_bits']} bit(s) "
                         "per 4K page in place of the 4K PAMT, for a kernel with the rule "
                         "(profile dpamt; v6.8 ignores it)")
    if report["module"]:
        mod = report["module"]
        build = f" (build {mod['build_num']}, {mod['build_date']})" if mod["build_date"] else ""
        lines.append(f"module: TDX {mod['version']}{build}")
    if report["keyid_range"]:
        lines.append("private KeyIDs: [{}, {})".format(*report["keyid_range"]))
    if not report["modelled"]:
        return _finish(lines + _log_lines(report, verbose), prog)
    lines.append(f"memory: {len(memory)} TDX memory ranges on {len(nodes)} "
                 f"node{'s' if len(nodes) != 1 else ''}, {_gib(total)}")
    elide = not verbose and len(memory) > 24
    for i, m in enumerate(memory):
        if elide and 10 <= i < len(memory) - 4:
            if i == 10:
                lines.append(f"  ... {len(memory) - 14} more (--verbose shows all)")
            continue
        lines.append(f"  {_span(m['start'], m['end']):<40} node {m['nid']}  "
                     f"{_gib(m['end'] - m['start'])}")
    failed = report["failed_tdmr"]
    for i, t in enumerate(report["tdmrs"]):
        pamt_size = t["pamt_4k_size"] + t["pamt_2m_size"] + t["pamt_1g_size"]
        used = t.get("reserved_needed", len(t["reserved"]))
        mark = "  <- fails here" if i == failed else ""
        lines.append(f"TDMR {i:<3} {_span(t['base'], t['base'] + t['size']):<40} "
                     f"{_gib(t['size']):>9}  node {t['nid']}  reserved {used} of "
                     f"{meta['max_reserved_per_tdmr']}{mark}")
        if pamt_size:
            lines.append(f"         PAMT {_span(t['pamt_4k_base'], t['pamt_4k_base'] + pamt_size)}"
                         f"  {pamt_size // 1024} KB")
        if verbose or i == failed or len(report["tdmrs"]) <= 8:
            for a in t["reserved"]:
                start = t["base"] + a["offset"]
                lines.append(f"           {a['kind']:<5} {_span(start, start + a['size'])}")
    lines.extend(_verdict_lines(report))
    return _finish(lines + _log_lines(report, verbose), prog)


def _log_lines(report: dict[str, Any], verbose: bool) -> list[str]:
    """The failing TDMR's holes by firmware entry, then the log's TDX lines diagnosed."""
    lines = []
    if report["failed_tdmr_holes"]:
        below = any(a["key"] == "collect-cmrs" for e in report["diagnosis"]
                    for a in e["actions"])
        lines.extend(holes_text(report["failed_tdmr_holes"], below))
    return lines + diagnosis_text(report["diagnosis"], report["log_outcome"], verbose)


def _finish(lines: list[str], prog: str) -> str:
    text = "\n".join(lines) + "\n"
    hint = glossary.pointer(text, prog)
    return text + (hint + "\n" if hint else "")


def _explanation_lines(why: dict[str, Any]) -> list[str]:
    """The layout explanation, saying how far it got: a proved minimal conflict, a conflict
    not proved minimal, a conflict only counted, or a layout that exists; and what
    `--timeout` cut, if anything."""
    text = why["text"].splitlines()
    if why["status"] == "sat":
        lines = ["reserved areas: valid ones exist for these TDMRs and PAMTs (the failure is "
                 "not a layout conflict)", *(f"  {line}" for line in text[1:])]
    elif why["status"] == "unsat":
        how = "minimal conflict" if why["minimal"] else "a conflict, not shown to be minimal"
        lines = [f"why no layout with these TDMRs can work ({how}):",
                 *(f"  {line}" for line in text)]
    elif why["core"]:
        lines = ["why no layout with these TDMRs can work (counted, not proved by the solver):",
                 *(f"  {line}" for line in text)]
    else:
        lines = ["why no layout with these TDMRs can work: unknown"]
    if why["cut"]:
        lines.append(f"  partial: {why['cut']}")
    return lines


def _verdict_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    error, head = report["error"], report["headroom"]
    if report["failed_stage"] == "metadata":
        lines.append(f"result: v6.8 fails at the first metadata read (TDH.SYS.RD): "
                     f"\"{error['message']}\" ({error['errno']})")
        lines.append(f"        TDX {report['module']['version']} modules lack TDH.SYS.RD; "
                     "v6.8 needs module 1.5 or later (the TDMRs above are what a 1.5 module "
                     "would get)")
    elif error:
        message = f"\"{error['message']}\" " if error["message"] else ""
        lines.append(f"result: {report['profile']} fails: {message}({error['errno']})")
        if report["explanation"]:
            lines.append(f"        {report['explanation']}")
    else:
        lines.append(f"result: {report['profile']} succeeds: {report['pamt_kb']} KB allocated "
                     "for PAMT")
    if head["most_reserved"] is not None:
        lines.append(f"headroom: {head['tdmrs_used']} of {head['max_tdmrs']} TDMRs used; "
                     f"most reserved areas in one TDMR: {head['most_reserved']} of "
                     f"{head['max_reserved_per_tdmr']} (TDMR {head['most_reserved_tdmr']})")
    for message in report["messages"]:
        lines.append(f"kernel: virt/tdx: {message}")
    same = report["reproduces_log"]
    if report["logged_pamt_kb"] is not None:
        verdict = "the model reproduces it exactly" if same["pamt_kb"] else (
            "the model does NOT reproduce it" if same["pamt_kb"] is False else "")
        lines.append(f"log: {report['logged_pamt_kb']} KB allocated for PAMT: {verdict}")
    logged = report["logged_error"]
    if logged is not None:
        what = f"\"{logged['message']}\" " if logged["message"] else ""
        verdict = ("matches the failure in the log" if same["error"]
                   else "does NOT match the model's result")
        lines.append(f"log: failed with {what}({logged['errno']}): {verdict}")
    check = report["layout_check"]
    if check["status"] == "valid":
        lines.append("layout invariants: all hold on the TDMR list handed to TDH.SYS.CONFIG")
    elif check["status"] == "violated":
        lines.append(f"layout invariants: {len(check['violations'])} VIOLATED")
        lines.extend(f"  {v['text']}" for v in check["violations"])
    elif check["explanation"]:
        lines.extend(_explanation_lines(check["explanation"]))
    for worst in report["worst_case"] or ():
        lines.append(worst["text"])
        if worst["witness"]:
            lines.append("  witness PAMT bases: " + ", ".join(
                f"TDMR {i} at {base}" for i, base in worst["witness"].items()))
    if report["plan"]:
        lines.extend(report["plan"]["text"].splitlines())
    alt = report["alternative"]
    if alt:
        if alt["error"] is None:
            lines.append(f"with CMR-derived holes (--holes cmr): succeeds, {alt['pamt_kb']} KB "
                         f"of PAMT, at most {alt['headroom']['most_reserved']} of "
                         f"{alt['headroom']['max_reserved_per_tdmr']} reserved areas per TDMR")
        else:
            lines.append(f"with CMR-derived holes (--holes cmr): fails too "
                         f"({alt['error']['errno']})")
    return lines
