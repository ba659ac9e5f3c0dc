"""The counterexample corpus: writing counterexample documents, and the smallest maps.

A stored counterexample is one JSON document (`schema_version`, `check`, `profile`, `config`,
`invariant`, `counterexample`); `checker.gate.replay` reads and re-runs it. A document is named
after its content, so the same counterexample keeps its name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from checker.engines.synth import SYNTH_PROPERTIES
from checker.gate.replay import CONSTRUCT_FAILS, SCHEMA_VERSION, replay_document
from spec.errno import ENOSPC


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


def with_recorded_result(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with `counterexample.result` filled in by replaying it now, so a later
    replay can say whether it gives the very same result."""
    outcome = replay_document(doc)
    doc["counterexample"]["result"] = outcome.text
    return doc
