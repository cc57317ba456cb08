"""A real browser: JupyterLab on localhost, Debian's chromium driven by Playwright.

The live notebook runs the bookshop demo; the Accordion's titles must show a
file running before every file finished, then all of them finished. A
screenshot is kept under test-artifacts/. Never downloads a browser: without
``/usr/bin/chromium`` the test fails with the command that installs it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
BOOKSHOP = REPO / "examples" / "bookshop"
NOTEBOOK = REPO / "notebooks" / "01_live_run.ipynb"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: title prefixes of a finished file (widgets_text.ICONS without pending and running)
FINISHED = ("✔", "✘", "⚠", "◷", "✖", "■", "∅", "–", "↯")
TITLES = ".widget-accordion .jupyter-widget-Collapse-header"

pytestmark = pytest.mark.browser


def _need_chromium() -> None:
    # a failure, never a skip: a missing browser must not pass as a green suite
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium fonts-dejavu-core")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(
    url: str,
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout: float = 60,
    server: str = "jupyter lab",
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise AssertionError(f"{server} exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except urllib.error.HTTPError:
            if server != "jupyter lab":
                return  # the server answers: up
            time.sleep(0.3)
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{server} did not answer {url} within {timeout} s")


def _lab_env(tmp_path: Path, project: Path) -> dict[str, str]:
    """The server's (and so the kernel's) environment: temp project, DB and Jupyter dirs."""
    # no "Jupyter news?" prompt over the page (and no request for it)
    notification = tmp_path / "settings" / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}', encoding="utf-8"
    )
    # every cell stays in the DOM: with JupyterLab 4's default windowing, "run all" scrolls
    # to the last cell and the view's cell, now off screen, is detached from the page
    tracker = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    tracker.mkdir(parents=True)
    (tracker / "tracker.jupyterlab-settings").write_text(
        '{"windowingMode": "none"}', encoding="utf-8"
    )
    return {
        **os.environ,
        "DEVFORMANCE_ROOT": os.fspath(project),
        "DEVFORMANCE_DB": os.fspath(tmp_path / "runs.duckdb"),
        "DEVFORMANCE_WORKERS": "2",
        "JUPYTER_CONFIG_DIR": os.fspath(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": os.fspath(tmp_path / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": os.fspath(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": os.fspath(tmp_path / "workspaces"),
    }


@contextlib.contextmanager
def serve_lab(tmp_path: Path) -> Iterator[str]:
    """JupyterLab serving a temp copy of the notebook; yields the notebook's URL."""
    root, env = _prepare(tmp_path, "lab")
    port, token = _free_port(), secrets.token_hex(16)
    command = [
        sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
        "--LabApp.news_url=None", "--LabApp.extension_manager=readonly",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]  # fmt: skip
    if os.geteuid() == 0:  # containers and CI often run as root
        command.append("--allow-root")
    ready = f"http://127.0.0.1:{port}/api/status?token={token}"
    with _server(command, env, root, ready, "jupyter lab"):
        yield f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK.name}?token={token}"


def _prepare(tmp_path: Path, folder: str) -> tuple[Path, dict[str, str]]:
    """A folder holding a copy of the notebook, and the server's environment (temp bookshop)."""
    root = tmp_path / folder
    root.mkdir()
    shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
    project = tmp_path / "bookshop"
    shutil.copytree(BOOKSHOP, project, ignore=shutil.ignore_patterns(".devformance", "__pycache__"))
    return root, _lab_env(tmp_path, project)


@contextlib.contextmanager
def _server(
    command: list[str], env: dict[str, str], cwd: Path, ready: str, name: str
) -> Iterator[None]:
    """Run a server until the block ends; its output goes to ``<cwd>.log``."""
    log_path = cwd.with_suffix(".log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            _wait_ready(ready, proc, log_path, server=name)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _titles(page: Any) -> list[str]:
    texts: list[str] = page.locator(TITLES).all_inner_texts()
    return [t.strip() for t in texts if t.strip()]


def test_live_run_in_jupyterlab(tmp_path: Path) -> None:
    _need_chromium()  # before anything else: in CI a missing browser is a failure
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with serve_lab(tmp_path) as lab, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.fspath(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            page.goto(lab)
            page.locator(".jp-Notebook").wait_for(timeout=120_000)
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
                timeout=120_000
            )
            _run_all(page)
            # deadlines are caps for a machine busy with other work; each wait ends on its condition
            seen_running, finished = _watch(page, deadline=time.monotonic() + 300)
            _scroll_to_top(page)
            # the view re-enables Run once the run closed: the final state is drawn
            run_again = page.locator(".devformance-view button", has_text="Run")
            try:
                run_again.and_(page.locator("button:not([disabled])")).wait_for(timeout=120_000)
            finally:
                _screenshot(page, "browser_live_run.png")
        finally:
            browser.close()
    assert seen_running, "no Accordion item was shown running before the run finished"
    assert finished, f"the run did not finish in the page: {finished!r}"
    assert all(t.startswith(FINISHED) for t in finished)


def _run_all(page: Any) -> None:
    """Run > Run All Cells, until the first code cell has started.

    JupyterLab can show the kernel idle while the notebook's session is still connecting; a
    click on Run All then does nothing. So the click is repeated until a cell has run or
    is queued (its prompt shows ``*`` or a number), within a deadline.
    """
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        item = page.locator("li[data-command='runmenu:run-all']:not(.lm-mod-disabled)")
        item.wait_for(timeout=30_000)
        item.click()
        started = time.monotonic() + 10
        while time.monotonic() < started:
            prompts = page.locator(".jp-InputPrompt").all_inner_texts()
            if any(re.search(r"\[(\*|\d+)\]", p) for p in prompts):
                return
            page.wait_for_timeout(200)
        page.keyboard.press("Escape")  # a menu left open must not swallow the next click
    raise AssertionError("Run All never started a cell")


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
    port = _free_port()
    command = [
        sys.executable, "-m", "voila", "--no-browser", f"--port={port}",
        "--Voila.ip=127.0.0.1", os.fspath(root / NOTEBOOK.name),
    ]  # fmt: skip
    # any answer will do (a redirect too): the page itself is asked for by the browser
    with _server(command, env, root, f"http://127.0.0.1:{port}/voila/static/", "voila"):
        yield f"http://127.0.0.1:{port}/"


def test_voila_serves_the_live_view_as_a_dashboard(tmp_path: Path) -> None:
    _need_chromium()
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with serve_voila(tmp_path) as page_url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=os.fspath(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            page.goto(page_url, timeout=120_000)
            # Voila runs every cell, then the run goes on live in the page
            page.locator(".devformance-view").wait_for(timeout=120_000)
            _, finished = _watch(page, deadline=time.monotonic() + 300)
            run_again = page.locator(".devformance-view button", has_text="Run")
            run_again.and_(page.locator("button:not([disabled])")).wait_for(timeout=120_000)
            page.screenshot(path=os.fspath(ARTIFACTS / "voila_dashboard.png"))
        finally:
            browser.close()
    assert len(finished) == len(list((BOOKSHOP / "tests").rglob("test_*.py")))
    assert all(t.startswith(FINISHED) for t in finished)
