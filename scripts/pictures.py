"""Draw the pictures the README shows into docs/pictures/, from the code as it is.

    python scripts/pictures.py          # (re)draw them
    python scripts/pictures.py --check  # exit 1, naming them, if any is missing or stale

The TDMR layout of every shipped boot log and map that has a memory map (the CMR example with
the plan v6.8 missed beside the kernel's), of a made-up 3 TiB machine with 767 GiB TDMRs
(docs/pictures/3tib-4node.json) with its plan, and one bug of the bug zoo as a sequence
diagram. Each is what the checker's own command writes (`tdmr FILE --format svg`, `replay FILE
--format svg`), run from the repository root so the pictures name files as the README does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from checker.cli import main  # noqa: E402
from checker.gate.suite import builtin_maps  # noqa: E402

OUT = Path("docs") / "pictures"
PLANNED = {"emr-fcp-e820-first-2g-with-cmr.log", "3tib-4node.json"}  # drawn with --plan
BUG = "bug-lp-init-irq-reentry"


def commands() -> dict[str, list[str]]:
    """Picture file name -> the checker command that draws it (without --output)."""
    inputs = [Path(os.path.relpath(p, ROOT)) for p in builtin_maps()] + [OUT / "3tib-4node.json"]
    drawn = {}
    for path in inputs:
        extra = ["--plan"] if path.name in PLANNED else []
        drawn[f"layout-{path.stem}.svg"] = ["tdmr", str(path), "--format", "svg", *extra]
    [trace] = sorted(Path("counterexamples").glob(f"flow--{BUG}--default-*.json"))
    drawn[f"trace-{BUG}.svg"] = ["replay", str(trace), "--format", "svg"]
    return drawn


def draw(name: str, command: list[str], folder: Path) -> Path:
    target = folder / name
    with contextlib.redirect_stdout(io.StringIO()):
        code = main([*command, "--output", str(target)])
    if code not in (0, 1) or not target.exists():  # 1: the layout fails, or the bug violates
        raise SystemExit(f"{' '.join(command)}: exit {code}, no picture")
    return target


def run(check: bool) -> int:
    os.chdir(ROOT)
    stale = []
    with tempfile.TemporaryDirectory() as scratch:
        for name, command in commands().items():
            fresh = draw(name, command, Path(scratch) if check else OUT)
            if check and (not (OUT / name).exists()
                          or (OUT / name).read_text() != fresh.read_text()):
                stale.append(str(OUT / name))
            if not check:
                print(f"drew {fresh}")
    if stale:
        print("missing or stale (run python scripts/pictures.py):\n  " + "\n  ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="draw into a scratch folder and compare with docs/pictures/")
    sys.exit(run(parser.parse_args().check))
