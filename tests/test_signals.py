"""SIGTERM and SIGINT to a running `verify`, in a real process: every worker ends with it, no
traceback, no report, and the exit status is 128 + the signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Two flow checks that each run for half a minute, so they are still running when the signal
# comes (the test signals as soon as they have started, and never waits for them to end).
SUITE = """\
profiles = ["v6.8"]
checks = ["flow"]
flow_configs = ["2x4", "4x2"]
counterexamples = "cex"
[bounds]
time_s = 300
"""

# verify, saying on stdout when its first check starts (in the process that runs it).
ANNOUNCED = textwrap.dedent("""
    import os, sys
    import checker.gate.verify as verify
    run_check = verify.run_check
    def announced(spec):
        os.write(1, b"check started\\n")  # one write: two workers never mix their lines
        return run_check(spec)
    verify.run_check = announced
    from checker.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _start(tmp_path: Path, jobs: int) -> subprocess.Popen:
    (tmp_path / "suite.toml").write_text(SUITE)
    return subprocess.Popen(
        [sys.executable, "-c", ANNOUNCED, "verify", "--suite", "suite.toml", "--jobs", str(jobs),
         "--format", "json", "--output", "r.json"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_until(condition, what: str, limit: float = 120.0) -> None:
    """Poll for a state of another process; the limit only keeps a broken run from hanging."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("signum,whole_group", [
    (signal.SIGTERM, False),  # `kill PID`, or a CI runner cancelling the job
    (signal.SIGINT, False),
    (signal.SIGINT, True),  # Ctrl-C at a terminal reaches the workers too
])
def test_a_signal_ends_verify_and_every_worker(tmp_path, signum, whole_group):
    proc = _start(tmp_path, jobs=2)
    try:
        assert proc.stdout.readline() == "check started\n"
        _wait_until(lambda: len(_children(proc.pid)) == 2, "two workers")
        workers = _children(proc.pid)
        if whole_group:
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 128 + signum
    assert err == f"verify: stopped by {signal.Signals(signum).name}\n"
    assert "Traceback" not in out
    _wait_until(lambda: all(_gone(w) for w in workers), "the workers to end", limit=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.toml"]  # no report, nothing


def test_a_signal_ends_a_single_process_verify(tmp_path):
    proc = _start(tmp_path, jobs=1)
    try:
        assert proc.stdout.readline() == "check started\n"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert (proc.returncode, out, err) == (128 + signal.SIGTERM, "", "verify: stopped by SIGTERM\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.toml"]


def test_a_worker_killed_from_outside_ends_the_run_with_exit_1(tmp_path):
    proc = _start(tmp_path, jobs=2)
    try:
        assert proc.stdout.readline() == "check started\n"
        _wait_until(lambda: len(_children(proc.pid)) == 2, "two workers")
        killed, other = _children(proc.pid)
        os.kill(killed, signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 1
    assert err == "error: a worker process died (killed from outside?); no report written\n"
    _wait_until(lambda: _gone(other), "the other worker to end", limit=10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.toml"]
