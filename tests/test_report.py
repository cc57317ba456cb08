"""The HTML report: one self-contained file, escaped text, and its charts drawn in chromium."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from devformance_nb import analysis, open_store
from devformance_nb.cli.report import build_report, html_table

if TYPE_CHECKING:
    from history import Facts

pytest_plugins = ["history"]  # the session's bookshop history: db, facts

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]  # fmt: skip


@pytest.fixture(scope="module")
def report(db: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the whole history, written by the CLI."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    proc = subprocess.run(
        [sys.executable, "-m", "devformance_nb.cli", "report", "--html", str(out),
         "--db", str(db), "--runs", "all"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"report written to {out}" in proc.stdout
    return out


@pytest.fixture(scope="module")
def fix_report(db: Path, facts: Facts, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the baseline and fix runs: the fix changes two tests' statements."""
    out = tmp_path_factory.mktemp("report") / "fix.html"
    out.write_text(build_report(db, [facts.run("baseline"), facts.run("fix")]), encoding="utf-8")
    return out


def _section(page: str, heading: str) -> str:
    """The part of ``page`` from ``heading`` (an h2 or h3 starting so) to the next heading."""
    start = re.search(rf"<h[23]>{re.escape(heading)}", page)
    assert start, f"no {heading!r} heading"
    end = re.compile(r"<h[23]>").search(page, start.end())
    return page[start.start() : end.start() if end else len(page)]


def _rows(part: str) -> list[list[str]]:
    """The cells of each row of the tables in ``part``, unescaped (header rows left out)."""
    return [
        [html.unescape(c) for c in re.findall(r"<td>(?:<pre>)?(.*?)(?:</pre>)?</td>", row)]
        for row in re.findall(r"<tr>(.*?)</tr>", part, re.S)
        if "<td>" in row
    ]


def _specs(page: str) -> list[dict[str, Any]]:
    match = re.search(r"const specs = (\[.*?\]);\nconst opts", page, re.S)
    assert match, "no chart specs in the page"
    specs: list[dict[str, Any]] = json.loads(match.group(1).replace("<\\/", "</"))
    return specs


