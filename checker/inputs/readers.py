"""Readers: memory maps as people have them, turned into what `spec` takes.

Three inputs: our JSON memory-map format (alone, or as the map of a counterexample file we
wrote), a kernel boot log as pasted (dmesg with or without timestamps, `tdx:` or `virt/tdx:`
prefixes), and `/proc/iomem`; and the TDMR lists that `tdmr --check-layout` checks. A boot log
also gives its TDX lines as they were printed, for the diagnosis, even when it has no memory map
(`NoMemoryMap`). Every problem is an `InputError` naming the file, the line and
what is wrong, so the CLI never shows a traceback. Firmware input the kernel itself would carry
on with (a range memblock skips, a SRAT block NUMA setup ignores) is read as the kernel reads it,
with a warning in `MachineInput.warnings` that names the line.
"""

from __future__ import annotations

import json
import re
import sys
from bisect import bisect_right
from dataclasses import dataclass, field, replace
from pathlib import Path

from spec.errno import EIO, ENODEV, KernelError
from spec.memory import SZ_1M, SZ_4K, MemRange, build_tdx_memlist, round_down, round_up
from spec.sysinfo import BITMAP_BITS_MAX, TdxSysinfo
from spec.tdmr import ReservedArea, Tdmr, fill_out_tdmrs

MAX_ADDRESS = 1 << 64
MAX_PHYS_ADDRESS = 1 << 52
"""x86-64 physical addresses have at most 52 bits (MAXPHYADDR): memory, CMRs and PAMTs above
this cannot exist, and near 2^64 the kernel's own u64 arithmetic (a TDMR end rounded up to
1 GiB) would wrap, so the model could not say what it does."""
MAX_NUMNODES = 1 << 10  # CONFIG_NODES_SHIFT is at most 10: no Linux node number reaches 1024
MAX_DIGITS = 64  # a longer integer is no field of ours, and Python refuses 4,301 digits anyway
MAX_JSON_DEPTH = 32  # our formats nest five deep; deeper input would exhaust the parser's stack
MAX_ERRNO = 4095  # the kernel's MAX_ERRNO: a logged "(-N)" beyond it is no errno
U16, U32 = 1 << 16, 1 << 32


class InputError(Exception):
    """Bad input: `file:line: problem` (line 0 when the problem is the whole file)."""

    def __init__(self, file: str, line: int, problem: str) -> None:
        self.file, self.line, self.problem = file, line, problem
        super().__init__(_at(file, line, problem))


def _at(file: str, line: int, problem: str) -> str:
    return f"{file}:{line}: {problem}" if line else f"{file}: {problem}"


class NoMemoryMap(InputError):
    """A boot log without a memory map. It is still an input error for whatever needs memory,
    but it carries what the log says (`logged`), which can be diagnosed without one."""

    def __init__(self, file: str, problem: str, logged: LoggedFacts) -> None:
        super().__init__(file, 0, problem)
        self.logged = logged


STDIN = "-"
"""The file name that stands for standard input; it is reported as `<stdin>`."""


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
class LogLine:
    """A line of a boot log as printed (its timestamp dropped), with its line number."""

    line: int
    text: str


@dataclass(frozen=True)
class FirmwareEntry:
    """An entry of the firmware (e820) map, after the log's e820 updates: [start, end) of type
    `kind`, from the BIOS-e820 line `line`; `updated_at` is the line of the `e820: update` that
    gave it this type, if one did. Holes in memory are made of these."""

    start: int
    end: int
    kind: str
    line: int
    updated_at: int | None = None


@dataclass(frozen=True)
class LoggedFacts:
    """What a boot log says the kernel did, to compare with what the model does. `lines` are
    the lines the kernel's TDX code, KVM's TDX setup and the machine-check handler printed, in
    order, to be diagnosed; `command_line` is the kernel command line, if the log has it."""

    pamt_kb: int | None = None
    keyid_range: tuple[int, int] | None = None
    module: ModuleInfo | None = None
    error: KernelError | None = None
    initialized: bool = False
    lines: tuple[LogLine, ...] = ()
    command_line: LogLine | None = None


