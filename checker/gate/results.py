"""The outcome of one check, the unit that `verify`, the baseline and every report share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASS = "pass"
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
ERROR = "error"
STATUSES = (PASS, FAIL, INCONCLUSIVE, ERROR)


@dataclass(frozen=True)
class Location:
    """Where a failure points: the `spec` function whose step violated the invariant
    (`kind="spec"`) or the line of the input map (`kind="input"`)."""

    kind: str
    file: str
    line: int
    function: str | None = None


@dataclass(frozen=True)
class CheckResult:
    """One check: which invariant(s), on which profile and configuration, and the verdict.

    `invariant` names the violated invariant on failure, otherwise the property the check
    stands for. `counterexample` is JSON-ready (a trace or a memory map) and replayable.
    `detail` is one line for people; `bound` says which bound or timeout made it inconclusive.
    """

    id: str
    invariant: str
    profile: str
    config: str
    status: str
    detail: str = ""
    counterexample: dict[str, Any] | None = None
    duration_s: float = 0.0
    states: int | None = None
    bound: str | None = None
    location: Location | None = None
    statement: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
