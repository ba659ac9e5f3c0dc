"""Layout constraints: each catches a hand-built layout that breaks it and nothing else; the
engine's layouts satisfy all of them; concrete checking and Z3 substitution agree."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
import z3

from invariants.layout import (
    LAYOUT_CONSTRAINTS,
    LAYOUT_INVARIANTS,
    AreaTerms,
    LayoutContext,
    check_layout,
    concrete_terms,
    layout_atoms,
    layout_from_json,
    layout_to_json,
    symbolic_terms,
    term_values,
    violations,
)
from spec.memory import SZ_1G, SZ_1M, SZ_4K, MemRange, build_tdx_memlist
from spec.sysinfo import TdxSysinfo
from spec.tdmr import ReservedArea, construct_tdmrs

LOGS = Path(__file__).resolve().parent.parent / "checker" / "data" / "boot-logs"
SZ_2G = 2 * SZ_1G

# TDMR 0 = [0, 1G) with A and B, TDMR 1 = [2G, 3G) with C. First-fit puts both PAMT chunks in A
# (one chunk length apart), so TDMR 0 holds 2 holes and 2 chunks, TDMR 1 a trailing hole.
A = MemRange(SZ_1M, 256 * SZ_1M)
B = MemRange(512 * SZ_1M, SZ_1G)
C = MemRange(SZ_2G, SZ_2G + 512 * SZ_1M)
MEMLIST = (A, B, C)


def base_layout():
    result = construct_tdmrs(MEMLIST)
    assert result.ok
    return list(result.tdmrs)


def ids(found) -> set[str]:
    return {v.constraint for v in found}


def with_areas(tdmr, *areas):
    return replace(tdmr, reserved=tuple(areas))


def test_base_layout_is_what_the_mutations_assume():
    t0, t1 = base_layout()
    chunk = t0.pamt_size
    assert (t0.base, t0.end, t1.base, t1.end) == (0, SZ_1G, SZ_2G, 3 * SZ_1G)
    assert (t0.pamt_base, t1.pamt_base) == (chunk, 2 * chunk)
    assert [(a.offset, a.size) for a in t0.reserved] == [
        (0, SZ_1M), (chunk, chunk), (2 * chunk, chunk), (A.end, B.start - A.end)]
    assert [(a.offset, a.size) for a in t1.reserved] == [(512 * SZ_1M, 512 * SZ_1M)]
    assert check_layout(base_layout(), MEMLIST) == []


def test_every_constraint_has_an_id_statement_and_source():
    for inv in LAYOUT_INVARIANTS:
        assert re.fullmatch(r"[A-Z]+(-[A-Z]+)+", inv.id)
        assert inv.statement and inv.source
    assert len({c.id for c in LAYOUT_CONSTRAINTS}) == len(LAYOUT_CONSTRAINTS) == 15


def _misaligned_tdmr():
    """TDMR 1 moved up 4 KiB with its memory (a hand-built map): only the alignment is wrong."""
    t0, t1 = base_layout()
    c = replace(C, start=C.start + SZ_4K)
    moved = replace(t1, base=t1.base + SZ_4K,
                    reserved=(ReservedArea(512 * SZ_1M - SZ_4K, 512 * SZ_1M + SZ_4K),))
    return [t0, moved], (A, B, c), TdxSysinfo()


def _reversed_tdmrs():
    return base_layout()[::-1], MEMLIST, TdxSysinfo()


def _too_many_tdmrs():
    return base_layout(), MEMLIST, TdxSysinfo(max_tdmrs=1)


def _memory_left_out():
    """TDMR 1 dropped, with the area that reserved its PAMT chunk."""
    t0, _ = base_layout()
    r = t0.reserved
    return [with_areas(t0, r[0], r[1], r[3])], MEMLIST, TdxSysinfo()


def _misaligned_area():
    """B ends 2 KiB short of 1 GiB (a hand-built map); its trailing hole's area is exact."""
    t0, t1 = base_layout()
    b = replace(B, end=B.end - 2048)
    areas = t0.reserved + (ReservedArea(b.end, SZ_1G - b.end),)
    return [with_areas(t0, *areas), t1], (A, b, C), TdxSysinfo()