@dataclass(frozen=True)
class MachineInput:
    """A machine's memory as the kernel would see it, plus what its log recorded.

    `regions` is memblock memory (before `build_tdx_memlist`), `lines[i]` the input line that
    region i came from. `memory_from_cmrs` marks the 1 GiB-granular stand-in used when a log has
    CMRs but no firmware map. `warnings` (`file:line: problem`) name input the kernel would
    carry on with, read as it would read it.
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
    warnings: tuple[str, ...] = ()
    firmware_map: tuple[FirmwareEntry, ...] = ()

    @property
    def nodes(self) -> list[int]:
        return sorted({r.nid for r in self.regions})


def read_input(path: str | Path) -> MachineInput:
    """Read a JSON map, a boot log or /proc/iomem from a file, or from standard input when the
    path is `-` (see `parse_input`)."""
    text = _read_text(path, "expected a JSON map, a boot log or /proc/iomem")
    return parse_input(text, "<stdin>" if str(path) == STDIN else str(path))


def parse_input(text: str, name: str) -> MachineInput:
    """A JSON map, a boot log or /proc/iomem, told apart by their content."""
    text = _content(text, name)
    if text.lstrip().startswith("{"):
        return read_json_map(text, name)
    if _IOMEM_LINE.match(text.lstrip("\n").split("\n", 1)[0]):
        return read_iomem(text, name)
    return read_boot_log(text, name)


def read_layout(path: str | Path) -> tuple[Tdmr, ...]:
    """The TDMR list of a `tdmr --check-layout` file (see `read_layout_json`)."""
    return read_layout_json(_read_text(path, "expected a JSON TDMR list"), str(path))


def _read_text(path: str | Path, expected: str) -> str:
    """A file's text (standard input's for `-`): UTF-8 without NUL bytes."""
    name = str(path)
    try:
        data = sys.stdin.buffer.read() if name == STDIN else Path(path).read_bytes()
    except OSError as exc:
        raise InputError(name, 0, f"cannot read: {exc.strerror or exc}") from None
    if name == STDIN:
        name = "<stdin>"
    if b"\0" in data:
        raise InputError(name, 0, f"binary file (NUL bytes): {expected}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise InputError(name, line, f"not UTF-8 text: {expected}") from None


def _content(text: str, name: str) -> str:
    """The text without a leading byte-order mark, which editors on Windows write and RFC 8259
    lets a JSON reader drop; refused when nothing is left."""
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise InputError(name, 0, "empty input")
    return text


# --- our JSON format --------------------------------------------------------------------------

JSON_FORMAT_HELP = """\
{
  "regions": [{"start": "0x100000", "end": "0x80000000", "nid": 0}, ...],
  "cmrs": [{"start": "0x100000", "end": "0x80000000"}, ...],          (optional)
  "metadata": {"max_tdmrs": 64, "max_reserved_per_tdmr": 16,
               "pamt_entry_size": [16, 16, 16],
               "pamt_page_bitmap_entry_bits": 0},                         (optional)
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
        if sysinfo.pamt_page_bitmap_entry_bits:  # maps of modules without it stay as they were
            doc["metadata"]["pamt_page_bitmap_entry_bits"] = sysinfo.pamt_page_bitmap_entry_bits
    if pamt_bases is not None:
        doc["pamt_bases"] = [hex(pamt_bases[i]) for i in sorted(pamt_bases)]
    return doc


def read_json_map(text: str, name: str) -> MachineInput:
    """Our memory-map format (see JSON_FORMAT_HELP); errors name the line of the bad item.

    `regions` are memblock memory, so a region that holds no whole page is skipped with a
    warning, as `for_each_mem_pfn_range` skips it. Everything else that is wrong is an error,
    among it more `pamt_bases` than the map has TDMRs: the kernel has no such input (the bases
    stand for its allocator's choices), and a base for no TDMR says the map is not what its
    author meant."""
    doc = _load_json(text, name)
    if not isinstance(doc, dict):
        raise InputError(name, 1, "the top level must be an object with a 'regions' list")
    if "counterexample" in doc:
        return _counterexample_map(doc, text, name)
    _no_unknown_keys(doc, {"regions", "cmrs", "metadata", "pamt_bases", "comment"}, "", name,
                     1, text)
    if "regions" not in doc:
        raise InputError(name, 1, "missing 'regions' (a list of {start, end, nid})")
    regions, lines = _json_ranges(doc["regions"], "regions", text, name, ("start", "end", "nid"))
    if not regions:
        raise InputError(name, _line_of_key(text, "regions"), "'regions' is empty")
    cmrs, cmr_lines = _json_ranges(doc.get("cmrs", []), "cmrs", text, name, ("start", "end"))
    _check_cmrs(cmrs, cmr_lines, name)
    sysinfo = _json_metadata(doc.get("metadata"), text, name)
    warnings = _pageless_warnings(regions, lines, name, "region")
    machine = _checked(MachineInput(name, "json", tuple(regions), tuple(lines), tuple(cmrs),
                                    sysinfo, warnings=tuple(warnings)))
    if "pamt_bases" not in doc:
        return machine
    bases = doc["pamt_bases"]
    if not isinstance(bases, list):
        raise InputError(name, _line_of_key(text, "pamt_bases"),
                         "'pamt_bases' must be a list of addresses")
    base_lines = _item_lines(text, "pamt_bases", len(bases))
    pamt_bases = {i: _address(b, name, ln, f"pamt_bases[{i}]")
                  for i, (b, ln) in enumerate(zip(bases, base_lines, strict=True))}
    tdmrs = _tdmr_count(machine.regions)
    if len(bases) > tdmrs:
        raise InputError(name, base_lines[tdmrs], f"pamt_bases[{tdmrs}]: the map gives "
                         f"{tdmrs} TDMR{'s' if tdmrs != 1 else ''}, so {len(bases)} PAMT bases "
                         "are too many (one per TDMR, in order)")
    return replace(machine, pamt_bases=pamt_bases)


def _counterexample_map(doc: dict, text: str, name: str) -> MachineInput:
    """The memory map a counterexample file holds (`counterexample.map`, in our map format),
    read where it stands in the file, so that problems name the file's own lines."""
    body = doc["counterexample"]
    if not isinstance(body, dict) or "map" not in body:
        kind = body.get("kind") if isinstance(body, dict) else None
        what = "a trace, not a memory map" if kind == "trace" else "no memory map"
        raise InputError(name, _line_of_key(text, "counterexample"), f"this counterexample "
                         f"holds {what}: `replay {name}` runs it")
    span = _value_span(text, "map", body["map"])
    machine = read_json_map("\n" * text.count("\n", 0, span[0]) + text[span[0]:span[1]]
                            if span else json.dumps(body["map"], indent=1), name)
    result = body.get("result")
    said = f": {result.splitlines()[0]}" if isinstance(result, str) and result else ""
    note = f"the memory map of counterexample {doc.get('check', '')}{said}"
    return replace(machine, kind="counterexample", notes=(note, *machine.notes))


def _value_span(text: str, key: str, value) -> tuple[int, int] | None:
    """Where in `text` the value of `key` that equals `value` starts and ends (None when the
    key is spelt with escapes, so that its lines cannot be told)."""
    decoder = json.JSONDecoder()
    for found in re.finditer(f'"{key}"\\s*:\\s*', text):
        try:
            decoded, end = decoder.raw_decode(text, found.end())
        except json.JSONDecodeError:
            continue
        if decoded == value:
            return found.end(), end
    return None


def _tdmr_count(regions) -> int:
    """How many TDMRs `fill_out_tdmrs` makes for this memory, whatever the module's limit."""
    memlist = build_tdx_memlist(regions)
    filled = fill_out_tdmrs(memlist, TdxSysinfo(max_tdmrs=len(memlist)), [])
    assert isinstance(filled, list)  # a limit of one TDMR per entry is never reached
    return len(filled)


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _DuplicateKey(next(k for i, k in enumerate(keys) if k in keys[:i]))
    return dict(pairs)


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}\n]|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?')


