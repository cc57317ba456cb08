"""TerminalView: the CLI's observer, a live progress bar and one line per finished file."""

from __future__ import annotations

import sys
from dataclasses import asdict
from typing import TextIO

from devformance_nb.cli.findings import n_plus_one_lines, slow_lines, unused_eager_lines
from devformance_nb.core import events as ev
from devformance_nb.logic.eager import eager_order
from devformance_nb.run.state import FileState, RunState

LABELS = {
    "passed": "PASSED",
    "failed": "FAILED",
    "error": "ERROR",
    "crashed": "CRASHED",
    "timeout": "TIMEOUT",
    "stopped": "STOPPED",
    "empty": "NO TESTS",
    "interrupted": "INTERRUPTED",
}
_COLOURS = {"PASSED": "32", "NO TESTS": "33", "STOPPED": "33"}
_BAR = 24


def file_line(fs: FileState, colour: bool = False) -> str:
    """One line for a finished file: status, key, counts, duration and any error."""
    label = LABELS.get(fs.status, fs.status.upper())
    shown = f"\x1b[{_COLOURS.get(label, '31')}m{label:<8}\x1b[0m" if colour else f"{label:<8}"
    counts = ", ".join(f"{n} {c}" for c, n in sorted(fs.counts.items()) if n)
    took = f"{fs.duration:.2f}s" if fs.duration is not None else ""
    line = f"{shown} {fs.key}  {counts or 'no tests'}  {took}"
    if fs.status == "passed":
        return line
    for detail in _details(fs):
        line += f"\n         {detail[:160]}"
    return line


def _details(fs: FileState) -> list[str]:
    # a crash: what happened (its first line) and the crashing frame of a fatal-error dump;
    # an error: its last line (the exception)
    if fs.crash:
        lines = [t.strip() for t in fs.crash.strip().splitlines() if t.strip()]
        frame = next((t for t in lines if t.startswith('File "')), None)
        return lines[:1] + ([frame] if frame else [])
    if fs.errors and fs.errors[0].strip():
        return [fs.errors[0].strip().splitlines()[-1]]
    return []


def progress_line(state: RunState) -> str:
    """The progress bar: files done, tests done, failures, elapsed time."""
    files = list(state.files.values())
    finished = sum(fs.is_finished for fs in files)
    fraction = finished / len(files) if files else 1.0
    filled = int(fraction * _BAR)
    totals = state.totals()
    bad = totals.get("failed", 0) + totals.get("error", 0)
    return (
        f"[{'#' * filled}{'-' * (_BAR - filled)}] {finished}/{len(files)} files  "
        f"{totals['tests']} tests  {bad} failed  {state.duration or 0:.1f}s"
    )


class TerminalView:
    """Prints progress to a terminal; on a non-terminal only the per-file lines and summary."""

    def __init__(self, out: TextIO | None = None, live: bool | None = None):
        self.out = out or sys.stdout
        self.live = self.out.isatty() if live is None else live
        self._bar_shown = False

    def _clear_bar(self) -> None:
        if self._bar_shown:
            self.out.write("\r\x1b[2K")
            self._bar_shown = False

    def on_event(self, event: ev.Event, state: RunState) -> None:
        if isinstance(event, ev.RunStarted):
            self.out.write(
                f"devformance: run {state.run_id}: {len(state.files)} files, "
                f"{state.workers} workers ({state.executor})\n"
            )
        elif isinstance(event, ev.FileFinished):
            self._clear_bar()
            self.out.write(file_line(state.file(event.file), colour=self.live) + "\n")
            self.out.flush()

    def tick(self, state: RunState) -> None:
        if self.live:
            self._clear_bar()
            self.out.write(progress_line(state))
            self._bar_shown = True
            self.out.flush()

    def close(self, state: RunState) -> None:
        self._clear_bar()
        for line in findings_report(state):
            self.out.write(line + "\n")
        coverage = coverage_line(state)
        if coverage:
            self.out.write(coverage + "\n")
        totals = state.totals()
        parts = [f"{n} {c}" for c, n in sorted(totals.items()) if c != "tests" and n]
        self.out.write(
            f"devformance: {state.status} - {totals['tests']} tests in {len(state.files)} files "
            f"({', '.join(parts) or 'nothing ran'}) in {state.duration or 0:.1f}s\n"
        )
        self.out.flush()


def coverage_line(state: RunState) -> str:
    """``coverage: 91.7% of 1,234 statements ...`` for a measured run, else ''."""
    result = state.coverage_result
    if result is None:
        return ""
    total, notes = result.total, [*result.notes]
    if total is None:
        reasons = sorted({s.reason for s in result.skipped if s.reason})
        return "coverage: not measured" + (f" ({'; '.join(reasons)})" if reasons else "")
    text = f"coverage: {total.percent:.1f}% of {total.statements:,} statements"
    if total.branches:
        text += f" and {total.branches:,} branches"
    contributed = len(result.data_files)
    ran = contributed + len(result.skipped)
    if contributed < ran:
        notes.insert(0, f"{contributed} of {ran} test files contributed")
    return text + (f" ({'; '.join(notes)})" if notes else "")


def findings_report(state: RunState, top: int = 10) -> list[str]:
    """The run's slowest queries (top ``top``) and every N+1 finding, as text lines."""
    slow = sorted((q for fs in state.files.values() for q in fs.slow), key=lambda q: -q.duration)
    found = [f for fs in state.files.values() for f in fs.n_plus_one]
    lines = []
    if slow:
        lines.append(f"slow queries (>= {state.slow_query_ms:g} ms): {len(slow)}, slowest:")
        lines += slow_lines(
            {
                "ms": q.duration * 1000,
                "caller": q.caller,
                "nodeid": q.nodeid,
                "file": q.file,
                "sql": q.sql,
            }
            for q in slow[:top]
        )
    if found:
        lines.append(f"N+1 findings: {len(found)}")
        lines += n_plus_one_lines(
            {
                "count": f.count,
                "table_name": f.table,
                "caller": f.caller,
                "sent_by": f.sent_by,
                "nodeid": f.nodeid,
                "ms": f.total_duration * 1000,
                "hint": f.hint,
                "example_sql": f.example_sql,
            }
            for f in sorted(found, key=lambda f: -f.count)
        )
    unused = sorted((u for fs in state.files.values() for u in fs.unused_eager), key=eager_order)
    if unused:
        lines.append(f"unused eager loads: {len(unused)}")
        lines += unused_eager_lines(asdict(u) for u in unused)
    return lines