def _area_past_tdmr_end():
    t0, t1 = base_layout()
    area = t1.reserved[0]
    return [t0, with_areas(t1, replace(area, size=area.size + SZ_4K))], MEMLIST, TdxSysinfo()


def _areas_out_of_order():
    t0, t1 = base_layout()
    r = t0.reserved
    return [with_areas(t0, r[1], r[0], r[2], r[3]), t1], MEMLIST, TdxSysinfo()


def _too_many_areas():
    return base_layout(), MEMLIST, TdxSysinfo(max_reserved_per_tdmr=3)


def _hole_not_reserved():
    t0, t1 = base_layout()
    return [with_areas(t0, *t0.reserved[:3]), t1], MEMLIST, TdxSysinfo()


def _pamt_not_reserved():
    t0, t1 = base_layout()
    r = t0.reserved
    return [with_areas(t0, r[0], r[1], r[3]), t1], MEMLIST, TdxSysinfo()


def _memory_reserved():
    t0, t1 = base_layout()
    r = t0.reserved
    hole = ReservedArea(r[3].offset - SZ_4K, r[3].size + SZ_4K)
    return [with_areas(t0, r[0], r[1], r[2], hole), t1], MEMLIST, TdxSysinfo()


def _pamt_too_large():
    """TDMR 1's 4K PAMT one page larger, its chunk and the area reserving it grown to match."""
    t0, t1 = base_layout()
    s, b = t1.pamt_sizes, t1.pamt_bases
    grown = replace(t1, pamt_sizes=(s[0] + SZ_4K, s[1], s[2]),
                    pamt_bases=(b[0], b[1] + SZ_4K, b[2] + SZ_4K))
    r = t0.reserved
    return [with_areas(t0, r[0], r[1], replace(r[2], size=r[2].size + SZ_4K), r[3]), grown], \
        MEMLIST, TdxSysinfo()


def _pamts_not_back_to_back():
    t0, t1 = base_layout()
    b = t1.pamt_bases
    return [t0, replace(t1, pamt_bases=(b[0], b[1], b[2] + SZ_4K))], MEMLIST, TdxSysinfo()


def _pamt_in_a_hole():
    """TDMR 1's chunk moved into the hole between A and B, which is reserved anyway."""
    t0, t1 = base_layout()
    s = t1.pamt_sizes
    base = 300 * SZ_1M
    moved = replace(t1, pamt_bases=(base, base + s[0], base + s[0] + s[1]))
    r = t0.reserved
    return [with_areas(t0, r[0], r[1], r[3]), moved], MEMLIST, TdxSysinfo()


def _pamts_overlap():
    """TDMR 1's chunk put on top of TDMR 0's (same size): one area reserves both."""
    t0, t1 = base_layout()
    r = t0.reserved
    return [with_areas(t0, r[0], r[1], r[3]), replace(t1, pamt_bases=t0.pamt_bases)], \
        MEMLIST, TdxSysinfo()


BROKEN = {
    "TDMR-ALIGNED": _misaligned_tdmr,
    "TDMR-ORDER": _reversed_tdmrs,
    "TDMR-COUNT": _too_many_tdmrs,
    "TDMR-COVERS-MEMORY": _memory_left_out,
    "RSVD-ALIGNED": _misaligned_area,
    "RSVD-INSIDE": _area_past_tdmr_end,
    "RSVD-ORDER": _areas_out_of_order,
    "RSVD-COUNT": _too_many_areas,
    "RSVD-COVERS-HOLES": _hole_not_reserved,
    "RSVD-COVERS-PAMT": _pamt_not_reserved,
    "RSVD-NO-MEMORY": _memory_reserved,
    "PAMT-SIZE": _pamt_too_large,
    "PAMT-LAYOUT": _pamts_not_back_to_back,
    "PAMT-IN-MEMORY": _pamt_in_a_hole,
    "PAMT-DISJOINT": _pamts_overlap,
}


