"""The `verify` baseline: the verdict every check is expected to have, and the gate against it.

A baseline records, per check id, the expected status and invariant, including checks expected
to *fail* (broken profiles that must keep being caught). `compare` turns a run into named
transitions and one exit code, so CI fails on any change in either direction and the log says
which change, in one line each. Everything here is a pure function over `CheckResult` lists,
except `load_baseline` / `write_baseline`, which only read and write the file.

File format (`checker-baseline.json`, schema in `checker/schemas/baseline.schema.json`)::

    {"schema_version": 1,
     "checks": {"<check id>": {"status": "fail", "invariant": "RSVD-COUNT",
                               "profile": "v6.8", "config": "2x2, 1 fault"}, ...}}

`status` is pass, fail or inconclusive: an `error` is a defect of the checker, never an
expectation, so it cannot be recorded. `profile` and `config` are there for the reader and for
reports of removed checks; the gate compares `status` and, for failures, `invariant`.

A passing flow check of a real kernel also records its coverage: every step it took, as
"action: outcome", and every invariant that had something to check. A later run that passes
without reaching one of them has lost part of the model (an error path, an unwinding label, a
SEAMCALL answer): the invariants can no longer look there, so the gate fails with
`coverage-lost` until the loss is fixed or, if meant, recorded with --update-baseline. A run
that takes a step the recording never took (an error this configuration cannot cause, a
SEAMCALL answer no module gives it) has changed what the model does although every invariant
holds: it fails with `coverage-gained`, on the same terms. It records how many distinct
states and transitions the run explored too, and how many transitions took each step: a run
that reaches the same steps over a space of another size or shape (states the model now tells
apart or merges, a step that now leads elsewhere, a symmetry reduction lost or made unsound)
fails with `state-space-changed`, on the same terms. A failing flow check (a bug profile's)
records only the states and transitions it explored up to its violation: caught by the same
invariant after another number, it fails with `state-space-changed` too. An exhaustive search,
or one stopped at its first violation, counts the same on every machine and with any number
of workers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checker.files import write_text_atomic
from checker.gate.results import ERROR, FAIL, INCONCLUSIVE, PASS, CheckResult

BASELINE_SCHEMA_VERSION = 1
DEFAULT_BASELINE = "checker-baseline.json"

# Exit codes of `verify` (2 is the CLI's: usage or input errors, e.g. a malformed baseline).
EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_USAGE = 2
EXIT_INCONCLUSIVE = 3

# Transition names: stable identifiers printed in every report and matched by tests.
NEW_FAILURE = "new-failure"  # pass/inconclusive expected, now fails
EXPECTED_FAILURE_PASSES = "expected-failure-passes"  # expected to fail, now holds
DIFFERENT_INVARIANT = "different-invariant"  # still fails, but another invariant caught it
INCONCLUSIVE_NOW_PASSES = "inconclusive-now-passes"  # was bounded/unknown, now a real pass
BECAME_INCONCLUSIVE = "became-inconclusive"  # was pass or fail, now a bound or timeout hit
NEW_ERROR = "new-error"  # the check crashed or could not run
CHECK_ADDED = "check-added"  # in the run, not in the baseline
CHECK_REMOVED = "check-removed"  # in the baseline, not in the run
COVERAGE_LOST = "coverage-lost"  # still passes, but no longer reaches steps it reached
COVERAGE_GAINED = "coverage-gained"  # still passes, but reaches steps it never reached
STATE_SPACE_CHANGED = "state-space-changed"  # same steps (a bug: the same invariant catches
# it), another count of states, transitions or transitions per step
NOT_RUN = "not-run"  # the run stopped at a new failure (--fail-fast) before this check ran
TRANSITIONS = (
    NEW_FAILURE,
    EXPECTED_FAILURE_PASSES,
    DIFFERENT_INVARIANT,
    INCONCLUSIVE_NOW_PASSES,
    BECAME_INCONCLUSIVE,
    NEW_ERROR,
    CHECK_ADDED,
    CHECK_REMOVED,
    COVERAGE_LOST,
    COVERAGE_GAINED,
    STATE_SPACE_CHANGED,
    NOT_RUN,
)

# Severity of a transition: a regression fails the gate (exit 1); an inconclusive one only
# makes it exit 3, unless inconclusive verdicts are allowed.
REGRESSION = "regression"
INCONCLUSIVE_SEVERITY = "inconclusive"

# Per-check outcome, as the reports show it.
OUTCOME_PASS = "pass"
OUTCOME_EXPECTED_FAIL = "expected-fail"
OUTCOME_INCONCLUSIVE = "inconclusive"
OUTCOME_REGRESSION = "regression"

_RECORDABLE = (PASS, FAIL, INCONCLUSIVE)


class BaselineError(ValueError):
    """A baseline that cannot be used; the message names the file and the problem (exit 2)."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class BaselineMissing(BaselineError):
    """The baseline file does not exist: the CLI may fall back to "all must pass" when the
    path was the default one, and must report it when the user named the file."""


