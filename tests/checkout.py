"""This checkout, for tests that run `python -m checker` in a process of its own: the code
here, not an installed copy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_module(*args, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "checker", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