def test_every_constraint_has_a_breaking_layout():
    assert set(BROKEN) == {c.id for c in LAYOUT_CONSTRAINTS}


@pytest.mark.parametrize("constraint", sorted(BROKEN))
def test_layout_breaking_one_constraint_is_caught_by_that_name_only(constraint):
    tdmrs, memlist, sysinfo = BROKEN[constraint]()
    found = check_layout(tdmrs, memlist, sysinfo)
    assert ids(found) == {constraint}
    assert all(constraint in v.describe(tdmrs) for v in found)


def test_violation_names_the_tdmr_and_the_area():
    tdmrs, memlist, sysinfo = _hole_not_reserved()
    (found,) = check_layout(tdmrs, memlist, sysinfo)
    assert found.tdmr == 0
    assert found.item == f"hole [0x{A.end:x}, 0x{B.start:x})"
    assert "TDMR 0 [0x0, 0x40000000)" in found.describe(tdmrs)


@pytest.mark.parametrize("constraint", sorted(BROKEN))
def test_substituting_into_the_symbolic_formulas_gives_the_same_verdicts(constraint):
    """One definition: the Z3 formulas over variables, with the layout substituted and
    simplified, fail at exactly the places the concrete check reports."""
    tdmrs, memlist, sysinfo = BROKEN[constraint]()
    concrete = concrete_terms(tdmrs)
    width = max(len(t.areas) for t in concrete)
    padded = [replace(t, areas=t.areas + (AreaTerms(t.size, 0),) * (width - len(t.areas)))
              for t in concrete]
    symbolic = symbolic_terms(len(tdmrs), width)
    ctx = LayoutContext.of(memlist, sysinfo)
    expected = {(v.constraint, v.tdmr, v.item) for v in violations(concrete, ctx)}
    pairs = term_values(padded, symbolic)
    got = set()
    for c, atom in layout_atoms(symbolic, ctx):
        holds = atom.holds if isinstance(atom.holds, bool) else z3.simplify(
            z3.substitute(atom.holds, *pairs))
        if holds is False or (not isinstance(holds, bool) and z3.is_false(holds)):
            got.add((c.id, atom.tdmr, atom.item))
    assert got == expected


def test_json_round_trip_keeps_the_verdict():
    tdmrs, memlist, sysinfo = _pamt_not_reserved()
    loaded = layout_from_json(layout_to_json(tdmrs))
    assert loaded == tuple(tdmrs)
    assert ids(check_layout(loaded, memlist, sysinfo)) == {"RSVD-COVERS-PAMT"}


def _cmr_maps():
    for path in sorted(LOGS.glob("*.log")):
        cmrs = [MemRange(int(a, 16), int(b, 16)) for a, b in
                re.findall(r"CMR: \[(0x[0-9a-f]+), (0x[0-9a-f]+)\)", path.read_text())]
        if cmrs:
            yield path.name, cmrs


@pytest.mark.parametrize("name,cmrs", list(_cmr_maps()))
def test_engine_layout_on_boot_log_cmr_maps_satisfies_every_constraint(name, cmrs):
    memlist = build_tdx_memlist(cmrs)
    result = construct_tdmrs(memlist)
    assert result.ok, name
    assert check_layout(result.tdmrs, memlist) == []


def test_engine_layout_that_overflows_is_caught_by_rsvd_count():
    """The engine keeps at most the limit; given all of them, the checker counts the excess."""
    regions = [MemRange(16 * SZ_1M * i + SZ_1M, 16 * SZ_1M * (i + 1)) for i in range(17)]
    memlist = build_tdx_memlist(regions)
    result = construct_tdmrs(memlist, TdxSysinfo(max_reserved_per_tdmr=64))
    assert result.ok
    found = check_layout(result.tdmrs, memlist, TdxSysinfo())
    assert ids(found) == {"RSVD-COUNT"}
    assert len(result.tdmrs[0].reserved) == 19  # 1 leading, 16 gaps, 1 trailing, 1 PAMT
