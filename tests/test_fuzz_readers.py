"""Fuzzing the readers in process: boot logs, /proc/iomem copies, JSON maps and --check-layout
files, 2,000 examples each at a fixed seed. Inputs are near-valid: the real line formats and
keys with edited numbers (boundaries, signs, underscores, 4,301 digits), byte-order marks, cuts
and deep nesting. Whatever the input, it is read or refused with an InputError that names the
file and a line of it, and what is read is what the model takes (`construct_tdmrs`, also with
the int32 bug profile, and `check_layout`) without any other exception.

Lines, regions and TDMRs are drawn whole from pools built once from a seeded generator: drawing
every number would cost Hypothesis far more than reading the input costs us."""

from __future__ import annotations

import json
import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.inputs.readers import (
    MAX_PHYS_ADDRESS,
    InputError,
    MachineInput,
    parse_input,
    read_layout_json,
)
from invariants.layout import check_layout
from spec.memory import MemRange, build_tdx_memlist
from spec.profiles import get_profile
from spec.sysinfo import TdxSysinfo
from spec.tdmr import construct_tdmrs, fill_out_tdmrs

FUZZ = settings(max_examples=2000, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
PROFILES = (get_profile("v6.8"), get_profile("bug-pamt-entries-int32"))
BOM = "\ufeff"
G = 1 << 30

# --- numbers and ranges as the kernel prints them, and as a hostile user edits them ---------------

ADDRESSES = [0, 0x9FFFF, 0xA0000, 0xFFFFF, 0x100000, 0x100100, 0x100FFF, 0x101000, G - 1, G,
             2 * G - 1, 2 * G, 4 * G - 1, 4 * G, 6 * G - 1, (1 << 52) - 1, 1 << 52,
             (1 << 64) - 1, 1 << 64]
# Half-open ranges: real ones (thrice as likely), one without a whole page, reversed, empty,
# up to 2^52, past it, to 2^64.
RANGES = 3 * [(0, 0xA0000), (0xA0000, 0x100000), (0x100000, 2 * G), (2 * G, 4 * G),
              (4 * G, 6 * G), (G, 5 * G)] + [
    (0x100100, 0x100F00), (2 * G + 0x100, 2 * G + 0xF00), (3 * G, G), (G, G),
    ((1 << 52) - G, 1 << 52), ((1 << 52) - G, (1 << 52) + G), ((1 << 64) - 0x1000, 1 << 64),
    (0, 1 << 64)]
ODD = ["0x" + "f" * 4301, "0x", "zz", "٣", "0x10 0000"]
DECIMALS = ["0", "1", "3", "1023", "1024", "4095", "4096", "65535", "65536", "4294967295",
            "4294967296", "100000000000000000000", "9" * 4301, "-1", "1e5", "٣", "²"]
E820_TYPES = ["usable", "reserved", "ACPI NVS", "ACPI data", "reserved-kern",
              "persistent (type 12)", "unusable", ""]
RNG = random.Random(2024)


def _hex(value: int, plain: bool = False) -> str:
    """Mostly as the kernel prints it (`%#018Lx`, or `%08llx` in /proc/iomem); else edited."""
    if RNG.random() < (0.96 if plain else 0.9):
        return f"{value:08x}" if plain else f"0x{value:016x}"
    return RNG.choice([f"0x{value:x}", f"{value:08x}", f"-0x{value:x}", f"+0x{value:x}",
                       f"0x{value:_x}", str(value), f"0X{value:X}", *ODD])


def _span(plain: bool = False) -> tuple[str, str]:
    """An inclusive [a-b] pair: mostly one of RANGES, sometimes any two addresses."""
    start, end = RNG.choice(RANGES) if RNG.random() < 0.85 else (RNG.choice(ADDRESSES),
                                                                  RNG.choice(ADDRESSES) + 1)
    return _hex(start, plain), _hex(max(end - 1, 0), plain)


def _log_line() -> str:
    a, b = _span()
    n = RNG.choice(DECIMALS) if RNG.random() < 0.2 else str(RNG.randrange(4))
    line = RNG.choice(3 * [f"BIOS-e820: [mem {a}-{b}] usable", f"ACPI: SRAT: Node {n} PXM {n} "
                           f"[mem {a}-{b}]"] + [
        f"BIOS-e820: [mem {a}-{b}] {RNG.choice(E820_TYPES)}",
        f"e820: update [mem {a}-{b}] usable ==> {RNG.choice(E820_TYPES)}",
        f"e820: remove [mem {a}-{b}] {RNG.choice(E820_TYPES)}",
        f"e820: remove [mem {a}-{b}]",
        f"ACPI: SRAT: Node {n} PXM {n} [mem {a}-{b}]",
        f"ACPI: SRAT: Node {n} PXM {n} [mem {a}-{b}] hotplug",
        f"ACPI: SRAT: Node {n} PXM 0 [mem {a}]",
        f"virt/tdx: CMR: [{a}, {b})",
        f"tdx: CMR[{n}]: [{a}, {b})",
        f"virt/tdx: {RNG.choice(DECIMALS)} KB allocated for PAMT",
        f"virt/tdx: BIOS enabled: private KeyID range [{RNG.choice(DECIMALS)}, "
        f"{RNG.choice(DECIMALS)})",
        f"virt/tdx: TDX module: attributes 0x0, vendor_id 0x8086, major_version "
        f"{RNG.choice(DECIMALS)}, minor_version {n}, build_date {RNG.choice(DECIMALS)}, "
        f"build_num {RNG.choice(DECIMALS)}",
        f"virt/tdx: module initialization failed (-{RNG.choice(DECIMALS)})",
        "virt/tdx: module initialized", "virt/tdx: module not loaded",
        "virt/tdx: SEAMCALL (0x0000000000000022) failed: 0xc000050500000000",
        "virt/tdx: initialization failed: TDMRs exhausted.",
        f"BIOS-e820: [mem {a}] usable", "\x0c", "\u2028", "tdx: ", "",
    ])
    return RNG.choice(["", "[    0.000000] ", "[   12.345678] "]) + line


def _e820(start: int, end: int, kind: str = "usable") -> str:
    return f"BIOS-e820: [mem 0x{start:016x}-0x{end - 1:016x}] {kind}"


LOG_LINES = [_log_line() for _ in range(600)]
LOG_SHAPES = [(base, bom, eol) for base in ("after", "before", "none") for bom in ("", BOM)
              for eol in ("\n", "\r\n")]
BASE_LOG = [_e820(0, 0xA0000), _e820(0xA0000, 0x100000, "reserved"), _e820(0x100000, 2 * G),
            _e820(2 * G, 4 * G, "reserved"), _e820(4 * G, 6 * G)]


@st.composite
def boot_logs(draw) -> str:
    """Pool lines after, before or without a small real map (memory on both sides of 4 GiB)."""
    lines = draw(st.lists(st.sampled_from(LOG_LINES), max_size=6))
    base, bom, eol = draw(st.sampled_from(LOG_SHAPES))
    lines = {"after": BASE_LOG + lines, "before": lines + BASE_LOG, "none": lines}[base]
    return bom + eol.join(lines)


def _iomem_line() -> str:
    a, b = _span(plain=True)
    name = RNG.choice(["System RAM"] * 8 + ["Reserved", "ACPI Tables", "PCI Bus 0000:00",
                                            "System RAM ", "System  RAM"])
    return RNG.choice(["", "", "", "", "", "  "]) + f"{a}-{b} : {name}"


IOMEM_LINES = [_iomem_line() for _ in range(400)] + ["00000000-00000000 : System RAM", "junk"]


IOMEM_BASE = ["00000000-00000fff : Reserved", "00001000-0009ffff : System RAM",
              "000a0000-000fffff : Reserved", "00100000-7fffffff : System RAM",
              "  01000000-01ffffff : Kernel code", "80000000-ffffffff : PCI Bus 0000:00",
              "100000000-17fffffff : System RAM"]


@st.composite
def iomem_texts(draw) -> str:
    """Pool lines, alone or among the lines of a real /proc/iomem, in address order."""
    lines = draw(st.lists(st.sampled_from(IOMEM_LINES), min_size=1, max_size=4))
    if draw(st.booleans()):
        lines = lines[:2] + IOMEM_BASE
    lines.sort(key=lambda line: line.strip().zfill(40))
    return draw(st.sampled_from(["", BOM])) + "\n".join(lines) + "\n"


# --- JSON maps and TDMR lists --------------------------------------------------------------------

VALUES = [None, True, False, -1, -4096, 0.5, 1048576.0, float("inf"), 10 ** 20, 1 << 64, [], {},
          "", "0x10_0000", " 0x100000", "١٠", "-0x1000", "0x" + "f" * 4301, "1048576",
          "0x100000", 0x100000, "0x40000000", 2 * G, 1023, 1024, 70000, "hole", "spare"]


def _regions() -> list[dict]:
    """Sorted, disjoint regions above 1 MiB (a few without a whole page) on nodes 0-3."""
    pos, regions = 0x100000, []
    for _ in range(RNG.randrange(1, 6)):
        start = pos + RNG.choice([0, 0x1000, 0x100, G, 3 * G])
        end = start + RNG.choice([0x1000, 0xE00, G, 2 * G, 0x40000000 + 0x800])
        regions.append({"start": hex(start), "end": RNG.choice([hex(end), end]),
                        "nid": RNG.randrange(4)})
        pos = end
    return regions


REGION_LISTS = [_regions() for _ in range(40)]
METADATA = [{}, {"max_tdmrs": 1}, {"max_tdmrs": 64, "max_reserved_per_tdmr": 16,
                                   "pamt_entry_size": [16, 16, 16]},
            {"max_reserved_per_tdmr": 0}, {"pamt_entry_size": [8, 32, 64]},
            {"max_tdmrs": 0}, {"max_tdmrs": 65536}, {"max_tdmrs": 64.0}, {"max_tdmrs": True},
            {"pamt_entry_size": [16, 16]}, {"pamt_entry_size": "abc"},
            {"pamt_entry_size": [8, 0, 8]}, {"colour": 1}, []]
PAMT_BASES = [[], ["0x40000000"], ["0x40000000", "0x100000000"], ["0x1000"] * 5, [True],
              ["0x1_000"], "0x40000000", [1 << 60], [0x40000000, -1]]


@st.composite
def json_maps(draw) -> dict:
    """A sorted region list, perhaps with its CMRs, metadata or PAMT bases from a pool (some of
    them wrong), and at most one edit: a field of a region or CMR set to a pool value (or a
    key added), or a stray top-level key."""
    regions = json.loads(json.dumps(draw(st.sampled_from(REGION_LISTS))))
    doc: dict = {"regions": regions}
    extra = draw(st.sampled_from(["", "", "cmrs", "metadata", "pamt_bases", "comment"]))
    if extra == "cmrs":
        doc["cmrs"] = [{"start": r["start"], "end": r["end"]} for r in regions]
    elif extra in ("metadata", "pamt_bases"):
        doc[extra] = draw(st.sampled_from(METADATA if extra == "metadata" else PAMT_BASES))
    elif extra == "comment":
        doc["comment"] = "a map"
    edit = draw(st.sampled_from(["", "", "", "region", "cmr", "stray"]))
    if edit == "region" or (edit == "cmr" and "cmrs" in doc):
        items = regions if edit == "region" else doc["cmrs"]
        items[draw(st.integers(0, len(items) - 1))][
            draw(st.sampled_from(["start", "end", "nid", "pxm"]))] = draw(st.sampled_from(VALUES))
    elif edit == "stray":
        doc["extra"] = 1
    return doc


LAYOUT = json.loads((Path(__file__).parent / "malformed" / "readers" / "layout-valid.json")
                    .read_text())["tdmrs"][0]
LAYOUT_AS_LISTS = {"base": LAYOUT["base"], "size": LAYOUT["size"],
                   "pamt_bases": [LAYOUT[f"pamt_{n}_base"] for n in ("4k", "2m", "1g")],
                   "pamt_sizes": [LAYOUT[f"pamt_{n}_size"] for n in ("4k", "2m", "1g")],
                   "reserved": LAYOUT["reserved"]}
LAYOUT_KEYS = sorted({*LAYOUT, *LAYOUT_AS_LISTS, "colour"})


@st.composite
def layouts(draw) -> dict:
    """TDMRs as `tdmr --format json` prints them for a 2 GiB machine, or as `layout_to_json`
    writes them, each with at most one edit: a key set to a pool value or dropped, or a field
    of its first reserved area set."""
    tdmrs = []
    for _ in range(draw(st.integers(0, 3))):
        item = json.loads(json.dumps(draw(st.sampled_from([LAYOUT, LAYOUT_AS_LISTS]))))
        edit = draw(st.sampled_from(["", "", "key", "drop", "area"]))
        if edit == "key":
            item[draw(st.sampled_from(LAYOUT_KEYS))] = draw(st.sampled_from(VALUES))
        elif edit == "drop":
            item.pop(draw(st.sampled_from(LAYOUT_KEYS)), None)
        elif edit == "area":
            item["reserved"][0][draw(st.sampled_from(["offset", "size", "kind", "why"]))] = \
                draw(st.sampled_from(VALUES))
        tdmrs.append(item)
    return {"tdmrs": tdmrs}


@st.composite
def json_texts(draw, documents) -> str:
    """A document as JSON text, indented or not, perhaps behind a BOM, cut short, nested deep,
    with a 4,301-digit integer or with a key given twice."""
    text = json.dumps(draw(documents), indent=draw(st.sampled_from([None, 2])))
    edit = draw(st.sampled_from(["none"] * 6 + ["bom", "cut", "deep", "digits", "twice"]))
    if edit == "bom":
        text = BOM + text
    elif edit == "cut":
        text = text[:draw(st.integers(0, len(text)))]
    elif edit == "deep":
        depth = draw(st.sampled_from([30, 33, 5000]))
        text = text[:-1] + ', "comment": ' + "[" * depth + "]" * depth + "}"
    elif edit == "digits":
        text = text.replace('"0x', "1" * 4301 + ', "x": "0x', 1)
    elif edit == "twice":
        text = text[:-1] + ', "regions": [], "tdmrs": []}'
    return text


# --- what every read must give --------------------------------------------------------------------


def _refused_properly(exc: InputError, name: str, text: str) -> None:
    assert exc.file == name
    assert str(exc).startswith(f"{name}:") and exc.problem
    assert 0 <= exc.line <= text.count("\n") + 1


def _read_machine(name: str, text: str) -> MachineInput | None:
    try:
        machine = parse_input(text, name)
    except InputError as exc:
        _refused_properly(exc, name, text)
        return None
    memlist = build_tdx_memlist(machine.regions)
    assert memlist, "what is read gives TDX memory"
    assert all(r.start < r.end <= MAX_PHYS_ADDRESS for r in machine.regions)
    assert all(a.end <= b.start for a, b in zip(machine.regions, machine.regions[1:],
                                                strict=False))
    assert all(w.startswith(f"{name}:") for w in machine.warnings)
    if machine.pamt_bases is not None:
        filled = fill_out_tdmrs(memlist, TdxSysinfo(max_tdmrs=len(memlist)), [])
        assert len(machine.pamt_bases) <= len(filled)
    for profile in PROFILES:
        construct_tdmrs(memlist, machine.sysinfo or TdxSysinfo(), profile=profile)
    return machine


@FUZZ
@given(text=boot_logs())
def test_boot_logs_are_read_or_refused_by_line(text):
    _read_machine("dmesg.log", text)


@FUZZ
@given(text=iomem_texts())
def test_iomem_is_read_or_refused_by_line(text):
    _read_machine("iomem.txt", text)


@FUZZ
@given(text=json_texts(json_maps()))
def test_json_maps_are_read_or_refused_by_line(text):
    machine = _read_machine("map.json", text)
    assert machine is None or machine.kind == "json"


MACHINE = build_tdx_memlist([MemRange(0x100000, 2 * G)])


@FUZZ
@given(text=json_texts(layouts()))
def test_layouts_are_read_or_refused_by_line(text):
    try:
        tdmrs = read_layout_json(text, "tdmrs.json")
    except InputError as exc:
        _refused_properly(exc, "tdmrs.json", text)
        return
    for t in tdmrs:
        assert all(isinstance(v, int) and 0 <= v < 1 << 64
                   for v in (t.base, t.size, *t.pamt_bases, *t.pamt_sizes))
    check_layout(tdmrs, MACHINE)
