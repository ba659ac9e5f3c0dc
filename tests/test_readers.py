"""Readers: real boot logs give exact figures; generated inputs round-trip; bad input names the
line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from checker.inputs.readers import InputError, NoMemoryMap, read_input
from spec.errno import EIO, ENODEV, ENOSPC
from spec.memory import MemRange, build_tdx_memlist

LOGS = Path(__file__).parent.parent / "checker" / "data" / "boot-logs"


def write(tmp_path: Path, text: str | bytes, name: str = "input") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


# --- real logs ------------------------------------------------------------------------------

@pytest.mark.parametrize("log, cmrs, pamt_kb, keyids", [
    ("spr-8480c-256g.log", 3, 1050636, (64, 128)),
    ("2s-512g.log", 3, 2101260, (32, 64)),
    ("4node-1t-6.5.log", 5, 4202516, (16, 32)),
    ("emr-fcp-6.8.0-1006-intel.log", 5, 1050644, (32, 64)),
])
def test_cmr_logs_are_read_with_their_figures(log, cmrs, pamt_kb, keyids):
    machine = read_input(LOGS / log)
    assert len(machine.cmrs) == cmrs
    assert machine.memory_from_cmrs and machine.regions == machine.cmrs
    assert machine.logged.pamt_kb == pamt_kb
    assert machine.logged.keyid_range == keyids
    assert machine.logged.module.version == "1.5"
    assert machine.logged.initialized
    assert "1 GiB-granular approximation" in machine.notes[0]


def test_e820_log_gives_sixteen_usable_ranges_and_the_logged_failure():
    machine = read_input(LOGS / "emr-fcp-e820-first-2g.log")
    # 17 usable e820 entries, none adjacent; the first lies wholly below 1 MiB.
    assert len(machine.regions) == 17
    assert machine.regions[1] == MemRange(0x100000, 0x5D169000, 0)
    assert machine.regions[-1] == MemRange(0x6F7FF000, 0x6F800000, 0)
    assert machine.lines[1] == 3  # the BIOS-e820 line it came from
    assert machine.logged.error.errno == -ENOSPC
    assert machine.logged.error.message == (
        "initialization failed: TDMR [0x0, 0x80000000): reserved areas exhausted.")
    assert not machine.cmrs


def test_module_1_0_log():
    machine = read_input(LOGS / "tdx-1.0-module-fail.log")
    assert machine.logged.module.version == "1.0"
    assert machine.logged.error.errno == -EIO
    assert machine.logged.error.message == (
        "SEAMCALL (0x0000000000000022) failed: 0xc000050500000000")


@pytest.mark.parametrize("log, said", [
    ("r760-module-not-loaded.log", "module not loaded"),
    ("seamcall-0x21-fail.log", "SEAMCALL (0x0000000000000021) failed: 0xc000090000000000"),
])
def test_logs_without_memory_map_are_an_input_error_that_says_what_was_logged(log, said):
    with pytest.raises(InputError) as err:
        read_input(LOGS / log)
    assert "no memory map" in str(err.value) and said in str(err.value)


def test_logged_errno_mapping(tmp_path):
    text = "virt/tdx: CMR: [0x100000, 0x80000000)\nvirt/tdx: module not loaded\n"
    assert read_input(write(tmp_path, text)).logged.error.errno == -ENODEV


def test_a_log_without_memory_map_still_says_what_it_logged():
    """The refusal keeps the log's TDX lines, as printed and numbered, for the diagnosis."""
    with pytest.raises(NoMemoryMap) as err:
        read_input(LOGS / "td-partitioning-firmware-bug.log")
    assert err.value.line == 0
    assert [(x.line, x.text) for x in err.value.logged.lines] == [
        (1, "tdx: BIOS enabled: private KeyID range [32, 64)"),
        (2, "tdx: [firmware bug]: TDX is not enabled by BIOS."),
        (3, "tdx: initialization failed (-19)"),
        (4, "kvm_intel: Failed to initialize TDX module.")]
    assert err.value.logged.error.errno == -ENODEV