_SPACE = ("states", "transitions")  # `Reached`'s counts of the space explored


@dataclass(frozen=True)
class Reached:
    """What a flow check explored. A passing one (a real kernel's): steps as "action:
    outcome", the invariants that had something to check, and the size of its space: how
    many transitions took each step (`counts`), distinct states and transitions. A failing
    one (a bug profile's): only distinct states and transitions up to the violation, no steps
    or invariants. Sizes are None in baselines written before they were recorded: not
    compared."""

    steps: frozenset[str]
    invariants: frozenset[str]
    states: int | None = None
    transitions: int | None = None
    counts: Mapping[str, int] | None = field(default=None, hash=False)

    @classmethod
    def of_result(cls, result: CheckResult) -> Reached | None:
        """From a flow check's coverage report, or for a failing flow check its sizes (None
        for other checks)."""
        coverage = result.extra.get("coverage")
        if coverage is None:
            if result.status != FAIL or "transitions" not in result.extra:
                return None
            return cls(frozenset(), frozenset(), result.states, result.extra["transitions"])
        counts = {f"{action}: {outcome}": count
                  for action, entry in coverage["actions"].items()
                  for outcome, count in entry["outcomes"].items() if count}
        invariants = frozenset(i for i, entry in coverage["invariants"].items()
                               if entry["applies"])
        return cls(frozenset(counts), invariants, result.states, result.extra.get("transitions"),
                   counts)

    def to_json(self) -> dict[str, Any]:
        """`steps` is a list of steps, or with their counts an object of step -> count."""
        doc: dict[str, Any] = {"invariants": sorted(self.invariants),
                               "steps": sorted(self.steps) if self.counts is None
                               else dict(sorted(self.counts.items()))}
        for key in _SPACE:
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        return doc


@dataclass(frozen=True)
class Expected:
    """What the baseline says about one check."""

    status: str
    invariant: str
    profile: str = ""
    config: str = ""
    reached: Reached | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "config": self.config,
            "invariant": self.invariant,
            "profile": self.profile,
            "status": self.status,
        }
        if self.reached is not None:
            doc["reached"] = self.reached.to_json()
        return doc


@dataclass(frozen=True)
class Baseline:
    """Expected verdicts by check id, and where they came from (for messages)."""

    checks: Mapping[str, Expected]
    path: str | None = None


@dataclass(frozen=True)
class Transition:
    """One difference between the baseline and the run, named, with a one-line explanation."""

    check_id: str
    name: str
    severity: str
    explanation: str
    expected: Expected | None = None
    actual_status: str | None = None
    actual_invariant: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "actual": None
            if self.actual_status is None
            else {"invariant": self.actual_invariant, "status": self.actual_status},
            "check_id": self.check_id,
            "expected": None
            if self.expected is None
            else {"invariant": self.expected.invariant, "status": self.expected.status},
            "explanation": self.explanation,
            "severity": self.severity,
            "transition": self.name,
        }


