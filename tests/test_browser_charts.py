"""The analysis notebooks' charts, drawn in a real browser with the network blocked.

Each analysis notebook runs top to bottom against the bookshop history in JupyterLab,
Notebook 7 and Voila; an executed notebook exported to HTML and the HTML report are
opened from disk. Every chart cell must end up drawn by Vega in the page (the
interactive chart, not only the static picture), with no error output and no request
leaving localhost. A screenshot of each notebook's first chart is kept under
test-artifacts/.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browserkit import (
    ARTIFACTS,
    REPO,
    block_network,
    free_port,
    jupyter_command,
    lab_env,
    launch,
    not_voila,
    run_all,
    server,
)
from test_notebooks_analysis import ANALYSIS

pytestmark = pytest.mark.browser
pytest_plugins = ["history"]  # the session's bookshop history: db

NOTEBOOKS = REPO / "notebooks"
#: a chart our renderer drew and Vega made interactive
DRAWN = ".devformance-chart[data-state='interactive'] .vega-embed svg.marks"
#: an error or anything on stderr (JupyterLab shows both with this MIME type)
ERRORS = "[data-mime-type='application/vnd.jupyter.stderr']"
#: the notebook on show (JupyterLab restores the other notebooks of its workspace, hidden)
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"
#: what nbconvert's HTML template asks CDNs for (require.js, MathJax)
NBCONVERT_LIBS = (
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/",
    "https://cdnjs.cloudflare.com/ajax/libs/mathjax/",
)


#: how many bars each drawn worker timeline chart shows (Vega draws a bar as a path)
TIMELINE_BARS = """
() => [...document.querySelectorAll('svg.marks')]
  .filter(s => [...s.querySelectorAll('.role-title-text')]
    .some(t => t.textContent === 'Worker timeline'))
  .map(s => s.querySelectorAll('.mark-rect path').length)
"""


def latest_files(db: Path) -> int:
    """How many test files the store's latest run has (a timeline bar each)."""
    from devformance_nb import open_store

    rows = open_store(db).query(
        "SELECT count(*) AS n FROM test_files WHERE run_id = "
        "(SELECT run_id FROM runs ORDER BY started DESC LIMIT 1)"
    )
    return int(rows[0]["n"])


