"""Suites: which checks `verify` runs, read from a TOML file or `[tool.tdx-checker]`.

A suite expands into `CheckSpec`s, small picklable values, so that `--jobs N` can run them in
other processes and get the very same results as one process would.
"""

from __future__ import annotations

import math
import re
import sys
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from checker.inputs.platforms import CONFIGS, MAX_FLOW_CPUS, cpus_problem
from checker.inputs.readers import InputError, read_input
from spec.profiles import HOLES_CMR, PROFILES, TDMR_RULES, Profile, rule_changes

DATA = Path(__file__).parent.parent / "data"
BOOT_LOGS = DATA / "boot-logs"
BUILTIN = "builtin"
MAP_KINDS = ("log", "layout", "worst-case", "plan")
CHECK_KINDS = (*MAP_KINDS, "maps", "flow", "platforms", "replay")
_SHAPE = re.compile(r"(\d+)x(\d+)")


class SuiteError(Exception):
    """A suite file that cannot be used: `file:line: problem` (exit 2)."""

    def __init__(self, file: str, line: int, problem: str) -> None:
        self.file, self.line, self.problem = file, line, problem
        super().__init__(f"{file}:{line}: {problem}" if line else f"{file}: {problem}")


@dataclass(frozen=True)
class Bounds:
    """Limits that keep every check finite; hitting one makes a check inconclusive."""

    max_states: int = 3_000_000
    max_depth: int = 500
    time_s: float = 90.0
    solver_timeout_s: float = 30.0


@dataclass(frozen=True)
class Suite:
    profiles: tuple[str, ...] = tuple(PROFILES)
    maps: tuple[str, ...] = (BUILTIN,)
    flow_configs: tuple[str, ...] = ("default", "rsvd-exhausted", "unchecked-callers",
                                     "too-few-keyids", "old-module",
                                     "no-erratum")
    # Run on the kernel profiles only: they are what a change to spec/ alters, while each bug
    # profile is caught on the configurations above (a caller loading twice quadruples v6.8's
    # space, too dear for every profile).
    kernel_flow_configs: tuple[str, ...] = ("reload", "one-node", "hot-node")
    checks: tuple[str, ...] = CHECK_KINDS
    counterexamples: str = "counterexamples"
    bounds: Bounds = field(default_factory=Bounds)
    source: str = "built-in default suite"


@dataclass(frozen=True)
class CheckSpec:
    """One check to run: what, for which profile, on which map or platform, within which
    bounds. Picklable by design."""

    id: str
    kind: str
    profile: str
    config: str
    bounds: Bounds = field(default_factory=Bounds)


def profile_scope(profile: Profile) -> frozenset[str]:
    """Which kinds of check can see a profile's change: a TDMR rule is seen by layout checks
    on maps, a flow rule by the explorer; v6.8 itself gets everything."""
    changed = rule_changes(profile)
    scope = set()
    if not changed or changed & TDMR_RULES:
        scope |= {"layout", "maps"}
        if profile.kind != "bug":  # kernel limitations are a question for real kernels only
            scope |= {"worst-case", "plan"}
    if not changed or changed - TDMR_RULES:
        scope.add("flow")
        if profile.kind != "bug":  # each bug is caught on the named configurations
            scope.add("platforms")
    if not changed:
        scope.add("log")
    return frozenset(scope)


@cache
def builtin_maps() -> tuple[Path, ...]:
    """The shipped boot logs that carry a memory map (e820 or CMR lines), and the maps made
    from them (`data/maps`); read once, as every suite with "builtin" and every check of a
    suite's map names asks for them."""
    paths = sorted(BOOT_LOGS.glob("*.log")) + sorted((DATA / "maps").glob("*"))
    return tuple(p for p in paths if re.search(r"BIOS-e820:|CMR(?:\[\d+\])?: \[|\"regions\"",
                                               p.read_text()))


def shape_problem(name: str) -> str | None:
    """Why a platform shape `PxC` cannot be built, or None (also for names that are no shape);
    decided from the text alone, before anything is built."""
    match = _SHAPE.fullmatch(name)
    if not match:
        return None
    if any(len(digits) > 6 for digits in match.groups()):
        return f"flow configuration {name!r} is far beyond {MAX_FLOW_CPUS} CPUs"
    return cpus_problem(int(match[1]), int(match[2]), f"flow configuration {name!r}")


def flow_config_problem(name: str) -> str | None:
    """Why `name` is no flow configuration the explorer can run (`configs`, or a shape PxC of
    at most MAX_FLOW_CPUS CPUs), or None."""
    if name in CONFIGS:
        return None
    if _SHAPE.fullmatch(name):
        return shape_problem(name)
    return f"unknown flow configuration {name!r} (known: {', '.join(CONFIGS)}, or PxC)"