def _load_json(text: str, name: str):
    """`json.loads`, after a scan that refuses, with their line, what would make the parser
    itself fail: nesting deep enough to exhaust its stack and integers too long to convert."""
    depth, line = 0, 1
    for token in _JSON_TOKEN.finditer(text):
        kind = token[0][0]
        if kind == "\n":
            line += 1
        elif kind == '"':
            line += token[0].count("\n")
        elif kind in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise InputError(name, line, f"nested deeper than {MAX_JSON_DEPTH} levels: "
                                 "not a file of ours")
        elif kind in "]}":
            depth -= 1
        elif token[0].lstrip("-").isdigit() and len(token[0].lstrip("-")) > MAX_DIGITS:
            raise InputError(name, line, f"an integer of {len(token[0].lstrip('-'))} digits: "
                             "too long for any field")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        raise InputError(name, exc.lineno, f"invalid JSON: {exc.msg}") from None
    except _DuplicateKey as exc:
        key = exc.args[0]
        first = text.find(f'"{key}"')
        second = text.find(f'"{key}"', first + 1)
        raise InputError(name, text.count("\n", 0, second) + 1 if second >= 0 else 1,
                         f"key {key!r} given twice in one object") from None


def _no_unknown_keys(obj: dict, known, what: str, name: str, line: int,
                     text: str | None = None) -> None:
    """Refuse a key we do not know, at the object's line (or the key's, found in `text`)."""
    unknown = sorted(set(obj) - set(known))
    if unknown:
        where = f"{what}: " if what else ""
        expected = f" (expected {', '.join(sorted(known))})" if len(known) <= 5 else ""
        raise InputError(name, _line_of_key(text, unknown[0]) if text else line,
                         f"{where}unknown key {unknown[0]!r}{expected}")


def _line_of_key(text: str, key: str) -> int:
    pos = text.find(f'"{key}"')
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 1


def _item_lines(text: str, key: str, count: int) -> list[int]:
    """Line of each element of the top-level list `key`, found by decoding it piece by piece."""
    decoder = json.JSONDecoder()
    pos = text.find(f'"{key}"')
    lines: list[int] = []
    if pos >= 0:
        pos = text.find("[", pos) + 1
        line, counted = text.count("\n", 0, pos) + 1, pos
        for _ in range(count):
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            line += text.count("\n", counted, pos)
            counted = pos
            lines.append(line)
            try:
                _, pos = decoder.raw_decode(text, pos)
            except json.JSONDecodeError:
                break
    return lines + [_line_of_key(text, key)] * (count - len(lines))


