"""Atomic writes (`checker.files`): a file is replaced in one rename or not at all, whether the
write fails between writing and renaming or the process is killed while writing; and the path
checks commands make before any work."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from checker.cli import main
from checker.files import file_problem, folder_problem, write_text_atomic

REPO = Path(__file__).resolve().parents[1]
LOGS = REPO / "checker" / "data" / "boot-logs"
EMR = "emr-fcp-e820-first-2g.log"  # v6.8 fails with -28 although a valid layout exists


def visible(folder: Path) -> list[str]:
    """What a reader of the folder sees: names that are not hidden temporary files."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_a_file_is_written_and_replaced_whole(tmp_path):
    path = tmp_path / "r.txt"
    write_text_atomic(path, "first\n")
    write_text_atomic(path, "second, longer\n")
    assert path.read_text() == "second, longer\n"
    assert os.listdir(tmp_path) == ["r.txt"]  # no temporary file left behind


def test_a_replaced_file_keeps_its_mode_and_a_new_one_follows_the_umask(tmp_path):
    kept = tmp_path / "baseline.json"
    kept.write_text("{}")
    kept.chmod(0o640)
    write_text_atomic(kept, "[]")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640
    umask = os.umask(0o027)
    try:
        write_text_atomic(tmp_path / "new.json", "{}")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.json").stat().st_mode) == 0o640


def test_a_symlink_at_the_final_path_is_replaced_not_followed(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text("keep me")
    link = tmp_path / "r.json"
    link.symlink_to(target)
    write_text_atomic(link, "report")
    assert not link.is_symlink() and link.read_text() == "report"
    assert target.read_text() == "keep me"


def test_a_failure_between_write_and_rename_leaves_the_old_file_and_no_temporary(
        tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text("old")

    def no_rename(src, dst):
        assert Path(src).read_text() == "new"  # the data was written, then the rename fails
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    with pytest.raises(OSError) as info:
        write_text_atomic(path, "new")
    assert str(info.value) == f"[Errno 28] cannot write {path}: No space left on device"
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["r.json"]


def test_an_interrupt_while_writing_removes_the_temporary_file(tmp_path, monkeypatch):
    def interrupted(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(tmp_path / "r.json", "new")
    assert os.listdir(tmp_path) == []


def test_verify_reports_a_report_it_could_not_write_and_leaves_the_old_one(tmp_path, monkeypatch,
                                                                           capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copy(LOGS / EMR, tmp_path / EMR)
    (tmp_path / "suite.toml").write_text(f'profiles = ["v6.8"]\nmaps = ["{EMR}"]\n'
                                         'checks = ["layout"]\n')
    (tmp_path / "r.json").write_text("old report")

    def no_rename(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", no_rename)
    code = main(["verify", "--suite", "suite.toml", "--format", "json", "--output", "r.json"])
    assert code == 2
    assert capsys.readouterr().err == "error: cannot write r.json: No space left on device\n"
    assert (tmp_path / "r.json").read_text() == "old report"
    assert visible(tmp_path) == [EMR, "r.json", "suite.toml"]


# A run of the checker that stops for good at the first fsync of a file it writes: the data is
# in the temporary file, the rename has not happened. The parent kills it there with SIGKILL.
STOP_AT_FSYNC = textwrap.dedent("""
    import os, sys, time
    def stop(fd):
        print("writing", flush=True)
        time.sleep(600)
    os.fsync = stop
    from checker.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def _killed_while_writing(cwd: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", STOP_AT_FSYNC, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # a report on stdout would come later; it must not come
            if line == "writing\n":
                break
        else:
            pytest.fail(f"the run ended without writing: {proc.wait()} {proc.stderr.read()}")
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
        proc.stderr.close()


def test_a_verify_killed_while_writing_its_report_leaves_the_old_report(tmp_path):
    shutil.copy(LOGS / EMR, tmp_path / EMR)
    (tmp_path / "suite.toml").write_text(f'profiles = ["v6.8"]\nmaps = ["{EMR}"]\n'
                                         'checks = ["layout"]\n')
    (tmp_path / "r.json").write_text("old report")
    _killed_while_writing(tmp_path, "verify", "--suite", "suite.toml", "--format", "json",
                          "--output", "r.json")
    assert (tmp_path / "r.json").read_text() == "old report"
    assert visible(tmp_path) == [EMR, "r.json", "suite.toml"]


def test_a_verify_killed_while_saving_a_counterexample_leaves_the_corpus_usable(tmp_path,
                                                                               capsys,
                                                                               monkeypatch):
    shutil.copy(LOGS / EMR, tmp_path / EMR)
    (tmp_path / "suite.toml").write_text(f'profiles = ["v6.8"]\nmaps = ["{EMR}"]\n'
                                         'checks = ["plan", "replay"]\ncounterexamples = "cex"\n')
    _killed_while_writing(tmp_path, "verify", "--suite", "suite.toml", "--save-counterexamples")
    # the corpus holds no counterexample, complete or partial, that a reader would pick up
    assert visible(tmp_path / "cex") == []
    # so the next run replays nothing broken: it finds the counterexample again and saves it
    monkeypatch.chdir(tmp_path)
    code = main(["verify", "--suite", "suite.toml", "--save-counterexamples", "--format",
                 "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0  # a finding, stored and replayed, not a failure of the gate
    (saved,) = visible(tmp_path / "cex")
    assert {c["id"]: c["status"] for c in report["checks"]} == {
        "plan/v6.8/emr-fcp-e820-first-2g": "fail", f"replay/{Path(saved).stem}": "fail"}


# --- path checks ---------------------------------------------------------------------------------


def test_file_problem(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "folder")
    assert file_problem(tmp_path / "new.json") is None
    assert file_problem(tmp_path / "file") is None
    assert file_problem(tmp_path / "link") is None  # the link is replaced, the folder kept
    assert file_problem(tmp_path / "folder") == "is a folder"
    assert file_problem(tmp_path / "missing" / "r.json") == \
        f"folder {tmp_path / 'missing'} does not exist"
    assert file_problem(tmp_path / "file" / "r.json") == f"{tmp_path / 'file'} is not a folder"


def test_folder_problem(tmp_path):
    (tmp_path / "file").write_text("")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert folder_problem(tmp_path) is None
    assert folder_problem(tmp_path / "a" / "b") is None  # created when needed
    assert folder_problem(tmp_path / "file") == "is not a folder"
    assert folder_problem(tmp_path / "file" / "sub") == f"{tmp_path / 'file'} is not a folder"
    assert folder_problem(tmp_path / "dangling") == "is a dangling symlink"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_a_problem(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert file_problem(locked / "r.json") == f"folder {locked} is not writable"
    assert folder_problem(locked / "new") == f"folder {locked} is not writable"
