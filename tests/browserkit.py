"""What the browser tests share: Debian's chromium, servers on localhost, no network.

Never downloads a browser: without ``/usr/bin/chromium`` a test fails with the command
that installs it. Every page gets :func:`block_network`: any request that leaves
localhost is aborted and recorded, as on a machine with no internet access.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Error as PlaywrightError

REPO = Path(__file__).resolve().parent.parent
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
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
#: what Voila's own page template asks a CDN for (its icon font): blocked, the page works
VOILA_ICONS = "https://cdn.jsdelivr.net/npm/@fortawesome/"


def not_voila(blocked: list[str]) -> list[str]:
    """The blocked requests other than those of Voila's page template."""
    return [url for url in blocked if not url.startswith(VOILA_ICONS)]


def block_network(context: Any) -> list[str]:
    """Abort every request of ``context`` that leaves localhost; returns the list of them."""
    blocked: list[str] = []

    def handle(route: Any) -> None:
        url = route.request.url
        if url.startswith(("data:", "blob:", "file:")) or urlparse(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", handle)
    return blocked


def launch(p: Any) -> Any:
    """Debian's chromium, headless, with no background network of its own."""
    need_chromium()
    return p.chromium.launch(executable_path=os.fspath(CHROMIUM), args=CHROMIUM_ARGS)


def need_chromium() -> None:
    # a failure, never a skip: a missing browser must not pass as a green suite
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium fonts-dejavu-core")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(
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


def lab_env(tmp_path: Path, project: Path) -> dict[str, str]:
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
def server(
    command: list[str], env: dict[str, str], cwd: Path, ready: str, name: str
) -> Iterator[None]:
    """Run a server until the block ends; its output goes to ``<cwd>.log``."""
    log_path = cwd.with_suffix(".log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            wait_ready(ready, proc, log_path, server=name)
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def run_all(page: Any, scope: str = "body") -> None:
    """Run > Run All Cells, until every code cell has started or is queued.

    JupyterLab can show the kernel idle while the notebook's session is still connecting, and
    can replace the session's first kernel by a second one just after starting both: a click on
    Run All then does nothing, or runs the first cell and drops the queued rest. So the click
    is repeated while cells are left unstarted and none runs (each prompt shows ``*`` or a
    number once its cell started or was queued), within a deadline.
    """
    deadline = time.monotonic() + 180
    prompts = page.locator(scope).locator(".jp-CodeCell .jp-InputPrompt")
    while time.monotonic() < deadline:
        accept_kernel_choice(page)
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        item = page.locator("li[data-command='runmenu:run-all']:not(.lm-mod-disabled)")
        item.wait_for(timeout=30_000)
        item.click()
        settle = time.monotonic() + 10
        while time.monotonic() < deadline:
            texts = prompts.all_inner_texts()
            if texts and all(re.search(r"\[(\*|\d+)\]", t) for t in texts):
                return
            if time.monotonic() > settle and not any("[*]" in t for t in texts):
                break  # nothing runs or waits, and cells were left: click again
            page.wait_for_timeout(200)
        page.keyboard.press("Escape")  # a menu left open must not swallow the next click
    raise AssertionError("Run All never started every cell")


def accept_kernel_choice(page: Any) -> None:
    """Answer JupyterLab's "Select Kernel" dialog with the kernel it proposes; fail on others.

    On a busy machine a notebook can open before the server listed its kernels, and
    JupyterLab then asks which one to start (its ``autoStartDefaultKernel`` setting avoids
    the question but replaced the notebook's kernel under the page's feet in a test).
    """
    dialog = page.locator(".jp-Dialog")
    if not dialog.count():
        return
    text = " ".join(dialog.all_inner_texts())
    if not text.startswith("Select Kernel"):
        raise AssertionError(f"JupyterLab shows a dialog: {text}")
    select = dialog.locator("button.jp-Dialog-button", has_text=re.compile(r"^\s*Select\s*$"))
    deadline = time.monotonic() + 60
    while dialog.count() and time.monotonic() < deadline:
        # a click given while the dialog was still being set up can go unanswered: again
        # (and the dialog may close between the count and the click)
        with contextlib.suppress(PlaywrightError):
            select.click(timeout=10_000)
        page.wait_for_timeout(2000)
    if dialog.count():
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=os.fspath(ARTIFACTS / "dialog.png"))
        raise AssertionError(f"JupyterLab's dialog stays: {dialog.all_inner_texts()}")


def jupyter_command(app: str, port: int, token: str, root: Path) -> list[str]:
    """The command serving ``root`` with ``jupyterlab`` or ``notebook`` (Notebook 7)."""
    command = [
        sys.executable, "-m", app, "--no-browser", f"--port={port}",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.token={token}",
        f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
    ]  # fmt: skip
    if app == "jupyterlab":
        command += [
            "--LabApp.news_url=None",
            "--LabApp.extension_manager=readonly",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ]
    if os.geteuid() == 0:  # containers and CI often run as root
        command.append("--allow-root")
    return command
