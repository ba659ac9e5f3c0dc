"""The search for the smallest map and PAMT placement on which a profile goes wrong
(`checker.engines.mapsearch`), and the `maps` check that runs it.

Besides the bug profiles, the search meets mutants of `spec/tdmr.py` that no profile names: a
copy of the module with one line changed, run in place of `construct_tdmrs` and measured
against the plain reading of v6.8 (`invariants.tdmr_reference`).
"""

from __future__ import annotations

import json
import sys
import types
from functools import cache
from itertools import count
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

import checker.gate.runners as runners
import spec.tdmr
from checker.engines.mapsearch import (
    EXAMPLES,
    ConstructionCrashed,
    MapWitness,
    SearchOutcome,
    examine,
    smallest_violating_map,
)
from checker.engines.mapstrategies import MapCase, map_cases
from checker.gate.replay import CONSTRUCT_FAILS, DIFFERS, LAYOUT_VIOLATED, replay_document
from checker.gate.results import ERROR, FAIL, PASS
from checker.gate.suite import CheckSpec
from checker.inputs.readers import read_input, read_json_map
from invariants.machine import differs_from_v6_8
from spec.errno import ENOMEM
from spec.memory import SZ_1G, SZ_1M, MemRange, build_tdx_memlist
from spec.profiles import HOLES_CMR, PROFILES, V6_8, get_profile
from spec.sysinfo import TdxSysinfo
from spec.tdmr import construct_tdmrs

TDMR_SOURCE = Path(__file__).resolve().parents[1] / "spec" / "tdmr.py"
SZ_8T = 8 << 40


@cache
def search(name: str) -> SearchOutcome:
    return smallest_violating_map(get_profile(name))


# --- the bug profiles with a TDMR rule -------------------------------------------------------

def test_unsorted_reserved_areas_are_caught_with_one_region():
    w = search("mutant-rsvd-unsorted").witness
    assert w is not None and w.finding.invariant == "RSVD-ORDER"
    assert len(w.case.regions) == 1
    assert w.finding.result.ok  # the module would get the unsorted list


def test_a_pamt_in_another_tdmr_not_reserved_there_is_caught_with_two_regions():
    w = search("mutant-other-pamt-not-reserved").witness
    assert w is not None and w.finding.invariant == "RSVD-COVERS-PAMT"
    assert len(w.case.regions) == 2  # one region makes TDMRs that hold only their own chunk
    tdmrs = w.finding.result.tdmrs
    homes = [next(i for i, t in enumerate(tdmrs) if t.base <= tdmr.pamt_base < t.end)
             for tdmr in tdmrs]
    assert homes != list(range(len(tdmrs)))  # some chunk lies in another TDMR


def test_32_bit_pamt_entry_counts_are_caught_by_pamt_size_on_one_huge_region():
    w = search("bug-pamt-entries-int32").witness
    assert w is not None and w.finding.invariant == "PAMT-SIZE"
    assert len(w.case.regions) == 1
    tdmr = w.finding.result.tdmrs[0]
    assert tdmr.size >= SZ_8T  # 2^31 4K pages: the count no longer fits a signed int
    assert tdmr.pamt_sizes[0] != (tdmr.size >> 12) * 16


@pytest.mark.parametrize("name", ["v6.8", "cmr-holes"])
def test_v6_8_and_the_cmr_variant_go_wrong_on_no_case(name):
    outcome = search(name)
    assert outcome.witness is None
    assert outcome.examples == EXAMPLES  # every case generated was examined, none shrunk


def test_the_search_is_deterministic():
    again = smallest_violating_map(get_profile("mutant-other-pamt-not-reserved"))
    first = search("mutant-other-pamt-not-reserved")
    assert again.examples == first.examples
    assert again.witness.case == first.witness.case
    assert again.witness.finding.texts == first.witness.finding.texts