_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]+")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value, name: str, line: int, what: str, limit: int | None = None) -> int:
    """A non-negative integer (below `limit`, if given): a JSON integer, or a string of decimal
    digits or 0x-prefixed hex digits (no sign, underscores or spaces, which int() would take)."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InputError(name, line, f"{what}: {_short(value)} is not an integer or hex string")
    if isinstance(value, str):
        if len(value) > MAX_DIGITS + 2 or not _NUMBER.fullmatch(value):
            raise InputError(name, line, f"{what}: {_short(value)} is not a number (decimal "
                             "digits, or hex digits after 0x)")
        value = int(value, 0 if value[:2].lower() == "0x" else 10)
    if value < 0:
        raise InputError(name, line, f"{what}: {value} is negative")
    if limit is not None and value >= limit:
        raise InputError(name, line, f"{what}: {_short(value)} is out of range (0 to "
                         f"{limit - 1:#x})")
    return value


def _address(value, name: str, line: int, what: str) -> int:
    """A physical address or the exclusive end of a range: at most 2^52 (MAX_PHYS_ADDRESS)."""
    number = _number(value, name, line, what)
    if number >= MAX_ADDRESS:
        raise InputError(name, line, f"{what}: {number:#x} does not fit a 64-bit physical "
                         "address")
    _check_address(number, name, line, what)
    return number


def _check_address(number: int, name: str, line: int, what: str) -> None:
    if number > MAX_PHYS_ADDRESS:
        raise InputError(name, line, f"{what} {number:#x}: beyond 2^52, the largest physical "
                         "address space of x86-64 (MAXPHYADDR)")


def _json_ranges(items, key: str, text: str, name: str, keys: tuple[str, ...]):
    if not isinstance(items, list):
        raise InputError(name, _line_of_key(text, key), f"'{key}' must be a list")
    lines = _item_lines(text, key, len(items))
    ranges = []
    for i, (item, line) in enumerate(zip(items, lines, strict=True)):
        what = f"{key}[{i}]"
        if not isinstance(item, dict) or "start" not in item or "end" not in item:
            raise InputError(name, line, f"{what} must be an object with 'start' and 'end'")
        _no_unknown_keys(item, keys, what, name, line)
        start = _address(item["start"], name, line, f"{what}.start")
        end = _address(item["end"], name, line, f"{what}.end")
        nid = item.get("nid", 0)
        if isinstance(nid, bool) or not isinstance(nid, int) or not 0 <= nid < MAX_NUMNODES:
            raise InputError(name, line, f"{what}.nid: {_short(nid)} is not a node number "
                             f"(0 to {MAX_NUMNODES - 1})")
        ranges.append(MemRange(start, end, nid))
    _check_ranges(ranges, lines, name, key)
    return ranges, lines


_METADATA = {"max_tdmrs": (1, U16), "max_reserved_per_tdmr": (0, U16)}
BITMAP_KEY = "pamt_page_bitmap_entry_bits"  # Dynamic PAMT bits per 4K page; 0: no such module


def _json_metadata(meta, text: str, name: str) -> TdxSysinfo | None:
    """The module's TDMR limits and PAMT entry sizes: 16-bit fields of the module's metadata
    (`struct tdx_tdmr_sysinfo`), so a value that needs more bits cannot have been read."""
    if meta is None:
        return None
    line = _line_of_key(text, "metadata")
    if not isinstance(meta, dict):
        raise InputError(name, line, "'metadata' must be an object")
    _no_unknown_keys(meta, [*_METADATA, "pamt_entry_size", BITMAP_KEY], "metadata", name,
                     line)
    fields = {}
    for key, (low, high) in _METADATA.items():
        if key in meta:
            fields[key] = _field16(meta[key], low, high, name, line, f"metadata.{key}")
    if "pamt_entry_size" in meta:
        sizes = meta["pamt_entry_size"]
        if not isinstance(sizes, list) or len(sizes) != 3:
            raise InputError(name, line, "metadata.pamt_entry_size: three sizes (4K, 2M, 1G) "
                             "expected")
        fields["pamt_entry_size"] = tuple(_field16(v, 1, U16, name, line,
                                                   "metadata.pamt_entry_size") for v in sizes)
    if BITMAP_KEY in meta:
        fields[BITMAP_KEY] = _field16(meta[BITMAP_KEY], 0, BITMAP_BITS_MAX + 1, name, line,
                                      f"metadata.{BITMAP_KEY}", width=8)
    return TdxSysinfo(**fields)


def _field16(value, low: int, high: int, name: str, line: int, what: str,
             width: int = 16) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < high:
        raise InputError(name, line, f"{what}: {_short(value)} is not an integer from {low} to "
                         f"{high - 1} (a {width}-bit field of the module's metadata)")
    return value


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


def _check_cmrs(cmrs: list[MemRange], lines: list[int], name: str) -> None:
    """CMRs come from the TDX module (TDH.SYS.INFO), which reports them in whole 4 KiB pages:
    an unaligned one was not reported by a module."""
    for cmr, line in zip(cmrs, lines, strict=True):
        if cmr.start % SZ_4K or cmr.end % SZ_4K:
            raise InputError(name, line, f"CMR [0x{cmr.start:x}, 0x{cmr.end:x}) is not 4 KiB-"
                             "aligned: the TDX module reports CMRs in whole pages")


def _pageless_warnings(regions, lines, name: str, what: str) -> list[str]:
    """Regions above 1 MiB that hold no whole page: memblock's `for_each_mem_pfn_range` skips
    them (PFN_UP(start) >= PFN_DOWN(end)), so TDX never sees them; the kernel carries on."""
    return [_at(name, line, f"{what} [0x{r.start:x}, 0x{r.end:x}) holds no whole 4 KiB page: "
                "the kernel skips it (for_each_mem_pfn_range)")
            for r, line in zip(regions, lines, strict=True)
            if r.end > SZ_1M and round_up(r.start, SZ_4K) >= round_down(r.end, SZ_4K)]


def _checked(machine: MachineInput) -> MachineInput:
    """A machine with no whole page above 1 MiB cannot boot, and gives TDX nothing to cover."""
    if not build_tdx_memlist(machine.regions):
        raise InputError(machine.source, machine.lines[0] if machine.lines else 0,
                         "no memory above 1 MiB (no whole 4 KiB page of it): nothing for TDX "
                         "to cover")
    return machine


# --- TDMR lists (tdmr --check-layout) ------------------------------------------------------

_LAYOUT_SHAPE = "not a TDMR list (expected the 'tdmrs' list that `tdmr --format json` prints)"
_PAGE_SIZES = ("4k", "2m", "1g")
_PER_PAGE = tuple(f"pamt_{n}_{part}" for part in ("base", "size") for n in _PAGE_SIZES)
_TDMR_KEYS = ("base", "size", "nid", "reserved", "reserved_needed", "pamt_bases", "pamt_sizes",
              *_PER_PAGE)
_AREA_KINDS = ("hole", "pamt")


def read_layout_json(text: str, name: str) -> tuple[Tdmr, ...]:
    """A TDMR list as `tdmr --format json` prints it (the report, or just its 'tdmrs') or as
    `layout_to_json` writes it. Every number is a u64 field of `struct tdmr_info`: a JSON
    integer or a hex string, never a float or a boolean. Errors give the TDMR's line."""
    text = _content(text, name)
    doc = _load_json(text, name)
    if not isinstance(doc, dict) or not isinstance(doc.get("tdmrs"), list):
        raise InputError(name, 1, f"{_LAYOUT_SHAPE}: no 'tdmrs' list at the top level")
    items = doc["tdmrs"]
    lines = _item_lines(text, "tdmrs", len(items))
    return tuple(_layout_tdmr(item, f"tdmrs[{i}]", name, line)
                 for i, (item, line) in enumerate(zip(items, lines, strict=True)))