def chart_cells(name: str) -> int:
    """How many code cells of a notebook show a chart (a line that starts with a chart call)."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    call = re.compile(r"^\s*(display\()?charts\.\w+\(", re.M)
    return sum(bool(call.search(c.source)) for c in nb.cells if c.cell_type == "code")


def _copy_notebooks(root: Path) -> None:
    root.mkdir()
    for name in ANALYSIS:
        shutil.copy(NOTEBOOKS / name, root / name)


@contextlib.contextmanager
def serve(app: str, tmp_path: Path, db: Path) -> Iterator[tuple[str, str]]:
    """JupyterLab or Notebook 7 serving copies of the notebooks; yields (base URL, token)."""
    root = tmp_path / app
    _copy_notebooks(root)
    env = {**lab_env(tmp_path, REPO / "examples" / "bookshop"), "DEVFORMANCE_DB": os.fspath(db)}
    port, token = free_port(), secrets.token_hex(16)
    ready = f"http://127.0.0.1:{port}/api/status?token={token}"
    with server(jupyter_command(app, port, token, root), env, root, ready, "jupyter lab"):
        yield f"http://127.0.0.1:{port}", token


def _wait_done(page: Any, expected_cells: int, deadline: float) -> None:
    """Until every code cell ran (a number in its prompt) or one shows an error.

    On a loaded machine JupyterLab can run the first cell of a "Run All" given while the
    kernel was still connecting and drop the rest (no cell queued, none running): then
    "Run All" is given again, as a user would, at most twice.
    """
    retries, progress, stalled_since = 2, -1, time.monotonic()
    while time.monotonic() < deadline:
        panel = page.locator(PANEL)
        prompts = [p.strip() for p in panel.locator(".jp-InputPrompt").all_inner_texts()]
        numbered = [p for p in prompts if re.fullmatch(r"\[\d+\]:", p)]
        if panel.locator(ERRORS).count() or (prompts and len(numbered) >= expected_cells):
            return
        if len(numbered) != progress or any("*" in p for p in prompts):
            progress, stalled_since = len(numbered), time.monotonic()
        elif retries and time.monotonic() - stalled_since > 30:
            retries -= 1
            run_all(page, PANEL)
            stalled_since = time.monotonic()
        page.wait_for_timeout(250)
    raise AssertionError(f"the notebook did not finish: prompts {prompts}")


def _code_cells(name: str) -> int:
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)  # type: ignore[no-untyped-call]
    return sum(c.cell_type == "code" for c in nb.cells)


def _wait_drawn(page: Any, expected: int, deadline: float, scope: str = PANEL) -> int:
    """Until ``expected`` charts are interactive (the bundle may take a moment to run)."""
    drawn = 0
    while time.monotonic() < deadline:
        drawn = page.locator(scope).locator(DRAWN).count()
        if drawn >= expected:
            break
        page.wait_for_timeout(250)
    return drawn


def _first_chart(page: Any, shot: str, scope: str = PANEL) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    chart = page.locator(scope).locator(".devformance-chart").first
    if chart.count():
        chart.scroll_into_view_if_needed()
        chart.screenshot(path=os.fspath(ARTIFACTS / shot))
    else:  # what the page shows instead: a failure must show itself
        page.screenshot(path=os.fspath(ARTIFACTS / shot))


def _check_notebooks(p: Any, base: str, token: str, path: str, prefix: str) -> dict[str, Any]:
    """Open and run every analysis notebook; what each page showed.

    ``path`` is the URL path before the notebook's name; ``{stem}`` in it is replaced by the
    notebook's stem (JupyterLab gets a workspace per notebook, so it restores no other one).
    """
    seen: dict[str, Any] = {}
    browser = launch(p)
    try:
        for name in ANALYSIS:
            context = browser.new_context(viewport={"width": 1400, "height": 1400})
            blocked = block_network(context)
            page = context.new_page()
            where = path.format(stem=name.removesuffix(".ipynb"))
            page.goto(f"{base}/{where}/{name}?token={token}", timeout=120_000)
            page.locator(".jp-Notebook").wait_for(timeout=120_000)
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
                timeout=120_000
            )
            run_all(page, PANEL)
            _wait_done(page, _code_cells(name), time.monotonic() + 300)
            expected = chart_cells(name)
            drawn = _wait_drawn(page, expected, time.monotonic() + 60)
            errors = page.locator(PANEL).locator(ERRORS).all_inner_texts()
            _first_chart(page, f"{prefix}_{name.removesuffix('.ipynb')}.png")
            bars = page.evaluate(TIMELINE_BARS)
            seen[name] = (expected, drawn, errors, list(blocked), bars)
            context.close()
    finally:
        browser.close()
    return seen


def _assert_all_drawn(seen: dict[str, Any]) -> None:
    for name, (expected, drawn, errors, blocked, *_) in seen.items():
        assert errors == [], f"{name}: {errors}"
        assert blocked == [], f"{name} asked for {blocked}"
        assert expected > 0 and drawn == expected, f"{name}: {drawn} of {expected} charts drawn"


def test_analysis_notebooks_draw_offline_in_jupyterlab(tmp_path: Path, db: Path) -> None:
    from playwright.sync_api import sync_playwright

    with serve("jupyterlab", tmp_path, db) as (base, token), sync_playwright() as p:
        seen = _check_notebooks(p, base, token, "lab/workspaces/{stem}/tree", "jupyterlab")
    _assert_all_drawn(seen)
    # the tour's worker timeline: a bar per file of the latest run, drawn by Vega
    assert seen["00_tour.ipynb"][4] == [latest_files(db)]


def test_analysis_notebooks_draw_offline_in_notebook7(tmp_path: Path, db: Path) -> None:
    from playwright.sync_api import sync_playwright

    with serve("notebook", tmp_path, db) as (base, token), sync_playwright() as p:
        seen = _check_notebooks(p, base, token, "notebooks", "notebook7")
    _assert_all_drawn(seen)
    assert seen["00_tour.ipynb"][4] == [latest_files(db)]


def test_analysis_notebooks_draw_offline_in_voila(tmp_path: Path, db: Path) -> None:
    from playwright.sync_api import sync_playwright

    root = tmp_path / "voila"
    _copy_notebooks(root)
    env = {**lab_env(tmp_path, REPO / "examples" / "bookshop"), "DEVFORMANCE_DB": os.fspath(db)}
    port = free_port()
    command = [
        sys.executable, "-m", "voila", "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1", os.fspath(root),
    ]  # fmt: skip
    seen: dict[str, Any] = {}
    ready = f"http://127.0.0.1:{port}/voila/static/"
    with server(command, env, root, ready, "voila"), sync_playwright() as p:
        browser = launch(p)
        try:
            for name in ANALYSIS:
                context = browser.new_context(viewport={"width": 1400, "height": 1400})
                blocked = block_network(context)
                page = context.new_page()
                page.goto(f"http://127.0.0.1:{port}/voila/render/{name}", timeout=240_000)
                expected = chart_cells(name)
                drawn = _wait_drawn(page, expected, time.monotonic() + 240, scope="body")
                errors = page.locator(ERRORS).all_inner_texts()
                errors += page.locator(".voila-error, .jp-RenderedText.jp-mod-error").all()
                _first_chart(page, f"voila_{name.removesuffix('.ipynb')}.png", scope="body")
                ours = not_voila(blocked)
                seen[name] = (expected, drawn, errors, ours, page.evaluate(TIMELINE_BARS))
                context.close()
        finally:
            browser.close()
    _assert_all_drawn(seen)
    assert seen["00_tour.ipynb"][4] == [latest_files(db)]


def _open_file(page_html: Path, shot: str) -> tuple[int, int, list[str], list[str], list[int]]:
    """Open an HTML file from disk; (charts expected, charts drawn, console errors, blocked,
    the bars of each worker timeline drawn)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1400})
            blocked = block_network(context)
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.goto(page_html.as_uri())
            expected = page.locator(".devformance-chart, .chart").count()
            drawn = _wait_drawn_any(page, expected, time.monotonic() + 60)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=os.fspath(ARTIFACTS / shot), full_page=False)
            return expected, drawn, console, blocked, page.evaluate(TIMELINE_BARS)
        finally:
            browser.close()