def test_a_search_past_its_time_bound_stops_incomplete():
    outcome = smallest_violating_map(V6_8, time_s=0)
    assert (outcome.witness, outcome.examples, outcome.complete) == (None, 0, False)


def test_a_search_stopped_while_shrinking_keeps_the_smallest_case_so_far(monkeypatch):
    """A clock that ticks once per reading: the bound passes about the tenth case examined,
    while the second (the first that goes wrong) is being shrunk."""
    clock = count()
    monkeypatch.setattr("checker.engines.mapsearch.perf_counter", lambda: next(clock))
    outcome = smallest_violating_map(get_profile("mutant-rsvd-unsorted"), time_s=10)
    assert outcome.complete is False and outcome.witness is not None
    assert outcome.witness.finding.invariant == "RSVD-ORDER"


# --- mutants of spec/tdmr.py that no profile names -------------------------------------------

@cache
def mutated_construct(old: str, new: str):
    """`construct_tdmrs` of a copy of spec/tdmr.py with `old` (found exactly once) replaced.
    The copy builds the real module's classes, so its results compare with the real ones."""
    source = TDMR_SOURCE.read_text()
    assert source.count(old) == 1, f"mutation site not found in spec/tdmr.py: {old!r}"
    module = types.ModuleType(f"mutant_tdmr_{abs(hash((old, new)))}")
    sys.modules[module.__name__] = module  # dataclasses look their module up while defined
    try:
        exec(compile(source.replace(old, new), f"{TDMR_SOURCE} (mutant)", "exec"),
             module.__dict__)
    finally:
        del sys.modules[module.__name__]
    module.__dict__.update({name: value for name, value in vars(spec.tdmr).items()
                            if isinstance(value, type) and value.__module__ == "spec.tdmr"})
    return module.construct_tdmrs


@cache
def search_mutant(old: str, new: str) -> SearchOutcome:
    return smallest_violating_map(V6_8, construct=mutated_construct(old, new))


FILL_AT_END_MINUS_1G = ("start = max(start, last.end)", "start = max(start, last.end - SZ_1G)")
NID_GE = ("i = bisect_left(ends, tdmr.base + 1)\n    if i < len(memlist)",
          "i = bisect_left(ends, tdmr.base)\n    if i < len(memlist)")
PAMT_NOT_CLIPPED = ("start, end = max(tdmrs[j].pamt_base, tdmr.base), "
                    "min(tdmrs[j].pamt_end, tdmr.end)",
                    "start, end = tdmrs[j].pamt_base, tdmrs[j].pamt_end")
ZERO_SIZE_TDMR = ("if end <= last.end:", "if end < last.end:")
HOLES_SKIP_END_AT_BASE = ("i = bisect_left(ends, tdmr.base)  #",
                          "i = bisect_left(ends, tdmr.base + 1)  #")


def test_a_new_tdmr_opened_a_gib_early_overlaps_the_last():
    """fill_out_tdmrs opening the next TDMR at `last.end - 1G`: two regions whose second
    crosses the end of the first's TDMR give overlapping TDMRs."""
    w = search_mutant(*FILL_AT_END_MINUS_1G).witness
    assert w is not None and w.finding.invariant == "TDMR-ORDER"
    assert len(w.case.regions) == 2


def test_a_pamt_node_taken_from_an_entry_ending_at_the_tdmr_base_departs_from_v6_8():
    """tdmr_get_nid with `>=`: an entry ending exactly at a TDMR base lends its node to that
    TDMR's PAMT. No layout invariant looks at nodes; the chunk lands elsewhere than v6.8's."""
    w = search_mutant(*NID_GE).witness
    assert w is not None and w.finding.invariant == "SAME-AS-V6.8"
    assert "PAMT" in w.finding.texts[0]
    tdmr_bases = {t.base for t in w.finding.result.tdmrs}
    ends = [(a, b) for a, b in zip(w.case.memlist, w.case.memlist[1:], strict=False)
            if a.end in tdmr_bases and a.nid != b.nid]
    assert ends, "an entry ends at a TDMR base and the next one is on another node"


