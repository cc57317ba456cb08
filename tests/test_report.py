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

from devformance_nb import analysis
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
    titles += ["Test durations", "Coverage", "Flaky tests", "Failures in the latest run"]
    for title in titles:
        assert f"<h2>{title}" in page
    assert facts.new_n_plus_one_caller in page
    assert facts.caller(facts.fixed_n_plus_one) in page
    assert facts.flaky_test in page
    assert "1 regressions" in page  # the flaky run against the one before


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
def test_report_charts_render_in_chromium(report: Path) -> None:
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

    charts = len(_specs(report.read_text(encoding="utf-8")))
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
            assert not page.get_by_text("chart failed").count()
            page.screenshot(path=os.fspath(ARTIFACTS / "report.png"), full_page=True)
        finally:
            browser.close()
    assert errors == []
    assert [u for u in requests if not u.startswith("file:")] == []
