"""Regenerate the command outputs shown in README.md from the code as it is.

    python scripts/readme_outputs.py            # rewrite README.md in place
    python scripts/readme_outputs.py --dry-run  # print what would change

An output block is a fenced block right after a marker line

    <!-- output: python -m checker explore --profile bug-lp-init-irq-reentry | grep -v ^\\s{6} -->

whose first line is `$ COMMAND`. The command runs from the repository root (no shell); what it
prints, passed through the filters (`| head N`, `| grep REGEX`, `| grep -v REGEX`,
`| drop A-B`; `head` and `drop` leave "..." where they cut), replaces the block. Figures that
change from run to run (seconds, states per second) change with it; nothing is typed by hand.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"^<!-- output: (?P<command>.+?) -->$")


def run(command: str) -> str:
    """The command's output after its filters."""
    parts = [part.strip() for part in command.split(" | ")]
    args = shlex.split(parts[0])
    if args[:1] == ["python"]:
        args[0] = sys.executable
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    lines = done.stdout.splitlines()
    for step in parts[1:]:
        name, _, arg = step.partition(" ")
        if name == "head":
            cut = len(lines) > int(arg)
            lines = lines[:int(arg)] + (["..."] if cut else [])
        elif name == "grep" and arg.startswith("-v "):
            lines = [line for line in lines if not re.search(arg[3:], line)]
        elif name == "grep":
            lines = [line for line in lines if re.search(arg, line)]
        elif name == "drop":  # lines A-B (1-based) give way to an indented "..."
            first, last = (int(n) for n in arg.split("-"))
            indent = lines[first - 1][:len(lines[first - 1]) - len(lines[first - 1].lstrip())]
            lines = lines[:first - 1] + [indent + "..."] + lines[last:]
        else:
            raise SystemExit(f"unknown filter {step!r} in {command!r}")
    return "\n".join([f"$ {parts[0]}", *lines])


def regenerate(text: str) -> str:
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        out.append(lines[i])
        found = MARKER.match(lines[i])
        if found and i + 1 < len(lines) and lines[i + 1].startswith("```"):
            end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
            out += [lines[i + 1], run(found["command"]), lines[end]]
            i = end
        i += 1
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    args = parser.parse_args()
    readme = ROOT / "README.md"
    old = readme.read_text()
    new = regenerate(old)
    if args.dry_run:
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True),
                                                   "README.md", "README.md (regenerated)"))
        return 0
    sys.path.insert(0, str(ROOT))
    from checker.files import write_text_atomic

    write_text_atomic(readme, new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
