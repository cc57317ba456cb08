"""A real browser: the live view in JupyterLab and Voila, Debian's chromium driven by Playwright.

The live notebook runs the bookshop demo; the Accordion's titles must show a
file running before every file finished, then all of them finished. A
screenshot is kept under test-artifacts/. Requests that leave localhost are
blocked (browserkit).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

BOOKSHOP = REPO / "examples" / "bookshop"
NOTEBOOK = REPO / "notebooks" / "01_live_run.ipynb"
#: title prefixes of a finished file (widgets_text.ICONS without pending and running)
FINISHED = ("✔", "✘", "⚠", "◷", "✖", "■", "∅", "–", "↯")
TITLES = ".widget-accordion .jupyter-widget-Collapse-header"

pytestmark = pytest.mark.browser


@contextlib.contextmanager
def serve_lab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab serving a temp copy of the notebook; yields the notebook's URL."""
    root, env = _prepare(tmp_path, "lab")
    port, token = free_port(), secrets.token_hex(16)
    command = jupyter_command("jupyterlab", port, token, root)
    ready = f"http://127.0.0.1:{port}/api/status?token={token}"
    with server(command, env, root, ready, "jupyter lab"):
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}"


def _prepare(tmp_path: Path, folder: str) -> tuple[Path, dict[str, str]]:
    """A folder holding a copy of the notebook, and the server's environment (temp bookshop)."""
    root = tmp_path / folder
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    project = tmp_path / "bookshop"
    shutil.copytree(BOOKSHOP, project, ignore=shutil.ignore_patterns(".devformance", "__pycache__"))
    return root, lab_env(tmp_path, project)


def _titles(page: Any) -> list[str]:
    texts: list[str] = page.locator(TITLES).all_inner_texts()
    return [t.strip() for t in texts if t.strip()]


def test_live_run_in_jupyterlab(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with serve_lab(tmp_path) as lab, sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1500})
            blocked = block_network(context)
            page = context.new_page()
            page.goto(lab)
            page.locator(".jp-Notebook").wait_for(timeout=120_000)
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
                timeout=120_000
            )
            run_all(page)
            # deadlines are caps for a machine busy with other work; each wait ends on its condition
            seen_running, finished = _watch(page, deadline=time.monotonic() + 300)
            _scroll_to_top(page)
            # the view re-enables Run once the run closed: the final state is drawn
            run_again = page.locator(".devformance-view button", has_text="Run")
            try:
                run_again.and_(page.locator("button:not([disabled])")).wait_for(timeout=120_000)
            except Exception as exc:
                raise AssertionError(_diagnosis(page, tmp_path / "lab.log")) from exc
            finally:
                _screenshot(page, "browser_live_run.png")
            pane_share = _pane_share(page)
            spark = page.evaluate(_SPARKLINE)
            timeline = page.evaluate(_TIMELINE)
            dark = _contrast_in_dark_theme(page)
        finally:
            browser.close()
    assert blocked == [], "the page asked for something outside localhost"
    assert seen_running, "no Accordion item was shown running before the run finished"
    assert finished, f"the run did not finish in the page: {finished!r}"
    assert all(t.startswith(FINISHED) for t in finished)
    # the output pane takes the view's width (the findings go below it, not beside it)
    assert pane_share > 0.8, f"the output pane uses {pane_share:.0%} of the view's width"
    # the open pane's header draws the file's memory and CPU sparklines (inline SVG)
    assert spark["lines"] == 2 and spark["width"] > 0, f"sparklines: {spark}"
    # the worker timeline (inline SVG): a rect per file, each drawn with some width, each
    # with a tooltip naming its file and duration, none still running
    files = len(list((BOOKSHOP / "tests").rglob("test_*.py")))
    assert timeline["width"] > 300 and timeline["bars"] == timeline["drawn"] == files, timeline
    assert all(re.fullmatch(r"tests/\S+\.py: [\d.]+ s, [\w ]+", t) for t in timeline["titles"])
    assert "running" not in timeline["statuses"], timeline
    # in JupyterLab's dark theme every text of the view stays readable on what is behind it
    assert dark["texts"] > 20 and dark["worst"] >= 3.0, f"dark theme: {dark}"


def _diagnosis(page: Any, log: Path) -> str:
    """What the page and the server showed when the run did not end in the page (CI keeps
    no screenshot, so the failure message carries it)."""
    view = page.locator(".devformance-view")
    header = view.first.inner_text()[:600] if view.count() else "(no live view)"
    dialogs = page.locator(".jp-Dialog").all_inner_texts()
    kernel = page.locator(".jp-Notebook-ExecutionIndicator").first.get_attribute("data-status")
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
    return (
        f"the view never re-enabled Run; titles: {_titles(page)}\nkernel: {kernel}\n"
        f"dialogs: {dialogs}\nview:\n{header}\nserver log tail:\n{tail}"
    )


def _pane_share(page: Any) -> float:
    """The widest output pane's width over the live view's width (opening a file's pane)."""
    if not any(
        b and b["width"] > 0
        for b in (p.bounding_box() for p in page.locator(".devformance-pane").all())
    ):
        page.locator(TITLES).first.click()
        page.locator(".devformance-pane:visible").first.wait_for(timeout=30_000)
    view = page.locator(".devformance-view").first.bounding_box()
    panes = [p.bounding_box() for p in page.locator(".devformance-pane").all()]
    widths = [box["width"] for box in panes if box and box["width"] > 0]
    return max(widths, default=0.0) / view["width"] if view else 0.0


