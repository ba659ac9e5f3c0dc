"""`python -m checker verify`: run a suite, compare with the baseline, report, keep the
counterexamples found. The gate's exit codes are in `checker.gate.baseline`; a run stopped by
SIGINT or SIGTERM ends its workers and exits with 128 + the signal.

Everything a run reads or writes is checked before the first check starts (the suite, the
baseline, every output path, each file of the counterexample corpus), so a usage or input
error (exit 2) never costs a run, and never comes after one.

The corpus (the suite's `counterexamples` folder) is what the replay checks read; a run does
not write into it. Counterexamples it does not hold go to a folder beside it (`<corpus>.new`,
or `--new-counterexamples DIR`), so a failing run leaves the committed corpus as it was and the
gate is green again once the change is reverted. The corpus grows only when asked:
`--save-counterexamples`, or `--update-baseline`, which accepts the run as the new expectation.
Either way the new files are replayed in the same run, so a recorded baseline covers them.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from checker.files import file_problem, folder_problem, write_text_atomic
from checker.gate.baseline import (
    DEFAULT_BASELINE,
    EXIT_REGRESSION,
    EXIT_USAGE,
    Baseline,
    BaselineError,
    BaselineMissing,
    Expected,
    baseline_from_results,
    compare,
    is_new_failure,
    load_baseline,
    write_baseline,
)
from checker.gate.corpus import (
    document,
    document_file,
    read_corpus,
    with_recorded_result,
    write_document,
)
from checker.gate.progress import Progress
from checker.gate.replay import REPLAYABLE, ReplayError
from checker.gate.results import FAIL, CheckResult
from checker.gate.runners import run_check
from checker.gate.suite import (
    Bounds,
    CheckSpec,
    Suite,
    SuiteError,
    expand,
    load_suite,
    pyproject_has_suite,
)
from checker.inputs.readers import InputError
from checker.options import integer_at_least
from checker.views.reports import FORMATS, TEXT_WIDTH, render
from spec.profiles import PROFILES

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class UsageError(ValueError):
    """A run that cannot start: the message names the option or file and the problem (exit 2)."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived. A BaseException, so that no check's `except Exception`
    mistakes it for a failure of that check."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_jobs = integer_at_least(1, "at least 1")