def test_pamt_areas_not_clipped_to_the_tdmr_are_caught_with_a_chunk_across_an_edge():
    """tdmr_populate_rsvd_pamts without clipping: only a chunk across a TDMR edge shows it,
    which the search places next to the edge."""
    w = search_mutant(*PAMT_NOT_CLIPPED).witness
    assert w is not None and w.finding.invariant == "RSVD-INSIDE"
    tdmrs = w.finding.result.tdmrs
    edges = {t.base for t in tdmrs} | {t.end for t in tdmrs}
    assert any(t.pamt_base < e < t.pamt_end for t in tdmrs for e in edges)


def test_a_zero_size_tdmr_fails_allocation_where_v6_8_builds():
    """fill_out_tdmrs not skipping an entry whose rounded end equals the last TDMR's end opens
    a TDMR of size 0. Its PAMT chunk has size 0, which the allocator refuses (it used to divide
    by zero): construction fails with -ENOMEM where v6.8 builds."""
    w = search_mutant(*ZERO_SIZE_TDMR).witness
    assert w is not None and w.finding.invariant == "SAME-AS-V6.8"
    assert w.finding.result.error.errno == -ENOMEM
    assert construct_tdmrs(w.case.memlist, w.case.sysinfo, w.finding.placement).ok


WARN_ONE_EARLY = ("TDMR_NR_WARN = 4  #", "TDMR_NR_WARN = 5  #")
TRAILING_COUNTED_AS_GAP = ("trailing = sum(1 for a in areas if a.offset + a.size == tdmr.size "
                               "and a.offset != 0)",
                               "trailing = sum(1 for a in areas if a.offset + a.size == tdmr.size "
                               "and a.offset == 0)")


def test_a_warning_printed_one_tdmr_early_departs_from_v6_8():
    """The "consumed TDMRs reaching limit" line with 5 TDMRs left instead of 4: the same layout,
    another line in the log. Only the plain reference sees it; the search lowers the module's
    TDMR limit until the line differs."""
    w = search_mutant(*WARN_ONE_EARLY).witness
    assert w is not None and w.finding.invariant == "SAME-AS-V6.8"
    assert "consumed TDMRs reaching limit" in w.finding.texts[0]
    assert w.case.sysinfo.max_tdmrs - len(w.finding.result.tdmrs) == 4


def test_a_trailing_hole_counted_as_a_gap_departs_from_v6_8():
    """The reserved-area demand an explanation shows, miscounted: a trailing hole counted as a
    gap. The areas are right, the count each failure report gives is not."""
    w = search_mutant(*TRAILING_COUNTED_AS_GAP).witness
    assert w is not None and w.finding.invariant == "SAME-AS-V6.8"
    assert "counts its reserved areas" in w.finding.texts[0]
    assert len(w.case.regions) == 1


def test_a_wrong_total_of_reserved_areas_departs_from_v6_8(monkeypatch):
    """The figure a failure report prints ("18 reserved areas needed"), summed wrongly (the
    own PAMT left out): the areas and their breakdown are right, the total is not. The
    reference counts the areas themselves, so the sum is checked against them."""
    monkeypatch.setattr(spec.tdmr.AreaDemand, "total", property(
        lambda d: d.leading_holes + d.gaps + d.trailing_holes + d.other_pamts))
    w = smallest_violating_map(V6_8).witness
    assert w is not None and w.finding.invariant == "SAME-AS-V6.8"
    assert "reserved areas; the v6.8 model says" in w.finding.texts[0]
    assert len(w.case.regions) == 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(map_cases(with_cmrs=True))
