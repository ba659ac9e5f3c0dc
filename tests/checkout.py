"""This checkout, for tests that run `python -m checker` in a process of its own or load a
script of `benchmarks/`: the code here, not an installed copy."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_module(*args, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "checker", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def benchmark(name: str):
    """`benchmarks/<name>.py` loaded as a module (the folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module