@dataclass(frozen=True)
class Comparison:
    """The gate's answer: the transitions (sorted by check id), each check's outcome for the
    reports, and the exit code `verify` returns."""

    transitions: tuple[Transition, ...]
    outcomes: Mapping[str, str]
    exit_code: int
    baseline_path: str | None = None
    has_baseline: bool = False
    allow_inconclusive: bool = False
    expected: Mapping[str, Expected] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """One word for the run: pass, fail or inconclusive (what the exit code means)."""
        return {EXIT_OK: PASS, EXIT_REGRESSION: FAIL}.get(self.exit_code, INCONCLUSIVE)

    @property
    def regressions(self) -> tuple[Transition, ...]:
        return tuple(t for t in self.transitions if t.severity == REGRESSION)

    def transition_for(self, check_id: str) -> Transition | None:
        return next((t for t in self.transitions if t.check_id == check_id), None)


# --- the gate --------------------------------------------------------------------------------


def compare(
    results: Sequence[CheckResult],
    baseline: Baseline | None,
    *,
    allow_inconclusive: bool = False,
    not_run: Iterable[str] = (),
) -> Comparison:
    """Compare a run with its baseline (or, with `baseline=None`, with "every check passes";
    a finding, a kernel limitation shown on a real or minimal map, is then expected to fail).

    Exit code: 1 if any transition is a regression (any change of a definite verdict, an
    error, an added or removed check); otherwise 3 if any check is inconclusive and
    `allow_inconclusive` is false (a bounded run is never a silent pass, even when the baseline
    expected it to be bounded); otherwise 0. The checks `not_run` (ids: the run stopped before
    them) are inconclusive, not removed. Raises ValueError on duplicate check ids.
    """
    by_id = _index(results)
    expected_all = dict(baseline.checks) if baseline is not None else {}
    transitions: list[Transition] = []
    outcomes: dict[str, str] = {}
    for check_id in sorted(by_id):
        result = by_id[check_id]
        transition = _transition(result, _expected(result, baseline))
        if transition is not None:
            transitions.append(transition)
        outcomes[check_id] = _outcome(result, transition)
    not_run = set(not_run)
    for check_id in sorted(not_run):
        transitions.append(Transition(
            check_id, NOT_RUN, INCONCLUSIVE_SEVERITY,
            "not run: the gate stopped at the first new failure (--fail-fast)",
            expected=expected_all.get(check_id)))
    for check_id in sorted(set(expected_all) - set(by_id) - not_run):
        gone = expected_all[check_id]
        transitions.append(
            Transition(
                check_id,
                CHECK_REMOVED,
                REGRESSION,
                f"in the baseline (expected {_verdict_words(gone.status, gone.invariant)}) "
                "but not run; update the baseline if the check was removed on purpose",
                expected=gone,
            )
        )
    transitions.sort(key=lambda t: t.check_id)
    return Comparison(
        transitions=tuple(transitions),
        outcomes=outcomes,
        exit_code=_exit_code(by_id.values(), transitions, allow_inconclusive),
        baseline_path=baseline.path if baseline is not None else None,
        has_baseline=baseline is not None,
        allow_inconclusive=allow_inconclusive,
        expected=expected_all,
    )


def _expected(result: CheckResult, baseline: Baseline | None) -> Expected | None:
    """What the baseline expects of a check; without one, a pass (or a finding's failure:
    a finding is a fact, not a failure)."""
    if baseline is not None:
        return baseline.checks.get(result.id)
    finding = result.status == FAIL and result.extra.get("finding")
    return Expected(FAIL if finding else PASS, result.invariant)


def is_new_failure(result: CheckResult, baseline: Baseline | None) -> bool:
    """Whether a check fails with an invariant its baseline does not expect to fail (what
    `--fail-fast` stops at)."""
    transition = _transition(result, _expected(result, baseline))
    return result.status == FAIL and transition is not None and \
        transition.name in (NEW_FAILURE, DIFFERENT_INVARIANT, CHECK_ADDED)


def _index(results: Iterable[CheckResult]) -> dict[str, CheckResult]:
    by_id: dict[str, CheckResult] = {}
    for result in results:
        if result.id in by_id:
            raise ValueError(f"duplicate check id {result.id!r} in the results")
        by_id[result.id] = result
    return by_id