def test_tdx_lines_and_the_command_line_are_kept_and_nothing_else(tmp_path):
    text = "\n".join([
        "[    0.000000] Command line: BOOT_IMAGE=/vmlinuz ro kvm_intel.tdx=1 nohibernate",
        "[    1.496613] smpboot: CPU0: Intel(R) Xeon(R) Platinum 8480CTDX (family: 0x6)",
        e820(0x100000, 0x80000000),
        "[    9.1] virt/tdx: Module version: 1.5.06",
        "mce: [Hardware Error]: Machine check: TDX private memory error. Possible kernel bug.",
        "[   11.746190] virt/tdx: TDX-Module initialized"])
    machine = read_input(write(tmp_path, text))
    assert machine.logged.command_line.line == 1
    assert "nohibernate" in machine.logged.command_line.text
    assert [x.line for x in machine.logged.lines] == [4, 5, 6]
    assert machine.logged.lines[0].text == "virt/tdx: Module version: 1.5.06"
    assert machine.logged.module.version == "1.5" and machine.logged.initialized


def test_later_kernels_failure_line_gives_the_errno(tmp_path):
    text = "virt/tdx: CMR: [0x100000, 0x80000000)\nvirt/tdx: TDX-Module initialization failed (-22)"
    assert read_input(write(tmp_path, text)).logged.error.errno == -22


def test_the_firmware_map_keeps_each_entry_s_line_and_the_update_that_retyped_it(tmp_path):
    text = "\n".join([e820(0x100000, 0x500000), e820(0x500000, 0x600000, "ACPI data"),
                      "e820: update [mem 0x00200000-0x002fffff] usable ==> reserved"])
    table = read_input(write(tmp_path, text)).firmware_map
    assert [(t.start, t.end, t.kind, t.line, t.updated_at) for t in table] == [
        (0x100000, 0x200000, "usable", 1, None), (0x200000, 0x300000, "reserved", 1, 3),
        (0x300000, 0x500000, "usable", 1, None), (0x500000, 0x600000, "ACPI data", 2, None)]


def test_standard_input(monkeypatch):
    import io
    import sys

    data = (LOGS / "emr-fcp-e820-first-2g.log").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    machine = read_input("-")
    assert machine.source == "<stdin>" and len(machine.regions) == 17
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x\nBIOS-e820: zz\n")))
    with pytest.raises(InputError, match="^<stdin>:2: malformed BIOS-e820 line"):
        read_input("-")


COUNTEREXAMPLES = Path(__file__).parent.parent / "counterexamples"


def test_a_counterexample_file_is_read_as_the_map_it_holds():
    path = next(COUNTEREXAMPLES.glob("rsvd-exhausted-*.json"))
    doc = json.loads(path.read_text())
    machine = read_input(path)
    assert machine.kind == "counterexample"
    assert [{"start": hex(r.start), "end": hex(r.end), "nid": r.nid}
            for r in machine.regions] == doc["counterexample"]["map"]["regions"]
    lines = path.read_text().splitlines()  # the first region opens on the line after "regions"
    assert machine.lines[0] == next(i for i, line in enumerate(lines) if '"regions"' in line) + 2
    assert machine.notes[0].startswith("the memory map of counterexample counterexample/rsvd-")


def test_a_counterexample_s_bad_map_is_refused_at_the_file_s_line(tmp_path):
    path = next(COUNTEREXAMPLES.glob("rsvd-exhausted-*.json"))
    lines = path.read_text().splitlines()
    where = next(i for i, line in enumerate(lines) if '"0x806000"' in line)
    lines[where] = lines[where].replace('"0x806000"', '"0x4_000"')
    bad = write(tmp_path, "\n".join(lines), "cex.json")
    # a region's problems are reported at the line its object opens, the line above "end"
    with pytest.raises(InputError, match=f"^{bad}:{where}: regions\\[0\\].end"):
        read_input(bad)


def test_a_trace_counterexample_is_no_map():
    path = next(COUNTEREXAMPLES.glob("flow--*.json"))
    with pytest.raises(InputError, match="holds a trace, not a memory map: `replay"):
        read_input(path)


# --- e820 semantics -------------------------------------------------------------------------

def e820(start: int, end: int, kind: str = "usable", stamp: bool = True) -> str:
    prefix = "[    0.000000] " if stamp else ""
    return f"{prefix}BIOS-e820: [mem 0x{start:016x}-0x{end - 1:016x}] {kind}"


def test_adjacent_usable_ranges_merge_and_updates_apply(tmp_path):
    text = "\n".join([
        e820(0x100000, 0x200000), e820(0x200000, 0x400000),  # touching: one region
        e820(0x400000, 0x500000, "ACPI NVS"),
        e820(0x500000, 0x900000),
        "[    0.000000] e820: update [mem 0x00600000-0x006fffff] usable ==> reserved",
        "[    0.000000] e820: remove [mem 0x00800000-0x008fffff] usable",
    ])
    machine = read_input(write(tmp_path, text))
    assert machine.regions == (MemRange(0x100000, 0x400000), MemRange(0x500000, 0x600000),
                               MemRange(0x700000, 0x800000))
    assert "2 e820 updates applied" in machine.notes[0]