def test_report_is_one_self_contained_file(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    # no external script, stylesheet or image: everything is inline
    assert not re.search(r"<script[^>]*\ssrc=", page)
    markup = re.sub(r"<script>.*?</script>", "", page, flags=re.S)
    assert not re.search(r"<(link|img|iframe)\b", markup)
    assert "vegaEmbed" in page and "window.vega=" in page  # the bundle is inlined
    specs = _specs(page)
    assert len(specs) == page.count("<div class='chart' id='chart-")
    assert all(s.get("datasets") for s in specs), "a chart without data"
    # one closing script tag per opening one: data and SQL cannot end a script early
    assert page.count("<script") == page.count("</script>") == 2


def test_report_sections_name_the_findings(report: Path, facts: Facts) -> None:
    page = report.read_text(encoding="utf-8")
    titles = ["Runs", "Slowest queries", "N+1 hotspots", "Queries per test file"]
    titles += ["Test durations", "Worker timeline", "Coverage", "Flaky tests"]
    titles += ["Failures in the latest run"]
    for title in titles:
        assert f"<h2>{title}" in page
    assert facts.new_n_plus_one_caller in page
    assert facts.caller(facts.fixed_n_plus_one) in page
    assert facts.flaky_test in page
    # the flaky run against the one before: the failing test is flaky, reported, not failing
    compared = _section(page, "Latest run against the one before")
    assert "<p class='good'>no regressions</p>" in compared
    notices = _rows(_section(page, "Reported, never failing"))
    assert [row[:2] for row in notices] == [["flaky test", facts.flaky_test]]
    # the same commit again: no test's statements changed
    statements = _section(page, "Which statements changed, per test")
    assert "no test sends other statements" in statements and not _rows(statements)


def test_report_shows_each_tests_statement_changes(fix_report: Path, facts: Facts) -> None:
    page = fix_report.read_text(encoding="utf-8")
    part = _section(page, "Which statements changed, per test")
    found = _rows(part)
    assert [len(row) for row in found] == [6] * len(found)  # test, change, a, b, statement, caller
    assert sorted({row[0] for row in found}) == sorted(facts.changed_tests["fix"])
    # the planted N+1's lookups, one per book, are gone: shown compactly, with their caller
    planted = facts.fixed_n_plus_one
    lookups = [planted["nodeid"], "removed", str(planted["count"]), "0"]
    lookups += ["SELECT … FROM authors WHERE authors.id = ?"]
    lookups += [f"{planted['touched_at']} {planted['function']}"]
    assert lookups in found
    assert {row[1] for row in found} == {"added", "removed"}
    # its chart, in the section, draws a bar for exactly those tests
    (chart,) = re.findall(r"<div class='chart' id='chart-(\d+)'>", part)
    spec = _specs(page)[int(chart)]
    assert spec["description"].startswith("devformance_nb statement_changes")
    (data,) = spec["datasets"].values()
    assert sorted({r["nodeid"] for r in data}) == sorted(facts.changed_tests["fix"])
    assert _rows(_section(page, "Reported, never failing")) == []


def test_report_draws_the_latest_runs_worker_timeline(report: Path, db: Path) -> None:
    page = report.read_text(encoding="utf-8")
    part = _section(page, "Worker timeline")
    latest = analysis.select_runs(db, "latest")[0]
    assert f"latest run {latest}" in part
    (chart,) = re.findall(r"<div class='chart' id='chart-(\d+)'>", part)
    spec = _specs(page)[int(chart)]
    assert spec["description"].startswith("devformance_nb worker_timeline")
    (data,) = spec["datasets"].values()
    files = open_store(db).query("SELECT file, worker FROM test_files WHERE run_id = ?", [latest])
    assert sorted((r["file"], r["worker"]) for r in data) == sorted(
        (r["file"], r["worker"]) for r in files
    ), "a bar per file of the latest run, on its slot"


def test_report_escapes_sql_and_output(report: Path, db: Path) -> None:
    page = report.read_text(encoding="utf-8")
    body = page[page.index("<body>") : page.index("const specs")]
    # the failing test's output: pytest marks the failing line with ">"
    output = analysis.failures(db, "latest").loc[0, "output"]
    marked = next(line for line in output.splitlines() if line.startswith(">"))
    assert html.escape(marked) in body
    assert "\n" + marked not in body
    # SQL with comparison operators appears escaped, never as raw markup
    sql = [t for t in re.findall(r"<pre>(.*?)</pre>", body, re.S) if "SELECT" in t]
    assert sql and not any("<" in t.replace("&lt;", "") for t in sql)


@pytest.mark.quick
def test_html_table_escapes_every_cell() -> None:
    import pandas as pd

    df = pd.DataFrame({"sql": ["SELECT 1 WHERE a < b </td><script>x()</script>"], "n": [1]})
    table = html_table(df, ["sql", "n"], pre=["sql"])
    assert "<script>" not in table and "&lt;script&gt;" in table
    assert html_table(df.iloc[0:0], ["sql"]) == "<p class='meta'>none</p>"


@pytest.mark.quick
def test_report_of_an_empty_store(tmp_path: Path) -> None:
    from devformance_nb.store.database import Store

    store = Store(tmp_path / "empty.duckdb")
    with store.writing():
        pass
    page = build_report(store)
    assert "No runs recorded yet" in page and "vegaEmbed(" not in page


@pytest.mark.browser
@pytest.mark.parametrize("which", ["report", "fix_report"])
def test_report_charts_render_in_chromium(which: str, request: pytest.FixtureRequest) -> None:
    report: Path = request.getfixturevalue(which)
    if not CHROMIUM.exists():  # a failure, never a skip
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium fonts-dejavu-core")
    from playwright.sync_api import Route, sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    requests: list[str] = []

    def only_files(route: Route) -> None:
        url = route.request.url
        requests.append(url)
        if url.startswith("file:"):
            route.continue_()
        else:
            route.abort()

    text = report.read_text(encoding="utf-8")
    charts = len(_specs(text))
    (timeline,) = re.findall(r"<div class='chart' id='chart-(\d+)'>", _section(text, "Worker"))
    (files,) = _specs(text)[int(timeline)]["datasets"].values()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.fspath(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1200})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", only_files)
            page.goto(report.as_uri())
            drawn = page.locator(".chart svg.marks")
            page.wait_for_function(
                f"document.querySelectorAll('.chart svg.marks').length >= {charts}",
                timeout=60_000,
            )
            assert drawn.count() == charts
            assert page.locator(".chart svg.marks path, .chart svg.marks rect").count() > 100
            # the worker timeline: a bar per file of the latest run, each a path Vega drew
            bars = page.locator(f"#chart-{timeline} svg.marks .mark-rect path").count()
            assert not page.get_by_text("chart failed").count()
            shot = ARTIFACTS / ("report.png" if which == "report" else "report-fix.png")
            page.screenshot(path=os.fspath(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith("file:")] == []
    assert bars == len(files) > 0
