"""`python -m checker verify`: run a suite, compare with the baseline, report, store
counterexamples. The gate's exit codes are in `checker.gate.baseline`."""

from __future__ import annotations

import json
import re
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace
from pathlib import Path

from checker.gate.baseline import (
    DEFAULT_BASELINE,
    EXIT_USAGE,
    Baseline,
    BaselineError,
    BaselineMissing,
    compare,
    load_baseline,
    write_baseline,
)
from checker.gate.corpus import document, with_recorded_result, write_document
from checker.gate.progress import Progress
from checker.gate.results import FAIL, CheckResult
from checker.gate.runners import run_check
from checker.gate.suite import CheckSpec, Suite, expand, load_suite
from checker.views.reports import FORMATS, render


def add_arguments(p) -> None:
    p.add_argument("--suite", metavar="FILE",
                   help="suite file (TOML, or a pyproject.toml with [tool.tdx-checker])")
    p.add_argument("--profile", action="append", metavar="NAME",
                   help="check only this profile (repeatable)")
    p.add_argument("--baseline", metavar="FILE",
                   help=f"expected verdicts (default: {DEFAULT_BASELINE} when present, "
                   "unless --profile is given)")
    p.add_argument("--update-baseline", action="store_true",
                   help="write this run's verdicts as the new baseline")
    p.add_argument("--format", action="append", choices=FORMATS, metavar="FORMAT",
                   help="text|json|junit|sarif (repeatable; paired in order with --output)")
    p.add_argument("--output", action="append", metavar="FILE",
                   help="write the report of the matching --format here")
    p.add_argument("--counterexamples", metavar="DIR",
                   help="where counterexamples are stored and replayed from")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run checks in N processes (same results as 1)")
    p.add_argument("--allow-inconclusive", action="store_true",
                   help="exit 0 rather than 3 when a bound or solver timeout was hit")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--verbose", action="store_true",
                   help="also print the traces of expected failures")


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE


def select_suite(args) -> Suite:
    """The suite file given, else [tool.tdx-checker] of ./pyproject.toml, else the default."""
    if args.suite:
        suite = load_suite(args.suite)
    elif _has_tool_table(Path("pyproject.toml")):
        suite = load_suite("pyproject.toml")
    else:
        suite = Suite()
    if args.profile:
        from spec.profiles import PROFILES

        unknown = [p for p in args.profile if p not in PROFILES]
        if unknown:
            raise ValueError(f"unknown profile {unknown[0]!r} (see `python -m checker "
                             "profiles`)")
        suite = replace(suite, profiles=tuple(args.profile))
    if args.counterexamples:
        suite = replace(suite, counterexamples=args.counterexamples)
    return suite


def _has_tool_table(path: Path) -> bool:
    return path.is_file() and re.search(r"^\[tool\.tdx-checker\]", path.read_text(),
                                        re.MULTILINE) is not None


def replay_specs(suite: Suite) -> list[CheckSpec]:
    """A replay check per stored counterexample of a profile in the suite."""
    folder = Path(suite.counterexamples)
    if "replay" not in suite.checks or not folder.is_dir():
        return []
    specs = []
    for path in sorted(folder.glob("*.json")):
        try:
            profile = json.loads(path.read_text()).get("profile")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            profile = None  # unreadable: the replay check reports it as an error
        if profile is None or profile in suite.profiles:
            specs.append(CheckSpec(f"replay/{path.stem}", "replay", profile or "?",
                                   str(path), suite.bounds))
    return specs


def run_specs(specs: list[CheckSpec], jobs: int, quiet: bool) -> list[CheckResult]:
    """Run the checks (in `jobs` processes) with progress; results in check-id order."""
    results = []
    with Progress(len(specs), quiet=quiet) as progress:
        if jobs <= 1:
            for spec in specs:
                progress.start_check(spec.id)
                result = run_check(spec)
                results.append(result)
                progress.check_done(result, states=result.states)
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(run_check, spec) for spec in specs]
                for future in as_completed(futures):
                    result = future.result()
                    results.append(result)
                    progress.check_done(result, states=result.states)
    return sorted(results, key=lambda r: r.id)


def store_counterexamples(results: list[CheckResult], folder: str) -> list[Path]:
    """Write each new counterexample as `<check>-<content hash>.json`; same content, same
    name, so a rerun writes nothing new."""
    written = []
    for result in results:
        if result.status != FAIL or not result.counterexample or result.id.startswith("replay/"):
            continue
        doc = with_recorded_result(document(result.id, result.profile, result.config,
                                            result.invariant, dict(result.counterexample)))
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", result.id.replace("/", "--"))
        before = set(Path(folder).glob("*.json")) if Path(folder).is_dir() else set()
        path = write_document(doc, folder, stem)
        if path not in before:
            written.append(path)
    return written


def _outputs(args) -> list[tuple[str, str | None]]:
    formats, outputs = args.format or [], args.output or []
    if len(outputs) > len(formats):
        raise ValueError("each --output needs a --format before it")
    pairs = [(fmt, outputs[i] if i < len(outputs) else None) for i, fmt in enumerate(formats)]
    to_stdout = [fmt for fmt, out in pairs if out is None]
    if len(to_stdout) > 1:
        raise ValueError("only one report can go to standard output: give --output for the "
                         "others")
    if not to_stdout:
        pairs.append(("text", None))
    return pairs


def run(args) -> int:
    try:
        outputs = _outputs(args)
        suite = select_suite(args)
    except ValueError as exc:
        return _usage(str(exc))
    baseline = None
    baseline_path = args.baseline or DEFAULT_BASELINE
    try:
        # `--profile NAME` alone asks "does this profile pass?": the default baseline, which
        # expects broken profiles to fail, applies only when named.
        if args.baseline or not args.profile or args.update_baseline:
            baseline = load_baseline(baseline_path)
    except BaselineMissing:
        if args.baseline and not args.update_baseline:
            return _usage(f"{args.baseline}: no such baseline file")
    except BaselineError as exc:
        if not args.update_baseline:
            return _usage(str(exc))
    # With --profile, the other profiles' expectations are neither compared nor dropped.
    others = {} if baseline is None or not args.profile else {
        k: v for k, v in baseline.checks.items() if v.profile not in suite.profiles}
    if baseline is not None and others:
        baseline = Baseline({k: v for k, v in baseline.checks.items() if k not in others},
                            baseline.path)
    specs = expand(suite) + replay_specs(suite)
    if not specs:
        return _usage(f"{suite.source}: the suite selects no checks")
    results = run_specs(specs, max(1, args.jobs), args.quiet or not sys.stderr.isatty())
    saved = store_counterexamples(results, suite.counterexamples)
    if args.update_baseline:
        try:
            recorded = write_baseline(baseline_path, results, keep=others)
        except ValueError as exc:
            return _usage(f"cannot write the baseline: {exc}")
        print(f"baseline written: {baseline_path} ({len(recorded.checks)} checks)",
              file=sys.stderr)
        baseline = Baseline({k: v for k, v in recorded.checks.items() if k not in others},
                            baseline_path)
    comparison = compare(results, baseline, allow_inconclusive=args.allow_inconclusive)
    for fmt, out in outputs:
        text = render(fmt, results, comparison, verbose=args.verbose)
        if out is None:
            sys.stdout.write(text)
        else:
            Path(out).write_text(text)
    for path in saved:
        print(f"counterexample saved: {path}", file=sys.stderr)
    return comparison.exit_code
