"""The counterexample corpus: writing counterexample documents, reading a corpus folder back,
and the smallest maps.

A stored counterexample is one JSON document (`schema_version`, `check`, `profile`, `config`,
`invariant`, `counterexample`); `checker.gate.replay` reads and re-runs it. A document is named
after its content, so the same counterexample keeps its name, and a file is written in one
rename, so a run killed while writing leaves no half-written document behind.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from checker.engines.synth import SYNTH_PROPERTIES
from checker.files import write_text_atomic
from checker.gate.replay import (
    CONSTRUCT_FAILS,
    SCHEMA_VERSION,
    load_document,
    replay_document,
)
from spec.errno import ENOSPC


def save_map_counterexample(report: dict[str, Any], folder: str) -> tuple[Path, bool]:
    """Store a synthesised map so that `verify` replays it: v6.8 must keep failing on it the
    same way, or the change shows in the gate. Returns the path and whether it was written."""
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


# The parts of a counterexample written for people (or for the record): the same
# counterexample described in other words is still the same one, and keeps its name.
PRESENTATION = frozenset(("text", "result", "sites", "minimality"))


def document_file(doc: dict[str, Any], stem: str) -> tuple[str, str]:
    """(`<stem>-<content hash>.json`, the file's text): the same counterexample, the same name.
    The hash leaves out the words (`PRESENTATION`), so rewording a trace or a message does not
    make a known counterexample look new."""
    body = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    content = {**doc, "counterexample": {k: v for k, v in doc["counterexample"].items()
                                         if k not in PRESENTATION}}
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:10]
    return f"{stem}-{digest}.json", body


def write_document(doc: dict[str, Any], folder: str | Path, stem: str) -> tuple[Path, bool]:
    """Write the document into `folder` under its content-hash name unless that file already
    holds exactly it (a damaged file of that name is replaced). Returns the path and whether
    it was written."""
    name, body = document_file(doc, stem)
    path = Path(folder) / name
    if path.is_file() and path.read_bytes() == body.encode():
        return path, False
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, body)
    return path, True


def with_recorded_result(doc: dict[str, Any]) -> dict[str, Any]:
    """The document with `counterexample.result` filled in by replaying it now, so a later
    replay can say whether it gives the very same result."""
    outcome = replay_document(doc)
    doc["counterexample"]["result"] = outcome.text
    return doc


def read_corpus(folder: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every `*.json` of a corpus folder, validated, in name order (none when the folder does
    not exist). Anything else under such a name (a folder, a dangling symlink, a file that is
    not a valid counterexample) raises the ReplayError naming it: the corpus holds
    counterexamples only, and one that cannot be read must be fixed or removed, not skipped."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return [(path, load_document(path)) for path in sorted(root.glob("*.json"))]
