"""The live view in a real browser, run after run: does every run render completely?

Run: python bench/bench_browser_runs.py [--files 400] [--runs 10] [--app jupyterlab|notebook]

A generated project of ``--files`` one-test files (three failing, coverage off) is served
with ``notebooks/01_live_run.ipynb`` by JupyterLab or Notebook 7, opened in Debian's
chromium (Playwright, every request outside localhost blocked), and run: the first time by
"Run All", then ``--runs`` - 1 times by the view's own Run button, as a user would. A run
renders completely when, in the page, the table says it holds every file, the summary card
shows every file finished and 3 failed, the three failing files have their panes, and the
Run button is enabled again. For each run: seconds from the click to every file listed in
the page, seconds to the end, whether it rendered completely, and the browser console's
errors. (At 400 files, one pane per file, the first view rendered its panes in 1 run of 4.)
Prints a markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from browserkit import (  # noqa: E402  (tests/browserkit.py)
    block_network,
    free_port,
    jupyter_command,
    lab_env,
    launch,
    run_all,
    server,
)
from test_browser_large import NOTEBOOK, TITLES, failing_of, make_project  # noqa: E402

RUN_ENABLED = ".devformance-view button:not([disabled])"


def run_id(page: Any) -> str:
    """The id of the run the view's header shows ('' before any)."""
    view = page.locator(".devformance-view")
    found = re.search(r"run (\S+):", view.first.inner_text()) if view.count() else None
    return found.group(1) if found else ""


def one_run(page: Any, files: int, began: float, previous: str) -> dict[str, Any]:
    """Wait for a run other than ``previous`` to list its files and end; what the page
    showed."""
    deadline = time.monotonic() + 300
    while run_id(page) in ("", previous) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    listed = page.locator(".devformance-files", has_text=f"of {files:,}")
    listed.wait_for(timeout=300_000)
    listed_at = time.monotonic() - began
    # the new run's Stop is enabled while it goes; the end re-enables Run
    page.locator(RUN_ENABLED, has_text="Run").wait_for(timeout=900_000)
    ended = time.monotonic() - began
    view = page.locator(".devformance-view").first.inner_text()
    titles = " ".join(page.locator(TITLES).all_inner_texts())
    complete = (
        re.search(rf"files\s+{files}/{files}", view) is not None
        and re.search(r"failed\s+3\b", view) is not None
        and all(key in titles for key in failing_of(files))
    )
    return {"listed": listed_at, "ended": ended, "complete": complete}


def bench(app: str, files: int, runs: int) -> list[dict[str, Any]]:
    """Serve the notebook with ``app`` and run it ``runs`` times in a row."""
    from playwright.sync_api import sync_playwright

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-browser-") as tmp:
        folder = Path(tmp)
        root = folder / "server"
        root.mkdir()
        shutil.copy(NOTEBOOK, root / NOTEBOOK.name)
        env = lab_env(folder, make_project(folder, files))
        port, token = free_port(), secrets.token_hex(16)
        base = f"http://127.0.0.1:{port}"
        path = "lab/tree" if app == "jupyterlab" else "notebooks"
        command = jupyter_command(app, port, token, root)
        with (
            server(command, env, root, f"{base}/api/status?token={token}", app),
            sync_playwright() as p,
        ):
            browser = launch(p)
            context = browser.new_context(viewport={"width": 1400, "height": 1400})
            blocked = block_network(context)
            page = context.new_page()
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text) if m.type == "error" else None)
            page.goto(f"{base}/{path}/{NOTEBOOK.name}?token={token}", timeout=120_000)
            page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for(
                timeout=120_000
            )
            for number in range(runs):
                seen, previous = len(console), run_id(page)
                began = time.monotonic()
                if number == 0:
                    run_all(page)
                else:
                    page.locator(RUN_ENABLED, has_text="Run").click()
                result = one_run(page, files, began, previous)
                result["console"] = console[seen:]
                results.append(result)
                print(f"run {number + 1}: {result}", file=sys.stderr)
            browser.close()
        if blocked:
            print(f"blocked requests: {blocked}", file=sys.stderr)
    return results


def table(app: str, files: int, results: list[dict[str, Any]]) -> str:
    """The runs as a markdown table."""
    lines = [
        f"{app}, {files} files, {len(results)} runs in a row",
        "",
        "| run | every file listed (s) | run ended (s) | rendered completely | console errors |",
        "|---|---|---|---|---|",
    ]
    for number, r in enumerate(results, start=1):
        lines.append(
            f"| {number} | {r['listed']:.1f} | {r['ended']:.1f} "
            f"| {'yes' if r['complete'] else 'NO'} | {len(r['console'])} |"
        )
    complete = sum(r["complete"] for r in results)
    lines.append(f"\n{complete} of {len(results)} runs rendered completely.")
    return "\n".join(lines)


def main() -> None:
    """Run the bench and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--app", choices=["jupyterlab", "notebook"], default="jupyterlab")
    args = parser.parse_args()
    print(table(args.app, args.files, bench(args.app, args.files, args.runs)))


if __name__ == "__main__":
    main()