def map_paths(suite: Suite) -> list[str]:
    paths = []
    for entry in suite.maps:
        if entry == BUILTIN:
            paths.extend(str(p) for p in builtin_maps())
        else:
            paths.append(entry)
    return paths


def map_name(path: str) -> str:
    return Path(path).stem


@cache
def _map_facts(path: str) -> tuple[bool, bool]:
    """(has CMRs, logged a PAMT figure or failure) of a map. An unreadable map raises
    InputError: `verify` stops with exit 2 rather than run a suite on a map it cannot read."""
    machine = read_input(path)
    logged = machine.logged
    return bool(machine.cmrs), logged.pamt_kb is not None or logged.error is not None


def _applies(kind: str, profile: Profile, path: str) -> bool:
    has_cmrs, has_log = _map_facts(path)
    if profile.holes == HOLES_CMR and not has_cmrs:
        return False  # the variant needs CMRs to find holes
    return kind != "log" or has_log


def expand(suite: Suite) -> list[CheckSpec]:
    """Every check the suite asks for, in a stable order."""
    specs = []
    for name in suite.profiles:
        profile = PROFILES[name]
        scope = profile_scope(profile)
        for kind in suite.checks:
            if kind not in scope:
                continue
            if kind in MAP_KINDS:
                for path in map_paths(suite):
                    if _applies(kind, profile, path):
                        specs.append(CheckSpec(f"{kind}/{name}/{map_name(path)}", kind, name,
                                               path, suite.bounds))
            elif kind == "maps":
                specs.append(CheckSpec(f"maps/{name}/grid", kind, name, "grid", suite.bounds))
            elif kind == "platforms":
                specs.append(CheckSpec(f"platforms/{name}/searched", kind, name, "searched",
                                       suite.bounds))
            elif kind == "flow":
                configs = suite.flow_configs
                if profile.kind == "kernel":
                    configs += tuple(c for c in suite.kernel_flow_configs if c not in configs)
                for config in configs:
                    specs.append(CheckSpec(f"flow/{name}/{config}", kind, name, config,
                                           suite.bounds))
    return sorted(specs, key=lambda s: s.id)


# --- suite files ------------------------------------------------------------------------------

SUITE_HELP = """\
profiles = ["v6.8", "cmr-holes"]      # default: every profile (`python -m checker profiles`)
maps = ["builtin", "my-machine.json"]  # "builtin": the shipped boot logs
flow_configs = ["default"]             # explorer configurations (`python -m checker configs`)
# kernel profiles only; none if flow_configs given
kernel_flow_configs = ["reload", "one-node", "hot-node"]
checks = ["log", "layout", "worst-case", "plan", "maps", "flow", "platforms", "replay"]
counterexamples = "counterexamples"    # the corpus: stored counterexamples, replayed
[bounds]
max_states = 3000000
max_depth = 500
time_s = 90
solver_timeout_s = 30"""

LIST_KEYS = ("profiles", "maps", "flow_configs", "kernel_flow_configs", "checks")
INTEGER_BOUNDS = ("max_states", "max_depth")
MAX_SECONDS = 1_000_000  # past this a solver timeout no longer fits Z3's milliseconds


def pyproject_has_suite(path: Path) -> bool:
    """Whether a pyproject.toml holds a `tool.tdx-checker` suite, or something `load_suite`
    must report: a `tool` that is no table, or TOML it cannot parse around our table header."""
    if not path.is_file():
        return False
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    try:
        doc = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return re.search(r"^\s*\[\s*tool\.tdx-checker\s*\]", text, re.MULTILINE) is not None
    tool = doc.get("tool", {})
    return not isinstance(tool, dict) or "tdx-checker" in tool


def load_suite(path: str | Path) -> Suite:
    """A suite from a TOML file, or from `[tool.tdx-checker]` when the file is a pyproject."""
    name, target = str(path), Path(path)
    if not target.is_file():
        problem = ("is a folder" if target.is_dir() else
                   "not a regular file" if target.exists() else "no such file")
        raise SuiteError(name, 0, problem)
    try:
        text = target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(name, 0, f"cannot read: {exc}") from None
    return parse_suite(text, name, pyproject=target.name == "pyproject.toml")


