"""The command line: `python -m checker COMMAND`.

Exit codes are stable across commands: 0 success or pass, 1 a failure or violation found,
2 usage or input error, 3 inconclusive (verify only).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from checker.readers import JSON_FORMAT_HELP, InputError, read_input
from checker.synth import KINDS as SYNTH_KINDS
from spec.profiles import HOLES_CMR, HOLES_MEMBLOCK, PROFILES, get_profile

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INCONCLUSIVE = 0, 1, 2, 3


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
    if len(sizes) != 3 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected three positive integers A,B,C")
    return sizes  # type: ignore[return-value]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_limit_options(p: argparse.ArgumentParser) -> None:
    """The module metadata a user may override (defaults: the input's, else 64/16/16,16,16)."""
    p.add_argument("--max-tdmrs", type=_positive, metavar="N",
                   help="TDMRs the module accepts (default 64)")
    p.add_argument("--max-reserved", type=_positive, metavar="N",
                   help="reserved areas per TDMR (default 16)")
    p.add_argument("--pamt-entry-size", type=_entry_sizes, metavar="A,B,C",
                   help="PAMT entry bytes for 4K,2M,1G pages (default 16,16,16)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m checker",
                     description="Model checker for the Linux v6.8 Intel TDX host init.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    tdmr = sub.add_parser(
        "tdmr", help="build the TDMRs v6.8 builds for a machine and explain the result",
        description="INPUT is a boot log (dmesg: BIOS-e820, SRAT, CMR and tdx lines), "
        "/proc/iomem, or a JSON memory map:\n" + JSON_FORMAT_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    tdmr.add_argument("input", help="boot log, /proc/iomem copy, or JSON memory map")
    tdmr.add_argument("--format", choices=("text", "json"), default="text")
    tdmr.add_argument("--profile", default="v6.8", help="kernel profile (see `profiles`)")
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
                      help="solver timeout per query in seconds (default 30)")
    add_limit_options(tdmr)

    cex = sub.add_parser("counterexample",
                         help="the smallest memory map on which v6.8 breaks in a given way")
    cex.add_argument("kind", choices=SYNTH_KINDS)
    cex.add_argument("--format", choices=("text", "json"), default="text")
    cex.add_argument("--save", action="store_true",
                     help="store the map under counterexamples/ (replayed by verify)")
    cex.add_argument("--counterexamples", default="counterexamples", metavar="DIR")
    cex.add_argument("--timeout", type=_positive, default=30, metavar="S",
                     help="solver timeout per query in seconds (default 30)")
    add_limit_options(cex)

    sub.add_parser("profiles", help="list the kernel profiles, one line each")

    replay = sub.add_parser("replay", help="re-run a stored counterexample (exit 1 while it "
                            "still violates, 0 when it no longer does)")
    replay.add_argument("file", help="a counterexample JSON file (counterexamples/*.json)")

    from checker.verify import add_arguments

    add_arguments(sub.add_parser("verify", help="run the check suite (a CI gate)"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


def _profile(name: str, holes: str | None = None):
    try:
        profile = get_profile(name)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if holes and holes != profile.holes:
        profile = replace(profile, name=f"{profile.name}+{holes}-holes", holes=holes)
    return profile


def cmd_tdmr(args) -> int:
    from checker.tdmr_report import TdmrOptions, analyse, render_text

    machine = read_input(args.input)
    profile = _profile(args.profile, args.holes)
    if profile.holes == HOLES_CMR and not machine.cmrs:
        raise UsageError(f"{args.input}: --holes cmr needs CMRs (CMR lines in the log, or "
                         "'cmrs' in the JSON map)")
    options = TdmrOptions(profile, args.placement, args.max_tdmrs, args.max_reserved,
                          args.pamt_entry_size, args.worst_case, args.plan,
                          args.timeout * 1000)
    report = analyse(machine, options)
    if args.format == "json":
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_text(report, args.verbose))
    return EXIT_FAIL if report["error"] else EXIT_OK


def cmd_counterexample(args) -> int:
    from checker.counterexamples import save_map_counterexample, synthesise_report

    report, cex = synthesise_report(args.kind, args.max_tdmrs, args.max_reserved,
                                    args.pamt_entry_size, args.timeout * 1000)
    if args.save and cex.status == "found":
        path = save_map_counterexample(report, args.counterexamples)
        print(f"counterexample saved: {path}", file=sys.stderr)
    if args.format == "json":
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        sys.stdout.write(report["text"] + "\n")
    if cex.status != "found":
        return EXIT_INCONCLUSIVE if "unknown" in report["text"] else EXIT_FAIL
    return EXIT_OK


def cmd_replay(args) -> int:
    from checker.counterexamples import ReplayError, load_document, replay_document

    try:
        doc = load_document(args.file)
        outcome = replay_document(doc, args.file)
    except ReplayError as exc:
        raise UsageError(str(exc)) from None
    verdict = "still violates" if outcome.still_violates else "no longer violates"
    print(f"{doc['check']}: {outcome.invariant} {verdict} (profile {doc['profile']})")
    print(outcome.text)
    if outcome.same_as_recorded is not None:
        print("same result as recorded" if outcome.same_as_recorded
              else "DIFFERENT from the recorded result:\n" + doc["counterexample"]["result"])
    return EXIT_FAIL if outcome.still_violates else EXIT_OK


def cmd_profiles(args) -> int:
    width = max(len(name) for name in PROFILES)
    for profile in PROFILES.values():
        print(f"{profile.name:<{width}}  {profile.kind:<8} {profile.summary}  "
              f"[{profile.source}]")
    return EXIT_OK


def cmd_verify(args) -> int:
    from checker.suite import SuiteError
    from checker.verify import run

    try:
        return run(args)
    except SuiteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE


COMMANDS = {"tdmr": cmd_tdmr, "profiles": cmd_profiles, "verify": cmd_verify,
            "counterexample": cmd_counterexample, "replay": cmd_replay}
