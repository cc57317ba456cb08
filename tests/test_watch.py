"""``devformance watch`` (cli/watch.py): a real watch process on a generated project runs
the files each save affects, says why, skips saves that affect none, and ends on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import MakeProject
from test_changed import PROJECT

from devformance_nb.cli.watch import relevant


class Lines:
    """A child's output lines, read by a thread; ``wait_for`` polls them with a deadline."""

    def __init__(self, proc: subprocess.Popen[str]):
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self.thread.start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, text: str, after: int = 0, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, line in enumerate(self.lines[after:], after):
                if text in line:
                    return i
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never came; output:\n" + "\n".join(self.lines))


def _default_sigint() -> None:  # a child started from a script without job control
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("executor", ["forkserver"])
def test_watch_runs_what_each_save_affects_and_ends_on_ctrl_c(
    make_project: MakeProject, executor: str
) -> None:
    root = make_project(PROJECT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "devformance_nb.cli", "watch", "--executor", executor],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TERM": "dumb"},
        preexec_fn=_default_sigint,
    )
    try:
        out = Lines(proc)
        first = out.wait_for("first round: run")
        assert out.wait_for("new: no recorded run of this project") < first
        ready = out.wait_for("devformance: watching")
        (root / "README.md").write_text("notes\n")
        skipped = out.wait_for("README.md: no test file affected", ready)
        orders = root / "app" / "orders.py"
        orders.write_text(orders.read_text().replace("return n - 1", "return n - 2"))
        done = out.wait_for("app/orders.py: run", skipped)
        why = out.wait_for("  run    tests/test_discount.py: app/orders.py:9 changed", skipped)
        assert why < done
        assert not any("run    tests/test_total.py" in line for line in out.lines[skipped:])
        assert "3 of 4 files not run" in "\n".join(out.lines[skipped:done])
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0
        out.thread.join(timeout=10)
        assert out.lines[-1] == "devformance: watch ended"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.quick
def test_changes_that_never_matter(tmp_path: Path) -> None:
    root = tmp_path
    assert relevant(root, os.fspath(root / "app" / "orders.py"))
    assert relevant(root, os.fspath(root / "data" / "prices.csv"))
    for rel in (".devformance/x.duckdb", ".git/index", "app/__pycache__/o.pyc", "a.py~", "a.swp"):
        assert not relevant(root, os.fspath(root / rel)), rel
    assert not relevant(root, "/elsewhere/file.py")
