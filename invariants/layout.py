"""TDMR layout constraints, each written once as a formula over a TDMR-list encoding.

An encoding holds, per TDMR, its base and size, its PAMT bases and sizes and a fixed number of
reserved-area slots (offset, size; a slot of size 0 is unused). Each value is either a Python
int or a Z3 integer term. The formula builders below use operators that fold as they go: on
concrete values every atom comes out as a Python bool (substitution and simplification happen
while the formula is built), on Z3 terms the same code yields Z3 formulas for the solver. So a
concrete TDMR list, the engine's or a user's, is checked by the very definitions the solver
reasons with; there is no second copy of any rule.

Ranges are half-open `[start, end)`, addresses in bytes. The rules come from section 3 of the
kernel-behaviour notes and `arch/x86/virt/vmx/tdx/tdx.c` (v6.8); "TDX module spec" marks a rule
the TDX module enforces in TDH.SYS.CONFIG.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import z3

from invariants.base import Invariant
from spec.memory import SZ_1G, SZ_4K, MemRange
from spec.sysinfo import PAGE_SIZE_NAMES, PAGE_SIZE_SHIFTS, TdxSysinfo
from spec.tdmr import ReservedArea, Tdmr

PHYS_END = 1 << 52  # end of the physical address space: the last hole runs up to here

Term = int | z3.ArithRef
Cond = bool | z3.BoolRef


# --- operators that fold on concrete values --------------------------------------------------

def _is_concrete(*values: Any) -> bool:
    return all(isinstance(v, (int, bool)) for v in values)


def all_of(conds: Iterable[Cond]) -> Cond:
    """Conjunction that drops True and stops at False."""
    rest = []
    for cond in conds:
        if cond is False:
            return False
        if cond is not True:
            rest.append(cond)
    return True if not rest else rest[0] if len(rest) == 1 else z3.And(rest)


def any_of(conds: Iterable[Cond]) -> Cond:
    """Disjunction that drops False and stops at True."""
    rest = []
    for cond in conds:
        if cond is True:
            return True
        if cond is not False:
            rest.append(cond)
    return False if not rest else rest[0] if len(rest) == 1 else z3.Or(rest)


def implies(premise: Cond, conclusion: Callable[[], Cond]) -> Cond:
    """`premise => conclusion()`; the conclusion is only built when the premise is not False."""
    if premise is False:
        return True
    conclusion = conclusion()
    if conclusion is True:
        return True
    if premise is True:
        return conclusion
    if conclusion is False:
        return z3.Not(premise)
    return z3.Implies(premise, conclusion)


def t_max(a: Term, b: Term) -> Term:
    return max(a, b) if _is_concrete(a, b) else z3.If(a >= b, a, b)


def t_min(a: Term, b: Term) -> Term:
    return min(a, b) if _is_concrete(a, b) else z3.If(a <= b, a, b)


def t_div(a: Term, divisor: int) -> Term:
    """Floor division by a positive constant (Z3's integer `/` floors for non-negative terms)."""
    return a // divisor if _is_concrete(a) else a / divisor


def count_true(conds: Sequence[Cond]) -> Term:
    if _is_concrete(*conds):
        return sum(1 for c in conds if c)
    return z3.Sum([c if isinstance(c, bool) else z3.If(c, 1, 0) for c in conds])


def overlaps(a_start: Term, a_end: Term, b_start: Term, b_end: Term) -> Cond:
    return all_of((a_start < b_end, b_start < a_end))


def contains(outer_start: Term, outer_end: Term, start: Term, end: Term) -> Cond:
    return all_of((outer_start <= start, end <= outer_end))


def pamt_size_formula(tdmr_size: Term, shift: int, entry_size: int) -> Term:
    """`tdmr_get_pamt_sz`: one entry per page of this size, rounded up to 4 KiB."""
    return t_div(t_div(tdmr_size, 1 << shift) * entry_size + SZ_4K - 1, SZ_4K) * SZ_4K


def pamt_size_formulas(tdmr_size: Term, sysinfo: TdxSysinfo) -> tuple[Term, Term, Term]:
    """The 4K, 2M and 1G PAMT sizes the module expects for a TDMR of this size. `sysinfo` is
    the metadata as the kernel holds it (`kernel_sysinfo`): with Dynamic PAMT bits the 4K one
    is the page bitmap, those bits per 4K page in whole bytes, rounded up to 4 KiB."""
    sizes = [pamt_size_formula(tdmr_size, shift, entry)
             for shift, entry in zip(PAGE_SIZE_SHIFTS, sysinfo.pamt_entry_size, strict=True)]
    bits = sysinfo.pamt_page_bitmap_entry_bits
    if bits:
        nbytes = t_div(t_div(tdmr_size, SZ_4K) * bits + 7, 8)
        sizes[0] = t_div(nbytes + SZ_4K - 1, SZ_4K) * SZ_4K
    return tuple(sizes)


# --- the encoding ----------------------------------------------------------------------------

@dataclass(frozen=True)
class AreaTerms:
    offset: Term
    size: Term


@dataclass(frozen=True)
class TdmrTerms:
    base: Term
    size: Term
    pamt_bases: tuple[Term, Term, Term]
    pamt_sizes: tuple[Term, Term, Term]
    areas: tuple[AreaTerms, ...]

    @property
    def end(self) -> Term:
        return self.base + self.size

    @property
    def pamt_start(self) -> Term:
        return self.pamt_bases[0]

    @property
    def pamt_end(self) -> Term:
        return self.pamt_bases[0] + self.pamt_sizes[0] + self.pamt_sizes[1] + self.pamt_sizes[2]


def concrete_terms(tdmrs: Sequence[Tdmr]) -> tuple[TdmrTerms, ...]:
    """The encoding of a concrete TDMR list: every term a Python int."""
    return tuple(TdmrTerms(t.base, t.size, tuple(t.pamt_bases), tuple(t.pamt_sizes),
                           tuple(AreaTerms(a.offset, a.size) for a in t.reserved))
                 for t in tdmrs)


def symbolic_terms(n_tdmrs: int, n_areas: int, prefix: str = "") -> tuple[TdmrTerms, ...]:
    """An encoding of `n_tdmrs` TDMRs with `n_areas` slots each, every term a Z3 integer."""
    def var(name: str) -> z3.ArithRef:
        return z3.Int(f"{prefix}{name}")
    return tuple(
        TdmrTerms(var(f"t{i}.base"), var(f"t{i}.size"),
                  tuple(var(f"t{i}.pamt_{p}.base") for p in PAGE_SIZE_NAMES),
                  tuple(var(f"t{i}.pamt_{p}.size") for p in PAGE_SIZE_NAMES),
                  tuple(AreaTerms(var(f"t{i}.rsvd{j}.offset"), var(f"t{i}.rsvd{j}.size"))
                        for j in range(n_areas)))
        for i in range(n_tdmrs))


def term_values(concrete: Sequence[TdmrTerms], symbolic: Sequence[TdmrTerms]
                ) -> list[tuple[z3.ArithRef, z3.IntNumRef]]:
    """Pairs (variable, value) that substitute a concrete layout into a symbolic encoding of the
    same shape."""
    pairs = []
    for c, s in zip(concrete, symbolic, strict=True):
        scalars = [(s.base, c.base), (s.size, c.size), *zip(s.pamt_bases, c.pamt_bases,
                                                            strict=True),
                   *zip(s.pamt_sizes, c.pamt_sizes, strict=True)]
        for sa, ca in zip(s.areas, c.areas, strict=True):
            scalars += [(sa.offset, ca.offset), (sa.size, ca.size)]
        pairs += [(var, z3.IntVal(value)) for var, value in scalars]
    return pairs


@dataclass(frozen=True)
class LayoutContext:
    """What a layout is checked against: TDX memory, where holes come from, the module limits.

    `hole_ranges` is the memory list in v6.8 and the CMRs in the CMR-hole variant; a hole is any
    gap between them, from address 0 up to `PHYS_END`.
    """

    memlist: tuple[MemRange, ...]
    hole_ranges: tuple[MemRange, ...]
    sysinfo: TdxSysinfo

    @classmethod
    def of(cls, memlist: Sequence[MemRange], sysinfo: TdxSysinfo = TdxSysinfo(),
           hole_ranges: Sequence[MemRange] | None = None) -> LayoutContext:
        memlist = tuple(sorted(memlist))
        return cls(memlist, tuple(sorted(hole_ranges)) if hole_ranges else memlist, sysinfo)

    @property
    def holes(self) -> tuple[tuple[int, int], ...]:
        return _gaps(self.hole_ranges)


def _gaps(ranges: tuple[MemRange, ...]) -> tuple[tuple[int, int], ...]:
    gaps, prev_end = [], 0
    for r in ranges:
        if r.start > prev_end:
            gaps.append((prev_end, r.start))
        prev_end = max(prev_end, r.end)
    if prev_end < PHYS_END:
        gaps.append((prev_end, PHYS_END))
    return tuple(gaps)


def _near(ranges: Sequence[tuple[int, int]], starts: list[int], start: Term, end: Term
          ) -> Sequence[tuple[int, int]]:
    """The sorted, disjoint `ranges` that may overlap `[start, end)`. With concrete bounds the
    others would only give atoms whose premise `overlaps(...)` folds to False, so they are left
    out; with symbolic bounds all are kept."""
    if not _is_concrete(start, end):
        return ranges
    return ranges[max(0, bisect_right(starts, start) - 1):bisect_left(starts, end)]


# --- the constraints -------------------------------------------------------------------------

@dataclass(frozen=True)
class Atom:
    """One instance of a constraint: where it applies and the formula that must hold there."""

    tdmr: int | None
    item: str
    holds: Cond


AtomBuilder = Callable[[Sequence[TdmrTerms], "_Prepared"], Iterator[Atom]]


@dataclass(frozen=True)
class LayoutConstraint:
    invariant: Invariant
    atoms: AtomBuilder

    @property
    def id(self) -> str:
        return self.invariant.id


@dataclass(frozen=True)
class _Prepared:
    """The context with its look-up tables built once per check."""

    ctx: LayoutContext
    regions: tuple[tuple[int, int], ...]
    region_starts: list[int]
    holes: tuple[tuple[int, int], ...]
    hole_starts: list[int]

    @classmethod
    def of(cls, ctx: LayoutContext) -> _Prepared:
        regions = tuple((r.start, r.end) for r in ctx.memlist)
        holes = ctx.holes
        return cls(ctx, regions, [s for s, _ in regions], holes, [s for s, _ in holes])


def _hex_range(start: int, end: int) -> str:
    return f"[0x{start:x}, 0x{end:x})"


def _tdmr_aligned(tdmrs, prep):
    for i, t in enumerate(tdmrs):
        yield Atom(i, "base and size", all_of((t.base % SZ_1G == 0, t.size % SZ_1G == 0,
                                               t.base >= 0, t.size > 0)))


def _tdmr_order(tdmrs, prep):
    for i in range(len(tdmrs) - 1):
        yield Atom(i + 1, f"after TDMR {i}", tdmrs[i].end <= tdmrs[i + 1].base)


def _tdmr_count(tdmrs, prep):
    yield Atom(None, f"{len(tdmrs)} TDMRs", len(tdmrs) <= prep.ctx.sysinfo.max_tdmrs)


def _tdmr_covers_memory(tdmrs, prep):
    # A region lies inside the union of the TDMRs iff its first uncovered byte does not exist;
    # that byte would be the region start or the end of some TDMR, so those are the candidates.
    containing = _tdmrs_near(tdmrs)
    concrete = _is_concrete(*(t.end for t in tdmrs))
    ends = sorted(t.end for t in tdmrs) if concrete else []
    for start, end in prep.regions:
        if concrete:  # the other candidates lie outside the region: their premise is False
            candidates = [start] + ends[bisect_left(ends, start):bisect_left(ends, end)]
        else:
            candidates = [start] + [t.end for t in tdmrs]
        yield Atom(None, f"memory {_hex_range(start, end)}", all_of(
            implies(all_of((start <= p, p < end)),
                    lambda p=p: any_of(all_of((t.base <= p, p < t.end)) for t in containing(p)))
            for p in candidates))


def _tdmrs_near(tdmrs) -> Callable[[Term], Sequence[TdmrTerms]]:
    """The TDMRs that may contain byte `p`: with concrete TDMRs and `p`, those starting at or
    below `p` and less than the longest TDMR before it (the others give disjuncts that fold to
    False)."""
    if not _is_concrete(*(v for t in tdmrs for v in (t.base, t.size))):
        return lambda p: tdmrs
    order = sorted(tdmrs, key=lambda t: t.base)
    bases = [t.base for t in order]
    longest = max((t.size for t in tdmrs), default=0)

    def near(p):
        if not _is_concrete(p):
            return tdmrs
        return order[bisect_left(bases, p - longest + 1):bisect_right(bases, p)]
    return near


def _rsvd_aligned(tdmrs, prep):
    for i, t in enumerate(tdmrs):
        for j, a in enumerate(t.areas):
            yield Atom(i, f"area {j}", all_of((a.offset % SZ_4K == 0, a.size % SZ_4K == 0)))


def _rsvd_inside(tdmrs, prep):
    for i, t in enumerate(tdmrs):
        for j, a in enumerate(t.areas):
            yield Atom(i, f"area {j}", implies(a.size > 0, lambda a=a, t=t: all_of(
                (a.offset >= 0, a.offset + a.size <= t.size))))


def _rsvd_order(tdmrs, prep):
    # Used slots come first; each ends at or before the next one starts.
    for i, t in enumerate(tdmrs):
        for j in range(len(t.areas) - 1):
            a, b = t.areas[j], t.areas[j + 1]
            yield Atom(i, f"area {j + 1}", implies(b.size > 0, lambda a=a, b=b: all_of(
                (a.size > 0, a.offset + a.size <= b.offset))))


def _rsvd_count(tdmrs, prep):
    limit = prep.ctx.sysinfo.max_reserved_per_tdmr
    for i, t in enumerate(tdmrs):
        yield Atom(i, "reserved areas", count_true([a.size > 0 for a in t.areas]) <= limit)


def _covered_by_an_area(t: TdmrTerms, start: Term, end: Term) -> Cond:
    return any_of(all_of((a.size > 0, contains(t.base + a.offset, t.base + a.offset + a.size,
                                                start, end)))
                  for a in t.areas)


def _rsvd_covers_holes(tdmrs, prep):
    for i, t in enumerate(tdmrs):
        for start, end in _near(prep.holes, prep.hole_starts, t.base, t.end):
            yield Atom(i, f"hole {_hex_range(start, end)}", implies(
                overlaps(start, end, t.base, t.end),
                lambda t=t, start=start, end=end: _covered_by_an_area(
                    t, t_max(start, t.base), t_min(end, t.end))))


def _rsvd_covers_pamt(tdmrs, prep):
    owners_near = _chunks_near(tdmrs)
    for i, t in enumerate(tdmrs):
        for j in owners_near(t.base, t.end):
            owner = tdmrs[j]
            lo, hi = owner.pamt_start, owner.pamt_end
            yield Atom(i, f"PAMT of TDMR {j}", implies(
                overlaps(lo, hi, t.base, t.end),
                lambda t=t, lo=lo, hi=hi: _covered_by_an_area(
                    t, t_max(lo, t.base), t_min(hi, t.end))))


def _chunks_near(tdmrs) -> Callable[[Term, Term], Sequence[int]]:
    """The owners of the PAMT chunks that may overlap [start, end), in TDMR order. With
    concrete chunks and bounds the others only give atoms whose premise folds to False."""
    chunks = [(t.pamt_start, t.pamt_end) for t in tdmrs]
    everyone = range(len(tdmrs))
    if not _is_concrete(*(v for c in chunks for v in c)):
        return lambda start, end: everyone
    order = sorted(everyone, key=lambda j: chunks[j][0])
    starts = [chunks[j][0] for j in order]
    longest = max((e - s for s, e in chunks), default=0)

    def near(start, end):
        if not _is_concrete(start, end):
            return everyone
        lo, hi = bisect_left(starts, start - longest), bisect_left(starts, end)
        return sorted(j for j in order[lo:hi] if chunks[j][1] > start)
    return near


def _rsvd_no_memory(tdmrs, prep):
    for i, t in enumerate(tdmrs):
        for start, end in _near(prep.regions, prep.region_starts, t.base, t.end):
            for j, a in enumerate(t.areas):
                a_start, a_end = t.base + a.offset, t.base + a.offset + a.size
                lo, hi = t_max(a_start, start), t_min(a_end, end)
                yield Atom(i, f"area {j} over memory {_hex_range(start, end)}", implies(
                    all_of((overlaps(start, end, t.base, t.end),
                            overlaps(a_start, a_end, start, end))),
                    lambda lo=lo, hi=hi: any_of(contains(o.pamt_start, o.pamt_end, lo, hi)
                                                for o in tdmrs)))


def _pamt_size(tdmrs, prep):
    for i, t in enumerate(tdmrs):
        for name, size, expected in zip(PAGE_SIZE_NAMES, t.pamt_sizes,
                                        pamt_size_formulas(t.size, prep.ctx.sysinfo),
                                        strict=True):
            yield Atom(i, f"{name} PAMT", size == expected)


def _pamt_layout(tdmrs, prep):
    for i, t in enumerate(tdmrs):
        b, s = t.pamt_bases, t.pamt_sizes
        yield Atom(i, "PAMT chunk", all_of((b[0] % SZ_4K == 0, b[1] == b[0] + s[0],
                                             b[2] == b[1] + s[1])))


def _pamt_in_memory(tdmrs, prep):
    for i, t in enumerate(tdmrs):
        lo, hi = t.pamt_start, t.pamt_end
        regions = _near(prep.regions, prep.region_starts, lo, lo + 1)
        yield Atom(i, "PAMT chunk", any_of(contains(s, e, lo, hi) for s, e in regions))


def _pamt_disjoint(tdmrs, prep):
    chunks = [(t.pamt_start, t.pamt_end) for t in tdmrs]
    if _is_concrete(*(v for c in chunks for v in c)):
        # Only a pair whose later-starting chunk begins before the earlier one ends can fail.
        order = sorted(range(len(tdmrs)), key=lambda j: chunks[j])
        pairs = []
        for k, i in enumerate(order):
            for j in order[k + 1:]:
                if chunks[j][0] >= chunks[i][1]:
                    break
                pairs.append((min(i, j), max(i, j)))
        pairs.sort()
    else:
        pairs = [(i, j) for i in range(len(tdmrs)) for j in range(i + 1, len(tdmrs))]
    for i, j in pairs:
        a, b = tdmrs[i], tdmrs[j]
        yield Atom(j, f"PAMT chunks of TDMRs {i} and {j}", any_of(
            (a.pamt_end <= b.pamt_start, b.pamt_end <= a.pamt_start)))


_TDX_C = "arch/x86/virt/vmx/tdx/tdx.c (v6.8)"

LAYOUT_CONSTRAINTS: tuple[LayoutConstraint, ...] = tuple(
    LayoutConstraint(Invariant(id_, statement, source), build)
    for id_, statement, source, build in (
        ("TDMR-ALIGNED", "every TDMR base and size is 1 GiB aligned and the size non-zero",
         f"TDX module spec (TDMR_INFO); {_TDX_C} fill_out_tdmrs", _tdmr_aligned),
        ("TDMR-ORDER", "TDMRs are in ascending address order and do not overlap",
         f"TDX module spec (TDH.SYS.CONFIG); {_TDX_C} fill_out_tdmrs", _tdmr_order),
        ("TDMR-COUNT", "there are at most max_tdmrs TDMRs",
         f"{_TDX_C} fill_out_tdmrs ('TDMRs exhausted')", _tdmr_count),
        ("TDMR-COVERS-MEMORY", "every byte of TDX memory lies inside some TDMR",
         f"{_TDX_C} construct_tdmrs (all tdx_memlist entries are covered)", _tdmr_covers_memory),
        ("RSVD-ALIGNED", "every reserved area's offset and size are 4 KiB aligned",
         f"TDX module spec (TDMR_INFO); {_TDX_C} tdmr_add_rsvd_area", _rsvd_aligned),
        ("RSVD-INSIDE", "every reserved area lies inside its TDMR",
         f"TDX module spec (TDMR_INFO); {_TDX_C} tdmr_add_rsvd_area", _rsvd_inside),
        ("RSVD-ORDER", "a TDMR's reserved areas are ascending and disjoint, unused slots last",
         f"TDX module spec (TDMR_INFO); {_TDX_C} rsvd_area_cmp_func", _rsvd_order),
        ("RSVD-COUNT", "a TDMR has at most max_reserved_per_tdmr reserved areas",
         f"{_TDX_C} tdmr_add_rsvd_area ('reserved areas exhausted')", _rsvd_count),
        ("RSVD-COVERS-HOLES", "each hole's part inside a TDMR lies inside one of its "
         "reserved areas",
         f"{_TDX_C} tdmr_populate_rsvd_holes", _rsvd_covers_holes),
        ("RSVD-COVERS-PAMT", "each PAMT chunk's part inside a TDMR lies inside one of its "
         "reserved areas", f"{_TDX_C} tdmr_populate_rsvd_pamts", _rsvd_covers_pamt),
        ("RSVD-NO-MEMORY", "TDX memory inside a reserved area is PAMT: the area's part of a "
         "memory region lies inside one PAMT chunk",
         f"{_TDX_C} tdmr_populate_rsvd_areas (only holes and PAMTs are reserved)",
         _rsvd_no_memory),
        ("PAMT-SIZE", "each PAMT holds one entry per page of its size, rounded up to 4 KiB",
         f"{_TDX_C} tdmr_get_pamt_sz (with Dynamic PAMT the 4K one is a bitmap: "
         "tdmr_get_pamt_bitmap_sz of the series)", _pamt_size),
        ("PAMT-LAYOUT", "a TDMR's PAMT chunk is 4 KiB aligned and holds the 4K, 2M and 1G "
         "PAMTs back to back", f"{_TDX_C} tdmr_set_up_pamt", _pamt_layout),
        ("PAMT-IN-MEMORY", "each PAMT chunk lies inside one TDX memory region",
         f"{_TDX_C} tdmr_set_up_pamt (alloc_contig_pages returns TDX memory)", _pamt_in_memory),
        ("PAMT-DISJOINT", "no two PAMT chunks overlap",
         f"{_TDX_C} tdmr_set_up_pamt (distinct allocations)", _pamt_disjoint),
    ))

LAYOUT_INVARIANTS: tuple[Invariant, ...] = tuple(c.invariant for c in LAYOUT_CONSTRAINTS)
CONSTRAINTS_BY_ID: dict[str, LayoutConstraint] = {c.id: c for c in LAYOUT_CONSTRAINTS}


def layout_atoms(tdmrs: Sequence[TdmrTerms], ctx: LayoutContext,
                 constraints: Iterable[LayoutConstraint] = LAYOUT_CONSTRAINTS
                 ) -> Iterator[tuple[LayoutConstraint, Atom]]:
    """Every atom of every constraint over this encoding: bools if concrete, else Z3."""
    prep = _Prepared.of(ctx)
    for constraint in constraints:
        for atom in constraint.atoms(tdmrs, prep):
            yield constraint, atom


# --- checking a concrete layout --------------------------------------------------------------

@dataclass(frozen=True)
class Violation:
    """A constraint that does not hold, and where: which TDMR and which area, hole or chunk."""

    constraint: str
    tdmr: int | None
    item: str
    statement: str

    def describe(self, tdmrs: Sequence[Tdmr] = ()) -> str:
        where = ""
        if self.tdmr is not None:
            where = f"TDMR {self.tdmr}"
            if self.tdmr < len(tdmrs):
                t = tdmrs[self.tdmr]
                where += f" {_hex_range(t.base, t.end)}"
            where += ": "
        return f"{self.constraint}: {where}{self.item}: violates '{self.statement}'"


def _truth(holds: Cond) -> bool:
    if isinstance(holds, bool):
        return holds
    value = z3.simplify(holds)
    if not (z3.is_true(value) or z3.is_false(value)):
        raise ValueError(f"formula is not concrete: {holds}")
    return z3.is_true(value)


def violations(tdmrs: Sequence[TdmrTerms], ctx: LayoutContext,
               constraints: Iterable[LayoutConstraint] = LAYOUT_CONSTRAINTS) -> list[Violation]:
    """The atoms that evaluate to false on a concrete encoding (or on a substituted one)."""
    return [Violation(c.id, atom.tdmr, atom.item, c.invariant.statement)
            for c, atom in layout_atoms(tdmrs, ctx, constraints) if not _truth(atom.holds)]


def check_layout(tdmrs: Sequence[Tdmr], memlist: Sequence[MemRange],
                 sysinfo: TdxSysinfo = TdxSysinfo(),
                 hole_ranges: Sequence[MemRange] | None = None) -> list[Violation]:
    """Check a concrete TDMR list against every layout constraint; empty means valid.

    `memlist` is the TDX memory (after `build_tdx_memlist`); `hole_ranges` the ranges whose
    gaps are holes (default: the memory list, as v6.8; the CMRs for the CMR-hole variant).
    """
    return violations(concrete_terms(tdmrs), LayoutContext.of(memlist, sysinfo, hole_ranges))


# --- JSON ------------------------------------------------------------------------------------

def _int(value: int | str) -> int:
    return int(value, 0) if isinstance(value, str) else int(value)


def layout_to_json(tdmrs: Sequence[Tdmr]) -> dict[str, Any]:
    return {"tdmrs": [{"base": hex(t.base), "size": hex(t.size),
                       "pamt_bases": [hex(b) for b in t.pamt_bases],
                       "pamt_sizes": [hex(s) for s in t.pamt_sizes],
                       "reserved": [{"offset": hex(a.offset), "size": hex(a.size), "kind": a.kind}
                                    for a in t.reserved]}
                      for t in tdmrs]}


def layout_from_json(data: dict[str, Any]) -> tuple[Tdmr, ...]:
    """A TDMR list from `layout_to_json`'s format or `tdmr --format json`'s `tdmrs` (numbers as
    ints or "0x..." strings)."""
    tdmrs = []
    for item in data["tdmrs"]:
        reserved = tuple(ReservedArea(_int(a["offset"]), _int(a["size"]), a.get("kind", "hole"))
                         for a in item.get("reserved", ()))
        if "pamt_4k_base" in item:  # the per-page-size keys of `tdmr --format json`
            bases = tuple(item[f"pamt_{n}_base"] for n in ("4k", "2m", "1g"))
            sizes = tuple(item[f"pamt_{n}_size"] for n in ("4k", "2m", "1g"))
        else:
            bases, sizes = item.get("pamt_bases", (0, 0, 0)), item.get("pamt_sizes", (0, 0, 0))
        tdmrs.append(Tdmr(_int(item["base"]), _int(item["size"]),
                          tuple(_int(b) for b in bases), tuple(_int(s) for s in sizes),
                          reserved))
    return tuple(tdmrs)
