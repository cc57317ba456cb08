"""A real browser on a large run: 1,000 generated test files in JupyterLab and in Voila.

At 400 files the first live view never showed its panes (one pane per file: about 10,000
widget models sent at once, dropped by the server). The live notebook runs a generated
project of 1,000 trivial files, three of them failing; in the page, every file must be
reachable through the table, the three failures named (table and panes, with their
assertion message), the counts right, and the browser console free of errors. Requests
that leave localhost are blocked (browserkit).
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

pytestmark = pytest.mark.browser

NOTEBOOK = REPO / "notebooks" / "01_live_run.ipynb"
FILES = 1_000


def keys_of(files: int) -> list[str]:
    """The keys of a generated project of ``files`` files."""
    return [f"tests/test_{i:04d}.py" for i in range(files)]


def failing_of(files: int) -> tuple[str, ...]:
    """Its three failing files: near the start, in the middle, the last."""
    keys = keys_of(files)
    return keys[3], keys[files // 2], keys[-1]


KEYS = keys_of(FILES)
FAILING = failing_of(FILES)
#: the run is over in the page once its Run button is enabled again
RUN_ENABLED = ".devformance-view button:not([disabled])"
TITLES = ".widget-accordion .jupyter-widget-Collapse-header"


def make_project(folder: Path, files: int = FILES) -> Path:
    """One-test files, three failing with a planted message (``failing_of``); coverage off."""
    project = folder / "big"
    (project / "tests").mkdir(parents=True)
    config = '[tool.pytest.ini_options]\ntestpaths = ["tests"]\n\n[tool.devformance]\n'
    (project / "pyproject.toml").write_text(config + "coverage = false\n", encoding="utf-8")
    failing = failing_of(files)
    for key in keys_of(files):
        body = "assert 1 + 1 == 3, 'planted failure'" if key in failing else "assert True"
        (project / key).write_text(f"def test_one():\n    {body}\n", encoding="utf-8")
    return project


def prepare(tmp_path: Path, folder: str) -> tuple[Path, dict[str, str]]:
    root = tmp_path / folder
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    return root, lab_env(tmp_path, make_project(tmp_path))


@contextlib.contextmanager
def serve_lab(tmp_path: Path) -> Iterator[str]:
    root, env = prepare(tmp_path, "lab")
    port, token = free_port(), secrets.token_hex(16)
    command = jupyter_command("jupyterlab", port, token, root)
    with server(command, env, root, f"http://127.0.0.1:{port}/api/status?token={token}", "lab"):
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}"


@contextlib.contextmanager
def serve_voila(tmp_path: Path) -> Iterator[str]:
    root, env = prepare(tmp_path, "voila")
    port = free_port()
    command = [
        sys.executable, "-m", "voila", "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1", os.fspath(root / NOTEBOOK.name),
    ]  # fmt: skip
    with server(command, env, root, f"http://127.0.0.1:{port}/voila/static/", "voila"):
        yield f"http://127.0.0.1:{port}/"


def table_keys(page: Any) -> list[str]:
    return re.findall(r"tests/test_\d{4}\.py", page.locator(".devformance-table").inner_text())


def where(page: Any) -> str:
    return str(page.locator(".devformance-files .widget-html").first.inner_text())


def every_page(page: Any) -> set[str]:
    """The files of every page of the table, turning pages with its ▶ button."""
    seen = set(table_keys(page))
    following = page.locator(".devformance-files button", has_text="▶")
    deadline = time.monotonic() + 120
    while following.is_enabled() and time.monotonic() < deadline:
        before = where(page)
        following.click()
        while where(page) == before and time.monotonic() < deadline:
            page.wait_for_timeout(50)  # the kernel redraws the page: poll for it
        seen |= set(table_keys(page))
    return seen


def watch_large_run(page: Any, name: str) -> dict[str, Any]:
    """Wait for the table, then the run's end; what the page shows then."""
    page.locator(".devformance-table").wait_for(timeout=180_000)
    listed = page.locator(".devformance-files", has_text=f"of {FILES:,}")
    listed.wait_for(timeout=60_000)
    page.locator(RUN_ENABLED, has_text="Run").wait_for(timeout=600_000)
    page.locator(".devformance-view").first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.screenshot(path=os.fspath(ARTIFACTS / name))
    panes = page.locator(".devformance-pane").all_inner_texts()
    return {
        "first_rows": table_keys(page)[:3],
        "table": page.locator(".devformance-table").inner_text(),
        "titles": page.locator(TITLES).all_inner_texts(),
        "panes": "\n".join(panes),
        "summary": page.locator(".devformance-view").first.inner_text(),
        "all": every_page(page),
    }


def check(shown: dict[str, Any], console: list[str]) -> None:
    assert shown["all"] == set(KEYS), f"{FILES - len(shown['all'])} files not reachable"
    assert shown["first_rows"] == list(FAILING), "problems first: the failures head the table"
    titles = [t for t in shown["titles"] if t.strip()]
    assert len(titles) == 3 and all("✘ failed" in t for t in titles), titles
    assert sorted(re.findall(r"tests/test_\d{4}\.py", " ".join(titles))) == list(FAILING)
    assert "planted failure" in shown["panes"], "the open failing pane shows its assertion"
    assert re.search(r"files\s+1000/1000", shown["summary"]), shown["summary"][:400]
    assert re.search(r"failed\s+3\b", shown["summary"]), shown["summary"][:400]
    assert console == [], f"browser console errors: {console[:5]}"


def new_page(p: Any, height: int) -> tuple[Any, Any, list[str], list[str]]:
    browser = launch(p)
    context = browser.new_context(viewport={"width": 1400, "height": height})
    blocked = block_network(context)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
    return browser, page, blocked, console


def test_a_thousand_files_in_jupyterlab(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with serve_lab(tmp_path) as url, sync_playwright() as p:
        browser, page, blocked, console = new_page(p, 1500)
        try:
            page.goto(url)
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
                timeout=120_000
            )
            run_all(page)
            shown = watch_large_run(page, "browser_large_run.png")
        finally:
            browser.close()
    assert blocked == [], "the page asked for something outside localhost"
    check(shown, console)


def test_a_thousand_files_in_voila(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with serve_voila(tmp_path) as url, sync_playwright() as p:
        browser, page, blocked, console = new_page(p, 1200)
        try:
            page.goto(url, timeout=120_000)
            shown = watch_large_run(page, "voila_large_run.png")
        finally:
            browser.close()
    assert not_voila(blocked) == [], "the page asked for something outside localhost"
    check(shown, [m for m in console if not voila_noise(m)])


def voila_noise(message: str) -> bool:
    """Console errors of Voila's own page, whatever it shows: its template's icon font
    (refused by the blocked network), and Notebook 7's JupyterLab extension (installed with
    the notebook extra), which Voila's extension loader cannot host (module federation
    error RUNTIME-012 raised from that extension's remoteEntry script)."""
    if message.startswith("Failed to load resource"):
        return True
    return "RUNTIME-012" in message and "/voila/labextensions/@jupyter-notebook/" in message