def test_srat_splits_at_node_boundaries(tmp_path):
    text = "\n".join([
        e820(0x100000, 0x300000000),
        "ACPI: SRAT: Node 0 PXM 0 [mem 0x00000000-0x17fffffff]",
        "ACPI: SRAT: Node 1 PXM 1 [mem 0x180000000-0x2ffffffff] hotplug",
    ])
    machine = read_input(write(tmp_path, text))
    assert machine.regions == (MemRange(0x100000, 0x180000000, 0),
                               MemRange(0x180000000, 0x300000000, 1))
    assert machine.nodes == [0, 1]


def test_reserved_kern_is_memory_and_other_types_are_holes(tmp_path):
    text = "\n".join([e820(0x100000, 0x200000, "reserved-kern"),
                      e820(0x200000, 0x300000, "persistent (type 12)"),
                      e820(0x300000, 0x400000)])
    assert read_input(write(tmp_path, text)).regions == (MemRange(0x100000, 0x200000),
                                                         MemRange(0x300000, 0x400000))


def test_iomem(tmp_path):
    text = ("00000000-00000fff : Reserved\n00001000-0009efff : System RAM\n"
            "00100000-5d168fff : System RAM\n  01000000-01ffffff : Kernel code\n"
            "100000000-107fffffff : System RAM\n")
    machine = read_input(write(tmp_path, text))
    assert machine.kind == "iomem"
    assert machine.regions == (MemRange(0x1000, 0x9F000), MemRange(0x100000, 0x5D169000),
                               MemRange(0x100000000, 0x1080000000))


def test_iomem_read_without_root_is_explained(tmp_path):
    with pytest.raises(InputError, match="as root"):
        read_input(write(tmp_path, "00000000-00000000 : System RAM\n"))


# --- firmware input the kernel carries on with: read as it reads it, with a warning ----------

TWO_NODES = [e820(0x100000, 0x80000000), e820(0x100000000, 0x180000000)]


def srat(nid: int, start: int, end: int) -> str:
    return f"ACPI: SRAT: Node {nid} PXM {nid} [mem 0x{start:08x}-0x{end - 1:08x}]"


def test_srat_blocks_of_two_nodes_that_overlap_put_all_memory_on_node_0(tmp_path):
    """numa_cleanup_meminfo fails, and x86 falls back to dummy_numa_init: one node."""
    text = "\n".join(TWO_NODES + [srat(0, 0, 0x80000000), srat(1, 0x40000000, 0x180000000)])
    machine = read_input(write(tmp_path, text))
    assert machine.nodes == [0] and len(machine.regions) == 2
    (warning,) = machine.warnings
    assert warning.startswith(f"{tmp_path / 'input'}:4: SRAT: node 1") and "node 0" in warning


def test_srat_blocks_of_one_node_that_overlap_are_merged(tmp_path):
    text = "\n".join(TWO_NODES + [srat(0, 0, 0x80000000), srat(0, 0x40000000, 0x90000000),
                                  srat(1, 0x100000000, 0x180000000)])
    machine = read_input(write(tmp_path, text))
    assert machine.regions == (MemRange(0x100000, 0x80000000, 0),
                               MemRange(0x100000000, 0x180000000, 1))
    assert len(machine.warnings) == 1 and "overlaps itself" in machine.warnings[0]


def test_srat_blocks_that_overlap_where_there_is_no_memory_are_set_aside(tmp_path):
    text = "\n".join(TWO_NODES + [srat(0, 0, 0x80000000), srat(1, 0x100000000, 0x180000000),
                                  srat(2, 0x200000000, 0x300000000),
                                  srat(3, 0x280000000, 0x400000000)])
    machine = read_input(write(tmp_path, text))
    assert machine.nodes == [0, 1] and machine.warnings == ()


def test_reversed_and_empty_srat_blocks_are_ignored(tmp_path):
    """A block whose length wraps prints reversed (numa_add_memblk warns and ignores it); a
    zero-length one prints one byte reversed and is ignored without a word."""
    text = "\n".join(TWO_NODES + [srat(0, 0, 0x80000000),
                                  "ACPI: SRAT: Node 1 PXM 1 [mem 0x17fffffff-0x100000000]",
                                  "ACPI: SRAT: Node 1 PXM 1 [mem 0x100000000-0x0ffffffff]"])
    machine = read_input(write(tmp_path, text))
    assert machine.nodes == [0]
    (warning,) = machine.warnings
    assert ":4: SRAT block of node 1 ends (0x100000000) before it starts" in warning


