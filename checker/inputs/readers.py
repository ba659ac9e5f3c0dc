"""Readers: memory maps as people have them, turned into what `spec` takes.

Three inputs: our JSON memory-map format, a kernel boot log as pasted (dmesg with or without
timestamps, `tdx:` or `virt/tdx:` prefixes), and `/proc/iomem`. Every problem is an
`InputError` naming the file, the line and what is wrong, so the CLI never shows a traceback.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

from spec.errno import EIO, ENODEV, KernelError
from spec.memory import SZ_1M, MemRange
from spec.sysinfo import TdxSysinfo

MAX_ADDRESS = 1 << 64


class InputError(Exception):
    """Bad input: `file:line: problem` (line 0 when the problem is the whole file)."""

    def __init__(self, file: str, line: int, problem: str) -> None:
        self.file, self.line, self.problem = file, line, problem
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class ModuleInfo:
    """The `TDX module: ...` line: enough to know whether v6.8 can read its metadata."""

    major: int
    minor: int
    build_date: str = ""
    build_num: int = 0

    @property
    def version(self) -> str:
        return f"{self.major}.{self.minor}"


@dataclass(frozen=True)
class LoggedFacts:
    """What a boot log says the kernel did, to compare with what the model does."""

    pamt_kb: int | None = None
    keyid_range: tuple[int, int] | None = None
    module: ModuleInfo | None = None
    error: KernelError | None = None
    initialized: bool = False


@dataclass(frozen=True)
class MachineInput:
    """A machine's memory as the kernel would see it, plus what its log recorded.

    `regions` is memblock memory (before `build_tdx_memlist`), `lines[i]` the input line that
    region i came from. `memory_from_cmrs` marks the 1 GiB-granular stand-in used when a log has
    CMRs but no firmware map.
    """

    source: str
    kind: str
    regions: tuple[MemRange, ...]
    lines: tuple[int, ...]
    cmrs: tuple[MemRange, ...] = ()
    sysinfo: TdxSysinfo | None = None
    pamt_bases: dict[int, int] | None = None
    memory_from_cmrs: bool = False
    logged: LoggedFacts = field(default_factory=LoggedFacts)
    notes: tuple[str, ...] = ()

    @property
    def nodes(self) -> list[int]:
        return sorted({r.nid for r in self.regions})


def read_input(path: str | Path) -> MachineInput:
    """Read a JSON map, a boot log or /proc/iomem, telling them apart by their content."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(name, 0, f"cannot read: {exc.strerror or exc}") from None
    if b"\0" in data:
        raise InputError(name, 0, "binary file (NUL bytes): expected a JSON map, a boot log "
                         "or /proc/iomem")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(name, line, "not UTF-8 text: expected a JSON map, a boot log or "
                         "/proc/iomem") from None
    if not text.strip():
        raise InputError(name, 0, "empty input")
    if text.lstrip().startswith("{"):
        return read_json_map(text, name)
    if _IOMEM_LINE.match(text.lstrip("\n").splitlines()[0]):
        return read_iomem(text, name)
    return read_boot_log(text, name)


# --- our JSON format --------------------------------------------------------------------------

JSON_FORMAT_HELP = """\
{
  "regions": [{"start": "0x100000", "end": "0x80000000", "nid": 0}, ...],
  "cmrs": [{"start": "0x100000", "end": "0x80000000"}, ...],          (optional)
  "metadata": {"max_tdmrs": 64, "max_reserved_per_tdmr": 16,
               "pamt_entry_size": [16, 16, 16]},                          (optional)
  "pamt_bases": ["0x...", ...]       (optional: the PAMT chunk base of TDMR 0, 1, ...)
}
Addresses are integers or hex strings, ranges half-open [start, end), regions sorted and
disjoint; "nid" defaults to 0."""


def memory_map_json(regions, cmrs=(), sysinfo: TdxSysinfo | None = None,
                    pamt_bases: dict[int, int] | None = None) -> dict:
    """A map in our JSON format (addresses as hex strings), the inverse of `read_json_map`."""
    doc: dict = {"regions": [{"start": hex(r.start), "end": hex(r.end), "nid": r.nid}
                             for r in regions]}
    if cmrs:
        doc["cmrs"] = [{"start": hex(c.start), "end": hex(c.end)} for c in cmrs]
    if sysinfo is not None:
        doc["metadata"] = {"max_tdmrs": sysinfo.max_tdmrs,
                           "max_reserved_per_tdmr": sysinfo.max_reserved_per_tdmr,
                           "pamt_entry_size": list(sysinfo.pamt_entry_size)}
    if pamt_bases is not None:
        doc["pamt_bases"] = [hex(pamt_bases[i]) for i in sorted(pamt_bases)]
    return doc


