"""Properties of whole machines rather than of one layout or one flow state: what a real or
synthesised memory map must give under a kernel profile."""

from __future__ import annotations

from invariants.base import Invariant
from spec.profiles import V6_8, Profile, rule_changes
from spec.tdmr import ConstructResult, Tdmr, tdmr_range

LOG_REPRODUCED = Invariant(
    "LOG-REPRODUCED", "the model computes the PAMT figure or the failure the machine logged",
    "boot logs of real TDX hosts (checker/data/boot-logs/README.md)")
LAYOUT = Invariant(
    "LAYOUT", "the TDMR list handed to TDH.SYS.CONFIG satisfies every layout invariant",
    "invariants/layout.py (a failing check names the constraint)")
INIT_PLACEMENT_INDEPENDENT = Invariant(
    "INIT-PLACEMENT-INDEPENDENT", "when TDMR construction succeeds with first-fit PAMT "
    "placement it succeeds with every placement the page allocator may return",
    "tdmr_set_up_pamt: alloc_contig_pages may return any free range of the right size")
INIT_WHEN_LAYOUT_EXISTS = Invariant(
    "INIT-WHEN-LAYOUT-EXISTS", "the kernel builds TDMRs whenever a valid layout exists for the "
    "machine (a failure is a kernel limitation on that map, a finding)",
    "canonical/tdx#135; LKML v8 2024-11-13 'Reduce TDMR's reserved areas by using CMRs'")
LIMIT_RSVD_EXHAUSTED = Invariant(
    "LIMIT-RSVD-EXHAUSTED", "the kernel still refuses the smallest map that needs more "
    "reserved areas in one TDMR than the module allows", "tdmr_add_rsvd_area")
LIMIT_TDMRS_EXHAUSTED = Invariant(
    "LIMIT-TDMRS-EXHAUSTED", "the kernel still refuses the smallest map that needs more TDMRs "
    "than the module allows", "fill_out_tdmrs")

SAME_AS_V6_8 = Invariant(
    "SAME-AS-V6.8", "on the same map and PAMT placement, every profile (v6.8's own model "
    "included) fails exactly where a plain reading of v6.8 fails, the same way, and otherwise "
    "builds the TDMR list it builds and prints the lines it prints (a variant may differ in "
    "what its changed rule decides)",
    "construct_tdmrs of arch/x86/virt/vmx/tdx/tdx.c (v6.8), read plainly in "
    "invariants/tdmr_reference.py: the reference every change is measured against")

MACHINE_INVARIANTS = {i.id: i for i in (LOG_REPRODUCED, LAYOUT, INIT_PLACEMENT_INDEPENDENT,
                                         INIT_WHEN_LAYOUT_EXISTS, LIMIT_RSVD_EXHAUSTED,
                                         LIMIT_TDMRS_EXHAUSTED, SAME_AS_V6_8)}

RESERVED_AREAS = "reserved areas"
# What a variant's rule switch exists to change, and so is left out of its comparison. Taking
# holes from CMRs changes the reserved areas and so whether they fit in a TDMR (the fix exists
# to make them fit); TDMRs and PAMT chunks come before that phase and must stay v6.8's. A
# variant switching any other rule is compared in full until its purpose is written here.
VARIANT_CHANGES = {"holes": RESERVED_AREAS}


def _exempt(profile: Profile) -> frozenset[str]:
    """The parts of the result a profile may change: none for bugs and mutants (a change is
    the bug), those its switched rules decide for a variant."""
    if profile.kind != "variant":
        return frozenset()
    changes = rule_changes(profile)
    if not changes or not changes <= VARIANT_CHANGES.keys():
        return frozenset()
    return frozenset(VARIANT_CHANGES[rule] for rule in changes)


def _outcome(result: ConstructResult, exempt: frozenset[str]) -> str:
    """How construction ended, in words; a reserved-area failure counts as building the TDMRs
    when reserved areas are exempt."""
    if result.ok or (RESERVED_AREAS in exempt and result.failed_tdmr is not None):
        return f"builds {len(result.tdmrs)} TDMRs"
    where = "" if result.failed_pamt is None else f" on TDMR {result.failed_pamt}'s PAMT"
    return f"fails{where}: {result.error.message or 'no message'} ({result.error.errno})"


def _pamt(t: Tdmr) -> str:
    return (f"{tdmr_range(t)} PAMT [0x{t.pamt_base:x}, 0x{t.pamt_end:x}) sizes "
            f"{', '.join(hex(s) for s in t.pamt_sizes)}")


def _reserved(t: Tdmr) -> str:
    return f"{tdmr_range(t)} reserved " + (", ".join(f"{a.kind} +0x{a.offset:x} 0x{a.size:x}"
                                    for a in t.reserved) or "none")


# The parts of a TDMR list in the order construction fills them in, each with what is compared
# and how it is shown: the first part that differs names the phase that departs from v6.8.
_PARTS = (("range", lambda t: (t.base, t.size), tdmr_range),
          ("PAMT", lambda t: (tuple(t.pamt_bases), tuple(t.pamt_sizes)), _pamt),
          (RESERVED_AREAS, lambda t: tuple((a.offset, a.size, a.kind) for a in t.reserved),
           _reserved))


def differs_from_v6_8(profile: Profile, result: ConstructResult, reference: ConstructResult,
                      name: str | None = None) -> str | None:
    """SAME-AS-V6.8 on one map and placement: None when `result` (the profile's) and
    `reference` (v6.8's) agree, else the first difference in words."""
    exempt = _exempt(profile)
    name = name or profile.name
    if name.startswith(V6_8.name):  # both sides are v6.8: say which reading is which
        name = f"the {name} model"
    plain = "v6.8 read plainly"
    ours, theirs = _outcome(result, exempt), _outcome(reference, exempt)
    if ours != theirs:
        return f"{plain} {theirs}, {name} {ours}"
    if not exempt and result.messages != reference.messages:
        return (f"{plain} prints {list(reference.messages)}, {name} prints "
                f"{list(result.messages)}")
    if ours.startswith("fails") and result.failed_tdmr is None:
        return None  # no TDMR list to compare: it failed before reserved areas (or had none)
    for part, key, show in _PARTS:
        if part in exempt:
            continue
        for i, (mine, ref) in enumerate(zip(result.tdmrs, reference.tdmrs, strict=True)):
            if key(mine) != key(ref):
                return f"TDMR {i}: {plain} {show(ref)}; {name} {show(mine)}"
    if exempt:
        return None  # how a variant counts areas follows from the areas it may change
    for i, (mine, ref) in enumerate(zip(result.demand, reference.demand, strict=True)):
        if mine != ref:
            return (f"TDMR {i}: {plain} counts its reserved areas as {ref.describe()}; {name} as "
                    f"{mine.describe()}")
        if mine.total != len(reference.tdmrs[i].reserved):  # the figure reports print
            return (f"TDMR {i}: {plain} needs {len(reference.tdmrs[i].reserved)} reserved areas; "
                    f"{name} says {mine.total}")
    return None