def test_skipping_entries_that_end_at_the_tdmr_base_changes_nothing(case: MapCase):
    """An equivalent mutant: tdmr_populate_rsvd_holes skipping entries that end exactly at the
    TDMR base. Such an entry starts below the base, so visiting it makes no hole and sets
    `prev_end` to its end, the base, which is where `prev_end` starts anyway; entries are
    sorted and disjoint, so nothing after it changes. The search cannot catch it, rightly."""
    mutant = mutated_construct(*HOLES_SKIP_END_AT_BASE)
    for profile in (V6_8, get_profile("cmr-holes")):
        for placement in case.placements:
            args = (case.memlist, case.sysinfo, placement, case.cmrs, profile)
            assert mutant(*args) == construct_tdmrs(*args)


# --- SAME-AS-V6.8: what a variant may change ------------------------------------------------

EMR_WITH_CMR = TDMR_SOURCE.parents[1] / "checker/data/maps/emr-fcp-e820-first-2g-with-cmr.log"


def _emr_results(profile):
    machine = read_input(str(EMR_WITH_CMR))
    memlist = build_tdx_memlist(machine.regions)
    return (construct_tdmrs(memlist, cmrs=machine.cmrs, profile=profile),
            construct_tdmrs(memlist, cmrs=machine.cmrs))


def test_the_cmr_variant_may_fit_reserved_areas_where_v6_8_runs_out():
    """On the Emerald Rapids map v6.8 runs out of reserved areas in TDMR 0 and the CMR fix
    builds: what the fix exists for. Its TDMRs and PAMT chunks are v6.8's, so no difference."""
    variant = get_profile("cmr-holes")
    result, reference = _emr_results(variant)
    assert result.ok and reference.failed_tdmr == 0
    assert differs_from_v6_8(variant, result, reference) is None


