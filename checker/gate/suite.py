"""Suites: which checks `verify` runs, read from a TOML file or `[tool.tdx-checker]`.

A suite expands into `CheckSpec`s, small picklable values, so that `--jobs N` can run them in
other processes and get the very same results as one process would.
"""

from __future__ import annotations

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

from checker.inputs.readers import InputError, read_input
from spec.profiles import HOLES_CMR, PROFILES, TDMR_RULES, Profile, rule_changes

DATA = Path(__file__).parent.parent / "data"
BOOT_LOGS = DATA / "boot-logs"
BUILTIN = "builtin"
MAP_KINDS = ("log", "layout", "worst-case", "plan")
CHECK_KINDS = (*MAP_KINDS, "maps", "flow", "replay")


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
                                     "too-few-keyids")
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
    if not changed:
        scope.add("log")
    return frozenset(scope)


def builtin_maps() -> list[Path]:
    """The shipped boot logs that carry a memory map (e820 or CMR lines), and the maps made
    from them (`data/maps`)."""
    paths = sorted(BOOT_LOGS.glob("*.log")) + sorted((DATA / "maps").glob("*"))
    return [p for p in paths if re.search(r"BIOS-e820:|CMR(?:\[\d+\])?: \[|\"regions\"",
                                          p.read_text())]


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
    """(has CMRs, logged a PAMT figure or failure) of a map; unreadable maps get every check,
    so that the error is reported, not skipped."""
    try:
        machine = read_input(path)
    except InputError:
        return True, True
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
            elif kind == "flow":
                for config in suite.flow_configs:
                    specs.append(CheckSpec(f"flow/{name}/{config}", kind, name, config,
                                           suite.bounds))
    return sorted(specs, key=lambda s: s.id)


# --- suite files ------------------------------------------------------------------------------

SUITE_HELP = """\
profiles = ["v6.8", "cmr-holes"]      # default: every profile (`python -m checker profiles`)
maps = ["builtin", "my-machine.json"]  # "builtin": the shipped boot logs
flow_configs = ["default"]             # explorer configurations (`python -m checker configs`)
checks = ["log", "layout", "worst-case", "plan", "maps", "flow", "replay"]
counterexamples = "counterexamples"    # where found counterexamples are stored and replayed
[bounds]
max_states = 3000000
max_depth = 500
time_s = 90
solver_timeout_s = 30"""


def load_suite(path: str | Path) -> Suite:
    """A suite from a TOML file, or from `[tool.tdx-checker]` when the file is a pyproject."""
    name = str(path)
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(name, 0, f"cannot read: {exc}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        raise SuiteError(name, int(match[1]) if match else 0, f"invalid TOML: {exc}") from None
    table = ""
    if Path(path).name == "pyproject.toml":
        doc, table = doc.get("tool", {}).get("tdx-checker"), "tool.tdx-checker"
        if doc is None:
            raise SuiteError(name, 0, "no [tool.tdx-checker] table")
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
    """A suite from the parsed TOML table `table` of the file `name` (its `text` gives lines)."""

    def line(key: str) -> int:
        return _line(text, key, table)

    known = {"profiles", "maps", "flow_configs", "checks", "counterexamples", "bounds"}
    for key in doc:
        if key not in known:
            raise SuiteError(name, line(key), f"unknown key {key!r} (known: "
                             f"{', '.join(sorted(known))})")
    values: dict[str, Any] = {"source": name}
    for key in ("profiles", "maps", "flow_configs", "checks"):
        if key in doc:
            value = doc[key]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise SuiteError(name, line(key), f"{key} must be a list of strings")
            values[key] = tuple(value)
    for profile in values.get("profiles", ()):
        if profile not in PROFILES:
            raise SuiteError(name, line("profiles"), f"unknown profile {profile!r}")
    for kind in values.get("checks", ()):
        if kind not in CHECK_KINDS:
            raise SuiteError(name, line("checks"), f"unknown check kind {kind!r} "
                             f"(known: {', '.join(CHECK_KINDS)})")
    base = Path(name).parent
    for entry in values.get("maps", ()):
        if entry != BUILTIN and not (base / entry).is_file():
            raise SuiteError(name, line("maps"), f"map {entry!r} not found")
    if "maps" in values:
        values["maps"] = tuple(m if m == BUILTIN else str(base / m) for m in values["maps"])
    if "counterexamples" in doc:
        if not isinstance(doc["counterexamples"], str):
            raise SuiteError(name, line("counterexamples"), "counterexamples must be "
                             "a directory name")
        values["counterexamples"] = doc["counterexamples"]
    if "bounds" in doc:
        values["bounds"] = _bounds(doc["bounds"], name, text, table)
    return Suite(**values)


def _bounds(values_table: Any, name: str, text: str, table: str) -> Bounds:
    """The [bounds] table of the suite in `[table]`."""
    if not isinstance(values_table, dict):
        raise SuiteError(name, _line(text, "bounds", table), "bounds must be a table")
    inner = f"{table}.bounds" if table else "bounds"
    known = {f.name: f.type for f in fields(Bounds)}
    values = {}
    for key, value in values_table.items():
        if key not in known:
            raise SuiteError(name, _line(text, key, inner), f"unknown bound {key!r} (known: "
                             f"{', '.join(known)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise SuiteError(name, _line(text, key, inner),
                             f"bound {key} must be a positive number")
        values[key] = value
    return Bounds(**values)
