"""The JSON schemas of what the checker reads and writes as JSON, in one place.

Each `NAME.schema.json` here has an `$id` under https://tdx-host-checker.invalid/schemas/ and
may refer to another by its file name: the counterexample document, the tdmr report and the
synthesis result to the memory map, the explore output and the counterexample to the trace,
the synthesis result to the tdmr report. `validator(NAME)` resolves those references and counts an
integer only when it is a JSON integer (`1.0` is not one), as the readers do.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema
import referencing
import referencing.jsonschema

HERE = Path(__file__).resolve().parent
NAMES = ("map", "counterexample", "trace", "baseline", "report", "explore", "replay", "tdmr",
         "synthesis")


def path(name: str) -> Path:
    return HERE / f"{name}.schema.json"


@cache
def load(name: str) -> dict:
    return json.loads(path(name).read_text(encoding="utf-8"))


@cache
def _registry() -> referencing.Registry:
    """Every schema, by `$id` and by file name. Their `$schema` is left out here: a referenced
    schema that names its dialect would be checked by the plain validator of that dialect,
    losing the strict integer."""
    resources = []
    for name in NAMES:
        if path(name).is_file():
            schema = {k: v for k, v in load(name).items() if k != "$schema"}
            resource = referencing.Resource.from_contents(
                schema, default_specification=referencing.jsonschema.DRAFT202012)
            resources += [(schema["$id"], resource), (path(name).name, resource)]
    return referencing.Registry().with_resources(resources)


@cache
def validator(name: str) -> jsonschema.protocols.Validator:
    """A validator of the schema `name` (e.g. "counterexample"), references resolved."""
    base = jsonschema.Draft202012Validator
    strict = base.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    return jsonschema.validators.extend(base, type_checker=strict)(load(name),
                                                                   registry=_registry())