def _wait_drawn_any(page: Any, expected: int, deadline: float) -> int:
    drawn = 0
    while time.monotonic() < deadline:
        drawn = page.locator(".vega-embed svg.marks").count()
        if drawn >= expected:
            break
        page.wait_for_timeout(250)
    return drawn


def test_an_html_export_of_an_executed_notebook_draws_from_disk(tmp_path: Path, db: Path) -> None:
    source = tmp_path / "00_tour.ipynb"
    shutil.copy(NOTEBOOKS / "00_tour.ipynb", source)
    subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute",
         "--ExecutePreprocessor.timeout=300", os.fspath(source)],
        env={**os.environ, "DEVFORMANCE_DB": os.fspath(db)},
        check=True, capture_output=True, cwd=tmp_path, timeout=600,
    )  # fmt: skip
    expected, drawn, console, blocked, bars = _open_file(
        tmp_path / "00_tour.html", "export_00_tour.png"
    )
    # nbconvert's template asks CDNs for require.js and MathJax; blocked, nothing of ours needs them
    assert [url for url in blocked if not url.startswith(NBCONVERT_LIBS)] == []
    assert [m for m in console if not m.startswith("Failed to load resource")] == []
    assert expected == chart_cells("00_tour.ipynb")
    assert drawn == expected
    assert bars == [latest_files(db)]


def test_the_html_report_draws_from_disk(tmp_path: Path, db: Path) -> None:
    report = tmp_path / "report.html"
    subprocess.run(
        [sys.executable, "-m", "devformance_nb.cli", "report", "--db", os.fspath(db),
         "--html", os.fspath(report)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    expected, drawn, console, blocked, bars = _open_file(report, "report.png")
    assert blocked == [] and console == []
    assert expected >= 5 and drawn == expected
    assert bars == [latest_files(db)], "the latest run's worker timeline, a bar per file"
