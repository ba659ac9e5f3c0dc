"""`verify --format html` opened in headless Chromium, as a person opens the file: nothing is
fetched, nothing is logged to the console, the summary, changes, checks, failures with their
trace pictures and the machines' layouts are there, and the status filter hides what it should.
A screenshot of the page is kept as a test artefact (its path is printed).

Chromium is Debian's (`.ci/run` installs it); playwright drives it and never downloads a browser
of its own. Without either, the test is skipped on a developer's machine and fails in CI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from checker.cli import main

ROOT = Path(__file__).parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]
SUITE = """\
profiles = ["v6.8", "bug-lp-init-irq-reentry"]
maps = ["builtin"]
checks = ["layout", "plan", "replay"]
"""


def _browser_or_skip():
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing, sync_playwright = "the playwright package is not installed", None
    if missing is None and not shutil.which(CHROMIUM):
        missing = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must open the report in a browser: {missing}")
        pytest.skip(missing)
    return sync_playwright


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict]:
    """One small verify run (no baseline: the bug profile's replays are new failures, the
    kernel's missed layouts findings), written as HTML and JSON."""
    folder = tmp_path_factory.mktemp("verify")
    suite = folder / "suite.toml"
    suite.write_text(SUITE)
    html, data = folder / "report.html", folder / "report.json"
    here = Path.cwd()
    os.chdir(folder)  # no checker-baseline.json here
    try:
        code = main(["verify", "--suite", str(suite), "--counterexamples",
                     str(ROOT / "counterexamples"), "--new-counterexamples",
                     str(folder / "new"), "--quiet", "--format", "html", "--output",
                     str(html), "--format", "json", "--output", str(data)])
    finally:
        os.chdir(here)
    assert code == 1
    return html, json.loads(data.read_text())


def test_the_report_is_one_file_that_fetches_nothing(report):
    page = report[0].read_text()
    assert page.startswith("<!DOCTYPE html>")
    for reference in ("src=", "href=\"http", "url(", "@import", "<link"):
        assert reference not in page


def test_the_report_in_chromium(report, tmp_path, capsys):
    sync_playwright = _browser_or_skip()
    html, doc = report
    failing = [c for c in doc["checks"] if c["status"] in ("fail", "error")]
    maps = {c["config"] for c in doc["checks"] if c["id"].split("/")[0] in ("layout", "plan")}
    problems, requests = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1500, "height": 1000})
        try:
            page = browser.new_page()
            page.on("console", lambda m: m.type in ("error", "warning") and problems.append(
                f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(html.as_uri())
            page.wait_for_load_state("load")
            assert page.locator("#verdict").inner_text() == doc["verdict"] == "fail"
            assert f"checks {doc['summary']['checks']}" in page.locator("#summary").inner_text()
            changes = page.locator("#changes tr")
            assert changes.count() == len(doc["baseline"]["transitions"]) + 1
            rows = page.locator("#checks tr[data-status]")
            assert rows.count() == len(doc["checks"])
            assert page.locator("details.failure").count() == len(failing)
            # the new failures are open, each with a trace picture and its violating step
            opened = page.locator("details.failure[data-status=FAIL]")
            assert opened.count() > 0
            first = opened.first
            assert first.locator(".trace-picture svg .violating-row").count() == 1
            assert first.locator(".trace-picture svg").is_visible()
            pictures = page.locator(".trace-picture svg").count()
            same = page.locator("details.failure >> text=the same counterexample as").count()
            assert pictures + same == len(failing)
            machines = page.locator(".layout-picture svg")
            assert machines.count() == len(maps)
            failed = page.locator("#machine-emr-fcp-e820-first-2g-log ~ div.layout-picture")
            assert failed.first.locator(".failed-band").count() >= 1
            shot = tmp_path / "verify-report.png"
            page.screenshot(path=str(shot))
            first.screenshot(path=str(tmp_path / "verify-report-failure.png"))
            # the filter: hiding PASS hides every passing row and nothing else
            passing = page.locator("#checks tr[data-status=PASS]")
            assert passing.count() > 0 and passing.first.is_visible()
            page.locator("input[data-filter=PASS]").uncheck()
            assert not passing.first.is_visible()
            assert page.locator("#checks tr[data-status=FAIL]").first.is_visible()
            shown = len(doc["checks"]) - passing.count()
            assert page.locator("#shown-count").inner_text() == f"{shown} shown"
            page.locator("input[data-filter=FAIL]").uncheck()
            assert not first.is_visible()
        finally:
            browser.close()
    assert problems == []
    assert requests == [html.as_uri()]
    with capsys.disabled():
        print(f"\nscreenshots of the HTML report: {shot} and "
              f"{tmp_path / 'verify-report-failure.png'}")


def test_a_fail_fast_report_lists_the_checks_not_run_in_chromium(tmp_path, monkeypatch):
    """With --fail-fast the checks the run stopped before are rows of the changes table, named
    `not-run`; the page shows them without errors."""
    sync_playwright = _browser_or_skip()
    (tmp_path / "suite.toml").write_text(SUITE)
    monkeypatch.chdir(tmp_path)  # no checker-baseline.json here
    code = main(["verify", "--suite", "suite.toml", "--counterexamples",
                 str(ROOT / "counterexamples"), "--new-counterexamples", "new", "--quiet",
                 "--fail-fast", "--jobs", "1", "--format", "html", "--output", "r.html",
                 "--format", "json", "--output", "r.json"])
    assert code == 1
    doc = json.loads((tmp_path / "r.json").read_text())
    not_run = [t for t in doc["baseline"]["transitions"] if t["transition"] == "not-run"]
    assert not_run
    problems = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: m.type in ("error", "warning") and problems.append(
                f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto((tmp_path / "r.html").as_uri())
            page.wait_for_load_state("load")
            assert page.locator("#changes tr").count() == len(doc["baseline"]["transitions"]) + 1
            shown = page.locator("#changes tr", has_text="not-run")
            assert shown.count() == len(not_run) and shown.first.is_visible()
            assert not_run[0]["check_id"] in shown.first.inner_text()
        finally:
            browser.close()
    assert problems == []