def _layout_tdmr(item, what: str, name: str, line: int) -> Tdmr:
    if not isinstance(item, dict):
        raise InputError(name, line, f"{_LAYOUT_SHAPE}: {what} is not an object")
    _no_unknown_keys(item, _TDMR_KEYS, what, name, line)
    for key in ("base", "size"):
        if key not in item:
            raise InputError(name, line, f"{_LAYOUT_SHAPE}: {what} has no {key!r}")
    for key in ("nid", "reserved_needed"):  # what `tdmr --format json` adds; not checked
        if key in item:
            _number(item[key], name, line, f"{what}.{key}", MAX_ADDRESS)
    if any(key in item for key in _PER_PAGE):
        missing = [key for key in _PER_PAGE if key not in item]
        if missing:
            raise InputError(name, line, f"{_LAYOUT_SHAPE}: {what} has no {missing[0]!r}")
        bases = [(f"pamt_{n}_base", item[f"pamt_{n}_base"]) for n in _PAGE_SIZES]
        sizes = [(f"pamt_{n}_size", item[f"pamt_{n}_size"]) for n in _PAGE_SIZES]
    else:
        bases = _pamt_list(item, "pamt_bases", what, name, line)
        sizes = _pamt_list(item, "pamt_sizes", what, name, line)
    reserved = item.get("reserved", [])
    if not isinstance(reserved, list):
        raise InputError(name, line, f"{_LAYOUT_SHAPE}: {what}.reserved must be a list")
    return Tdmr(_u64(item["base"], name, line, f"{what}.base"),
                _u64(item["size"], name, line, f"{what}.size"),
                tuple(_u64(v, name, line, f"{what}.{key}") for key, v in bases),
                tuple(_u64(v, name, line, f"{what}.{key}") for key, v in sizes),
                tuple(_layout_area(a, f"{what}.reserved[{j}]", name, line)
                      for j, a in enumerate(reserved)))


def _pamt_list(item: dict, key: str, what: str, name: str, line: int) -> list:
    values = item.get(key, [0, 0, 0])
    if not isinstance(values, list) or len(values) != 3:
        raise InputError(name, line, f"{_LAYOUT_SHAPE}: {what}.{key} must list three numbers "
                         "(4K, 2M, 1G)")
    return [(f"{key}[{i}]", v) for i, v in enumerate(values)]


def _layout_area(area, what: str, name: str, line: int) -> ReservedArea:
    if not isinstance(area, dict) or "offset" not in area or "size" not in area:
        raise InputError(name, line, f"{_LAYOUT_SHAPE}: {what} must be an object with "
                         "'offset' and 'size'")
    _no_unknown_keys(area, ("offset", "size", "kind"), what, name, line)
    kind = area.get("kind", "hole")
    if kind not in _AREA_KINDS:
        raise InputError(name, line, f"{what}.kind: {_short(kind)} is not one of "
                         f"{', '.join(_AREA_KINDS)}")
    return ReservedArea(_u64(area["offset"], name, line, f"{what}.offset"),
                        _u64(area["size"], name, line, f"{what}.size"), kind)


def _u64(value, name: str, line: int, what: str) -> int:
    return _number(value, name, line, what, MAX_ADDRESS)


# --- kernel boot logs -------------------------------------------------------------------------

_E820 = re.compile(r"BIOS-e820: \[mem (\S+?)-(\S+?)\] (.+?)\s*$")
_E820_UPDATE = re.compile(r"e820: update \[mem (\S+?)-(\S+?)\] (.+?) ==> (.+?)\s*$")
_E820_REMOVE = re.compile(r"e820: remove \[mem (\S+?)-(\S+?)\](?: (.+?))?\s*$")
_SRAT = re.compile(r"SRAT: Node (\S+) PXM \S+ \[mem (\S+?)-(\S+?)\]")
_TDX = r"(?:virt/)?tdx: "
_CMR = re.compile(_TDX + r"CMR(?:\[[0-9]+\])?: \[(\S+?), (\S+?)\)")
_PAMT = re.compile(_TDX + r"([0-9]+) KBs? allocated for PAMT")
_KEYID = re.compile(_TDX + r"BIOS enabled: private KeyID range \[([0-9]+), ([0-9]+)\)")
_MODULE = re.compile(_TDX + r"TDX module: .*major_version ([0-9]+), minor_version ([0-9]+)"
                     r"(?:, build_date ([0-9]+), build_num ([0-9]+))?")