def _transition(result: CheckResult, expected: Expected | None) -> Transition | None:
    """The named change for one check, or None when it matches what was expected."""
    now = _verdict_words(result.status, result.invariant)

    def make(name: str, severity: str, why: str) -> Transition:
        return Transition(result.id, name, severity, why, expected, result.status, result.invariant)

    if expected is None:
        return make(CHECK_ADDED, REGRESSION, _added_advice(result, now))
    was = _verdict_words(expected.status, expected.invariant)
    if result.status == ERROR:
        return make(NEW_ERROR, REGRESSION, f"expected {was}; the check errored: {result.detail}")
    if result.status == expected.status:
        if result.status == FAIL and result.invariant != expected.invariant:
            return make(
                DIFFERENT_INVARIANT,
                REGRESSION,
                f"expected to be caught by {expected.invariant}, now caught by "
                f"{result.invariant} instead",
            )
        lost, gained, resized = _coverage_changes(result, expected)
        if lost:
            return make(COVERAGE_LOST, REGRESSION, lost)
        if gained:
            return make(COVERAGE_GAINED, REGRESSION, gained)
        if resized:
            return make(STATE_SPACE_CHANGED, REGRESSION, resized)
        return None
    if result.status == FAIL:
        return make(NEW_FAILURE, REGRESSION, f"expected {was}, now {now}")
    if result.status == INCONCLUSIVE:
        bound = f" ({result.bound})" if result.bound else ""
        return make(
            BECAME_INCONCLUSIVE,
            INCONCLUSIVE_SEVERITY,
            f"expected {was}, now inconclusive: a bound or timeout was hit{bound}",
        )
    # result.status == PASS
    if expected.status == FAIL:
        return make(
            EXPECTED_FAILURE_PASSES,
            REGRESSION,
            f"expected {was}, now holds; the broken case is no longer caught "
            "(update the baseline if this is on purpose)",
        )
    return make(
        INCONCLUSIVE_NOW_PASSES,
        REGRESSION,
        "expected inconclusive, now passes; record the stronger verdict with --update-baseline",
    )


def _coverage_changes(result: CheckResult,
                      expected: Expected) -> tuple[str | None, str | None, str | None]:
    """What a passing check no longer reaches of what the baseline recorded, what it reaches
    that the baseline did not, and how the size of its space differs from the recorded one
    (of a failing check, caught as recorded: only the size), each in one line (None:
    nothing, or nothing recorded)."""
    reached = Reached.of_result(result)
    if result.status not in (PASS, FAIL) or expected.reached is None or reached is None:
        return None, None, None
    was = expected.reached
    lost = _coverage_line(sorted(was.steps - reached.steps), "no longer taken",
                          sorted(was.invariants - reached.invariants), "no longer applying",
                          "the invariants cannot look where the model no longer goes")
    new_steps = sorted(reached.steps - was.steps)
    gained = _coverage_line(new_steps, "never taken before",
                            sorted(reached.invariants - was.invariants), "applying for the "
                            "first time", "the model now does what it did not" if new_steps
                            else "an invariant now has something to check where it had not")
    sizes = [f"{key} {before:,} -> {now:,}" for key in _SPACE
             if (before := getattr(was, key)) is not None
             and (now := getattr(reached, key)) is not None and before != now]
    if was.counts is not None and reached.counts is not None:
        moved = [f"{step} {was.counts[step]:,} -> {reached.counts[step]:,}"
                 for step in sorted(was.steps & reached.steps)
                 if was.counts[step] != reached.counts[step]]
        if moved:
            sizes.append(f"{len(moved)} step(s) taken a different number of times: "
                         f"{_listed(moved)}")
    verdict = "passes and takes the same steps" if result.status == PASS else \
        f"is still caught by {result.invariant}"
    resized = None if not sizes else (
        f"{verdict}, but explores {'; '.join(sizes)} (the model tells states apart, merges "
        "them, or links them, differently: a rule or a symmetry reduction changed; if this "
        "is on purpose, --update-baseline)")
    return lost, gained, resized