#: the shown pane's sparklines: how many lines are drawn, and the first one's rendered width
_SPARKLINE = """
() => {
  const shown = [...document.querySelectorAll('.devformance-spark')]
    .find(e => e.getBoundingClientRect().width > 0);
  const lines = shown ? shown.querySelectorAll('svg polyline') : [];
  return {lines: lines.length, width: lines.length ? lines[0].getBoundingClientRect().width : 0};
}
"""


#: the worker timeline on show: its rendered width, its files' rects (how many, how many drawn
#: with a width), their tooltips and the statuses they are drawn in
_TIMELINE = """
() => {
  const svg = [...document.querySelectorAll('svg.devformance-timeline')]
    .find(e => e.getBoundingClientRect().width > 0);
  if (!svg) return {width: 0, bars: 0, drawn: 0, titles: [], statuses: []};
  const rects = [...svg.querySelectorAll('g[data-status] rect')];
  return {
    width: svg.getBoundingClientRect().width,
    bars: rects.length,
    drawn: rects.filter(r => r.getBoundingClientRect().width > 0).length,
    titles: rects.map(r => (r.querySelector('title') || {}).textContent || ''),
    statuses: [...new Set(rects.map(r => r.parentElement.dataset.status))],
  };
}
"""


#: the lowest contrast (WCAG ratio) of a text in the live view against its background
_WORST_CONTRAST = """
view => {
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => [r, g, b].map(v => v / 255)
    .map(v => v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4)
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const behind = e => {
    for (; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  let worst = 21, text = "", texts = 0, where = "";
  for (const e of view.querySelectorAll("*")) {
    const own = [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || !e.getClientRects().length) continue;
    const [a, b] = [lum(rgb(getComputedStyle(e).color)), lum(behind(e))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    texts += 1;
    if (ratio < worst) {
      worst = ratio;
      text = e.textContent.trim().slice(0, 60);
      where = `${e.tagName}.${e.className} ${getComputedStyle(e).color} on ${behind(e)}`;
    }
  }
  return {worst, text, texts, where};
}
"""


def _contrast_in_dark_theme(page: Any) -> dict[str, Any]:
    """Switch JupyterLab to its dark theme; the live view's least readable text."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^JupyterLab Dark$")).click()
    page.locator("body[data-jp-theme-light='false']").wait_for(state="attached", timeout=60_000)
    # the theme change shows JupyterLab's splash over the page until the new theme is in
    page.locator("#jupyterlab-splash").wait_for(state="detached", timeout=60_000)
    page.wait_for_function(
        "getComputedStyle(document.querySelector('.jp-Notebook')).backgroundColor"
        " !== 'rgb(255, 255, 255)'",
        timeout=60_000,
    )
    page.screenshot(path=os.fspath(ARTIFACTS / "browser_live_run_dark.png"))
    result: dict[str, Any] = page.locator(".devformance-view").first.evaluate(_WORST_CONTRAST)
    return result


def _screenshot(page: Any, name: str) -> None:
    # JupyterLab scrolls inside the notebook panel: bring the view's header to the top (if it
    # is there: a screenshot taken after a failure must not hide the failure)
    view = page.locator(".devformance-view")
    if view.count():
        view.first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=os.fspath(ARTIFACTS / name))


def _scroll_to_top(page: Any) -> None:
    """Bring the notebook's first cells back on screen (JupyterLab may detach hidden cells)."""
    outer = page.locator(".jp-WindowedPanel-outer")
    if outer.count():
        outer.first.evaluate("e => e.scrollTo(0, 0)")


def _watch(page: Any, deadline: float) -> tuple[bool, list[str]]:
    """Poll the Accordion titles until every file finished; was one seen running first?"""
    seen_running = False
    while time.monotonic() < deadline:
        titles = _titles(page)
        if not titles:
            _scroll_to_top(page)
        if not seen_running and any(t.startswith("▶") for t in titles):
            seen_running = True
            _screenshot(page, "browser_live_run_running.png")
        if titles and all(t.startswith(FINISHED) for t in titles):
            return seen_running, titles
        page.wait_for_timeout(100)
    return seen_running, []


@contextlib.contextmanager
def serve_voila(tmp_path: Path) -> Iterator[str]:
    """Voila serving the live notebook as a dashboard page; yields the page's URL."""
    root, env = _prepare(tmp_path, "voila")
    port = free_port()
    command = [
        sys.executable, "-m", "voila", "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1", os.fspath(root / NOTEBOOK.name),
    ]  # fmt: skip
    # any answer will do (a redirect too): the page itself is asked for by the browser
    with server(command, env, root, f"http://127.0.0.1:{port}/voila/static/", "voila"):
        yield f"http://127.0.0.1:{port}/"


def test_voila_serves_the_live_view_as_a_dashboard(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with serve_voila(tmp_path) as page_url, sync_playwright() as p:
        browser = launch(p)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1200})
            blocked = block_network(context)
            page = context.new_page()
            page.goto(page_url, timeout=120_000)
            # Voila runs every cell, then the run goes on live in the page
            page.locator(".devformance-view").wait_for(timeout=120_000)
            _, finished = _watch(page, deadline=time.monotonic() + 300)
            run_again = page.locator(".devformance-view button", has_text="Run")
            run_again.and_(page.locator("button:not([disabled])")).wait_for(timeout=120_000)
            page.screenshot(path=os.fspath(ARTIFACTS / "voila_dashboard.png"))
        finally:
            browser.close()
    assert not_voila(blocked) == [], "the page asked for something outside localhost"
    assert len(finished) == len(list((BOOKSHOP / "tests").rglob("test_*.py")))
    assert all(t.startswith(FINISHED) for t in finished)