def test_an_empty_e820_update_changes_nothing(tmp_path):
    text = "\n".join([e820(0x100000, 0x80000000),
                      "e820: update [mem 0x40000000-0x3fffffff] usable ==> reserved"])
    machine = read_input(write(tmp_path, text))
    assert machine.regions == (MemRange(0x100000, 0x80000000),) and machine.warnings == ()


def test_a_region_without_a_whole_page_is_skipped_with_a_warning(tmp_path):
    text = "\n".join([e820(0x100000, 0x80000000), e820(0x80000100, 0x80000F00)])
    machine = read_input(write(tmp_path, text))
    assert build_tdx_memlist(machine.regions) == (MemRange(0x100000, 0x80000000),)
    (warning,) = machine.warnings
    assert warning.startswith(f"{tmp_path / 'input'}:2: usable e820 range [0x80000100, ")


def test_lines_are_counted_at_newlines_only(tmp_path):
    """A form feed or U+2028 inside a log is no line break to an editor, nor to us."""
    text = "\x0c x\n\u2028 y\nBIOS-e820: [mem 0x100000-0x1] usable\n"
    with pytest.raises(InputError) as err:
        read_input(write(tmp_path, text))
    assert err.value.line == 3


# --- JSON -----------------------------------------------------------------------------------

def test_json_map_with_everything(tmp_path):
    doc = {"regions": [{"start": "0x100000", "end": 0x80000000, "nid": 1}],
           "cmrs": [{"start": "0x100000", "end": "0x80000000"}],
           "metadata": {"max_tdmrs": 8, "max_reserved_per_tdmr": 4,
                        "pamt_entry_size": [16, 8, 8]},
           "pamt_bases": ["0x40000000"]}
    machine = read_input(write(tmp_path, json.dumps(doc, indent=2)))
    assert machine.regions == (MemRange(0x100000, 0x80000000, 1),)
    assert machine.cmrs == (MemRange(0x100000, 0x80000000, 0),)
    assert (machine.sysinfo.max_tdmrs, machine.sysinfo.max_reserved_per_tdmr,
            machine.sysinfo.pamt_entry_size) == (8, 4, (16, 8, 8))
    assert machine.pamt_bases == {0: 0x40000000}


def test_a_json_map_behind_a_byte_order_mark_is_read_as_json(tmp_path):
    doc = json.dumps({"regions": [{"start": "0x100000", "end": "0x80000000"}]})
    machine = read_input(write(tmp_path, b"\xef\xbb\xbf" + doc.encode()))
    assert machine.kind == "json" and machine.regions == (MemRange(0x100000, 0x80000000),)


def test_as_many_pamt_bases_as_tdmrs_and_no_more(tmp_path):
    regions = [{"start": "0x100000", "end": "0x40000000"},
               {"start": "0x80000000", "end": "0xc0000000"}]
    bases = ["0x10000000", "0x90000000"]
    doc = {"regions": regions, "pamt_bases": bases}
    assert read_input(write(tmp_path, json.dumps(doc))).pamt_bases == {0: 0x10000000,
                                                                       1: 0x90000000}
    doc["pamt_bases"] = [*bases, "0x20000000"]
    with pytest.raises(InputError, match=r"pamt_bases\[2\]: the map gives 2 TDMRs"):
        read_input(write(tmp_path, json.dumps(doc, indent=1)))


# --- bad input: exit-2 material, file:line: problem ------------------------------------------

REGIONS = '{\n  "regions": [\n    {"start": "0x100000", "end": "0x200000"},\n    %s\n  ]\n}\n'