def _coverage_line(steps: list[str], steps_how: str, invariants: list[str],
                   invariants_how: str, meaning: str) -> str | None:
    if not steps and not invariants:
        return None
    parts = []
    if steps:
        parts.append(f"{len(steps)} step(s) {steps_how}: " + _listed(steps))
    if invariants:
        parts.append(f"invariant(s) {invariants_how}: " + _listed(invariants))
    return (f"passes, but {'; '.join(parts)} ({meaning}; if this is on purpose, "
            "--update-baseline)")


def _listed(items: Sequence[str], most: int = 4) -> str:
    shown = ", ".join(items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")


def _added_advice(result: CheckResult, now: str) -> str:
    """What to do about a check the baseline does not know. Recording is the answer only for
    a new check that passes, or a failure someone means to keep; a stored counterexample
    nobody recorded was most likely left by an earlier run, and an error cannot be recorded."""
    if result.id.startswith("replay/"):
        return (f"a counterexample file in the corpus that the baseline does not list; now "
                f"{now}; remove {result.config} from the corpus, or, if it was added on "
                "purpose, record it with --update-baseline")
    if result.status == ERROR:
        return f"not in the baseline; the check errored: {result.detail}"
    if result.status == FAIL:
        return (f"not in the baseline; now {now}; fix the cause, or record the failure as "
                "expected with --update-baseline if it is a known bug")
    return f"not in the baseline; now {now}; record it with --update-baseline"


def _verdict_words(status: str, invariant: str) -> str:
    if status == FAIL:
        return f"a failure of {invariant}"
    return status


def _outcome(result: CheckResult, transition: Transition | None) -> str:
    if transition is not None and transition.severity == REGRESSION:
        return OUTCOME_REGRESSION
    if result.status == INCONCLUSIVE:
        return OUTCOME_INCONCLUSIVE
    if result.status == FAIL:
        return OUTCOME_EXPECTED_FAIL
    return OUTCOME_PASS


def _exit_code(
    results: Iterable[CheckResult], transitions: Sequence[Transition], allow_inconclusive: bool
) -> int:
    if any(t.severity == REGRESSION for t in transitions):
        return EXIT_REGRESSION
    if not allow_inconclusive and any(r.status == INCONCLUSIVE for r in results):
        return EXIT_INCONCLUSIVE
    return EXIT_OK


# --- the file --------------------------------------------------------------------------------


def baseline_from_results(results: Sequence[CheckResult]) -> Baseline:
    """The baseline a run would write. Refuses errors: a crash is never an expected verdict."""
    by_id = _index(results)
    broken = sorted(i for i, r in by_id.items() if r.status == ERROR)
    if broken:
        raise ValueError("cannot record a baseline while checks error: " + ", ".join(broken))
    return Baseline(
        {i: Expected(r.status, r.invariant, r.profile, r.config,
                     Reached.of_result(r) if r.status in (PASS, FAIL) else None)
         for i, r in sorted(by_id.items())}
    )


def dump_baseline(baseline: Baseline) -> str:
    """The file text: sorted keys, two-space indent, trailing newline, no timestamps, so that
    re-recording an unchanged run leaves the file byte-identical (clean diffs in review)."""
    doc = {
        "checks": {i: baseline.checks[i].to_json() for i in sorted(baseline.checks)},
        "schema_version": BASELINE_SCHEMA_VERSION,
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_baseline(path: str | os.PathLike[str], results: Sequence[CheckResult],
                   keep: Mapping[str, Expected] | None = None) -> Baseline:
    """Record `results` as the new baseline at `path` (atomically: a crash never leaves half a
    file; the file keeps its mode), keeping the `keep` entries of checks this run did not
    select. Raises ValueError when a check errored or ids repeat."""
    fresh = baseline_from_results(results)
    baseline = Baseline({**(keep or {}), **fresh.checks})
    write_text_atomic(path, dump_baseline(baseline))
    return Baseline(baseline.checks, str(path))


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read and validate a baseline file. Every problem raises BaselineError naming the file,
    and where possible the line or the check id, and what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineMissing(path, "baseline file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(path, f"cannot read the baseline: {exc}") from None
    return parse_baseline(text, path)


def parse_baseline(text: str, path: str | os.PathLike[str] = "<baseline>") -> Baseline:
    """Validate baseline text (the part of `load_baseline` that needs no file)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(
            path, f"line {exc.lineno} column {exc.colno}: not valid JSON: {exc.msg}"
        ) from None
    if not isinstance(doc, dict):
        raise BaselineError(path, "expected a JSON object at the top level")
    version = doc.get("schema_version")
    if version != BASELINE_SCHEMA_VERSION:
        raise BaselineError(
            path,
            f"schema_version is {version!r}; this checker reads {BASELINE_SCHEMA_VERSION} "
            "(regenerate with verify --update-baseline)",
        )
    unknown = sorted(set(doc) - {"schema_version", "checks"})
    if unknown:
        raise BaselineError(path, f"unknown top-level key(s): {', '.join(unknown)}")
    checks = doc.get("checks")
    if not isinstance(checks, dict):
        raise BaselineError(path, "'checks' must be an object mapping check id to its verdict")
    parsed: dict[str, Expected] = {}
    for check_id, entry in checks.items():
        parsed[check_id] = _parse_entry(path, check_id, entry)
    return Baseline(parsed, str(path))


def _parse_entry(path: str | os.PathLike[str], check_id: str, entry: Any) -> Expected:
    where = f"check {check_id!r}"
    if not check_id:
        raise BaselineError(path, "empty check id")
    if not isinstance(entry, dict):
        raise BaselineError(path, f"{where}: expected an object, got {type(entry).__name__}")
    unknown = sorted(set(entry) - {"status", "invariant", "profile", "config", "reached"})
    if unknown:
        raise BaselineError(path, f"{where}: unknown key(s): {', '.join(unknown)}")
    status = entry.get("status")
    if status not in _RECORDABLE:
        raise BaselineError(
            path, f"{where}: status {status!r} is not one of {', '.join(_RECORDABLE)}"
        )
    invariant = entry.get("invariant")
    if not isinstance(invariant, str) or not invariant:
        raise BaselineError(path, f"{where}: 'invariant' must be a non-empty string")
    for key in ("profile", "config"):
        if not isinstance(entry.get(key, ""), str):
            raise BaselineError(path, f"{where}: {key!r} must be a string")
    return Expected(status, invariant, entry.get("profile", ""), entry.get("config", ""),
                    _parse_reached(path, where, entry.get("reached")))


def _parse_reached(path: str | os.PathLike[str], where: str, reached: Any) -> Reached | None:
    if reached is None:
        return None
    if not isinstance(reached, dict) or not {"steps", "invariants"} <= set(reached) \
            or not set(reached) <= {"steps", "invariants", *_SPACE}:
        raise BaselineError(path, f"{where}: 'reached' must be an object with 'steps' and "
                            "'invariants', and optionally 'states' and 'transitions'")
    steps, invariants = reached["steps"], reached["invariants"]
    if not _names(invariants, list):
        raise BaselineError(path, f"{where}: 'reached.invariants' must be a list of non-empty "
                            "strings")
    if not _names(steps, list | dict):
        raise BaselineError(path, f"{where}: 'reached.steps' must be a list of non-empty "
                            "strings, or an object of step -> count")
    counts = dict(steps) if isinstance(steps, dict) else None
    if counts is not None and not all(type(n) is int and n > 0 for n in counts.values()):
        raise BaselineError(path, f"{where}: 'reached.steps' counts must be whole numbers "
                            "above 0")
    for key in _SPACE:
        count = reached.get(key)
        if count is not None and (type(count) is not int or count < 0):
            raise BaselineError(path, f"{where}: 'reached.{key}' must be a whole number, not "
                                f"{count!r}")
    return Reached(frozenset(steps), frozenset(invariants),
                   *(reached.get(key) for key in _SPACE), counts)


def _names(items: Any, kinds) -> bool:
    """`items` is one of `kinds` and holds only non-empty strings (a dict: as its keys)."""
    return isinstance(items, kinds) and all(isinstance(i, str) and i for i in items)