_MODULE_VERSION = re.compile(_TDX + r"Module version: ([0-9]+)\.([0-9]+)\.[0-9]+")  # v7.1+
_MODULE_BUILD = re.compile(_TDX + r"TDX module ([0-9]+)\.([0-9]+)\.[0-9]+\.[0-9]+, build number "
                           r"([0-9]+), build date ([0-9a-fA-F]+)")  # Ubuntu's 6.14-intel
_SEAMCALL_FAIL = re.compile(_TDX + r"(SEAMCALL \((0x[0-9a-fA-F]+)\) failed: 0x[0-9a-fA-F]+)")
_INIT_FAILED = re.compile(_TDX + r"(?:module |TDX-Module )?initialization failed "
                          r"\(-([0-9]+)\)")
_CONSTRUCT_FAIL = re.compile(_TDX + r"(initialization failed: .*exhausted\.)")
_NOT_LOADED = re.compile(_TDX + r"(module not loaded)")
_INITIALIZED = re.compile(_TDX + r"(?:module|TDX-Module) initialized")
# What the diagnosis reads: the TDX code's lines (`tdx:` before v6.8, `virt/tdx:` since), KVM's
# TDX lines, the machine-check line about TDX memory and the kexec refusal on erratum parts.
_TDX_LINE = re.compile(r"(?:^|[\s\]])(?:virt/)?tdx: |kvm_intel: .*\bTDX\b|TDX private memory "
                       r"error|tdx_pw_mce")
_COMMAND_LINE = re.compile(r"(?:^|[\s\]])Command line: ")
_TIMESTAMP = re.compile(r"^\s*\[\s*[0-9]+\.[0-9]+\]\s?")
_IOMEM_LINE = re.compile(r"^\s*([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.+?)\s*$")
_HEX_NUMBER = re.compile(r"(?:0[xX])?[0-9a-fA-F]+")
_USABLE_TYPES = ("usable", "reserved-kern")


def _hex(text: str, name: str, line: int, what: str) -> int:
    """A hex number as the kernel prints one (`%#018Lx`, `%08llx`): digits only, no sign."""
    if not _HEX_NUMBER.fullmatch(text):
        raise InputError(name, line, f"{what}: {_short(text)} is not a hexadecimal number")
    value = int(text, 16)
    if value >= MAX_ADDRESS:
        raise InputError(name, line, f"{what}: {_short(text)} does not fit a 64-bit physical "
                         "address")
    return value


def _dec(text: str, name: str, line: int, what: str, limit: int, low: int = 0) -> int:
    """A decimal the kernel printed from a field whose values run from `low` to `limit - 1`."""
    if len(text) > MAX_DIGITS or not low <= int(text) < limit:
        raise InputError(name, line, f"{what}: {_short(text)} is out of range ({low} to "
                         f"{limit - 1})")
    return int(text)


def read_boot_log(text: str, name: str) -> MachineInput:
    """A boot log: e820 (and its updates) and SRAT give memblock memory with nodes; CMR lines
    stand in for it when there is no e820; the tdx lines say what the kernel did."""
    e820: list[tuple[int, int, str, int]] = []  # start, end (exclusive), type, line
    updates: list[tuple[str, int, int, str | None, str, int]] = []
    srat: list[tuple[int, int, int, int]] = []  # start, end, node, line
    cmrs: list[MemRange] = []
    cmr_lines: list[int] = []
    facts: dict = {}
    warnings: list[str] = []
    tdx_lines: list[LogLine] = []
    seamcall_error = construct_error = None
    for number, raw in enumerate(text.split("\n"), 1):  # lines as editors count them
        line = raw.rstrip()
        if _TDX_LINE.search(line):
            tdx_lines.append(LogLine(number, _TIMESTAMP.sub("", line)))
        elif _COMMAND_LINE.search(line) and "command_line" not in facts:
            facts["command_line"] = LogLine(number, _TIMESTAMP.sub("", line))
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
            updates.extend(_e820_change("update", m, name, number))
        elif m := _E820_REMOVE.search(line):
            updates.extend(_e820_change("remove", m, name, number))
        elif "SRAT: Node " in line:
            m = _SRAT.search(line)
            if not m:
                raise InputError(name, number, "malformed SRAT line (expected 'SRAT: Node N "
                                 "PXM M [mem 0xSTART-0xEND]')")
            srat.extend(_srat_block(m, name, number, warnings))
        elif m := _CMR.search(line):
            cmrs.append(MemRange(_hex(m[1], name, number, "CMR start"),
                                 _hex(m[2], name, number, "CMR end")))
            cmr_lines.append(number)
            _check_address(cmrs[-1].end, name, number, "CMR end")
        elif m := _PAMT.search(line):
            facts["pamt_kb"] = _dec(m[1], name, number, "PAMT KB", MAX_ADDRESS)
        elif m := _KEYID.search(line):
            facts["keyid_range"] = (_dec(m[1], name, number, "KeyID", U32),
                                    _dec(m[2], name, number, "KeyID", U32))
        elif m := _MODULE.search(line):
            facts["module"] = _module_info(m, name, number)
        elif m := _MODULE_VERSION.search(line):
            facts["module"] = ModuleInfo(_dec(m[1], name, number, "major version", U16),
                                         _dec(m[2], name, number, "minor version", U16))
        elif m := _MODULE_BUILD.search(line):
            facts["module"] = ModuleInfo(_dec(m[1], name, number, "major version", U16),
                                         _dec(m[2], name, number, "minor version", U16), m[4],
                                         _dec(m[3], name, number, "build number", U16))
        elif m := _SEAMCALL_FAIL.search(line):
            seamcall_error = seamcall_error or KernelError(-EIO, m[1])
        elif m := _CONSTRUCT_FAIL.search(line):
            construct_error = m[1]
        elif m := _NOT_LOADED.search(line):
            seamcall_error = seamcall_error or KernelError(-ENODEV, m[1])
        elif m := _INIT_FAILED.search(line):
            facts["errno"] = -_dec(m[1], name, number, "errno", MAX_ERRNO + 1, 1)
        elif _INITIALIZED.search(line):
            facts["initialized"] = True
    _check_ranges(cmrs, cmr_lines, name, "CMR")
    _check_cmrs(cmrs, cmr_lines, name)
    logged = LoggedFacts(facts.get("pamt_kb"), facts.get("keyid_range"), facts.get("module"),
                         _logged_error(facts.get("errno"), construct_error, seamcall_error),
                         facts.get("initialized", False), tuple(tdx_lines),
                         facts.get("command_line"))
    if e820:
        return _checked(_e820_machine(name, e820, updates, srat, cmrs, logged, warnings))
    if cmrs:
        note = (f"no BIOS-e820 lines: the {len(cmrs)} CMRs stand in for the memory map. "
                "This is a 1 GiB-granular approximation: TDMRs and PAMT sizes match the "
                "kernel's, reserved holes may not")
        machine = MachineInput(name, "boot-log", tuple(cmrs), tuple(cmr_lines), tuple(cmrs),
                               memory_from_cmrs=True, logged=logged, notes=(note,),
                               warnings=tuple(warnings))
        return _checked(machine)
    said = f" (the log says: {logged.error.message})" if logged.error and logged.error.message \
        else ""
    raise NoMemoryMap(name, "no memory map in this log: expected BIOS-e820, CMR or "
                      f"/proc/iomem 'System RAM' lines{said}", logged)