@pytest.mark.parametrize("content, line, problem", [
    (REGIONS % '{"start": "0x180000", "end": "0x300000"}', 4, "overlaps"),
    (REGIONS % '{"start": "0x0", "end": "0x80000"}', 4, "not sorted"),
    (REGIONS % '{"start": "0x400000", "end": "0x300000"}', 4, "not above start"),
    (REGIONS % '{"start": "0xZZ", "end": "0x300000"}', 4, "not a number"),
    (REGIONS % '{"start": "0x400000", "end": "0x10000000000000000"}', 4, "64-bit"),
    (REGIONS % '{"start": "0x400000"}', 4, "'start' and 'end'"),
    ('{"regions": [}', 1, "invalid JSON"),
    ('{"regions": [], "extra": 1}', 1, "unknown key 'extra'"),
    ("BIOS-e820: [mem 0x0000000000100000-0x00000000zzzzzzzz] usable\n", 1, "not a hexadecimal"),
    ("x\nBIOS-e820: [mem 0x0000000000200000-0x00000000001fffff] usable\n", 2, "before it starts"),
    (e820(0x100000, 0x300000) + "\n" + e820(0x200000, 0x400000) + "\n", 2, "overlaps"),
    ("virt/tdx: CMR: [0x100000, 0x10000000000000000)\n", 1, "64-bit"),
    ("hello\nworld\n", 0, "no memory map"),
    ("", 0, "empty input"),
    (b"\x7fELF\x00\x01\x02", 0, "binary file"),
    (b"BIOS-e820: \xff\xfe", 1, "not UTF-8"),
    (REGIONS % '{"start": "0x400000", "end": "0x10000000001000"}', 4, "beyond 2^52"),
    (REGIONS % '{"start": "0x4_00000", "end": "0x500000"}', 4, "not a number"),
    (REGIONS % '{"start": "0x400000", "end": "0x500000", "pxm": 1}', 4, "unknown key 'pxm'"),
    (REGIONS % '{"start": "0x400000", "end": "0x500000", "nid": 1024}', 4, "node number"),
    ('{"regions": ' + "[" * 40 + "]" * 40 + "}", 1, "nested deeper"),
    ('{"regions": [{"start": ' + "1" * 4301 + "}]}", 1, "4301 digits"),
    ("BIOS-e820: [mem -0x100000-0x200000] usable\n", 1, "not a hexadecimal"),
    (e820(0x100000, 0x200000) + "\ne820: remove [mem 0x0-0xffffffff] usable\n", 2,
     "no usable memory once its updates are applied"),
    (e820(0x100000, 0x200000) + "\ne820: update [mem 0x300000-0x100000] usable ==> reserved",
     2, "before it starts"),
    (e820(0x100000, 0x200000) + "\n" + srat(10 ** 20, 0, 0x200000), 2, "out of range"),
    ("virt/tdx: CMR: [0x100000, 0x100800)\n", 1, "not 4 KiB-aligned"),
])
def test_bad_input_names_file_line_and_problem(tmp_path, content, line, problem):
    path = write(tmp_path, content, "bad-input")
    with pytest.raises(InputError) as err:
        read_input(path)
    assert err.value.line == line
    assert problem in err.value.problem
    assert str(err.value).startswith(str(path))


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_input(tmp_path / "nope.log")


# --- properties: what is written in any format reads back the same ---------------------------

@st.composite
def memory_maps(draw):
    """Sorted, disjoint, page-aligned ranges above 1 MiB with gaps, on random nodes."""
    count = draw(st.integers(1, 30))
    pos, ranges = 0x100000, []
    for _ in range(count):
        pos += draw(st.integers(1, 1 << 20)) * 4096
        size = draw(st.integers(1, 1 << 22)) * 4096
        ranges.append(MemRange(pos, pos + size, draw(st.integers(0, 3))))
        pos += size
    return ranges


@settings(max_examples=60, deadline=None)
@given(memory_maps(), st.booleans())
def test_json_round_trip(tmp_path_factory, ranges, as_hex):
    fmt = hex if as_hex else int
    doc = {"regions": [{"start": fmt(r.start), "end": fmt(r.end), "nid": r.nid}
                       for r in ranges]}
    path = tmp_path_factory.mktemp("json") / "map.json"
    path.write_text(json.dumps(doc, indent=1))
    assert read_input(path).regions == tuple(ranges)


@settings(max_examples=60, deadline=None)
@given(memory_maps(), st.booleans())
def test_e820_and_srat_round_trip(tmp_path_factory, ranges, stamps):
    """Each range as a usable e820 entry with reserved gaps, each node an SRAT range."""
    prefix = "[    0.000000] " if stamps else ""
    lines, pos = [], 0
    for r in ranges:
        if r.start > pos:
            lines.append(e820(pos, r.start, "reserved", stamps))
        lines.append(e820(r.start, r.end, "usable", stamps))
        pos = r.end
    for r in ranges:
        lines.append(f"{prefix}ACPI: SRAT: Node {r.nid} PXM {r.nid} "
                     f"[mem 0x{r.start:x}-0x{r.end - 1:x}]")
    path = tmp_path_factory.mktemp("log") / "dmesg.txt"
    path.write_text("\n".join(lines) + "\n")
    assert read_input(path).regions == tuple(ranges)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise_anything_but_input_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("junk") / "junk"
    path.write_bytes(data)
    try:
        machine = read_input(path)
    except InputError:
        return
    assert machine.regions
