"""The command line introduces itself: --version, the program's own name in its usage, and a
help text on every command, option and counterexample kind."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys

import pytest

from checker.cli import build_parser, main
from checker.engines.synth import KINDS


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_command_and_option_has_help():
    parser = build_parser("tdx-checker")
    missing = []
    for each in _parsers(parser):
        for action in each._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if not action.help:
                missing.append(f"{each.prog} {'/'.join(action.option_strings) or action.dest}")
    assert missing == []
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert all(choice.help for choice in commands._choices_actions)


def test_every_counterexample_kind_is_explained(capsys):
    with pytest.raises(SystemExit):
        main(["counterexample", "--help"])
    out = capsys.readouterr().out
    assert all(f"  {kind} " in out for kind in KINDS)


def test_version_names_the_program(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"], prog="tdx-checker")
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("tdx-checker (tdx-host-checker) ")


def test_python_dash_m_and_the_console_script_name_themselves():
    module = subprocess.run([sys.executable, "-m", "checker", "--help"], capture_output=True,
                            text=True)
    assert module.stdout.startswith("usage: python -m checker ")
    script = shutil.which("tdx-checker")
    if script is None:
        pytest.skip("the package is not installed with its console script")
    installed = subprocess.run([script, "--help"], capture_output=True, text=True)
    assert installed.stdout.startswith("usage: tdx-checker ")
