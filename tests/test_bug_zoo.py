"""The bug zoo: every bug profile is caught by the invariant that states the broken rule, with a
counterexample that replays; v6.8 passes the same checks."""

from __future__ import annotations

import pytest

from checker.gate.corpus import document
from checker.gate.replay import replay_document
from checker.gate.runners import run_check
from checker.gate.suite import Bounds, CheckSpec, profile_scope
from spec.profiles import BUGS, PROFILES

# The configurations verify explores, in the order tried here (the first that catches wins).
FLOW_CONFIGS = ("default", "rsvd-exhausted", "unchecked-callers")

CAUGHT_BY = {
    "bug-lp-init-irq-reentry": "SEAMCALL-ACCEPTED",
    "bug-sysinit-failure-not-cached": "SYSINIT-ONCE",
    "bug-enodev-retried": "INIT-AT-MOST-ONCE",
    "bug-cpu-check-outside-hotplug-lock": "PACKAGES-ONLINE-FOR-KEYS",
    "bug-pamt-entries-int32": "PAMT-SIZE",
    "bug-pamt-freed-without-reset": "PAMT-RESET-BEFORE-FREE",
    "bug-tdmr-list-freed": "MC-BLAMES-MODULE-PAGES",
    "mutant-no-wbinvd-before-key-config": "FLUSH-BEFORE-KEY",
    "mutant-key-config-every-cpu": "SEAMCALL-ACCEPTED",
    "mutant-initialized-after-first-chunk": "READY-AGREES",
    "mutant-rsvd-unsorted": "RSVD-ORDER",
    "mutant-other-pamt-not-reserved": "RSVD-COVERS-PAMT",
    "mutant-pamt-double-free": "FREE-ONCE",
    "mutant-notifier-checks-start-only": "MEMORY-STATIC-WHEN-READY",
    "mutant-notifier-rejects-when-empty": "ONLINE-VETO-ONLY-WHEN-READY",
    "mutant-lp-flag-cleared-on-offline": "SEAMCALL-ACCEPTED",
    "mutant-s3-left-enabled": "NO-S3-OR-HIBERNATE-WITH-TDX",
    "mutant-hibernation-allowed": "NO-S3-OR-HIBERNATE-WITH-TDX",
    "mutant-lp-init-after-failed-sysinit": "SEAMCALL-ACCEPTED",
    "mutant-caller-skips-cpus": "SEAMCALL-ACCEPTED",
    "mutant-cpus-unlocked-before-enable": "CPUS-FROZEN-DURING-ENABLE",
    "mutant-vmxoff-not-refcounted": "SEAMCALL-ACCEPTED",
    "mutant-error-retried": "STATUS-MONOTONE",
    "mutant-mutex-kept-on-failure": "DEADLOCK-FREE",
    "mutant-memlist-leaked-on-failure": "RESOURCES-AT-REST",
    "mutant-pamts-leaked-on-alloc-failure": "RESOURCES-AT-REST",
    "mutant-pamts-leaked-on-rsvd-failure": "RESOURCES-AT-REST",
    "mutant-pamts-leaked-on-config-failure": "RESOURCES-AT-REST",
    "mutant-key-config-in-parallel": "SEAMCALL-ACCEPTED",
}


def first_failure(profile: str):
    """Run the profile's checks as verify would, until one fails."""
    scope = profile_scope(PROFILES[profile])
    specs = []
    if "flow" in scope:
        specs += [CheckSpec(f"flow/{profile}/{c}", "flow", profile, c, Bounds())
                  for c in FLOW_CONFIGS]
    if "maps" in scope:
        specs.append(CheckSpec(f"maps/{profile}/grid", "maps", profile, "grid", Bounds()))
    for spec in specs:
        result = run_check(spec)
        assert result.status in ("pass", "fail"), result.detail
        if result.status == "fail":
            return result
    return None


def test_every_bug_profile_is_listed():
    assert set(CAUGHT_BY) == {p.name for p in BUGS}
    assert all(p.kind == "bug" for p in BUGS)


@pytest.mark.parametrize("profile", sorted(CAUGHT_BY))
def test_bug_is_caught_by_its_invariant_and_the_counterexample_replays(profile):
    result = first_failure(profile)
    assert result is not None, f"{profile} was not caught"
    assert result.invariant == CAUGHT_BY[profile]
    assert result.location is not None and result.location.kind == "spec"
    doc = document(result.id, result.profile, result.config, result.invariant,
                   dict(result.counterexample))
    first = replay_document(doc)
    assert first.still_violates and first.invariant == result.invariant
    doc["counterexample"]["result"] = first.text
    again = replay_document(doc)
    assert again.same_as_recorded and again.still_violates


@pytest.mark.parametrize("config", FLOW_CONFIGS)
def test_v6_8_passes_the_flow_checks_the_bugs_fail(config):
    result = run_check(CheckSpec(f"flow/v6.8/{config}", "flow", "v6.8", config, Bounds()))
    assert result.status == "pass", result.detail
    assert result.states > 1000


def test_v6_8_passes_the_grid_maps():
    result = run_check(CheckSpec("maps/v6.8/grid", "maps", "v6.8", "grid", Bounds()))
    assert result.status == "pass" and "not a proof" in result.detail


def test_a_bug_counterexample_no_longer_violates_on_v6_8():
    """Replaying a bug's trace on v6.8 must not reproduce the violation."""
    result = first_failure("mutant-no-wbinvd-before-key-config")
    doc = document(result.id, "v6.8", result.config, result.invariant,
                   dict(result.counterexample))
    doc["counterexample"]["trace"]["model"]["profile"] = "v6.8"
    assert not replay_document(doc).still_violates