def available_cpus() -> int:
    """The CPUs this process may run on (a container's or taskset's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def add_arguments(p) -> None:
    p.add_argument("--suite", metavar="FILE",
                   help="suite file (TOML, or a pyproject.toml with [tool.tdx-checker])")
    p.add_argument("--profile", action="append", metavar="NAME",
                   help="check only this profile (repeatable)")
    p.add_argument("--baseline", metavar="FILE",
                   help=f"expected verdicts (default: {DEFAULT_BASELINE} when present, "
                   "unless --profile is given)")
    p.add_argument("--update-baseline", action="store_true",
                   help="write this run's verdicts as the new baseline, and add its new "
                   "counterexamples to the corpus")
    p.add_argument("--format", action="append", choices=FORMATS, metavar="FORMAT",
                   help=f"{'|'.join(FORMATS)} (repeatable; paired in order with --output)")
    p.add_argument("--output", action="append", metavar="FILE",
                   help="write the report of the matching --format here")
    p.add_argument("--counterexamples", metavar="DIR",
                   help="the corpus: stored counterexamples the replay checks read (default: "
                   "the suite's, counterexamples)")
    p.add_argument("--new-counterexamples", metavar="DIR",
                   help="where counterexamples the corpus does not hold are written (default: "
                   "the corpus folder with .new added, e.g. counterexamples.new)")
    p.add_argument("--save-counterexamples", action="store_true",
                   help="add new counterexamples to the corpus itself")
    p.add_argument("--jobs", type=_jobs, default=available_cpus(), metavar="N",
                   help="run checks in N processes (default: one per CPU this process may "
                   "use; the results are those of 1)")
    p.add_argument("--fail-fast", action="store_true",
                   help="stop at the first check that fails with an invariant the baseline "
                   "does not expect; the checks not run yet are reported as not run")
    p.add_argument("--allow-inconclusive", action="store_true",
                   help="exit 0 rather than 3 when a bound or solver timeout was hit")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also list every check, the traces of expected failures and the "
                   "coverage tables")


def run(args) -> int:
    try:
        with _stop_on_signals():
            return _run(args)
    except Interrupted as stop:
        name = signal.Signals(stop.signum).name
        print(f"verify: stopped by {name}", file=sys.stderr)
        return 128 + stop.signum
    except BrokenProcessPool:  # the other workers are ended by then (_run_in_workers)
        print("error: a worker process died (killed from outside?); no report written",
              file=sys.stderr)
        return EXIT_REGRESSION


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise Interrupted in the main thread; after the first, both are
    ignored while the run cleans up. Off the main thread no handler can be set: no change."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, _frame):
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        raise Interrupted(signum)

    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)


@dataclass(frozen=True)
class Plan:
    """A run, checked and ready: what to run, what to compare with, where everything goes."""

    suite: Suite
    specs: list[CheckSpec]
    outputs: list[tuple[str, str | None]]
    baseline: Baseline | None
    baseline_path: str
    others: dict[str, Expected]  # baseline entries of profiles this run does not select
    corpus: Path
    destination: Path  # where new counterexamples go: the corpus only when asked
    in_corpus: frozenset[str]  # names of the files in the corpus before the run


def _run(args) -> int:
    try:
        plan = prepare(args)
    except (UsageError, SuiteError, InputError, ReplayError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    quiet = args.quiet or not sys.stderr.isatty()
    stop = (lambda result: is_new_failure(result, plan.baseline)) if args.fail_fast else None
    results = run_specs(plan.specs, args.jobs, quiet, stop)
    not_run = {spec.id for spec in plan.specs} - {r.id for r in results}
    try:
        if args.update_baseline:  # refused before the corpus grows, not after
            baseline_from_results(results)
    except ValueError as exc:
        print(f"error: cannot write the baseline: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stored = store_counterexamples(results, plan.destination, plan.in_corpus)
    saving = plan.destination == plan.corpus
    if saving and "replay" in plan.suite.checks and not not_run:
        fresh = [_replay_spec(path, result.profile, plan.suite.bounds) for result, path in stored]
        results = sorted(results + run_specs(fresh, args.jobs, quiet), key=lambda r: r.id)
    baseline = plan.baseline
    if args.update_baseline:
        recorded = write_baseline(plan.baseline_path, results, keep=plan.others)
        print(f"baseline written: {plan.baseline_path} ({len(recorded.checks)} checks)",
              file=sys.stderr)
        baseline = Baseline({k: v for k, v in recorded.checks.items() if k not in plan.others},
                            plan.baseline_path)
    comparison = compare(results, baseline, allow_inconclusive=args.allow_inconclusive,
                         not_run=not_run)
    notes = _notes(len(stored), plan, saving)
    width = shutil.get_terminal_size((TEXT_WIDTH, 24)).columns if sys.stdout.isatty() \
        else TEXT_WIDTH
    for fmt, out in plan.outputs:
        text = render(fmt, results, comparison, verbose=args.verbose, notes=notes,
                      width=width if out is None else TEXT_WIDTH)
        if out is None:
            sys.stdout.write(text)
        else:
            write_text_atomic(out, text)
    return comparison.exit_code


def prepare(args) -> Plan:
    """Check everything the run will read and write; UsageError (or the reader's own error)
    on the first problem, before any check runs."""
    outputs = _outputs(args)
    if args.fail_fast and args.update_baseline:
        raise UsageError("--fail-fast and --update-baseline: a baseline needs every check run")
    suite = select_suite(args)
    baseline, baseline_path, others = _baseline(args, suite)
    written = [out for _, out in outputs if out is not None]
    if args.update_baseline:
        problem = file_problem(baseline_path)
        if problem:
            raise UsageError(f"cannot write the baseline {baseline_path}: {problem}")
        written.append(baseline_path)
    for i, path in enumerate(written):
        if os.path.abspath(path) in map(os.path.abspath, written[:i]):
            raise UsageError(f"{path} would be written twice")
    corpus, destination = _folders(args, suite)
    try:
        stored = read_corpus(corpus) if "replay" in suite.checks else []
    except ReplayError as exc:
        raise UsageError(f"counterexample corpus: {exc}") from None
    # A counterexample of a profile the model no longer has is replayed too: its check
    # errors, rather than the file lying unnoticed in the corpus.
    specs = expand(suite) + [_replay_spec(path, doc["profile"], suite.bounds)
                             for path, doc in stored
                             if doc["profile"] in suite.profiles or doc["profile"] not in PROFILES]
    if not specs:
        raise UsageError(f"{suite.source}: the suite selects no checks")
    in_corpus = frozenset(p.name for p in corpus.glob("*.json")) if corpus.is_dir() else \
        frozenset()
    return Plan(suite, specs, outputs, baseline, baseline_path, others, corpus, destination,
                in_corpus)


def select_suite(args) -> Suite:
    """The suite file given, else [tool.tdx-checker] of ./pyproject.toml, else the default."""
    if args.suite:
        suite = load_suite(args.suite)
    elif pyproject_has_suite(Path("pyproject.toml")):
        suite = load_suite("pyproject.toml")
    else:
        suite = Suite()
    if args.profile:
        unknown = [p for p in args.profile if p not in PROFILES]
        if unknown:
            raise UsageError(f"unknown profile {unknown[0]!r} (see `python -m checker "
                             "profiles`)")
        suite = replace(suite, profiles=tuple(dict.fromkeys(args.profile)))
    if args.counterexamples == "":
        raise UsageError("--counterexamples needs a folder name")
    if args.counterexamples is not None:
        suite = replace(suite, counterexamples=args.counterexamples)
    return suite


def _baseline(args, suite: Suite) -> tuple[Baseline | None, str, dict[str, Expected]]:
    """The baseline to compare with (None: every check must pass), its path, and the entries
    of profiles this run leaves alone (kept as they are by --update-baseline)."""
    baseline = None
    path = args.baseline or DEFAULT_BASELINE
    try:
        # `--profile NAME` alone asks "does this profile pass?": the default baseline, which
        # expects broken profiles to fail, applies only when named.
        if args.baseline or not args.profile or args.update_baseline:
            baseline = load_baseline(path)
    except BaselineMissing:
        if args.baseline and not args.update_baseline:
            raise UsageError(f"{args.baseline}: no such baseline file") from None
    except BaselineError as exc:
        if not args.update_baseline:
            raise UsageError(str(exc)) from None
    # With --profile, the other profiles' expectations are neither compared nor dropped.
    others = {} if baseline is None or not args.profile else {
        k: v for k, v in baseline.checks.items() if v.profile not in suite.profiles}
    if baseline is not None and others:
        baseline = Baseline({k: v for k, v in baseline.checks.items() if k not in others},
                            baseline.path)
    return baseline, path, others


def _folders(args, suite: Suite) -> tuple[Path, Path]:
    """The corpus, and where this run writes counterexamples the corpus does not hold."""
    corpus = Path(suite.counterexamples)
    if corpus.exists() and not corpus.is_dir():
        raise UsageError(f"counterexample corpus {corpus}: is not a folder")
    saving = args.save_counterexamples or args.update_baseline
    if saving and args.new_counterexamples is not None:
        raise UsageError("--new-counterexamples has no use with --save-counterexamples or "
                         "--update-baseline, which add new counterexamples to the corpus")
    if saving:
        destination = corpus
    elif args.new_counterexamples is not None:
        destination = Path(args.new_counterexamples)
        if os.path.abspath(destination) == os.path.abspath(corpus):
            raise UsageError(f"--new-counterexamples {destination} is the corpus; add to the "
                             "corpus with --save-counterexamples")
    else:
        destination = Path(f"{corpus}.new") if corpus.name else corpus / "counterexamples.new"
    problem = folder_problem(destination)
    if problem:
        raise UsageError(f"cannot write counterexamples into {destination}: {problem}")
    return corpus, destination


def _outputs(args) -> list[tuple[str, str | None]]:
    formats, outputs = args.format or [], args.output or []
    if len(outputs) > len(formats):
        raise UsageError("each --output needs a --format before it")
    pairs = [(fmt, outputs[i] if i < len(outputs) else None) for i, fmt in enumerate(formats)]
    to_stdout = [fmt for fmt, out in pairs if out is None]
    if len(to_stdout) > 1:
        raise UsageError("only one report can go to standard output: give --output for the "
                         "others")
    for _, out in pairs:
        problem = out is not None and file_problem(out)
        if problem:
            raise UsageError(f"cannot write --output {out}: {problem}")
    if not to_stdout:
        pairs.append(("text", None))
    return pairs


def _replay_spec(path: Path, profile: str, bounds: Bounds) -> CheckSpec:
    return CheckSpec(f"replay/{path.stem}", "replay", profile, str(path), bounds)


def run_specs(specs: list[CheckSpec], jobs: int, quiet: bool,
              stop: Callable[[CheckResult], bool] | None = None) -> list[CheckResult]:
    """Run the checks (in up to `jobs` processes) with progress; results in check-id order.
    With `stop`, the run ends at the first result it holds true of: the checks still running
    are ended, and those not finished are left out of the results."""
    with Progress(len(specs), quiet=quiet) as progress:
        if jobs <= 1 or len(specs) <= 1:
            results = []
            for spec in specs:
                progress.start_check(spec.id)
                results.append(run_check(spec))
                progress.check_done(results[-1])
                if stop is not None and stop(results[-1]):
                    break
        else:
            results = _run_in_workers(specs, min(jobs, len(specs)), progress, stop)
    return sorted(results, key=lambda r: r.id)


def _run_in_workers(specs: list[CheckSpec], workers: int, progress: Progress,
                    stop: Callable[[CheckResult], bool] | None) -> list[CheckResult]:
    """The checks in worker processes. However the run ends (a signal, an error, `stop`), no
    worker outlives it: on the way out every one still running is terminated and waited
    for."""
    results: list[CheckResult] = []
    pool = None
    try:
        with _stop_signals_blocked():  # workers start with them blocked, see _worker_signals
            pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_signals)
            futures = [pool.submit(run_check, spec) for spec in specs]
        for future in as_completed(futures):
            results.append(future.result())
            progress.check_done(results[-1])
            if stop is not None and stop(results[-1]):
                _end_workers(pool)
                return results
        pool.shutdown()
    except BaseException:
        _end_workers(pool)
        raise
    return results


def _end_workers(pool: ProcessPoolExecutor | None) -> None:
    """Terminate and wait for every worker process still running, then the pool."""
    workers_left = multiprocessing.active_children()
    for process in workers_left:
        process.terminate()
    for process in workers_left:
        process.join()
    if pool is not None:
        pool.shutdown(cancel_futures=True)


@contextmanager
def _stop_signals_blocked() -> Iterator[None]:
    old = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _worker_signals() -> None:
    """A worker's signals: SIGINT, which a terminal sends to the whole process group, is the
    parent's to act on; SIGTERM (how the parent ends a worker) ends it at once, silently.
    Workers start with both blocked, so neither arrives before this is set."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


def store_counterexamples(results: list[CheckResult], folder: Path,
                          in_corpus: frozenset[str] = frozenset()
                          ) -> list[tuple[CheckResult, Path]]:
    """Write each counterexample the corpus does not hold (by name, which is a content hash)
    into `folder` as `<check>-<content hash>.json`. Returns them with their paths; one already
    in `folder` with the same content is not written again."""
    stored = []
    for result in results:
        if result.status != FAIL or not result.counterexample or result.id.startswith("replay/"):
            continue
        if result.counterexample["kind"] not in REPLAYABLE:  # a boot log is its own case
            continue
        doc = with_recorded_result(document(result.id, result.profile, result.config,
                                            result.invariant, dict(result.counterexample)))
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", result.id.replace("/", "--"))
        if document_file(doc, stem)[0] in in_corpus:
            continue
        path, written = write_document(doc, folder, stem)
        if written:
            print(f"counterexample saved: {path}", file=sys.stderr)
        stored.append((result, path))
    return stored


def _notes(count: int, plan: Plan, saving: bool) -> list[str]:
    """Where this run's new counterexamples went, for the text report."""
    if not count:
        return []
    if saving:
        return [f"counterexamples: {count} new, added to the corpus {plan.corpus}/"]
    return [f"new counterexamples: {count} in {plan.destination}/, not in the corpus "
            f"{plan.corpus}/ (replay one with `python -m checker replay FILE`; "
            "--save-counterexamples adds them to the corpus)"]
