"""Every JSON the checker reads or writes has a versioned schema in checker/schemas/, shipped in
the package; real outputs validate against it and a wrong one does not."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from checker import schemas
from checker.cli import main
from checker.inputs.readers import memory_map_json
from spec.memory import MemRange

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", schemas.NAMES)
def test_each_schema_is_a_valid_draft_2020_12_schema_with_its_own_id(name):
    schema = schemas.load(name)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith(f"/{name}.schema.json") or name in (
        "counterexample", "report", "baseline")


def _errors(name: str, document) -> list[str]:
    return [e.message for e in schemas.validator(name).iter_errors(document)]


def _explore(capsys, *args) -> dict:
    main(["explore", *args, "--format", "json"])
    return json.loads(capsys.readouterr().out)


def test_explore_outputs_follow_their_schema(capsys):
    passing = _explore(capsys, "--config", "1x1", "--coverage")
    failing = _explore(capsys, "--profile", "bug-lp-init-irq-reentry", "--config", "1x1")
    bounded = _explore(capsys, "--max-states", "50")
    for output in (passing, failing, bounded):
        assert output["schema_version"] == 1
        assert _errors("explore", output) == []
    assert failing["trace"]["invariant"] == "SEAMCALL-ACCEPTED"
    assert _errors("explore", {**passing, "verdict": "maybe"}) != []
    broken = json.loads(json.dumps(failing))
    broken["trace"]["initial"] = 0.0  # a float is not an index, even through a $ref
    assert _errors("explore", broken) != []


def test_replay_output_follows_its_schema(capsys):
    stored = sorted((REPO / "counterexamples").glob("flow--bug-lp-init-irq-reentry--default-*"))
    assert main(["replay", str(stored[0]), "--format", "json"]) == 1
    output = json.loads(capsys.readouterr().out)
    assert _errors("replay", output) == []
    assert (output["still_violates"], output["exit_code"]) == (True, 1)
    assert _errors("replay", {**output, "exit_code": 2}) != []


def test_every_stored_counterexample_follows_its_schema():
    files = sorted((REPO / "counterexamples").glob("*.json"))
    assert files
    for path in files:
        assert _errors("counterexample", json.loads(path.read_text())) == [], path.name


def test_the_map_the_readers_write_follows_the_map_schema():
    regions = (MemRange(0x100000, 0x80000000, 0), MemRange(0x80000000, 0xC0000000, 1))
    written = memory_map_json(regions, cmrs=regions)
    assert _errors("map", written) == []
    assert _errors("map", {**written, "regions": []}) != []
    assert _errors("map", {**written, "colour": "blue"}) != []