def _module_info(m: re.Match, name: str, line: int) -> ModuleInfo:
    """The module's version fields: 16 bits each, the build date 32 (`struct tdx_sys_info`)."""
    if m[3]:
        _dec(m[3], name, line, "build_date", U32)
    return ModuleInfo(_dec(m[1], name, line, "major_version", U16),
                      _dec(m[2], name, line, "minor_version", U16), m[3] or "",
                      _dec(m[4] or "0", name, line, "build_num", U16))


def _e820_machine(name, e820, updates, srat, cmrs, logged, warnings) -> MachineInput:
    """Memblock memory from the e820 table: its updates applied, the usable entries merged
    where they touch, split at SRAT node boundaries."""
    table = _apply_e820_updates(e820, updates, name)
    usable = [(t.start, t.end, t.line) for t in table if t.kind in _USABLE_TYPES]
    if not usable:
        line = updates[-1][5] if updates else e820[0][3]
        raise InputError(name, line, "the e820 map has no usable memory"
                         + (" once its updates are applied" if updates else ""))
    for _, end, line in usable:
        _check_address(end, name, line, "usable e820 memory ends at")
    merged = _merge_adjacent(usable)
    warnings.extend(_pageless_warnings([MemRange(s, e) for s, e, _ in merged],
                                       [ln for _, _, ln in merged], name, "usable e820 range"))
    regions, lines, srat_note = _assign_nodes(merged, srat, name, warnings)
    note = (f"{len(regions)} memblock ranges from {len(e820)} BIOS-e820 lines"
            + (f" ({len(updates)} e820 updates applied)" if updates else "") + srat_note)
    return MachineInput(name, "boot-log", tuple(regions), tuple(lines), tuple(cmrs),
                        logged=logged, notes=(note,), warnings=tuple(warnings),
                        firmware_map=tuple(table))


def _e820_change(action: str, m: re.Match, name: str, line: int) -> list:
    """An `e820: update` or `e820: remove` line. The kernel prints `start` and `start + size -
    1`, so an empty change (size 0) reads one byte reversed and changes nothing; a range
    reversed further cannot come from the kernel."""
    start, last = _hex(m[1], name, line, f"e820 {action} start"), _hex(m[2], name, line,
                                                                         f"e820 {action} end")
    if last + 1 == start:
        return []
    if last < start:
        raise InputError(name, line, f"e820 {action} range ends (0x{last:x}) before it starts "
                         f"(0x{start:x})")
    return [(action, start, last + 1, m[3], m[4] if action == "update" else "", line)]


def _srat_block(m: re.Match, name: str, line: int, warnings: list[str]) -> list:
    """A `SRAT: Node N PXM M [mem a-b]` line. The kernel prints `base + length - 1` as b, so a
    zero-length block reads one byte reversed and a block whose length wraps past 2^64 reads
    reversed further; `numa_add_memblk` ignores both (the second with a warning), as here."""
    if not re.fullmatch("[0-9]+", m[1]):
        raise InputError(name, line, f"SRAT node {_short(m[1])} is not a node number")
    nid = _dec(m[1], name, line, "SRAT node", MAX_NUMNODES)
    start, last = _hex(m[2], name, line, "SRAT start"), _hex(m[3], name, line, "SRAT end")
    if last + 1 == start:
        return []
    if last < start:
        warnings.append(_at(name, line, f"SRAT block of node {nid} ends (0x{last:x}) before it "
                            f"starts (0x{start:x}): the kernel ignores it (invalid memblk)"))
        return []
    return [(start, last + 1, nid, line)]


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