def parse_suite(text: str, name: str, *, pyproject: bool = False) -> Suite:
    """A suite from TOML text (from its `[tool.tdx-checker]` table when it is a pyproject)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise SuiteError(name, int(match[1]) if match else 0, f"invalid TOML: {exc}") from None
    except RecursionError:
        raise SuiteError(name, 0, "invalid TOML: nested too deeply") from None
    table = ""
    if pyproject:
        tool = doc.get("tool", {})
        if not isinstance(tool, dict):
            raise SuiteError(name, _line(text, "tool"), "'tool' must be a table")
        if "tdx-checker" not in tool:
            raise SuiteError(name, 0, "no [tool.tdx-checker] table")
        doc, table = tool["tdx-checker"], "tool.tdx-checker"
        if not isinstance(doc, dict):
            raise SuiteError(name, _line(text, "tdx-checker", "tool"),
                             "[tool.tdx-checker] must be a table")
    return suite_from_dict(doc, name, text, table)


def _line(text: str, key: str, table: str = "") -> int:
    """Line of `key = ...` inside `[table]` ("" is the top level, before any header)."""
    current = ""
    for number, line in enumerate(text.splitlines(), 1):
        header = re.match(r"\s*\[([^\[\]]+)\]\s*(#.*)?$", line)
        if header:
            current = header[1].strip()
        elif current == table and re.match(rf"\s*{re.escape(key)}\s*=", line):
            return number
    return 0


def suite_from_dict(doc: dict[str, Any], name: str, text: str = "", table: str = "") -> Suite:
    """A suite from the parsed TOML table `table` of the file `name` (its `text` gives lines).
    Every entry is checked here, before any work: names exist, nothing is listed twice, maps
    can be read and have names of their own, bounds are finite."""

    def fail(key: str, problem: str) -> SuiteError:
        return SuiteError(name, _line(text, key, table), problem)

    known = {*LIST_KEYS, "counterexamples", "bounds"}
    for key in doc:
        if key not in known:
            raise fail(key, f"unknown key {key!r} (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {"source": name}
    if "flow_configs" in doc:  # a file naming its configurations runs those alone
        values["kernel_flow_configs"] = ()
    for key in LIST_KEYS:
        if key in doc:
            value = doc[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise fail(key, f"{key} must be a list of strings")
            repeated = next((v for i, v in enumerate(value) if v in value[:i]), None)
            if repeated is not None:
                raise fail(key, f"{key}: {repeated!r} is listed twice")
            values[key] = tuple(value)
    for profile in values.get("profiles", ()):
        if profile not in PROFILES:
            raise fail("profiles", f"unknown profile {profile!r}")
    for kind in values.get("checks", ()):
        if kind not in CHECK_KINDS:
            raise fail("checks", f"unknown check kind {kind!r} (known: {', '.join(CHECK_KINDS)})")
    for key in ("flow_configs", "kernel_flow_configs"):
        for config in values.get(key, ()):
            problem = flow_config_problem(config)
            if problem:
                raise fail(key, problem)
    if "maps" in values:
        values["maps"] = _maps(values["maps"], Path(name).parent, fail)
    if "counterexamples" in doc:
        folder = doc["counterexamples"]
        if not isinstance(folder, str) or not folder or "\0" in folder:
            raise fail("counterexamples", "counterexamples must be a directory name")
        values["counterexamples"] = folder
    if "bounds" in doc:
        values["bounds"] = _bounds(doc["bounds"], name, text, table)
    return Suite(**values)


def _maps(entries: tuple[str, ...], base: Path, fail) -> tuple[str, ...]:
    """The suite's maps as paths from the working directory, each one readable, and no two
    with the same file stem (a check id names its map by stem)."""
    paths = []
    for entry in entries:
        if entry == BUILTIN:
            paths.append(entry)
            continue
        path = base / entry
        if "\0" in entry or not path.is_file():
            raise fail("maps", f"map {entry!r} not found")
        try:
            read_input(str(path))
        except InputError as exc:
            raise fail("maps", f"map {entry!r} cannot be read: {exc}") from None
        paths.append(str(path))
    by_stem: dict[str, str] = {}
    for path in map_paths(Suite(maps=tuple(paths))):
        other = by_stem.setdefault(map_name(path), path)
        if other != path:
            raise fail("maps", f"maps {other!r} and {path!r} are both named "
                       f"{map_name(path)!r} in check ids: rename one")
    return tuple(paths)


def _bounds(values_table: Any, name: str, text: str, table: str) -> Bounds:
    """The [bounds] table of the suite in `[table]`."""
    if not isinstance(values_table, dict):
        raise SuiteError(name, _line(text, "bounds", table), "bounds must be a table")
    inner = f"{table}.bounds" if table else "bounds"
    known = [f.name for f in fields(Bounds)]
    values = {}
    for key, value in values_table.items():
        line = _line(text, key, inner)
        if key not in known:
            raise SuiteError(name, line, f"unknown bound {key!r} (known: {', '.join(known)})")
        if key in INTEGER_BOUNDS:
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SuiteError(name, line, f"bound {key} must be a positive integer")
        elif (isinstance(value, bool) or not isinstance(value, (int, float))
              or not math.isfinite(value) or not 0 < value <= MAX_SECONDS):
            raise SuiteError(name, line, f"bound {key} must be a number of seconds above 0 "
                             f"and at most {MAX_SECONDS:,}")
        values[key] = value
    return Bounds(**values)
