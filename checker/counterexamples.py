"""Counterexample files: writing the smallest maps, and replaying any stored counterexample.

A stored counterexample is one JSON document (`schema_version`, `check`, `profile`, `config`,
`invariant`, `counterexample`). `counterexample.kind` says how to replay it: "map" (rebuild the
TDMRs for a memory map and test a property of the result) or "trace" (re-run a flow trace).
Replaying gives the same text as the run that found it and says whether it still violates.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checker.readers import read_json_map
from checker.synth import Counterexample, synthesise
from checker.tdmr_report import TdmrOptions, analyse
from invariants.machine import (
    INIT_PLACEMENT_INDEPENDENT,
    INIT_WHEN_LAYOUT_EXISTS,
    LIMIT_RSVD_EXHAUSTED,
    LIMIT_TDMRS_EXHAUSTED,
)
from spec.errno import ENOSPC
from spec.memory import MemRange
from spec.profiles import V6_8, get_profile
from spec.sysinfo import TdxSysinfo

SCHEMA_VERSION = 1
# What a map counterexample shows, and so what "still violates" means on replay.
LAYOUT_VIOLATED = "layout-violated"  # construction succeeds with a layout breaking invariants
CONSTRUCT_FAILS = "construct-fails"  # construction fails with the recorded errno


# The property each kind of smallest map stands for, as verify's checks name them. A map that
# only hits a limit the kernel must enforce records that limit being hit.
SYNTH_PROPERTIES = {
    "kernel-fails-plan-exists": INIT_WHEN_LAYOUT_EXISTS.id,
    "placement-breaks": INIT_PLACEMENT_INDEPENDENT.id,
    "rsvd-exhausted": LIMIT_RSVD_EXHAUSTED.id,
    "tdmrs-exhausted": LIMIT_TDMRS_EXHAUSTED.id,
}


def e820_lines(regions: tuple[MemRange, ...] | list[MemRange]) -> list[str]:
    """The map as the firmware table a kernel would print: usable ranges, reserved gaps."""
    lines, prev = [], 0
    for r in regions:
        if r.start > prev:
            lines.append(f"BIOS-e820: [mem 0x{prev:016x}-0x{r.start - 1:016x}] reserved")
        lines.append(f"BIOS-e820: [mem 0x{r.start:016x}-0x{r.end - 1:016x}] usable")
        prev = r.end
    return lines


def synthesise_report(kind: str, max_tdmrs: int | None, max_reserved: int | None,
                      entry_sizes: tuple[int, int, int] | None,
                      timeout_ms: int) -> tuple[dict[str, Any], Counterexample]:
    """`counterexample KIND`: the map, the `tdmr --format json` result on it, the proof."""
    defaults = TdxSysinfo()
    sysinfo = TdxSysinfo(max_tdmrs or defaults.max_tdmrs,
                         max_reserved or defaults.max_reserved_per_tdmr,
                         entry_sizes or defaults.pamt_entry_size)
    cex = synthesise(kind, sysinfo, V6_8, timeout_ms)
    report = cex.to_json()
    report["e820"] = e820_lines(cex.regions)
    report["kernel"] = None
    if cex.status == "found":
        machine = read_json_map(json.dumps(cex.map_json()), f"<{kind} map>")
        report["kernel"] = analyse(machine, TdmrOptions(V6_8))
        report["text"] = "\n".join([cex.describe(), "  as e820 lines:",
                                    *("    " + line for line in report["e820"])])
    return report, cex


def save_map_counterexample(report: dict[str, Any], folder: str) -> Path:
    """Store a synthesised map so that `verify` replays it: v6.8 must keep failing on it the
    same way, or the change shows in the gate."""
    kernel = report["kernel"]
    meta = report["map"]["metadata"]
    config = (f"{meta['max_tdmrs']} TDMRs, {meta['max_reserved_per_tdmr']} areas, entries "
              f"{','.join(map(str, meta['pamt_entry_size']))}")
    the_map, errno = dict(report["map"]), kernel["error"] and kernel["error"]["errno"]
    witness = (report.get("worst_case") or {}).get("witness")
    if witness:  # the failure needs the adversarial placement: record its chunk bases
        the_map["pamt_bases"] = [witness[i] for i in sorted(witness, key=int)]
        errno = -ENOSPC
    body = {"kind": "map", "map": the_map, "placement": "first-fit",
            "property": CONSTRUCT_FAILS, "errno": errno,
            "minimality": report["minimality"], "text": report["text"]}
    doc = document(f"counterexample/{report['kind']}", report["profile"], config,
                   SYNTH_PROPERTIES[report["kind"]], body)
    return write_document(with_recorded_result(doc), folder, f"{report['kind']}")


def document(check: str, profile: str, config: str, invariant: str,
             counterexample: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": SCHEMA_VERSION, "check": check, "profile": profile,
            "config": config, "invariant": invariant, "counterexample": counterexample}


def write_document(doc: dict[str, Any], folder: str | Path, stem: str) -> Path:
    """Write under `<stem>-<content hash>.json`: the same counterexample keeps its name."""
    body = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    digest = hashlib.sha256(body.encode()).hexdigest()[:10]
    path = Path(folder) / f"{stem}-{digest}.json"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return path


@dataclass(frozen=True)
class Replay:
    """What replaying found: does the counterexample still violate, the result in words, and
    whether that is word for word the result recorded when it was found."""

    still_violates: bool
    text: str
    invariant: str
    same_as_recorded: bool | None = None


class ReplayError(ValueError):
    """A counterexample file that cannot be replayed (exit 2)."""


def load_document(path: str | Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReplayError(f"{path}: not a counterexample file: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION \
            or not isinstance(doc.get("counterexample"), dict):
        raise ReplayError(f"{path}: not a counterexample file (schema_version "
                          f"{SCHEMA_VERSION} with a 'counterexample' object expected)")
    return doc


def replay_document(doc: dict[str, Any], name: str = "<counterexample>") -> Replay:
    body = doc["counterexample"]
    kind = body.get("kind")
    try:
        profile = get_profile(doc.get("profile", ""))
    except KeyError as exc:
        raise ReplayError(f"{name}: {exc.args[0]}") from None
    if kind == "map":
        return _replay_map(doc, body, profile, name)
    if kind == "trace":
        from checker.flowcheck import replay_trace

        return replay_trace(doc, body, profile, name)
    raise ReplayError(f"{name}: unknown counterexample kind {kind!r}")


def with_recorded_result(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with `counterexample.result` filled in by replaying it now, so a later
    replay can say whether it gives the very same result."""
    outcome = replay_document(doc)
    doc["counterexample"]["result"] = outcome.text
    return doc


def _replay_map(doc, body, profile, name: str) -> Replay:
    machine = read_json_map(json.dumps(body["map"]), name)
    placement = None if machine.pamt_bases is not None else body.get("placement", "first-fit")
    report = analyse(machine, TdmrOptions(profile, placement, explain=False))
    prop = body.get("property")
    if prop == LAYOUT_VIOLATED:
        found = report["layout_check"]["violations"]
        still = bool(found)
        text = "\n".join(v["text"] for v in found) or "the layout now satisfies every invariant"
    elif prop == CONSTRUCT_FAILS:
        error = report["error"]
        still = error is not None and error["errno"] == body.get("errno")
        text = (f"construction fails: {error['message']} ({error['errno']})" if error
                else f"construction now succeeds ({report['pamt_kb']} KB of PAMT)")
    else:
        raise ReplayError(f"{name}: unknown map property {prop!r}")
    recorded = body.get("result")
    return Replay(still, text, doc.get("invariant", "?"),
                  None if recorded is None else recorded == text)