def _apply_e820_updates(e820, updates, name) -> list[FirmwareEntry]:
    """Apply `e820: update` (retype) and `e820: remove` lines in log order."""
    ordered = sorted(e820)
    for i in range(1, len(ordered)):
        prev, cur = ordered[i - 1], ordered[i]
        if cur[0] < prev[1]:
            raise InputError(name, cur[3], f"e820 entry [mem 0x{cur[0]:x}-0x{cur[1] - 1:x}] "
                             f"overlaps the entry on line {prev[3]}")
    segments = [FirmwareEntry(s, e, kind, ln) for s, e, kind, ln in ordered]
    for action, start, end, old, new, line in updates:
        out = []
        for seg in segments:
            matches = old is None or seg.kind == old.strip()
            if seg.end <= start or seg.start >= end or not matches:
                out.append(seg)
                continue
            if seg.start < start:
                out.append(replace(seg, end=start))
            if action == "update":
                out.append(FirmwareEntry(max(seg.start, start), min(seg.end, end), new.strip(),
                                         seg.line, line))
            if seg.end > end:
                out.append(replace(seg, start=end))
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


def _assign_nodes(ranges, srat, name: str, warnings: list[str]):
    """Split memory at SRAT node boundaries, as memblock_set_node does, and merge touching
    pieces of the same node. Without SRAT lines, or with a SRAT the kernel rejects, everything
    is node 0."""
    if not srat:
        return [MemRange(s, e, 0) for s, e, _ in ranges], [ln for _, _, ln in ranges], ""
    blocks = _numa_blocks(ranges, srat, name, warnings)
    if blocks is None:
        return ([MemRange(s, e, 0) for s, e, _ in ranges], [ln for _, _, ln in ranges],
                ", SRAT rejected: all memory on node 0")
    starts = [s for s, _, _ in blocks]
    pieces: list[tuple[MemRange, int]] = []
    uncovered = 0
    for start, end, line in ranges:
        pos = start
        while pos < end:
            i = bisect_right(starts, pos) - 1
            if i >= 0 and blocks[i][1] > pos:
                stop, nid = min(end, blocks[i][1]), blocks[i][2]
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


def _numa_blocks(ranges, srat, name: str, warnings: list[str]):
    """The SRAT blocks as `numa_cleanup_meminfo` leaves them: those without memory set aside,
    ends clipped to the end of memory, overlapping blocks of one node merged (with the kernel's
    warning). Blocks of two nodes that overlap make it fail, and x86 then fakes a single node
    (`dummy_numa_init`): None, with a warning."""
    ends, high = [e for _, e, _ in ranges], ranges[-1][1]
    blocks: list[tuple[int, int, int]] = []
    reach: dict[int, tuple[int, int, int]] = {}  # node -> the furthest-reaching block so far
    for start, end, nid, line in sorted(srat):
        i = bisect_right(ends, start)
        if i == len(ranges) or ranges[i][0] >= end:
            continue
        end = min(end, high)
        for other, (o_start, o_end, o_line) in reach.items():
            if o_end <= start:
                continue
            if other != nid:
                warnings.append(_at(name, line, f"SRAT: node {nid} [mem 0x{start:x}-0x"
                                    f"{end - 1:x}] overlaps node {other} [mem 0x{o_start:x}-"
                                    f"0x{o_end - 1:x}] (line {o_line}): the kernel rejects the "
                                    "SRAT (numa_cleanup_meminfo) and puts all memory on node 0"))
                return None
            warnings.append(_at(name, line, f"SRAT: node {nid} [mem 0x{start:x}-0x{end - 1:x}] "
                                f"overlaps itself (line {o_line}): the kernel merges the two"))
        if nid not in reach or reach[nid][1] < end:
            reach[nid] = (start, end, line)
        if blocks and blocks[-1][2] == nid and start < blocks[-1][1]:
            blocks[-1] = (blocks[-1][0], max(end, blocks[-1][1]), nid)
        else:
            blocks.append((start, end, nid))
    return blocks


# --- /proc/iomem ------------------------------------------------------------------------------

def read_iomem(text: str, name: str) -> MachineInput:
    """Top-level `System RAM` lines of /proc/iomem (inclusive ends, no 0x) on node 0."""
    ranges: list[MemRange] = []
    lines: list[int] = []
    for number, line in enumerate(text.split("\n"), 1):
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
        _check_address(last + 1, name, number, "System RAM ends at")
        ranges.append(MemRange(start, last + 1))
        lines.append(number)
    if not ranges:
        raise InputError(name, 0, "no 'System RAM' lines in /proc/iomem")
    _check_ranges(ranges, lines, name, "System RAM")
    merged = _merge_adjacent([(r.start, r.end, ln) for r, ln in zip(ranges, lines,
                                                                     strict=True)])
    regions = [MemRange(s, e) for s, e, _ in merged]
    merged_lines = [ln for _, _, ln in merged]
    notes = (f"{len(regions)} memory ranges from {len(ranges)} System RAM lines; "
             "/proc/iomem has no NUMA nodes: all on node 0",)
    warnings = _pageless_warnings(regions, merged_lines, name, "System RAM range")
    return _checked(MachineInput(name, "iomem", tuple(regions), tuple(merged_lines),
                                 notes=notes, warnings=tuple(warnings)))
