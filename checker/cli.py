"""The command line: `python -m checker COMMAND`.

Exit codes are stable across commands: 0 success or pass, 1 a failure or violation found,
2 usage or input error, 3 inconclusive (verify and explore); a verify stopped by SIGINT or
SIGTERM exits with 128 + the signal.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from importlib.metadata import PackageNotFoundError, version

from checker.engines.explorer import ModelRaised
from checker.engines.simulate import END_BUDGET, STRATEGIES
from checker.engines.synth import KIND_SUMMARIES
from checker.files import file_problem, folder_problem, write_text_atomic
from checker.inputs.readers import (
    JSON_FORMAT_HELP,
    InputError,
    NoMemoryMap,
    read_input,
    read_layout,
)
from checker.options import integer_at_least
from checker.views.trace import raised_to_text
from spec.profiles import HOLES_CMR, HOLES_MEMBLOCK, PROFILES, get_profile
from spec.sysinfo import BITMAP_BITS_MAX

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 3
LOGGED_KERNEL = "v6.8"  # the kernel `tdmr` takes a boot log to come from, unless told otherwise
# Versions of the JSON outputs; each shape is in checker/schemas/ (NAME.schema.json).
EXPLORE_SCHEMA_VERSION = REPLAY_SCHEMA_VERSION = CHECK_LAYOUT_SCHEMA_VERSION = 1
U16_MAX = 0xFFFF  # module metadata fields are 16-bit
DEFAULT_WALKS, DEFAULT_WALK_LENGTH, DEFAULT_WALK_SEED = 1000, 200, 0  # explore --simulate


class UsageError(Exception):
    """A command line that cannot be carried out (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own errors: usage, then exit 2
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _entry_sizes(text: str) -> tuple[int, int, int]:
    try:
        sizes = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected three integers A,B,C") from None
    if len(sizes) != 3 or min(sizes) < 1 or max(sizes) > U16_MAX:
        raise argparse.ArgumentTypeError(f"{text!r}: expected three integers A,B,C from 1 to "
                                         f"{U16_MAX}")
    return sizes  # type: ignore[return-value]


_positive = integer_at_least(1, "at least 1")
_seed = integer_at_least(0, "0 or more")


# Module metadata the module reports in 16 bits; its Dynamic PAMT bits per page in 8 (0: none).
_metadata = integer_at_least(1, "at least 1", U16_MAX, "the module's 16 bits hold")
_bitmap_bits = integer_at_least(0, "0 or more", BITMAP_BITS_MAX,
                                "the module's 8-bit field holds")


def add_limit_options(p: argparse.ArgumentParser) -> None:
    """The module metadata a user may override (defaults: the input's, else 64/16/16,16,16)."""
    p.add_argument("--max-tdmrs", type=_metadata, metavar="N",
                   help="TDMRs the module accepts (default 64)")
    p.add_argument("--max-reserved", type=_metadata, metavar="N",
                   help="reserved areas per TDMR (default 16)")
    p.add_argument("--pamt-entry-size", type=_entry_sizes, metavar="A,B,C",
                   help="PAMT entry bytes for 4K,2M,1G pages (default 16,16,16)")


def _version() -> str:
    try:
        return version("tdx-host-checker")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The parser; `prog` is how the usage names the program (the console script's name, or
    `python -m checker`)."""
    parser = _Parser(prog=prog or os.path.basename(sys.argv[0]) or "tdx-checker",
                     description="Model checker for the Linux v6.8 Intel TDX host init.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s (tdx-host-checker) {_version()}")
    parser.set_defaults(prog_name=parser.prog)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    tdmr = sub.add_parser(
        "tdmr", help="build the TDMRs v6.8 builds for a machine and explain the result",
        description="INPUT is a boot log (dmesg: BIOS-e820, SRAT, CMR and tdx lines), "
        "/proc/iomem, a JSON memory map or a counterexample file holding one, or - for "
        "standard input. A boot log's TDX lines are diagnosed, also without a memory map (exit "
        "1 when they record a failure). JSON memory map:\n" + JSON_FORMAT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    tdmr.add_argument("input", help="boot log, /proc/iomem copy, JSON memory map, "
                      "counterexample file, or - (standard input)")
    tdmr.add_argument("--format", choices=("text", "json", "svg", "html"), default="text",
                      help="text for people, json for tools, svg for the layout as a picture, "
                      "html for the picture above the text (default text)")
    tdmr.add_argument("--output", metavar="FILE", help="write here instead of standard output")
    tdmr.add_argument("--profile", default=LOGGED_KERNEL, help="kernel profile (see "
                      "`profiles`; another than v6.8, or --holes, asks what another kernel "
                      "would do, so the log's own failure no longer sets the exit status)")
    tdmr.add_argument("--holes", choices=(HOLES_MEMBLOCK, HOLES_CMR),
                      help="where holes come from (default: the profile's; cmr needs CMRs)")
    tdmr.add_argument("--placement", choices=("first-fit", "last-fit"),
                      help="PAMT placement policy (default first-fit, or the input's "
                      "pamt_bases)")
    tdmr.add_argument("--verbose", action="store_true", help="list every range and area")
    tdmr.add_argument("--worst-case", action="store_true",
                      help="search every legal PAMT placement for one that breaks construction")
    tdmr.add_argument("--plan", action="store_true",
                      help="the best valid TDMR layout, next to the kernel's")
    tdmr.add_argument("--timeout", type=_positive, default=30, metavar="S",
                      help="solver budget per step in seconds (default 30): the explanation "
                      "and each worst case get Z3 work worth about S s (the same answer on a "
                      "busy machine) and stop at 2 x S of wall clock; --plan stops at S; the "
                      "output says what a spent budget cut")
    tdmr.add_argument("--check-layout", metavar="TDMRS.json",
                      help="check your own TDMR list against the layout invariants for this "
                      "machine instead of building one (the 'tdmrs' list in the form "
                      "`--format json` prints)")
    add_limit_options(tdmr)
    tdmr.add_argument("--pamt-bitmap-bits", type=_bitmap_bits, metavar="N",
                      help="the module's Dynamic PAMT bitmap bits per 4K page "
                      f"(pamt_page_bitmap_entry_bits, 0 to {BITMAP_BITS_MAX}; default: the "
                      "input's, else 0, a module without Dynamic PAMT); only a profile with "
                      "the rule (dpamt) uses it")

    cex = sub.add_parser("counterexample",
                         help="the smallest memory map on which v6.8 breaks in a given way",
                         description="KIND is one of:\n" + "\n".join(
                             f"  {kind:<25} {summary}" for kind, summary in
                             KIND_SUMMARIES.items()),
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    cex.add_argument("kind", choices=tuple(KIND_SUMMARIES), metavar="KIND",
                     help="what the map must show (see above)")
    cex.add_argument("--format", choices=("text", "json"), default="text",
                     help="text for people, json for tools (default text)")
    cex.add_argument("--save", action="store_true",
                     help="add the map to the corpus (counterexamples/, replayed by verify)")
    cex.add_argument("--counterexamples", default="counterexamples", metavar="DIR",
                     help="the corpus folder --save adds to")
    cex.add_argument("--timeout", type=_positive, default=30, metavar="S",
                     help="solver timeout per query in seconds (default 30)")
    add_limit_options(cex)

    sub.add_parser("profiles", help="list the kernel profiles, one line each")

    words = sub.add_parser("glossary", help="explain the words tdmr uses (TDMR, PAMT, CMR, "
                           "reserved area, KeyID, SEAMCALL, ...)")
    words.add_argument("term", nargs="?", help="one term (any spelling the glossary lists); "
                       "all of them without it")

    sub.add_parser("configs", help="list the flow configurations the explorer can run")

    explore = sub.add_parser("explore", help="explore a profile's flow on one configuration "
                             "against every flow invariant; the shortest trace to a violation")
    explore.add_argument("--profile", default="v6.8", help="kernel profile (see `profiles`)")
    explore.add_argument("--config", default="default", help="see `configs`, or PxC")
    explore.add_argument("--faults", type=int, metavar="N",
                         help="fault budget (default: the configuration's)")
    explore.add_argument("--no-symmetry", action="store_true",
                         help="no reduction by CPU and package symmetry")
    explore.add_argument("--max-states", type=_positive, metavar="N",
                         help="stop (inconclusive) after this many distinct states")
    explore.add_argument("--max-depth", type=_positive, metavar="N",
                         help="stop (inconclusive) at this breadth-first depth")
    explore.add_argument("--time", type=_positive, metavar="S",
                         help="stop (inconclusive) after this many seconds")
    explore.add_argument("--format", choices=("text", "json"), default="text",
                         help="text for people, json for tools (default text)")
    explore.add_argument("--coverage", action="store_true",
                         help="also count transitions per step and outcome, and where each "
                         "invariant had something to check (slower)")
    explore.add_argument("--fingerprints", action="store_true",
                         help="keep a 64-bit fingerprint of each state instead of the state "
                         "(far less memory; the report gives the chance a collision hid a "
                         "state)")
    explore.add_argument("--workers", type=_positive, default=1, metavar="N",
                         help="explore with N processes (implies --fingerprints; the same "
                         "verdict, counts and trace as one), or run the walks of --simulate on "
                         "N processes (the same result as one) (default 1)")
    explore.add_argument("--memory-budget", type=_positive, metavar="MB",
                         help="with --fingerprints or --workers: megabytes of frontier kept in "
                         "memory before the rest goes to a temporary file, and as many for the "
                         "model's memo tables, emptied when full; with --simulate: megabytes "
                         "for the model's memo tables, emptied between walks when full; "
                         "split between --workers (default: an eighth of this machine's "
                         "memory, or of its container's limit)")
    explore.add_argument("--backend", choices=("processes", "ray"),
                         help="with --workers: forked processes (default) or Ray actors (the "
                         "ray extra; a cluster when Ray is started there)")
    explore.add_argument("--progress", action="store_true",
                         help="progress lines on stderr (shown anyway when stderr is a "
                         "terminal)")
    explore.add_argument("--simulate", action="store_true",
                         help="random walks instead of breadth-first search, for "
                         "configurations beyond exhaustive reach: a violation found is shrunk "
                         "and traced as explore traces it; finding none proves nothing (exit 3)")
    explore.add_argument("--seed", type=_seed, metavar="N",
                         help="with --simulate: the seed walk i's random choices come from, "
                         f"with i (default {DEFAULT_WALK_SEED})")
    explore.add_argument("--walks", type=_positive, metavar="N",
                         help=f"with --simulate: how many walks (default {DEFAULT_WALKS})")
    explore.add_argument("--walk-length", type=_positive, metavar="N",
                         help="with --simulate: steps per walk at most (default "
                         f"{DEFAULT_WALK_LENGTH})")
    explore.add_argument("--strategy", choices=STRATEGIES,
                         help="with --simulate: how a walk draws its steps: weighted (each "
                         "walk weighs every actor and kind of step at random, the default), "
                         "swarm (each walk leaves out a random half of the kinds of step), "
                         "uniform (among all successors)")
    explore.add_argument("--restarts", action="store_true", default=None,
                         help="with --simulate: most walks after the first 64 start where an "
                         "earlier walk met a rarely met situation (callers, statuses, which "
                         "packages have CPUs online and LP.INIT done), so a bug that needs "
                         "several unlikely turns in a row is met in far fewer walks")

    graph = sub.add_parser("graph", help="the reachable state graph of a small configuration "
                           "as GraphML or DOT")
    graph.add_argument("--profile", help="kernel profile (see `profiles`; default v6.8)")
    graph.add_argument("--config", help="flow configuration (see `configs`; default 1x1)")
    graph.add_argument("--trace", metavar="FILE",
                       help="only the states of this counterexample trace (counterexamples/"
                       "flow--*.json) and the states one step from them, on the model the "
                       "trace was recorded on (any configuration size)")
    graph.add_argument("--format", choices=("dot", "graphml"), default="dot",
                       help="dot (Graphviz) or graphml (default dot)")
    graph.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    graph.add_argument("--max-states", type=_positive, default=20_000, metavar="N",
                       help="stop (and say so) beyond this many states (default 20000)")
    graph.add_argument("--no-symmetry", action="store_true",
                       help="keep every state instead of one per symmetry class")
    graph.add_argument("--faults", type=int, metavar="N", help="fault budget (default: the "
                       "configuration's)")

    replay = sub.add_parser("replay", help="re-run a stored counterexample (exit 1 while it "
                            "still violates, 0 when it no longer does, 2 when the file is "
                            "invalid or does not run on this model)")
    replay.add_argument("file", help="a counterexample JSON file (counterexamples/*.json)")
    replay.add_argument("--format", choices=("text", "json", "svg", "html"), default="text",
                        help="text for people, json for tools, svg for the trace as a sequence "
                        "diagram (a map: its TDMR layout), html for the picture above the text "
                        "(default text)")
    replay.add_argument("--output", metavar="FILE", help="write here instead of standard output")

    from checker.gate.suite import SUITE_HELP
    from checker.gate.verify import add_arguments

    add_arguments(sub.add_parser(
        "verify", help="run the check suite (a CI gate)",
        description="Run the suite, compare with the baseline, report. Exit 0 as expected, 1 "
        "regression or failure, 2 usage or input error, 3 inconclusive.",
        epilog="suite file (TOML, or [tool.tdx-checker] in a pyproject.toml):\n" + SUITE_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ModelRaised as raised:  # a defect of the model (a change of spec/ broke it), never
        # a verdict: the error, where it was raised and the trace to the state (exit 1, as a
        # check of `verify` that errored)
        print(f"error: {raised_to_text(raised)}", file=sys.stderr)
        return EXIT_FAIL
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except OSError as exc:  # a file that could not be written after all (disk full, ...)
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


def _profile(name: str, holes: str | None = None):
    try:
        profile = get_profile(name)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if holes and holes != profile.holes:
        profile = replace(profile, name=f"{profile.name}+{holes}-holes", holes=holes)
    return profile


def _check_output(args) -> None:
    """Refuse an --output that cannot be written before any work."""
    problem = args.output is not None and file_problem(args.output)
    if problem:
        raise UsageError(f"cannot write --output {args.output}: {problem}")


def _emit(args, text: str) -> None:
    if args.output:
        write_text_atomic(args.output, text)
    else:
        sys.stdout.write(text)


PICTURES = ("svg", "html")


def cmd_tdmr(args) -> int:
    from checker.views.tdmr_report import TdmrOptions, analyse

    _check_output(args)
    try:
        machine = read_input(args.input)
    except NoMemoryMap as exc:
        if not exc.logged.lines:  # nothing in the file could be read
            raise
        return _diagnose_log(args, exc)
    for warning in machine.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    profile = _profile(args.profile, args.holes)
    if profile.holes == HOLES_CMR and not machine.cmrs:
        raise UsageError(f"{args.input}: --holes cmr needs CMRs (CMR lines in the log, or "
                         "'cmrs' in the JSON map)")
    options = TdmrOptions(profile, args.placement, args.max_tdmrs, args.max_reserved,
                          args.pamt_entry_size, args.pamt_bitmap_bits, args.worst_case,
                          args.plan, timeout_ms=args.timeout * 1000)
    if args.check_layout:
        if args.format in PICTURES:
            raise UsageError("--check-layout prints text or json")
        return _check_user_layout(args, machine, options)
    return _tdmr_output(args, analyse(machine, options), machine, options)


def _diagnose_log(args, exc: NoMemoryMap) -> int:
    """`tdmr` on a boot log without a memory map: no TDMRs, the log's TDX lines diagnosed."""
    from checker.views.tdmr_report import TdmrOptions, analyse_log

    if args.check_layout:
        raise UsageError(f"{exc.file}: --check-layout needs a memory map, and this log has none")
    if args.format in PICTURES:
        raise UsageError(f"{exc.file}: no memory map in this log, so no layout to draw (its TDX "
                         "lines are diagnosed with --format text or json)")
    report = analyse_log(exc.file, exc.logged, TdmrOptions(_profile(args.profile, args.holes)))
    return _tdmr_output(args, report)


def _tdmr_output(args, report: dict, machine=None, options=None) -> int:
    from checker.views.tdmr_report import render_text

    if args.format == "json":
        _emit(args, json.dumps(report, indent=2, sort_keys=True) + "\n")
    elif args.format in PICTURES:
        _emit(args, _layout_picture(args, report, machine, options))
    else:
        _emit(args, render_text(report, args.verbose, args.prog_name))
    what_if = report["modelled"] and (args.profile != LOGGED_KERNEL or args.holes is not None)
    return EXIT_FAIL if _tdmr_fails(report, what_if) else EXIT_OK


def _layout_picture(args, report: dict, machine, options) -> str:
    """The layouts of the report (the kernel's, a worst-case witness, the plan) as SVG, or as
    an HTML page above the text output."""
    from checker.views.html_report import picture_page
    from checker.views.svg_layout import layout_svg, report_layouts
    from checker.views.tdmr_report import render_text

    svg = layout_svg(report, report_layouts(report, machine, options))
    if args.format == "svg":
        return svg.document()
    return picture_page(f"TDMR layout of {report['input']['file']}", svg.element(),
                        render_text(report, args.verbose, args.prog_name))


def _tdmr_fails(report: dict, what_if: bool) -> bool:
    """What `tdmr` reports as broken: construction fails, the layout it builds violates an
    invariant, some legal PAMT placement makes it fail (`--worst-case`), or the log records
    a TDX failure (diagnosed) and the question is not what another kernel would do."""
    return (report["error"] is not None
            or (report["layout_check"] or {}).get("status") == "violated"
            or any(w["status"] == "breaks" for w in report["worst_case"] or ())
            or (report["log_outcome"]["outcome"] == "failed" and not what_if))


def _check_user_layout(args, machine, options) -> int:
    """`tdmr --check-layout`: the same layout invariants, on a TDMR list the user wrote."""
    from checker.views.tdmr_report import effective_sysinfo
    from invariants.layout import check_layout
    from spec.memory import build_tdx_memlist
    from spec.sysinfo import kernel_sysinfo

    tdmrs = read_layout(args.check_layout)
    holes = machine.cmrs if options.profile.holes == HOLES_CMR else None
    found = check_layout(tdmrs, build_tdx_memlist(machine.regions),
                         kernel_sysinfo(effective_sysinfo(machine, options), options.profile),
                         holes)
    if args.format == "json":
        _emit(args, json.dumps({"schema_version": CHECK_LAYOUT_SCHEMA_VERSION,
                                "tdmrs": len(tdmrs), "valid": not found, "violations": [
            {"constraint": v.constraint, "tdmr": v.tdmr, "item": v.item,
             "text": v.describe(tdmrs)} for v in found]}, indent=2, sort_keys=True) + "\n")
    else:
        lines = [f"{args.check_layout}: {len(tdmrs)} TDMRs checked against {args.input}"]
        lines += [f"  {v.describe(tdmrs)}" for v in found]
        lines.append("layout invariants: " + (f"{len(found)} VIOLATED" if found else "all hold"))
        _emit(args, "\n".join(lines) + "\n")
    return EXIT_FAIL if found else EXIT_OK


def cmd_counterexample(args) -> int:
    from checker.gate.corpus import save_map_counterexample
    from checker.views.synth_report import synthesise_report

    problem = args.save and folder_problem(args.counterexamples)
    if problem:
        raise UsageError(f"cannot save into {args.counterexamples}: {problem}")
    report, cex = synthesise_report(args.kind, args.max_tdmrs, args.max_reserved,
                                    args.pamt_entry_size, args.timeout * 1000)
    if args.save and cex.status == "found":
        path, written = save_map_counterexample(report, args.counterexamples)
        state = "counterexample saved:" if written else "already stored as"
        print(f"{state} {path}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        sys.stdout.write(report["text"] + "\n")
    if cex.status != "found":
        return EXIT_INCONCLUSIVE if "unknown" in report["text"] else EXIT_FAIL
    return EXIT_OK


def cmd_replay(args) -> int:
    from checker.gate.replay import ReplayError, load_document, replay_document

    _check_output(args)
    try:
        doc = load_document(args.file)
        outcome = replay_document(doc, args.file)
    except ReplayError as exc:
        raise UsageError(str(exc)) from None
    if not outcome.runs:
        raise UsageError(f"{args.file}: {outcome.text}")
    code = EXIT_FAIL if outcome.still_violates else EXIT_OK
    if args.format == "json":
        _emit(args, json.dumps({"schema_version": REPLAY_SCHEMA_VERSION, "file": args.file,
                                "check": doc["check"], "profile": doc["profile"],
                                "invariant": outcome.invariant,
                                "still_violates": outcome.still_violates,
                                "same_as_recorded": outcome.same_as_recorded,
                                "text": outcome.text, "exit_code": code},
                               indent=2, sort_keys=True) + "\n")
        return code
    verdict = "still violates" if outcome.still_violates else "no longer violates"
    lines = [f"{doc['check']}: {outcome.invariant} {verdict} (profile {doc['profile']})",
             outcome.text]
    if outcome.same_as_recorded is not None:
        lines.append("same result as recorded" if outcome.same_as_recorded
                     else "DIFFERENT from the recorded result:\n"
                     + doc["counterexample"]["result"])
    text = "\n".join(lines) + "\n"
    if args.format in PICTURES:
        text = _replay_picture(args, doc, text)
    _emit(args, text)
    return code


def _replay_picture(args, doc: dict, text: str) -> str:
    """A stored trace as a sequence diagram, a stored map as its layout; `--format html` puts
    the picture above the replay's text."""
    from checker.views.html_report import document_picture, picture_page

    name = os.path.basename(args.file)
    svg = document_picture(doc, name)
    if svg is None:
        raise UsageError(f"{args.file}: nothing to draw for profile {doc['profile']}")
    if args.format == "svg":
        return svg.document()
    return picture_page(f"{name}: {doc['check']}", svg.element(), text)


def cmd_configs(args) -> int:
    from checker.gate.flowcheck import CONTRACT_WAIVERS
    from checker.inputs.platforms import CONFIGS

    for name, config in CONFIGS.items():
        platform = config.platform
        events = [e for e, on in (("cpu hotplug", config.cpu_hotplug),
                                  ("memory hotplug", config.memory_hotplug),
                                  ("S3/hibernate requests", config.sleep_requests),
                                  ("machine checks", config.machine_checks)) if on]
        waived = CONTRACT_WAIVERS.get(name)
        print(f"{name:<18} {platform.packages}x{platform.cpus_per_package}, "
              f"{len(config.caller_loads)} callers, fault budget {config.fault_budget}; "
              f"{', '.join(events) or 'no environment events'}"
              + (f"; waives {', '.join(waived)} (callers break the contract)" if waived else ""))
    return EXIT_OK


def cmd_explore(args) -> int:
    from checker.gate.flowcheck import checked_invariants
    from checker.inputs.platforms import configure
    from spec.flow import TdxFlow

    _check_explore_options(args)
    flags = {} if args.faults is None else {"faults": args.faults}
    try:
        config = configure(args.config, **flags)
    except (KeyError, ValueError) as exc:
        raise UsageError(str(exc.args[0]) if exc.args else str(exc)) from None
    flow = TdxFlow(_profile(args.profile), config)
    invariants = checked_invariants(flow, args.config)
    show = _ProgressLine(args.progress)
    try:
        if args.simulate:
            return _simulate(args, flow, invariants, config, show)
        return _explore_exhaustively(args, flow, invariants, config, show)
    finally:
        show.close()


def _check_explore_options(args) -> None:
    """Options that belong to the other mode, or need one another, are refused before any
    work rather than ignored."""
    if args.simulate:
        exhaustive_only = [name for name, given in (
            ("--coverage", args.coverage), ("--fingerprints", args.fingerprints),
            ("--max-states", args.max_states is not None),
            ("--max-depth", args.max_depth is not None),
            ("--backend", args.backend is not None)) if given]
        if exhaustive_only:
            what = "is a breadth-first search option" if len(exhaustive_only) == 1 \
                else "are breadth-first search options"
            raise UsageError(f"{', '.join(exhaustive_only)} {what}, not for --simulate "
                             "(bound walks with --walks, --walk-length, --time)")
        return
    simulate_only = [name for name, value in (("--seed", args.seed), ("--walks", args.walks),
                                              ("--walk-length", args.walk_length),
                                              ("--strategy", args.strategy),
                                              ("--restarts", args.restarts))
                     if value is not None]
    if simulate_only:
        raise UsageError(f"{', '.join(simulate_only)} only with --simulate")
    if args.coverage and (args.fingerprints or args.workers > 1):
        raise UsageError("--coverage counts in the exact mode on one process: leave out "
                         "--fingerprints and --workers")
    if args.memory_budget is not None and not (args.fingerprints or args.workers > 1):
        raise UsageError("--memory-budget bounds the frontier of --fingerprints or --workers "
                         "runs; give one of them")
    if args.backend is not None and args.workers == 1:
        raise UsageError("--backend chooses how --workers N (2 or more) run; give --workers")


class _ProgressLine:
    """Progress of a long run on stderr: one line redrawn in place on a terminal, or with
    --progress a line at most every second elsewhere (the first at once), so stdout, the
    report, stays as it is."""

    def __init__(self, asked: bool) -> None:
        self.tty = sys.stderr.isatty()
        self.enabled = asked or self.tty
        self.last: float | None = None
        self.drawn = False

    def __call__(self, text: str) -> None:
        import time

        now = time.monotonic()
        if not self.enabled or (self.last is not None and now - self.last < (
                0.1 if self.tty else 1.0)):
            return
        self.last = now
        if self.tty:
            sys.stderr.write(f"\r{text}\x1b[K")
            self.drawn = True
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _explore_exhaustively(args, flow, invariants, config, show) -> int:
    from functools import partial

    from checker.engines.bfs import GOAL_KINDS
    from checker.engines.coverage import explore_with_coverage
    from checker.engines.explorer import Bounds, explore
    from checker.gate.flowcheck import flow_recipe
    from checker.views.trace import trace_to_json, trace_to_text

    bounds = Bounds(args.max_depth, args.max_states, args.time)
    coverage = None

    def progress(p) -> None:
        show(f"depth {p.depth}: {p.states:,} states, {p.transitions:,} transitions, frontier "
             f"{p.frontier:,}, {p.seconds:.1f} s")

    if args.coverage:
        outcome, coverage = explore_with_coverage(flow, invariants, bounds,
                                                  symmetry=not args.no_symmetry)
    else:
        options = {}
        if args.memory_budget is not None:
            options["memory_budget"] = args.memory_budget << 20
        if args.backend == "ray":
            flags = {} if args.faults is None else {"faults": args.faults}
            options["recipe"] = partial(flow_recipe, args.profile, args.config, **flags)
        try:
            outcome = explore(flow, invariants, bounds, symmetry=not args.no_symmetry,
                              fingerprints=args.fingerprints, workers=args.workers,
                              progress=progress, backend=args.backend or "processes",
                              **options)
        except RuntimeError as exc:  # a backend that cannot start (Ray not installed, ...)
            raise UsageError(str(exc)) from None
    rate = round(outcome.distinct_states / max(outcome.seconds, 1e-9))
    mode = "fingerprints" if outcome.fingerprints else "exhaustive"
    summary = {"schema_version": EXPLORE_SCHEMA_VERSION, "profile": args.profile,
               "config": config.name, "verdict": outcome.verdict, "mode": mode,
               "workers": outcome.workers,
               "distinct_states": outcome.distinct_states, "transitions": outcome.transitions,
               "depth": outcome.max_depth, "seconds": round(outcome.seconds, 3),
               "states_per_second": rate, "symmetry": outcome.symmetry,
               "bound_hit": outcome.bound_hit, "violated": outcome.violated}
    per_state = None
    if outcome.fingerprints:
        per_state = round(outcome.seen_bytes / max(outcome.distinct_states, 1), 1)
        summary.update(collision_probability=outcome.collision_probability,
                       bytes_per_state=per_state, spilled_bytes=outcome.spilled_bytes,
                       memo_forgotten=outcome.forgotten)
    trace = outcome.trace
    if args.format == "json":
        summary["trace"] = trace_to_json(trace, flow) if trace else None
        if coverage is not None:
            summary["coverage"] = coverage.to_json()
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        kind = next((i.kind for i in invariants if i.id == outcome.violated), None)
        # a goal property is judged only once every state is explored
        scope = ("exhaustive" if outcome.bound_hit is None and (outcome.verdict != "fail"
                                                                 or kind in GOAL_KINDS)
                 else f"bounded, not exhaustive ({outcome.bound_hit} bound hit)"
                 if outcome.bound_hit else "stopped at the first violation")
        print(f"profile {args.profile}, config {config.name}: {outcome.verdict.upper()} "
              f"({scope})")
        print(f"{outcome.distinct_states:,} distinct states, {outcome.transitions:,} "
              f"transitions, depth {outcome.max_depth}, {outcome.seconds:.2f} s, "
              f"{rate:,} states/s, symmetry {'on' if outcome.symmetry else 'off'}")
        if outcome.fingerprints:
            spilled = (f", {outcome.spilled_bytes / (1 << 20):,.1f} MB of frontier spilled to "
                       "disk" if outcome.spilled_bytes else "")
            if outcome.forgotten:
                spilled += (f", memo tables emptied {outcome.forgotten:,} time"
                            f"{'s' if outcome.forgotten > 1 else ''} to stay within the budget")
            print(f"fingerprints: {per_state:,} bytes per state, collision probability "
                  f"{outcome.collision_probability:.1e}, {outcome.workers} "
                  f"worker{'s' if outcome.workers > 1 else ''}{spilled}")
        if trace:
            print(trace_to_text(trace, flow, kind))
        if coverage is not None:
            print(coverage.render_text())
    return {"pass": EXIT_OK, "fail": EXIT_FAIL}.get(outcome.verdict, EXIT_INCONCLUSIVE)


def _restarts_text(outcome) -> str:
    if not outcome.restarts:
        return ""
    return f"{outcome.restarted:,} restarted from {outcome.cells:,} cells met, "


def _simulate(args, flow, invariants, config, show) -> int:
    from checker.engines.simulate import WalkBounds, simulate
    from checker.views.trace import trace_to_json, trace_to_text

    bounds = WalkBounds(args.walks or DEFAULT_WALKS, args.walk_length or DEFAULT_WALK_LENGTH,
                        args.time)
    seed = DEFAULT_WALK_SEED if args.seed is None else args.seed

    def progress(p) -> None:
        show(f"{p.walks:,} walks, {p.steps:,} steps, {p.states:,} distinct states, "
             f"{p.seconds:.1f} s")

    strategy = args.strategy or STRATEGIES[0]
    budget = {} if args.memory_budget is None else {"memory_budget": args.memory_budget << 20}
    outcome = simulate(flow, invariants, bounds, seed, symmetry=not args.no_symmetry,
                       workers=args.workers, progress=progress, strategy=strategy,
                       restarts=bool(args.restarts), **budget)
    bound_hit = None if outcome.bound_hit == "violation" else outcome.bound_hit
    rate = round(outcome.steps / max(outcome.seconds, 1e-9))
    trace = outcome.trace
    if args.format == "json":
        print(json.dumps({
            "schema_version": EXPLORE_SCHEMA_VERSION, "profile": args.profile,
            "config": config.name, "verdict": outcome.verdict, "mode": "simulation",
            "workers": outcome.workers, "distinct_states": outcome.distinct_states,
            "transitions": outcome.steps, "depth": outcome.longest,
            "seconds": round(outcome.seconds, 3),
            "states_per_second": round(outcome.distinct_states / max(outcome.seconds, 1e-9)),
            "symmetry": outcome.symmetry, "bound_hit": bound_hit,
            "violated": outcome.violated,
            "trace": trace_to_json(trace, flow) if trace else None,
            "simulation": {"proof": False, "seed": outcome.seed, "strategy": strategy,
                           "walks": outcome.walks,
                           "walks_bound": bounds.walks, "walk_length_bound": bounds.length,
                           "steps": outcome.steps, "violating_walk": outcome.walk,
                           "length_found": outcome.found_length,
                           "length_shrunk": outcome.shrunk_length,
                           "judged_at_ends": list(outcome.judged_at_ends),
                           "ends_searched": outcome.ends_searched,
                           "ends_unsettled": outcome.ends_unsettled,
                           "restarts": outcome.restarts,
                           "restarted_walks": outcome.restarted, "cells": outcome.cells,
                           "not_judged": list(outcome.not_judged)}},
            indent=2, sort_keys=True))
        return EXIT_FAIL if trace else EXIT_INCONCLUSIVE
    if trace:
        head = "FAIL (simulation: a random walk violated an invariant)"
    else:
        cut = ("all walks run" if bound_hit == "walks"
               else f"time bound hit after {outcome.walks:,} walks")
        head = f"INCONCLUSIVE (simulation, {cut}: no violation met, which proves nothing)"
    print(f"profile {args.profile}, config {config.name}: {head}")
    print(f"random walks are a sample, NOT a proof: {outcome.walks:,} "
          f"walk{'s' if outcome.walks != 1 else ''} of up to "
          f"{bounds.length:,} steps (seed {seed}, {strategy}, "
          f"{_restarts_text(outcome)}{outcome.workers} "
          f"worker{'s' if outcome.workers > 1 else ''}), {outcome.steps:,} steps, "
          f"{outcome.distinct_states:,} distinct states met, {outcome.seconds:.2f} s, "
          f"{rate:,} steps/s, symmetry {'on' if outcome.symmetry else 'off'}")
    if outcome.judged_at_ends:
        unsettled = (f", {outcome.ends_unsettled:,} of them unsettled (the search bound was hit: "
                     "nothing proved there)" if outcome.ends_unsettled else "")
        print(f"{', '.join(outcome.judged_at_ends)} judged where walks end: "
              f"{outcome.ends_searched:,} ends were no goal and were searched (up to "
              f"{END_BUDGET:,} states each){unsettled}")
    if outcome.not_judged:
        print(f"{', '.join(outcome.not_judged)} not judged: only an exhaustive search shows that "
              "no path reaches a goal")
    if trace:
        print(f"walk {outcome.walk} violated {outcome.violated} after {outcome.found_length} "
              f"steps; shrunk to {len(trace)} steps (deleting steps, not a shortest trace)")
        print(trace_to_text(trace, flow))
    return EXIT_FAIL if trace else EXIT_INCONCLUSIVE


def cmd_graph(args) -> int:
    from checker.engines.explorer import Bounds
    from checker.inputs.platforms import configure
    from checker.views.graph import graphml_text, state_graph, to_dot
    from invariants.flow import flow_invariants
    from spec.flow import TdxFlow

    _check_output(args)
    if args.trace:
        graph = _trace_graph(args)
    else:
        flags = {} if args.faults is None else {"faults": args.faults}
        try:
            flow = TdxFlow(_profile(args.profile or "v6.8"),
                           configure(args.config or "1x1", **flags))
        except (KeyError, ValueError) as exc:
            raise UsageError(str(exc.args[0]) if exc.args else str(exc)) from None
        graph = state_graph(flow, Bounds(max_states=args.max_states), not args.no_symmetry,
                            flow_invariants(flow))
    _emit(args, graphml_text(graph) if args.format == "graphml" else to_dot(graph))
    exhaustive = "exhaustive" if graph.graph.get("exhaustive") else "bounded, not exhaustive"
    if args.trace:
        exhaustive = (f"{sum(on for _, on in graph.nodes(data='on_trace'))} on the trace, the "
                      "others one step from it")
    violating = sum(bool(v) for _, v in graph.nodes(data="violating"))
    print(f"{graph.number_of_nodes()} states, {graph.number_of_edges()} transitions "
          f"({exhaustive}); {violating} break an invariant", file=sys.stderr)
    return EXIT_OK


def _trace_graph(args):
    """`graph --trace FILE`: the trace's states and their neighbours, on its own model."""
    from checker.gate.replay import ReplayError, load_document
    from checker.inputs.platforms import model_from_description
    from checker.views.graph import trace_graph
    from checker.views.trace import ReplayError as TraceReplayError
    from checker.views.trace import replay
    from invariants.flow import flow_invariants

    if args.profile or args.config or args.faults is not None:
        raise UsageError("--trace FILE runs on the model the trace was recorded on: leave out "
                         "--profile, --config and --faults")
    try:
        doc = load_document(args.trace)
    except ReplayError as exc:
        raise UsageError(str(exc)) from None
    body = doc["counterexample"]
    if body["kind"] != "trace":
        raise UsageError(f"{args.trace}: a map counterexample has no states to graph (draw it "
                         "with `tdmr FILE --format svg`)")
    try:
        flow = model_from_description(body["trace"]["model"])
        trace = replay(flow, body["trace"])
    except KeyError as exc:
        raise UsageError(f"{args.trace}: {exc.args[0]}") from None
    except TraceReplayError as exc:
        raise UsageError(f"{args.trace}: the trace does not run on this model: {exc}") from None
    return trace_graph(flow, trace, flow_invariants(flow), not args.no_symmetry)


def cmd_glossary(args) -> int:
    from checker.views import glossary

    if args.term is None:
        sys.stdout.write(glossary.render())
        return EXIT_OK
    term = glossary.find(args.term)
    if term is None:
        raise UsageError(f"no glossary entry for {args.term!r} (entries: "
                         f"{', '.join(t.name for t in glossary.TERMS)})")
    sys.stdout.write(glossary.render((term,)))
    return EXIT_OK


def cmd_profiles(args) -> int:
    width = max(len(name) for name in PROFILES)
    for profile in PROFILES.values():
        print(f"{profile.name:<{width}}  {profile.kind:<8} {profile.summary}  "
              f"[{profile.source}]")
    return EXIT_OK


def cmd_verify(args) -> int:
    from checker.gate.verify import run

    return run(args)


COMMANDS = {"tdmr": cmd_tdmr, "profiles": cmd_profiles, "verify": cmd_verify,
            "counterexample": cmd_counterexample, "replay": cmd_replay,
            "configs": cmd_configs, "graph": cmd_graph, "explore": cmd_explore,
            "glossary": cmd_glossary}
