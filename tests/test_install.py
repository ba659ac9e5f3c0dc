"""`pip install .` (not editable), then the console script from an empty folder: it finds its
shipped boot logs, maps and schemas, and answers --version, `tdmr` and `verify`."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A virtual environment (seeing this one's packages, for the dependencies) with the
    project installed from a built wheel; returns its bin folder."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, system_site_packages=True, with_pip=True)
    pip = subprocess.run([home / "bin" / "python", "-m", "pip", "install", "--no-deps",
                          "--quiet", str(REPO)], capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    return home / "bin"


def _run(bin_dir: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([bin_dir / "tdx-checker", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def test_the_installed_checker_works_from_an_empty_folder(installed, tmp_path):
    version = _run(installed, tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.startswith("tdx-checker (tdx-host-checker)")
    where = subprocess.run([installed / "python", "-c", "import checker; print(checker.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, check=True)
    package = Path(where.stdout.strip()).parent
    assert REPO not in package.parents  # the copy in the environment, not this checkout
    log = package / "data" / "boot-logs" / "spr-8480c-256g.log"
    tdmr = _run(installed, tmp_path, "tdmr", str(log))
    assert tdmr.returncode == 0, tdmr.stderr
    assert "1050636 KB allocated for PAMT: the model reproduces it exactly" in tdmr.stdout
    run = _run(installed, tmp_path, "verify", "--profile", "v6.8")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith("verdict: pass (exit 0)")
    assert "Traceback" not in run.stderr