def test_the_same_change_as_a_bug_or_for_another_rule_is_compared_in_full():
    """A bug profile is compared in full, and so is a variant whose switched rule has no
    stated purpose: building where v6.8 fails, or other reserved areas, is a departure."""
    as_bug = V6_8.but("test-cmr-holes-bug", "CMR holes as a bug", "tests", holes=HOLES_CMR)
    result, reference = _emr_results(as_bug)
    assert differs_from_v6_8(as_bug, result, reference) == (
        "v6.8 read plainly fails: initialization failed: TDMR [0x0, 0x80000000): reserved "
        "areas exhausted. (-28), test-cmr-holes-bug builds 1 TDMRs")
    unsorted = V6_8.but("test-unsorted-variant", "unsorted areas as a variant", "tests",
                        kind="variant", sort_reserved_areas=False)
    memlist = (MemRange(SZ_1M, SZ_1G // 2),)
    diff = differs_from_v6_8(unsorted, construct_tdmrs(memlist, profile=unsorted),
                             construct_tdmrs(memlist))
    assert diff is not None and diff.startswith(
        "TDMR 0: v6.8 read plainly [0x0, 0x40000000) reserved hole")


# --- crashes are checker errors --------------------------------------------------------------

RAISES = V6_8.but("test-construction-raises", "PAMT entry counts held in 0 bits: the model "
                  "shifts by -1 and raises", "tests", pamt_entry_count_bits=0)


def test_a_construction_that_raises_is_reported_on_the_smallest_map_not_caught_as_a_bug():
    with pytest.raises(ConstructionCrashed, match="ValueError") as info:
        smallest_violating_map(RAISES)
    assert "1-region map" in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_the_maps_check_of_a_profile_whose_construction_raises_is_a_checker_error(monkeypatch):
    monkeypatch.setitem(PROFILES, RAISES.name, RAISES)
    result = runners.run_check(CheckSpec(f"maps/{RAISES.name}/grid", "maps", RAISES.name,
                                         "grid"))
    assert result.status == ERROR and result.invariant == "CHECKER-ERROR"
    assert "ConstructionCrashed" in result.detail and result.counterexample is None


# --- the maps check --------------------------------------------------------------------------

def run_maps(monkeypatch, name: str, outcome: SearchOutcome | None = None):
    """The maps check of a profile, with the search's outcome given or taken from the cache."""
    monkeypatch.setattr(runners, "smallest_violating_map",
                        lambda profile, time_s: outcome or search(profile.name))
    return runners.run_maps(CheckSpec(f"maps/{name}/grid", "maps", name, "grid"))


def replay(result, profile: str):
    doc = {"schema_version": 1, "profile": profile, "invariant": result.invariant,
           "counterexample": result.counterexample}
    return replay_document(json.loads(json.dumps(doc)))


def test_v6_8_passes_the_maps_check(monkeypatch):
    result = run_maps(monkeypatch, "v6.8")
    assert result.status == PASS and result.states == EXAMPLES
    assert "not a proof" in result.detail


@pytest.mark.parametrize("name", ["mutant-rsvd-unsorted", "mutant-other-pamt-not-reserved",
                                  "bug-pamt-entries-int32"])
def test_a_caught_bug_profile_gives_a_counterexample_that_replays_word_for_word(monkeypatch,
                                                                                 name):
    result = run_maps(monkeypatch, name)
    w = search(name).witness
    assert result.status == FAIL and result.invariant == w.finding.invariant
    assert result.counterexample["property"] == LAYOUT_VIOLATED
    assert result.location.file.endswith("spec/tdmr.py")
    again = replay(result, name)
    assert again.still_violates
    assert again.text == result.counterexample["text"] == "\n".join(w.finding.texts)


def test_a_departure_that_fails_is_stored_as_a_construction_failure(monkeypatch):
    outcome = search_mutant(*ZERO_SIZE_TDMR)
    result = run_maps(monkeypatch, "v6.8", outcome)
    assert result.status == FAIL and result.invariant == "SAME-AS-V6.8"
    body = result.counterexample
    assert body["property"] == CONSTRUCT_FAILS and body["errno"] == -ENOMEM
    assert not replay(result, "v6.8").still_violates  # the real v6.8 builds on that map


def test_a_departure_that_builds_another_list_is_stored_as_a_replayable_map(monkeypatch):
    """The smallest map on which a profile builds another TDMR list than v6.8 is stored with
    the property "differs-from-v6.8", which replay tests again."""
    outcome = search_mutant(*NID_GE)
    result = run_maps(monkeypatch, "v6.8", outcome)
    assert result.status == FAIL and result.invariant == "SAME-AS-V6.8"
    body = result.counterexample
    assert (body["property"], body["errno"]) == (DIFFERS, None)
    machine = read_json_map(json.dumps(body["map"]), "<counterexample>")
    assert machine.regions == outcome.witness.case.regions


def test_a_chunk_placed_next_to_an_edge_is_stored_as_explicit_bases(monkeypatch):
    """TDMRs [0, 1G) and [1G, 2G) over memory [768M, 1.5G) that spans their edge: the target
    2 MiB below 1G puts TDMR 0's chunk across the edge, where the unclipping mutant reserves
    it beyond TDMR 0. The counterexample replays that placement as explicit bases."""
    regions = (MemRange(SZ_1M, 512 * SZ_1M), MemRange(768 * SZ_1M, 1536 * SZ_1M))
    case = MapCase(regions, build_tdx_memlist(regions), TdxSysinfo(), (SZ_1G - 2 * SZ_1M,))
    findings = examine(case, V6_8, mutated_construct(*PAMT_NOT_CLIPPED))
    assert [f.placement.name for f in findings] == ["nearest"]  # first- and last-fit do not
    (finding,) = findings
    assert finding.invariant == "RSVD-INSIDE"
    result = run_maps(monkeypatch, "v6.8", SearchOutcome(MapWitness(case, finding), 1))
    body = result.counterexample
    assert (body["placement"], body["property"]) == ("explicit", LAYOUT_VIOLATED)
    machine = read_json_map(json.dumps(body["map"]), "<counterexample>")
    assert machine.pamt_bases == finding.bases == {0: 255 * 0x403000, 1: 0x403000}
    assert not replay(result, "v6.8").still_violates  # the real v6.8 clips the area