def read_json_map(text: str, name: str) -> MachineInput:
    """Our memory-map format (see JSON_FORMAT_HELP); errors name the line of the bad item."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(name, exc.lineno, f"invalid JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise InputError(name, 1, "the top level must be an object with a 'regions' list")
    unknown = set(doc) - {"regions", "cmrs", "metadata", "pamt_bases", "comment"}
    if unknown:
        raise InputError(name, _line_of_key(text, sorted(unknown)[0]),
                         f"unknown key {sorted(unknown)[0]!r}")
    if "regions" not in doc:
        raise InputError(name, 1, "missing 'regions' (a list of {start, end, nid})")
    regions, lines = _json_ranges(doc["regions"], "regions", text, name, with_nid=True)
    if not regions:
        raise InputError(name, _line_of_key(text, "regions"), "'regions' is empty")
    cmrs, _ = _json_ranges(doc.get("cmrs", []), "cmrs", text, name, with_nid=False)
    sysinfo = _json_metadata(doc.get("metadata"), text, name)
    bases = doc.get("pamt_bases")
    pamt_bases = None
    if bases is not None:
        line = _line_of_key(text, "pamt_bases")
        if not isinstance(bases, list):
            raise InputError(name, line, "'pamt_bases' must be a list of addresses")
        pamt_bases = {i: _address(b, name, line, "pamt_bases") for i, b in enumerate(bases)}
    machine = MachineInput(name, "json", tuple(regions), tuple(lines), tuple(cmrs), sysinfo,
                           pamt_bases)
    return _checked(machine)


def _line_of_key(text: str, key: str) -> int:
    pos = text.find(f'"{key}"')
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 1


def _item_lines(text: str, key: str, count: int) -> list[int]:
    """Line of each element of the top-level list `key`, found by decoding it piece by piece."""
    decoder = json.JSONDecoder()
    pos = text.find(f'"{key}"')
    lines = []
    if pos >= 0:
        pos = text.find("[", pos) + 1
        for _ in range(count):
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            lines.append(text.count("\n", 0, pos) + 1)
            try:
                _, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                break
    return lines + [_line_of_key(text, key)] * (count - len(lines))


def _address(value, name: str, line: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(name, line, f"{what}: {value!r} is not an address (integer or hex string)")
    if isinstance(value, str):
        try:
            number = int(value, 16) if value.lower().startswith("0x") else int(value, 10)
        except ValueError:
            raise InputError(name, line, f"{what}: {value!r} is not a number") from None
    else:
        number = value
    if number < 0 or number >= MAX_ADDRESS:
        raise InputError(name, line, f"{what}: {value!r} does not fit a 64-bit physical address")
    return number


def _json_ranges(items, key: str, text: str, name: str, with_nid: bool):
    if not isinstance(items, list):
        raise InputError(name, _line_of_key(text, key), f"'{key}' must be a list")
    lines = _item_lines(text, key, len(items))
    ranges = []
    for i, (item, line) in enumerate(zip(items, lines, strict=True)):
        what = f"{key}[{i}]"
        if not isinstance(item, dict) or "start" not in item or "end" not in item:
            raise InputError(name, line, f"{what} must be an object with 'start' and 'end'")
        start = _address(item["start"], name, line, f"{what}.start")
        end = _address(item["end"], name, line, f"{what}.end")
        nid = item.get("nid", 0) if with_nid else 0
        if isinstance(nid, bool) or not isinstance(nid, int) or nid < 0:
            raise InputError(name, line, f"{what}.nid must be a node number >= 0")
        ranges.append(MemRange(start, end, nid))
    _check_ranges(ranges, lines, name, key)
    return ranges, lines


def _json_metadata(meta, text: str, name: str) -> TdxSysinfo | None:
    if meta is None:
        return None
    line = _line_of_key(text, "metadata")
    if not isinstance(meta, dict):
        raise InputError(name, line, "'metadata' must be an object")
    try:
        fields = {k: meta[k] for k in ("max_tdmrs", "max_reserved_per_tdmr") if k in meta}
        if "pamt_entry_size" in meta:
            fields["pamt_entry_size"] = tuple(meta["pamt_entry_size"])
        extra = set(meta) - {"max_tdmrs", "max_reserved_per_tdmr", "pamt_entry_size"}
        if extra:
            raise ValueError(f"unknown metadata field {sorted(extra)[0]!r}")
        if any(isinstance(v, bool) or not isinstance(v, int)
               for v in [*fields.get("pamt_entry_size", ()),
                         *(fields[k] for k in fields if k != "pamt_entry_size")]):
            raise ValueError("metadata values must be integers")
        return TdxSysinfo(**fields)
    except (TypeError, ValueError) as exc:
        raise InputError(name, line, f"metadata: {exc}") from None


def _check_ranges(ranges: list[MemRange], lines: list[int], name: str, what: str) -> None:
    for i, r in enumerate(ranges):
        if r.end <= r.start:
            raise InputError(name, lines[i], f"{what}: end 0x{r.end:x} is not above start "
                             f"0x{r.start:x}")
        if i and r.start < ranges[i - 1].end:
            prev = ranges[i - 1]
            problem = "overlaps" if r.start >= prev.start else "is not sorted after"
            raise InputError(name, lines[i], f"{what}: [0x{r.start:x}, 0x{r.end:x}) {problem} "
                             f"[0x{prev.start:x}, 0x{prev.end:x}) (line {lines[i - 1]})")


def _checked(machine: MachineInput) -> MachineInput:
    if not any(r.end > SZ_1M for r in machine.regions):
        raise InputError(machine.source, machine.lines[0] if machine.lines else 0,
                         "no memory above 1 MiB: nothing for TDX to cover")
    return machine


# --- kernel boot logs -------------------------------------------------------------------------

_HEX = r"(0x[0-9a-fA-F]+)"
_E820 = re.compile(r"BIOS-e820: \[mem (\S+?)-(\S+?)\] (.+?)\s*$")
_E820_UPDATE = re.compile(r"e820: update \[mem (\S+?)-(\S+?)\] (.+?) ==> (.+?)\s*$")
_E820_REMOVE = re.compile(r"e820: remove \[mem (\S+?)-(\S+?)\](?: (.+?))?\s*$")
_SRAT = re.compile(r"SRAT: Node (\d+) PXM \d+ \[mem (\S+?)-(\S+?)\]")
_TDX = r"(?:virt/)?tdx: "
_CMR = re.compile(_TDX + r"CMR(?:\[\d+\])?: \[(\S+?), (\S+?)\)")
_PAMT = re.compile(_TDX + r"(\d+) KBs? allocated for PAMT")
_KEYID = re.compile(_TDX + r"BIOS enabled: private KeyID range \[(\d+), (\d+)\)")
_MODULE = re.compile(_TDX + r"TDX module: .*major_version (\d+), minor_version (\d+)"
                     r"(?:, build_date (\d+), build_num (\d+))?")
_SEAMCALL_FAIL = re.compile(_TDX + r"(SEAMCALL \(" + _HEX + r"\) failed: " + _HEX + ")")
_INIT_FAILED = re.compile(_TDX + r"(?:module )?initialization failed \((-\d+)\)")
_CONSTRUCT_FAIL = re.compile(_TDX + r"(initialization failed: .*exhausted\.)")
_NOT_LOADED = re.compile(_TDX + r"(module not loaded)")
_INITIALIZED = re.compile(_TDX + r"module initialized")
_IOMEM_LINE = re.compile(r"^\s*([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.+?)\s*$")
_USABLE_TYPES = ("usable", "reserved-kern")


def _hex(text: str, name: str, line: int, what: str) -> int:
    try:
        value = int(text, 16)
    except ValueError:
        raise InputError(name, line, f"{what}: {text!r} is not a hexadecimal number") from None
    if value >= MAX_ADDRESS:
        raise InputError(name, line, f"{what}: {text} does not fit a 64-bit physical address")
    return value


def read_boot_log(text: str, name: str) -> MachineInput:
    """A boot log: e820 (and its updates) and SRAT give memblock memory with nodes; CMR lines
    stand in for it when there is no e820; the tdx lines say what the kernel did."""
    e820: list[tuple[int, int, str, int]] = []  # start, end (exclusive), type, line
    updates: list[tuple[str, int, int, str | None, str, int]] = []
    srat: list[tuple[int, int, int]] = []
    cmrs: list[MemRange] = []
    cmr_lines: list[int] = []
    facts: dict = {}
    seamcall_error = construct_error = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if "BIOS-e820:" in line:
            m = _E820.search(line)
            if not m:
                raise InputError(name, number, "malformed BIOS-e820 line (expected "
                                 "'BIOS-e820: [mem 0xSTART-0xEND] type')")
            start, last = _hex(m[1], name, number, "e820 start"), _hex(m[2], name, number,
                                                                       "e820 end")
            if last < start:
                raise InputError(name, number, f"e820 entry ends (0x{last:x}) before it "
                                 f"starts (0x{start:x})")
            e820.append((start, last + 1, m[3].strip(), number))
        elif m := _E820_UPDATE.search(line):
            updates.append(("update", _hex(m[1], name, number, "start"),
                            _hex(m[2], name, number, "end") + 1, m[3], m[4], number))
        elif m := _E820_REMOVE.search(line):
            updates.append(("remove", _hex(m[1], name, number, "start"),
                            _hex(m[2], name, number, "end") + 1, m[3], "", number))
        elif m := _SRAT.search(line):
            srat.append((_hex(m[2], name, number, "SRAT start"),
                         _hex(m[3], name, number, "SRAT end") + 1, int(m[1])))
        elif m := _CMR.search(line):
            cmrs.append(MemRange(_hex(m[1], name, number, "CMR start"),
                                 _hex(m[2], name, number, "CMR end")))
            cmr_lines.append(number)
        elif m := _PAMT.search(line):
            facts["pamt_kb"] = int(m[1])
        elif m := _KEYID.search(line):
            facts["keyid_range"] = (int(m[1]), int(m[2]))
        elif m := _MODULE.search(line):
            facts["module"] = ModuleInfo(int(m[1]), int(m[2]), m[3] or "", int(m[4] or 0))
        elif m := _SEAMCALL_FAIL.search(line):
            seamcall_error = seamcall_error or KernelError(-EIO, m[1])
        elif m := _CONSTRUCT_FAIL.search(line):
            construct_error = m[1]
        elif m := _NOT_LOADED.search(line):
            seamcall_error = seamcall_error or KernelError(-ENODEV, m[1])
        elif m := _INIT_FAILED.search(line):
            facts["errno"] = int(m[1])
        elif _INITIALIZED.search(line):
            facts["initialized"] = True
    _check_ranges(cmrs, cmr_lines, name, "CMR")
    logged = LoggedFacts(facts.get("pamt_kb"), facts.get("keyid_range"), facts.get("module"),
                         _logged_error(facts.get("errno"), construct_error, seamcall_error),
                         facts.get("initialized", False))
    notes = []
    if e820:
        e820 = _apply_e820_updates(e820, updates, name)
        usable = [(s, e, ln) for s, e, kind, ln in e820 if kind in _USABLE_TYPES]
        if not usable:
            raise InputError(name, e820[0][3], "the e820 map has no usable memory")
        regions, lines, srat_note = _assign_nodes(_merge_adjacent(usable), srat)
        notes.append(f"{len(regions)} memblock ranges from {len(e820)} BIOS-e820 lines"
                     + (f" ({len(updates)} e820 updates applied)" if updates else "")
                     + srat_note)
        machine = MachineInput(name, "boot-log", tuple(regions), tuple(lines), tuple(cmrs),
                               logged=logged, notes=tuple(notes))
        return _checked(machine)
    if cmrs:
        notes.append(f"no BIOS-e820 lines: the {len(cmrs)} CMRs stand in for the memory map. "
                     "This is a 1 GiB-granular approximation: TDMRs and PAMT sizes match the "
                     "kernel's, reserved holes may not")
        machine = MachineInput(name, "boot-log", tuple(cmrs), tuple(cmr_lines), tuple(cmrs),
                               memory_from_cmrs=True, logged=logged, notes=tuple(notes))
        return _checked(machine)
    said = f" (the log says: {logged.error.message})" if logged.error and logged.error.message \
        else ""
    raise InputError(name, 0, "no memory map in this log: expected BIOS-e820, CMR or "
                     f"/proc/iomem 'System RAM' lines{said}")


def _logged_error(errno: int | None, construct: str | None,
                  seamcall: KernelError | None) -> KernelError | None:
    """The failure a log records: the errno printed by `tdx_enable`, with the most specific
    line that explains it."""
    if construct:
        return KernelError(errno if errno is not None else -28, construct)
    if seamcall:
        return KernelError(errno if errno is not None else seamcall.errno, seamcall.message)
    if errno is not None:
        return KernelError(errno, None)
    return None


def _apply_e820_updates(e820, updates, name):
    """Apply `e820: update` (retype) and `e820: remove` lines in log order."""
    segments = sorted(e820)
    for i in range(1, len(segments)):
        prev, cur = segments[i - 1], segments[i]
        if cur[0] < prev[1]:
            raise InputError(name, cur[3], f"e820 entry [mem 0x{cur[0]:x}-0x{cur[1] - 1:x}] "
                             f"overlaps the entry on line {prev[3]}")
    for action, start, end, old, new, _line in updates:
        out = []
        for s, e, kind, ln in segments:
            matches = old is None or kind == old.strip()
            if e <= start or s >= end or not matches:
                out.append((s, e, kind, ln))
                continue
            if s < start:
                out.append((s, start, kind, ln))
            if action == "update":
                out.append((max(s, start), min(e, end), new.strip(), ln))
            if e > end:
                out.append((end, e, kind, ln))
        segments = out
    return segments


def _merge_adjacent(ranges: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """memblock merges touching regions as they are added (nodes are split in later)."""
    merged: list[tuple[int, int, int]] = []
    for start, end, line in sorted(ranges):
        if merged and merged[-1][1] == start:
            merged[-1] = (merged[-1][0], end, merged[-1][2])
        else:
            merged.append((start, end, line))
    return merged


def _assign_nodes(ranges, srat):
    """Split memory at SRAT node boundaries, as memblock_set_node does, and merge touching
    pieces of the same node. Without SRAT lines everything is node 0."""
    if not srat:
        return [MemRange(s, e, 0) for s, e, _ in ranges], [ln for _, _, ln in ranges], ""
    srat = sorted(srat)
    starts = [s for s, _, _ in srat]
    pieces: list[tuple[MemRange, int]] = []
    uncovered = 0
    for start, end, line in ranges:
        pos = start
        while pos < end:
            i = bisect_right(starts, pos) - 1
            if i >= 0 and srat[i][1] > pos:
                stop, nid = min(end, srat[i][1]), srat[i][2]
            else:
                nxt = starts[i + 1] if i + 1 < len(starts) else end
                stop, nid = min(end, nxt), 0
                uncovered += stop - pos
            if pieces and pieces[-1][0].end == pos and pieces[-1][0].nid == nid:
                pieces[-1] = (MemRange(pieces[-1][0].start, stop, nid), pieces[-1][1])
            else:
                pieces.append((MemRange(pos, stop, nid), line))
            pos = stop
    nodes = len({r.nid for r, _ in pieces})
    note = f", {nodes} SRAT node{'s' if nodes != 1 else ''}"
    if uncovered:
        note += f"; {uncovered} bytes outside every SRAT range put on node 0"
    return [r for r, _ in pieces], [ln for _, ln in pieces], note


# --- /proc/iomem ------------------------------------------------------------------------------

def read_iomem(text: str, name: str) -> MachineInput:
    """Top-level `System RAM` lines of /proc/iomem (inclusive ends, no 0x) on node 0."""
    ranges: list[MemRange] = []
    lines: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        m = _IOMEM_LINE.match(line)
        if not m:
            raise InputError(name, number, "malformed /proc/iomem line (expected "
                             "'START-END : name')")
        if line[0].isspace() or m[3] != "System RAM":
            continue
        start, last = _hex(m[1], name, number, "start"), _hex(m[2], name, number, "end")
        if start == last == 0:
            raise InputError(name, number, "addresses are all zero: /proc/iomem must be read "
                             "as root")
        if last < start:
            raise InputError(name, number, f"range ends (0x{last:x}) before it starts "
                             f"(0x{start:x})")
        ranges.append(MemRange(start, last + 1))
        lines.append(number)
    if not ranges:
        raise InputError(name, 0, "no 'System RAM' lines in /proc/iomem")
    _check_ranges(ranges, lines, name, "System RAM")
    merged = _merge_adjacent([(r.start, r.end, ln) for r, ln in zip(ranges, lines,
                                                                     strict=True)])
    regions = [MemRange(s, e) for s, e, _ in merged]
    notes = (f"{len(regions)} memory ranges from {len(ranges)} System RAM lines; "
             "/proc/iomem has no NUMA nodes: all on node 0",)
    return _checked(MachineInput(name, "iomem", tuple(regions),
                                 tuple(ln for _, _, ln in merged), notes=notes))
